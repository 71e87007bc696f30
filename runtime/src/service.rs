//! The actix glue: `configure()` mounts one route per path, and [`receive`] handles a delivery
//! in one straight line: size limit → verify → decode envelope → route → classify → dedupe
//! claim → typed decode and dispatch → respond. The dedupe protocol itself lives in
//! [`crate::dedupe::Gate`]; this file only maps its answers to status codes.

use std::panic::AssertUnwindSafe;
use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderMap};
use actix_web::web::{self, Bytes, BytesMut};
use actix_web::{HttpRequest, HttpResponse};
use futures_util::{FutureExt as _, StreamExt as _};
use serde::Deserialize;
use tracing::Instrument as _;

use crate::config::WebhookConfig;
use crate::dedupe::{Admission, Delivery, Gate, Lease, StoreError};
use crate::handler::{Call, HandlerKind, Outcome};
use crate::prediction::{Event, Status};
use crate::receiver::{Checks, Endpoint, Receiver};
use crate::registry::{Module, SetupError};
use crate::signature::{HEADER_ID, HEADER_SIGNATURE, HEADER_TIMESTAMP, VerifyError};

/// Mounts every registered webhook route. Use with `App::configure`.
///
/// Panics with a message that explains the fix when no handler is registered or two modules
/// claim the same model on one path; see [`try_configure`] for a `Result`.
pub fn configure(config: WebhookConfig) -> impl FnOnce(&mut web::ServiceConfig) {
    match try_configure(config) {
        Ok(f) => f,
        Err(e) => panic!("replicate-webhook: {e}"),
    }
}

/// Like [`configure`], but returns set-up errors instead of panicking.
#[allow(clippy::needless_pass_by_value)] // by value like `configure`, which users call
pub fn try_configure(
    config: WebhookConfig,
) -> Result<impl FnOnce(&mut web::ServiceConfig), SetupError> {
    let receiver = Receiver::shared(&config)?;
    Ok(move |cfg: &mut web::ServiceConfig| {
        for (path, endpoint) in &receiver.endpoints {
            cfg.service(
                web::resource(path.as_str())
                    .app_data(endpoint.clone())
                    .route(web::post().to(receive)),
            );
        }
    })
}

/// Just enough of the body to route and deduplicate; the handler decodes the rest.
#[derive(Deserialize)]
struct Envelope<'a> {
    id: String,
    #[serde(default)]
    model: String,
    status: Status,
    #[serde(default, borrow)]
    output: Option<&'a serde_json::value::RawValue>,
    #[serde(default)]
    webhook: Option<String>,
}

/// Handles one delivery. Every exit answers with a status Replicate understands.
async fn receive(
    req: HttpRequest,
    payload: web::Payload,
    endpoint: web::Data<Endpoint>,
) -> HttpResponse {
    let checks = &*endpoint.checks;

    let body = match read_body(&req, payload, checks.body_limit).await {
        Ok(body) => body,
        Err(response) => return response,
    };

    if let Err(e) = verify(&req, &body, checks) {
        tracing::warn!(reason = e.reason(), error = %e, "webhook refused");
        return reply(StatusCode::UNAUTHORIZED, &e.to_string());
    }

    let envelope: Envelope<'_> = match serde_json::from_slice(&body) {
        Ok(envelope) => envelope,
        Err(e) => {
            return reply(
                StatusCode::BAD_REQUEST,
                &format!("malformed prediction JSON: {e}"),
            );
        }
    };
    if checks.signed_query && !query_matches(&req, envelope.webhook.as_deref()) {
        tracing::warn!(
            prediction = envelope.id,
            "query string differs from the signed webhook URL"
        );
        return reply(
            StatusCode::UNAUTHORIZED,
            "query string does not match the signed webhook URL",
        );
    }

    let span = tracing::info_span!(
        "delivery",
        prediction = envelope.id,
        model = envelope.model,
        status = %envelope.status
    );
    deliver(req, body.clone(), &endpoint, &envelope)
        .instrument(span)
        .await
}

