//! The default store: in process, bounded, with expiry.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::{Backoff, Claim, ClaimToken, DedupeStore, StoreError};

/// An in-memory store for one process: fast, lost on restart, not shared between instances.
///
/// Bounded by keys and by bytes. When full it drops expired keys first, then the oldest keys
/// whose loss breaks no promise, down to seven eighths of the bound so the sweep's cost is
/// shared by the inserts that follow. It never drops an in-flight claim, nor a done marker
/// younger than the replay window (a signed delivery can be replayed for as long as its
/// timestamp is accepted, 300 s by default): a store full of those answers with a
/// [`StoreError`] (503, Replicate retries) rather than run a handler twice.
#[derive(Debug)]
pub struct MemoryStore {
    inner: Mutex<Inner>,
    tracked: Mutex<Tracked>,
    max_keys: usize,
    max_bytes: usize,
    protect: Duration,
}

#[derive(Debug, Default)]
struct Inner {
    entries: HashMap<Box<str>, Entry>,
    /// Keys in insertion order, with the sequence number of the insertion they record.
    order: VecDeque<(Box<str>, u64)>,
    next_seq: u64,
    /// What `entries` and `order` hold, as counted by [`cost`].
    bytes: usize,
}

/// Predictions the reconciler watches: by id, and ordered by when they are due.
#[derive(Debug, Default)]
struct Tracked {
    by_id: HashMap<String, Watch>,
    by_due: BTreeSet<(i64, String)>,
}

#[derive(Debug, Clone, Copy)]
struct Watch {
    due_ms: i64,
    attempts: u32,
    forget_after: Instant,
}

impl Tracked {
    fn remove(&mut self, id: &str) -> Option<Watch> {
        let watch = self.by_id.remove(id)?;
        self.by_due.remove(&(watch.due_ms, id.to_owned()));
        Some(watch)
    }

    fn insert(&mut self, id: &str, watch: Watch) {
        self.remove(id);
        self.by_due.insert((watch.due_ms, id.to_owned()));
        self.by_id.insert(id.to_owned(), watch);
    }
}

#[derive(Debug)]
struct Entry {
    state: State,
    expires: Instant,
    /// When the entry got its current state: a done marker is protected for a while after it.
    since: Instant,
    seq: u64,
}

#[derive(Debug)]
enum State {
    InFlight(ClaimToken),
    Done,
    Marker(u64),
}

/// The bytes an entry costs: its key twice (map and order) and the fixed parts, roughly.
fn cost(key: &str) -> usize {
    2 * key.len() + 128
}

impl MemoryStore {
    /// The default bound on keys: one million (about 150 MB at most with typical ids).
    pub const DEFAULT_CAPACITY: usize = 1_000_000;
    /// The default bound on bytes held: 256 MiB.
    pub const DEFAULT_MAX_BYTES: usize = 256 * 1024 * 1024;
    /// How long a done marker is never evicted: the default signature tolerance.
    pub const DEFAULT_PROTECT: Duration = Duration::from_secs(300);

    /// A store with the default bounds.
    pub fn new() -> Self {
        Self::with_capacity(Self::DEFAULT_CAPACITY)
    }

    /// A store holding at most `capacity` keys (and [`Self::DEFAULT_MAX_BYTES`]).
    pub fn with_capacity(capacity: usize) -> Self {
        Self {
            inner: Mutex::new(Inner::default()),
            tracked: Mutex::default(),
            max_keys: capacity.max(1),
            max_bytes: Self::DEFAULT_MAX_BYTES,
            protect: Self::DEFAULT_PROTECT,
        }
    }

    /// At most `bytes` of keys and bookkeeping (ids can be long: a bound on keys alone is not
    /// a bound on memory).
    #[must_use]
    pub fn max_bytes(mut self, bytes: usize) -> Self {
        self.max_bytes = bytes.max(1);
        self
    }

    /// How long a done marker is kept even when the store is full (default 300 s). Set it to at
    /// least the receiver's timestamp tolerance.
    #[must_use]
    pub fn protect_for(mut self, window: Duration) -> Self {
        self.protect = window;
        self
    }

