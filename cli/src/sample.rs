//! Realistic sample predictions for `send`.

use replicate_webhook::testkit::{sample_prediction, sample_training};
use replicate_webhook::{Event, Status};
use replicate_webhook_cli::simulator::models::{HELLO_WORLD, HELLO_WORLD_VERSION};
use serde_json::{Value, json};

use crate::SampleStatus;

impl SampleStatus {
    pub(crate) fn status(self) -> Status {
        match self {
            Self::Starting => Status::Starting,
            Self::Processing => Status::Processing,
            Self::Succeeded => Status::Succeeded,
            Self::Failed => Status::Failed,
            Self::Canceled => Status::Canceled,
        }
    }
}

/// A prediction of `model` in `status`, as Replicate would post it to `webhook`.
pub(crate) fn prediction(id: &str, model: &str, status: SampleStatus, webhook: &url::Url) -> Value {
    let hello = model == HELLO_WORLD;
    let output = match status {
        SampleStatus::Starting | SampleStatus::Failed => Value::Null,
        SampleStatus::Processing | SampleStatus::Canceled if hello => json!("hello"),
        SampleStatus::Succeeded if hello => json!("hello Alice"),
        SampleStatus::Processing | SampleStatus::Canceled => {
            json!([format!("https://replicate.delivery/sample/{id}/out-0.webp")])
        }
        SampleStatus::Succeeded => json!([
            format!("https://replicate.delivery/sample/{id}/out-0.webp"),
            format!("https://replicate.delivery/sample/{id}/out-1.webp"),
        ]),
    };
    let mut body = sample_prediction(id, model, status.status().as_str(), output);
    if hello {
        body["input"] = json!({"text": "Alice"});
        body["version"] = json!(HELLO_WORLD_VERSION);
    }
    body["webhook"] = json!(webhook.as_str());
    body["webhook_events_filter"] = json!(Event::ALL);
    body
}

/// The trainer `send --training` uses when `--model` is not given.
pub(crate) const TRAINER: &str = "ostris/flux-dev-lora-trainer";

/// A training of the trainer `model` in `status`, as Replicate would post it to `webhook`.
pub(crate) fn training(id: &str, model: &str, status: SampleStatus, webhook: &url::Url) -> Value {
    let mut body = sample_training(id, model, status.status().as_str());
    body["webhook"] = json!(webhook.as_str());
    body["webhook_events_filter"] = json!(Event::ALL);
    body
}
