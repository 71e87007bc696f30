//! What a create sends: the target, the input, the webhook and the `Prefer`/`Cancel-After` options.

use std::time::Duration;

use reqwest::header::HeaderValue;
use serde::Serialize;
use url::Url;

#[cfg(doc)]
use super::Client;
use super::ClientError;
use crate::prediction::Event;
use crate::registry::WebhookSpec;

/// Where a prediction runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// `POST /predictions` with `version` = `{id}`, `owner/name:{id}` or `owner/name`.
    Version(String),
    /// `POST /models/{owner}/{name}/predictions` (official models).
    Model {
        /// The model owner.
        owner: String,
        /// The model name.
        name: String,
    },
    /// `POST /deployments/{owner}/{name}/predictions`.
    Deployment {
        /// The deployment owner.
        owner: String,
        /// The deployment name.
        name: String,
    },
}

pub(super) fn split_slug(slug: &str) -> (String, String) {
    match slug.split_once('/') {
        Some((owner, name)) => (owner.to_owned(), name.to_owned()),
        None => (String::new(), slug.to_owned()),
    }
}

/// A prediction to create. `I` is the input: any `Serialize` type (the generated `Input` of a
/// module with a schema, a struct of your own, or `serde_json::Value`).
#[derive(Debug, Clone)]
pub struct CreatePrediction<I> {
    target: Target,
    input: I,
    webhook: Option<WebhookTarget>,
    events: Option<Vec<Event>>,
    pub(super) wait: Option<Wait>,
    pub(super) cancel_after: Option<String>,
}

/// `Prefer: wait` or `Prefer: wait=n`.
#[derive(Debug, Clone, Copy)]
pub(super) enum Wait {
    Default,
    Seconds(u64),
}

#[derive(Debug, Clone)]
enum WebhookTarget {
    Url(Url),
    Spec(WebhookSpec),
}

impl<I: Serialize> CreatePrediction<I> {
    /// A prediction of a model version (`{id}`, `owner/name:{id}`, or `owner/name` for official
    /// models): `POST /predictions`.
    pub fn version(version: impl Into<String>, input: I) -> Self {
        Self::new(Target::Version(version.into()), input)
    }

    /// A prediction of an official model `owner/name`: `POST /models/{owner}/{name}/predictions`.
    pub fn model(model: &str, input: I) -> Self {
        let (owner, name) = split_slug(model);
        Self::new(Target::Model { owner, name }, input)
    }

    /// A prediction on a deployment `owner/name`: `POST /deployments/{owner}/{name}/predictions`.
    pub fn deployment(deployment: &str, input: I) -> Self {
        let (owner, name) = split_slug(deployment);
        Self::new(Target::Deployment { owner, name }, input)
    }

    /// A prediction on any target.
    pub fn new(target: Target, input: I) -> Self {
        Self {
            target,
            input,
            webhook: None,
            events: None,
            wait: None,
            cancel_after: None,
        }
    }

    /// Sends webhooks to `url` (kept exactly, query string included) for `events`.
    #[must_use]
    pub fn webhook(mut self, url: Url, events: impl IntoIterator<Item = Event>) -> Self {
        self.webhook = Some(WebhookTarget::Url(url));
        self.events = Some(events.into_iter().collect());
        self
    }

    /// Sends webhooks to the route of a handler module, for the events it subscribes to. The URL
    /// is the client's [`Client::webhook_base`] joined with the module's path.
    #[must_use]
    pub fn webhook_spec(mut self, spec: &WebhookSpec) -> Self {
        self.webhook = Some(WebhookTarget::Spec(*spec));
        self.events = Some(spec.events.to_vec());
        self
    }

    /// Overrides `webhook_events_filter`.
    #[must_use]
    pub fn events(mut self, events: impl IntoIterator<Item = Event>) -> Self {
        self.events = Some(events.into_iter().collect());
        self
    }

    /// Sends `Prefer: wait` (`None`: the API's default of 60 s) or `Prefer: wait=n` (1 to 60 s):
    /// the call returns when the prediction finished or the time is up.
    #[must_use]
    pub fn wait(mut self, seconds: Option<u64>) -> Self {
        self.wait = Some(seconds.map_or(Wait::Default, Wait::Seconds));
        self
    }

    /// Sends `Cancel-After`: the prediction is canceled automatically `after` its creation, in
    /// whole seconds (at least 1; Replicate itself refuses less than 5 s).
    #[must_use]
    pub fn cancel_after(mut self, after: Duration) -> Self {
        self.cancel_after = Some(format!("{}s", after.as_secs().max(1)));
        self
    }

    /// Sends `Cancel-After` with a duration in Replicate's syntax, e.g. `90s`, `5m`, `1h30m`.
    #[must_use]
    pub fn cancel_after_text(mut self, after: impl Into<String>) -> Self {
        self.cancel_after = Some(after.into());
        self
    }

    /// The target.
    pub fn target(&self) -> &Target {
        &self.target
    }

