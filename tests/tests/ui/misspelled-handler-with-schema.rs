use replicate_webhook::{HandlerError, Prediction, replicate_webhook};

// Relative to trybuild's crate (its `CARGO_MANIFEST_DIR`), where `tests/ui.rs` copies the fixture.
#[replicate_webhook(
    model = "replicate/hello-world",
    schema = "fixtures/schemas/replicate__hello-world.json"
)]
mod hello {
    use super::*;

    // The one mistake: the schema types and `WEBHOOK` are still generated, so nothing else
    // is reported.
    pub async fn on_succeded(p: Prediction<Output, Input>) -> Result<(), HandlerError> {
        let _ = p.input.text;
        Ok(())
    }

    pub async fn on_failed(p: Prediction<Output, Input>) -> Result<(), HandlerError> {
        let _ = p.output;
        Ok(())
    }
}

fn main() {
    let _ = hello::WEBHOOK.events_filter();
    let _ = hello::Input::new("Alice");
}
