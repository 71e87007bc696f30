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
    let opened: Result<Arc<dyn JournalStore>, StoreError> = match url {
        StoreUrl::Memory => Ok(Arc::new(super::memory::MemoryJournal::default())),
        #[cfg(feature = "sqlite")]
        StoreUrl::Sqlite(path) => {
            super::sqlite::SqliteJournal::open(path).map(|j| Arc::new(j) as _)
        }
        #[cfg(feature = "redis")]
        StoreUrl::Redis(text) => super::redis::RedisJournal::new(text).map(|j| Arc::new(j) as _),
        #[cfg(feature = "postgres")]
        StoreUrl::Postgres(text) => {
            super::postgres::PostgresJournal::new(text).map(|j| Arc::new(j) as _)
        }
        #[allow(unreachable_patterns)]
        _ => return Err(StoreUrlError::feature_missing(url)),
    };
    opened.map_err(|e| StoreUrlError::open(url, &e))
}

/// The one table every SQL engine uses (`SQLite` and `PostgreSQL` spell `id` differently).
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub(crate) const COLUMNS: &str = "received_ms, webhook_id, prediction_id, model, event, status, \
    http_status, outcome, detail, duration_us, body, tenant";

/// A value a search compares a column with.
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub(crate) enum Param {
    Text(String),
    Int(i64),
}

/// The query of `search` on the SQL engines, newest first, and its parameters: both engines read
/// `$n` as the n-th.
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub(crate) fn select(search: &Search) -> (String, Vec<Param>) {
    let mut parts = Vec::new();
    let mut values = Vec::new();
    let mut add = |column: &str, op: &str, value: Param| {
        values.push(value);
        parts.push(format!("{column} {op} ${}", values.len()));
    };
    if let Some(p) = &search.prediction_id {
        add("prediction_id", "=", Param::Text(p.clone()));
    }
    if let Some(m) = &search.model {
        add("model", "=", Param::Text(m.clone()));
    }
    if let Some(o) = search.outcome {
        add("outcome", "=", Param::Text(o.as_str().to_owned()));
    }
    if let Some(t) = search.since_ms {
        add("received_ms", ">=", Param::Int(t));
    }
    if let Some(t) = search.until_ms {
        add("received_ms", "<", Param::Int(t));
    }
    if let Some(p) = &search.webhook_id_prefix {
        // The length is a number, never text from the search.
        let column = format!("substr(webhook_id, 1, {})", p.chars().count());
        add(&column, "=", Param::Text(p.clone()));
    }
    let clause = if parts.is_empty() {
        String::new()
    } else {
        format!(" WHERE {}", parts.join(" AND "))
    };
    let limit = i64::try_from(search.limit()).unwrap_or(i64::MAX);
    let query = format!(
        "SELECT id, {COLUMNS} FROM replicate_webhook_journal{clause} ORDER BY id DESC LIMIT {limit}"
    );
    (query, values)
}

/// The journal's migrations after its table, the same on both engines: journals made before
/// rows named their tenant gain the column...
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub(crate) const TENANT_COLUMN: crate::migrate::Step = crate::migrate::Step::AddColumn {
    table: "replicate_webhook_journal",
    column: "tenant",
    declaration: "TEXT",
};

/// ...and lose the index on the prediction. Replicate's ids are random, so every row put its
/// entry at a random place, and a commit of N rows wrote up to N index pages: on SQLite about
/// 9 µs of CPU a row at 64 rows a commit, more than the row itself. A search by prediction scans
/// the journal newest first instead, which the row bound keeps short (10,000 rows by default).
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub(crate) const NO_PREDICTION_INDEX: crate::migrate::Step =
    crate::migrate::Step::Sql("DROP INDEX IF EXISTS replicate_webhook_journal_prediction");