/// Routes, classifies, claims and runs a verified delivery.
async fn deliver(
    req: HttpRequest,
    body: Bytes,
    endpoint: &Endpoint,
    envelope: &Envelope<'_>,
) -> HttpResponse {
    let gate = &endpoint.checks.gate;
    let Some(module) = endpoint.route.module_for(&envelope.model) else {
        tracing::info!("no module handles this model; acknowledged");
        return reply(StatusCode::OK, "no handler for this model");
    };

    // The body carries no event name: a `processing` delivery is an output when its output
    // differs from the last one any instance saw for the prediction, else logs.
    let new_output = if envelope.status == Status::Processing
        && (module.events.contains(&Event::Output) || module.events.contains(&Event::Logs))
    {
        let output = envelope.output.map(serde_json::value::RawValue::get);
        match gate.observe_output(&envelope.id, output).await {
            Ok(undo) => undo,
            Err(e) => return unavailable(&e),
        }
    } else {
        None
    };

    let response = if let Some(kind) = handler_for(module, &envelope.status, new_output.is_some()) {
        match endpoint.checks.inbox.as_ref().filter(|_| module.inbox) {
            // Inbox mode: stored with its dedupe claim and acknowledged; a worker runs it.
            Some(inbox) => {
                inbox
                    .accept(&req, &body, module, kind, &envelope.id, &envelope.status)
                    .await
            }
            None => admit_and_run(req, body, gate, module, kind, envelope).await,
        }
    } else {
        if envelope.status.is_terminal() {
            // Even unhandled, a terminal status ends the prediction: later intermediate
            // deliveries to this receiver are stale.
            if let Err(e) = gate.finish_unhandled(&envelope.id).await {
                tracing::warn!(error = %e, "could not record the terminal status");
            }
        }
        tracing::debug!("not subscribed or no handler; acknowledged");
        reply(StatusCode::OK, "not subscribed")
    };
    if let Some(undo) = new_output
        && !response.status().is_success()
    {
        // Not acknowledged: its retry must be an output again.
        gate.undo_output(&envelope.id, undo).await;
    }
    response
}

/// The handler a delivery goes to, or `None` when its module does not take it.
fn handler_for(module: &Module, status: &Status, new_output: bool) -> Option<HandlerKind> {
    let (event, kind) = match status {
        Status::Starting => (Event::Start, HandlerKind::Start),
        Status::Processing if new_output => (Event::Output, HandlerKind::Output),
        Status::Processing => (Event::Logs, HandlerKind::Logs),
        Status::Aborted if module.handler(HandlerKind::Aborted).is_none() => {
            (Event::Completed, HandlerKind::Canceled)
        }
        status => (Event::Completed, HandlerKind::for_terminal(status)?),
    };
    (module.events.contains(&event) && module.handler(kind).is_some()).then_some(kind)
}

/// Claims the delivery, runs its handler and records the outcome.
async fn admit_and_run(
    req: HttpRequest,
    body: Bytes,
    gate: &Gate,
    module: &Module,
    kind: HandlerKind,
    envelope: &Envelope<'_>,
) -> HttpResponse {
    let delivery = Delivery {
        webhook_id: header_str(req.headers(), HEADER_ID).unwrap_or_default(),
        prediction_id: &envelope.id,
        status: &envelope.status,
    };
    let lease = match gate.admit(delivery).await {
        Ok(Admission::Run(lease)) => lease,
        Ok(Admission::Duplicate) => {
            return reply(StatusCode::OK, "duplicate delivery; already handled");
        }
        Ok(Admission::AlreadyHandled) => {
            return reply(StatusCode::OK, "prediction already handled for this status");
        }
        Ok(Admission::Stale) => {
            return reply(
                StatusCode::OK,
                "stale event: the prediction already finished",
            );
        }
        Ok(Admission::InFlight { retry_after }) => return in_flight(retry_after),
        Err(e) => return unavailable(&e),
    };
    let outcome = run(module, kind, Call::new(req, body)).await;
    respond(outcome, kind, &lease, gate).await
}

/// Records what the handler's outcome means for the lease, and answers Replicate.
async fn respond(outcome: Outcome, kind: HandlerKind, lease: &Lease, gate: &Gate) -> HttpResponse {
    let handler = kind.fn_name();
    let done = match outcome {
        Outcome::Done => "done",
        Outcome::Failed(e) if e.is_retryable() => {
            tracing::error!(error = %e, handler, "handler failed; Replicate will retry");
            gate.release(lease).await;
            return reply(StatusCode::INTERNAL_SERVER_ERROR, "handler failed; retry");
        }
        Outcome::Failed(e) => {
            tracing::error!(error = %e, handler, "handler failed permanently; not retried");
            "handler failed permanently"
        }
        Outcome::Decode(e) => {
            tracing::error!(error = %e, handler, "body does not decode into the handler's types");
            "decode error handled"
        }
        Outcome::Extract { position, message } => {
            tracing::error!(
                position,
                error = message,
                handler,
                "handler argument extraction failed"
            );
            gate.release(lease).await;
            return reply(
                StatusCode::INTERNAL_SERVER_ERROR,
                "handler argument extraction failed",
            );
        }
    };
    match gate.complete(lease).await {
        Ok(()) => reply(StatusCode::OK, done),
        Err(e) => {
            // The handler ran but the store did not record it: a retry would run it again,
            // which is what at-least-once delivery means. Say so rather than pretend.
            tracing::error!(error = %e, "handler ran but its completion was not recorded");
            unavailable(&e)
        }
    }
}

