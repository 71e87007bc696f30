//! The actix glue: `configure()` mounts one route per path, and [`receive`] handles a delivery
//! in one straight line: size limit → verify → decode envelope → route → dedupe claim →
//! typed decode → dispatch → respond.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderMap};
use actix_web::web::{self, Bytes, BytesMut};
use actix_web::{HttpRequest, HttpResponse};
use futures_util::{FutureExt as _, StreamExt as _};
use serde::Deserialize;
use tracing::Instrument as _;

use crate::config::WebhookConfig;
use crate::dedupe::{self, Claim, ClaimToken, DedupeStore, StoreError};
use crate::handler::{Call, HandlerKind, Outcome};
use crate::prediction::{Event, Status};
use crate::progress::Progress;
use crate::registry::{self, Module, Route, SetupError};
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
pub fn try_configure(
    config: WebhookConfig,
) -> Result<impl FnOnce(&mut web::ServiceConfig), SetupError> {
    let mut modules = config.modules.clone();
    if config.collect_registered {
        modules.extend(registry::registrations().map(Module::from_registration));
    }
    let routes = registry::build_routes(modules)?;
    let config = Arc::new(config);
    Ok(move |cfg: &mut web::ServiceConfig| {
        // actix calls `configure` once per worker; the clones of one config share this flag, so
        // the route table is logged once, when it is first mounted.
        let first = !config.routes_logged.swap(true, Ordering::Relaxed);
        for (path, route) in routes {
            if first {
                log_route(&path, &route);
            }
            let state = web::Data::new(Endpoint {
                config: config.clone(),
                route,
            });
            cfg.service(
                web::resource(path.as_str())
                    .app_data(state)
                    .route(web::post().to(receive)),
            );
        }
    })
}

fn log_route(path: &str, route: &Route) {
    for module in route.by_model.values().chain(route.any.as_ref()) {
        let handlers: Vec<_> = module.handlers.keys().map(|k| k.fn_name()).collect();
        let events: Vec<_> = module.events.iter().map(|e| e.as_str()).collect();
        tracing::info!(
            path,
            model = module.model,
            events = events.join(","),
            handlers = handlers.join(","),
            origin = module.origin,
            "replicate webhook route mounted"
        );
    }
}

struct Endpoint {
    config: Arc<WebhookConfig>,
    route: Route,
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
    let config = &*endpoint.config;

    let body = match read_body(&req, payload, config.body_limit).await {
        Ok(body) => body,
        Err(response) => return response,
    };

