//! A small client for the Replicate HTTP API (feature `client`): create, get, list and cancel
//! predictions, fetch the default webhook signing secret and model schemas.
//!
//! The webhook of a created prediction can come from a handler module's [`WebhookSpec`] (the
//! `WEBHOOK` constant the attribute emits), so the receiver route and the events Replicate sends
//! have one source of truth:
//!
//! ```no_run
//! # async fn demo() -> Result<(), replicate_webhook::client::ClientError> {
//! use replicate_webhook::client::{Client, CreatePrediction};
//! use replicate_webhook::{Event, Url, WebhookSpec};
//!
//! const WEBHOOK: WebhookSpec = WebhookSpec {
//!     model: "replicate/hello-world",
//!     path: "/webhooks/replicate",
//!     events: &[Event::Start, Event::Completed],
//! };
//!
//! let client = Client::from_env()?.webhook_base(Url::parse("https://example.com").unwrap());
//! let prediction = client
//!     .create(
//!         &CreatePrediction::model("replicate/hello-world", serde_json::json!({"text": "Alice"}))
//!             .webhook_spec(&WEBHOOK),
//!     )
//!     .await?;
//! println!("{} is {}", prediction.id, prediction.status);
//! # Ok(()) }
//! ```
//!
//! Failed calls map to [`ClientError`]; `429` and `5xx` answers are retried with exponential
//! backoff (see [`RetryPolicy`]), honouring `Retry-After`. The token never appears in `Debug`
//! output or error messages.

mod error;
mod request;
mod response;
mod retry;
mod trainings;

use std::fmt;
use std::time::Duration;

use reqwest::Method;
use reqwest::header::{AUTHORIZATION, HeaderMap, HeaderValue};
use secrecy::{ExposeSecret as _, SecretString};
use serde::Serialize;
use serde::de::DeserializeOwned;
use url::Url;

pub use error::ClientError;
pub use request::{CreatePrediction, Target};
pub use response::{ModelVersion, Page};
pub use retry::RetryPolicy;
pub use trainings::CreateTraining;

pub(crate) use error::describe;
use request::{Wait, header_value, segment, split_slug};
use response::read;

use crate::prediction::Prediction;
#[cfg(doc)]
use crate::registry::WebhookSpec;
use crate::signature::Secret;

/// The environment variable holding the API token.
pub const ENV_TOKEN: &str = "REPLICATE_API_TOKEN";
/// The environment variable overriding the API base URL.
pub const ENV_BASE_URL: &str = "REPLICATE_API_BASE_URL";
/// Replicate's API base URL.
pub const DEFAULT_BASE_URL: &str = "https://api.replicate.com/v1";

/// A Replicate API client. Cheap to clone.
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    base: Url,
    token: Option<SecretString>,
    webhook_base: Option<Url>,
    retry: RetryPolicy,
    /// Set by [`crate::WebhookConfig::watching`]: created predictions are watched for the
    /// reconciler from the moment they exist.
    watcher: Option<crate::watcher::Watcher>,
    /// Set by [`Client::tenant`]: the account whose predictions this client creates.
    tenant: Option<crate::Tenant>,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("base", &redacted_url(&self.base))
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("webhook_base", &self.webhook_base.as_ref().map(Url::as_str))
            .field("retry", &self.retry)
            .field("tenant", &self.tenant.as_ref().map(crate::Tenant::name))
            .finish_non_exhaustive()
    }
}

/// A URL for display: any `user:password@` part is replaced, so credentials never reach logs.
fn redacted_url(url: &Url) -> String {
    if url.username().is_empty() && url.password().is_none() {
        return url.to_string();
    }
    let mut shown = url.clone();
    let _ = shown.set_username("redacted");
    let _ = shown.set_password(None);
    shown.to_string()
}

