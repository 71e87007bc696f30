use replicate_webhook::{Prediction, replicate_webhook};

#[replicate_webhook(model = "acme/echo")]
mod echo {
    use super::*;

    pub async fn on_succeeded(p: Prediction) -> Option<String> {
        Some(p.id)
    }
}

fn main() {}
