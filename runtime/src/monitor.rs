//! The expected-delivery monitor: the predictions the app created through
//! [`WebhookConfig::watching`](crate::WebhookConfig::watching) are webhooks it expects. Per model it
//! counts expected, received and recovered (by the reconciler instead of a webhook) terminal
//! deliveries and the lag from `completed_at` to arrival; when the recovered share crosses a
//! threshold it calls the app's hook and sets a gauge, so an operator learns that deliveries
//! stopped before users do.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use serde::Serialize;

/// Reconciler deliveries carry webhook ids starting with this (see `reconcile.rs`).
pub(crate) const RECOVERED_PREFIX: &str = "msg_reconcile_";
/// Watched predictions kept for the dashboard at most.
const WATCHED_MAX: usize = 10_000;
/// Recent recoveries kept for the dashboard.
const RECOVERED_MAX: usize = 50;
/// Upper bounds of the lag histogram's buckets, in seconds (the last is everything above).
pub const LAG_BUCKETS: [f64; 8] = [0.5, 1.0, 2.0, 5.0, 15.0, 60.0, 300.0, f64::INFINITY];

/// What the hook is told.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Alert {
    /// The model whose deliveries go missing.
    pub model: String,
    /// Terminal results that came by webhook.
    pub received: u64,
    /// Terminal results the reconciler recovered instead.
    pub recovered: u64,
    /// `recovered / (received + recovered)`.
    pub recovered_share: f64,
}

type Hook = Arc<dyn Fn(&Alert) + Send + Sync>;

/// When to alert: at least `min_results` terminal results, of which `threshold` or more (a
/// share, 0 to 1) were recovered rather than delivered.
#[derive(Clone)]
pub struct MonitorOptions {
    /// The share of recovered results that alerts (default 0.5).
    pub threshold: f64,
    /// Results seen before the share means anything (default 10).
    pub min_results: u64,
    hook: Option<Hook>,
}

impl Default for MonitorOptions {
    fn default() -> Self {
        Self {
            threshold: 0.5,
            min_results: 10,
            hook: None,
        }
    }
}

impl std::fmt::Debug for MonitorOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MonitorOptions")
            .field("threshold", &self.threshold)
            .field("min_results", &self.min_results)
            .field("hook", &self.hook.is_some())
            .finish()
    }
}

impl MonitorOptions {
    /// Alerts when this share (0 to 1) of a model's results were recovered (default 0.5).
    #[must_use]
    pub fn threshold(mut self, share: f64) -> Self {
        self.threshold = share;
        self
    }

    /// Alerts only once a model has this many results (default 10).
    #[must_use]
    pub fn min_results(mut self, n: u64) -> Self {
        self.min_results = n;
        self
    }

    /// Calls `hook` when a model's recovered share crosses the threshold (once, until it falls
    /// below again).
    #[must_use]
    pub fn on_alert(mut self, hook: impl Fn(&Alert) + Send + Sync + 'static) -> Self {
        self.hook = Some(Arc::new(hook));
        self
    }
}

/// One model's figures.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ModelStats {
    /// Predictions created through a watching client.
    pub expected: u64,
    /// Terminal results that came by webhook.
    pub received: u64,
    /// Terminal results the reconciler recovered.
    pub recovered: u64,
    /// Lag from `completed_at` to arrival: counts per [`LAG_BUCKETS`] bucket.
    pub lag_buckets: [u64; 8],
    /// Whether the alert is on.
    pub alerting: bool,
}

/// A prediction being waited for.
#[derive(Debug, Clone, Serialize)]
pub struct Watched {
    /// Its id.
    pub prediction_id: String,
    /// Its model.
    pub model: String,
    /// When it was created, in milliseconds since the epoch.
    pub created_ms: i64,
}

/// A result the reconciler recovered.
#[derive(Debug, Clone, Serialize)]
pub struct Recovered {
    /// The prediction.
    pub prediction_id: String,
    /// Its model.
    pub model: String,
    /// When, in milliseconds since the epoch.
    pub at_ms: i64,
}

/// What the dashboard shows.
#[derive(Debug, Clone, Default, Serialize)]
pub struct MonitorSnapshot {
    /// By model.
    pub models: BTreeMap<String, ModelStats>,
    /// Predictions created and not yet finished, oldest first.
    pub watched: Vec<Watched>,
    /// The latest recoveries, newest first.
    pub recovered: Vec<Recovered>,
}

/// The monitor of one receiver. Cheap to clone.
#[derive(Clone, Default)]
pub struct Monitor {
    inner: Arc<Mutex<State>>,
    options: MonitorOptions,
}

impl std::fmt::Debug for Monitor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Monitor")
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

#[derive(Default)]
struct State {
    models: BTreeMap<String, ModelStats>,
    watched: BTreeMap<String, Watched>,
    recovered: VecDeque<Recovered>,
}

