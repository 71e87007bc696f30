use replicate_webhook::{HandlerError, Prediction, replicate_webhook};

#[replicate_webhook(model = "acme/echo")]
mod echo {
    use super::*;

    pub async unsafe fn on_succeeded(_p: Prediction) -> Result<(), HandlerError> {
        Ok(())
    }
}

fn main() {}
