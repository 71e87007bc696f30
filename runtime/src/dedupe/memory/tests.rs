use super::*;

const TTL: Duration = Duration::from_mins(1);

/// A store that may evict any done marker, to test the bound itself.
fn unprotected(capacity: usize) -> MemoryStore {
    MemoryStore::with_capacity(capacity).protect_for(Duration::ZERO)
}

/// Marks `{prefix}{i}` done for every `i` in `range`.
async fn fill(store: &MemoryStore, prefix: &str, range: std::ops::Range<usize>) {
    for i in range {
        store.mark_done(&format!("{prefix}{i}"), TTL).await.unwrap();
    }
}

/// Claims `key`, which must be free.
async fn acquire(store: &MemoryStore, key: &str, ttl: Duration) -> ClaimToken {
    let Claim::Acquired(token) = store.claim(key, ttl).await.unwrap() else {
        panic!("{key} is not free")
    };
    token
}

/// Whether a claim of `key` finds another worker holding it.
async fn in_flight(store: &MemoryStore, key: &str) -> bool {
    matches!(store.claim(key, TTL).await.unwrap(), Claim::InFlight { .. })
}

#[tokio::test]
async fn stays_within_capacity() {
    let store = unprotected(100);
    fill(&store, "k", 0..1_000).await;
    assert!(store.len() <= 100, "{}", store.len());
    assert!(store.is_done("k999").await.unwrap());
    assert!(!store.is_done("k0").await.unwrap());
}

#[tokio::test]
async fn a_full_store_evicts_an_eighth_at_once_not_one_key_per_insert() {
    // One sweep over the map per eighth of the capacity keeps a full store's claims cheap
    // (`cargo bench --bench receive` measures it); evicting one key per insert made every
    // claim of a full store walk the whole map.
    let store = unprotected(800);
    fill(&store, "k", 0..800).await;
    assert_eq!(store.len(), 800);
    store.mark_done("one-more", TTL).await.unwrap();
    assert_eq!(store.len(), 700 + 1);
    assert!(!store.is_done("k99").await.unwrap());
    assert!(store.is_done("k100").await.unwrap());
    fill(&store, "again", 0..99).await;
    assert_eq!(store.len(), 800, "no sweep until full again");
}

#[tokio::test]
async fn released_claims_do_not_grow_the_store() {
    let store = unprotected(100);
    for i in 0..10_000 {
        let key = format!("k{i}");
        let token = acquire(&store, &key, TTL).await;
        store.release(&key, &token).await.unwrap();
    }
    assert!(store.is_empty());
    assert_eq!(store.shards.len(), 1, "a small store is one map");
    let slots = lock(&store.shards[0]).entries.capacity();
    assert!(slots <= 200, "{slots} slots kept for an empty store");
}

#[tokio::test]
async fn recent_done_markers_and_claims_are_never_evicted_a_full_store_refuses() {
    // The replay this protects against: a handled delivery re-sent inside the signature
    // tolerance after enough newer keys to push it out ran its handler a second time.
    let store = MemoryStore::with_capacity(100);
    store.mark_done("handled", TTL).await.unwrap();
    acquire(&store, "running", TTL).await;
    let mut refused = 0;
    for i in 0..1_000 {
        if store.mark_done(&format!("k{i}"), TTL).await.is_err() {
            refused += 1;
        }
    }
    assert_eq!(refused, 1_000 - 98, "only room for 98 more keys");
    assert!(store.is_done("handled").await.unwrap());
    assert!(in_flight(&store, "running").await);
    assert_eq!(store.claim("handled", TTL).await.unwrap(), Claim::Done);
}

#[tokio::test]
async fn the_bound_counts_bytes_and_long_keys_cost_no_more() {
    let bound = 10 * MemoryStore::BYTES_PER_KEY;
    let store = unprotected(1_000_000).max_bytes(bound);
    let long = "x".repeat(4096);
    for i in 0..100 {
        store.mark_done(&format!("{long}{i}"), TTL).await.unwrap();
    }
    assert!(store.bytes() <= bound, "{} bytes", store.bytes());
    assert!(store.len() <= 10, "{} keys", store.len());
    assert!(store.is_done(&format!("{long}99")).await.unwrap());
    assert!(!store.is_done(&format!("{long}0")).await.unwrap());
}

