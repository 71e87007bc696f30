//! Deduplication of deliveries: one trait, several stores.
//!
//! Two keys protect a handler (design.md §4): the `webhook-id`, which absorbs Replicate's retries,
//! and, for terminal events, the prediction id with its terminal status, which keeps a single
//! `on_succeeded` per prediction even when the same result arrives under another webhook id.
//! Each key is either in flight (claimed, with a lease) or done (with a time to live).

mod memory;

use std::fmt;
use std::time::Duration;

pub use memory::MemoryStore;

/// The proof of a claim, needed to complete or release it. Random, so a worker whose lease
/// expired cannot release a claim that another worker took over.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct ClaimToken(String);

impl ClaimToken {
    /// A fresh random token.
    pub fn new() -> Self {
        let mut raw = [0u8; 16];
        getrandom::fill(&mut raw).expect("the operating system's random source is unavailable");
        Self(raw.iter().fold(String::with_capacity(32), |mut s, b| {
            use std::fmt::Write as _;
            let _ = write!(s, "{b:02x}");
            s
        }))
    }

    /// The token's text, for stores that persist it.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Rebuilds a token read back from a store.
    pub fn from_string(text: String) -> Self {
        Self(text)
    }
}

impl Default for ClaimToken {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for ClaimToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ClaimToken(..)")
    }
}

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

/// A store could not be reached or answered nonsense. The receiver answers 503 and runs nothing.
#[derive(Debug, thiserror::Error)]
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

/// An atomic claim / complete / release store.
///
/// Implementations must make `claim` atomic across every process sharing the store: of two
/// concurrent claims of one key, exactly one gets [`Claim::Acquired`].
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

    /// Marks `key` done without running anything (a claim and a completion).
    async fn mark_done(&self, key: &str, ttl: Duration) -> Result<(), StoreError> {
        if let Claim::Acquired(token) = self.claim(key, Duration::from_secs(60)).await? {
            self.complete(key, &token, ttl).await?;
        }
        Ok(())
    }
}

/// The store key of a delivery's `webhook-id`.
pub fn webhook_key(webhook_id: &str) -> String {
    format!("webhook:{webhook_id}")
}

/// The store key of a prediction's terminal status.
pub fn terminal_key(prediction_id: &str, status: &str) -> String {
    format!("prediction:{prediction_id}:{status}")
}

/// Set once any terminal handler of the prediction finished: later intermediate events are stale.
pub fn finished_key(prediction_id: &str) -> String {
    format!("prediction:{prediction_id}:finished")
}
