//! The request path: [`receive`] handles a delivery in one straight line: signature headers →
//! body (size, time and memory limits) → verify → decode envelope → signed query → route →
//! classify → dedupe claim → typed decode and dispatch → respond. The dedupe protocol itself
//! lives in [`crate::dedupe::Gate`] and body reading in [`crate::body`]; this file only maps
//! their answers to status codes. [`crate::Webhooks`] mounts it.

use actix_web::http::StatusCode;
use actix_web::web;
use actix_web::{HttpRequest, HttpResponse};
use tracing::Instrument as _;

use crate::answer;
use crate::auth::{self, Authenticated};
use crate::dedupe::{Admission, Delivery, Gate, Lease, Progress, StoreError};
use crate::envelope::Envelope;
use crate::handler::{Call, HandlerKind, Outcome, Verdict};
use crate::journal::{self, Facts, Noted as _, Outcome as Journaled};
use crate::prediction::{Event, Status};
use crate::query;
use crate::receiver::Endpoint;
use crate::registry::Module;
use crate::verified::Verified;

/// Handles one delivery, and journals the answer when the journal is on.
pub(crate) async fn receive(
    req: HttpRequest,
    payload: web::Payload,
    endpoint: web::Data<Endpoint>,
) -> HttpResponse {
    let mut facts = Facts::arrived(endpoint.checks.journal.is_some());
    let response = answer(req, payload, &endpoint, &mut facts).await;
    if let Some(journal) = &endpoint.checks.journal {
        journal.record(facts, &response);
    }
    response
}

/// Answers one delivery. Every exit answers with a status Replicate understands.
async fn answer(
    req: HttpRequest,
    payload: web::Payload,
    endpoint: &Endpoint,
    facts: &mut Facts,
) -> HttpResponse {
    let checks = &*endpoint.checks;
    let Authenticated { sender, body } = match auth::authenticate(&req, payload, endpoint).await {
        Ok(authenticated) => authenticated,
        Err(refused) => return refused,
    };
    let webhook_id = auth::webhook_id(&req);
    facts.verified(webhook_id, &body, sender.tenant().map(crate::Tenant::name));

    let envelope = match Envelope::parse(&body) {
        Ok(envelope) => envelope,
        Err(e) => {
            return answer::text(
                StatusCode::BAD_REQUEST,
                format!("malformed prediction JSON: {e}"),
            )
            .noted(Journaled::DecodeError);
        }
    };
    facts.envelope(&envelope);
    if checks.signed_query
        && let Some(webhook) = envelope.webhook()
    {
        if !query::matches(req.query_string(), webhook) {
            return auth::refuse(
                checks,
                StatusCode::UNAUTHORIZED,
                "query-mismatch",
                "query string does not match the signed webhook URL",
            );
        }
        query::mark(&req);
    }

    let span = tracing::info_span!(
        "delivery",
        prediction = envelope.id(),
        model = envelope.model(),
        status = envelope.status().as_str(),
        sender = sender.as_str(),
        traceparent = tracing::field::Empty,
        event = tracing::field::Empty,
        outcome = tracing::field::Empty,
    );
    // The W3C trace context of the prediction request, which Cog passes on: kept in the span
    // so the handler's work can be found beside the request that started it.
    if let Some(traceparent) = req
        .headers()
        .get("traceparent")
        .and_then(|v| v.to_str().ok())
    {
        span.record("traceparent", traceparent);
    }
    #[cfg(feature = "otel")]
    crate::otel::continue_trace(&span, req.headers());
    let delivery = Verified {
        req: &req,
        body: &body,
        sender: &sender,
        webhook_id,
        envelope,
    };
    let response = deliver(delivery, endpoint).instrument(span.clone()).await;
    journal::annotate(&span, &response);
    sender.retryable(response)
}

