//! The scripted lifecycle of a prediction.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use replicate_webhook::testkit::new_prediction_id;
use replicate_webhook::{Event, Status};
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::deliver::{self, Change};
use super::models::OutputPlan;
use super::{Outcome, Script, Sim, State};

/// What a create request asked for, validated.
#[derive(Debug, Clone)]
pub(super) struct NewPrediction {
    pub(super) account: usize,
    pub(super) model: String,
    pub(super) version: String,
    pub(super) deployment: Option<String>,
    pub(super) input: Value,
    pub(super) webhook: Option<String>,
    pub(super) events: Option<Vec<Event>>,
    pub(super) cancel_after: Option<Duration>,
    pub(super) script: Script,
    pub(super) schema: Option<Value>,
}

pub(super) fn now_text() -> String {
    OffsetDateTime::now_utc()
        .format(&Rfc3339)
        .unwrap_or_default()
}

/// Stores the prediction, starts its lifecycle, and returns its id.
pub(super) fn create(state: &Arc<State>, new: &NewPrediction) -> String {
    create_kind(state, new, None)
}

/// Like [`create`], for a training whose new version goes to `destination`: `urls` under
/// `/trainings/`, no output until it succeeds, then `{version, weights}`.
pub(super) fn create_training(
    state: &Arc<State>,
    new: &NewPrediction,
    destination: &str,
) -> String {
    create_kind(state, new, Some(destination))
}

fn create_kind(state: &Arc<State>, new: &NewPrediction, destination: Option<&str>) -> String {
    let id = new_prediction_id();
    let base = &state.api_base;
    let collection = if destination.is_some() {
        "trainings"
    } else {
        "predictions"
    };
    let created = OffsetDateTime::now_utc();
    let mut body = json!({
        "id": id,
        "model": new.model,
        "version": new.version,
        "input": new.input,
        "logs": null,
        "output": null,
        "error": null,
        "status": "starting",
        "created_at": created.format(&Rfc3339).unwrap_or_default(),
        "started_at": null,
        "completed_at": null,
        "data_removed": false,
        "source": "api",
        "metrics": {},
        "urls": {
            "get": format!("{base}/{collection}/{id}"),
            "cancel": format!("{base}/{collection}/{id}/cancel"),
            "web": format!("https://replicate.com/p/{id}"),
        },
    });
    if let Some(webhook) = &new.webhook {
        body["webhook"] = json!(webhook);
    }
    if let Some(events) = &new.events {
        body["webhook_events_filter"] = json!(events);
    }
    if let Some(destination) = destination {
        body["destination"] = json!(destination);
    }
    if let Some(deployment) = &new.deployment {
        body["deployment"] = json!(deployment);
    }
    if let Some(after) = new.cancel_after {
        let deadline = created + after;
        body["deadline"] = json!(deadline.format(&Rfc3339).unwrap_or_default());
    }
    let events: BTreeSet<Event> = new
        .events
        .clone()
        .unwrap_or_else(|| vec![Event::Output, Event::Completed])
        .into_iter()
        .collect();
    let plan = OutputPlan::new(new.schema.as_ref(), &new.input, &id, new.script.steps);
    {
        let mut inner = state.lock();
        inner.order.push(id.clone());
        inner.predictions.insert(
            id.clone(),
            Sim {
                body,
                events,
                webhook: new.webhook.clone(),
                created: Instant::now(),
                last_intermediate: None,
                pending_intermediate: None,
                held: None,
                account: new.account,
            },
        );
    }
    deliver::emit_now(state, &id, Event::Start);
    if let Some(after) = new.cancel_after {
        let state = state.clone();
        let id = id.clone();
        actix_web::rt::spawn(async move {
            actix_web::rt::time::sleep(after).await;
            finish(&state, &id, Finish::Deadline);
        });
    }
    let state = state.clone();
    let run_id = id.clone();
    let script = new.script;
    let plan = destination.is_none().then_some(plan);
    actix_web::rt::spawn(async move { run(&state, &run_id, script, plan.as_ref()).await });
    id
}