/// 413 before buffering when `Content-Length` says too much; 413 again if the stream lies.
async fn read_body(
    req: &HttpRequest,
    mut payload: web::Payload,
    limit: usize,
) -> Result<Bytes, HttpResponse> {
    let too_large = || {
        reply(
            StatusCode::PAYLOAD_TOO_LARGE,
            &format!("body exceeds {limit} bytes"),
        )
    };
    let declared = match req.headers().get(header::CONTENT_LENGTH) {
        None => None,
        Some(v) => match v.to_str().ok().and_then(|s| s.parse::<usize>().ok()) {
            Some(n) => Some(n),
            None => return Err(reply(StatusCode::BAD_REQUEST, "invalid Content-Length")),
        },
    };
    if declared.is_some_and(|n| n > limit) {
        return Err(too_large());
    }
    // The declared length is unverified: trust it for the limit, not for an allocation.
    let mut body = BytesMut::with_capacity(declared.unwrap_or(8 * 1024).min(limit).min(64 * 1024));
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| {
            reply(
                StatusCode::BAD_REQUEST,
                &format!("could not read body: {e}"),
            )
        })?;
        if body.len() + chunk.len() > limit {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

fn verify(req: &HttpRequest, body: &[u8], checks: &Checks) -> Result<(), VerifyError> {
    let headers = req.headers();
    let id = single_header(headers, HEADER_ID)?;
    let timestamp = single_header(headers, HEADER_TIMESTAMP)?;
    let signature = single_header(headers, HEADER_SIGNATURE)?;
    checks.verifier.verify(id, timestamp, signature, body)
}

fn single_header<'a>(headers: &'a HeaderMap, name: &'static str) -> Result<&'a str, VerifyError> {
    let mut values = headers.get_all(name);
    let value = values.next().ok_or(VerifyError::MissingHeader(name))?;
    if values.next().is_some() {
        return Err(VerifyError::DuplicateHeader(name));
    }
    value.to_str().map_err(|_| VerifyError::InvalidHeader(name))
}

fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

fn query_matches(req: &HttpRequest, webhook: Option<&str>) -> bool {
    let signed = webhook
        .and_then(|w| url::Url::parse(w).ok())
        .map(|u| u.query().unwrap_or_default().to_owned())
        .unwrap_or_default();
    signed == req.query_string()
}

/// Runs the handler; a panic is caught so the worker survives, and becomes a retryable failure.
pub(crate) async fn run(module: &Module, kind: HandlerKind, call: Call) -> Outcome {
    let Some(handler) = module.handler(kind) else {
        return Outcome::Done;
    };
    let decode_fallback = module.handler(HandlerKind::DecodeError).cloned();
    let outcome = match AssertUnwindSafe(handler(call.clone())).catch_unwind().await {
        Ok(outcome) => outcome,
        Err(panic) => Outcome::Failed(crate::HandlerError::retry(panic_message(&*panic))),
    };
    match (outcome, decode_fallback) {
        (Outcome::Decode(e), Some(hook)) if kind != HandlerKind::DecodeError => {
            let call = call.with_decode_error(e.message().to_owned());
            match AssertUnwindSafe(hook(call)).catch_unwind().await {
                Ok(outcome) => outcome,
                Err(panic) => Outcome::Failed(crate::HandlerError::retry(panic_message(&*panic))),
            }
        }
        (outcome, _) => outcome,
    }
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    let text = panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "non-string panic payload".to_owned());
    format!("handler panicked: {text}")
}

fn unavailable(e: &StoreError) -> HttpResponse {
    tracing::error!(error = %e, "dedupe store unavailable; delivery refused");
    HttpResponse::build(StatusCode::SERVICE_UNAVAILABLE)
        .insert_header((header::RETRY_AFTER, "5"))
        .content_type("text/plain; charset=utf-8")
        .body("dedupe store unavailable; retry later")
}

fn in_flight(retry_after: Duration) -> HttpResponse {
    let secs = retry_after.as_secs().clamp(1, 30);
    HttpResponse::build(StatusCode::CONFLICT)
        .insert_header((header::RETRY_AFTER, secs.to_string()))
        .content_type("text/plain; charset=utf-8")
        .body("this delivery is being handled by another worker; retry later")
}

fn reply(status: StatusCode, message: &str) -> HttpResponse {
    HttpResponse::build(status)
        .content_type("text/plain; charset=utf-8")
        .body(message.to_owned())
}
