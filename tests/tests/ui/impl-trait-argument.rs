use replicate_webhook::{HandlerError, replicate_webhook};

#[replicate_webhook(model = "acme/echo")]
mod echo {
    use super::*;

    pub async fn on_succeeded(_p: impl serde::de::DeserializeOwned) -> Result<(), HandlerError> {
        Ok(())
    }
}

fn main() {}
