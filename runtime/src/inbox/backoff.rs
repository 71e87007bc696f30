//! The delay before a retry: exponential, capped, with jitter so that jobs failing together
//! (a database that went down) do not all come back at the same instant.

use std::time::Duration;

/// Exponential backoff with "equal jitter": retry `n` waits between half and all of
/// `min(base * 2^(n-1), max)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// The delay before the first retry (default 5 s).
    pub base: Duration,
    /// The longest delay (default 1 h): with 20 attempts, retries spread over about a day.
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            base: Duration::from_secs(5),
            max: Duration::from_hours(1),
        }
    }
}

impl Backoff {
    /// The delay after the `attempt`-th run failed (1-based).
    pub fn delay(&self, attempt: u32) -> Duration {
        let exponent = attempt.saturating_sub(1).min(30);
        let full = self
            .base
            .saturating_mul(1u32 << exponent)
            .min(self.max.max(self.base));
        let half = full / 2;
        half + half.mul_f64(unit_random())
    }
}

/// A number in `[0, 1)`.
fn unit_random() -> f64 {
    let mut raw = [0u8; 8];
    // Jitter only spreads load: without the OS random source, no jitter is still correct.
    if getrandom::fill(&mut raw).is_err() {
        return 0.0;
    }
    #[allow(clippy::cast_precision_loss)]
    let unit = (u64::from_le_bytes(raw) >> 11) as f64 / (1u64 << 53) as f64;
    unit
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_within_jitter_and_stops_at_the_cap() {
        let b = Backoff {
            base: Duration::from_millis(100),
            max: Duration::from_secs(1),
        };
        for (attempt, full) in [
            (1, 100),
            (2, 200),
            (3, 400),
            (4, 800),
            (5, 1000),
            (40, 1000),
        ] {
            for _ in 0..50 {
                let d = b.delay(attempt).as_millis();
                assert!(d >= full / 2 && d <= full, "attempt {attempt}: {d} ms");
            }
        }
    }
}
