//! A receiver for the durability tests: `on_succeeded` prints `started <id>`, waits
//! `HANDLER_DELAY_MS` when the output is `"slow"`, then prints `finished <id>`. The tests kill it
//! with SIGKILL while a handler waits. Reads the usual `REPLICATE_WEBHOOK_SECRET` and
//! `REPLICATE_WEBHOOK_STORE`, `LEASE_MS` for the claim lease, and `BIND`.

use std::process::ExitCode;
use std::time::Duration;

use actix_web::{App, HttpServer};
use replicate_webhook::{WebhookConfig, replicate_webhook};

#[replicate_webhook(model = "*", events = "completed")]
mod any_model {
    use std::time::Duration;

    use replicate_webhook::{HandlerError, Prediction};

    async fn on_succeeded(p: Prediction) -> Result<(), HandlerError> {
        println!("started {}", p.id);
        if p.output.as_ref().and_then(|o| o.as_str()) == Some("slow") {
            tokio::time::sleep(Duration::from_millis(super::millis("HANDLER_DELAY_MS", 0))).await;
        }
        println!("finished {}", p.id);
        Ok(())
    }
}

fn millis(var: &str, default: u64) -> u64 {
    std::env::var(var)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() -> ExitCode {
    let config = match WebhookConfig::from_env() {
        Ok(config) => config.lease(Duration::from_millis(millis("LEASE_MS", 30_000))),
        Err(e) => {
            eprintln!("slow-receiver: {e}");
            return ExitCode::from(2);
        }
    };
    let bind = std::env::var("BIND").unwrap_or_else(|_| "127.0.0.1:8080".to_owned());
    let served = actix_web::rt::System::new().block_on(async move {
        let server = HttpServer::new(move || {
            App::new().configure(replicate_webhook::configure(config.clone()))
        })
        .workers(2)
        .bind(&bind)?;
        eprintln!("slow-receiver: listening on http://{bind}/webhooks/replicate");
        server.run().await
    });
    match served {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("slow-receiver: {e}");
            ExitCode::FAILURE
        }
    }
}
