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
use crate::training::{BodyKind, UrlsProbe};

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
pub(crate) type Lenient<'a> = lenient::Envelope<'a>;

mod lenient {
    use super::{Cow, Deserialize, RawValue, Status, UrlsProbe};

    /// Named as the envelope before it: serde names the type in some errors (an array too
    /// short, say), which the 400 quotes.
    #[derive(Debug, Deserialize)]
    pub struct Envelope<'a> {
        #[serde(borrow)]
        pub(super) id: Cow<'a, str>,
        #[serde(default, borrow)]
        pub(super) model: Cow<'a, str>,
        pub(super) status: Status,
        #[serde(default, borrow)]
        pub(super) output: Option<&'a RawValue>,
        #[serde(default, borrow)]
        pub(super) logs: Option<&'a RawValue>,
        #[serde(default, borrow, deserialize_with = "crate::borrowed::opt_str")]
        pub(super) webhook: Option<Cow<'a, str>>,
        #[serde(default, borrow)]
        pub(super) urls: Option<UrlsProbe<'a>>,
    }
}

impl<'a> Envelope<'a> {
    /// Parses a verified body; the error is serde's, for a 400.
    pub fn parse(body: &'a [u8]) -> Result<Self, serde_json::Error> {
        // One UTF-8 check, then `from_str`, which skips the check per string.
        let Ok(text) = std::str::from_utf8(body) else {
            return serde_json::from_slice(body).map(Envelope::Lenient);
        };
        // Only an object: serde also decodes a struct from an array, by field order, and
        // `Prediction`'s order is not the routing fields' (a `version` sits before `status`), so
        // an array would route on other elements than the old envelope read.
        if text
            .trim_start_matches([' ', '\t', '\n', '\r'])
            .starts_with('{')
            && let Ok(decoded) = serde_json::from_str::<Decoded>(text)
        {
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
    pub(crate) fn kind(&self) -> BodyKind {
        match self {
            Self::Decoded(p) => BodyKind::of_get_url(p.urls.get.as_deref()),
            Self::Lenient(e) => UrlsProbe::kind(e.urls.as_ref()),
        }
    }

    /// The decoded prediction, for the handler; `None` for a lenient body (or once taken).
    pub fn take_decoded(&mut self) -> Option<Box<Decoded>> {
        let Self::Decoded(decoded) = self else {
            return None;
        };
        let lenient = Self::Lenient(Lenient {
            id: Cow::Owned(decoded.id.clone()),
            model: Cow::Borrowed(""),
            status: decoded.status.clone(),
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
    let input = at_body_depth(&input)?;
    let output = output.map(|raw| at_body_depth(&raw)).transpose()?;
    #[rustfmt::skip]
    let typed = Prediction {
        id, model, version, status, input, output, error, logs, metrics, urls, created_at,
        started_at, completed_at, deadline, data_removed, source, deployment, webhook,
        webhook_events_filter,
    };
    Ok(typed)
}

/// Decodes a field's JSON text as deep in `serde_json`'s recursion limit (128 levels) as the
/// field sits in the body, one level down inside the body's object; decoded alone it would be
/// allowed one level more, and a body the whole-body decode rejects would reach a handler.
/// Only text long enough to nest that deep (two bytes a level) pays for the copy into `[...]`.
fn at_body_depth<T: DeserializeOwned>(raw: &RawValue) -> Result<T, serde_json::Error> {
    const LEVELS_LEFT_IN_BODY: usize = 127;
    let text = raw.get();
    if text.len() < 2 * LEVELS_LEFT_IN_BODY {
        return serde_json::from_str(text);
    }
    let wrapped = format!("[{text}]");
    serde_json::from_str::<(T,)>(&wrapped).map(|(value,)| value)
}

#[cfg(test)]
mod tests;
