//! The reconciler's watch list, as the receiver and a watching client feed it: a prediction
//! heard of is due for a poll unless it is heard of again or finishes first. Its own file, so
//! the API client can feed the list without depending on the reconciler that drains it.

use std::sync::Arc;
use std::time::Duration;

use crate::dedupe::{WatchList, bounded, millis, now_ms};

/// Watches predictions in a store: what the receiver and a watching [`Client`](crate::client::Client) call.
#[derive(Clone)]
pub(crate) struct Watcher {
    pub(crate) list: Arc<dyn WatchList>,
    pub(crate) after: Duration,
    pub(crate) watch_for: Duration,
    pub(crate) timeout: Duration,
    /// Counts what was expected against what arrived.
    pub(crate) monitor: crate::monitor::Monitor,
}

impl Watcher {
    /// Heard of `prediction_id` now: poll it if nothing more is heard within `after`.
    pub(crate) async fn heard(&self, prediction_id: &str) {
        let due = now_ms().saturating_add(millis(self.after));
        let tracked = self.list.track(prediction_id, due, self.watch_for);
        if let Err(e) = bounded(self.timeout, tracked).await {
            tracing::warn!(prediction = prediction_id, error = %e, "could not watch the prediction");
        }
    }

    /// Its terminal status was handled: stop watching.
    pub(crate) async fn done(&self, prediction_id: &str) {
        if let Err(e) = bounded(self.timeout, self.list.untrack(prediction_id)).await {
            tracing::warn!(prediction = prediction_id, error = %e, "could not stop watching the prediction");
        }
    }
}

impl std::fmt::Debug for Watcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watcher")
            .field("after", &self.after)
            .finish_non_exhaustive()
    }
}
