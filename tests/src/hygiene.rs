//! Secret hygiene: the texts that would reveal a secret, a token or a password if a program
//! printed them, and a check over everything it printed.

use std::fmt::Write as _;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};

/// A store URL whose password (`hunter2`) must never be printed back.
pub const STORE_WITH_PASSWORD: &str = "redis://admin:hunter2@127.0.0.1:1/0";

/// A fresh signing secret and API token for one test, and what their leak would look like.
#[derive(Debug)]
pub struct Known {
    /// A random `whsec_…` secret.
    pub secret: String,
    /// A random `r8_…` API token.
    pub token: String,
    /// Every form of the secret, the token, and the password of [`STORE_WITH_PASSWORD`].
    pub forbidden: Forbidden,
}

impl Known {
    /// A new random secret and token.
    pub fn generate() -> Self {
        let secret = replicate_webhook::Secret::generate().expose();
        let token = format!("r8_{}", replicate_webhook::testkit::new_prediction_id());
        let forbidden = Forbidden::new()
            .secret("the webhook secret", &secret)
            .text("the API token", &token)
            .text("the store password", "hunter2");
        Self {
            secret,
            token,
            forbidden,
        }
    }
}

/// What must not appear in a program's output, each with a name for the failure message.
#[derive(Debug, Default)]
pub struct Forbidden {
    needles: Vec<(String, String)>,
}

impl Forbidden {
    /// Nothing forbidden yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// A `whsec_…` signing secret in every form a leak could take: the text, the base64 part,
    /// and the decoded key as hex (both cases), as standard and URL-safe base64 (padded or not)
    /// and as Rust prints a byte slice (`[49, 242, …]`).
    #[must_use]
    pub fn secret(mut self, name: &str, whsec: &str) -> Self {
        let b64 = whsec.strip_prefix("whsec_").unwrap_or(whsec);
        let key = STANDARD
            .decode(b64)
            .or_else(|_| STANDARD_NO_PAD.decode(b64))
            .expect("a base64 secret");
        assert!(key.len() >= 8, "a key this short would match by chance");
        let hex: String = key.iter().fold(String::new(), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        });
        let debug = format!("{key:?}");
        // Without its brackets: a leak may split or re-wrap the list.
        let debug = debug
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let forms = [
            ("text", whsec.to_owned()),
            ("base64 part", b64.to_owned()),
            ("key as hex", hex.clone()),
            ("key as HEX", hex.to_uppercase()),
            ("key as base64", STANDARD.encode(&key)),
            ("key as unpadded base64", STANDARD_NO_PAD.encode(&key)),
            ("key as URL-safe base64", URL_SAFE.encode(&key)),
            (
                "key as unpadded URL-safe base64",
                URL_SAFE_NO_PAD.encode(&key),
            ),
            ("key as a byte list", debug),
        ];
        for (form, text) in forms {
            self.needles.push((format!("{name} ({form})"), text));
        }
        self
    }

    /// Any other text: an API token, a password.
    #[must_use]
    pub fn text(mut self, name: &str, text: &str) -> Self {
        assert!(
            text.len() >= 6,
            "{name}: a needle this short would match by chance"
        );
        self.needles.push((name.to_owned(), text.to_owned()));
        self
    }

    /// The names of the forbidden texts found in `output`.
    pub fn found_in(&self, output: &str) -> Vec<&str> {
        self.needles
            .iter()
            .filter(|(_, text)| output.contains(text.as_str()))
            .map(|(name, _)| name.as_str())
            .collect()
    }

    /// Panics with the program, what leaked and the whole output when `output` holds any of
    /// the forbidden texts.
    pub fn assert_absent(&self, program: &str, output: &str) {
        let found = self.found_in(output);
        assert!(found.is_empty(), "{program} printed {found:?}:\n{output}");
    }
}

/// Stdout and stderr of a finished program, labelled, for [`Forbidden::assert_absent`].
pub fn printed(output: &std::process::Output) -> String {
    labelled(
        &String::from_utf8_lossy(&output.stdout),
        &String::from_utf8_lossy(&output.stderr),
    )
}

/// Stdout and stderr in one text, each under a label.
pub fn labelled(stdout: &str, stderr: &str) -> String {
    format!("--- stdout\n{stdout}\n--- stderr\n{stderr}")
}

#[cfg(test)]
mod tests {
    use super::Forbidden;

    #[test]
    fn every_form_of_the_secret_is_caught() {
        let forbidden = Forbidden::new()
            .secret("secret", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
            .text("password", "hunter2");
        assert!(
            forbidden
                .found_in("nothing here; whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD")
                .is_empty()
        );
        for leak in [
            "secret=whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            "key 31f290f6bf06298aab4f08d43c3f082cf648a362da2da4b0",
            "KEY 31F290F6BF06298AAB4F08D43C3F082CF648A362DA2DA4B0",
            "Secret { key: [49, 242, 144, 246, 191, 6, 41, 138, 171, 79, 8, 212, 60, 63, 8, 44, 246, 72, 163, 98, 218, 45, 164, 176] }",
            "redis://admin:hunter2@127.0.0.1:1/0",
        ] {
            assert!(!forbidden.found_in(leak).is_empty(), "{leak}");
        }
    }
}