impl Client {
    /// A client for `base` (e.g. `https://api.replicate.com/v1`) authenticating with `token`.
    pub fn new(base: &str, token: Option<String>) -> Result<Self, ClientError> {
        let mut base = Url::parse(base).map_err(|e| ClientError::InvalidUrl(e.to_string()))?;
        if !base.path().ends_with('/') {
            let path = format!("{}/", base.path());
            base.set_path(&path);
        }
        let http = reqwest::Client::builder()
            .user_agent(concat!("replicate-webhook/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_mins(2))
            .build()
            .map_err(|e| ClientError::Transport(e.to_string()))?;
        Ok(Self {
            http,
            base,
            token: token
                .filter(|t| !t.trim().is_empty())
                .map(SecretString::from),
            webhook_base: None,
            retry: RetryPolicy::default(),
            watcher: None,
            tenant: None,
        })
    }

    /// Reads `REPLICATE_API_TOKEN` (required) and `REPLICATE_API_BASE_URL` (optional).
    pub fn from_env() -> Result<Self, ClientError> {
        let token = std::env::var(ENV_TOKEN)
            .ok()
            .filter(|t| !t.trim().is_empty())
            .ok_or(ClientError::MissingToken)?;
        let base = std::env::var(ENV_BASE_URL)
            .ok()
            .filter(|b| !b.trim().is_empty())
            .unwrap_or_else(|| DEFAULT_BASE_URL.to_owned());
        Self::new(base.trim(), Some(token))
    }

    /// The public base URL webhook specs are joined to, e.g. `https://example.com`.
    #[must_use]
    pub fn webhook_base(mut self, base: Url) -> Self {
        self.webhook_base = Some(base);
        self
    }

    /// Sets the retry policy.
    #[must_use]
    pub fn retry_policy(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// Marks this client as acting for `tenant` of a multi-account app (its token must be that
    /// tenant's): through [`crate::WebhookConfig::watching`], the predictions it creates are
    /// watched in the tenant's namespace, where its deliveries are, and the reconciler polls
    /// them with the tenant's token. [`crate::secrets::FetchedSecrets::client`] sets it.
    #[must_use]
    pub fn tenant(mut self, tenant: crate::Tenant) -> Self {
        self.tenant = Some(tenant);
        self
    }

    /// This client with another token: the same connection pool, base URL and retry policy.
    pub(crate) fn with_token(&self, token: SecretString) -> Self {
        Self {
            token: Some(token),
            ..self.clone()
        }
    }

    /// The API base URL.
    pub fn base_url(&self) -> &Url {
        &self.base
    }

    /// Creates a prediction.
    ///
    /// With [`CreatePrediction::wait`] the answer may already be terminal; otherwise it is
    /// usually `starting`.
    pub async fn create<I: Serialize>(
        &self,
        request: &CreatePrediction<I>,
    ) -> Result<Prediction, ClientError> {
        self.create_as(request).await
    }

    /// Creates a prediction and decodes the answer with typed `output` and `input`.
    pub async fn create_as<O, In, I>(
        &self,
        request: &CreatePrediction<I>,
    ) -> Result<Prediction<O, In>, ClientError>
    where
        O: DeserializeOwned,
        In: DeserializeOwned,
        I: Serialize,
    {
        let body = request.body(self.webhook_base.as_ref())?;
        let mut headers = HeaderMap::new();
        if let Some(wait) = request.wait {
            let prefer = match wait {
                Wait::Default => HeaderValue::from_static("wait"),
                Wait::Seconds(n @ 1..=60) => header_value(&format!("wait={n}"))?,
                Wait::Seconds(n) => return Err(ClientError::InvalidWait(n)),
            };
            headers.insert("prefer", prefer);
        }
        if let Some(after) = &request.cancel_after {
            headers.insert("cancel-after", header_value(after)?);
        }
        let url = self.url(&request.path()?)?;
        let retry_5xx = self.retry.retry_creates_on_server_error;
        let created: Prediction<O, In> = self
            .send(Method::POST, url, headers, Some(&body), retry_5xx)
            .await?;
        if let Some(watcher) = &self.watcher {
            // The key its deliveries are known by: the tenant's namespace for a tenant's.
            let key = match &self.tenant {
                Some(tenant) => std::borrow::Cow::Owned(crate::auth::scoped(tenant, &created.id)),
                None => std::borrow::Cow::Borrowed(created.id.as_str()),
            };
            watcher.heard(&key).await;
            watcher.monitor.expect(&key, &created.model);
        }
        Ok(created)
    }

    /// This client, with its created predictions watched by `watcher`.
    pub(crate) fn with_watcher(mut self, watcher: crate::watcher::Watcher) -> Self {
        self.watcher = Some(watcher);
        self
    }

    /// `GET /predictions/{id}`.
    pub async fn get(&self, id: &str) -> Result<Prediction, ClientError> {
        self.get_as(id).await
    }

    /// `GET /predictions/{id}` with typed `output` and `input`.
    pub async fn get_as<O: DeserializeOwned, I: DeserializeOwned>(
        &self,
        id: &str,
    ) -> Result<Prediction<O, I>, ClientError> {
        let path = format!("predictions/{}", segment(id)?);
        self.call(Method::GET, &path).await
    }

    /// `POST /predictions/{id}/cancel`.
    pub async fn cancel(&self, id: &str) -> Result<Prediction, ClientError> {
        let path = format!("predictions/{}/cancel", segment(id)?);
        self.call(Method::POST, &path).await
    }

    /// The first page of `GET /predictions` (newest first).
    pub async fn list(&self) -> Result<Page<Prediction>, ClientError> {
        self.call(Method::GET, "predictions").await
    }

    /// The page at `next` (or `previous`) of an earlier page. Only URLs on the API's own origin
    /// are followed, so the token is never sent elsewhere.
    pub async fn list_page(&self, cursor_url: &str) -> Result<Page<Prediction>, ClientError> {
        let url = Url::parse(cursor_url).map_err(|e| ClientError::InvalidUrl(e.to_string()))?;
        if url.origin() != self.base.origin() {
            return Err(ClientError::InvalidUrl(format!(
                "pagination URL {} is not on the API origin {}",
                url.origin().ascii_serialization(),
                self.base.origin().ascii_serialization()
            )));
        }
        self.send(Method::GET, url, HeaderMap::new(), None, true)
            .await
    }

    /// Every prediction, following `next` for at most `max_pages` pages.
    pub async fn list_all(&self, max_pages: usize) -> Result<Vec<Prediction>, ClientError> {
        let mut page = self.list().await?;
        let mut all = std::mem::take(&mut page.results);
        for _ in 1..max_pages {
            let Some(next) = page.next.take() else { break };
            page = self.list_page(&next).await?;
            all.append(&mut page.results);
        }
        Ok(all)
    }

    /// `GET /webhooks/default/secret`: the secret Replicate signs your webhooks with.
    pub async fn default_secret(&self) -> Result<Secret, ClientError> {
        #[derive(serde::Deserialize)]
        struct Key {
            key: Option<String>,
        }
        let key: Key = self.call(Method::GET, "webhooks/default/secret").await?;
        let key = key
            .key
            .ok_or_else(|| ClientError::Secret("the answer has no `key`".into()))?;
        Secret::parse(&key).map_err(|e| ClientError::Secret(e.to_string()))
    }

    /// The `OpenAPI` schema of a model's latest version: `GET /models/{owner}/{name}` →
    /// `latest_version.openapi_schema`.
    pub async fn model_schema(&self, model: &str) -> Result<serde_json::Value, ClientError> {
        let (owner, name) = split_slug(model);
        let path = format!("models/{}/{}", segment(&owner)?, segment(&name)?);
        let mut model: serde_json::Value = self.call(Method::GET, &path).await?;
        match model.pointer_mut("/latest_version/openapi_schema") {
            Some(schema) if schema.is_object() => Ok(schema.take()),
            _ => Err(ClientError::Decode(
                "the model has no `latest_version.openapi_schema`".into(),
            )),
        }
    }

    /// A model version with its schema: `GET /models/{owner}/{name}/versions/{id}`.
    pub async fn version(&self, model: &str, version: &str) -> Result<ModelVersion, ClientError> {
        let (owner, name) = split_slug(model);
        let (owner, name, id) = (segment(&owner)?, segment(&name)?, segment(version)?);
        let path = format!("models/{owner}/{name}/versions/{id}");
        let version: ModelVersion = self.call(Method::GET, &path).await?;
        if !version.openapi_schema.is_object() {
            return Err(ClientError::Decode(
                "the version has no `openapi_schema`".into(),
            ));
        }
        Ok(version)
    }

    /// The `OpenAPI` schema of one version.
    pub async fn version_schema(
        &self,
        model: &str,
        version: &str,
    ) -> Result<serde_json::Value, ClientError> {
        Ok(self.version(model, version).await?.openapi_schema)
    }

    fn url(&self, path: &str) -> Result<Url, ClientError> {
        self.base
            .join(path)
            .map_err(|e| ClientError::InvalidUrl(e.to_string()))
    }

    /// A call with no body or extra headers, retried on `5xx` too.
    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
    ) -> Result<T, ClientError> {
        let url = self.url(path)?;
        self.send(method, url, HeaderMap::new(), None, true).await
    }

    async fn send<T: DeserializeOwned>(
        &self,
        method: Method,
        url: Url,
        headers: HeaderMap,
        body: Option<&serde_json::Value>,
        retry_server_errors: bool,
    ) -> Result<T, ClientError> {
        let token = self.token.as_ref().ok_or(ClientError::MissingToken)?;
        let mut auth = header_value(&format!("Bearer {}", token.expose_secret()))
            .map_err(|_| ClientError::InvalidUrl("the API token is not a valid header".into()))?;
        auth.set_sensitive(true);
        let mut attempt = 0u32;
        loop {
            let mut request = self
                .http
                .request(method.clone(), url.clone())
                .headers(headers.clone())
                .header(AUTHORIZATION, auth.clone());
            if let Some(body) = body {
                request = request.json(body);
            }
            let error = match request.send().await {
                Ok(response) => match read(response).await {
                    Ok(bytes) => {
                        return serde_json::from_slice(&bytes)
                            .map_err(|e| ClientError::Decode(e.to_string()));
                    }
                    Err(e) => e,
                },
                // `without_url`: keep the message free of anything but the failure itself.
                Err(e) => ClientError::Transport(describe(e)),
            };
            attempt += 1;
            let retry =
                error.status() == Some(429) || (retry_server_errors && error.is_retryable());
            if !retry || attempt >= self.retry.max_attempts {
                return Err(error);
            }
            let delay = match &error {
                ClientError::Api {
                    retry_after: Some(after),
                    ..
                } => (*after).min(self.retry.max_delay),
                _ => self.retry.backoff(attempt - 1),
            };
            tracing::debug!(%error, ?delay, attempt, "retrying Replicate API call");
            tokio::time::sleep(delay).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_is_redacted() {
        let client = Client::new("http://127.0.0.1:1/v1", Some("r8_supersecret".into())).unwrap();
        let shown = format!("{client:?}");
        assert!(!shown.contains("supersecret"), "{shown}");
        assert!(shown.contains("redacted"));
    }

    #[test]
    fn credentials_in_the_base_url_are_redacted() {
        let client = Client::new("https://user:hunter2@proxy.example/v1", None).unwrap();
        let shown = format!("{client:?}");
        assert!(
            !shown.contains("hunter2") && !shown.contains("user:"),
            "{shown}"
        );
        assert!(
            shown.contains("https://redacted@proxy.example/v1/"),
            "{shown}"
        );
    }

    #[test]
    fn base_url_keeps_its_path() {
        let client = Client::new("http://127.0.0.1:9/v1", Some("t".into())).unwrap();
        assert_eq!(
            client.url("predictions").unwrap().as_str(),
            "http://127.0.0.1:9/v1/predictions"
        );
    }

    #[actix_rt::test]
    async fn missing_token_is_an_error_before_any_request() {
        let client = Client::new("http://127.0.0.1:9/v1", None).unwrap();
        assert!(matches!(
            client.get("abc").await,
            Err(ClientError::MissingToken)
        ));
    }

    #[actix_rt::test]
    async fn connection_failures_are_transport_errors_without_the_token() {
        let client = Client::new("http://127.0.0.1:9/v1", Some("r8_supersecret".into()))
            .unwrap()
            .retry_policy(RetryPolicy::none());
        let err = client.get("abc").await.unwrap_err();
        assert!(matches!(err, ClientError::Transport(_)), "{err:?}");
        assert!(!format!("{err} {err:?}").contains("supersecret"));
    }
}
