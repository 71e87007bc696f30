//! Subscriber tokens: one prediction, one expiry, HMAC-SHA256 under a key of the live channel's
//! own. `v1.<expiry unix seconds>.<prediction id, base64url>.<MAC, base64url>`.
//!
//! The prediction id travels inside the token so a valid token for another prediction is told
//! apart (403) from a forged one (401); both are decided from the token and the key alone, in
//! constant time, before any state is read.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, KeyInit as _, Mac as _};
use sha2::Sha256;

use crate::signature::Secret;

type HmacSha256 = Hmac<Sha256>;

/// The label the token key is derived under, so the key is never the webhook secret itself and
/// a MAC made for one purpose never verifies for another.
const KEY_LABEL: &[u8] = b"replicate-webhook live channel token key v1";
const VERSION: &str = "v1";
/// Longer ids are not Replicate's: refused before any MAC is computed.
const MAX_ID_LEN: usize = 256;

/// The key tokens are signed with. Its `Debug` shows nothing of it.
#[derive(Clone)]
pub struct TokenKey([u8; 32]);

impl fmt::Debug for TokenKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TokenKey(<redacted>)")
    }
}

/// Why a token was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// No `token` parameter.
    #[error("missing token")]
    Missing,
    /// Not a token this key signed.
    #[error("invalid token")]
    Invalid,
    /// Signed, but past its expiry.
    #[error("expired token")]
    Expired,
    /// Signed for another prediction.
    #[error("token is for another prediction")]
    OtherPrediction,
}

impl TokenKey {
    /// A key derived from the webhook signing secret (HMAC of a fixed label), so instances that
    /// share a secret accept each other's tokens with no extra setting.
    pub fn derive(secret: &Secret) -> Self {
        Self::from_bytes(secret.expose().as_bytes())
    }

    /// A key of the app's own choosing (at least 32 random bytes are advisable).
    pub fn from_bytes(key: &[u8]) -> Self {
        let mut mac = HmacSha256::new_from_slice(key).expect("HMAC takes keys of any length");
        mac.update(KEY_LABEL);
        Self(mac.finalize().into_bytes().into())
    }

    fn mac(&self, prediction: &str, expiry: i64) -> HmacSha256 {
        let mut mac = HmacSha256::new_from_slice(&self.0).expect("HMAC takes keys of any length");
        mac.update(VERSION.as_bytes());
        mac.update(b"\0");
        mac.update(prediction.as_bytes());
        mac.update(b"\0");
        mac.update(&expiry.to_be_bytes());
        mac
    }

    /// A token for `prediction` valid until `expiry` (unix seconds).
    pub fn mint(&self, prediction: &str, expiry: i64) -> String {
        let tag = self.mac(prediction, expiry).finalize().into_bytes();
        format!(
            "{VERSION}.{expiry}.{}.{}",
            URL_SAFE_NO_PAD.encode(prediction),
            URL_SAFE_NO_PAD.encode(tag)
        )
    }

    /// Checks `token` for `prediction` at `now` (unix seconds).
    pub fn check(&self, token: Option<&str>, prediction: &str, now: i64) -> Result<(), TokenError> {
        let token = token.ok_or(TokenError::Missing)?;
        let mut parts = token.split('.');
        let (Some(VERSION), Some(expiry), Some(id), Some(tag), None) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return Err(TokenError::Invalid);
        };
        let expiry: i64 = expiry.parse().map_err(|_| TokenError::Invalid)?;
        if id.len() > MAX_ID_LEN.div_ceil(3) * 4 {
            return Err(TokenError::Invalid);
        }
        let id = URL_SAFE_NO_PAD
            .decode(id)
            .ok()
            .and_then(|id| String::from_utf8(id).ok())
            .ok_or(TokenError::Invalid)?;
        let tag = URL_SAFE_NO_PAD
            .decode(tag)
            .map_err(|_| TokenError::Invalid)?;
        // `verify_slice` compares in constant time.
        self.mac(&id, expiry)
            .verify_slice(&tag)
            .map_err(|_| TokenError::Invalid)?;
        if expiry <= now {
            return Err(TokenError::Expired);
        }
        if id != prediction {
            return Err(TokenError::OtherPrediction);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> TokenKey {
        TokenKey::derive(&Secret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap())
    }

    #[test]
    fn a_minted_token_checks_until_it_expires() {
        let token = key().mint("abc", 1_000);
        assert_eq!(key().check(Some(&token), "abc", 999), Ok(()));
        assert_eq!(
            key().check(Some(&token), "abc", 1_000),
            Err(TokenError::Expired)
        );
    }

    #[test]
    fn refusals_say_why() {
        let token = key().mint("abc", 1_000);
        assert_eq!(key().check(None, "abc", 0), Err(TokenError::Missing));
        assert_eq!(
            key().check(Some(&token), "xyz", 0),
            Err(TokenError::OtherPrediction)
        );
        let other = TokenKey::from_bytes(b"another key").mint("abc", 1_000);
        let forged = token.replace("v1.1000.", "v1.9999.");
        for invalid in [
            &*other,
            &*forged,
            "",
            "v1",
            "v1.1.2.3.4",
            "v2.1000.YWJj.AAAA",
            "v1.x.YWJj.AAAA",
        ] {
            let checked = key().check(Some(invalid), "abc", 0);
            assert_eq!(checked, Err(TokenError::Invalid), "{invalid}");
        }
    }

    #[test]
    fn the_key_is_not_the_secret_and_hides_in_debug() {
        let secret = Secret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        assert_eq!(format!("{:?}", key()), "TokenKey(<redacted>)");
        assert_ne!(key().0.as_slice(), secret.expose().as_bytes());
    }
}
