//! The one clock: milliseconds since the Unix epoch, and durations in the same unit.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch, from the system clock.
#[cfg_attr(
    not(feature = "testkit"),
    expect(unreachable_pub, reason = "public only through testkit::protocol")
)]
pub fn now_ms() -> i64 {
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(since.as_millis()).unwrap_or(i64::MAX)
}

/// Milliseconds in `duration`, saturating: `Duration::MAX` ("never expire") must not overflow.
pub(crate) fn millis(duration: Duration) -> i64 {
    // A century is "never" for a dedupe key, and keeps `now + ttl` far from i64::MAX.
    const CENTURY_MS: u128 = 100 * 365 * 24 * 60 * 60 * 1000;
    i64::try_from(duration.as_millis().min(CENTURY_MS)).unwrap_or(i64::MAX)
}
