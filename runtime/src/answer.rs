//! The plain-text answers the receiver gives Replicate, inline and from the inbox alike.

use std::borrow::Cow;
use std::time::Duration;

use actix_web::HttpResponse;
use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::web::Bytes;

static TEXT: HeaderValue = HeaderValue::from_static("text/plain; charset=utf-8");

/// A plain-text answer; the fixed messages most deliveries get cost no allocation.
pub(crate) fn text(status: StatusCode, message: impl Into<Cow<'static, str>>) -> HttpResponse {
    let body = match message.into() {
        Cow::Borrowed(text) => Bytes::from_static(text.as_bytes()),
        Cow::Owned(text) => Bytes::from(text),
    };
    HttpResponse::build(status)
        .content_type(TEXT.clone())
        .body(body)
}

/// A refusal Replicate retries, with when to (whole seconds).
pub(crate) fn retry_after(status: StatusCode, secs: u64, message: &'static str) -> HttpResponse {
    HttpResponse::build(status)
        .insert_header((header::RETRY_AFTER, secs.to_string()))
        .content_type(TEXT.clone())
        .body(message)
}

/// 409: another worker holds the delivery's claim for `left` more; retried within 1 to 30 s.
pub(crate) fn in_flight(left: Duration) -> HttpResponse {
    retry_after(
        StatusCode::CONFLICT,
        left.as_secs().clamp(1, 30),
        "this delivery is being handled by another worker; retry later",
    )
}
