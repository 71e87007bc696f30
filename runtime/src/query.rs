//! The query string of a delivery, authenticated by the signed body.
//!
//! The signature covers the body, not the URL, so `?customId=123` in the URL Replicate posts to is
//! only as authentic as the copy of that URL in the signed body's `webhook` field. The receiver
//! compares the two (by default) and refuses a request whose query differs; [`SignedQuery`] gives
//! handlers the query only when that comparison held.

use std::future::{Ready, ready};

use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpMessage as _, HttpRequest};
use serde::de::DeserializeOwned;

/// Whether the request's query string says what the signed `webhook` URL says: the same decoded
/// key/value pairs in the same order, so `%20` and `+`, or `%7E` and `~`, do not refuse a real
/// delivery. An unparsable signed URL matches nothing.
pub(crate) fn matches(request_query: &str, signed_webhook: &str) -> bool {
    let Ok(signed) = url::Url::parse(signed_webhook) else {
        return false;
    };
    let signed = url::form_urlencoded::parse(signed.query().unwrap_or_default().as_bytes());
    let received = url::form_urlencoded::parse(request_query.as_bytes());
    signed.eq(received)
}

/// Set on a request whose query string matched the signed `webhook` URL.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Authenticated;

/// Marks `req`'s query string as authenticated for [`SignedQuery`].
pub(crate) fn mark(req: &HttpRequest) {
    req.extensions_mut().insert(Authenticated);
}

/// The delivery's query string, decoded into `T`, when it is authenticated: equal to the query
/// of the `webhook` URL in the signed body. A handler argument like `web::Query<T>`, but an
/// attacker who changes the URL gets a 401 instead of reaching the handler with their values.
///
/// Extraction fails (500, and the delivery is retried) when the check was off or the body
/// carried no `webhook` URL: nothing then vouches for the query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedQuery<T>(pub T);

impl<T> SignedQuery<T> {
    /// The decoded query.
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T> std::ops::Deref for SignedQuery<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

/// Why a [`SignedQuery`] could not be extracted.
#[derive(Debug, thiserror::Error)]
pub enum SignedQueryError {
    /// The query was not compared with a signed `webhook` URL.
    #[error(
        "the query string is not authenticated: the signed body has no `webhook` URL, or require_signed_query is off"
    )]
    NotAuthenticated,
    /// The query does not decode into the handler's type.
    #[error("the signed query string does not decode: {0}")]
    Decode(String),
}

impl actix_web::ResponseError for SignedQueryError {}

impl<T: DeserializeOwned> FromRequest for SignedQuery<T> {
    type Error = SignedQueryError;
    type Future = Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        if req.extensions().get::<Authenticated>().is_none() {
            return ready(Err(SignedQueryError::NotAuthenticated));
        }
        ready(
            actix_web::web::Query::<T>::from_query(req.query_string())
                .map(|q| SignedQuery(q.into_inner()))
                .map_err(|e| SignedQueryError::Decode(e.to_string())),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_pairs_match_whatever_their_encoding() {
        let signed = "https://app.example/hook?customId=a%20b&x=%7E";
        assert!(matches("customId=a+b&x=~", signed));
        assert!(matches("customId=a%20b&x=%7E", signed));
        assert!(!matches("customId=attacker&x=~", signed));
        assert!(!matches("customId=a+b", signed), "a pair missing");
        assert!(!matches("customId=a+b&x=~&extra=1", signed), "a pair added");
        assert!(matches("", "https://app.example/hook"));
        assert!(!matches("customId=1", "https://app.example/hook"));
        assert!(!matches("", "not a url"));
    }
}
