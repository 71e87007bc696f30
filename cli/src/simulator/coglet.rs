//! The `coglet` sender profile: webhooks as a self-hosted Cog container sends them
//! (`replicate-protocol.md` §12), for receivers of Cog deliveries.
//!
//! The body is Cog's state snapshot (`id`, `status`, `logs`, `output`, `error`, `metrics`); the
//! request carries no signature and no `webhook-id`, only `Authorization: Bearer <token>` when a
//! token is set and `User-Agent: coglet/0.23.1`; `output` is never throttled; a terminal webhook
//! is retried up to 12 times, `100 ms · 2^min(n, 10)` apart, and only on 429, 500, 502, 503, 504
//! or a connection error.

use std::time::Duration;

use replicate_webhook::Event;
use secrecy::{ExposeSecret as _, SecretString};
use serde_json::{Map, Value, json};

/// The `User-Agent` coglet sends.
pub const USER_AGENT: &str = "coglet/0.23.1";

/// The most retries of a terminal webhook.
const RETRIES: u32 = 12;

/// The sender the simulator plays.
#[derive(Debug, Clone, Default)]
pub enum Sender {
    /// Replicate: signed Standard Webhooks deliveries of the full prediction.
    #[default]
    Replicate,
    /// A self-hosted Cog container (coglet 0.23.1).
    Coglet {
        /// Sent as `Authorization: Bearer <token>` (the container's `WEBHOOK_AUTH_TOKEN`).
        token: Option<SecretString>,
    },
}

/// Cog's body for `event` of a prediction whose Replicate body is `full`: the `start` event
/// already says `processing`, with no logs and no output yet; `predict_time` appears at the end.
pub fn body(full: &Value, event: Event) -> Value {
    let mut body = Map::new();
    body.insert("id".into(), full["id"].clone());
    if event == Event::Start {
        body.insert("status".into(), json!("processing"));
        body.insert("logs".into(), json!(""));
        body.insert("metrics".into(), json!({}));
        return Value::Object(body);
    }
    body.insert("status".into(), full["status"].clone());
    body.insert(
        "logs".into(),
        full.get("logs")
            .filter(|l| !l.is_null())
            .cloned()
            .unwrap_or(json!("")),
    );
    for field in ["output", "error"] {
        if let Some(value) = full.get(field).filter(|v| !v.is_null()) {
            body.insert(field.into(), value.clone());
        }
    }
    let predict_time = full["metrics"].get("predict_time").cloned();
    body.insert(
        "metrics".into(),
        match predict_time {
            Some(t) if event == Event::Completed => json!({"predict_time": t}),
            _ => json!({}),
        },
    );
    Value::Object(body)
}

/// The headers of one POST besides `content-type`.
pub fn headers(token: Option<&SecretString>) -> Vec<(&'static str, String)> {
    let mut headers = vec![("user-agent", USER_AGENT.to_owned())];
    if let Some(token) = token {
        headers.push(("authorization", format!("Bearer {}", token.expose_secret())));
    }
    headers
}

/// How long before retry `attempt` (1 for the first retry) of a terminal webhook whose last
/// attempt got `answer` (`None`: no answer), or `None` when coglet gives up.
pub(super) fn retry_delay(attempt: u32, answer: Option<u16>) -> Option<Duration> {
    let retried = match answer {
        None => true,
        Some(status) => matches!(status, 429 | 500 | 502 | 503 | 504),
    };
    (retried && attempt <= RETRIES).then(|| Duration::from_millis(100 << attempt.min(10)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_only_what_coglet_retries() {
        for status in [429, 500, 502, 503, 504] {
            assert_eq!(
                retry_delay(1, Some(status)),
                Some(Duration::from_millis(200))
            );
        }
        assert_eq!(retry_delay(3, None), Some(Duration::from_millis(800)));
        for status in [400, 401, 404, 409, 413, 501] {
            assert_eq!(retry_delay(1, Some(status)), None, "{status}");
        }
        assert_eq!(
            retry_delay(12, Some(503)),
            Some(Duration::from_millis(102_400))
        );
        assert_eq!(retry_delay(13, Some(503)), None);
    }

    #[test]
    fn bodies_have_cogs_fields_only() {
        let full = json!({
            "id": "p", "model": "a/b", "version": "v", "status": "succeeded", "input": {"x": 1},
            "logs": "l\n", "output": ["o"], "error": null, "urls": {"get": "u"},
            "created_at": "t", "metrics": {"predict_time": 1.5, "total_time": 2.0},
        });
        assert_eq!(
            body(&full, Event::Completed),
            json!({"id": "p", "status": "succeeded", "logs": "l\n", "output": ["o"],
                   "metrics": {"predict_time": 1.5}})
        );
        assert_eq!(
            body(&full, Event::Start),
            json!({"id": "p", "status": "processing", "logs": "", "metrics": {}})
        );
    }
}
