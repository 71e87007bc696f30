//! A small client for the Replicate HTTP API: create, get, list and cancel predictions, fetch the
//! default webhook signing secret and model schemas.
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

use secrecy::{ExposeSecret as _, SecretString};
use std::fmt;
use std::time::Duration;

use reqwest::header::{AUTHORIZATION, HeaderMap, HeaderValue, RETRY_AFTER};
use reqwest::{Method, StatusCode};
use serde::Serialize;
use serde::de::DeserializeOwned;
use url::Url;

#[path = "client_trainings.rs"]
mod trainings;
pub use trainings::CreateTraining;

use crate::prediction::{Event, Prediction};
use crate::registry::WebhookSpec;
use crate::signature::Secret;

/// The environment variable holding the API token.
pub const ENV_TOKEN: &str = "REPLICATE_API_TOKEN";
/// The environment variable overriding the API base URL.
pub const ENV_BASE_URL: &str = "REPLICATE_API_BASE_URL";
/// Replicate's API base URL.
pub const DEFAULT_BASE_URL: &str = "https://api.replicate.com/v1";

/// The longest error message kept from a response body, in characters.
const MAX_MESSAGE: usize = 500;

/// Why an API call failed. Never contains the token.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// `REPLICATE_API_TOKEN` is unset or blank.
    #[error("{ENV_TOKEN} is not set; create a token at https://replicate.com/account/api-tokens")]
    MissingToken,
    /// A base URL or path could not be turned into a URL.
    #[error("invalid URL: {0}")]
    InvalidUrl(String),
    /// The API answered with a non-success status.
    #[error("Replicate API error {status}: {message}")]
    Api {
        /// The HTTP status.
        status: u16,
        /// Replicate's `detail` (or `title`) message, or the start of the body.
        message: String,
        /// The `Retry-After` delay the API asked for, if any.
        retry_after: Option<Duration>,
    },
    /// The request did not get an answer (connection refused, timeout, TLS ...).
    #[error("request to the Replicate API failed: {0}")]
    Transport(String),
    /// The answer was not the JSON the API documents.
    #[error("unexpected response from the Replicate API: {0}")]
    Decode(String),
    /// `GET /webhooks/default/secret` answered without a usable `key`.
    #[error("the API returned no usable webhook signing secret: {0}")]
    Secret(String),
    /// [`CreatePrediction::webhook_spec`] was used but the client has no [`Client::webhook_base`].
    #[error(
        "a webhook spec needs a public base URL: call Client::webhook_base(url) (the address Replicate can reach)"
    )]
    NoWebhookBase,
    /// A `Prefer: wait` duration outside 1..=60 seconds.
    #[error("`Prefer: wait` takes 1 to 60 seconds, got {0}")]
    InvalidWait(u64),
}

impl ClientError {
    /// The HTTP status of an API error.
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Api { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// Whether the call may succeed when made again later (429, 5xx, transport failures).
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Api { status, .. } => *status == 429 || *status >= 500,
            Self::Transport(_) => true,
            _ => false,
        }
    }
}

/// How failed calls are retried.
///
/// `429 Too Many Requests`, `5xx` answers and transport failures are retried with exponential
/// backoff (honouring `Retry-After`). A create whose answer was lost may still have created a
/// prediction, so a retried create can start a second one: set
/// [`retry_creates_on_server_error`](Self::retry_creates_on_server_error) to `false` to retry
/// creates on `429` only.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    /// Total attempts, the first included (1 = no retry).
    pub max_attempts: u32,
    /// Delay before the first retry; doubled for each further one.
    pub initial_delay: Duration,
    /// Upper bound of one delay, `Retry-After` included.
    pub max_delay: Duration,
    /// Retry creates on `5xx` and transport failures too (default `true`).
    pub retry_creates_on_server_error: bool,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 4,
            initial_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(30),
            retry_creates_on_server_error: true,
        }
    }
}

