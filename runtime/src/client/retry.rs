//! How failed calls are retried.

use std::time::Duration;

/// How failed calls are retried.
///
/// `429 Too Many Requests`, `5xx` answers and transport failures are retried with exponential
/// backoff (honouring `Retry-After`). A create whose answer was lost may still have created a
/// prediction, so a retried create can start a second one: set
/// [`retry_creates_on_server_error`](Self::retry_creates_on_server_error) to `false` to retry
/// creates on `429` only.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    /// Total attempts, the first included (1 = no retry).
    pub max_attempts: u32,
    /// Delay before the first retry; doubled for each further one.
    pub initial_delay: Duration,
    /// Upper bound of one delay, `Retry-After` included.
    pub max_delay: Duration,
    /// Retry creates on `5xx` and transport failures too (default `true`).
    pub retry_creates_on_server_error: bool,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 4,
            initial_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(30),
            retry_creates_on_server_error: true,
        }
    }
}

impl RetryPolicy {
    /// No retries at all.
    pub fn none() -> Self {
        Self {
            max_attempts: 1,
            ..Self::default()
        }
    }

    /// The delay before retry number `retry` (0-based), before any `Retry-After`.
    pub fn backoff(&self, retry: u32) -> Duration {
        crate::backoff::Backoff::new(self.initial_delay, self.max_delay).delay(retry)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let policy = RetryPolicy {
            max_attempts: 10,
            initial_delay: Duration::from_millis(100),
            max_delay: Duration::from_millis(500),
            retry_creates_on_server_error: false,
        };
        assert_eq!(policy.backoff(0), Duration::from_millis(100));
        assert_eq!(policy.backoff(1), Duration::from_millis(200));
        assert_eq!(policy.backoff(2), Duration::from_millis(400));
        assert_eq!(policy.backoff(3), Duration::from_millis(500));
        assert_eq!(policy.backoff(40), Duration::from_millis(500));
    }
}
