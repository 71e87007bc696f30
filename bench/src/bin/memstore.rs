//! Resident memory of the default memory store holding one million done markers, with the keys a
//! terminal delivery leaves (`webhook:msg_…` and `prediction:<id>:terminal`).
//! Prints one JSON line.

use std::time::Duration;

use replicate_webhook::dedupe::{DedupeStore as _, MemoryStore};
use replicate_webhook_bench::rss_kib;

#[allow(clippy::cast_precision_loss)]
fn main() {
    const MARKERS: u32 = 1_000_000;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let before = rss_kib(std::process::id()).expect("VmRSS");
    let store = MemoryStore::new();
    let ttl = Duration::from_hours(24);
    runtime.block_on(async {
        for i in 0..MARKERS {
            // A Replicate-sized id (26 characters), half the markers per key kind.
            let id = format!("{i:0>26}");
            let key = if i % 2 == 0 {
                format!("webhook:msg_{id}")
            } else {
                format!("prediction:{id}:terminal")
            };
            store
                .mark_done(&key, ttl)
                .await
                .expect("room for a million markers");
        }
    });
    let after = rss_kib(std::process::id()).expect("VmRSS");
    assert_eq!(store.len(), MARKERS as usize);
    println!(
        "{}",
        serde_json::json!({
            "markers": MARKERS,
            "rss_mib": (after.saturating_sub(before)) as f64 / 1024.0,
        })
    );
}
