//! The default store: in process, bounded, with expiry.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hash, Hasher, RandomState};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::{Backoff, Claim, ClaimToken, DedupeStore, ProgressMarkers, StoreError, WatchList};

/// An in-memory store for one process: fast, lost on restart, not shared between instances.
///
/// Bounded by keys and by bytes. When full it drops expired keys first, then the oldest keys
/// whose loss breaks no promise, down to seven eighths of the bound so the sweep's cost is
/// shared by the inserts that follow. It never drops an in-flight claim, nor a done marker
/// younger than the replay window (a signed delivery can be replayed for as long as its
/// timestamp is accepted, 300 s by default): a store full of those answers with a
/// [`StoreError`] (503, Replicate retries) rather than run a handler twice.
///
/// A large store is split into shards, each its own map behind its own lock, so a map that
/// grows doubles one shard at a time: the rehash that stalls a receiver's thread moves a
/// sixty-fourth of the keys, not all of them (at a million keys, a few milliseconds every
/// doubling otherwise). The bound is counted across shards; a store at it sweeps the shard of
/// the key being inserted.
///
/// Keys are held as 128-bit fingerprints (two `SipHash` values under keys drawn per store), not as
/// text: every key costs the same [`Self::BYTES_PER_KEY`] however long it is, and a lookup
/// hashes the key once. Two keys share a fingerprint with a probability of about 2⁻¹²⁸ per
/// pair, and nobody outside the process can aim for it since the hash keys are secret.
#[derive(Debug)]
pub struct MemoryStore {
    /// A power of two long; a key's shard is chosen by bits of its fingerprint that the
    /// shard's map does not hash on.
    shards: Box<[Mutex<Inner>]>,
    /// Keys held across all shards: the bound is the store's, not a share per shard.
    held: AtomicUsize,
    tracked: Mutex<watch::Tracked>,
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

/// What a key holds, in three words (24 bytes; a slot with its fingerprint is 40): the slot's
/// size is what bounds how many deliveries the store remembers in a given memory.
#[derive(Debug)]
struct Entry {
    /// The claim token's fingerprint (in flight), the marker (marker), or when the key was
    /// done (done, nanoseconds since the store's epoch: a done marker is protected for a while
    /// after it). Each kind needs exactly one of them.
    value: u64,
    /// Nanoseconds since the store's epoch: half the size of an `Instant`.
    expires: u64,
    /// The kind in the top two bits; the insertion counter below (the sweep evicts the lowest
    /// first, so the oldest keys go first).
    seq_kind: u64,
}

#[derive(Debug, Clone, Copy)]
enum State {
    /// The claim's token, as a fingerprint: the token itself is never needed again.
    InFlight(u64),
    /// Done since this time.
    Done {
        since: u64,
    },
    Marker(u64),
}

impl Entry {
    const KIND_SHIFT: u32 = 62;
    const SEQ_MASK: u64 = (1 << Self::KIND_SHIFT) - 1;

    fn new(state: State, expires: u64, seq: u64) -> Self {
        let (kind, value) = match state {
            State::InFlight(token) => (0, token),
            State::Done { since } => (1, since),
            State::Marker(marker) => (2, marker),
        };
        Self {
            value,
            expires,
            seq_kind: kind << Self::KIND_SHIFT | (seq & Self::SEQ_MASK),
        }
    }

    fn state(&self) -> State {
        match self.seq_kind >> Self::KIND_SHIFT {
            0 => State::InFlight(self.value),
            1 => State::Done { since: self.value },
            _ => State::Marker(self.value),
        }
    }

    fn seq(&self) -> u64 {
        self.seq_kind & Self::SEQ_MASK
    }

    /// This entry with `state` until `expires`, at its place in the eviction order.
    fn set(&mut self, state: State, expires: u64) {
        *self = Self::new(state, expires, self.seq());
    }
}

impl MemoryStore {
    /// The default bound on keys: 1.75 million, about 90 MB with any ids. Every key a receiver
    /// must remember for the replay window ([`Self::DEFAULT_PROTECT`]) counts against it, so it
    /// sets the most new deliveries a second the store accepts for good: one key per terminal
    /// delivery, 1.75 M / 300 s, about 5,800 a second. It is also the most keys 64 shards of
    /// 32,768 slots hold before any of them doubles, so it costs the memory that one million
    /// keys would.
    pub const DEFAULT_CAPACITY: usize = 1_750_000;
    /// The default bound on bytes held: 256 MiB.
    pub const DEFAULT_MAX_BYTES: usize = 256 * 1024 * 1024;
    /// How long a done marker is never evicted: the default signature tolerance.
    pub const DEFAULT_PROTECT: Duration = Duration::from_mins(5);
    /// What one key costs against [`Self::max_bytes`], whatever its length: its slot in the map
    /// (40 bytes, and a control byte) at the map's lowest load factor, rounded up.
    pub const BYTES_PER_KEY: usize = 96;

    /// A store with the default bounds.
    pub fn new() -> Self {
        Self::with_capacity(Self::DEFAULT_CAPACITY)
    }

