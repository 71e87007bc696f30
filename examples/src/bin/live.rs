//! A page that starts a prediction and shows it live: status, logs, streaming output and the
//! final text or images, pushed by the receiver's live channel as each webhook is accepted.
//!
//! ```text
//! cargo run -p replicate-webhook-cli -- simulate --bind 127.0.0.1:5555   # terminal 1
//! REPLICATE_API_BASE_URL=http://127.0.0.1:5555/v1 cargo run --bin live  # terminal 2
//! open http://127.0.0.1:8080/                                            # a browser
//! ```
//!
//! `POST /api/predictions` with `{"model": "owner/name", "input": {...}}` creates the prediction
//! through the crate's client against `REPLICATE_API_BASE_URL` (`REPLICATE_API_TOKEN` when the
//! API needs one), its webhook at `PUBLIC_URL` (default `http://` + `BIND`) + the receiver's
//! path, events `start,output,logs,completed`, and answers
//! `{"id": "…", "events": "/live/predictions/…/events?token=…"}`; the page opens an
//! `EventSource` there. `GET /` serves the page.
//!
//! Reads `BIND` (default `127.0.0.1:8080`), `REPLICATE_WEBHOOK_SECRET` (else the API's default
//! secret, which the simulator serves too) and `REPLICATE_WEBHOOK_STORE` (default `memory`).
//! Instances sharing the secret and a Redis or PostgreSQL store accept each other's tokens.

use std::process::ExitCode;

use actix_web::http::header::{self, ContentType};
use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use replicate_webhook::client::{Client, CreatePrediction};
use replicate_webhook::dedupe::StoreUrl;
use replicate_webhook::live::{Live, LiveOptions};
use replicate_webhook::{
    DEFAULT_PATH, ENV_SECRET, ENV_STORE, Event, HandlerError, Prediction, Secret, Url,
    WebhookConfig, parse_secrets, replicate_webhook,
};
use serde::Deserialize;

/// Every model, every event: each accepted delivery is published on its prediction's channel.
#[replicate_webhook(model = "*", events = ["start", "output", "logs", "completed"])]
mod any_model {
    use replicate_webhook::{HandlerError, Prediction};

    async fn on_start(_: Prediction) -> Result<(), HandlerError> {
        Ok(())
    }

    async fn on_output(_: Prediction) -> Result<(), HandlerError> {
        Ok(())
    }

    async fn on_logs(_: Prediction) -> Result<(), HandlerError> {
        Ok(())
    }

    async fn on_succeeded(p: Prediction) -> Result<(), HandlerError> {
        super::finished(&p)
    }

    async fn on_failed(p: Prediction) -> Result<(), HandlerError> {
        super::finished(&p)
    }

    async fn on_canceled(p: Prediction) -> Result<(), HandlerError> {
        super::finished(&p)
    }
}

#[allow(clippy::unnecessary_wraps)] // the handlers' result, so that each is one call
fn finished(p: &Prediction) -> Result<(), HandlerError> {
    tracing::info!(id = p.id, status = p.status.as_str(), "prediction finished");
    Ok(())
}

const DEFAULT_API: &str = "https://api.replicate.com/v1";
const PAGE: &str = include_str!("../../live/index.html");
const SCRIPT: &str = include_str!("../../live/live.js");
const STYLE: &str = include_str!("../../live/live.css");
/// Nothing from elsewhere but images: a prediction's images live on Replicate's file hosts.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; \
                   img-src 'self' https: http:; form-action 'self'; base-uri 'none'; \
                   frame-ancestors 'none'";

/// What the page's handlers share.
struct AppState {
    client: Client,
    live: Live,
    webhook: Url,
}

#[derive(Deserialize)]
struct NewPrediction {
    model: String,
    #[serde(default)]
    input: serde_json::Map<String, serde_json::Value>,
}

