//! Real servers for the tests that need them, found through the environment.
//!
//! `scripts/with-services` (run by `./scripts/test`, and so by CI) starts Redis and PostgreSQL
//! on free loopback ports and sets `REDIS_URL`, `DATABASE_URL` and `REQUIRE_SERVICES=1`.

/// The URL in `var`, or `None` after saying on stderr that the calling test skips.
///
/// Panics when `REQUIRE_SERVICES=1` and `var` is unset: CI must never pass by skipping.
pub fn url(var: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(url) if !url.trim().is_empty() => Some(url),
        _ if std::env::var("REQUIRE_SERVICES").is_ok_and(|v| v == "1") => {
            panic!(
                "{var} is unset but REQUIRE_SERVICES=1: run the tests through scripts/with-services"
            )
        }
        _ => {
            // Straight to the process's stderr, not through `eprintln!`, which the test harness
            // captures and shows only for failing tests: a person running `cargo test` must see
            // that this test passed by skipping.
            use std::io::Write as _;
            let _ = writeln!(
                std::io::stderr(),
                "skipped: {var} is unset (scripts/with-services starts the server and sets it)"
            );
            None
        }
    }
}

/// `REDIS_URL`, or `None` when Redis tests skip.
pub fn redis_url() -> Option<String> {
    url("REDIS_URL")
}

/// `DATABASE_URL`, or `None` when PostgreSQL tests skip.
pub fn database_url() -> Option<String> {
    url("DATABASE_URL")
}

/// A prefix no other test run shares, so tests can share one server.
pub fn unique(label: &str) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    format!(
        "{label}-{}-{nanos:x}-{}:",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}
