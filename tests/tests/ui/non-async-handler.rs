use replicate_webhook::{HandlerError, Prediction, replicate_webhook};

#[replicate_webhook(model = "acme/echo")]
mod echo {
    use super::*;

    pub fn on_succeeded(_p: Prediction) -> Result<(), HandlerError> {
        Ok(())
    }

    pub fn on_failed(_p: Prediction) -> Result<(), HandlerError> {
        Ok(())
    }
}

fn main() {}
