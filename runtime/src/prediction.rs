//! The prediction object Replicate posts, and the events inferred from it.

use serde::de::Deserializer;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

pub use replicate_webhook_core::{Event, Status};

mod wire;

/// A prediction, exactly the body of a webhook delivery and of `GET /v1/predictions/{id}`.
///
/// `O` is the type of `output` and `I` the type of `input`; both default to
/// [`serde_json::Value`]. Unknown fields are ignored so new API fields never break decoding.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(
    bound(
        serialize = "O: Serialize, I: Serialize",
        deserialize = "O: Deserialize<'de>, I: serde::de::DeserializeOwned"
    ),
    // Decoded as `wire::Prediction`, which says what each missing field stands for.
    try_from = "wire::Prediction<O, I>"
)]
pub struct Prediction<O = serde_json::Value, I = serde_json::Value> {
    /// The prediction id, e.g. `gm3qorzdhgbfurvjtvhg6dckhu`.
    pub id: String,
    /// `owner/name` of the model. Empty when the body omits it (old docs examples do).
    pub model: String,
    /// The 64-hex version id, or `"hidden"` for official models.
    pub version: String,
    /// The lifecycle status.
    pub status: Status,
    /// The input the prediction was created with.
    pub input: I,
    /// The output so far: `None` until the model produced some, and after data removal.
    pub output: Option<O>,
    /// The error message of a failed prediction.
    pub error: Option<String>,
    /// Cumulative log text.
    pub logs: Option<String>,
    /// Timing and usage figures.
    pub metrics: Metrics,
    /// API links for this prediction.
    pub urls: Urls,
    /// When the prediction was created.
    #[serde(with = "time::serde::rfc3339::option")]
    pub created_at: Option<OffsetDateTime>,
    /// When the model started running.
    #[serde(with = "time::serde::rfc3339::option")]
    pub started_at: Option<OffsetDateTime>,
    /// When the model finished and all outputs were uploaded.
    #[serde(with = "time::serde::rfc3339::option")]
    pub completed_at: Option<OffsetDateTime>,
    /// When the prediction is canceled automatically (set with `Cancel-After`).
    #[serde(with = "time::serde::rfc3339::option")]
    pub deadline: Option<OffsetDateTime>,
    /// Whether input and output were deleted (after an hour, for API predictions).
    pub data_removed: bool,
    /// `"api"` or `"web"`.
    pub source: Option<String>,
    /// The deployment that created the prediction, if any.
    pub deployment: Option<String>,
    /// The webhook URL, echoed as given (query string included).
    pub webhook: Option<String>,
    /// The events the prediction was created to deliver.
    pub webhook_events_filter: Option<Vec<Event>>,
}

// `Option<O>` with `#[serde(default)]` would require `O: Default`.
fn none<T>() -> Option<T> {
    None
}

fn null_as_default<'de, D: Deserializer<'de>, T: Deserialize<'de> + Default>(
    d: D,
) -> Result<T, D::Error> {
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// `error` is documented as a string, but the JS SDK types it `unknown`: keep any JSON as text.
fn lenient_error<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(match Option::<serde_json::Value>::deserialize(d)? {
        None | Some(serde_json::Value::Null) => None,
        Some(serde_json::Value::String(s)) => Some(s),
        Some(other) => Some(other.to_string()),
    })
}

impl<O, I> Prediction<O, I> {
    /// The event this delivery most likely is, from the status alone.
    ///
    /// `processing` deliveries are reported as [`Event::Output`] here; the receiver tells
    /// `output` from `logs` by comparing with the previous delivery it saw.
    pub fn event(&self) -> Event {
        self.status.event().unwrap_or(Event::Output)
    }

    /// Seconds between creation and start (queueing and cold boot), when both are known.
    pub fn queue_time(&self) -> Option<time::Duration> {
        Some(self.started_at? - self.created_at?)
    }
}

/// Timing and usage figures. Unknown keys are kept in `extra`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    /// Seconds the model ran (terminal predictions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub predict_time: Option<f64>,
    /// Seconds from creation to completion.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_time: Option<f64>,
    /// Everything else (`image_count`, token counts, ...).
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

