//! Sending webhooks: signing, throttling, retries, faults, and the attempt log.

use std::sync::Arc;
use std::time::{Duration, Instant};

use replicate_webhook::Event;
use replicate_webhook::signature::{self, new_message_id, unix_now};
use serde::Serialize;

use super::{Sender, Sim, State, coglet};

/// One delivery attempt, as `GET /_simulator/deliveries` reports it.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct DeliveryRecord {
    /// The prediction delivered.
    pub prediction_id: String,
    /// `webhook-id`: the same on every attempt of one delivery.
    pub webhook_id: String,
    /// `start`, `output`, `logs` or `completed`.
    pub event: String,
    /// The prediction status in the body.
    pub status: String,
    /// 1 for the first attempt.
    pub attempt: u32,
    /// Whether this is an injected duplicate.
    pub duplicate: bool,
    /// The URL posted to.
    pub url: String,
    /// `webhook-timestamp`.
    pub timestamp: i64,
    /// `webhook-signature`.
    pub signature: String,
    /// Milliseconds since the Unix epoch when the attempt was sent.
    pub sent_at_ms: u64,
    /// The receiver's status code, if it answered.
    pub response_status: Option<u16>,
    /// `delivered` (2xx), `failed` (other answer or no answer), or `dropped` (fault injection).
    pub outcome: String,
    /// Why the attempt failed.
    pub error: Option<String>,
}

/// A delivery ready to be sent: the body is a snapshot of the prediction at emission time.
#[derive(Debug, Clone)]
pub(super) struct Delivery {
    prediction_id: String,
    webhook_id: String,
    event: Event,
    status: String,
    url: String,
    body: Vec<u8>,
    /// Whose secret signs it.
    account: usize,
}

impl Delivery {
    fn of(sim: &Sim, event: Event, sender: &Sender) -> Option<Self> {
        let url = sim.webhook.clone()?;
        let (webhook_id, body) = match sender {
            Sender::Replicate => (new_message_id(), serde_json::to_vec(&sim.body)),
            // Cog sends no `webhook-id`, and a smaller body.
            Sender::Coglet { .. } => (
                String::new(),
                serde_json::to_vec(&coglet::body(&sim.body, event)),
            ),
        };
        Some(Self {
            prediction_id: sim.body["id"].as_str().unwrap_or_default().to_owned(),
            webhook_id,
            event,
            status: sim.status().to_owned(),
            account: sim.account,
            url,
            body: body.unwrap_or_default(),
        })
    }
}

/// What changed while processing, for the throttled `output`/`logs` events.
#[derive(Debug, Clone, Copy)]
pub(super) struct Change {
    pub(super) output: bool,
    pub(super) logs: bool,
}

/// Emits `start` or `completed`: never throttled.
pub(super) fn emit_now(state: &Arc<State>, id: &str, event: Event) {
    let (delivery, held) = {
        let mut inner = state.lock();
        let Some(sim) = inner.predictions.get_mut(id) else {
            return;
        };
        if !sim.events.contains(&event) {
            return;
        }
        let delivery = Delivery::of(sim, event, &state.config.sender);
        // A held (reordered) intermediate goes out after this one.
        let held = if event == Event::Completed {
            sim.held.take()
        } else {
            None
        };
        (delivery, held)
    };
    if let Some(delivery) = delivery {
        spawn_in_order(state, vec![Some(delivery), held]);
    }
}

/// Emits `output`/`logs`: at most one per throttle interval, the latest state wins.
pub(super) fn emit_intermediate(state: &Arc<State>, id: &str, change: Change) {
    let throttle = state.config.throttle;
    let wait = {
        let mut inner = state.lock();
        let Some(sim) = inner.predictions.get_mut(id) else {
            return;
        };
        let event = if change.output && sim.events.contains(&Event::Output) {
            Event::Output
        } else if change.logs && sim.events.contains(&Event::Logs) {
            Event::Logs
        } else {
            return;
        };
        if sim.webhook.is_none() {
            return;
        }
        // coglet never throttles `output` ("high-value" events, cog PR #2780).
        if event == Event::Output && matches!(state.config.sender, Sender::Coglet { .. }) {
            let delivery = Delivery::of(sim, event, &state.config.sender);
            drop(inner);
            spawn_in_order(state, vec![delivery]);
            return;
        }
        if let Some(pending) = &mut sim.pending_intermediate {
            // Already scheduled: that delivery will carry this state too.
            if event == Event::Output {
                *pending = Event::Output;
            }
            return;
        }
        let now = Instant::now();
        let wait = match sim.last_intermediate {
            Some(last) if now.duration_since(last) < throttle => last + throttle - now,
            _ => Duration::ZERO,
        };
        sim.pending_intermediate = Some(event);
        wait
    };
    let state = state.clone();
    let id = id.to_owned();
    if wait.is_zero() {
        send_intermediate(&state, &id);
    } else {
        actix_web::rt::spawn(async move {
            actix_web::rt::time::sleep(wait).await;
            send_intermediate(&state, &id);
        });
    }
}

fn send_intermediate(state: &Arc<State>, id: &str) {
    let batch = {
        let mut inner = state.lock();
        let Some(sim) = inner.predictions.get_mut(id) else {
            return;
        };
        let Some(event) = sim.pending_intermediate.take() else {
            return;
        };
        // The terminal webhook carries the latest state; a throttled update is not sent after it.
        if sim.is_terminal() && sim.events.contains(&Event::Completed) {
            return;
        }
        sim.last_intermediate = Some(Instant::now());
        let Some(delivery) = Delivery::of(sim, event, &state.config.sender) else {
            return;
        };
        if state.config.faults.reorder {
            // Hold this one; release the previously held one after it.
            match sim.held.replace(delivery) {
                Some(previous) => {
                    let newer = sim.held.take();
                    vec![newer, Some(previous)]
                }
                None => return,
            }
        } else {
            vec![Some(delivery)]
        }
    };
    spawn_in_order(state, batch);
}

