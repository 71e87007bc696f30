//! Why an API call failed.

use std::time::Duration;

use super::ENV_TOKEN;
#[cfg(doc)]
use super::{Client, CreatePrediction};

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
        matches!(self, Self::Api { status, .. } if *status == 429 || *status >= 500)
            || matches!(self, Self::Transport(_))
    }
}

/// The error and its causes, without the URL ("error sending request: ... Connection refused").
pub(crate) fn describe(error: reqwest::Error) -> String {
    replicate_webhook_core::error_chain(&error.without_url())
}
