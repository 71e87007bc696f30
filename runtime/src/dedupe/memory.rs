//! The default store: in process, bounded, with expiry.

use std::collections::{BTreeSet, HashMap};
use std::hash::{BuildHasher, Hash, Hasher, RandomState};
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
///
/// Keys are held as 128-bit fingerprints (two `SipHash` values under keys drawn per store), not as
/// text: every key costs the same [`Self::BYTES_PER_KEY`] however long it is, and a lookup
/// hashes the key once. Two keys share a fingerprint with a probability of about 2⁻¹²⁸ per
/// pair, and nobody outside the process can aim for it since the hash keys are secret.
#[derive(Debug)]
pub struct MemoryStore {
    inner: Mutex<Inner>,
    tracked: Mutex<Tracked>,
    max_keys: usize,
    max_bytes: usize,
    protect: Duration,
    hash: [RandomState; 2],
    epoch: Instant,
}

#[derive(Debug, Default)]
struct Inner {
    entries: HashMap<Fingerprint, Entry, PassThrough>,
    /// Insertion counter: the sweep evicts the lowest first, so the oldest keys go first.
    next_seq: u64,
    /// After a sweep that could not make room, when the next may: until then a full store
    /// refuses at once instead of walking the whole map again for every insert.
    no_sweep_before: u64,
}

/// A key's fingerprint; its first half is already a keyed hash, so the map uses it as is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Fingerprint(u64, u64);

impl Hash for Fingerprint {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.0);
    }
}

/// The map's hasher: the fingerprint was hashed already (the "second hash of the key" a
/// lookup would otherwise pay).
#[derive(Debug, Default, Clone, Copy)]
struct PassThrough;

impl BuildHasher for PassThrough {
    type Hasher = PassThroughHasher;
    fn build_hasher(&self) -> Self::Hasher {
        PassThroughHasher(0)
    }
}

#[derive(Debug)]
struct PassThroughHasher(u64);

impl Hasher for PassThroughHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        // Only `write_u64` is reached from `Fingerprint::hash`; fold anything else all the same.
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
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
    /// Nanoseconds since the store's epoch, as are `since`: half the size of an `Instant`.
    expires: u64,
    /// When the entry got its current state: a done marker is protected for a while after it.
    since: u64,
    seq: u64,
}

#[derive(Debug, Clone, Copy)]
enum State {
    /// The claim's token, as a fingerprint: the token itself is never needed again.
    InFlight(u64),
    Done,
    Marker(u64),
}

impl MemoryStore {
    /// The default bound on keys: one million (about 120 MB with any ids).
    pub const DEFAULT_CAPACITY: usize = 1_000_000;
    /// The default bound on bytes held: 256 MiB.
    pub const DEFAULT_MAX_BYTES: usize = 256 * 1024 * 1024;
    /// How long a done marker is never evicted: the default signature tolerance.
    pub const DEFAULT_PROTECT: Duration = Duration::from_secs(300);
    /// What one key costs against [`Self::max_bytes`], whatever its length: its slot in the map
    /// (56 bytes) at the map's lowest load factor, rounded up.
    pub const BYTES_PER_KEY: usize = 128;

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
            hash: [RandomState::new(), RandomState::new()],
            epoch: Instant::now(),
        }
    }

    /// At most `bytes` of bookkeeping, at [`Self::BYTES_PER_KEY`] per key.
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
        self.len() * Self::BYTES_PER_KEY
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

    /// The most keys both bounds allow.
    fn bound(&self) -> usize {
        self.max_keys
            .min(self.max_bytes / Self::BYTES_PER_KEY)
            .max(1)
    }

    fn fingerprint(&self, key: &str) -> Fingerprint {
        Fingerprint(self.hash[0].hash_one(key), self.hash[1].hash_one(key))
    }

    fn token_print(&self, token: &ClaimToken) -> u64 {
        self.hash[0].hash_one(token)
    }

    /// Nanoseconds since the store's epoch.
    fn now(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    /// Inserts or replaces `key`, making room first when needed.
    fn put(
        &self,
        inner: &mut Inner,
        key: Fingerprint,
        state: State,
        expires: u64,
        now: u64,
    ) -> Result<(), StoreError> {
        // Only a new key needs room; below the bound, the insert is the one probe of the map.
        if inner.entries.len() >= self.bound() && !inner.entries.contains_key(&key) {
            inner.make_room(self, now)?;
        }
        let seq = inner.next_seq;
        inner.next_seq += 1;
        inner.entries.insert(
            key,
            Entry {
                state,
                expires,
                since: now,
                seq,
            },
        );
        Ok(())
    }
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new()
    }
}

impl Inner {
    fn make_room(&mut self, store: &MemoryStore, now: u64) -> Result<(), StoreError> {
        let bound = store.bound();
        if self.entries.len() < bound {
            return Ok(());
        }
        if now < self.no_sweep_before {
            return Err(full());
        }
        self.entries.retain(|_, e| e.expires > now);
        let target = bound - (bound / 8).max(1);
        if self.entries.len() > target {
            let protect = u64::try_from(store.protect.as_nanos()).unwrap_or(u64::MAX);
            // Built only when a sweep evicts (once per eighth of the bound), then freed.
            let mut evictable: Vec<(u64, Fingerprint)> = self
                .entries
                .iter()
                .filter(|(_, e)| match e.state {
                    State::InFlight(_) => false,
                    State::Done => now.saturating_sub(e.since) >= protect,
                    State::Marker(_) => true,
                })
                .map(|(k, e)| (e.seq, *k))
                .collect();
            let excess = (self.entries.len() - target).min(evictable.len());
            if excess < evictable.len() {
                evictable.select_nth_unstable_by_key(excess, |(seq, _)| *seq);
            }
            for (_, key) in &evictable[..excess] {
                self.entries.remove(key);
            }
        }
        if self.entries.len() >= bound {
            // Keys become evictable as they age: look again after a fraction of the window.
            self.no_sweep_before = after(now, (store.protect / 64).min(Duration::from_secs(1)));
            return Err(full());
        }
        Ok(())
    }
}

