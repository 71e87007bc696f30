//! The receiver users build with the attribute: signature check, the default memory dedupe
//! store, typed decode and an empty handler, on one worker thread, logging as the quickstart does.
//!
//! ```text
//! REPLICATE_WEBHOOK_SECRET=whsec_… receiver 127.0.0.1:8082
//! ```
//!
//! `BENCH_STORE=sqlite://PATH` (or any store URL) replaces the memory store,
//! `BENCH_JOURNAL=memory` or `sqlite://PATH` turns the delivery journal on there (bounded to
//! `BENCH_JOURNAL_ROWS` rows, by default the journal's own default of 10,000), and
//! `BENCH_DASHBOARD_TOKEN` mounts the dashboard at `/replicate/dashboard`, for the journal's
//! figures.
//!
//! It also takes `replicate/hello-world` deliveries from the simulator, recording how long after
//! `completed_at` each handler started; `GET /_bench/latency` returns those delays in µs.

use std::sync::Mutex;

use actix_web::{App, HttpResponse, HttpServer, web};
use replicate_webhook::dashboard::Dashboard;
use replicate_webhook::dedupe::StoreUrl;
use replicate_webhook::journal::JournalOptions;
use replicate_webhook::{WebhookConfig, parse_secrets, replicate_webhook};

static DELAYS_US: Mutex<Vec<i64>> = Mutex::new(Vec::new());

#[replicate_webhook(model = "acme/bench", events = "completed")]
mod bench_model {
    use replicate_webhook::{HandlerError, Prediction};

    async fn on_succeeded(p: Prediction<String>) -> Result<(), HandlerError> {
        std::hint::black_box(p);
        Ok(())
    }
}

#[replicate_webhook(model = "replicate/hello-world", events = "completed")]
mod simulated {
    use replicate_webhook::{HandlerError, Prediction};

    async fn on_succeeded(p: Prediction<String>) -> Result<(), HandlerError> {
        let started = time::OffsetDateTime::now_utc();
        if let Some(completed) = p.completed_at {
            let delay =
                i64::try_from((started - completed).whole_microseconds()).unwrap_or(i64::MAX);
            super::DELAYS_US
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .push(delay);
        }
        Ok(())
    }
}

async fn delays() -> HttpResponse {
    let delays = DELAYS_US
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone();
    HttpResponse::Ok().json(delays)
}

fn main() -> std::io::Result<()> {
    replicate_webhook_examples::init_logging();
    let bind = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8082".into());
    let secrets = parse_secrets(&std::env::var(replicate_webhook::ENV_SECRET).unwrap_or_default())
        .expect("REPLICATE_WEBHOOK_SECRET");
    let mut config = WebhookConfig::with_secrets(secrets);
    if let Ok(url) = std::env::var("BENCH_JOURNAL") {
        let store = StoreUrl::parse(&url).expect("BENCH_JOURNAL is a store URL");
        let defaults = JournalOptions::default();
        config = config.journal(JournalOptions {
            store: Some(store),
            max_rows: std::env::var("BENCH_JOURNAL_ROWS").map_or(defaults.max_rows, |n| {
                n.parse().expect("BENCH_JOURNAL_ROWS")
            }),
            ..defaults
        });
    }
    if let Ok(url) = std::env::var("BENCH_STORE") {
        let store = StoreUrl::parse(&url).expect("BENCH_STORE is a store URL");
        config = config.store_url(&store).expect("BENCH_STORE opens");
    }
    if let Ok(token) = std::env::var("BENCH_DASHBOARD_TOKEN") {
        config = config.dashboard(Dashboard::new(token));
    }
    actix_web::rt::System::new().block_on(
        HttpServer::new(move || {
            App::new()
                .configure(replicate_webhook::configure(config.clone()))
                .route("/_bench/latency", web::get().to(delays))
        })
        .workers(1)
        .bind(bind)?
        .run(),
    )
}
