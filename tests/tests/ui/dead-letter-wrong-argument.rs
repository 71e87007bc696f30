use replicate_webhook::replicate_webhook;

#[replicate_webhook(model = "acme/echo", inbox = true)]
mod echo {
    use replicate_webhook::{HandlerError, Prediction};

    pub async fn on_succeeded(_p: Prediction) -> Result<(), HandlerError> {
        Ok(())
    }

    pub async fn on_dead(_p: Prediction) -> Result<(), HandlerError> {
        Ok(())
    }
}

fn main() {}
