//! The training object Replicate posts for fine-tuning jobs, and how a body tells which kind it
//! is.
//!
//! Trainings send the same webhooks as predictions (same `webhook`, `webhook_events_filter` and
//! signature), and the body carries no kind field: `urls.get` points under `/v1/trainings/` for
//! a training and under `/v1/predictions/` for a prediction.

use crate::prediction::Prediction;
use serde::{Deserialize, Serialize};

/// Whether a body is a prediction or a training.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub enum BodyKind {
    /// `urls.get` under `/v1/predictions/`, or anything that is not a training.
    #[default]
    Prediction,
    /// `urls.get` under `/v1/trainings/`.
    Training,
}

impl BodyKind {
    /// The kind of a body whose `urls.get` is `get`.
    ///
    /// Only a training says so: bodies without `urls` (older docs examples, hand-made tests)
    /// stay predictions, as they were before trainings were told apart.
    pub fn of_get_url(get: Option<&str>) -> Self {
        // What Replicate sends, decided without parsing: a URL of this exact shape has no dot
        // segment, escape or other spelling the parser would rewrite into a training path.
        if let Some(id) =
            get.and_then(|g| g.strip_prefix("https://api.replicate.com/v1/predictions/"))
            && id.bytes().all(|b| b.is_ascii_alphanumeric())
        {
            return Self::Prediction;
        }
        match get.and_then(|g| url::Url::parse(g).ok()) {
            Some(u) if u.path().starts_with("/v1/trainings/") => Self::Training,
            _ => Self::Prediction,
        }
    }

    /// `prediction` or `training`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Prediction => "prediction",
            Self::Training => "training",
        }
    }
}

/// `urls.get` of a body, all the envelope reads to tell the kind.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct UrlsProbe<'a> {
    #[serde(default, borrow, deserialize_with = "crate::borrowed::opt_str")]
    get: Option<std::borrow::Cow<'a, str>>,
}

impl UrlsProbe<'_> {
    pub(crate) fn kind(probe: Option<&Self>) -> BodyKind {
        BodyKind::of_get_url(probe.and_then(|p| p.get.as_deref()))
    }
}

/// A training, exactly the body of a training webhook and of `GET /v1/trainings/{id}`: the
/// prediction object's fields, with `output` being the new version and its weights.
///
/// `I` is the type of `input` (the trainer's parameters), [`serde_json::Value`] by default.
/// Fields only predictions have (`deadline`, `deployment`, `urls.stream`) stay `None`.
pub type Training<I = serde_json::Value> = Prediction<TrainingOutput, I>;

/// What a succeeded training produced.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrainingOutput {
    /// The new version, `owner/name:version_id`.
    #[serde(default)]
    pub version: Option<String>,
    /// Where the trained weights are (a `replicate.delivery` URL, which expires).
    #[serde(default)]
    pub weights: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::prediction::Event;

    #[test]
    fn urls_get_tells_the_kind() {
        let training = Some("https://api.replicate.com/v1/trainings/zz4ibbonubfz7carwiefibzgga");
        assert_eq!(BodyKind::of_get_url(training), BodyKind::Training);
        for other in [
            Some("https://api.replicate.com/v1/predictions/gm3qorzdhgbfurvjtvhg6dckhu"),
            Some("https://api.replicate.com/v1/predictions/v1/trainings/x"),
            Some("not a url"),
            None,
        ] {
            assert_eq!(
                BodyKind::of_get_url(other),
                BodyKind::Prediction,
                "{other:?}"
            );
        }
    }

    /// The kind as the parser alone tells it, before the fast path.
    fn parsed(get: &str) -> BodyKind {
        match url::Url::parse(get) {
            Ok(u) if u.path().starts_with("/v1/trainings/") => BodyKind::Training,
            _ => BodyKind::Prediction,
        }
    }

    #[test]
    fn the_fast_path_takes_only_urls_the_parser_calls_predictions() {
        let base = "https://api.replicate.com/v1/predictions/";
        for get in [
            "https://api.replicate.com/v1/predictions/../trainings/x",
            "https://api.replicate.com/v1/predictions/%2e%2e/trainings/x",
            "https://api.replicate.com/v1/predictions/.%2E/trainings/x",
            "https://api.replicate.com/v1/predictions/..%2ftrainings/x",
            "https://api.replicate.com/v1/predictions/..\\trainings\\x",
            "https://api.replicate.com/v1/predictions/\t../trainings/x",
            "https://API.REPLICATE.COM/v1/predictions/../trainings/x",
            "HTTPS://api.replicate.com/v1/trainings/x",
            "https://api.replicate.com:443/v1/trainings/x",
            "https://api.replicate.com/v1/trainings/x#/v1/predictions/",
            "https://api.replicate.com/v1//trainings/x",
            "https://api.replicate.com/v1/predictions/abc/../../trainings/x",
            "https://api.replicate.com/v1/predictions/",
            "https://api.replicate.com/v1/predictions/abc",
            "https://api.replicate.com/v1/predictions/ABC123",
            "https://api.replicate.com/v1/predictions/abc?x=/v1/trainings/",
            "https://api.replicate.com/v1/predictions/abc\u{e9}",
            " https://api.replicate.com/v1/trainings/x",
        ] {
            assert_eq!(BodyKind::of_get_url(Some(get)), parsed(get), "{get}");
        }
        assert_eq!(
            BodyKind::of_get_url(Some(&format!("{base}../trainings/x"))),
            BodyKind::Training
        );
    }

    #[test]
    fn a_training_body_decodes() {
        let t: Training = serde_json::from_str(
            r#"{"id":"zz4i","model":"ostris/flux-dev-lora-trainer","version":"abc","status":"succeeded",
                "input":{"steps":1000},"output":{"version":"me/lora:123","weights":"https://replicate.delivery/w.tar"},
                "urls":{"get":"https://api.replicate.com/v1/trainings/zz4i","cancel":"https://api.replicate.com/v1/trainings/zz4i/cancel"},
                "metrics":{"predict_time":12.5},"logs":"done\n","error":null,"created_at":"2024-01-01T00:00:00Z"}"#,
        )
        .unwrap();
        let output = t.output.clone().unwrap();
        assert_eq!(output.version.as_deref(), Some("me/lora:123"));
        assert_eq!(
            output.weights.as_deref(),
            Some("https://replicate.delivery/w.tar")
        );
        assert_eq!(
            BodyKind::of_get_url(t.urls.get.as_deref()),
            BodyKind::Training
        );
        assert_eq!(t.event(), Event::Completed);
    }
}