#[tokio::test]
async fn a_stale_token_neither_completes_nor_releases() {
    let store = MemoryStore::new();
    let first = acquire(&store, "k", Duration::ZERO).await;
    // Free again: the first lease has expired.
    let second = acquire(&store, "k", TTL).await;
    store.complete("k", &first, TTL).await.unwrap();
    store.release("k", &first).await.unwrap();
    assert!(in_flight(&store, "k").await);
    store.complete("k", &second, TTL).await.unwrap();
    assert!(store.is_done("k").await.unwrap());
}

#[tokio::test]
async fn a_full_store_refuses_without_sweeping_again_at_once() {
    let store = MemoryStore::with_capacity(100);
    fill(&store, "k", 0..100).await;
    assert!(store.mark_done("one-more", TTL).await.is_err());
    assert!(lock(&store.shards[0]).no_sweep_before > 0);
    assert!(store.mark_done("and-another", TTL).await.is_err());
    assert_eq!(store.len(), 100);
}

#[tokio::test]
async fn markers_are_evicted_before_protected_keys() {
    let store = MemoryStore::with_capacity(10);
    store.mark_done("handled", TTL).await.unwrap();
    for i in 0..100 {
        store.swap_marker(&format!("m{i}"), 1, TTL).await.unwrap();
    }
    assert!(store.is_done("handled").await.unwrap());
    assert!(store.len() <= 10);
}

#[tokio::test]
async fn never_expiring_durations_do_not_overflow() {
    let store = MemoryStore::new();
    let token = acquire(&store, "k", Duration::MAX).await;
    store.complete("k", &token, Duration::MAX).await.unwrap();
    assert!(store.is_done("k").await.unwrap());
}

#[test]
fn large_stores_are_sharded_small_ones_are_not() {
    for (capacity, shards) in [
        (100, 1),
        (MIN_KEYS_PER_SHARD * 2 - 1, 1),
        (MIN_KEYS_PER_SHARD * 2, 2),
        (MIN_KEYS_PER_SHARD * 5, 4),
        (MemoryStore::DEFAULT_CAPACITY, MAX_SHARDS),
        (usize::MAX, MAX_SHARDS),
    ] {
        assert_eq!(
            MemoryStore::with_capacity(capacity).shards.len(),
            shards,
            "{capacity}"
        );
    }
    // The byte bound counts too: 256 KiB is 2,730 keys, one shard.
    assert_eq!(MemoryStore::new().max_bytes(256 * 1024).shards.len(), 1);
}

#[tokio::test]
async fn a_sharded_store_stays_within_its_bound_and_keeps_recent_keys() {
    let store = unprotected(MIN_KEYS_PER_SHARD * 4);
    assert_eq!(store.shards.len(), 4);
    let total = MIN_KEYS_PER_SHARD * 10;
    fill(&store, "k", 0..total).await;
    assert!(store.len() <= MIN_KEYS_PER_SHARD * 4, "{}", store.len());
    // Every shard sweeps its oldest eighth: the newest keys survive in each of them.
    for i in total - 100..total {
        assert!(store.is_done(&format!("k{i}")).await.unwrap(), "k{i}");
    }
    assert!(!store.is_done("k0").await.unwrap());
}

/// The keys the shards hold, counted one by one: `held` must always be their sum.
fn counted(store: &MemoryStore) -> usize {
    store.shards.iter().map(|s| lock(s).entries.len()).sum()
}

#[tokio::test]
async fn a_sharded_store_never_evicts_claims_and_counts_every_key_once() {
    let bound = MIN_KEYS_PER_SHARD * 2;
    let store = MemoryStore::with_capacity(bound);
    assert_eq!(store.shards.len(), 2);
    let mut tokens = Vec::new();
    for i in 0..bound {
        tokens.push(acquire(&store, &format!("c{i}"), TTL).await);
    }
    assert_eq!((store.len(), counted(&store)), (bound, bound));
    // Full of in-flight claims: every further key is refused, none of the claims goes.
    for i in 0..100 {
        assert!(
            store.mark_done(&format!("d{i}"), TTL).await.is_err(),
            "d{i}"
        );
        assert!(
            store.swap_marker(&format!("m{i}"), 1, TTL).await.is_err(),
            "m{i}"
        );
    }
    for i in (0..bound).step_by(97) {
        assert!(in_flight(&store, &format!("c{i}")).await);
    }
    assert_eq!((store.len(), counted(&store)), (bound, bound));
    // Releasing and completing keep the count exact.
    for (i, token) in tokens.iter().enumerate().take(1000) {
        store.release(&format!("c{i}"), token).await.unwrap();
    }
    for (i, token) in tokens.iter().enumerate().skip(1000).take(1000) {
        store.complete(&format!("c{i}"), token, TTL).await.unwrap();
    }
    assert_eq!((store.len(), counted(&store)), (bound - 1000, bound - 1000));
    fill(&store, "d", 0..1000).await;
    assert_eq!((store.len(), counted(&store)), (bound, bound));
    assert!(store.mark_done("one more", TTL).await.is_err());
    for i in 1000..2000 {
        assert!(store.is_done(&format!("c{i}")).await.unwrap(), "c{i}");
    }
}

