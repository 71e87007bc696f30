//! The prediction as it arrives, before the fields some senders leave out are filled in.
//!
//! A self-hosted Cog container sends no `input`; serde fills a missing `Option` with `None`, so
//! the wire form reads `input` as one, and [`super::Prediction`] asks `I` for its `null`.

use serde::Deserialize;
use serde::de::DeserializeOwned;
use time::OffsetDateTime;

use super::{Event, Metrics, Status, Urls};

// The `default`s on `Option` fields are not redundant: serde_json also decodes a struct from a
// JSON array, and there only a field with a default may be left out at the end.
#[derive(Deserialize)]
#[serde(bound(deserialize = "O: Deserialize<'de>, I: Deserialize<'de>"))]
pub(crate) struct Prediction<O, I> {
    pub(super) id: String,
    #[serde(default)]
    pub(super) model: String,
    #[serde(default)]
    pub(super) version: String,
    pub(super) status: Status,
    pub(super) input: Option<I>,
    #[serde(default = "super::none")]
    pub(super) output: Option<O>,
    #[serde(default, deserialize_with = "super::lenient_error")]
    pub(super) error: Option<String>,
    #[serde(default)]
    pub(super) logs: Option<String>,
    #[serde(default, deserialize_with = "super::null_as_default")]
    pub(super) metrics: Metrics,
    #[serde(default, deserialize_with = "super::null_as_default")]
    pub(super) urls: Urls,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub(super) created_at: Option<OffsetDateTime>,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub(super) started_at: Option<OffsetDateTime>,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub(super) completed_at: Option<OffsetDateTime>,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub(super) deadline: Option<OffsetDateTime>,
    #[serde(default)]
    pub(super) data_removed: bool,
    #[serde(default)]
    pub(super) source: Option<String>,
    #[serde(default)]
    pub(super) deployment: Option<String>,
    #[serde(default)]
    pub(super) webhook: Option<String>,
    #[serde(default)]
    pub(super) webhook_events_filter: Option<Vec<Event>>,
}

impl<O, I: DeserializeOwned> TryFrom<Prediction<O, I>> for super::Prediction<O, I> {
    type Error = String;

    fn try_from(wire: Prediction<O, I>) -> Result<Self, String> {
        let input = match wire.input {
            Some(input) => input,
            None => serde_json::from_str("null").map_err(|e| {
                format!("`input` is missing or null, and null is not an input: {e}")
            })?,
        };
        // Every field moved by name: a field added to one struct and not the other fails here.
        #[rustfmt::skip]
        let Prediction {
            id, model, version, status, input: _, output, error, logs, metrics, urls, created_at,
            started_at, completed_at, deadline, data_removed, source, deployment, webhook,
            webhook_events_filter,
        } = wire;
        #[rustfmt::skip]
        let prediction = Self {
            id, model, version, status, input, output, error, logs, metrics, urls, created_at,
            started_at, completed_at, deadline, data_removed, source, deployment, webhook,
            webhook_events_filter,
        };
        Ok(prediction)
    }
}
