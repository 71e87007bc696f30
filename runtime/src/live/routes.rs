//! `GET {path}/predictions/{id}/events?token=…`: the token first (one HMAC, no state read),
//! then the subscriber limit, then the stream.
//!
//! Nothing here logs the query string: it holds the token.

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, web};
use futures_util::StreamExt as _;

use super::{Live, TokenError};
use crate::{answer, sse};

/// Mounts the events route of `live`.
pub(crate) fn mount(cfg: &mut web::ServiceConfig, live: &Live) {
    let path = format!("{}/predictions/{{id}}/events", live.options().path);
    cfg.app_data(live.clone()).service(
        web::resource(path)
            .app_data(web::Data::new(live.clone()))
            .route(web::get().to(events)),
    );
}

async fn events(req: HttpRequest, id: web::Path<String>, live: web::Data<Live>) -> HttpResponse {
    let response = stream(&req, &id, &live).await;
    with_cors(&req, &live, response)
}

/// The stream of `id`'s events, or why not.
async fn stream(req: &HttpRequest, id: &str, live: &Live) -> HttpResponse {
    let token = token_param(req.query_string());
    if let Err(e) = live.check_token(token.as_deref(), id) {
        let (status, reason) = match e {
            TokenError::OtherPrediction => (StatusCode::FORBIDDEN, "other-prediction"),
            TokenError::Missing => (StatusCode::UNAUTHORIZED, "missing"),
            TokenError::Expired => (StatusCode::UNAUTHORIZED, "expired"),
            TokenError::Invalid => (StatusCode::UNAUTHORIZED, "invalid"),
        };
        metrics::counter!("replicate_webhook_live_refused_total", "reason" => reason).increment(1);
        return answer::text(status, e.to_string());
    }
    let Some(slot) = live.slot() else {
        metrics::counter!("replicate_webhook_live_refused_total", "reason" => "full").increment(1);
        let full = "too many live subscribers; retry later";
        return answer::retry_after(StatusCode::SERVICE_UNAVAILABLE, 5, full);
    };
    // An id this channel did not send (another deployment's, or junk) resumes nowhere: the
    // subscriber gets the current state, as on a first connect.
    let after = sse::last_event_id(req).and_then(|id| id.parse::<u64>().ok());
    let events = match live.subscribe(id, after).await {
        Ok(events) => events,
        Err(e) => {
            tracing::warn!(error = %e, "live channel: subscription failed");
            let down = "live channel unavailable; retry later";
            return answer::retry_after(StatusCode::SERVICE_UNAVAILABLE, 1, down);
        }
    };
    let events = events.map(move |event| {
        // Held by the stream: the slot is freed when the connection ends.
        let _ = &slot;
        sse::Event::new(event.event, event.data).with_id(event.seq.to_string())
    });
    sse::response(Box::pin(events), live.options().heartbeat)
}

/// The `token` query parameter, percent-decoded.
fn token_param(query: &str) -> Option<String> {
    url::form_urlencoded::parse(query.as_bytes())
        .find(|(name, _)| name == "token")
        .map(|(_, value)| value.into_owned())
}

/// Adds CORS headers when the request's `Origin` is one the app allowed; otherwise none, so a
/// browser keeps other origins' pages from reading the stream.
fn with_cors(req: &HttpRequest, live: &Live, mut response: HttpResponse) -> HttpResponse {
    let origin = req.headers().get(header::ORIGIN);
    if let Some(origin) = origin
        && live
            .options()
            .allowed_origins
            .iter()
            .any(|allowed| allowed.as_bytes() == origin.as_bytes())
    {
        let headers = response.headers_mut();
        headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
        headers.insert(header::VARY, HeaderValue::from_static("Origin"));
    }
    response
}
