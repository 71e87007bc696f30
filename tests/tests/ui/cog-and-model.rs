// A Cog container's webhooks name no model: a Cog module cannot also name one.
use replicate_webhook::replicate_webhook;

#[replicate_webhook(cog, model = "acme/upscaler", path = "/webhooks/cog")]
mod upscaler {
    use replicate_webhook::{HandlerError, Prediction};

    async fn on_succeeded(_p: Prediction) -> Result<(), HandlerError> {
        Ok(())
    }
}

fn main() {}
