//! What comes back: pages and versions, and answers that are not a success turned into errors.

use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::{HeaderMap, RETRY_AFTER};

use super::ClientError;
use super::error::describe;

/// The longest error message kept from a response body, in characters.
const MAX_MESSAGE: usize = 500;

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

pub(super) async fn read(response: reqwest::Response) -> Result<Vec<u8>, ClientError> {
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
        (None, None) => match String::from_utf8_lossy(body).trim() {
            "" => status.canonical_reason().unwrap_or("no message").to_owned(),
            text => text.to_owned(),
        },
    };
    truncate(&message)
}

fn truncate(text: &str) -> String {
    match text.char_indices().nth(MAX_MESSAGE) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_owned(),
    }
}

/// `Retry-After` as seconds; HTTP dates are not used by Replicate and are ignored.
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let text = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    let seconds: f64 = text.parse().ok()?;
    (seconds.is_finite() && seconds >= 0.0).then(|| Duration::from_secs_f64(seconds.min(3600.0)))
}

#[cfg(test)]
mod tests {
    use reqwest::header::HeaderValue;

    use super::*;

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
        let long = api_message(StatusCode::BAD_REQUEST, "x".repeat(2000).as_bytes());
        assert!(long.chars().count() <= 501);
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
}
