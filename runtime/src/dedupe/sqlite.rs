//! `SQLite`: embedded and durable, for one machine (several processes may share the file).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension as _, params};

use super::sqlite_file::SqliteFile;
use super::{
    Backoff, Claim, ClaimToken, DedupeStore, ProgressMarkers, StoreError, WatchList, millis, now_ms,
};
use crate::migrate::{Migrations, Step};

/// A store in one `SQLite` file, in WAL mode (feature `sqlite`). Survives restarts, so a deploy
/// inside Replicate's retry window does not run a handler twice.
///
/// `SQLite` calls block, so they run on a thread of their own, never on an actix worker thread.
/// Concurrent writes share one `BEGIN IMMEDIATE` transaction and one commit (group commit), and
/// each caller is answered once that commit is on disk; processes sharing the file are exclusive
/// too. Reads that need no write use a second connection and do not wait behind the writes.
#[derive(Clone)]
pub struct SqliteStore {
    file: Arc<SqliteFile>,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore").finish_non_exhaustive()
    }
}

/// The dedupe tables (the inbox's sit beside them in the same file).
pub(crate) const MIGRATIONS: Migrations = Migrations {
    part: "dedupe",
    steps: &[Step::Sql(SCHEMA)],
};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS replicate_webhook_keys (
    key TEXT PRIMARY KEY NOT NULL,
    token TEXT,                 -- NULL once done
    expires_ms INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS replicate_webhook_keys_expiry ON replicate_webhook_keys (expires_ms);
CREATE TABLE IF NOT EXISTS replicate_webhook_markers (
    key TEXT PRIMARY KEY NOT NULL,
    marker INTEGER NOT NULL,
    expires_ms INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS replicate_webhook_markers_expiry ON replicate_webhook_markers (expires_ms);
CREATE TABLE IF NOT EXISTS replicate_webhook_watched (
    prediction TEXT PRIMARY KEY NOT NULL,
    due_ms INTEGER NOT NULL,
    attempts INTEGER NOT NULL,
    expires_ms INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS replicate_webhook_watched_due ON replicate_webhook_watched (due_ms);
";

/// Expired rows are purged every this many writes, a bounded batch at a time.
const PURGE_EVERY: u64 = 1024;
const PURGE_BATCH: i64 = 1000;

impl SqliteStore {
    /// Opens (or creates) the database at `path` and its tables.
    ///
    /// A new database file is created readable and writable by its owner only (`0600`), whatever
    /// the umask, and so are its `-wal` and `-shm` files, which `SQLite` creates with the database
    /// file's mode: they hold delivery ids and, in inbox mode, whole request bodies.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        Ok(Self {
            file: SqliteFile::open(path.as_ref(), &[&MIGRATIONS], NAME)?,
        })
    }

    /// A private database in memory (for tests: nothing survives).
    pub fn in_memory() -> Result<Self, StoreError> {
        Ok(Self {
            file: SqliteFile::in_memory(&[&MIGRATIONS], NAME)?,
        })
    }

    async fn write<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, StoreError> {
        self.file.write(NAME, work).await
    }
}

/// How this store's errors begin.
const NAME: &str = "sqlite";

/// Counts writes so that one in [`PURGE_EVERY`] also purges expired rows.
fn maybe_purge(conn: &Connection, now: i64) -> rusqlite::Result<()> {
    use std::sync::atomic::{AtomicU64, Ordering};
    static WRITES: AtomicU64 = AtomicU64::new(0);
    if !WRITES
        .fetch_add(1, Ordering::Relaxed)
        .is_multiple_of(PURGE_EVERY)
    {
        return Ok(());
    }
    for table in ["replicate_webhook_keys", "replicate_webhook_markers"] {
        conn.execute(
            &format!(
                "DELETE FROM {table} WHERE key IN \
                 (SELECT key FROM {table} WHERE expires_ms <= ?1 LIMIT ?2)"
            ),
            params![now, PURGE_BATCH],
        )?;
    }
    Ok(())
}

/// The claim primitives, each run on a connection inside the caller's transaction: the store
/// runs each in one of its own, the inbox runs them in the transaction that stores a job, so
/// several deliveries' claims can share one commit.
pub(crate) mod keys {
    use rusqlite::OptionalExtension as _;

    use super::{Claim, ClaimToken, Connection, Duration, params};

