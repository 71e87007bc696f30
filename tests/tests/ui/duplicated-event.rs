use replicate_webhook::{HandlerError, Prediction, replicate_webhook};

#[replicate_webhook(model = "acme/echo", events = ["completed", "start", "completed"])]
mod echo {
    use super::*;

    pub async fn on_start(_p: Prediction) -> Result<(), HandlerError> {
        Ok(())
    }

    pub async fn on_succeeded(_p: Prediction) -> Result<(), HandlerError> {
        Ok(())
    }
}

fn main() {}