fn full() -> StoreError {
    StoreError::new("memory store full of in-flight claims and recent done markers; retry later")
}

/// `at + duration` in nanoseconds, saturating: `Duration::MAX` ("never expire") must not panic
/// a worker; `u64::MAX` nanoseconds is over five centuries.
fn after(at: u64, duration: Duration) -> u64 {
    at.saturating_add(u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX))
}

#[async_trait::async_trait]
impl DedupeStore for MemoryStore {
    fn answers_at_once(&self) -> bool {
        // Every call takes a `std` mutex for a few map operations and never awaits.
        true
    }

    async fn claim(&self, key: &str, lease: Duration) -> Result<Claim, StoreError> {
        let key = self.fingerprint(key);
        let token = ClaimToken::new();
        let print = self.token_print(&token);
        let now = self.now();
        let mut inner = self.lock();
        if let Some(entry) = inner.entries.get(&key).filter(|e| e.expires > now) {
            match entry.state {
                State::Done => return Ok(Claim::Done),
                State::InFlight(_) => {
                    return Ok(Claim::InFlight {
                        retry_after: Duration::from_nanos(entry.expires - now),
                    });
                }
                State::Marker(_) => {}
            }
        }
        self.put(
            &mut inner,
            key,
            State::InFlight(print),
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
        let key = self.fingerprint(key);
        let print = self.token_print(token);
        let now = self.now();
        let mut inner = self.lock();
        if let Some(entry) = inner.entries.get_mut(&key)
            && matches!(entry.state, State::InFlight(t) if t == print)
        {
            entry.state = State::Done;
            entry.expires = after(now, ttl);
            entry.since = now;
        }
        Ok(())
    }

    async fn release(&self, key: &str, token: &ClaimToken) -> Result<(), StoreError> {
        let key = self.fingerprint(key);
        let print = self.token_print(token);
        let mut inner = self.lock();
        if inner
            .entries
            .get(&key)
            .is_some_and(|e| matches!(e.state, State::InFlight(t) if t == print))
        {
            inner.entries.remove(&key);
        }
        Ok(())
    }

    async fn is_done(&self, key: &str) -> Result<bool, StoreError> {
        let key = self.fingerprint(key);
        let now = self.now();
        Ok(self
            .lock()
            .entries
            .get(&key)
            .is_some_and(|e| e.expires > now && matches!(e.state, State::Done)))
    }

    async fn mark_done(&self, key: &str, ttl: Duration) -> Result<(), StoreError> {
        let key = self.fingerprint(key);
        let now = self.now();
        let mut inner = self.lock();
        self.put(&mut inner, key, State::Done, after(now, ttl), now)
    }

    async fn swap_marker(
        &self,
        key: &str,
        marker: u64,
        ttl: Duration,
    ) -> Result<Option<u64>, StoreError> {
        let key = self.fingerprint(key);
        let now = self.now();
        let mut inner = self.lock();
        let previous = match inner.entries.get(&key) {
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
        let key = self.fingerprint(key);
        let now = self.now();
        let mut inner = self.lock();
        let Some(entry) = inner.entries.get_mut(&key) else {
            return Ok(());
        };
        if !matches!(entry.state, State::Marker(m) if m == current) {
            return Ok(());
        }
        if let Some(previous) = previous {
            entry.state = State::Marker(previous);
            entry.expires = after(now, ttl);
        } else {
            inner.entries.remove(&key);
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
            forget_after: Instant::now()
                .checked_add(ttl)
                .unwrap_or_else(|| Instant::now() + Duration::from_secs(100 * 365 * 24 * 3600)),
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
        assert!(store.is_empty());
        let slots = store.lock().entries.capacity();
        assert!(slots <= 200, "{slots} slots kept for an empty store");
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
        let Claim::Acquired(first) = store.claim("k", Duration::ZERO).await.unwrap() else {
            panic!("fresh key")
        };
        let Claim::Acquired(second) = store.claim("k", TTL).await.unwrap() else {
            panic!("the first lease expired")
        };
        store.complete("k", &first, TTL).await.unwrap();
        store.release("k", &first).await.unwrap();
        assert!(matches!(
            store.claim("k", TTL).await.unwrap(),
            Claim::InFlight { .. }
        ));
        store.complete("k", &second, TTL).await.unwrap();
        assert!(store.is_done("k").await.unwrap());
    }

    #[tokio::test]
    async fn a_full_store_refuses_without_sweeping_again_at_once() {
        let store = MemoryStore::with_capacity(100);
        for i in 0..100 {
            store.mark_done(&format!("k{i}"), TTL).await.unwrap();
        }
        assert!(store.mark_done("one-more", TTL).await.is_err());
        assert!(store.lock().no_sweep_before > 0);
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
        let Claim::Acquired(token) = store.claim("k", Duration::MAX).await.unwrap() else {
            panic!("fresh key")
        };
        store.complete("k", &token, Duration::MAX).await.unwrap();
        assert!(store.is_done("k").await.unwrap());
    }
}
