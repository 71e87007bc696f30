//! Standard Webhooks signatures, as Replicate sends them.
//!
//! Pure functions, no actix: the receiver, the test kit, the CLI and the simulator all sign and
//! verify through this module. See `replicate-protocol.md` §3 for the sources.

use std::fmt;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE_NO_PAD};
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use hmac::{Hmac, KeyInit as _, Mac as _};
use sha2::Sha256;
use subtle::ConstantTimeEq;

/// The header carrying the message id, stable across retries of one delivery.
pub const HEADER_ID: &str = "webhook-id";
/// The header carrying the attempt time, in seconds since the Unix epoch.
pub const HEADER_TIMESTAMP: &str = "webhook-timestamp";
/// The header carrying the space-separated list of `v1,<base64>` signatures.
pub const HEADER_SIGNATURE: &str = "webhook-signature";

/// The replay window Replicate's docs and the Standard Webhooks libraries use.
pub const DEFAULT_TOLERANCE: Duration = Duration::from_mins(5);

/// The most `webhook-signature` entries looked at; a longer list is refused.
///
/// Replicate sends one entry, a secret rotation two or three; the Standard Webhooks libraries are
/// tested with a handful. Without a cap, one request could make the receiver decode thousands.
pub const MAX_SIGNATURE_ENTRIES: usize = 32;

/// The longest `webhook-signature` value accepted, checked before the value is split: room for
/// [`MAX_SIGNATURE_ENTRIES`] entries of up to 127 bytes each (a `v1` entry is 47, an Ed25519
/// `v1a` entry 92).
pub const MAX_SIGNATURE_HEADER_LEN: usize = MAX_SIGNATURE_ENTRIES * 128;

const SECRET_PREFIX: &str = "whsec_";
const MAC_LEN: usize = 32;

/// Accepts secrets with or without `=` padding, as the Standard Webhooks libraries do.
const LENIENT: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// A webhook signing secret: the base64-decoded bytes of the text after `whsec_`.
///
/// `Debug` and `Display` never show the key.
#[derive(Clone)]
pub struct Secret {
    key: Vec<u8>,
    /// The HMAC with the key already absorbed, cloned per message: keying it again for every
    /// delivery cost two extra SHA-256 blocks, a sixth of verifying a 1 KiB body.
    keyed: Hmac<Sha256>,
}

/// Why a secret was refused at configuration time. Never contains the secret itself.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    /// Nothing after the optional `whsec_` prefix.
    #[error("the webhook secret is empty")]
    Empty,
    /// The text after `whsec_` is not standard base64.
    #[error("the webhook secret is not valid base64 after the `whsec_` prefix")]
    NotBase64,
}

impl Secret {
    /// Parses `whsec_<base64>` (the prefix and the padding are optional).
    pub fn parse(text: &str) -> Result<Self, SecretError> {
        let text = text.trim();
        let b64 = text.strip_prefix(SECRET_PREFIX).unwrap_or(text);
        // Nothing to decode decodes to no key, which `from_bytes` refuses as empty.
        let key = LENIENT.decode(b64).map_err(|_| SecretError::NotBase64)?;
        Self::from_bytes(key)
    }

    /// Builds a secret from raw key bytes.
    pub fn from_bytes(key: impl Into<Vec<u8>>) -> Result<Self, SecretError> {
        let key = key.into();
        if key.is_empty() {
            return Err(SecretError::Empty);
        }
        Ok(Self::keyed(key))
    }

    fn keyed(key: Vec<u8>) -> Self {
        let keyed = Hmac::<Sha256>::new_from_slice(&key).expect("HMAC accepts any key length");
        Self { key, keyed }
    }

    /// A fresh random 24-byte secret, the size Replicate issues.
    pub fn generate() -> Self {
        let mut key = vec![0u8; 24];
        getrandom::fill(&mut key).expect("the operating system's random source is unavailable");
        Self::keyed(key)
    }

    /// The secret in its `whsec_<base64>` form, for printing to a developer who asked for it.
    pub fn expose(&self) -> String {
        format!("{SECRET_PREFIX}{}", STANDARD.encode(&self.key))
    }