fn main() -> ExitCode {
    replicate_webhook_examples::init_logging();
    match actix_web::rt::System::new().block_on(run()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("live: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), String> {
    let bind = std::env::var("BIND").unwrap_or_else(|_| "127.0.0.1:8080".to_owned());
    let public = std::env::var("PUBLIC_URL").unwrap_or_else(|_| format!("http://{bind}"));
    let webhook = Url::parse(&public)
        .and_then(|base| base.join(DEFAULT_PATH))
        .map_err(|e| format!("PUBLIC_URL: {e}"))?;
    let base = std::env::var("REPLICATE_API_BASE_URL")
        .ok()
        .filter(|b| !b.trim().is_empty())
        .unwrap_or_else(|| DEFAULT_API.to_owned());
    // The simulator asks for no token unless started with one; Replicate's API always does
    // (the client then says which variable to set).
    let token = std::env::var("REPLICATE_API_TOKEN")
        .ok()
        .filter(|t| !t.trim().is_empty())
        .or_else(|| (base.trim() != DEFAULT_API).then(|| "unused-by-the-simulator".to_owned()));
    let client = Client::new(base.trim(), token).map_err(|e| e.to_string())?;
    let secret = secret(&client).await?;
    let store = std::env::var(ENV_STORE)
        .ok()
        .filter(|s| !s.trim().is_empty())
        .unwrap_or_else(|| "memory".to_owned());
    let store = StoreUrl::parse(&store).map_err(|e| format!("{ENV_STORE}: {e}"))?;
    let config = WebhookConfig::new(secret)
        .store_url(&store)
        .map_err(|e| format!("{ENV_STORE}: {e}"))?
        .live(LiveOptions::default())
        .map_err(|e| e.to_string())?;
    let live = config.live_channel().expect("turned on above");
    let webhooks = config.build().map_err(|e| e.to_string())?;
    let state = web::Data::new(AppState {
        client,
        live,
        webhook,
    });
    let server = HttpServer::new(move || {
        App::new()
            .app_data(state.clone())
            .configure(webhooks.configure())
            .route("/", web::get().to(page))
            .route("/live.js", web::get().to(script))
            .route("/live.css", web::get().to(style))
            .route("/api/predictions", web::post().to(create))
    })
    .bind(&bind)
    .map_err(|e| format!("cannot listen on {bind}: {e}"))?
    .run();
    eprintln!(
        "live: listening on http://{bind}/ (store {})",
        store.redacted()
    );
    server.await.map_err(|e| e.to_string())
}

async fn secret(client: &Client) -> Result<Secret, String> {
    if let Ok(text) = std::env::var(ENV_SECRET)
        && !text.trim().is_empty()
    {
        let mut secrets = parse_secrets(&text).map_err(|e| e.to_string())?;
        return Ok(secrets.remove(0));
    }
    client
        .default_secret()
        .await
        .map_err(|e| format!("{ENV_SECRET} is not set and the API's default secret: {e}"))
}

fn asset(content_type: &'static str, body: &'static str) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, content_type))
        .insert_header((header::CONTENT_SECURITY_POLICY, CSP))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((header::REFERRER_POLICY, "no-referrer"))
        .body(body)
}

async fn page() -> HttpResponse {
    asset("text/html; charset=utf-8", PAGE)
}

async fn script() -> HttpResponse {
    asset("text/javascript; charset=utf-8", SCRIPT)
}

async fn style() -> HttpResponse {
    asset("text/css; charset=utf-8", STYLE)
}

/// Creates the prediction and answers with its id and events URL.
///
/// Cross-site request forgery: a JSON content type cannot be sent cross-origin without a CORS
/// preflight this app never grants, and an `Origin` other than this host is refused.
async fn create(req: HttpRequest, body: web::Bytes, state: web::Data<AppState>) -> HttpResponse {
    let json = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !json {
        return HttpResponse::UnsupportedMediaType().body("send application/json");
    }
    if let Some(origin) = req.headers().get(header::ORIGIN) {
        let host = req.connection_info().host().to_owned();
        let same = origin
            .to_str()
            .ok()
            .and_then(|o| Url::parse(o).ok())
            .is_some_and(|o| {
                o.host_str().map(|h| (h, o.port())).is_some_and(|(h, p)| {
                    let ours = p.map_or_else(|| h.to_owned(), |p| format!("{h}:{p}"));
                    ours == host
                })
            });
        if !same {
            return HttpResponse::Forbidden().body("cross-origin request refused");
        }
    }
    let new: NewPrediction = match serde_json::from_slice(&body) {
        Ok(new) => new,
        Err(e) => return HttpResponse::BadRequest().body(format!("invalid JSON: {e}")),
    };
    if new.model.split('/').count() != 2 || new.model.split('/').any(str::is_empty) {
        return HttpResponse::BadRequest().body("model must be owner/name");
    }
    let request = CreatePrediction::model(&new.model, new.input).webhook(
        state.webhook.clone(),
        [Event::Start, Event::Output, Event::Logs, Event::Completed],
    );
    match state.client.create(&request).await {
        Ok(created) => HttpResponse::Created()
            .content_type(ContentType::json())
            .body(
                serde_json::json!({
                    "id": created.id,
                    "events": state.live.events_url(&created.id),
                })
                .to_string(),
            ),
        Err(e) => {
            tracing::warn!(error = %e, "creating the prediction failed");
            HttpResponse::BadGateway().body(format!("creating the prediction failed: {e}"))
        }
    }
}
