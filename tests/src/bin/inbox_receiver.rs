//! A receiver in inbox mode for the crash and multi-instance tests: `on_succeeded` prints
//! `started <id>`, waits `HANDLER_DELAY_MS` when the output is `"slow"`, then prints
//! `finished <id>`. Reads
//! `REPLICATE_WEBHOOK_SECRET`, `REPLICATE_WEBHOOK_INBOX`, `VISIBILITY_MS` (the visibility
//! timeout), `CONCURRENCY` and `BIND`. The tests kill it with SIGKILL while handlers wait.

use std::io::Write as _;
use std::process::ExitCode;
use std::time::Duration;

use actix_web::{App, HttpServer};
use replicate_webhook::inbox::InboxOptions;
use replicate_webhook::{WebhookConfig, replicate_webhook};

#[replicate_webhook(model = "*", events = "completed")]
mod any_model {
    use std::time::Duration;

    use replicate_webhook::{HandlerError, Prediction};

    async fn on_succeeded(p: Prediction) -> Result<(), HandlerError> {
        super::say(&format!("started {}", p.id));
        if p.output.as_ref().and_then(|o| o.as_str()) == Some("slow") {
            tokio::time::sleep(Duration::from_millis(super::millis("HANDLER_DELAY_MS", 0))).await;
        }
        super::say(&format!("finished {}", p.id));
        Ok(())
    }
}

/// One whole line per call, flushed, so a SIGKILL never leaves half a line.
fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

fn millis(var: &str, default: u64) -> u64 {
    std::env::var(var)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() -> ExitCode {
    let options = InboxOptions {
        visibility: Duration::from_millis(millis("VISIBILITY_MS", 30_000)),
        concurrency: usize::try_from(millis("CONCURRENCY", 64)).unwrap_or(64),
        poll: Duration::from_millis(50),
        ..InboxOptions::default()
    };
    let config = match WebhookConfig::from_env() {
        Ok(config) => config.inbox_options(options),
        Err(e) => {
            eprintln!("inbox-receiver: {e}");
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
        eprintln!("inbox-receiver: listening on http://{bind}/webhooks/replicate");
        server.run().await
    });
    match served {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("inbox-receiver: {e}");
            ExitCode::FAILURE
        }
    }
}
