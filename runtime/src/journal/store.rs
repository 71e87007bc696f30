//! Where journal rows live: one trait, four backends, one schema.

use std::sync::Arc;

use super::{Record, Search};
use crate::dedupe::{StoreError, StoreUrl, StoreUrlError};

/// A journal backend. Each opens its own connection from the store URL.
#[async_trait::async_trait]
pub(crate) trait JournalStore: Send + Sync + 'static {
    /// Appends rows (their `id` is assigned by the store).
    async fn insert(&self, rows: Vec<Record>) -> Result<(), StoreError>;

    /// Rows matching `search`, newest first.
    async fn search(&self, search: &Search) -> Result<Vec<Record>, StoreError>;

    /// Deletes rows received before `before_ms`, then all but the newest `keep`.
    async fn trim(&self, keep: u64, before_ms: i64) -> Result<(), StoreError>;

    /// Appends `row` on the caller's thread, within the bounds, when that costs no more than a
    /// short lock (the ring in memory), and returns `None`; otherwise hands the row back to be
    /// queued for the writer. Skipping the queue saves the writer task's wake-up on every
    /// delivery, which was most of what the memory journal cost.
    fn append_now(&self, row: Record, _keep: u64, _before_ms: i64) -> Option<Record> {
        Some(row)
    }
}

/// Opens the journal for `url` (lazily for the networked engines).
pub(crate) fn open(url: &StoreUrl) -> Result<Arc<dyn JournalStore>, StoreUrlError> {
    let opened: Arc<dyn JournalStore> = match url {
        StoreUrl::Memory => Arc::new(super::memory::MemoryJournal::default()),
        #[cfg(feature = "sqlite")]
        StoreUrl::Sqlite(path) => {
            Arc::new(super::sqlite::SqliteJournal::open(path).map_err(|e| open_error(url, &e))?)
        }
        #[cfg(feature = "redis")]
        StoreUrl::Redis(text) => {
            Arc::new(super::redis::RedisJournal::new(text).map_err(|e| open_error(url, &e))?)
        }
        #[cfg(feature = "postgres")]
        StoreUrl::Postgres(text) => {
            Arc::new(super::postgres::PostgresJournal::new(text).map_err(|e| open_error(url, &e))?)
        }
        #[allow(unreachable_patterns)]
        other => {
            let feature = match other {
                StoreUrl::Sqlite(_) => "sqlite",
                StoreUrl::Redis(_) => "redis",
                _ => "postgres",
            };
            return Err(StoreUrlError::FeatureMissing {
                url: url.redacted(),
                feature,
            });
        }
    };
    Ok(opened)
}

#[allow(dead_code)] // used by the engines behind features
fn open_error(url: &StoreUrl, e: &StoreError) -> StoreUrlError {
    StoreUrlError::Open {
        url: url.redacted(),
        reason: e.to_string(),
    }
}

/// The one table every SQL engine uses (`SQLite` and `PostgreSQL` spell `id` differently).
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub(crate) const COLUMNS: &str = "received_ms, webhook_id, prediction_id, model, event, status, \
    http_status, outcome, detail, duration_us, body, tenant";

/// The journal's one migration after its table, the same on both engines: journals made before
/// rows named their tenant gain the column.
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub(crate) const TENANT_COLUMN: crate::migrate::Step = crate::migrate::Step::AddColumn {
    table: "replicate_webhook_journal",
    column: "tenant",
    declaration: "TEXT",
};
