//! A receiver in inbox mode for the crash and multi-instance tests: `on_succeeded` prints
//! `started <id>`, waits `HANDLER_DELAY_MS` when the output is `"slow"`, then prints
//! `finished <id>`. Reads
//! `REPLICATE_WEBHOOK_SECRET`, `REPLICATE_WEBHOOK_INBOX`, `VISIBILITY_MS` (the visibility
//! timeout), `CONCURRENCY` and `BIND`. The tests kill it with SIGKILL while handlers wait.

use std::io::Write as _;
use std::process::ExitCode;
use std::time::Duration;

use replicate_webhook::inbox::InboxOptions;
use replicate_webhook::{WebhookConfig, replicate_webhook};
use replicate_webhook_tests::receiver::{env_number, serve};

#[replicate_webhook(model = "*", events = "completed")]
mod any_model {
    use std::time::Duration;

    use replicate_webhook::{HandlerError, Prediction};

    async fn on_succeeded(p: Prediction) -> Result<(), HandlerError> {
        super::say(&format!("started {}", p.id));
        if p.output.as_ref().and_then(|o| o.as_str()) == Some("slow") {
            tokio::time::sleep(Duration::from_millis(
                replicate_webhook_tests::receiver::env_number("HANDLER_DELAY_MS", 0),
            ))
            .await;
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

fn main() -> ExitCode {
    let options = InboxOptions {
        visibility: Duration::from_millis(env_number("VISIBILITY_MS", 30_000)),
        concurrency: usize::try_from(env_number("CONCURRENCY", 64)).unwrap_or(64),
        poll: Duration::from_millis(50),
        ..InboxOptions::default()
    };
    serve(
        "inbox-receiver",
        WebhookConfig::from_env().map(|c| c.inbox_options(options)),
    )
}
