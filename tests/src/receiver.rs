//! What the test receiver binaries (`slow_receiver`, `inbox_receiver`) share: settings from the
//! environment and serving a configuration on `BIND` until killed.

use std::process::ExitCode;

use actix_web::{App, HttpServer};
use replicate_webhook::WebhookConfig;

/// `var` as a number of milliseconds (or any count), `default` when unset or not a number.
pub fn env_number(var: &str, default: u64) -> u64 {
    std::env::var(var)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Serves `config` on `BIND` (default `127.0.0.1:8080`) with two workers, saying
/// `<name>: listening on …` on stderr once bound, as the process harness waits for.
pub fn serve(name: &str, config: Result<WebhookConfig, impl std::fmt::Display>) -> ExitCode {
    let config = match config {
        Ok(config) => config,
        Err(e) => {
            eprintln!("{name}: {e}");
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
        eprintln!("{name}: listening on http://{bind}/webhooks/replicate");
        server.run().await
    });
    match served {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{name}: {e}");
            ExitCode::FAILURE
        }
    }
}