#[tokio::test]
async fn a_store_below_the_shard_minimum_evicts_as_one_map() {
    // One map: the oldest eighth of the whole store goes at once, whichever keys they are.
    let bound = MIN_KEYS_PER_SHARD * 2 - 1;
    let store = unprotected(bound);
    assert_eq!(store.shards.len(), 1);
    fill(&store, "k", 0..bound).await;
    store.mark_done("next", TTL).await.unwrap();
    let swept = bound / 8;
    assert_eq!(store.len(), bound - swept + 1);
    assert_eq!(counted(&store), store.len());
    for i in 0..swept {
        assert!(!store.is_done(&format!("k{i}")).await.unwrap(), "k{i}");
    }
    for i in swept..bound {
        assert!(store.is_done(&format!("k{i}")).await.unwrap(), "k{i}");
    }
}

/// `n` keys (from `prefix`) that land in shard `shard` of `store`.
fn keys_in_shard(store: &MemoryStore, shard: usize, prefix: &str, n: usize) -> Vec<String> {
    (0..)
        .map(|i| format!("{prefix}{i}"))
        .filter(|k| {
            usize::try_from(store.fingerprint(k).1).unwrap() & (store.shards.len() - 1) == shard
        })
        .take(n)
        .collect()
}

#[tokio::test]
async fn a_full_sharded_store_with_evictable_keys_in_another_shard_makes_room() {
    // As one map, a store at its bound evicts a progress marker wherever it is rather than
    // refuse: a shard full of protected keys must not refuse while another holds markers.
    let bound = MIN_KEYS_PER_SHARD * 2;
    let store = MemoryStore::with_capacity(bound);
    assert_eq!(store.shards.len(), 2);
    for key in keys_in_shard(&store, 0, "done", bound / 2) {
        store.mark_done(&key, TTL).await.unwrap();
    }
    for key in keys_in_shard(&store, 1, "marker", bound / 2) {
        store.swap_marker(&key, 1, TTL).await.unwrap();
    }
    assert_eq!(store.len(), bound);
    let next = keys_in_shard(&store, 0, "next", 1).remove(0);
    store.mark_done(&next, TTL).await.unwrap();
    assert!(store.is_done(&next).await.unwrap());
    assert!(store.len() <= bound);
    assert_eq!(counted(&store), store.len());
    for key in keys_in_shard(&store, 0, "done", bound / 2) {
        assert!(store.is_done(&key).await.unwrap(), "{key}");
    }
}

#[test]
fn an_entry_is_three_words() {
    // The slot's size is what the default bound and `BYTES_PER_KEY` are computed from.
    assert_eq!(std::mem::size_of::<Entry>(), 24);
    assert_eq!(std::mem::size_of::<(Fingerprint, Entry)>(), 40);
    let slot = std::mem::size_of::<(Fingerprint, Entry)>() + 1;
    // At the lowest load factor a map keeps (7/16 after a doubling).
    assert!(MemoryStore::BYTES_PER_KEY * 7 >= slot * 16);
}

#[test]
fn an_entry_keeps_its_kind_value_and_place() {
    let seq = Entry::SEQ_MASK - 1;
    for state in [
        State::InFlight(u64::MAX),
        State::Done { since: 7 },
        State::Marker(0),
    ] {
        let mut entry = Entry::new(state, 9, seq);
        assert_eq!(format!("{:?}", entry.state()), format!("{state:?}"));
        assert_eq!((entry.expires, entry.seq()), (9, seq));
        entry.set(State::Done { since: 1 }, 10);
        assert!(matches!(entry.state(), State::Done { since: 1 }));
        assert_eq!((entry.expires, entry.seq()), (10, seq));
    }
}
