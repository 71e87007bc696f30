//! Deduplication of deliveries: one protocol (the crate's gate), the traits a store implements
//! ([`DedupeStore`], and [`ProgressMarkers`] and [`WatchList`] where it offers them), four stores.
//!
//! One key protects a handler run (design.md §4). A terminal event claims the prediction's
//! terminal key, which keeps a single `on_succeeded` per prediction, whether the same result
//! comes back as a retry or under another webhook id. An intermediate event claims its
//! `webhook-id`, which absorbs Replicate's retries, and is stale once the prediction's terminal
//! key is done. Each key is either in flight (claimed, with a lease) or done (with a time to live).
//! A store that offers [`ProgressMarkers`] (the four built-in ones do) also holds what tells an
//! `output` delivery from a `logs` one, so every instance sharing it classifies a delivery the
//! same way.
//!
//! | store | feature | URL (`REPLICATE_WEBHOOK_STORE`) | for |
//! |---|---|---|---|
//! | [`MemoryStore`] | always | `memory` | one process; lost on restart |
//! | `SqliteStore` | `sqlite` | `sqlite://PATH` | one machine; durable |
//! | `RedisStore` | `redis` | `redis://HOST:PORT/DB`, `rediss://…` | several instances |
//! | `PostgresStore` | `postgres` | `postgres://USER:PASSWORD@HOST/DB` | several instances; durable |

#[cfg(any(feature = "redis", feature = "postgres"))]
mod batch;
#[cfg_attr(
    not(feature = "testkit"),
    expect(unreachable_pub, reason = "public only through testkit::protocol")
)]
pub(crate) mod gate;
mod memory;
#[cfg(feature = "postgres")]
mod postgres;
#[cfg(feature = "redis")]
mod redis;
#[cfg(feature = "sqlite")]
mod sqlite;
#[cfg(feature = "sqlite")]
mod sqlite_file;
mod token;
mod url;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

#[cfg(feature = "postgres")]
pub(crate) use batch::Batcher;
pub(crate) use gate::{Admission, Delivery, Gate, Lease, Policy, Progress};
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub(crate) use gate::{Claims, admit};
pub(crate) use gate::{Keys, Ttls, bounded};
pub use memory::MemoryStore;
#[cfg(feature = "postgres")]
#[cfg_attr(docsrs, doc(cfg(feature = "postgres")))]
pub use postgres::PostgresStore;
#[cfg(feature = "postgres")]
pub(crate) use postgres::{
    Db as PostgresDb, MIGRATIONS as POSTGRES_MIGRATIONS, PgResult, keys as postgres_keys,
};
#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub use redis::RedisStore;
#[cfg(feature = "redis")]
pub(crate) use redis::{Conn as RedisConn, manager_config as redis_manager_config};
#[cfg(feature = "sqlite")]
#[cfg_attr(docsrs, doc(cfg(feature = "sqlite")))]
pub use sqlite::SqliteStore;
#[cfg(feature = "sqlite")]
pub(crate) use sqlite::{MIGRATIONS as SQLITE_MIGRATIONS, keys as sqlite_keys};
#[cfg(feature = "sqlite")]
pub(crate) use sqlite_file::SqliteFile;
pub use token::ClaimToken;
pub use url::{StoreUrl, StoreUrlError, open};

pub use crate::backoff::Backoff;
pub(crate) use crate::clock::{millis, now_ms};

/// The answer to a claim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// The key is ours until the lease ends: run the handler, then complete or release.
    Acquired(ClaimToken),
    /// Another worker holds the key; ask the sender to come back after `retry_after`.
    InFlight {
        /// Time left on the other worker's lease.
        retry_after: Duration,
    },
    /// The key was already handled.
    Done,
}

/// A store could not be reached, timed out or answered nonsense. The receiver answers 503 and
/// runs nothing.
#[derive(Debug, Clone, thiserror::Error)]
#[error("dedupe store unavailable: {message}")]
pub struct StoreError {
    message: String,
}

impl StoreError {
    /// Wraps a backend error message. Callers must not put secrets (connection passwords) in it.
    pub fn new(message: impl fmt::Display) -> Self {
        Self {
            message: message.to_string(),
        }
    }
}

/// A prediction the reconciler watches, as [`WatchList::watched`] lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchedPrediction {
    /// Its id as the store keeps it (in its tenant's namespace, for a tenant's).
    pub prediction_id: String,
    /// When it is polled next, in milliseconds since the Unix epoch.
    pub due_ms: i64,
    /// Polls so far.
    pub attempts: u32,
}