    fn mac(&self, id: &str, timestamp: &str, body: &[u8]) -> Hmac<Sha256> {
        let mut mac = self.keyed.clone();
        mac.update(id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.as_bytes());
        mac.update(b".");
        mac.update(body);
        mac
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl std::str::FromStr for Secret {
    type Err = SecretError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

/// The three Standard Webhooks header values of one delivery attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedHeaders {
    /// `webhook-id`.
    pub id: String,
    /// `webhook-timestamp`.
    pub timestamp: String,
    /// `webhook-signature`.
    pub signature: String,
}

impl SignedHeaders {
    /// The headers as `(name, value)` pairs, ready for any HTTP client.
    pub fn pairs(&self) -> [(&'static str, &str); 3] {
        [
            (HEADER_ID, &self.id),
            (HEADER_TIMESTAMP, &self.timestamp),
            (HEADER_SIGNATURE, &self.signature),
        ]
    }
}

/// Signs `body` as Replicate would: `v1,<base64(HMAC-SHA256(key, id.timestamp.body))>`.
pub fn sign(secret: &Secret, id: &str, timestamp: i64, body: &[u8]) -> SignedHeaders {
    let timestamp = timestamp.to_string();
    let tag = secret.mac(id, &timestamp, body).finalize().into_bytes();
    SignedHeaders {
        id: id.to_owned(),
        signature: format!("v1,{}", STANDARD.encode(tag)),
        timestamp,
    }
}

/// Why a delivery was refused. The receiver answers 401 for every variant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// A required `webhook-*` header is absent or empty.
    #[error("missing or empty `{0}` header")]
    MissingHeader(&'static str),
    /// A `webhook-*` header appears more than once.
    #[error("the `{0}` header appears more than once")]
    DuplicateHeader(&'static str),
    /// A header value holds bytes other than visible ASCII.
    #[error("the `{0}` header is not visible ASCII")]
    InvalidHeader(&'static str),
    /// `webhook-timestamp` is not a plain decimal number of seconds.
    #[error("`webhook-timestamp` is not a decimal number of seconds")]
    MalformedTimestamp,
    /// The timestamp is outside the tolerance, in either direction.
    #[error("`webhook-timestamp` is outside the allowed tolerance")]
    TimestampOutOfTolerance,
    /// `webhook-signature` is longer than [`MAX_SIGNATURE_HEADER_LEN`] bytes.
    #[error("the `webhook-signature` header is longer than {MAX_SIGNATURE_HEADER_LEN} bytes")]
    SignatureHeaderTooLong,
    /// `webhook-signature` has more than [`MAX_SIGNATURE_ENTRIES`] space-separated entries.
    #[error("the `webhook-signature` header has more than {MAX_SIGNATURE_ENTRIES} entries")]
    TooManySignatures,
    /// No `v1` entry matched any configured secret.
    #[error("no signature matched")]
    NoMatch,
}

impl VerifyError {
    /// A short machine-readable reason, used in logs and by the CLI.
    pub fn reason(self) -> &'static str {
        match self {
            Self::MissingHeader(_) => "missing-header",
            Self::DuplicateHeader(_) => "duplicate-header",
            Self::InvalidHeader(_) => "invalid-header",
            Self::MalformedTimestamp | Self::TimestampOutOfTolerance => "timestamp",
            Self::SignatureHeaderTooLong => "signature-header-too-long",
            Self::TooManySignatures => "too-many-signatures",
            Self::NoMatch => "signature",
        }
    }
}

/// Verification settings: the accepted secrets and the timestamp tolerance.
#[derive(Debug, Clone)]
pub struct Verifier {
    secrets: Vec<Secret>,
    tolerance: Duration,
}

impl Verifier {
    /// A verifier accepting any of `secrets` (several during a rotation).
    pub fn new(secrets: Vec<Secret>) -> Self {
        Self {
            secrets,
            tolerance: DEFAULT_TOLERANCE,
        }
    }

    /// Sets the allowed clock difference, in both directions.
    #[must_use]
    pub fn tolerance(mut self, tolerance: Duration) -> Self {
        self.tolerance = tolerance;
        self
    }

    /// The secret deliveries this receiver makes itself are signed with (the first one).
    pub fn signing_secret(&self) -> Option<&Secret> {
        self.secrets.first()
    }

    /// The configured tolerance.
    pub fn current_tolerance(&self) -> Duration {
        self.tolerance
    }

    /// Verifies one delivery against the current clock.
    pub fn verify(
        &self,
        id: &str,
        timestamp: &str,
        signature: &str,
        body: &[u8],
    ) -> Result<(), VerifyError> {
        self.verify_at(id, timestamp, signature, body, unix_now())
    }

    /// Checks everything but the MAC: headers present and well-formed, timestamp within the
    /// tolerance, the signature list within its bounds. Cheap and body-free, so the receiver runs
    /// it before it buffers a body: a request that cannot verify costs no memory.
    pub fn check_headers(
        &self,
        id: &str,
        timestamp: &str,
        signature: &str,
    ) -> Result<(), VerifyError> {
        self.check_headers_at(id, timestamp, signature, unix_now())
    }

    /// [`Verifier::check_headers`] with the clock fixed at `now`.
    pub fn check_headers_at(
        &self,
        id: &str,
        timestamp: &str,
        signature: &str,
        now: i64,
    ) -> Result<(), VerifyError> {
        check_value(HEADER_ID, id)?;
        check_value(HEADER_TIMESTAMP, timestamp)?;
        // Bounded before anything walks the value, so a huge header costs one comparison.
        if signature.len() > MAX_SIGNATURE_HEADER_LEN {
            return Err(VerifyError::SignatureHeaderTooLong);
        }
        check_value(HEADER_SIGNATURE, signature)?;
        let sent = parse_timestamp(timestamp)?;
        let tolerance = i64::try_from(self.tolerance.as_secs()).unwrap_or(i64::MAX);
        if now.abs_diff(sent) > tolerance.unsigned_abs() {
            return Err(VerifyError::TimestampOutOfTolerance);
        }
        // Counted before any entry is decoded: an over-long list fails whatever it holds.
        if signature.split(' ').nth(MAX_SIGNATURE_ENTRIES).is_some() {
            return Err(VerifyError::TooManySignatures);
        }
        Ok(())
    }

    /// Verifies one delivery with the clock fixed at `now` (seconds since the epoch).
    pub fn verify_at(
        &self,
        id: &str,
        timestamp: &str,
        signature: &str,
        body: &[u8],
        now: i64,
    ) -> Result<(), VerifyError> {
        self.check_headers_at(id, timestamp, signature, now)?;
        for secret in &self.secrets {
            let expected = secret.mac(id, timestamp, body).finalize().into_bytes();
            // Decoded as compared, on the stack: no entry costs an allocation nor a buffer of
            // the cap's size. Every candidate is compared, so the time taken does not reveal
            // which one matched.
            let matched = signature
                .split(' ')
                .filter_map(|entry| entry.split_once(','))
                .filter(|(version, _)| *version == "v1")
                .filter_map(|(_, b64)| decode_tag(b64))
                .fold(subtle::Choice::from(0), |acc, tag| {
                    acc | same_tag(&tag, &expected)
                });
            if bool::from(matched) {
                return Ok(());
            }
        }
        Err(VerifyError::NoMatch)
    }
}

/// Constant time, with one optimization barrier per tag: `subtle`'s slice comparison puts one
/// on every byte, which cost more than the rest of the comparison.
fn same_tag(tag: &[u8; MAC_LEN], expected: &[u8]) -> subtle::Choice {
    let diff = tag
        .iter()
        .zip(expected)
        .fold(0u8, |acc, (a, b)| acc | (a ^ b));
    diff.ct_eq(&0) & subtle::Choice::from(u8::from(expected.len() == MAC_LEN))
}

/// The base64 of a 32-byte tag: 44 characters padded, 43 unpadded.
const TAG_B64_MAX: usize = MAC_LEN.div_ceil(3) * 4;

/// Decodes one `v1` tag, padded or not, into a stack buffer.
fn decode_tag(b64: &str) -> Option<[u8; MAC_LEN]> {
    if b64.len() > TAG_B64_MAX {
        return None;
    }
    // Room for what 44 base64 characters can decode to, so only a wrong length fails below.
    let mut buf = [0u8; TAG_B64_MAX / 4 * 3];
    let len = STANDARD
        .decode_slice(b64, &mut buf)
        .or_else(|_| STANDARD_NO_PAD.decode_slice(b64, &mut buf))
        .ok()?;
    buf.get(..len)?.try_into().ok()
}

fn check_value(name: &'static str, value: &str) -> Result<(), VerifyError> {
    if value.is_empty() {
        return Err(VerifyError::MissingHeader(name));
    }
    // Visible ASCII or space is 0x20..=0x7E. Folded without stopping early, so the loop
    // vectorizes instead of branching per byte.
    if !value
        .bytes()
        .fold(true, |ok, b| ok & (0x20..=0x7e).contains(&b))
    {
        return Err(VerifyError::InvalidHeader(name));
    }
    Ok(())
}

/// ASCII digits only: `+1614265330` and `1614265330.0` are refused even when signed over that text.
fn parse_timestamp(text: &str) -> Result<i64, VerifyError> {
    if text.is_empty() || text.len() > 18 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(VerifyError::MalformedTimestamp);
    }
    text.parse().map_err(|_| VerifyError::MalformedTimestamp)
}

/// Seconds since the Unix epoch, from the system clock.
pub fn unix_now() -> i64 {
    crate::clock::now_ms() / 1000
}

/// A fresh `msg_…` message id.
pub fn new_message_id() -> String {
    let mut raw = [0u8; 16];
    getrandom::fill(&mut raw).expect("the operating system's random source is unavailable");
    format!("msg_{}", URL_SAFE_NO_PAD.encode(raw))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const BODY: &[u8] = br#"{"test": 2432232314}"#;
    const SIG: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

    fn verifier() -> Verifier {
        Verifier::new(vec![Secret::parse(SECRET).unwrap()])
    }

    /// Verifies `sig` over the shared vector's id, timestamp and body, when it was signed.
    fn verify(sig: &str) -> Result<(), VerifyError> {
        verifier().verify_at(ID, "1614265330", sig, BODY, 1_614_265_330)
    }

    #[test]
    fn sign_reproduces_the_shared_vector() {
        let headers = sign(&Secret::parse(SECRET).unwrap(), ID, 1_614_265_330, BODY);
        assert_eq!(headers.signature, SIG);
        assert_eq!(headers.timestamp, "1614265330");
    }

    #[test]
    fn tolerance_applies_in_both_directions() {
        let v = verifier();
        assert_eq!(
            v.verify_at(ID, "1614265330", SIG, BODY, 1_614_265_330 + 300),
            Ok(())
        );
        assert_eq!(
            v.verify_at(ID, "1614265330", SIG, BODY, 1_614_265_330 - 300),
            Ok(())
        );
        assert_eq!(
            v.verify_at(ID, "1614265330", SIG, BODY, 1_614_265_330 + 301),
            Err(VerifyError::TimestampOutOfTolerance)
        );
        assert_eq!(
            v.verify_at(ID, "1614265330", SIG, BODY, 1_614_265_330 - 301),
            Err(VerifyError::TimestampOutOfTolerance)
        );
        let wide = verifier().tolerance(Duration::from_hours(1));
        assert_eq!(
            wide.verify_at(ID, "1614265330", SIG, BODY, 1_614_265_330 + 3000),
            Ok(())
        );
    }

    #[test]
    fn timestamps_must_be_plain_digits_even_when_signed() {
        let secret = Secret::parse(SECRET).unwrap();
        for text in ["+1614265330", "1614265330.0", " 1614265330", "-5", "0x10"] {
            let tag = secret.mac(ID, text, BODY).finalize().into_bytes();
            let sig = format!("v1,{}", STANDARD.encode(tag));
            assert_eq!(
                verifier().verify_at(ID, text, &sig, BODY, 1_614_265_330),
                Err(VerifyError::MalformedTimestamp),
                "{text}"
            );
        }
    }

    #[test]
    fn rotation_accepts_any_configured_secret() {
        let v = Verifier::new(vec![Secret::generate(), Secret::parse(SECRET).unwrap()]);
        assert_eq!(
            v.verify_at(ID, "1614265330", SIG, BODY, 1_614_265_330),
            Ok(())
        );
    }

    #[test]
    fn malformed_entries_are_skipped_not_fatal() {
        let sig = format!("v1 v1,abc ,,, v1,!!!! {SIG}");
        assert_eq!(verify(&sig), Ok(()));
    }

    #[test]
    fn secrets_parse_with_and_without_prefix_and_padding() {
        let a = Secret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let b = Secret::parse("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        assert_eq!(a.key, b.key);
        assert_eq!(Secret::parse("whsec_YWJj").unwrap().key, b"abc");
        assert_eq!(Secret::parse("whsec_YWI").unwrap().key, b"ab");
        assert_eq!(Secret::parse("whsec_YWI=").unwrap().key, b"ab");
        assert_eq!(Secret::parse("").unwrap_err(), SecretError::Empty);
        assert_eq!(Secret::parse("whsec_").unwrap_err(), SecretError::Empty);
        assert_eq!(
            Secret::parse("whsec_***notbase64***").unwrap_err(),
            SecretError::NotBase64
        );
    }

    #[test]
    fn debug_never_shows_the_key() {
        let secret = Secret::parse(SECRET).unwrap();
        let shown = format!("{secret:?} {:?}", verifier());
        assert!(!shown.contains("MfKQ9r8"), "{shown}");
        assert!(shown.contains("redacted"));
    }

    #[test]
    fn generated_secrets_round_trip() {
        let secret = Secret::generate();
        let again = Secret::parse(&secret.expose()).unwrap();
        assert_eq!(secret.key, again.key);
        assert_eq!(secret.key.len(), 24);
    }

    #[test]
    fn up_to_the_cap_every_entry_is_considered() {
        // The matching entry last, behind entries that decode to wrong tags.
        let wrong = format!("v1,{}", STANDARD.encode([7u8; MAC_LEN]));
        let mut entries = vec![wrong.as_str(); MAX_SIGNATURE_ENTRIES - 1];
        entries.push(SIG);
        let sig = entries.join(" ");
        assert_eq!(verify(&sig), Ok(()));
    }

    #[test]
    fn more_entries_than_the_cap_fail_even_with_a_valid_one() {
        let mut entries = vec!["v1,AAAA"; MAX_SIGNATURE_ENTRIES];
        entries.insert(0, SIG);
        let sig = entries.join(" ");
        let err = verify(&sig).unwrap_err();
        assert_eq!(err, VerifyError::TooManySignatures);
        assert_eq!(err.reason(), "too-many-signatures");
        assert!(err.to_string().contains("more than 32 entries"), "{err}");
        // Empty entries count too: the cap is on what the verifier has to walk.
        let spaces = format!("{SIG}{}", " ".repeat(MAX_SIGNATURE_ENTRIES));
        assert_eq!(verify(&spaces), Err(VerifyError::TooManySignatures));
    }

    #[test]
    fn an_over_long_header_fails_before_it_is_split() {
        let mut sig = SIG.to_owned();
        sig.push(' ');
        sig.push_str(&"x".repeat(MAX_SIGNATURE_HEADER_LEN - sig.len()));
        assert_eq!(sig.len(), MAX_SIGNATURE_HEADER_LEN);
        assert_eq!(verify(&sig), Ok(()));
        sig.push('x');
        let err = verify(&sig).unwrap_err();
        assert_eq!(err, VerifyError::SignatureHeaderTooLong);
        assert_eq!(err.reason(), "signature-header-too-long");
        // Refused on length alone, before the bytes are looked at.
        let binary = format!("{SIG} {}", "\u{1}".repeat(MAX_SIGNATURE_HEADER_LEN));
        assert_eq!(verify(&binary), Err(VerifyError::SignatureHeaderTooLong));
    }

    #[test]
    fn tags_decode_padded_or_not_and_only_at_32_bytes() {
        let unpadded = SIG.trim_end_matches('=');
        assert_eq!(verify(unpadded), Ok(()));
        let b64 = &SIG[3..];
        assert!(decode_tag(b64).is_some());
        assert!(decode_tag(&STANDARD.encode([1u8; 31])).is_none());
        assert!(decode_tag(&STANDARD.encode([1u8; 33])).is_none());
        assert!(decode_tag(&format!("{b64}A")).is_none());
        assert!(decode_tag("").is_none());
    }

    #[test]
    fn non_ascii_headers_are_refused() {
        assert_eq!(
            verifier().verify_at("msg_é", "1614265330", SIG, BODY, 1_614_265_330),
            Err(VerifyError::InvalidHeader(HEADER_ID))
        );
        assert_eq!(
            verify(""),
            Err(VerifyError::MissingHeader(HEADER_SIGNATURE))
        );
    }
}