    /// A store holding at most `capacity` keys (and [`Self::DEFAULT_MAX_BYTES`]).
    pub fn with_capacity(capacity: usize) -> Self {
        let mut store = Self {
            shards: Box::default(),
            held: AtomicUsize::new(0),
            tracked: Mutex::default(),
            max_keys: capacity.max(1),
            max_bytes: Self::DEFAULT_MAX_BYTES,
            protect: Self::DEFAULT_PROTECT,
            hash: [RandomState::new(), RandomState::new()],
            epoch: Instant::now(),
        };
        store.shards = Self::shards(store.bound());
        store
    }

    /// At most `bytes` of bookkeeping, at [`Self::BYTES_PER_KEY`] per key.
    #[must_use]
    pub fn max_bytes(mut self, bytes: usize) -> Self {
        self.max_bytes = bytes.max(1);
        // Called on a new store, before any key: the shards are sized again for the new bound.
        self.shards = Self::shards(self.bound());
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
        self.held.load(Ordering::Relaxed)
    }

    /// Whether the store holds no key.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The bytes held, as the bound counts them.
    pub fn bytes(&self) -> usize {
        self.len() * Self::BYTES_PER_KEY
    }

    /// The shard that holds `key`, locked.
    fn lock(&self, key: &Fingerprint) -> std::sync::MutexGuard<'_, Inner> {
        // The length is a power of two: the mask keeps the low bits of the second hash.
        let index = usize::try_from(key.1).unwrap_or(usize::MAX) & (self.shards.len() - 1);
        lock(&self.shards[index])
    }

    /// The most keys both bounds allow.
    fn bound(&self) -> usize {
        self.max_keys
            .min(self.max_bytes / Self::BYTES_PER_KEY)
            .max(1)
    }

    /// The shards for a bound: one below [`MIN_KEYS_PER_SHARD`] keys per shard (so a small
    /// store evicts exactly as one map does), at most [`MAX_SHARDS`].
    fn shards(bound: usize) -> Box<[Mutex<Inner>]> {
        let wanted = (bound / MIN_KEYS_PER_SHARD).clamp(1, MAX_SHARDS);
        // The largest power of two not above `wanted`, so every shard gets at least its minimum.
        let count = 1usize << wanted.ilog2();
        (0..count).map(|_| Mutex::new(Inner::default())).collect()
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
        let seq = inner.next_seq;
        inner.next_seq += 1;
        let entry = Entry::new(state, expires, seq);
        if let Some(existing) = inner.entries.get_mut(&key) {
            *existing = entry;
            return Ok(());
        }
        if !self.take_slot() {
            inner.make_room(self, now)?;
            if !self.take_slot() && !self.room_elsewhere(now) {
                inner.no_sweep_before = after(now, self.sweep_pause());
                return Err(full());
            }
        }
        inner.entries.insert(key, entry);
        Ok(())
    }

    /// Sweeps the other shards for a slot, as one map would have found an evictable key
    /// anywhere: a shard of protected keys must not refuse while another holds markers. Only
    /// shards free at once are swept (the caller's own is held, so it is skipped), which keeps
    /// two inserts from waiting on each other's shard.
    fn room_elsewhere(&self, now: u64) -> bool {
        for shard in &self.shards {
            let mut other = match shard.try_lock() {
                Ok(guard) => guard,
                Err(std::sync::TryLockError::Poisoned(p)) => p.into_inner(),
                Err(std::sync::TryLockError::WouldBlock) => continue,
            };
            let before = other.entries.len();
            if other.make_room(self, now).is_ok() && self.take_slot() {
                return true;
            }
            if other.entries.len() == before {
                // Nothing to evict there either: it is not walked again until keys have aged.
                other.no_sweep_before = after(now, self.sweep_pause());
            }
        }
        false
    }

    /// Counts one more key against the bound, unless the store is at it.
    fn take_slot(&self) -> bool {
        let bound = self.bound();
        self.held
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                (n < bound).then_some(n + 1)
            })
            .is_ok()
    }

    /// Gives back the slots of `n` keys removed.
    fn free_slots(&self, n: usize) {
        self.held.fetch_sub(n, Ordering::Relaxed);
    }

    /// How long a shard that could not make room refuses before it looks again: keys become
    /// evictable as they age.
    fn sweep_pause(&self) -> Duration {
        (self.protect / 64).min(Duration::from_secs(1))
    }
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new()
    }
}

