//! JSON strings borrowed from the body they were read from.
//!
//! serde borrows a `Cow<'a, str>` field only when the field's type is exactly that; inside an
//! `Option` it allocates every time. [`opt_str`] keeps the borrow, and falls back to an owned
//! string only where the JSON text has escapes.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Deserializer, Visitor};

/// For `#[serde(default, borrow, deserialize_with = "opt_str")] field: Option<Cow<'a, str>>`.
pub(crate) fn opt_str<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Cow<'de, str>>, D::Error> {
    d.deserialize_option(OptStr)
}

struct OptStr;

impl<'de> Visitor<'de> for OptStr {
    type Value = Option<Cow<'de, str>>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string or null")
    }

    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_str(Str).map(Some)
    }
}

struct Str;

impl<'de> Visitor<'de> for Str {
    type Value = Cow<'de, str>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string")
    }

    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Cow::Borrowed(v))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Cow::Owned(v.to_owned()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
        Ok(Cow::Owned(v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize)]
    struct Probe<'a> {
        #[serde(default, borrow, deserialize_with = "opt_str")]
        url: Option<Cow<'a, str>>,
    }

    #[test]
    fn borrows_plain_strings_and_owns_escaped_ones() {
        let plain: Probe<'_> = serde_json::from_str(r#"{"url":"https://x/a?b=1"}"#).unwrap();
        assert!(matches!(plain.url, Some(Cow::Borrowed("https://x/a?b=1"))));
        let escaped: Probe<'_> =
            serde_json::from_str(r#"{"url":"https:\/\/x\/a?b=1\u0026c"}"#).unwrap();
        assert!(matches!(escaped.url, Some(Cow::Owned(ref s)) if s == "https://x/a?b=1&c"));
        for absent in [r#"{"url":null}"#, "{}"] {
            let p: Probe<'_> = serde_json::from_str(absent).unwrap();
            assert!(p.url.is_none(), "{absent}");
        }
        assert!(serde_json::from_str::<Probe<'_>>(r#"{"url":3}"#).is_err());
    }
}