    /// The API path; owner and name must be plain path segments (`a/../../x` would post
    /// elsewhere).
    pub(super) fn path(&self) -> Result<String, ClientError> {
        let (kind, owner, name) = match &self.target {
            Target::Version(_) => return Ok("predictions".to_owned()),
            Target::Model { owner, name } => ("models", owner, name),
            Target::Deployment { owner, name } => ("deployments", owner, name),
        };
        let (owner, name) = (segment(owner)?, segment(name)?);
        Ok(format!("{kind}/{owner}/{name}/predictions"))
    }

    pub(super) fn body(
        &self,
        webhook_base: Option<&Url>,
    ) -> Result<serde_json::Value, ClientError> {
        let input = serde_json::to_value(&self.input)
            .map_err(|e| ClientError::Decode(format!("the input does not serialize: {e}")))?;
        let mut body = serde_json::Map::new();
        if let Target::Version(version) = &self.target {
            body.insert("version".into(), version.clone().into());
        }
        body.insert("input".into(), input);
        match &self.webhook {
            None => {}
            Some(WebhookTarget::Url(url)) => {
                body.insert("webhook".into(), url.as_str().into());
            }
            Some(WebhookTarget::Spec(spec)) => {
                let base = webhook_base.ok_or(ClientError::NoWebhookBase)?;
                body.insert("webhook".into(), spec.url(base).as_str().into());
            }
        }
        if let Some(events) = &self.events {
            let events: Vec<&str> = events.iter().map(|e| e.as_str()).collect();
            body.insert("webhook_events_filter".into(), events.into());
        }
        Ok(serde_json::Value::Object(body))
    }
}

pub(super) fn header_value(text: &str) -> Result<HeaderValue, ClientError> {
    HeaderValue::from_str(text).map_err(|_| ClientError::InvalidUrl(format!("bad header {text:?}")))
}

/// A path segment: refuses anything that would change the path.
pub(super) fn segment(text: &str) -> Result<&str, ClientError> {
    replicate_webhook_core::is_name_part(text)
        .then_some(text)
        .ok_or_else(|| ClientError::InvalidUrl(format!("`{text}` is not a valid id or name")))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPEC: WebhookSpec = WebhookSpec {
        model: "replicate/hello-world",
        path: "/webhooks/replicate",
        events: &[Event::Start, Event::Completed],
    };

    #[test]
    fn bodies_per_target() {
        let input = serde_json::json!({"text": "Alice"});
        let by_version = CreatePrediction::version("abc", &input);
        assert_eq!(by_version.path().unwrap(), "predictions");
        assert_eq!(
            by_version.body(None).unwrap(),
            serde_json::json!({"version": "abc", "input": {"text": "Alice"}})
        );
        let by_model = CreatePrediction::model("replicate/hello-world", &input);
        assert_eq!(
            by_model.path().unwrap(),
            "models/replicate/hello-world/predictions"
        );
        assert_eq!(
            by_model.body(None).unwrap(),
            serde_json::json!({"input": {"text": "Alice"}})
        );
        let by_deployment = CreatePrediction::deployment("acme/prod", &input);
        assert_eq!(
            by_deployment.path().unwrap(),
            "deployments/acme/prod/predictions"
        );
        for slug in ["acme", "acme/prod/../../webhooks", "acme/prod?x=1", "/prod"] {
            for request in [
                CreatePrediction::model(slug, &input),
                CreatePrediction::deployment(slug, &input),
            ] {
                let path = request.path();
                assert!(matches!(path, Err(ClientError::InvalidUrl(_))), "{slug}");
            }
        }
    }

    #[test]
    fn webhook_from_spec_needs_a_base() {
        let request = CreatePrediction::model("replicate/hello-world", serde_json::json!({}))
            .webhook_spec(&SPEC);
        assert!(matches!(
            request.body(None),
            Err(ClientError::NoWebhookBase)
        ));
        let base = Url::parse("https://example.com/app?customId=7").unwrap();
        let body = request.body(Some(&base)).unwrap();
        assert_eq!(
            body["webhook"],
            "https://example.com/app/webhooks/replicate?customId=7"
        );
        assert_eq!(
            body["webhook_events_filter"],
            serde_json::json!(["start", "completed"])
        );
    }

    #[test]
    fn webhook_url_is_kept_exactly() {
        let url = Url::parse("https://example.com/hook?customId=123&x=a%20b").unwrap();
        let body = CreatePrediction::version("v", 1)
            .webhook(url, [Event::Completed])
            .body(None)
            .unwrap();
        assert_eq!(
            body["webhook"],
            "https://example.com/hook?customId=123&x=a%20b"
        );
        assert_eq!(
            body["webhook_events_filter"],
            serde_json::json!(["completed"])
        );
    }

    #[test]
    fn ids_cannot_change_the_path() {
        assert!(segment("abc123").is_ok());
        for bad in ["", "..", "a/b", "a?b", "a#b", "a b"] {
            assert!(segment(bad).is_err(), "{bad}");
        }
    }
}