impl Inner {
    /// Sweeps this shard for a store at its bound: expired keys, then the oldest eighth of the
    /// shard among keys whose loss breaks no promise, so the sweep's cost is shared by the
    /// inserts that follow. The caller counts the slot again.
    fn make_room(&mut self, store: &MemoryStore, now: u64) -> Result<(), StoreError> {
        if now < self.no_sweep_before {
            return Err(full());
        }
        let before = self.entries.len();
        self.entries.retain(|_, e| e.expires > now);
        let target = before - (before / 8).max(1).min(before);
        if self.entries.len() > target {
            let protect = u64::try_from(store.protect.as_nanos()).unwrap_or(u64::MAX);
            // Built only when a sweep evicts (once per eighth of the bound), then freed.
            let mut evictable: Vec<(u64, Fingerprint)> = self
                .entries
                .iter()
                .filter(|(_, e)| match e.state() {
                    State::InFlight(_) => false,
                    State::Done { since } => now.saturating_sub(since) >= protect,
                    State::Marker(_) => true,
                })
                .map(|(k, e)| (e.seq(), *k))
                .collect();
            let excess = (self.entries.len() - target).min(evictable.len());
            if excess < evictable.len() {
                evictable.select_nth_unstable_by_key(excess, |(seq, _)| *seq);
            }
            for (_, key) in &evictable[..excess] {
                self.entries.remove(key);
            }
        }
        store.free_slots(before - self.entries.len());
        Ok(())
    }
}

/// The fewest keys a shard is given: below this a store stays one map.
const MIN_KEYS_PER_SHARD: usize = 8 * 1024;
/// Enough that one shard's rehash stays well under a millisecond at the default bound.
const MAX_SHARDS: usize = 64;

/// A shard, or the watch list, locked.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding these locks cannot leave a map half-updated, so poisoning is moot.
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
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
        let mut inner = self.lock(&key);
        if let Some(entry) = inner.entries.get(&key).filter(|e| e.expires > now) {
            match entry.state() {
                State::Done { .. } => return Ok(Claim::Done),
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
        let mut inner = self.lock(&key);
        if let Some(entry) = inner.entries.get_mut(&key)
            && matches!(entry.state(), State::InFlight(t) if t == print)
        {
            entry.set(State::Done { since: now }, after(now, ttl));
        }
        Ok(())
    }

    async fn release(&self, key: &str, token: &ClaimToken) -> Result<(), StoreError> {
        let key = self.fingerprint(key);
        let print = self.token_print(token);
        let mut inner = self.lock(&key);
        if inner
            .entries
            .get(&key)
            .is_some_and(|e| matches!(e.state(), State::InFlight(t) if t == print))
        {
            inner.entries.remove(&key);
            self.free_slots(1);
        }
        Ok(())
    }

    async fn is_done(&self, key: &str) -> Result<bool, StoreError> {
        let key = self.fingerprint(key);
        let now = self.now();
        Ok(self
            .lock(&key)
            .entries
            .get(&key)
            .is_some_and(|e| e.expires > now && matches!(e.state(), State::Done { .. })))
    }

    async fn mark_done(&self, key: &str, ttl: Duration) -> Result<(), StoreError> {
        let key = self.fingerprint(key);
        let now = self.now();
        let mut inner = self.lock(&key);
        self.put(
            &mut inner,
            key,
            State::Done { since: now },
            after(now, ttl),
            now,
        )
    }

    fn markers(self: Arc<Self>) -> Option<Arc<dyn ProgressMarkers>> {
        Some(self)
    }

    fn watch_list(self: Arc<Self>) -> Option<Arc<dyn WatchList>> {
        Some(self)
    }
}

#[async_trait::async_trait]
impl ProgressMarkers for MemoryStore {
    async fn swap_marker(
        &self,
        key: &str,
        marker: u64,
        ttl: Duration,
    ) -> Result<Option<u64>, StoreError> {
        let key = self.fingerprint(key);
        let now = self.now();
        let mut inner = self.lock(&key);
        let previous = match inner.entries.get(&key).map(|e| (e.state(), e.expires)) {
            Some((State::Marker(m), expires)) if expires > now => Some(m),
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
        let mut inner = self.lock(&key);
        let Some(entry) = inner.entries.get_mut(&key) else {
            return Ok(());
        };
        if !matches!(entry.state(), State::Marker(m) if m == current) {
            return Ok(());
        }
        if let Some(previous) = previous {
            entry.set(State::Marker(previous), after(now, ttl));
        } else {
            inner.entries.remove(&key);
            self.free_slots(1);
        }
        Ok(())
    }
}

#[async_trait::async_trait]
impl WatchList for MemoryStore {
    async fn track(
        &self,
        prediction_id: &str,
        due_ms: i64,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        lock(&self.tracked).track(prediction_id, due_ms, ttl, self.max_keys)
    }

    async fn untrack(&self, prediction_id: &str) -> Result<(), StoreError> {
        lock(&self.tracked).remove(prediction_id);
        Ok(())
    }

    async fn take_due(
        &self,
        now_ms: i64,
        limit: usize,
        retry: Backoff,
    ) -> Result<Vec<(String, u32)>, StoreError> {
        Ok(lock(&self.tracked).take_due(now_ms, limit, retry))
    }

    async fn watched(&self, limit: usize) -> Result<Vec<super::WatchedPrediction>, StoreError> {
        Ok(lock(&self.tracked).list(limit))
    }
}

mod watch;

#[cfg(test)]
mod tests;
