//! `black-forest-labs/flux-schnell` end to end, typed from the model's published schema.
//!
//! ```text
//! cargo run --bin flux                          # receive flux-schnell webhooks on BIND
//! cargo run --bin flux -- "a fox in the snow"   # also create one prediction, wait for it, exit
//! ```
//!
//! `Input`, `Output = Vec<Url>` and the enums (`AspectRatio`, `OutputFormat`, `Megapixels`) are
//! generated at compile time from `schemas/black-forest-labs/flux-schnell.json`, the file
//! `replicate-webhook schema pull black-forest-labs/flux-schnell --out schemas` writes.
//!
//! Creating a prediction uses `REPLICATE_API_TOKEN` and `REPLICATE_API_BASE_URL` (e.g. the local
//! simulator's `http://127.0.0.1:5555/v1`). The webhook URL and events come from the handler
//! module itself (`flux::WEBHOOK`), joined to `PUBLIC_URL` (default `http://BIND`). The signing
//! secret is `REPLICATE_WEBHOOK_SECRET`, else the account's default secret fetched with the token.

use std::net::TcpListener;
use std::process::ExitCode;
use std::time::Duration;

use actix_web::{App, HttpServer, web};
use replicate_webhook::client::{Client, CreatePrediction};
use replicate_webhook::{Secret, Url, WebhookConfig, parse_secrets, replicate_webhook};
use tokio::sync::mpsc;

/// What the handlers report back to `main` when it waits for its own prediction.
struct Finished(mpsc::UnboundedSender<Result<(), String>>);

#[replicate_webhook(
    model = "black-forest-labs/flux-schnell",
    events = ["start", "completed"],
    schema = "schemas/black-forest-labs/flux-schnell.json",
)]
mod flux {
    use actix_web::web;
    use replicate_webhook::{HandlerError, Prediction};

    use super::Finished;

    async fn on_start(p: Prediction<Output, Input>) -> Result<(), HandlerError> {
        let Input {
            prompt,
            aspect_ratio,
            num_outputs,
            ..
        } = &p.input;
        println!(
            "on_start id={} prompt={prompt:?} aspect_ratio={aspect_ratio} num_outputs={num_outputs}",
            p.id
        );
        Ok(())
    }

    async fn on_succeeded(
        p: Prediction<Output, Input>,
        done: web::Data<Finished>,
    ) -> Result<(), HandlerError> {
        let images = p.output.unwrap_or_default();
        let first = images
            .first()
            .map(replicate_webhook::Url::as_str)
            .unwrap_or_default();
        println!(
            "on_succeeded id={} images={} first={first}",
            p.id,
            images.len()
        );
        let _ = done.0.send(Ok(()));
        Ok(())
    }

    async fn on_failed(
        p: Prediction<Output, Input>,
        done: web::Data<Finished>,
    ) -> Result<(), HandlerError> {
        let error = p.error.unwrap_or_default();
        println!("on_failed id={} error={error:?}", p.id);
        let _ = done.0.send(Err(error));
        Ok(())
    }

    async fn on_canceled(
        p: Prediction<Output, Input>,
        done: web::Data<Finished>,
    ) -> Result<(), HandlerError> {
        println!("on_canceled id={}", p.id);
        let _ = done.0.send(Err("canceled".to_owned()));
        Ok(())
    }
}

fn main() -> ExitCode {
    let prompt = std::env::args().nth(1);
    match actix_web::rt::System::new().block_on(run(prompt)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("flux: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(prompt: Option<String>) -> Result<(), String> {
    let bind = std::env::var("BIND").unwrap_or_else(|_| "127.0.0.1:8080".to_owned());
    let client = match &prompt {
        Some(_) => Some(Client::from_env().map_err(|e| e.to_string())?),
        None => None,
    };
    let secret = secret(client.as_ref()).await?;
    let (tx, mut rx) = mpsc::unbounded_channel();
    let finished = web::Data::new(Finished(tx));
    let webhooks = WebhookConfig::new(secret)
        .build()
        .map_err(|e| e.to_string())?;
    let listener = TcpListener::bind(&bind).map_err(|e| format!("cannot listen on {bind}: {e}"))?;
    let server = HttpServer::new(move || {
        App::new()
            .app_data(finished.clone())
            .configure(webhooks.configure())
    })
    .workers(1)
    // Keep-alive off: see README, "Serving it".
    .keep_alive(actix_web::http::KeepAlive::Disabled)
    .listen(listener)
    .map_err(|e| e.to_string())?
    .run();
    eprintln!("flux: listening on http://{bind}{}", flux::WEBHOOK.path);

    let (Some(prompt), Some(client)) = (prompt, client) else {
        return server.await.map_err(|e| e.to_string());
    };
    let handle = server.handle();
    actix_web::rt::spawn(server);

    let public = std::env::var("PUBLIC_URL").unwrap_or_else(|_| format!("http://{bind}"));
    let public = Url::parse(&public).map_err(|e| format!("PUBLIC_URL: {e}"))?;
    let input = flux::Input {
        aspect_ratio: flux::AspectRatio::V16_9,
        num_outputs: 2,
        output_format: flux::OutputFormat::Png,
        ..flux::Input::new(prompt)
    };
    let request = CreatePrediction::model(flux::WEBHOOK.model, input).webhook_spec(&flux::WEBHOOK);
    let created = client
        .webhook_base(public)
        .create_as::<flux::Output, flux::Input, _>(&request)
        .await;
    let created = created.map_err(|e| format!("creating the prediction: {e}"))?;
    eprintln!("flux: created {} ({})", created.id, created.status);

    let outcome = tokio::time::timeout(Duration::from_mins(5), rx.recv()).await;
    handle.stop(true).await;
    match outcome {
        Ok(Some(result)) => result,
        Ok(None) => Err("the receiver stopped".to_owned()),
        Err(_) => Err(format!(
            "no terminal webhook for {} within 5 minutes",
            created.id
        )),
    }
}

async fn secret(client: Option<&Client>) -> Result<Secret, String> {
    if let Ok(text) = std::env::var(replicate_webhook::ENV_SECRET) {
        let mut secrets = parse_secrets(&text).map_err(|e| e.to_string())?;
        return Ok(secrets.remove(0));
    }
    if let Some(client) = client {
        return client
            .default_secret()
            .await
            .map_err(|e| format!("fetching the webhook secret: {e}"));
    }
    let secret = Secret::generate();
    eprintln!(
        "flux: REPLICATE_WEBHOOK_SECRET is not set; development secret: {}",
        secret.expose()
    );
    Ok(secret)
}
