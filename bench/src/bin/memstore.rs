//! Resident memory of the default memory store holding one million done markers, half of each key
//! deliveries leave (`webhook:msg_…` for intermediate events, `prediction:<id>:terminal` for
//! terminal ones), then at its
//! default bound, where a store of markers all inside the replay window refuses the next.
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
    // Then up to the default bound, every marker inside the replay window (protected): the
    // most keys the store remembers at once, and so, divided by the keys a delivery leaves and
    // by the window, the most new deliveries a second it can accept for good.
    let (held, refused) = runtime.block_on(async {
        let mut i = MARKERS;
        loop {
            let key = format!("webhook:msg_{i:0>26}");
            if store.mark_done(&key, ttl).await.is_err() {
                return (store.len(), true);
            }
            i += 1;
            if store.len() > MemoryStore::DEFAULT_CAPACITY {
                return (store.len(), false);
            }
        }
    });
    let at_bound = rss_kib(std::process::id()).expect("VmRSS");
    println!(
        "{}",
        serde_json::json!({
            "markers": MARKERS,
            "rss_mib": (after.saturating_sub(before)) as f64 / 1024.0,
            "keys_at_bound": held,
            "refused_past_bound": refused,
            "rss_mib_at_bound": (at_bound.saturating_sub(before)) as f64 / 1024.0,
            "protect_s": MemoryStore::DEFAULT_PROTECT.as_secs(),
        })
    );
}