/// Routes, classifies, claims and runs a verified delivery.
async fn deliver(mut delivery: Verified<'_>, endpoint: &Endpoint) -> HttpResponse {
    let gate = &endpoint.checks.gate;
    let (sender, body) = (delivery.sender, delivery.body);
    // Keys of the dedupe store: the sender's namespace and the prediction id.
    // Owned: the handler takes the decoded body out of `envelope` while the keys are in use.
    let prediction = sender.scope(delivery.envelope.id()).into_owned();
    let prediction = prediction.as_str();
    let envelope = &delivery.envelope;
    let Some(module) = endpoint
        .route
        .module_for(sender, envelope.kind(), envelope.model())
    else {
        tracing::info!("no module handles this model; acknowledged");
        return answer::text(StatusCode::OK, "no handler for this model").noted(Journaled::Ignored);
    };

    // Watched before its handler runs: a crash right after must not lose the prediction.
    #[cfg(feature = "client")]
    if let Some(watcher) = &endpoint.checks.watcher
        && sender.reconciled()
        && !envelope.status().is_terminal()
    {
        watcher.heard(prediction).await;
    }
    // What the expected-delivery monitor needs once a terminal delivery is handled; the model
    // too, since the handler takes the decoded body out of `envelope`.
    #[cfg(feature = "client")]
    let arrival =
        (endpoint.checks.watcher.is_some() && envelope.status().is_terminal()).then(|| {
            let model = envelope.model().to_owned();
            (delivery.webhook_id.to_owned(), body.clone(), model)
        });

    // The body carries no event name: a `processing` delivery is an output when its output
    // differs from the last one any instance saw for the prediction, else logs; one with less
    // output or fewer logs than already seen is an older delivery arriving late.
    let progress = if *envelope.status() == Status::Processing
        && (module.events.contains(&Event::Output) || module.events.contains(&Event::Logs))
    {
        match gate
            .observe(prediction, envelope.output(), envelope.logs_len())
            .await
        {
            Ok(Progress::Regressed) => {
                return answer::text(StatusCode::OK, "stale event: older than one already seen")
                    .noted(Journaled::Stale);
            }
            Ok(progress) => Some(progress),
            Err(e) => return unavailable(&e),
        }
    } else {
        None
    };
    let new_output = matches!(progress, Some(Progress::Output(_)));
    let handler = handler_for(module, envelope.status(), new_output);
    let event = match progress {
        Some(Progress::Output(_)) => Some(Event::Output),
        Some(Progress::Logs(_)) => Some(Event::Logs),
        _ => handler.and_then(HandlerKind::event),
    };

    let mut response = if let Some(kind) = handler {
        // What identifies this delivery across retries, in the sender's namespace.
        let webhook_id = sender.delivery_id(delivery.webhook_id, envelope);
        let status = envelope.status().clone();
        let keys = Delivery {
            webhook_id: &webhook_id,
            prediction_id: prediction,
            status: &status,
        };
        let inbox = endpoint.checks.inbox.as_ref().filter(|_| module.inbox);
        let response = match inbox {
            // Inbox mode: stored with its dedupe claim and acknowledged; a worker runs it.
            Some(inbox) => inbox.accept(&delivery, module, kind, keys).await,
            None => admit_and_run(endpoint, module, kind, keys, &mut delivery).await,
        };
        // Published once acknowledged: the channel's state drops what changes nothing, so a
        // duplicate, stale or regressing delivery reaches no subscriber.
        crate::live::publish_delivery(endpoint.checks.live.as_ref(), body, &response).await;
        // Then this process's workers run what was stored: what they publish comes after.
        if let Some(inbox) = inbox {
            inbox.wake();
        }
        response
    } else {
        not_subscribed(gate, prediction, envelope.status()).await
    };
    response = response.event(event);
    if let Some(Progress::Output(undo) | Progress::Logs(undo)) = progress
        && !response.status().is_success()
    {
        // Not acknowledged: its retry must be classified as this delivery was.
        gate.undo_output(prediction, undo).await;
    }
    #[cfg(feature = "client")]
    if let Some(watcher) = &endpoint.checks.watcher
        && sender.reconciled()
        && delivery.envelope.status().is_terminal()
        && response.status().is_success()
    {
        watcher.done(prediction).await;
        if let Some((webhook_id, body, model)) = &arrival {
            watcher.monitor.arrived(prediction, model, webhook_id, body);
        }
    }
    response
}

/// Acknowledges a delivery no handler takes. Even unhandled, a terminal status ends the
/// prediction: later deliveries of it to this receiver are stale.
async fn not_subscribed(gate: &Gate, prediction: &str, status: &Status) -> HttpResponse {
    if status.is_terminal()
        && let Err(e) = gate.finish_unhandled(prediction).await
    {
        tracing::warn!(error = %e, "could not record the terminal status");
    }
    tracing::debug!("not subscribed or no handler; acknowledged");
    answer::text(StatusCode::OK, "not subscribed").noted(Journaled::Ignored)
}