    /// Claims `key` until `now + lease_ms`, unless it is in flight or done.
    pub(crate) fn claim(
        conn: &Connection,
        key: &str,
        token: &ClaimToken,
        lease_ms: i64,
        now: i64,
    ) -> rusqlite::Result<Claim> {
        let won = conn
            .prepare_cached(
                "INSERT INTO replicate_webhook_keys (key, token, expires_ms) VALUES (?1, ?2, ?3) \
                 ON CONFLICT (key) DO UPDATE SET token = excluded.token, expires_ms = excluded.expires_ms \
                 WHERE replicate_webhook_keys.expires_ms <= ?4 \
                 RETURNING 1",
            )?
            .query_row(
                params![key, token.as_str(), now.saturating_add(lease_ms), now],
                |_| Ok(()),
            )
            .optional()?
            .is_some();
        if won {
            super::maybe_purge(conn, now)?;
            return Ok(Claim::Acquired(token.clone()));
        }
        let (held, expires): (Option<String>, i64) = conn
            .prepare_cached("SELECT token, expires_ms FROM replicate_webhook_keys WHERE key = ?1")?
            .query_row(params![key], |row| Ok((row.get(0)?, row.get(1)?)))?;
        Ok(match held {
            None => Claim::Done,
            Some(_) => Claim::InFlight {
                retry_after: Duration::from_millis(u64::try_from(expires - now).unwrap_or(0)),
            },
        })
    }

    /// Marks `key` done until `until`, if `token` still holds it.
    pub(crate) fn complete(
        conn: &Connection,
        key: &str,
        token: &ClaimToken,
        until: i64,
    ) -> rusqlite::Result<()> {
        conn.prepare_cached(
            "UPDATE replicate_webhook_keys SET token = NULL, expires_ms = ?3 \
             WHERE key = ?1 AND token = ?2",
        )?
        .execute(params![key, token.as_str(), until])
        .map(drop)
    }

    /// Drops `key`'s claim, if `token` still holds it.
    pub(crate) fn release(
        conn: &Connection,
        key: &str,
        token: &ClaimToken,
    ) -> rusqlite::Result<()> {
        conn.prepare_cached("DELETE FROM replicate_webhook_keys WHERE key = ?1 AND token = ?2")?
            .execute(params![key, token.as_str()])
            .map(drop)
    }

    /// Whether `key` is done at `now`.
    pub(crate) fn is_done(conn: &Connection, key: &str, now: i64) -> rusqlite::Result<bool> {
        conn.prepare_cached(
            "SELECT 1 FROM replicate_webhook_keys \
             WHERE key = ?1 AND token IS NULL AND expires_ms > ?2",
        )?
        .query_row(params![key, now], |_| Ok(()))
        .optional()
        .map(|row| row.is_some())
    }

    /// Marks `key` done until `until`, whatever its state.
    pub(crate) fn mark_done(conn: &Connection, key: &str, until: i64) -> rusqlite::Result<()> {
        conn.prepare_cached(
            "INSERT INTO replicate_webhook_keys (key, token, expires_ms) VALUES (?1, NULL, ?2) \
             ON CONFLICT (key) DO UPDATE SET token = NULL, expires_ms = excluded.expires_ms",
        )?
        .execute(params![key, until])
        .map(drop)
    }
}

#[async_trait::async_trait]
impl DedupeStore for SqliteStore {
    async fn claim(&self, key: &str, lease: Duration) -> Result<Claim, StoreError> {
        let (key, token, lease) = (key.to_owned(), ClaimToken::new(), millis(lease));
        self.write(move |conn| keys::claim(conn, &key, &token, lease, now_ms()))
            .await
    }

    async fn complete(
        &self,
        key: &str,
        token: &ClaimToken,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        let (key, token, ttl) = (key.to_owned(), token.clone(), millis(ttl));
        self.write(move |conn| keys::complete(conn, &key, &token, now_ms().saturating_add(ttl)))
            .await
    }

    async fn release(&self, key: &str, token: &ClaimToken) -> Result<(), StoreError> {
        let (key, token) = (key.to_owned(), token.clone());
        self.write(move |conn| keys::release(conn, &key, &token))
            .await
    }

    async fn is_done(&self, key: &str) -> Result<bool, StoreError> {
        let key = key.to_owned();
        self.file
            .read(NAME, move |conn| keys::is_done(conn, &key, now_ms()))
            .await
    }

    async fn mark_done(&self, key: &str, ttl: Duration) -> Result<(), StoreError> {
        let (key, ttl) = (key.to_owned(), millis(ttl));
        self.write(move |conn| keys::mark_done(conn, &key, now_ms().saturating_add(ttl)))
            .await
    }

    fn markers(self: Arc<Self>) -> Option<Arc<dyn ProgressMarkers>> {
        Some(self)
    }

    fn watch_list(self: Arc<Self>) -> Option<Arc<dyn WatchList>> {
        Some(self)
    }
}