impl Monitor {
    /// A monitor that alerts as `options` say.
    pub fn new(options: MonitorOptions) -> Self {
        Self {
            inner: Arc::default(),
            options,
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The app created `prediction_id` of `model` and expects its webhooks.
    pub fn expect(&self, prediction_id: &str, model: &str) {
        let mut state = self.state();
        state.models.entry(model.to_owned()).or_default().expected += 1;
        if state.watched.len() < WATCHED_MAX {
            state.watched.insert(
                prediction_id.to_owned(),
                Watched {
                    prediction_id: prediction_id.to_owned(),
                    model: model.to_owned(),
                    created_ms: crate::clock::now_ms(),
                },
            );
        }
        ::metrics::counter!("replicate_webhook_deliveries_expected_total", "model" => model.to_owned())
            .increment(1);
    }

    /// A terminal delivery of `prediction_id` was handled; `body` is its verified JSON.
    pub fn arrived(&self, prediction_id: &str, model: &str, webhook_id: &str, body: &[u8]) {
        let now = crate::clock::now_ms();
        let recovered = webhook_id.starts_with(RECOVERED_PREFIX);
        let lag = completed_at_ms(body).map(|at| (now - at).max(0));
        let alert = {
            let mut guard = self.state();
            guard.watched.remove(prediction_id);
            let stats = guard.models.entry(model.to_owned()).or_default();
            if recovered {
                stats.recovered += 1;
            } else {
                stats.received += 1;
                if let Some(lag) = lag {
                    #[allow(clippy::cast_precision_loss)]
                    let secs = lag as f64 / 1000.0;
                    let bucket = LAG_BUCKETS.iter().position(|b| secs <= *b).unwrap_or(7);
                    stats.lag_buckets[bucket] += 1;
                    ::metrics::histogram!("replicate_webhook_delivery_lag_seconds", "model" => model.to_owned())
                        .record(secs);
                }
            }
            let results = stats.received + stats.recovered;
            #[allow(clippy::cast_precision_loss)]
            let share = stats.recovered as f64 / results.max(1) as f64;
            let crossing = results >= self.options.min_results && share >= self.options.threshold;
            let changed = crossing != stats.alerting;
            stats.alerting = crossing;
            let alert = Alert {
                model: model.to_owned(),
                received: stats.received,
                recovered: stats.recovered,
                recovered_share: share,
            };
            if recovered {
                if guard.recovered.len() == RECOVERED_MAX {
                    guard.recovered.pop_back();
                }
                guard.recovered.push_front(Recovered {
                    prediction_id: prediction_id.to_owned(),
                    model: model.to_owned(),
                    at_ms: now,
                });
            }
            changed.then_some((crossing, alert))
        };
        if let Some((on, alert)) = alert {
            ::metrics::gauge!("replicate_webhook_deliveries_missing", "model" => model.to_owned())
                .set(if on { 1.0 } else { 0.0 });
            if on {
                tracing::warn!(
                    model,
                    recovered_share = alert.recovered_share,
                    "webhooks are missing: the reconciler recovers what should have been delivered"
                );
                if let Some(hook) = &self.options.hook {
                    hook(&alert);
                }
            }
        }
    }

    /// What the dashboard shows.
    pub fn snapshot(&self) -> MonitorSnapshot {
        let state = self.state();
        let mut watched: Vec<Watched> = state.watched.values().cloned().collect();
        watched.sort_by_key(|w| w.created_ms);
        MonitorSnapshot {
            models: state.models.clone(),
            watched,
            recovered: state.recovered.iter().cloned().collect(),
        }
    }
}

/// The body's `completed_at`, in milliseconds since the epoch.
fn completed_at_ms(body: &[u8]) -> Option<i64> {
    #[derive(serde::Deserialize)]
    struct Times<'a> {
        #[serde(borrow)]
        completed_at: Option<std::borrow::Cow<'a, str>>,
    }
    let times: Times<'_> = serde_json::from_slice(body).ok()?;
    let at = time::OffsetDateTime::parse(
        &times.completed_at?,
        &time::format_description::well_known::Rfc3339,
    )
    .ok()?;
    i64::try_from(at.unix_timestamp_nanos() / 1_000_000).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alerts_once_when_recoveries_cross_the_threshold() {
        let alerts = Arc::new(Mutex::new(Vec::new()));
        let seen = alerts.clone();
        let monitor = Monitor::new(
            MonitorOptions {
                threshold: 0.5,
                min_results: 4,
                ..MonitorOptions::default()
            }
            .on_alert(move |a| seen.lock().unwrap().push(a.clone())),
        );
        let body = br#"{"completed_at":"2026-01-01T00:00:00.000Z"}"#;
        for i in 0..4 {
            monitor.expect(&format!("p{i}"), "a/b");
        }
        monitor.arrived("p0", "a/b", "msg_1", body);
        monitor.arrived("p1", "a/b", "msg_reconcile_p1_succeeded", body);
        monitor.arrived("p2", "a/b", "msg_reconcile_p2_succeeded", body);
        assert!(
            alerts.lock().unwrap().is_empty(),
            "3 results is below min_results"
        );
        monitor.arrived("p3", "a/b", "msg_reconcile_p3_succeeded", body);
        monitor.arrived("p4", "a/b", "msg_reconcile_p4_succeeded", body);
        let alerts = alerts.lock().unwrap();
        assert_eq!(alerts.len(), 1, "{alerts:?}");
        assert_eq!((alerts[0].received, alerts[0].recovered), (1, 3));
        let snapshot = monitor.snapshot();
        let stats = &snapshot.models["a/b"];
        assert_eq!((stats.expected, stats.received, stats.recovered), (4, 1, 4));
        assert_eq!(
            stats.lag_buckets[7], 1,
            "a lag of months is in the last bucket"
        );
        assert!(snapshot.watched.is_empty());
        assert_eq!(snapshot.recovered[0].prediction_id, "p4");
    }
}