    if let Err(e) = verify(&req, &body, config) {
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
    if config.signed_query && !query_matches(&req, envelope.webhook.as_deref()) {
        tracing::warn!(
            prediction = envelope.id,
            "query string differs from the signed webhook URL"
        );
        return reply(
            StatusCode::UNAUTHORIZED,
            "query string does not match the signed webhook URL",
        );
    }
    let new_output = match envelope.status {
        Status::Processing => config.progress.observe(
            &envelope.id,
            envelope.output.map(serde_json::value::RawValue::get),
        ),
        _ => None,
    };
    let response = deliver(
        req,
        body.clone(),
        &endpoint,
        &envelope,
        new_output.is_some(),
    )
    .await;
    if let Some(undo) = new_output
        && !response.status().is_success()
    {
        config.progress.undo(&envelope.id, undo);
    }
    response
}

/// Routes, claims and runs a verified delivery.
async fn deliver(
    req: HttpRequest,
    body: Bytes,
    endpoint: &Endpoint,
    envelope: &Envelope<'_>,
    new_output: bool,
) -> HttpResponse {
    let config = &*endpoint.config;
    let span = tracing::info_span!(
        "delivery",
        prediction = envelope.id,
        model = envelope.model,
        status = %envelope.status
    );
    let guard = span.enter();

    let Some(module) = endpoint.route.module_for(&envelope.model) else {
        tracing::info!("no module handles this model; acknowledged");
        return reply(StatusCode::OK, "no handler for this model");
    };
    let target = dispatch_target(module, envelope, new_output, &config.progress);
    drop(guard);
    let Some((event, kind)) = target else {
        if envelope.status.is_terminal() {
            // Even unhandled, a terminal status ends the prediction: later intermediate
            // deliveries to this receiver are stale.
            let key = dedupe::finished_key(&envelope.id);
            if let Err(e) = config.store.mark_done(&key, config.terminal_ttl).await {
                tracing::warn!(prediction = envelope.id, error = %e, "could not record the terminal status");
            }
        }
        tracing::debug!(
            prediction = envelope.id,
            "not subscribed or no handler; acknowledged"
        );
        return reply(StatusCode::OK, "not subscribed");
    };
    let webhook_id = header_str(req.headers(), HEADER_ID)
        .unwrap_or_default()
        .to_owned();

    let claims = match claim(&*config.store, config, &webhook_id, envelope, event).await {
        Ok(Claimed::Run(claims)) => claims,
        Ok(Claimed::Skip(response)) => return response,
        Err(e) => return unavailable(&e),
    };

    let call = Call::new(req, body);
    async move {
        let outcome = run(module, kind, call).await;
        respond(outcome, kind, &claims, config, envelope).await
    }
    .instrument(span)
    .await
}

/// Records what the handler's outcome means for the claims, and answers Replicate.
async fn respond(
    outcome: Outcome,
    kind: HandlerKind,
    claims: &Claims,
    config: &WebhookConfig,
    envelope: &Envelope<'_>,
) -> HttpResponse {
    let handler = kind.fn_name();
    match outcome {
        Outcome::Done => finish(claims, config, envelope, "done").await,
        Outcome::Failed(e) if e.is_retryable() => {
            tracing::error!(error = %e, handler, "handler failed; Replicate will retry");
            claims.release(&*config.store).await;
            reply(StatusCode::INTERNAL_SERVER_ERROR, "handler failed; retry")
        }
        Outcome::Failed(e) => {
            tracing::error!(error = %e, handler, "handler failed permanently; not retried");
            finish(claims, config, envelope, "handler failed permanently").await
        }
        Outcome::Decode(e) => {
            tracing::error!(error = %e, handler, "body does not decode into the handler's types");
            finish(claims, config, envelope, "decode error handled").await
        }
        Outcome::Extract { position, message } => {
            tracing::error!(
                position,
                error = message,
                handler,
                "handler argument extraction failed"
            );
            claims.release(&*config.store).await;
            reply(
                StatusCode::INTERNAL_SERVER_ERROR,
                "handler argument extraction failed",
            )
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

fn verify(req: &HttpRequest, body: &[u8], config: &WebhookConfig) -> Result<(), VerifyError> {
    let headers = req.headers();
    let id = single_header(headers, HEADER_ID)?;
    let timestamp = single_header(headers, HEADER_TIMESTAMP)?;
    let signature = single_header(headers, HEADER_SIGNATURE)?;
    config.verifier.verify(id, timestamp, signature, body)
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

/// Which event this is and which handler takes it, or `None` to acknowledge without running.
fn dispatch_target(
    module: &Module,
    envelope: &Envelope<'_>,
    new_output: bool,
    progress: &Progress,
) -> Option<(Event, HandlerKind)> {
    let (event, kind) = match &envelope.status {
        Status::Starting => (Event::Start, HandlerKind::Start),
        Status::Processing if new_output => (Event::Output, HandlerKind::Output),
        Status::Processing => (Event::Logs, HandlerKind::Logs),
        Status::Aborted if module.handler(HandlerKind::Aborted).is_none() => {
            (Event::Completed, HandlerKind::Canceled)
        }
        status => (Event::Completed, HandlerKind::for_terminal(status)?),
    };
    if envelope.status.is_terminal() {
        progress.forget(&envelope.id);
    }
    if !module.events.contains(&event) || module.handler(kind).is_none() {
        return None;
    }
    Some((event, kind))
}

/// The claims a running handler holds, released on failure and completed on success.
struct Claims {
    webhook: Option<(String, ClaimToken)>,
    terminal: Option<(String, ClaimToken)>,
    prediction_id: String,
}

enum Claimed {
    Run(Claims),
    Skip(HttpResponse),
}

impl Claims {
    async fn release(&self, store: &dyn DedupeStore) {
        for (key, token) in self.webhook.iter().chain(&self.terminal) {
            if let Err(e) = store.release(key, token).await {
                // The lease expires on its own; the retry waits for it at worst.
                tracing::warn!(error = %e, "could not release a dedupe claim");
            }
        }
    }
}

async fn claim(
    store: &dyn DedupeStore,
    config: &WebhookConfig,
    webhook_id: &str,
    envelope: &Envelope<'_>,
    event: Event,
) -> Result<Claimed, StoreError> {
    let mut claims = Claims {
        webhook: None,
        terminal: None,
        prediction_id: envelope.id.clone(),
    };
    let key = dedupe::webhook_key(webhook_id);
    match store.claim(&key, config.lease).await? {
        Claim::Acquired(token) => claims.webhook = Some((key, token)),
        Claim::Done => {
            return Ok(Claimed::Skip(reply(
                StatusCode::OK,
                "duplicate delivery; already handled",
            )));
        }
        Claim::InFlight { retry_after } => return Ok(Claimed::Skip(in_flight(retry_after))),
    }
    let guarded = async {
        if event == Event::Completed {
            let key = dedupe::terminal_key(&envelope.id, envelope.status.as_str());
            match store.claim(&key, config.lease).await? {
                Claim::Acquired(token) => claims.terminal = Some((key, token)),
                Claim::Done => return Ok(Some(Skip::Done)),
                Claim::InFlight { retry_after } => return Ok(Some(Skip::InFlight(retry_after))),
            }
        } else if store.is_done(&dedupe::finished_key(&envelope.id)).await? {
            return Ok(Some(Skip::Stale));
        }
        Ok::<_, StoreError>(None)
    }
    .await;
    let (webhook_key, token) = claims.webhook.clone().expect("claimed above");
    match guarded {
        Ok(None) => Ok(Claimed::Run(claims)),
        Ok(Some(Skip::InFlight(retry_after))) => {
            store.release(&webhook_key, &token).await?;
            Ok(Claimed::Skip(in_flight(retry_after)))
        }
        Ok(Some(skip)) => {
            store
                .complete(&webhook_key, &token, config.webhook_ttl)
                .await?;
            let message = match skip {
                Skip::Done => "prediction already handled for this status",
                _ => "stale event: the prediction already finished",
            };
            Ok(Claimed::Skip(reply(StatusCode::OK, message)))
        }
        Err(e) => {
            claims.release(store).await;
            Err(e)
        }
    }
}

enum Skip {
    Done,
    Stale,
    InFlight(Duration),
}

/// Runs the handler; a panic is caught so the worker survives, and becomes a retryable failure.
async fn run(module: &Module, kind: HandlerKind, call: Call) -> Outcome {
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

async fn finish(
    claims: &Claims,
    config: &WebhookConfig,
    envelope: &Envelope<'_>,
    message: &str,
) -> HttpResponse {
    let store = &*config.store;
    let result = async {
        if let Some((key, token)) = &claims.terminal {
            store.complete(key, token, config.terminal_ttl).await?;
            store
                .mark_done(
                    &dedupe::finished_key(&claims.prediction_id),
                    config.terminal_ttl,
                )
                .await?;
        }
        if let Some((key, token)) = &claims.webhook {
            store.complete(key, token, config.webhook_ttl).await?;
        }
        Ok::<_, StoreError>(())
    }
    .await;
    match result {
        Ok(()) => reply(StatusCode::OK, message),
        Err(e) => {
            // The handler ran but the store did not record it: a retry would run it again,
            // which is what at-least-once delivery means. Say so rather than pretend.
            tracing::error!(prediction = envelope.id, error = %e, "handler ran but its completion was not recorded");
            unavailable(&e)
        }
    }
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