    /// The number of keys held, expired ones included until they are swept.
    pub fn len(&self) -> usize {
        self.lock().entries.len()
    }

    /// Whether the store holds no key.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The bytes held, as the bound counts them.
    pub fn bytes(&self) -> usize {
        self.lock().bytes
    }

    fn lock_tracked(&self) -> std::sync::MutexGuard<'_, Tracked> {
        self.tracked
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding this lock cannot leave the map half-updated, so poisoning is moot.
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Inserts or replaces `key`, making room first when needed.
    fn put(
        &self,
        inner: &mut Inner,
        key: &str,
        state: State,
        expires: Instant,
        now: Instant,
    ) -> Result<(), StoreError> {
        let seq = inner.next_seq;
        inner.next_seq += 1;
        let entry = Entry {
            state,
            expires,
            since: now,
            seq,
        };
        if let Some(existing) = inner.entries.get_mut(key) {
            // Replaced in place: the old order record goes stale and is pruned by a sweep.
            *existing = entry;
            inner.order.push_back((key.into(), seq));
            inner.bytes += key.len() + 16;
            return Ok(());
        }
        inner.make_room(self, key, now)?;
        inner.bytes += cost(key);
        inner.entries.insert(key.into(), entry);
        inner.order.push_back((key.into(), seq));
        Ok(())
    }
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new()
    }
}

impl Inner {
    fn full(&self, store: &MemoryStore, extra: usize) -> bool {
        self.entries.len() >= store.max_keys
            || self.bytes + extra > store.max_bytes
            || self.order.len() >= store.max_keys.saturating_mul(2)
    }

    fn make_room(
        &mut self,
        store: &MemoryStore,
        key: &str,
        now: Instant,
    ) -> Result<(), StoreError> {
        if !self.full(store, cost(key)) {
            return Ok(());
        }
        // Released and re-claimed keys leave stale records in `order`: prune them too, or a
        // handler that keeps failing grows it without bound.
        self.entries.retain(|_, e| e.expires > now);
        let target_keys = store.max_keys - (store.max_keys / 8).max(1);
        let target_bytes = store.max_bytes - store.max_bytes / 8;
        let mut keys = self.entries.len();
        let entries = &mut self.entries;
        let mut freed = 0;
        self.order.retain(|(k, seq)| {
            let Some(entry) = entries.get(k).filter(|e| e.seq == *seq) else {
                return false;
            };
            let over = keys > target_keys || self.bytes - freed > target_bytes;
            let evictable = match entry.state {
                State::InFlight(_) => false,
                State::Done => now.saturating_duration_since(entry.since) >= store.protect,
                State::Marker(_) => true,
            };
            if over && evictable {
                entries.remove(k);
                keys -= 1;
                freed += cost(k);
                false
            } else {
                true
            }
        });
        self.bytes = self.entries.keys().map(|k| cost(k)).sum::<usize>()
            + self.order.len().saturating_sub(self.entries.len()) * 16;
        if self.full(store, cost(key)) {
            return Err(StoreError::new(
                "memory store full of in-flight claims and recent done markers; retry later",
            ));
        }
        Ok(())
    }
}

/// `at + duration`, saturating: `Duration::MAX` ("never expire") must not panic a worker.
fn after(at: Instant, duration: Duration) -> Instant {
    const CENTURY: Duration = Duration::from_secs(100 * 365 * 24 * 60 * 60);
    at.checked_add(duration)
        .unwrap_or_else(|| at + duration.min(CENTURY))
}

#[async_trait::async_trait]
impl DedupeStore for MemoryStore {
    async fn claim(&self, key: &str, lease: Duration) -> Result<Claim, StoreError> {
        let now = Instant::now();
        let mut inner = self.lock();
        if let Some(entry) = inner.entries.get(key).filter(|e| e.expires > now) {
            match entry.state {
                State::Done => return Ok(Claim::Done),
                State::InFlight(_) => {
                    return Ok(Claim::InFlight {
                        retry_after: entry.expires - now,
                    });
                }
                State::Marker(_) => {}
            }
        }
        let token = ClaimToken::new();
        self.put(
            &mut inner,
            key,
            State::InFlight(token.clone()),
            after(now, lease),
            now,
        )?;
        Ok(Claim::Acquired(token))
    }