/// `plan` is `None` for a training: it logs each step but has no output until it succeeds.
async fn run(state: &Arc<State>, id: &str, script: Script, plan: Option<&OutputPlan>) {
    actix_web::rt::time::sleep(script.start_delay).await;
    let started = progress(state, id, false, |body| {
        body["status"] = json!("processing");
        body["started_at"] = json!(now_text());
        body["logs"] = json!("Starting prediction\n");
    });
    if !started {
        return;
    }
    for step in 0..script.steps {
        actix_web::rt::time::sleep(script.step).await;
        let output = plan.map(|plan| plan.at(step, script.steps));
        let stepped = progress(state, id, output.is_some(), |body| {
            let logs = body["logs"].as_str().unwrap_or_default().to_owned();
            body["logs"] = json!(format!("{logs}step {}/{}\n", step + 1, script.steps));
            if let Some(output) = output {
                body["output"] = output;
            }
        });
        if !stepped {
            return;
        }
    }
    actix_web::rt::time::sleep(script.step).await;
    finish(state, id, Finish::Script(script.outcome));
}

/// Applies `change`, which adds logs and maybe `output`, and sends the intermediate events that
/// follow, unless the prediction is gone or terminal. Returns whether it applied.
fn progress(state: &Arc<State>, id: &str, output: bool, change: impl FnOnce(&mut Value)) -> bool {
    let changed = update(state, id, change);
    if changed {
        deliver::emit_intermediate(state, id, Change { output, logs: true });
    }
    changed
}

/// Applies `change` unless the prediction is gone or terminal. Returns whether it applied.
fn update(state: &Arc<State>, id: &str, change: impl FnOnce(&mut Value)) -> bool {
    let mut inner = state.lock();
    match inner.predictions.get_mut(id) {
        Some(sim) if !sim.is_terminal() => {
            change(&mut sim.body);
            true
        }
        _ => false,
    }
}

/// Why a prediction ends.
#[derive(Debug, Clone, Copy)]
pub(super) enum Finish {
    /// The script ran to its end.
    Script(Outcome),
    /// `POST /predictions/{id}/cancel`.
    Cancel,
    /// The `Cancel-After` deadline passed.
    Deadline,
}

/// Moves a prediction to its terminal status and emits `completed`. No-op when already terminal.
pub(super) fn finish(state: &Arc<State>, id: &str, why: Finish) {
    let finished = {
        let mut inner = state.lock();
        let Some(sim) = inner.predictions.get_mut(id) else {
            return;
        };
        if sim.is_terminal() {
            return;
        }
        let started = Status::parse(sim.status()) != Status::Starting;
        let status = match why {
            Finish::Script(outcome) => outcome.status(),
            Finish::Cancel => Status::Canceled,
            Finish::Deadline if started => Status::Canceled,
            Finish::Deadline => Status::Aborted,
        };
        let now = now_text();
        let total = sim.created.elapsed().as_secs_f64();
        let body = &mut sim.body;
        body["status"] = json!(status.as_str());
        body["completed_at"] = json!(now);
        match status {
            Status::Failed => {
                body["error"] = json!("simulated failure (--outcome failed)");
            }
            Status::Succeeded => {
                if let Some(destination) = body.get("destination").and_then(Value::as_str) {
                    body["output"] = super::trainings::output(destination, id);
                }
            }
            _ => {
                let logs = body["logs"].as_str().unwrap_or_default().to_owned();
                if started {
                    body["logs"] = json!(format!("{logs}canceled\n"));
                }
            }
        }
        if started {
            body["metrics"] =
                json!({"predict_time": round(total * 0.9), "total_time": round(total)});
        }
        true
    };
    if finished {
        deliver::emit_now(state, id, Event::Completed);
    }
}

fn round(seconds: f64) -> f64 {
    (seconds * 1000.0).round() / 1000.0
}

/// Waits until the prediction is terminal or `limit` passed.
pub(super) async fn wait_for_terminal(state: &Arc<State>, id: &str, limit: Duration) {
    let until = Instant::now() + limit;
    loop {
        let terminal = state
            .lock()
            .predictions
            .get(id)
            .is_none_or(Sim::is_terminal);
        if terminal || Instant::now() >= until {
            return;
        }
        actix_web::rt::time::sleep(Duration::from_millis(20)).await;
    }
}
