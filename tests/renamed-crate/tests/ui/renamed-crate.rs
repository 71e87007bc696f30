// The runtime renamed in Cargo.toml (`webhooks = { package = "replicate-webhook", .. }`):
// `crate = "..."` points generated code at it.
use webhooks::{HandlerError, Prediction, replicate_model, replicate_webhook};

#[replicate_webhook(model = "acme/echo", events = ["start", "completed"], crate = "webhooks")]
mod echo {
    use super::{HandlerError, Prediction};

    pub async fn on_start(_p: Prediction) -> Result<(), HandlerError> {
        Ok(())
    }

    pub async fn on_succeeded(_p: Prediction<String>) -> Result<(), HandlerError> {
        Ok(())
    }
}

// Relative to trybuild's crate (its `CARGO_MANIFEST_DIR`), where `tests/ui.rs` copies the fixture.
#[replicate_model(schema = "fixtures/schemas/replicate__hello-world.json", crate = "webhooks")]
mod hello {}

fn main() {
    assert_eq!(echo::WEBHOOK.events_filter(), ["start", "completed"]);
    let input = hello::Input::new("Alice");
    assert_eq!(input.text, "Alice");
}