    async fn complete(
        &self,
        key: &str,
        token: &ClaimToken,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        let now = Instant::now();
        let mut inner = self.lock();
        if let Some(entry) = inner.entries.get_mut(key)
            && matches!(&entry.state, State::InFlight(t) if t == token)
        {
            entry.state = State::Done;
            entry.expires = after(now, ttl);
            entry.since = now;
        }
        Ok(())
    }

    async fn release(&self, key: &str, token: &ClaimToken) -> Result<(), StoreError> {
        let mut inner = self.lock();
        if inner
            .entries
            .get(key)
            .is_some_and(|e| matches!(&e.state, State::InFlight(t) if t == token))
        {
            inner.entries.remove(key);
            inner.bytes = inner.bytes.saturating_sub(cost(key));
        }
        Ok(())
    }

    async fn is_done(&self, key: &str) -> Result<bool, StoreError> {
        let now = Instant::now();
        Ok(self
            .lock()
            .entries
            .get(key)
            .is_some_and(|e| e.expires > now && matches!(e.state, State::Done)))
    }

    async fn mark_done(&self, key: &str, ttl: Duration) -> Result<(), StoreError> {
        let now = Instant::now();
        let mut inner = self.lock();
        self.put(&mut inner, key, State::Done, after(now, ttl), now)
    }

    async fn swap_marker(
        &self,
        key: &str,
        marker: u64,
        ttl: Duration,
    ) -> Result<Option<u64>, StoreError> {
        let now = Instant::now();
        let mut inner = self.lock();
        let previous = match inner.entries.get(key) {
            Some(Entry {
                state: State::Marker(m),
                expires,
                ..
            }) if *expires > now => Some(*m),
            _ => None,
        };
        self.put(&mut inner, key, State::Marker(marker), after(now, ttl), now)?;
        Ok(previous)
    }

    async fn restore_marker(
        &self,
        key: &str,
        current: u64,
        previous: Option<u64>,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        let now = Instant::now();
        let mut inner = self.lock();
        let Some(entry) = inner.entries.get_mut(key) else {
            return Ok(());
        };
        if !matches!(entry.state, State::Marker(m) if m == current) {
            return Ok(());
        }
        if let Some(previous) = previous {
            entry.state = State::Marker(previous);
            entry.expires = after(now, ttl);
        } else {
            inner.entries.remove(key);
            inner.bytes = inner.bytes.saturating_sub(cost(key));
        }
        Ok(())
    }

    async fn track(
        &self,
        prediction_id: &str,
        due_ms: i64,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        let mut tracked = self.lock_tracked();
        if tracked.by_id.len() >= self.max_keys && !tracked.by_id.contains_key(prediction_id) {
            let now = Instant::now();
            let stale: Vec<String> = tracked
                .by_id
                .iter()
                .filter(|(_, w)| w.forget_after <= now)
                .map(|(id, _)| id.clone())
                .collect();
            for id in stale {
                tracked.remove(&id);
            }
            if tracked.by_id.len() >= self.max_keys {
                return Err(StoreError::new("memory store full of watched predictions"));
            }
        }
        let watch = Watch {
            due_ms,
            attempts: 0,
            forget_after: after(Instant::now(), ttl),
        };
        tracked.insert(prediction_id, watch);
        Ok(())
    }

    async fn untrack(&self, prediction_id: &str) -> Result<(), StoreError> {
        self.lock_tracked().remove(prediction_id);
        Ok(())
    }

