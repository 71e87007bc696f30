//! The bound on the inbox's backlog: past it the receiver answers 503 instead of storing more.
//!
//! Counting the backlog in the database on every delivery would cost a scan of every waiting
//! job, at its largest exactly when the backlog is long. So the count is taken at most once a
//! second, by whichever delivery finds it stale, and what this process stores in between is
//! added to it. Other instances' jobs show at the next count: the bound may be passed by what
//! all instances store in one second, never more.

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use super::{Queue, now_ms};

/// How stale the count may be.
const RECOUNT_EVERY_MS: i64 = 1_000;

/// The backlog as last counted, plus what this process stored since.
#[derive(Debug, Default)]
pub(crate) struct BacklogLimit {
    /// Jobs waiting or running.
    jobs: AtomicU64,
    counted_ms: AtomicI64,
    counting: AtomicBool,
    max: Option<u64>,
}

impl BacklogLimit {
    pub(crate) fn new(max: Option<u64>) -> Self {
        Self {
            max,
            ..Self::default()
        }
    }

    /// Whether the backlog is at its bound, counting it again first when the count is stale.
    /// A count that fails or takes longer than `timeout` keeps the last one: the bound is a
    /// guard against a flood, and a slow database already answers 503 on the store itself.
    pub(crate) async fn full(&self, queue: &dyn Queue, timeout: Duration) -> bool {
        let Some(max) = self.max else {
            return false;
        };
        let now = now_ms();
        if now - self.counted_ms.load(Ordering::Relaxed) >= RECOUNT_EVERY_MS
            && !self.counting.swap(true, Ordering::AcqRel)
        {
            if let Ok(Ok(backlog)) = tokio::time::timeout(timeout, queue.backlog()).await {
                self.jobs
                    .store(backlog.pending + backlog.running, Ordering::Relaxed);
                self.counted_ms.store(now, Ordering::Relaxed);
            }
            self.counting.store(false, Ordering::Release);
        }
        self.jobs.load(Ordering::Relaxed) >= max
    }

    /// Counts a job this process stored.
    pub(crate) fn stored(&self) {
        self.jobs.fetch_add(1, Ordering::Relaxed);
    }
}