impl RetryPolicy {
    /// No retries at all.
    pub fn none() -> Self {
        Self {
            max_attempts: 1,
            ..Self::default()
        }
    }

    /// The delay before retry number `retry` (0-based), before any `Retry-After`.
    pub fn backoff(&self, retry: u32) -> Duration {
        let factor = 2u32.saturating_pow(retry);
        self.initial_delay
            .saturating_mul(factor)
            .min(self.max_delay)
    }
}

/// A Replicate API client. Cheap to clone.
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    base: Url,
    token: Option<SecretString>,
    webhook_base: Option<Url>,
    retry: RetryPolicy,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("base", &redacted_url(&self.base))
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("webhook_base", &self.webhook_base.as_ref().map(Url::as_str))
            .field("retry", &self.retry)
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

fn split_slug(slug: &str) -> (String, String) {
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
    wait: Option<Wait>,
    cancel_after: Option<String>,
}

/// `Prefer: wait` or `Prefer: wait=n`.
#[derive(Debug, Clone, Copy)]
enum Wait {
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
    fn path(&self) -> Result<String, ClientError> {
        Ok(match &self.target {
            Target::Version(_) => "predictions".to_owned(),
            Target::Model { owner, name } => {
                format!("models/{}/{}/predictions", segment(owner)?, segment(name)?)
            }
            Target::Deployment { owner, name } => format!(
                "deployments/{}/{}/predictions",
                segment(owner)?,
                segment(name)?
            ),
        })
    }

