//! Refused requests, logged at a bounded rate.
//!
//! A refusal is the answer to a client that did not prove it is Replicate. Logging each one lets
//! anyone write the log as fast as they can send requests, so at most one line a second is
//! written, carrying the refusals counted since the line before.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Counts refusals and logs them at most once per interval.
#[derive(Debug)]
pub(crate) struct Refusals {
    total: AtomicU64,
    /// `total` when the last line was written.
    reported: AtomicU64,
    /// When the last line was written, in milliseconds since the epoch.
    last_ms: AtomicU64,
    interval_ms: u64,
}

impl Refusals {
    pub(crate) fn new(interval: Duration) -> Self {
        Self {
            total: AtomicU64::new(0),
            reported: AtomicU64::new(0),
            last_ms: AtomicU64::new(0),
            interval_ms: u64::try_from(interval.as_millis()).unwrap_or(u64::MAX),
        }
    }

    /// Counts one refusal; logs it (with those suppressed since the last line) when the
    /// interval has passed. Returns whether a line was written.
    pub(crate) fn record(&self, status: u16, reason: &str) -> bool {
        let total = self.total.fetch_add(1, Ordering::Relaxed) + 1;
        let now = now_ms();
        let last = self.last_ms.load(Ordering::Relaxed);
        if now.saturating_sub(last) < self.interval_ms
            || self
                .last_ms
                .compare_exchange(last, now, Ordering::AcqRel, Ordering::Relaxed)
                .is_err()
        {
            return false;
        }
        let since = total - self.reported.swap(total, Ordering::AcqRel);
        tracing::warn!(
            status,
            reason,
            refused_since_last_line = since,
            refused_total = total,
            "webhook request refused"
        );
        true
    }

    /// Refusals counted since the receiver started.
    #[cfg(test)]
    pub(crate) fn total(&self) -> u64 {
        self.total.load(Ordering::Relaxed)
    }
}

fn now_ms() -> u64 {
    u64::try_from(crate::clock::now_ms()).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flood_writes_one_line_per_interval_and_counts_everything() {
        let refusals = Refusals::new(Duration::from_hours(1));
        let lines = (0..10_000)
            .filter(|_| refusals.record(401, "bad-signature"))
            .count();
        assert_eq!(lines, 1);
        assert_eq!(refusals.total(), 10_000);
    }

    #[test]
    fn with_no_interval_every_refusal_is_a_line() {
        let refusals = Refusals::new(Duration::ZERO);
        assert!(refusals.record(401, "x"));
        assert!(refusals.record(401, "x"));
        assert_eq!(refusals.total(), 2);
    }
}