/// Sends deliveries one after the other (each with its retries) in a background task.
fn spawn_in_order(state: &Arc<State>, batch: Vec<Option<Delivery>>) {
    let state = state.clone();
    actix_web::rt::spawn(async move {
        for delivery in batch.into_iter().flatten() {
            send(&state, delivery).await;
        }
    });
}

async fn send(state: &Arc<State>, delivery: Delivery) {
    let faults = &state.config.faults;
    if faults.drop.contains(&delivery.event) {
        record(
            state,
            &delivery,
            (1, false),
            None,
            now_ms(),
            Err("dropped by --drop".into()),
        );
        return;
    }
    if !faults.delay.is_zero() {
        actix_web::rt::time::sleep(faults.delay).await;
    }
    let retried = delivery.event == Event::Completed;
    let mut attempt = 1u32;
    // Timestamps are whole seconds: a retry sooner than a second after the previous attempt
    // takes the next second, so every attempt has its own timestamp and signature (never more
    // than a few seconds ahead, well within receivers' tolerance).
    let mut last_timestamp = None;
    let mut next_timestamp = || {
        let now = unix_now();
        let timestamp = last_timestamp.map_or(now, |last: i64| now.max((last + 1).min(now + 5)));
        last_timestamp = Some(timestamp);
        timestamp
    };
    loop {
        let answer = attempt_once(state, &delivery, attempt, false, next_timestamp()).await;
        if matches!(answer, Some(200..=299)) {
            break;
        }
        let delay = match &state.config.sender {
            Sender::Replicate => state
                .config
                .retry_schedule
                .get(attempt as usize - 1)
                .copied(),
            Sender::Coglet { .. } => coglet::retry_delay(attempt, answer),
        };
        let delay = match delay {
            Some(delay) if retried => delay,
            _ => {
                if retried && state.config.verbose {
                    eprintln!(
                        "gave up on {} webhook {} of {} after {attempt} attempts",
                        delivery.event, delivery.webhook_id, delivery.prediction_id
                    );
                }
                return;
            }
        };
        actix_web::rt::time::sleep(delay).await;
        attempt += 1;
    }
    if faults.duplicate.contains(&delivery.event) {
        attempt_once(state, &delivery, attempt + 1, true, next_timestamp()).await;
    }
}

async fn attempt_once(
    state: &Arc<State>,
    delivery: &Delivery,
    attempt: u32,
    duplicate: bool,
    timestamp: i64,
) -> Option<u16> {
    let mut request = state
        .http
        .post(&delivery.url)
        .header("content-type", "application/json")
        .body(delivery.body.clone());
    let headers = match &state.config.sender {
        Sender::Replicate => {
            let headers = signature::sign(
                &state.secret(delivery.account),
                &delivery.webhook_id,
                timestamp,
                &delivery.body,
            );
            for (name, value) in headers.pairs() {
                request = request.header(name, value);
            }
            Some(headers)
        }
        Sender::Coglet { token } => {
            for (name, value) in coglet::headers(token.as_ref()) {
                request = request.header(name, value);
            }
            None
        }
    };
    // Taken before the request: the receiver's answer time says nothing about throttling.
    let sent_at_ms = now_ms();
    let result = match request.send().await {
        Ok(response) => Ok(response.status().as_u16()),
        Err(e) => Err(crate::describe_error(e)),
    };
    let answer = result.as_ref().ok().copied();
    record(
        state,
        delivery,
        (attempt, duplicate),
        Some(Sent(headers.as_ref())),
        sent_at_ms,
        result,
    );
    answer
}

/// How an attempt went out: signed (Replicate) or not (coglet). Not sent at all is `None`.
#[derive(Clone, Copy)]
struct Sent<'a>(Option<&'a signature::SignedHeaders>);

fn record(
    state: &Arc<State>,
    delivery: &Delivery,
    (attempt, duplicate): (u32, bool),
    sent: Option<Sent<'_>>,
    sent_at_ms: u64,
    result: Result<u16, String>,
) {
    let headers = sent.as_ref().and_then(|s| s.0);
    let (response_status, outcome, error) = match (&result, &sent) {
        (_, None) => (None, "dropped", result.err()),
        (Ok(code @ 200..=299), _) => (Some(*code), "delivered", None),
        (Ok(code), _) => (Some(*code), "failed", Some(format!("HTTP {code}"))),
        (Err(e), _) => (None, "failed", Some(e.clone())),
    };
    let record = DeliveryRecord {
        prediction_id: delivery.prediction_id.clone(),
        webhook_id: delivery.webhook_id.clone(),
        event: delivery.event.as_str().to_owned(),
        status: delivery.status.clone(),
        attempt,
        duplicate,
        url: delivery.url.clone(),
        timestamp: headers
            .and_then(|h| h.timestamp.parse().ok())
            .unwrap_or_default(),
        signature: headers.map(|h| h.signature.clone()).unwrap_or_default(),
        sent_at_ms,
        response_status,
        outcome: outcome.to_owned(),
        error,
    };
    if state.config.verbose {
        eprintln!(
            "webhook {} {} ({}) attempt {}{}: {}",
            record.prediction_id,
            record.event,
            record.status,
            record.attempt,
            if duplicate { " [duplicate]" } else { "" },
            match (&record.response_status, &record.error) {
                (Some(code), _) => format!("HTTP {code}"),
                (None, Some(e)) => e.clone(),
                (None, None) => record.outcome.clone(),
            }
        );
    }
    state.lock().deliveries.push(record);
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}
