//! The default store: in process, bounded, with expiry.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::{Claim, ClaimToken, DedupeStore, StoreError};

/// An in-memory store for one process: fast, lost on restart, not shared between instances.
///
/// Bounded: when `capacity` keys are held, expired keys are dropped first, then the oldest ones,
/// down to seven eighths of the capacity so the sweep's cost is shared by the inserts that follow.
#[derive(Debug)]
pub struct MemoryStore {
    inner: Mutex<Inner>,
    capacity: usize,
}

#[derive(Debug, Default)]
struct Inner {
    entries: HashMap<String, Entry>,
    /// Keys in insertion order, with the sequence number of the insertion they record.
    order: VecDeque<(String, u64)>,
    next_seq: u64,
}

#[derive(Debug)]
struct Entry {
    state: State,
    expires: Instant,
    seq: u64,
}

#[derive(Debug)]
enum State {
    InFlight(ClaimToken),
    Done,
}

impl MemoryStore {
    /// The default bound: 100,000 keys (a few tens of MiB at most).
    pub const DEFAULT_CAPACITY: usize = 100_000;

    /// A store holding at most [`Self::DEFAULT_CAPACITY`] keys.
    pub fn new() -> Self {
        Self::with_capacity(Self::DEFAULT_CAPACITY)
    }

    /// A store holding at most `capacity` keys.
    pub fn with_capacity(capacity: usize) -> Self {
        Self {
            inner: Mutex::new(Inner::default()),
            capacity: capacity.max(1),
        }
    }

    /// The number of keys held, expired ones included until they are swept.
    pub fn len(&self) -> usize {
        self.lock().entries.len()
    }

    /// Whether the store holds no key.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding this lock cannot leave the map half-updated, so poisoning is moot.
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new()
    }
}

impl Inner {
    fn make_room(&mut self, capacity: usize, now: Instant) {
        // Released and re-claimed keys leave stale records in `order`: prune them too, or a
        // handler that keeps failing grows it without bound.
        if self.entries.len() < capacity && self.order.len() < capacity.saturating_mul(2) {
            return;
        }
        self.entries.retain(|_, e| e.expires > now);
        self.order
            .retain(|(k, seq)| self.entries.get(k).is_some_and(|e| e.seq == *seq));
        let target = capacity - (capacity / 8).max(1);
        while self.entries.len() > target {
            let Some((key, seq)) = self.order.pop_front() else {
                break;
            };
            if self.entries.get(&key).is_some_and(|e| e.seq == seq) {
                self.entries.remove(&key);
            }
        }
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
            return Ok(match entry.state {
                State::Done => Claim::Done,
                State::InFlight(_) => Claim::InFlight {
                    retry_after: entry.expires - now,
                },
            });
        }
        inner.make_room(self.capacity, now);
        let token = ClaimToken::new();
        let seq = inner.next_seq;
        inner.next_seq += 1;
        let entry = Entry {
            state: State::InFlight(token.clone()),
            expires: after(now, lease),
            seq,
        };
        inner.entries.insert(key.to_owned(), entry);
        inner.order.push_back((key.to_owned(), seq));
        Ok(Claim::Acquired(token))
    }

    async fn complete(
        &self,
        key: &str,
        token: &ClaimToken,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        let mut inner = self.lock();
        if let Some(entry) = inner.entries.get_mut(key)
            && matches!(&entry.state, State::InFlight(t) if t == token)
        {
            entry.state = State::Done;
            entry.expires = after(Instant::now(), ttl);
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
}

#[cfg(test)]
mod tests {
    use super::*;

    const LEASE: Duration = Duration::from_secs(30);
    const TTL: Duration = Duration::from_secs(60);

    #[tokio::test]
    async fn claim_complete_then_done() {
        let store = MemoryStore::new();
        let Claim::Acquired(token) = store.claim("k", LEASE).await.unwrap() else {
            panic!("first claim")
        };
        assert!(matches!(
            store.claim("k", LEASE).await.unwrap(),
            Claim::InFlight { .. }
        ));
        assert!(!store.is_done("k").await.unwrap());
        store.complete("k", &token, TTL).await.unwrap();
        assert_eq!(store.claim("k", LEASE).await.unwrap(), Claim::Done);
        assert!(store.is_done("k").await.unwrap());
    }

    #[tokio::test]
    async fn release_lets_a_retry_claim_again() {
        let store = MemoryStore::new();
        let Claim::Acquired(token) = store.claim("k", LEASE).await.unwrap() else {
            panic!()
        };
        store.release("k", &token).await.unwrap();
        assert!(matches!(
            store.claim("k", LEASE).await.unwrap(),
            Claim::Acquired(_)
        ));
    }

    #[tokio::test]
    async fn a_stale_token_cannot_release_or_complete() {
        let store = MemoryStore::new();
        let Claim::Acquired(_) = store.claim("k", Duration::ZERO).await.unwrap() else {
            panic!()
        };
        // The zero lease expired at once, so a second worker takes the key over.
        let Claim::Acquired(second) = store.claim("k", LEASE).await.unwrap() else {
            panic!("takeover")
        };
        let stale = ClaimToken::new();
        store.release("k", &stale).await.unwrap();
        store.complete("k", &stale, TTL).await.unwrap();
        assert!(matches!(
            store.claim("k", LEASE).await.unwrap(),
            Claim::InFlight { .. }
        ));
        store.complete("k", &second, TTL).await.unwrap();
        assert!(store.is_done("k").await.unwrap());
    }

    #[tokio::test]
    async fn done_keys_expire() {
        let store = MemoryStore::new();
        store.mark_done("k", Duration::ZERO).await.unwrap();
        assert!(!store.is_done("k").await.unwrap());
        assert!(matches!(
            store.claim("k", LEASE).await.unwrap(),
            Claim::Acquired(_)
        ));
    }

    #[tokio::test]
    async fn stays_within_capacity() {
        let store = MemoryStore::with_capacity(100);
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
        let store = MemoryStore::with_capacity(800);
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
        let store = MemoryStore::with_capacity(100);
        for i in 0..10_000 {
            let Claim::Acquired(token) = store.claim(&format!("k{i}"), LEASE).await.unwrap() else {
                panic!("fresh key")
            };
            store.release(&format!("k{i}"), &token).await.unwrap();
        }
        let order = store.lock().order.len();
        assert!(order <= 200, "{order} records kept for an empty store");
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

    #[tokio::test]
    async fn concurrent_claims_have_one_winner() {
        let store = std::sync::Arc::new(MemoryStore::new());
        let tasks: Vec<_> = (0..16)
            .map(|_| {
                let store = store.clone();
                tokio::spawn(async move { store.claim("k", LEASE).await.unwrap() })
            })
            .collect();
        let mut winners = 0;
        for t in tasks {
            if matches!(t.await.unwrap(), Claim::Acquired(_)) {
                winners += 1;
            }
        }
        assert_eq!(winners, 1);
    }
}
