//! Cog's own webhook sender (coglet, in self-hosted model containers): an unsigned body with an
//! optional `Authorization: Bearer <token>`, no `webhook-id`, and retries only on 429, 500, 502,
//! 503, 504 or a connection error (`replicate-protocol.md` §12).

use std::fmt;
use std::sync::Arc;

use actix_web::HttpResponse;
use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderMap, HeaderValue};
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;

/// The environment variable holding the bearer token Cog containers send
/// (`WEBHOOK_AUTH_TOKEN` in the container).
pub const ENV_COG_TOKEN: &str = "REPLICATE_WEBHOOK_COG_TOKEN";

/// The bearer token a Cog container sends with its webhooks. Compared in constant time, and
/// never shown: `Debug` prints `CogToken(<redacted>)`.
#[derive(Clone)]
pub struct CogToken(Arc<[u8]>);

impl CogToken {
    /// A token; `None` when blank, since an empty token would accept `Authorization: Bearer `.
    pub fn new(token: impl AsRef<str>) -> Option<Self> {
        let token = token.as_ref().trim();
        (!token.is_empty()).then(|| Self(Arc::from(token.as_bytes())))
    }

    /// Whether `authorization` is `Bearer <this token>`; the token part is compared in constant
    /// time, so timing tells an attacker nothing about how much of a guess was right.
    pub(crate) fn accepts(&self, authorization: &HeaderValue) -> bool {
        let value = authorization.as_bytes();
        value
            .strip_prefix(b"Bearer ")
            .or_else(|| value.strip_prefix(b"bearer "))
            .is_some_and(|given| given.ct_eq(&self.0).into())
    }
}

impl fmt::Debug for CogToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CogToken(<redacted>)")
    }
}

/// Whether a request is a Cog delivery: a bearer token and no Standard Webhooks signature.
pub(crate) fn is_cog_request(headers: &HeaderMap) -> bool {
    headers.contains_key(header::AUTHORIZATION)
        && !headers.contains_key(crate::signature::HEADER_SIGNATURE)
}

/// The dedupe id of a Cog delivery, which has no `webhook-id`: the same for every retry of one
/// webhook (same prediction, status, output and logs) and different for each step of a run, so a
/// retried terminal webhook runs nothing twice and each `output` of a burst runs once.
pub(crate) fn delivery_id(
    prediction: &str,
    status: &str,
    output: Option<&str>,
    logs: usize,
) -> String {
    let mut hash = Sha256::new();
    // Each part with its length first: no two different deliveries hash the same bytes.
    for part in [prediction, status, output.unwrap_or("null")] {
        hash.update(part.len().to_le_bytes());
        hash.update(part.as_bytes());
    }
    hash.update(logs.to_le_bytes());
    format!("cog:{}", hex::encode(&hash.finalize()[..16]))
}

/// The answer coglet retries for one a Replicate sender would: coglet never retries a 409, so
/// "being handled elsewhere, retry later" becomes 503 with the same `Retry-After`.
pub(crate) fn retryable_for_coglet(response: HttpResponse) -> HttpResponse {
    if response.status() != StatusCode::CONFLICT {
        return response;
    }
    let mut answer = crate::answer::text(
        StatusCode::SERVICE_UNAVAILABLE,
        "this delivery is being handled by another worker; retry later",
    );
    if let Some(retry_after) = response.headers().get(header::RETRY_AFTER) {
        answer
            .headers_mut()
            .insert(header::RETRY_AFTER, retry_after.clone());
    }
    answer
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_exact_bearer_token_is_accepted() {
        let token = CogToken::new("s3cret-token").unwrap();
        let value = |s: &'static str| HeaderValue::from_static(s);
        assert!(token.accepts(&value("Bearer s3cret-token")));
        assert!(token.accepts(&value("bearer s3cret-token")));
        for wrong in [
            "Bearer s3cret-toke",
            "Bearer s3cret-token2",
            "Bearer ",
            "s3cret-token",
            "Basic s3cret-token",
            "Bearer  s3cret-token",
        ] {
            assert!(!token.accepts(&value(wrong)), "{wrong}");
        }
        assert!(CogToken::new("  ").is_none());
        assert_eq!(format!("{token:?}"), "CogToken(<redacted>)");
    }

    #[test]
    fn delivery_ids_follow_progress() {
        let a = delivery_id("p1", "processing", Some("[1]"), 3);
        assert_eq!(a, delivery_id("p1", "processing", Some("[1]"), 3));
        assert_ne!(a, delivery_id("p1", "processing", Some("[1,2]"), 3));
        assert_ne!(a, delivery_id("p1", "processing", Some("[1]"), 4));
        assert_ne!(a, delivery_id("p2", "processing", Some("[1]"), 3));
        assert_ne!(
            delivery_id("p1", "succeeded", Some("[1]"), 3),
            delivery_id("p1", "processing", Some("[1]"), 3)
        );
    }

    #[test]
    fn conflicts_become_service_unavailable() {
        let answer =
            retryable_for_coglet(crate::answer::in_flight(std::time::Duration::from_secs(7)));
        assert_eq!(answer.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(answer.headers().get(header::RETRY_AFTER).unwrap(), "7");
        let ok = retryable_for_coglet(HttpResponse::Ok().finish());
        assert_eq!(ok.status(), StatusCode::OK);
    }
}