    fn body(&self, webhook_base: Option<&Url>) -> Result<serde_json::Value, ClientError> {
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

/// One page of `GET /predictions`.
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
pub struct Page<T> {
    /// The URL of the next (older) page.
    #[serde(default)]
    pub next: Option<String>,
    /// The URL of the previous page.
    #[serde(default)]
    pub previous: Option<String>,
    /// The items of this page.
    #[serde(default = "Vec::new")]
    pub results: Vec<T>,
}

/// A model version with its schema: `GET /models/{owner}/{name}/versions/{id}`.
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
pub struct ModelVersion {
    /// The 64-hex version id.
    pub id: String,
    /// When the version was pushed.
    #[serde(default)]
    pub created_at: Option<String>,
    /// The Cog version that built it.
    #[serde(default)]
    pub cog_version: Option<String>,
    /// The `OpenAPI` document describing `Input` and `Output`.
    #[serde(default)]
    pub openapi_schema: serde_json::Value,
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
            .timeout(Duration::from_secs(120))
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
        match request.wait {
            None => {}
            Some(Wait::Default) => {
                headers.insert("prefer", HeaderValue::from_static("wait"));
            }
            Some(Wait::Seconds(n)) => {
                if !(1..=60).contains(&n) {
                    return Err(ClientError::InvalidWait(n));
                }
                headers.insert("prefer", header_value(&format!("wait={n}"))?);
            }
        }
        if let Some(after) = &request.cancel_after {
            headers.insert("cancel-after", header_value(after)?);
        }
        let url = self.url(&request.path()?)?;
        let retry_5xx = self.retry.retry_creates_on_server_error;
        self.send(Method::POST, url, headers, Some(&body), retry_5xx)
            .await
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
        let url = self.url(&format!("predictions/{}", segment(id)?))?;
        self.send(Method::GET, url, HeaderMap::new(), None, true)
            .await
    }

    /// `POST /predictions/{id}/cancel`.
    pub async fn cancel(&self, id: &str) -> Result<Prediction, ClientError> {
        let url = self.url(&format!("predictions/{}/cancel", segment(id)?))?;
        self.send(Method::POST, url, HeaderMap::new(), None, true)
            .await
    }

    /// The first page of `GET /predictions` (newest first).
    pub async fn list(&self) -> Result<Page<Prediction>, ClientError> {
        let url = self.url("predictions")?;
        self.send(Method::GET, url, HeaderMap::new(), None, true)
            .await
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
        let mut pages = 1;
        while let Some(next) = page.next.take() {
            if pages >= max_pages {
                break;
            }
            page = self.list_page(&next).await?;
            all.append(&mut page.results);
            pages += 1;
        }
        Ok(all)
    }

    /// `GET /webhooks/default/secret`: the secret Replicate signs your webhooks with.
    pub async fn default_secret(&self) -> Result<Secret, ClientError> {
        #[derive(serde::Deserialize)]
        struct Key {
            key: Option<String>,
        }
        let url = self.url("webhooks/default/secret")?;
        let key: Key = self
            .send(Method::GET, url, HeaderMap::new(), None, true)
            .await?;
        let key = key
            .key
            .ok_or_else(|| ClientError::Secret("the answer has no `key`".into()))?;
        Secret::parse(&key).map_err(|e| ClientError::Secret(e.to_string()))
    }

    /// The `OpenAPI` schema of a model's latest version: `GET /models/{owner}/{name}` →
    /// `latest_version.openapi_schema`.
    pub async fn model_schema(&self, model: &str) -> Result<serde_json::Value, ClientError> {
        let (owner, name) = split_slug(model);
        let url = self.url(&format!("models/{}/{}", segment(&owner)?, segment(&name)?))?;
        let mut model: serde_json::Value = self
            .send(Method::GET, url, HeaderMap::new(), None, true)
            .await?;
        match model
            .get_mut("latest_version")
            .and_then(|v| v.get_mut("openapi_schema"))
        {
            Some(schema) if schema.is_object() => Ok(schema.take()),
            _ => Err(ClientError::Decode(
                "the model has no `latest_version.openapi_schema`".into(),
            )),
        }
    }

    /// A model version with its schema: `GET /models/{owner}/{name}/versions/{id}`.
    pub async fn version(&self, model: &str, version: &str) -> Result<ModelVersion, ClientError> {
        let (owner, name) = split_slug(model);
        let url = self.url(&format!(
            "models/{}/{}/versions/{}",
            segment(&owner)?,
            segment(&name)?,
            segment(version)?
        ))?;
        let version: ModelVersion = self
            .send(Method::GET, url, HeaderMap::new(), None, true)
            .await?;
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
            let retry = match &error {
                ClientError::Api { status: 429, .. } => true,
                e => retry_server_errors && e.is_retryable(),
            };
            if !retry || attempt >= self.retry.max_attempts {
                return Err(error);
            }
            let mut delay = self.retry.backoff(attempt - 1);
            if let ClientError::Api {
                retry_after: Some(after),
                ..
            } = &error
            {
                delay = (*after).min(self.retry.max_delay);
            }
            tracing::debug!(%error, ?delay, attempt, "retrying Replicate API call");
            tokio::time::sleep(delay).await;
        }
    }
}

async fn read(response: reqwest::Response) -> Result<Vec<u8>, ClientError> {
    let status = response.status();
    let retry_after = retry_after(response.headers());
    let bytes = response
        .bytes()
        .await
        .map_err(|e| ClientError::Transport(describe(e)))?;
    if status.is_success() {
        return Ok(bytes.to_vec());
    }
    Err(ClientError::Api {
        status: status.as_u16(),
        message: api_message(status, &bytes),
        retry_after,
    })
}

/// The error and its causes, without the URL ("error sending request: ... Connection refused").
fn describe(error: reqwest::Error) -> String {
    replicate_webhook_core::error_chain(&error.without_url())
}

/// Replicate's errors are problem documents: `{"title": .., "detail": .., "status": ..}`.
fn api_message(status: StatusCode, body: &[u8]) -> String {
    let parsed: Option<serde_json::Value> = serde_json::from_slice(body).ok();
    let field = |name: &str| {
        parsed
            .as_ref()
            .and_then(|v| v.get(name))
            .and_then(serde_json::Value::as_str)
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    };
    let message = match (field("title"), field("detail")) {
        (Some(title), Some(detail)) if !detail.starts_with(&title) => format!("{title}: {detail}"),
        (_, Some(detail)) => detail,
        (Some(title), None) => title,
        (None, None) => {
            let text = String::from_utf8_lossy(body);
            let text = text.trim();
            if text.is_empty() {
                status.canonical_reason().unwrap_or("no message").to_owned()
            } else {
                text.to_owned()
            }
        }
    };
    truncate(&message)
}