/// API links of a prediction.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Urls {
    /// `GET` this to read the prediction.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub get: Option<String>,
    /// `POST` this to cancel it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cancel: Option<String>,
    /// The prediction's page on replicate.com.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub web: Option<String>,
    /// Server-sent events stream, for models that stream.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::fixtures::payload as fixture;

    /// The fixture payload `name`, decoded as `T`.
    fn decode<T: serde::de::DeserializeOwned>(name: &str) -> T {
        serde_json::from_slice(&fixture(name)).unwrap()
    }

    /// `p` serialized and decoded again, as a handler that stores it would.
    fn round_trip(p: &Prediction) -> Prediction {
        serde_json::from_value(serde_json::to_value(p).unwrap()).unwrap()
    }

    #[test]
    fn every_fixture_payload_decodes() {
        let dir = format!("{}/../fixtures/payloads", env!("CARGO_MANIFEST_DIR"));
        let mut seen = 0;
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "json") {
                let bytes = std::fs::read(&path).unwrap();
                let p: Prediction =
                    serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("{path:?}: {e}"));
                assert!(!p.id.is_empty());
                seen += 1;
            }
        }
        assert!(seen >= 3, "expected the fixture payloads, found {seen}");
    }

    #[test]
    fn hidden_version_and_mixed_precision_timestamps() {
        let p: Prediction<String> = decode("flux-kontext-pro-succeeded.json");
        assert_eq!(p.version, "hidden");
        assert_eq!(p.status, Status::Succeeded);
        assert_eq!(p.completed_at.unwrap().nanosecond(), 383_588_891);
        assert_eq!(p.created_at.unwrap().millisecond(), 127);
        assert_eq!(p.metrics.predict_time, Some(5.247_161_016));
        assert_eq!(p.metrics.extra["image_count"], 1);
        assert!(p.output.unwrap().starts_with("https://replicate.delivery/"));
        assert_eq!(p.webhook_events_filter.unwrap().len(), 4);
    }

    #[test]
    fn timestamps_with_zero_to_nine_fraction_digits() {
        for digits in 0..=9 {
            let frac = if digits == 0 {
                String::new()
            } else {
                format!(".{}", "1".repeat(digits))
            };
            let body = format!(
                r#"{{"id":"x","status":"starting","input":{{}},"created_at":"2023-08-16T18:57:12{frac}Z"}}"#
            );
            let p: Prediction =
                serde_json::from_str(&body).unwrap_or_else(|e| panic!("{digits}: {e}"));
            assert!(p.created_at.is_some());
        }
    }

    #[test]
    fn unknown_status_and_fields_are_tolerated() {
        let p: Prediction = serde_json::from_str(
            r#"{"id":"x","status":"paused","input":{},"brand_new":1,"metrics":null,"urls":null,"error":{"code":1}}"#,
        )
        .unwrap();
        assert_eq!(p.status, Status::Unknown("paused".into()));
        assert_eq!(p.status.event(), None);
        assert_eq!(p.error.as_deref(), Some(r#"{"code":1}"#));
        assert!(p.output.is_none());
    }

    #[test]
    fn statuses_map_to_events() {
        assert_eq!(Status::Starting.event(), Some(Event::Start));
        assert_eq!(Status::Processing.event(), None);
        for s in ["succeeded", "failed", "canceled", "aborted"] {
            assert_eq!(Status::parse(s).event(), Some(Event::Completed));
            assert!(Status::parse(s).is_terminal());
            assert_eq!(Status::parse(s).as_str(), s);
        }
    }

    /// An input type with a required field, which `null` is not.
    #[derive(Debug, Deserialize)]
    struct Input {
        #[allow(dead_code)]
        steps: u32,
    }

    #[test]
    fn a_cog_body_decodes_without_the_fields_cog_omits() {
        let p: Prediction<Vec<String>> = decode("coglet-0.23.1-succeeded.json");
        assert_eq!(p.status, Status::Succeeded);
        assert_eq!(p.output.unwrap(), ["out-0", "out-1"]);
        assert_eq!((p.model.as_str(), p.version.as_str()), ("", ""));
        assert_eq!(p.input, serde_json::Value::Null);
        assert!(p.created_at.is_none() && p.urls == Urls::default());
        // Cog's terminal metrics: `predict_time` alone, no `total_time`.
        assert_eq!(p.metrics.predict_time, Some(0.008_889_621));
        assert_eq!(p.metrics.total_time, None);
        // An input type that has no `null` says so, rather than decoding something made up.
        let err = serde_json::from_slice::<Prediction<serde_json::Value, Input>>(&fixture(
            "coglet-0.23.1-succeeded.json",
        ))
        .unwrap_err();
        assert!(err.to_string().contains("`input` is missing"), "{err}");
        let p: Prediction<serde_json::Value, Option<Input>> =
            decode("coglet-0.23.1-processing.json");
        assert!(p.input.is_none());
        assert_eq!(p.status, Status::Processing);
    }

    #[test]
    fn metrics_keep_nested_objects_strings_lists_and_booleans() {
        let p: Prediction = decode("coglet-0.23.1-processing.json");
        let extra = &p.metrics.extra;
        assert_eq!(extra["timing"], serde_json::json!({"inference": 0.25}));
        assert_eq!(extra["model_name"], "tiny");
        assert_eq!(extra["flags"], serde_json::json!([true, false]));
        assert_eq!(extra["cached"], true);
        assert_eq!(p.metrics.predict_time, None);
        // And they go back out as they came, for a handler that stores the prediction.
        assert_eq!(round_trip(&p).metrics, p.metrics);
    }

    #[test]
    fn stream_urls_of_file_outputs_keep_whatever_host_they_name() {
        for stream in [
            "https://stream.replicate.com/v1/files/bcwr-3okdfv3o2wehstv5f2okyftwxy57hhypqsi6osiim5iaq5yebb4q",
            "https://streaming.api.replicate.com/v1/files/abc",
            "https://streaming-europe.example.net/v1/predictions/x",
        ] {
            let body = serde_json::json!({
                "id": "x", "status": "processing", "input": {},
                "output": ["https://replicate.delivery/x/out.png"],
                "urls": {"get": "https://api.replicate.com/v1/predictions/x", "stream": stream},
            });
            let p: Prediction<Vec<String>> = serde_json::from_value(body).unwrap();
            assert_eq!(p.urls.stream.as_deref(), Some(stream));
        }
    }

    #[test]
    fn round_trips_through_json() {
        let p: Prediction = decode("hello-world-succeeded.json");
        assert_eq!(p, round_trip(&p));
    }
}
