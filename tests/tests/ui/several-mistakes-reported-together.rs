use replicate_webhook::{HandlerError, Prediction, replicate_webhook};

#[replicate_webhook(model = "acme/echo", events = ["start", "done"], retries = 3, debug)]
mod echo {
    use super::*;

    pub fn on_start(_p: Prediction) -> Result<(), HandlerError> {
        Ok(())
    }

    pub async fn on_sucess(_p: Prediction) -> Result<(), HandlerError> {
        Ok(())
    }
}

fn main() {}
