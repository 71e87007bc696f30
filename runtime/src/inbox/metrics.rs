//! The backlog through the `metrics` facade, for whatever exporter the application installs:
//! `replicate_webhook_inbox_jobs{state}`, `replicate_webhook_inbox_oldest_pending_seconds`,
//! `replicate_webhook_inbox_attempts`, and per-run counters and a duration histogram.

use std::time::Duration;

use super::Backlog;

/// Adds one `GROUP BY state` row to `backlog`.
pub(crate) fn add(
    backlog: &mut Backlog,
    state: &str,
    count: i64,
    attempts: i64,
    oldest_ms: Option<i64>,
    now_ms: i64,
) {
    let count = u64::try_from(count).unwrap_or(0);
    match state {
        "pending" => backlog.pending = count,
        "running" => backlog.running = count,
        "dead" => {
            backlog.dead = count;
            return;
        }
        _ => return,
    }
    backlog.attempts += u64::try_from(attempts).unwrap_or(0);
    if let Some(oldest) = oldest_ms {
        let age = Duration::from_millis(u64::try_from(now_ms - oldest).unwrap_or(0));
        backlog.oldest_pending = Some(backlog.oldest_pending.map_or(age, |a| a.max(age)));
    }
}

/// Publishes the backlog gauges.
#[allow(clippy::cast_precision_loss)] // job counts far below 2^52
pub(crate) fn publish(backlog: &Backlog) {
    for (state, count) in [
        ("pending", backlog.pending),
        ("running", backlog.running),
        ("dead", backlog.dead),
    ] {
        metrics::gauge!("replicate_webhook_inbox_jobs", "state" => state).set(count as f64);
    }
    metrics::gauge!("replicate_webhook_inbox_attempts").set(backlog.attempts as f64);
    metrics::gauge!("replicate_webhook_inbox_oldest_pending_seconds")
        .set(backlog.oldest_pending.unwrap_or_default().as_secs_f64());
}

/// Counts one handler run and how it ended (`done`, `retry`, `dead`, `lost`).
pub(crate) fn run(handler: &'static str, result: &'static str, took: Duration) {
    metrics::counter!("replicate_webhook_inbox_runs_total", "handler" => handler, "result" => result)
        .increment(1);
    metrics::histogram!("replicate_webhook_inbox_run_seconds", "handler" => handler)
        .record(took.as_secs_f64());
}

/// Counts a stored delivery.
pub(crate) fn stored() {
    metrics::counter!("replicate_webhook_inbox_stored_total").increment(1);
}

/// Counts a delivery refused because the backlog is at its bound.
pub(crate) fn refused_full() {
    metrics::counter!("replicate_webhook_inbox_refused_total", "reason" => "backlog-full")
        .increment(1);
}
