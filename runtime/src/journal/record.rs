//! One journal row: what the receiver answered to one verified request, and why.

use serde::{Deserialize, Serialize};

/// What became of a delivery. The names (`as_str`) are what the journal stores and the API shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Its handler ran and returned `Ok` (or failed permanently and was not retried).
    Ran,
    /// The same `webhook-id` or terminal status was already handled.
    Duplicate,
    /// An event older than one already seen for the prediction.
    Stale,
    /// Another worker held its claim: 409, Replicate retries.
    InFlight,
    /// Verified but refused (the signed query did not match).
    Refused,
    /// The handler failed and the sender was asked to retry.
    HandlerError,
    /// The body did not decode (the envelope, or the handler's types).
    DecodeError,
    /// Stored in the inbox; a worker runs the handler.
    Queued,
    /// No module or handler takes it: acknowledged.
    Ignored,
    /// The dedupe store or the inbox could not be reached: 503, Replicate retries.
    Unavailable,
}

impl Outcome {
    /// Every outcome, in the order pages list them.
    pub const ALL: [Self; 10] = [
        Self::Ran,
        Self::Duplicate,
        Self::Stale,
        Self::InFlight,
        Self::Refused,
        Self::HandlerError,
        Self::DecodeError,
        Self::Queued,
        Self::Ignored,
        Self::Unavailable,
    ];

    /// The stored and shown name, e.g. `handler_error`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ran => "ran",
            Self::Duplicate => "duplicate",
            Self::Stale => "stale",
            Self::InFlight => "in_flight",
            Self::Refused => "refused",
            Self::HandlerError => "handler_error",
            Self::DecodeError => "decode_error",
            Self::Queued => "queued",
            Self::Ignored => "ignored",
            Self::Unavailable => "unavailable",
        }
    }

    /// The outcome named `name`.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|o| o.as_str() == name)
    }
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One answered, verified request.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// Increasing in write order within one store (0 until stored).
    pub id: i64,
    /// When the request arrived, in milliseconds since the epoch.
    pub received_ms: i64,
    /// The `webhook-id` header.
    pub webhook_id: String,
    /// The prediction's (or training's) id; empty when the body did not parse.
    pub prediction_id: String,
    /// The model, `owner/name`.
    pub model: String,
    /// The inferred event (`start`, `output`, `logs`, `completed`), empty when none applies.
    pub event: String,
    /// The prediction's status in the body.
    pub status: String,
    /// The HTTP status answered.
    pub http_status: u16,
    /// What became of it.
    pub outcome: Outcome,
    /// The handler's error, or why it was refused.
    pub detail: Option<String>,
    /// How long the handler ran, in microseconds; `None` when no handler ran.
    pub duration_us: Option<i64>,
    /// The verified body, only when the app opted in to keeping bodies.
    pub body: Option<String>,
    /// The tenant the delivery was sent for, in a multi-account app (see [`crate::Tenants`]):
    /// the same prediction id under two tenants is two predictions.
    #[serde(default)]
    pub tenant: Option<String>,
}

impl Record {
    /// The handler's run time in milliseconds.
    #[allow(clippy::cast_precision_loss)] // microseconds fit an f64 exactly for 285 years
    pub fn duration_ms(&self) -> Option<f64> {
        self.duration_us.map(|us| us as f64 / 1000.0)
    }
}

impl std::fmt::Debug for Record {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The body holds the prediction's input, which may carry the user's secrets.
        f.debug_struct("Record")
            .field("id", &self.id)
            .field("received_ms", &self.received_ms)
            .field("webhook_id", &self.webhook_id)
            .field("prediction_id", &self.prediction_id)
            .field("model", &self.model)
            .field("event", &self.event)
            .field("http_status", &self.http_status)
            .field("outcome", &self.outcome)
            .field("duration_us", &self.duration_us)
            .field("body_kept", &self.body.is_some())
            .field("tenant", &self.tenant)
            .finish_non_exhaustive()
    }
}

/// Which rows a search returns, newest first.
#[derive(Debug, Clone, Default)]
pub struct Search {
    /// Only this prediction's rows.
    pub prediction_id: Option<String>,
    /// Only this model's rows.
    pub model: Option<String>,
    /// Only rows with this outcome.
    pub outcome: Option<Outcome>,
    /// Only rows received at or after this time (milliseconds since the epoch).
    pub since_ms: Option<i64>,
    /// Only rows received before this time.
    pub until_ms: Option<i64>,
    /// Only rows whose `webhook-id` starts with this (the reconciler's start with
    /// `msg_reconcile_`).
    pub webhook_id_prefix: Option<String>,
    /// At most this many rows; 0 for 100.
    pub limit: usize,
}

impl Search {
    /// The row limit, 0 meaning 100.
    pub fn limit(&self) -> usize {
        if self.limit == 0 { 100 } else { self.limit }
    }

    /// Whether `row` passes every filter (for the stores that filter in process).
    pub(crate) fn matches(&self, row: &Record) -> bool {
        self.prediction_id
            .as_ref()
            .is_none_or(|p| *p == row.prediction_id)
            && self.model.as_ref().is_none_or(|m| *m == row.model)
            && self.outcome.is_none_or(|o| o == row.outcome)
            && self.since_ms.is_none_or(|t| row.received_ms >= t)
            && self.until_ms.is_none_or(|t| row.received_ms < t)
            && self
                .webhook_id_prefix
                .as_ref()
                .is_none_or(|p| row.webhook_id.starts_with(p.as_str()))
    }
}
