use replicate_webhook::{HandlerError, Prediction, replicate_webhook};

#[replicate_webhook(model = "acme/echo", events = ["start", "completed"])]
mod echo {
    use super::*;

    pub async fn on_succeeded(_p: Prediction) -> Result<(), HandlerError> {
        Ok(())
    }

    pub async fn on_output(_p: Prediction) -> Result<(), HandlerError> {
        Ok(())
    }
}

fn main() {}
