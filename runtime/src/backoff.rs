//! The one backoff: exponential and capped. The API client spaces its retries with it, the
//! reconciler its polls of one prediction (in the store, so every instance agrees), and the inbox
//! worker its retries of a job, with jitter so that jobs failing together (a database that went
//! down) do not all come back at the same instant.

use std::time::Duration;

/// Exponential backoff: the delay after `n` earlier tries is `min(base * 2^n, cap)`.
///
/// In whole milliseconds, so stores can compute it in SQL too (see
/// [`WatchList::take_due`](crate::dedupe::WatchList::take_due)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// The first delay, in milliseconds.
    pub base_ms: i64,
    /// The longest delay, in milliseconds.
    pub cap_ms: i64,
}

impl Backoff {
    /// From `base` doubling up to `cap`.
    pub fn new(base: Duration, cap: Duration) -> Self {
        Self {
            base_ms: crate::clock::millis(base),
            cap_ms: crate::clock::millis(cap),
        }
    }

    /// The delay after `attempts` earlier tries, in milliseconds.
    pub fn after(self, attempts: u32) -> i64 {
        self.base_ms
            .saturating_mul(1i64.checked_shl(attempts.min(40)).unwrap_or(i64::MAX))
            .min(self.cap_ms)
    }

    /// The delay after `attempts` earlier tries.
    pub fn delay(self, attempts: u32) -> Duration {
        Duration::from_millis(u64::try_from(self.after(attempts)).unwrap_or(0))
    }

    /// [`Backoff::delay`] with "equal jitter": between half and all of it.
    pub fn jittered(self, attempts: u32) -> Duration {
        let half = self.delay(attempts) / 2;
        half + half.mul_f64(unit_random())
    }
}

/// A number in `[0, 1)`.
#[allow(clippy::cast_precision_loss)]
fn unit_random() -> f64 {
    let mut raw = [0u8; 8];
    // Jitter only spreads load: without the OS random source, no jitter is still correct.
    if getrandom::fill(&mut raw).is_err() {
        return 0.0;
    }
    (u64::from_le_bytes(raw) >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_within_jitter_and_stops_at_the_cap() {
        let b = Backoff::new(Duration::from_millis(100), Duration::from_secs(1));
        for (attempts, full) in [
            (0, 100),
            (1, 200),
            (2, 400),
            (3, 800),
            (4, 1000),
            (40, 1000),
        ] {
            assert_eq!(b.delay(attempts).as_millis(), full);
            for _ in 0..50 {
                let d = b.jittered(attempts).as_millis();
                assert!(d >= full / 2 && d <= full, "after {attempts}: {d} ms");
            }
        }
    }
}
