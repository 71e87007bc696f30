use replicate_webhook::{HandlerError, Prediction, replicate_webhook};

pub struct Db;

#[replicate_webhook(model = "acme/echo")]
mod echo {
    use super::*;

    pub async fn on_succeeded(_p: Prediction, _db: Db) -> Result<(), HandlerError> {
        Ok(())
    }
}

fn main() {}