fn truncate(text: &str) -> String {
    if text.chars().count() <= MAX_MESSAGE {
        text.to_owned()
    } else {
        let mut out: String = text.chars().take(MAX_MESSAGE).collect();
        out.push('…');
        out
    }
}

/// `Retry-After` as seconds; HTTP dates are not used by Replicate and are ignored.
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let text = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    let seconds: f64 = text.parse().ok()?;
    (seconds.is_finite() && seconds >= 0.0).then(|| Duration::from_secs_f64(seconds.min(3600.0)))
}

fn header_value(text: &str) -> Result<HeaderValue, ClientError> {
    HeaderValue::from_str(text).map_err(|_| ClientError::InvalidUrl(format!("bad header {text:?}")))
}

/// A path segment: refuses anything that would change the path.
fn segment(text: &str) -> Result<&str, ClientError> {
    if !replicate_webhook_core::is_name_part(text) {
        return Err(ClientError::InvalidUrl(format!(
            "`{text}` is not a valid id or name"
        )));
    }
    Ok(text)
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
            let by_model = CreatePrediction::model(slug, &input);
            assert!(
                matches!(by_model.path(), Err(ClientError::InvalidUrl(_))),
                "{slug}"
            );
            let by_deployment = CreatePrediction::deployment(slug, &input);
            assert!(
                matches!(by_deployment.path(), Err(ClientError::InvalidUrl(_))),
                "{slug}"
            );
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
    fn api_messages_prefer_detail_and_title() {
        let msg = api_message(
            StatusCode::NOT_FOUND,
            br#"{"title":"Not found","detail":"The requested resource could not be found.","status":404}"#,
        );
        assert_eq!(msg, "Not found: The requested resource could not be found.");
        assert_eq!(
            api_message(StatusCode::UNAUTHORIZED, br#"{"detail":"Invalid token."}"#),
            "Invalid token."
        );
        assert_eq!(api_message(StatusCode::BAD_GATEWAY, b""), "Bad Gateway");
        assert_eq!(
            api_message(StatusCode::BAD_GATEWAY, b"<html>oops"),
            "<html>oops"
        );
        let long = "x".repeat(2000);
        assert!(
            api_message(StatusCode::BAD_REQUEST, long.as_bytes())
                .chars()
                .count()
                <= 501
        );
    }

    #[test]
    fn retry_after_seconds() {
        let mut headers = HeaderMap::new();
        headers.insert(RETRY_AFTER, HeaderValue::from_static("2"));
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(2)));
        headers.insert(RETRY_AFTER, HeaderValue::from_static("0.5"));
        assert_eq!(retry_after(&headers), Some(Duration::from_millis(500)));
        headers.insert(
            RETRY_AFTER,
            HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT"),
        );
        assert_eq!(retry_after(&headers), None);
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let policy = RetryPolicy {
            max_attempts: 10,
            initial_delay: Duration::from_millis(100),
            max_delay: Duration::from_millis(500),
            retry_creates_on_server_error: false,
        };
        assert_eq!(policy.backoff(0), Duration::from_millis(100));
        assert_eq!(policy.backoff(1), Duration::from_millis(200));
        assert_eq!(policy.backoff(2), Duration::from_millis(400));
        assert_eq!(policy.backoff(3), Duration::from_millis(500));
        assert_eq!(policy.backoff(40), Duration::from_millis(500));
    }

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
    fn ids_cannot_change_the_path() {
        assert!(segment("abc123").is_ok());
        for bad in ["", "..", "a/b", "a?b", "a#b", "a b"] {
            assert!(segment(bad).is_err(), "{bad}");
        }
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
