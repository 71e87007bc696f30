//! A verified body, decoded once: what routing needs, and the rest kept for the handler.
//!
//! Routing needs a handful of fields, the handler all of them in its own types. Parsing the body
//! once for each would scan every byte twice, and the bulk of a large delivery is `logs`, a
//! string whose unescaping is most of a parse. So the body is decoded once into a prediction
//! whose `input` and `output` stay JSON text ([`Decoded`]): routing reads its fields, and the
//! handler's `Prediction<Output, Input>` is built from it by decoding only those two texts.
//!
//! A body that is valid JSON with the routing fields, but whose other fields do not decode
//! (a timestamp that is not RFC 3339, say), still routes as before through [`Lenient`]: its
//! handler then reports the decode error, exactly as if the body had never been pre-decoded.

use std::borrow::Cow;

use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::value::RawValue;

use crate::prediction::{Prediction, Status};
use crate::training::{Kind, UrlsProbe};

/// A prediction with `input` and `output` still JSON text.
pub type Decoded = Prediction<Box<RawValue>, Box<RawValue>>;

/// A body parsed far enough to route and deduplicate it.
#[derive(Debug)]
pub enum Envelope<'a> {
    /// Every field decoded but `input` and `output`: the handler starts from this.
    Decoded(Box<Decoded>),
    /// Just the routing fields: the rest did not decode as a prediction.
    Lenient(Lenient<'a>),
}

/// Just enough of the body to route and deduplicate. Borrowed from the body wherever JSON
/// allows (strings with escapes are the exception).
#[derive(Debug, Deserialize)]
pub struct Lenient<'a> {
    #[serde(borrow)]
    id: Cow<'a, str>,
    #[serde(default, borrow)]
    model: Cow<'a, str>,
    status: Status,
    #[serde(default, borrow)]
    output: Option<&'a RawValue>,
    #[serde(default, borrow)]
    logs: Option<&'a RawValue>,
    #[serde(default, borrow, deserialize_with = "crate::borrowed::opt_str")]
    webhook: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    urls: Option<UrlsProbe<'a>>,
}

impl<'a> Envelope<'a> {
    /// Parses a verified body; the error is serde's, for a 400.
    pub fn parse(body: &'a [u8]) -> Result<Self, serde_json::Error> {
        // One UTF-8 check, then `from_str`, which skips the check per string.
        let Ok(text) = std::str::from_utf8(body) else {
            return serde_json::from_slice(body).map(Envelope::Lenient);
        };
        if let Ok(decoded) = serde_json::from_str::<Decoded>(text) {
            return Ok(Self::Decoded(Box::new(decoded)));
        }
        serde_json::from_str(text).map(Envelope::Lenient)
    }

    pub(crate) fn id(&self) -> &str {
        match self {
            Self::Decoded(p) => &p.id,
            Self::Lenient(e) => &e.id,
        }
    }

    pub(crate) fn model(&self) -> &str {
        match self {
            Self::Decoded(p) => &p.model,
            Self::Lenient(e) => &e.model,
        }
    }

    pub(crate) fn status(&self) -> &Status {
        match self {
            Self::Decoded(p) => &p.status,
            Self::Lenient(e) => &e.status,
        }
    }

    /// The output's JSON text, when there is one (`null` included).
    pub(crate) fn output(&self) -> Option<&str> {
        match self {
            Self::Decoded(p) => p.output.as_deref().map(RawValue::get),
            Self::Lenient(e) => e.output.map(RawValue::get),
        }
    }

    /// The length of the logs text. Logs are cumulative, so fewer means an older delivery.
    pub(crate) fn logs_len(&self) -> usize {
        match self {
            Self::Decoded(p) => p.logs.as_ref().map_or(0, String::len),
            // Measured as decoded, like the line above, so both kinds of body compare alike.
            Self::Lenient(e) => e.logs.map_or(0, |raw| {
                serde_json::from_str::<Option<Cow<'_, str>>>(raw.get())
                    .ok()
                    .flatten()
                    .map_or(raw.get().len(), |logs| logs.len())
            }),
        }
    }

    /// The `webhook` URL the body was signed with.
    pub(crate) fn webhook(&self) -> Option<&str> {
        match self {
            Self::Decoded(p) => p.webhook.as_deref(),
            Self::Lenient(e) => e.webhook.as_deref(),
        }
    }

    /// Prediction or training, from `urls.get`.
    pub(crate) fn kind(&self) -> Kind {
        match self {
            Self::Decoded(p) => Kind::of_get_url(p.urls.get.as_deref()),
            Self::Lenient(e) => UrlsProbe::kind(e.urls.as_ref()),
        }
    }

    /// The decoded prediction, for the handler; `None` for a lenient body (or once taken).
    pub fn take_decoded(&mut self) -> Option<Box<Decoded>> {
        match self {
            Self::Decoded(_) => {
                let lenient = Self::Lenient(Lenient {
                    id: Cow::Owned(self.id().to_owned()),
                    model: Cow::Borrowed(""),
                    status: self.status().clone(),
                    output: None,
                    logs: None,
                    webhook: None,
                    urls: None,
                });
                match std::mem::replace(self, lenient) {
                    Self::Decoded(decoded) => Some(decoded),
                    Self::Lenient(_) => None,
                }
            }
            Self::Lenient(_) => None,
        }
    }
}