    async fn take_due(
        &self,
        now_ms: i64,
        limit: usize,
        retry: Backoff,
    ) -> Result<Vec<(String, u32)>, StoreError> {
        let now = Instant::now();
        let mut tracked = self.lock_tracked();
        let due: Vec<String> = tracked
            .by_due
            .iter()
            .take_while(|(due, _)| *due <= now_ms)
            .map(|(_, id)| id.clone())
            .collect();
        let mut taken = Vec::new();
        for id in due {
            let Some(watch) = tracked.remove(&id) else {
                continue;
            };
            if watch.forget_after <= now {
                continue;
            }
            if taken.len() < limit {
                taken.push((id.clone(), watch.attempts));
                let next = Watch {
                    due_ms: now_ms.saturating_add(retry.after(watch.attempts)),
                    attempts: watch.attempts + 1,
                    ..watch
                };
                tracked.insert(&id, next);
            } else {
                tracked.insert(&id, watch);
                break;
            }
        }
        Ok(taken)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TTL: Duration = Duration::from_secs(60);

    /// A store that may evict any done marker, to test the bound itself.
    fn unprotected(capacity: usize) -> MemoryStore {
        MemoryStore::with_capacity(capacity).protect_for(Duration::ZERO)
    }

    #[tokio::test]
    async fn stays_within_capacity() {
        let store = unprotected(100);
        for i in 0..1_000 {
            store.mark_done(&format!("k{i}"), TTL).await.unwrap();
        }
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
        for i in 0..800 {
            store.mark_done(&format!("k{i}"), TTL).await.unwrap();
        }
        assert_eq!(store.len(), 800);
        store.mark_done("one-more", TTL).await.unwrap();
        assert_eq!(store.len(), 700 + 1);
        assert!(!store.is_done("k99").await.unwrap());
        assert!(store.is_done("k100").await.unwrap());
        for i in 0..99 {
            store.mark_done(&format!("again{i}"), TTL).await.unwrap();
        }
        assert_eq!(store.len(), 800, "no sweep until full again");
    }

    #[tokio::test]
    async fn released_claims_do_not_grow_the_store() {
        let store = unprotected(100);
        for i in 0..10_000 {
            let Claim::Acquired(token) = store.claim(&format!("k{i}"), TTL).await.unwrap() else {
                panic!("fresh key")
            };
            store.release(&format!("k{i}"), &token).await.unwrap();
        }
        let order = store.lock().order.len();
        assert!(order <= 200, "{order} records kept for an empty store");
    }

    #[tokio::test]
    async fn recent_done_markers_and_claims_are_never_evicted_a_full_store_refuses() {
        // The replay this protects against: a handled delivery re-sent inside the signature
        // tolerance after enough newer keys to push it out ran its handler a second time.
        let store = MemoryStore::with_capacity(100);
        store.mark_done("handled", TTL).await.unwrap();
        let Claim::Acquired(_) = store.claim("running", TTL).await.unwrap() else {
            panic!("fresh key")
        };
        let mut refused = 0;
        for i in 0..1_000 {
            if store.mark_done(&format!("k{i}"), TTL).await.is_err() {
                refused += 1;
            }
        }
        assert_eq!(refused, 1_000 - 98, "only room for 98 more keys");
        assert!(store.is_done("handled").await.unwrap());
        assert!(matches!(
            store.claim("running", TTL).await.unwrap(),
            Claim::InFlight { .. }
        ));
        assert_eq!(store.claim("handled", TTL).await.unwrap(), Claim::Done);
    }

    #[tokio::test]
    async fn the_bound_counts_bytes_not_only_keys() {
        let store = unprotected(1_000_000).max_bytes(64 * 1024);
        let long = "x".repeat(4096);
        for i in 0..100 {
            store.mark_done(&format!("{long}{i}"), TTL).await.unwrap();
        }
        assert!(store.bytes() <= 64 * 1024, "{} bytes", store.bytes());
        assert!(store.len() < 10, "{} keys of 4 KiB in 64 KiB", store.len());
        assert!(store.is_done(&format!("{long}99")).await.unwrap());
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
        let Claim::Acquired(token) = store.claim("k", Duration::MAX).await.unwrap() else {
            panic!("fresh key")
        };
        store.complete("k", &token, Duration::MAX).await.unwrap();
        assert!(store.is_done("k").await.unwrap());
    }
}