/// An atomic claim / complete / release store: what every dedupe store offers.
///
/// Implementations must make `claim` atomic across every process sharing the store: of two
/// concurrent claims of one key, exactly one gets [`Claim::Acquired`]. Every key expires.
/// `tests/tests/stores.rs` runs one conformance suite against every implementation.
///
/// A store may also keep the two other kinds of state the receiver shares between instances,
/// each its own trait, offered through an accessor that says `None` unless overridden:
/// [`ProgressMarkers`] (which tell an `output` delivery from a `logs` one; without them each
/// process keeps its own, in memory) and the reconciler's [`WatchList`] (without it, a
/// configuration with a reconciler is refused when the receiver is built). The four built-in
/// stores offer both.
#[async_trait::async_trait]
pub trait DedupeStore: Send + Sync + 'static {
    /// Claims `key` for `lease`, unless it is in flight (lease not expired) or done (not expired).
    async fn claim(&self, key: &str, lease: Duration) -> Result<Claim, StoreError>;

    /// Marks a claimed key done for `ttl`. A no-op when `token` no longer owns the key.
    async fn complete(
        &self,
        key: &str,
        token: &ClaimToken,
        ttl: Duration,
    ) -> Result<(), StoreError>;

    /// Drops a claim so a retry can take it. A no-op when `token` no longer owns the key.
    async fn release(&self, key: &str, token: &ClaimToken) -> Result<(), StoreError>;

    /// Whether `key` is done (and not expired).
    async fn is_done(&self, key: &str) -> Result<bool, StoreError>;

    /// Marks `key` done for `ttl`, whatever its state, without running anything.
    async fn mark_done(&self, key: &str, ttl: Duration) -> Result<(), StoreError>;

    /// Whether every call finishes without waiting on anything outside the process: no I/O, no
    /// lock held across an await. Such a store cannot stall, so its calls are not put under the
    /// store timeout, whose timer would cost more than the call. `false` unless overridden.
    fn answers_at_once(&self) -> bool {
        false
    }

    /// This store's progress markers, if it keeps them (so that every instance sharing it
    /// classifies a delivery alike). `None` unless overridden.
    fn markers(self: Arc<Self>) -> Option<Arc<dyn ProgressMarkers>> {
        None
    }

    /// This store's watch list for the reconciler, if it keeps one. `None` unless overridden.
    fn watch_list(self: Arc<Self>) -> Option<Arc<dyn WatchList>> {
        None
    }
}

/// The last progress seen of each running prediction, shared by the instances of a store.
#[async_trait::async_trait]
pub trait ProgressMarkers: Send + Sync + 'static {
    /// Records `marker` under `key` for `ttl` and returns the marker it replaced, atomically.
    ///
    /// Progress markers live in their own namespace: `key` never collides with a claim's key.
    async fn swap_marker(
        &self,
        key: &str,
        marker: u64,
        ttl: Duration,
    ) -> Result<Option<u64>, StoreError>;

    /// Puts `previous` back under `key` (or removes the marker when `None`), but only while
    /// `current` is still the recorded marker: a later delivery's marker is never undone.
    async fn restore_marker(
        &self,
        key: &str,
        current: u64,
        previous: Option<u64>,
        ttl: Duration,
    ) -> Result<(), StoreError>;
}

/// The reconciler's watch list: predictions to poll when no webhook finished them in time.
#[async_trait::async_trait]
pub trait WatchList: Send + Sync + 'static {
    /// Watches `prediction_id` for the reconciler: due at `due_ms` (milliseconds since the Unix
    /// epoch) unless tracked again (which moves it and resets its attempts) or untracked first.
    /// Forgotten after `ttl` whatever happens.
    async fn track(
        &self,
        prediction_id: &str,
        due_ms: i64,
        ttl: Duration,
    ) -> Result<(), StoreError>;

    /// Stops watching `prediction_id` (its terminal status was handled).
    async fn untrack(&self, prediction_id: &str) -> Result<(), StoreError>;

    /// Takes up to `limit` watched predictions due at `now_ms`, atomically across instances:
    /// each one taken is due again `min(retry.base << attempts, retry.cap)` later, so no other
    /// instance polls it meanwhile and a prediction that stays unfinished is polled less and
    /// less often. Returns each id with its attempts before this one.
    async fn take_due(
        &self,
        now_ms: i64,
        limit: usize,
        retry: Backoff,
    ) -> Result<Vec<(String, u32)>, StoreError>;

    /// Up to `limit` watched predictions, the soonest due first: what the dashboard's
    /// reconciler page shows, the same from every instance sharing the store. The default says
    /// the store cannot list them (the built-in stores can).
    async fn watched(&self, limit: usize) -> Result<Vec<WatchedPrediction>, StoreError> {
        let _ = limit;
        Err(StoreError::new(
            "this store does not list its watched predictions",
        ))
    }
}
