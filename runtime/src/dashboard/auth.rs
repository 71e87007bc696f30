//! Who may see the dashboard: the token as a Bearer (the API) or a session cookie from the
//! login form (the pages), a CSRF token on every state change, failed logins rate limited.
//!
//! Sessions are stateless so every instance behind a load balancer accepts them: the cookie is
//! `expiry.nonce.mac` and the CSRF token a MAC of the cookie, both keyed by a key derived from
//! the dashboard token. Every comparison is constant-time.

use std::net::IpAddr;
use std::num::NonZeroU32;

use actix_web::HttpRequest;
use actix_web::cookie::{Cookie, SameSite};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use hmac::{KeyInit as _, Mac as _};
use secrecy::{ExposeSecret as _, SecretString};
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;

type HmacSha256 = hmac::Hmac<Sha256>;

/// The session cookie's name.
const COOKIE: &str = "replicate_webhook_session";
/// How long a login lasts, in seconds.
const SESSION_SECS: i64 = 12 * 60 * 60;
/// Login attempts allowed per client address and minute.
const LOGINS_PER_MINUTE: u32 = 10;

/// The keys of one dashboard.
pub(crate) struct Auth {
    /// SHA-256 of the token: compared in constant time whatever the given token's length.
    token_digest: [u8; 32],
    /// Signs sessions and CSRF tokens.
    session_key: [u8; 32],
    logins: DefaultKeyedRateLimiter<IpAddr>,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auth").finish_non_exhaustive()
    }
}

fn mac(key: &[u8], parts: &[&[u8]]) -> HmacSha256 {
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC takes any key length");
    for part in parts {
        mac.update(part);
        mac.update(b"\0");
    }
    mac
}

impl Auth {
    pub(crate) fn new(token: &SecretString) -> Self {
        let token = token.expose_secret().as_bytes();
        let session_key: [u8; 32] = mac(token, &[b"replicate-webhook dashboard sessions"])
            .finalize()
            .into_bytes()
            .into();
        let quota = Quota::per_minute(NonZeroU32::new(LOGINS_PER_MINUTE).expect("not zero"));
        Self {
            token_digest: Sha256::digest(token).into(),
            session_key,
            logins: RateLimiter::keyed(quota),
        }
    }

    /// Whether `given` is the token.
    pub(crate) fn token_ok(&self, given: &str) -> bool {
        let digest: [u8; 32] = Sha256::digest(given.as_bytes()).into();
        digest.ct_eq(&self.token_digest).into()
    }

    /// Whether `req` carries `Authorization: Bearer <token>`.
    pub(crate) fn bearer_ok(&self, req: &HttpRequest) -> bool {
        req.headers()
            .get(actix_web::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .is_some_and(|token| self.token_ok(token.trim()))
    }

    /// Whether a login attempt from `req`'s address may be tried now.
    pub(crate) fn login_allowed(&self, req: &HttpRequest) -> bool {
        let ip = req
            .peer_addr()
            .map_or(IpAddr::from([0, 0, 0, 0]), |a| a.ip());
        self.logins.check_key(&ip).is_ok()
    }

    /// A new session, valid for [`SESSION_SECS`] from `now` (Unix seconds).
    pub(crate) fn new_session(&self, now: i64) -> String {
        let expires = now + SESSION_SECS;
        let mut nonce = [0u8; 16];
        getrandom::fill(&mut nonce).expect("the OS random source works");
        let head = format!("{expires}.{}", hex::encode(nonce));
        let tag = mac(&self.session_key, &[b"session", head.as_bytes()]).finalize();
        format!("{head}.{}", hex::encode(tag.into_bytes()))
    }

    /// Whether `session` is one of ours and not expired at `now`.
    pub(crate) fn session_ok(&self, session: &str, now: i64) -> bool {
        let Some((head, tag)) = session.rsplit_once('.') else {
            return false;
        };
        let Ok(tag) = hex::decode(tag) else {
            return false;
        };
        let expires = head
            .split_once('.')
            .and_then(|(e, _)| e.parse::<i64>().ok());
        mac(&self.session_key, &[b"session", head.as_bytes()])
            .verify_slice(&tag)
            .is_ok()
            && expires.is_some_and(|e| e > now)
    }

    /// The session cookie of `req`, when it is one of ours and not expired.
    pub(crate) fn session(&self, req: &HttpRequest) -> Option<String> {
        session_of(req).filter(|s| self.session_ok(s, now_secs()))
    }

    /// The CSRF token of `session`.
    pub(crate) fn csrf(&self, session: &str) -> String {
        hex::encode(
            mac(&self.session_key, &[b"csrf", session.as_bytes()])
                .finalize()
                .into_bytes(),
        )
    }

    /// Whether `given` is the CSRF token of `session`.
    pub(crate) fn csrf_ok(&self, session: &str, given: &str) -> bool {
        hex::decode(given).is_ok_and(|given| {
            mac(&self.session_key, &[b"csrf", session.as_bytes()])
                .verify_slice(&given)
                .is_ok()
        })
    }
}

/// The session cookie: `HttpOnly`, `SameSite=Strict`, `Secure` when the page came over https,
/// scoped to the dashboard's prefix.
pub(crate) fn cookie(value: String, prefix: &str, secure: bool) -> Cookie<'static> {
    Cookie::build(COOKIE, value)
        .path(if prefix.is_empty() { "/" } else { prefix }.to_owned())
        .http_only(true)
        .same_site(SameSite::Strict)
        .secure(secure)
        .max_age(actix_web::cookie::time::Duration::seconds(SESSION_SECS))
        .finish()
}

/// A cookie that ends the session.
pub(crate) fn logout_cookie(prefix: &str, secure: bool) -> Cookie<'static> {
    let mut cookie = cookie(String::new(), prefix, secure);
    cookie.make_removal();
    cookie
}

/// Whether the request came over https (directly or as the proxy's `Forwarded` says).
pub(crate) fn is_https(req: &HttpRequest) -> bool {
    req.connection_info().scheme() == "https"
}

/// The session cookie of `req`, if any.
pub(crate) fn session_of(req: &HttpRequest) -> Option<String> {
    req.cookie(COOKIE).map(|c| c.value().to_owned())
}

/// Unix seconds now.
pub(crate) fn now_secs() -> i64 {
    crate::clock::now_ms() / 1000
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_and_csrf_tokens_verify_only_for_their_key() {
        let auth = Auth::new(&SecretString::from("s3cret-token"));
        let other = Auth::new(&SecretString::from("another-token"));
        let session = auth.new_session(1000);
        assert!(auth.session_ok(&session, 1001));
        assert!(!auth.session_ok(&session, 1000 + 12 * 60 * 60), "expired");
        assert!(!other.session_ok(&session, 1001));
        let forged = session.replacen(&session[..4], "9999", 1);
        assert!(!auth.session_ok(&forged, 1001), "the expiry is signed");
        let csrf = auth.csrf(&session);
        assert!(auth.csrf_ok(&session, &csrf));
        assert!(
            !auth.csrf_ok(&auth.new_session(1000), &csrf),
            "bound to its session"
        );
        assert!(!auth.csrf_ok(&session, ""));
        assert!(auth.token_ok("s3cret-token"));
        assert!(!auth.token_ok("s3cret-token "));
        assert!(!auth.token_ok(""));
    }
}