#[async_trait::async_trait]
impl ProgressMarkers for SqliteStore {
    async fn swap_marker(
        &self,
        key: &str,
        marker: u64,
        ttl: Duration,
    ) -> Result<Option<u64>, StoreError> {
        let (key, ttl) = (key.to_owned(), millis(ttl));
        // SQLite integers are signed: store the bits.
        let marker = marker.cast_signed();
        self.write(move |conn| {
            let now = now_ms();
            let previous: Option<i64> = conn
                .query_row(
                    "SELECT marker FROM replicate_webhook_markers WHERE key = ?1 AND expires_ms > ?2",
                    params![key, now],
                    |row| row.get(0),
                )
                .optional()?;
            conn.execute(
                "INSERT INTO replicate_webhook_markers (key, marker, expires_ms) VALUES (?1, ?2, ?3) \
                 ON CONFLICT (key) DO UPDATE SET marker = excluded.marker, expires_ms = excluded.expires_ms",
                params![key, marker, now.saturating_add(ttl)],
            )?;
            Ok(previous.map(i64::cast_unsigned))
        })
        .await
    }

    async fn restore_marker(
        &self,
        key: &str,
        current: u64,
        previous: Option<u64>,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        let (key, ttl) = (key.to_owned(), millis(ttl));
        let (current, previous) = (current.cast_signed(), previous.map(u64::cast_signed));
        self.write(move |conn| {
            match previous {
                Some(previous) => conn.execute(
                    "UPDATE replicate_webhook_markers SET marker = ?3, expires_ms = ?4 \
                     WHERE key = ?1 AND marker = ?2",
                    params![key, current, previous, now_ms().saturating_add(ttl)],
                ),
                None => conn.execute(
                    "DELETE FROM replicate_webhook_markers WHERE key = ?1 AND marker = ?2",
                    params![key, current],
                ),
            }
            .map(drop)
        })
        .await
    }
}

#[async_trait::async_trait]
impl WatchList for SqliteStore {
    async fn track(
        &self,
        prediction_id: &str,
        due_ms: i64,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        let (id, ttl) = (prediction_id.to_owned(), millis(ttl));
        self.write(move |conn| {
            conn.execute(
                "INSERT INTO replicate_webhook_watched (prediction, due_ms, attempts, expires_ms) \
                 VALUES (?1, ?2, 0, ?3) ON CONFLICT (prediction) DO UPDATE \
                 SET due_ms = excluded.due_ms, attempts = 0, expires_ms = excluded.expires_ms",
                params![id, due_ms, now_ms().saturating_add(ttl)],
            )
            .map(drop)
        })
        .await
    }

    async fn untrack(&self, prediction_id: &str) -> Result<(), StoreError> {
        let id = prediction_id.to_owned();
        self.write(move |conn| {
            conn.execute(
                "DELETE FROM replicate_webhook_watched WHERE prediction = ?1",
                params![id],
            )
            .map(drop)
        })
        .await
    }

    async fn take_due(
        &self,
        now: i64,
        limit: usize,
        retry: Backoff,
    ) -> Result<Vec<(String, u32)>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.write(move |conn| {
            conn.execute(
                "DELETE FROM replicate_webhook_watched WHERE expires_ms <= ?1",
                params![now_ms()],
            )?;
            let due: Vec<(String, u32)> = conn
                .prepare_cached(
                    "SELECT prediction, attempts FROM replicate_webhook_watched \
                     WHERE due_ms <= ?1 ORDER BY due_ms LIMIT ?2",
                )?
                .query_map(params![now, limit], |row| Ok((row.get(0)?, row.get(1)?)))?
                .collect::<rusqlite::Result<_>>()?;
            for (id, attempts) in &due {
                conn.execute(
                    "UPDATE replicate_webhook_watched SET due_ms = ?2, attempts = attempts + 1 \
                     WHERE prediction = ?1",
                    params![id, now.saturating_add(retry.after(*attempts))],
                )?;
            }
            Ok(due)
        })
        .await
    }

    async fn watched(&self, limit: usize) -> Result<Vec<super::WatchedPrediction>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.file
            .read(NAME, move |conn| {
                conn.prepare_cached(
                    "SELECT prediction, due_ms, attempts FROM replicate_webhook_watched \
                 WHERE expires_ms > ?1 ORDER BY due_ms LIMIT ?2",
                )?
                .query_map(params![now_ms(), limit], |row| {
                    Ok(super::WatchedPrediction {
                        prediction_id: row.get(0)?,
                        due_ms: row.get(1)?,
                        attempts: row.get(2)?,
                    })
                })?
                .collect()
            })
            .await
    }
}
