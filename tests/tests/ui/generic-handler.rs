use replicate_webhook::{HandlerError, Prediction, replicate_webhook};

#[replicate_webhook(model = "acme/echo")]
mod echo {
    use super::*;

    pub async fn on_succeeded<O>(_p: Prediction<O>) -> Result<(), HandlerError> {
        Ok(())
    }
}

fn main() {}