/// The handler's prediction: `input` and `output` decoded into `I` and `O`, every other field
/// moved.
pub fn typed<O: DeserializeOwned, I: DeserializeOwned>(
    decoded: Box<Decoded>,
) -> Result<Prediction<O, I>, serde_json::Error> {
    // Rust has no type-changing struct update: every field is moved by name, in full, so a
    // field added to `Prediction` cannot be forgotten here.
    #[rustfmt::skip]
    let Prediction {
        id, model, version, status, input, output, error, logs, metrics, urls, created_at,
        started_at, completed_at, deadline, data_removed, source, deployment, webhook,
        webhook_events_filter,
    } = *decoded;
    let input = serde_json::from_str(input.get())?;
    let output = output
        .map(|raw| serde_json::from_str(raw.get()))
        .transpose()?;
    #[rustfmt::skip]
    let typed = Prediction {
        id, model, version, status, input, output, error, logs, metrics, urls, created_at,
        started_at, completed_at, deadline, data_removed, source, deployment, webhook,
        webhook_events_filter,
    };
    Ok(typed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::payload as fixture;

    #[test]
    fn real_payloads_decode_in_full() {
        for name in [
            "hello-world-succeeded.json",
            "flux-kontext-pro-succeeded.json",
        ] {
            let body = fixture(name);
            let envelope = Envelope::parse(&body).unwrap();
            assert!(matches!(envelope, Envelope::Decoded(_)), "{name}");
            let full: Prediction = serde_json::from_slice(&body).unwrap();
            assert_eq!(envelope.id(), full.id);
            assert_eq!(envelope.model(), full.model);
            assert_eq!(*envelope.status(), full.status);
            assert_eq!(envelope.logs_len(), full.logs.map_or(0, |l| l.len()));
        }
    }

    #[test]
    fn a_field_that_does_not_decode_still_routes() {
        let body = br#"{"id":"p1","model":"a/b","status":"succeeded","input":{},
            "created_at":"yesterday","logs":"a\nb","output":[1],"webhook":"https://x/h?k=1"}"#;
        let envelope = Envelope::parse(body).unwrap();
        assert!(matches!(envelope, Envelope::Lenient(_)));
        assert_eq!(
            (envelope.id(), envelope.model(), envelope.status()),
            ("p1", "a/b", &Status::Succeeded)
        );
        assert_eq!(envelope.logs_len(), 3);
        assert_eq!(envelope.output(), Some("[1]"));
        assert_eq!(envelope.webhook(), Some("https://x/h?k=1"));
    }

    #[test]
    fn both_kinds_measure_logs_alike() {
        let decoded = br#"{"id":"p","status":"processing","input":{},"logs":"\u00e9\n"}"#;
        let lenient =
            br#"{"id":"p","status":"processing","input":{},"logs":"\u00e9\n","metrics":3}"#;
        let (a, b) = (
            Envelope::parse(decoded).unwrap(),
            Envelope::parse(lenient).unwrap(),
        );
        assert!(matches!(a, Envelope::Decoded(_)) && matches!(b, Envelope::Lenient(_)));
        assert_eq!((a.logs_len(), b.logs_len()), (3, 3));
    }

    #[test]
    fn what_cannot_route_is_an_error() {
        for body in [
            &b"{}"[..],
            b"[1]",
            b"{\"id\":\"p\"}",
            b"not json",
            b"{\"id\":\"\xff\"}",
        ] {
            assert!(Envelope::parse(body).is_err(), "{body:?}");
        }
    }

    #[test]
    fn the_typed_prediction_equals_a_decode_of_the_whole_body() {
        for name in [
            "hello-world-succeeded.json",
            "flux-kontext-pro-succeeded.json",
        ] {
            let body = fixture(name);
            let Envelope::Decoded(decoded) = Envelope::parse(&body).unwrap() else {
                panic!("{name} did not decode");
            };
            let typed: Prediction = typed(decoded).unwrap();
            assert_eq!(
                typed,
                serde_json::from_slice::<Prediction>(&body).unwrap(),
                "{name}"
            );
        }
        // `null` output stays `None`, as it does in a decode of the whole body.
        let body = br#"{"id":"p","status":"starting","input":{"a":1},"output":null}"#;
        let Envelope::Decoded(decoded) = Envelope::parse(body).unwrap() else {
            panic!("did not decode");
        };
        let typed: Prediction<String> = typed(decoded).unwrap();
        assert_eq!(
            typed,
            serde_json::from_slice::<Prediction<String>>(body).unwrap()
        );
        assert_eq!(typed.output, None);
    }

    #[test]
    fn taking_the_prediction_keeps_what_routing_still_reads() {
        let body = fixture("hello-world-succeeded.json");
        let mut envelope = Envelope::parse(&body).unwrap();
        let id = envelope.id().to_owned();
        assert!(envelope.take_decoded().is_some());
        assert_eq!(
            (envelope.id(), envelope.status()),
            (&*id, &Status::Succeeded)
        );
        assert!(envelope.take_decoded().is_none());
    }
}
