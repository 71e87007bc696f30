//! A receiver for the durability tests: `on_succeeded` prints `started <id>`, waits
//! `HANDLER_DELAY_MS` when the output is `"slow"`, then prints `finished <id>`. The tests kill it
//! with SIGKILL while a handler waits. Reads the usual `REPLICATE_WEBHOOK_SECRET` and
//! `REPLICATE_WEBHOOK_STORE`, `LEASE_MS` for the claim lease, and `BIND`.

use std::process::ExitCode;
use std::time::Duration;

use replicate_webhook::{WebhookConfig, replicate_webhook};
use replicate_webhook_tests::receiver::{env_number, serve};

#[replicate_webhook(model = "*", events = "completed")]
mod any_model {
    use std::time::Duration;

    use replicate_webhook::{HandlerError, Prediction};

    async fn on_succeeded(p: Prediction) -> Result<(), HandlerError> {
        println!("started {}", p.id);
        if p.output.as_ref().and_then(|o| o.as_str()) == Some("slow") {
            tokio::time::sleep(Duration::from_millis(
                replicate_webhook_tests::receiver::env_number("HANDLER_DELAY_MS", 0),
            ))
            .await;
        }
        println!("finished {}", p.id);
        Ok(())
    }
}

fn main() -> ExitCode {
    let config = WebhookConfig::from_env()
        .map(|c| c.lease(Duration::from_millis(env_number("LEASE_MS", 30_000))));
    serve("slow-receiver", config)
}
