//! Trainings through the client: create (with a handler module's webhook), get and cancel.

use reqwest::Method;
use reqwest::header::HeaderMap;
use serde::Serialize;

use super::{Client, ClientError, CreatePrediction, segment, split_slug};
use crate::prediction::Event;
use crate::registry::WebhookSpec;
use crate::training::Training;

/// A training to create: `POST /models/{owner}/{name}/versions/{version}/trainings` with the
/// `destination` model that receives the new version.
#[derive(Debug, Clone)]
pub struct CreateTraining<I> {
    /// The trainer, the input and the webhook: what a prediction of the trainer would carry.
    request: CreatePrediction<I>,
    owner: String,
    name: String,
    version: String,
    destination: String,
}

impl<I: Serialize> CreateTraining<I> {
    /// Trains version `version` of the trainer `model` (`owner/name`) with `input`; the result
    /// is pushed to `destination` (`owner/name`, a model you own).
    pub fn new(model: &str, version: &str, destination: &str, input: I) -> Self {
        let (owner, name) = split_slug(model);
        Self {
            request: CreatePrediction::model(model, input),
            owner,
            name,
            version: version.to_owned(),
            destination: destination.to_owned(),
        }
    }

    /// Sends webhooks to `url` (kept exactly) for `events`.
    #[must_use]
    pub fn webhook(mut self, url: url::Url, events: impl IntoIterator<Item = Event>) -> Self {
        self.request = self.request.webhook(url, events);
        self
    }

    /// Sends webhooks to the route of a `training = ` handler module, for the events it
    /// subscribes to (the URL is the client's [`Client::webhook_base`] with the module's path).
    #[must_use]
    pub fn webhook_spec(mut self, spec: &WebhookSpec) -> Self {
        self.request = self.request.webhook_spec(spec);
        self
    }

    /// Overrides `webhook_events_filter`.
    #[must_use]
    pub fn events(mut self, events: impl IntoIterator<Item = Event>) -> Self {
        self.request = self.request.events(events);
        self
    }

    fn path(&self) -> Result<String, ClientError> {
        let (owner, name) = (segment(&self.owner)?, segment(&self.name)?);
        let version = segment(&self.version)?;
        Ok(format!(
            "models/{owner}/{name}/versions/{version}/trainings"
        ))
    }

    fn body(&self, webhook_base: Option<&url::Url>) -> Result<serde_json::Value, ClientError> {
        let mut body = self.request.body(webhook_base)?;
        body["destination"] = self.destination.clone().into();
        Ok(body)
    }
}

impl Client {
    /// Creates a training.
    pub async fn create_training<I: Serialize>(
        &self,
        request: &CreateTraining<I>,
    ) -> Result<Training, ClientError> {
        let body = request.body(self.webhook_base.as_ref())?;
        let url = self.url(&request.path()?)?;
        let retry_5xx = self.retry.retry_creates_on_server_error;
        self.send(Method::POST, url, HeaderMap::new(), Some(&body), retry_5xx)
            .await
    }

    /// `GET /trainings/{id}`.
    pub async fn get_training(&self, id: &str) -> Result<Training, ClientError> {
        let path = format!("trainings/{}", segment(id)?);
        self.call(Method::GET, &path).await
    }

    /// `POST /trainings/{id}/cancel`.
    pub async fn cancel_training(&self, id: &str) -> Result<Training, ClientError> {
        let path = format!("trainings/{}/cancel", segment(id)?);
        self.call(Method::POST, &path).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPEC: WebhookSpec = WebhookSpec {
        model: "ostris/flux-dev-lora-trainer",
        path: "/webhooks/trainings",
        events: &[Event::Completed],
    };

    #[test]
    fn the_body_has_destination_input_and_the_modules_webhook() {
        let request = CreateTraining::new(
            "ostris/flux-dev-lora-trainer",
            "abc123",
            "me/my-lora",
            serde_json::json!({"steps": 1000}),
        )
        .webhook_spec(&SPEC);
        let base = url::Url::parse("https://example.com").unwrap();
        assert_eq!(
            request.body(Some(&base)).unwrap(),
            serde_json::json!({
                "destination": "me/my-lora",
                "input": {"steps": 1000},
                "webhook": "https://example.com/webhooks/trainings",
                "webhook_events_filter": ["completed"],
            })
        );
        assert_eq!(
            request.path().unwrap(),
            "models/ostris/flux-dev-lora-trainer/versions/abc123/trainings"
        );
        assert!(matches!(
            request.body(None),
            Err(ClientError::NoWebhookBase)
        ));
        let sneaky = CreateTraining::new("a/b", "../../x", "me/m", ());
        assert!(matches!(sneaky.path(), Err(ClientError::InvalidUrl(_))));
    }
}