/// The handler a delivery goes to, or `None` when its module does not take it.
fn handler_for(module: &Module, status: &Status, new_output: bool) -> Option<HandlerKind> {
    let kind = match HandlerKind::for_status(status, new_output)? {
        // `on_aborted` falls back to `on_canceled`: both mean "stopped before a result".
        HandlerKind::Aborted if module.handler(HandlerKind::Aborted).is_none() => {
            HandlerKind::Canceled
        }
        kind => kind,
    };
    let event = kind.event()?;
    (module.events.contains(&event) && module.handler(kind).is_some()).then_some(kind)
}

/// Claims the delivery under `keys`, runs its handler and records the outcome.
async fn admit_and_run(
    endpoint: &Endpoint,
    module: &Module,
    kind: HandlerKind,
    keys: Delivery<'_>,
    delivery: &mut Verified<'_>,
) -> HttpResponse {
    let gate = &endpoint.checks.gate;
    let lease = match gate.admit(keys).await {
        Ok(Admission::Run(lease)) => lease,
        Ok(Admission::Duplicate) => {
            return answer::text(StatusCode::OK, "duplicate delivery; already handled")
                .noted(Journaled::Duplicate);
        }
        Ok(Admission::AlreadyHandled) => {
            return answer::text(
                StatusCode::OK,
                "prediction already handled; its first terminal status wins",
            )
            .noted(Journaled::Duplicate);
        }
        Ok(Admission::Stale) => {
            return answer::text(
                StatusCode::OK,
                "stale event: the prediction already finished",
            )
            .noted(Journaled::Stale);
        }
        Ok(Admission::InFlight { retry_after }) => {
            return answer::in_flight(retry_after).noted(Journaled::InFlight);
        }
        // Only a queue stores; the gate admits to run here.
        Ok(Admission::Stored(_)) => {
            return answer::text(StatusCode::OK, "stored; a worker runs the handler")
                .noted(Journaled::Queued);
        }
        Err(e) => return unavailable(&e),
    };
    let call = Call::new(delivery.req.clone(), delivery.body.clone())
        .with_decoded(delivery.envelope.take_decoded());
    let started = std::time::Instant::now();
    let outcome = module
        .run(kind, call, endpoint.checks.handler_timeout)
        .await;
    respond(outcome, kind, &lease, gate, delivery.envelope.id(), started).await
}

/// Records what the handler's verdict means for the lease, and answers Replicate.
async fn respond(
    outcome: Outcome,
    kind: HandlerKind,
    lease: &Lease,
    gate: &Gate,
    prediction: &str,
    started: std::time::Instant,
) -> HttpResponse {
    let ran = started.elapsed();
    let decode_error = matches!(outcome, Outcome::Decode(_));
    let (done, journaled, detail) = match outcome.verdict(kind.fn_name(), prediction) {
        Verdict::Done(how) if decode_error => (how, Journaled::DecodeError, None),
        Verdict::Done(how) => (how, Journaled::Ran, None),
        Verdict::GiveUp(error) => (
            "handler failed permanently",
            Journaled::HandlerError,
            Some(error),
        ),
        Verdict::Retry { answer, error } => {
            gate.release(lease).await;
            return answer::text(StatusCode::INTERNAL_SERVER_ERROR, answer).ran(
                Journaled::HandlerError,
                ran,
                Some(error),
            );
        }
    };
    match gate.complete(lease).await {
        Ok(()) => answer::text(StatusCode::OK, done).ran(journaled, ran, detail),
        Err(e) => {
            // The handler ran but the store did not record it: a retry would run it again,
            // which is what at-least-once delivery means. Say so rather than pretend.
            tracing::error!(prediction, error = %e, "handler ran but its completion was not recorded");
            unavailable(&e).ran(Journaled::Unavailable, ran, detail)
        }
    }
}

fn unavailable(e: &StoreError) -> HttpResponse {
    tracing::error!(error = %e, "dedupe store unavailable; delivery refused");
    answer::retry_after(
        StatusCode::SERVICE_UNAVAILABLE,
        5,
        "dedupe store unavailable; retry later",
    )
    .noted(Journaled::Unavailable)
}
