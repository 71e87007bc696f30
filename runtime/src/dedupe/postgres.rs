//! `PostgreSQL`: shared by every instance, durable, one statement per claim.

use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::{
    Config, ManagerConfig, Pool, PoolConfig, RecyclingMethod, Runtime, Timeouts,
};
use tokio::sync::OnceCell;
use tokio_postgres::NoTls;

use super::{Backoff, Claim, ClaimToken, DedupeStore, StoreError, millis};

/// A store in `PostgreSQL` tables (`postgres://USER:PASSWORD@HOST:PORT/DB`), through a pool;
/// feature `postgres`.
///
/// A claim is one `INSERT … ON CONFLICT DO UPDATE … WHERE expired` statement: it inserts a new
/// key or takes over an expired one, atomically across instances. The tables are created on
/// first use by a migration that holds an advisory lock, so instances that start together do not
/// race. Expired rows are purged in small batches along the `expires_at` index.
#[derive(Clone)]
pub struct PostgresStore {
    pool: Pool,
    migrated: Arc<OnceCell<()>>,
}

impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresStore").finish_non_exhaustive()
    }
}

/// Migrations, applied in order, each once; the version table records which ran.
const MIGRATIONS: &[&str] = &[
    "
CREATE TABLE replicate_webhook_keys (
    key TEXT PRIMARY KEY,
    token TEXT,                          -- NULL once done
    expires_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX replicate_webhook_keys_expiry ON replicate_webhook_keys (expires_at);
CREATE TABLE replicate_webhook_markers (
    key TEXT PRIMARY KEY,
    marker BIGINT NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX replicate_webhook_markers_expiry ON replicate_webhook_markers (expires_at);
",
    "
CREATE TABLE replicate_webhook_watched (
    prediction TEXT PRIMARY KEY,
    due_ms BIGINT NOT NULL,
    attempts INTEGER NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX replicate_webhook_watched_due ON replicate_webhook_watched (due_ms);
",
];

/// Any constant: instances migrating at once serialise on it.
const MIGRATION_LOCK: i64 = 0x7265_706c_6963_6174;

const CLAIM: &str = "
WITH claimed AS (
    INSERT INTO replicate_webhook_keys (key, token, expires_at)
    VALUES ($1, $2, now() + $3::bigint * interval '1 millisecond')
    ON CONFLICT (key) DO UPDATE SET token = EXCLUDED.token, expires_at = EXCLUDED.expires_at
        WHERE replicate_webhook_keys.expires_at <= now()
    RETURNING 1
)
SELECT EXISTS (SELECT 1 FROM claimed),
       -- NULL, not true, when the row is not in this statement's snapshot (see `claim`).
       CASE WHEN k.key IS NULL THEN NULL ELSE k.token IS NULL END,
       greatest(0, extract(epoch FROM k.expires_at - now()) * 1000)::bigint
FROM (SELECT 1) AS one
LEFT JOIN replicate_webhook_keys k ON k.key = $1";

/// Expired rows are purged after every this many claims, a bounded batch at a time.
const PURGE_EVERY: u64 = 1024;

pub(crate) fn pg_error(e: &tokio_postgres::Error) -> StoreError {
    // The driver's messages name the failed step and the server's answer, never the password;
    // a server error's own text says more than the driver's "db error".
    match e.as_db_error() {
        Some(db) => StoreError::new(format_args!(
            "postgres: {} (SQLSTATE {})",
            db.message(),
            db.code().code()
        )),
        None => StoreError::new(format_args!("postgres: {e}")),
    }
}

/// A connection pool for `url` whose every wait is bounded, so a database that is down is an
/// error in seconds rather than a hung delivery. Connects lazily.
pub(crate) fn pool(url: &str) -> Result<Pool, StoreError> {
    pool_of(url, 16)
}

/// Like [`pool`], with at most `size` connections: the journal and the live channel keep
/// pools of their own, smaller than the dedupe store's.
pub(crate) fn pool_of(url: &str, size: usize) -> Result<Pool, StoreError> {
    let mut config = Config::new();
    config.url = Some(url.to_owned());
    config.manager = Some(ManagerConfig {
        recycling_method: RecyclingMethod::Fast,
    });
    let timeout = Some(Duration::from_secs(2));
    config.pool = Some(PoolConfig {
        timeouts: Timeouts {
            wait: timeout,
            create: timeout,
            recycle: timeout,
        },
        ..PoolConfig::new(size)
    });
    config
        .create_pool(Some(Runtime::Tokio1), NoTls)
        .map_err(|e| StoreError::new(format_args!("postgres: {e}")))
}

impl PostgresStore {
    /// A store for `url`, connecting (and migrating) on first use.
    pub fn new(url: &str) -> Result<Self, StoreError> {
        Ok(Self {
            pool: pool(url)?,
            migrated: Arc::default(),
        })
    }

    /// A store for `url`, connected and migrated before it returns.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let store = Self::new(url)?;
        drop(store.client().await?);
        Ok(store)
    }

    /// A pooled connection, after the migration ran once for this store.
    async fn client(&self) -> Result<deadpool_postgres::Object, StoreError> {
        let client = self
            .pool
            .get()
            .await
            .map_err(|e| StoreError::new(format_args!("postgres pool: {e}")))?;
        self.migrated.get_or_try_init(|| migrate(&client)).await?;
        Ok(client)
    }

    async fn purge(&self) -> Result<(), StoreError> {
        let client = self.client().await?;
        for table in ["replicate_webhook_keys", "replicate_webhook_markers"] {
            client
                .execute(
                    &format!(
                        "DELETE FROM {table} WHERE key IN \
                         (SELECT key FROM {table} WHERE expires_at <= now() LIMIT 1000)"
                    ),
                    &[],
                )
                .await
                .map_err(|e| pg_error(&e))?;
        }
        Ok(())
    }
}

pub(crate) async fn migrate(client: &deadpool_postgres::Object) -> Result<(), StoreError> {
    let run = async {
        client.batch_execute("BEGIN").await?;
        client
            .execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
            .await?;
        client
            .batch_execute(
                "CREATE TABLE IF NOT EXISTS replicate_webhook_migrations (version INTEGER PRIMARY KEY)",
            )
            .await?;
        let done: i32 = client
            .query_one(
                "SELECT coalesce(max(version), 0) FROM replicate_webhook_migrations",
                &[],
            )
            .await?
            .get(0);
        for (version, sql) in (1..).zip(MIGRATIONS) {
            if version > done {
                client.batch_execute(sql).await?;
                client
                    .execute(
                        "INSERT INTO replicate_webhook_migrations (version) VALUES ($1)",
                        &[&version],
                    )
                    .await?;
            }
        }
        client.batch_execute("COMMIT").await
    };
    match run.await {
        Ok(()) => Ok(()),
        Err(e) => {
            let _ = client.batch_execute("ROLLBACK").await;
            Err(pg_error(&e))
        }
    }
}

fn signed(marker: u64) -> i64 {
    i64::from_ne_bytes(marker.to_ne_bytes())
}

/// The claim primitives, each one statement on a client or inside the caller's transaction: the
/// store runs each on its own, the inbox in the transaction that stores a job, so several
/// deliveries' statements can be pipelined into one.
pub(crate) mod keys {
    use deadpool_postgres::GenericClient;
    use tokio_postgres::Error;

    use super::{CLAIM, Claim, ClaimToken, Duration};

    /// Claims `key` for `lease_ms`, unless it is in flight or done.
    pub(crate) async fn claim(
        client: &impl GenericClient,
        key: &str,
        token: &ClaimToken,
        lease_ms: i64,
    ) -> Result<Claim, Error> {
        let statement = client.prepare_cached(CLAIM).await?;
        let row = client
            .query_one(&statement, &[&key, &token.as_str(), &lease_ms])
            .await?;
        let (won, done, retry_ms): (bool, Option<bool>, Option<i64>) =
            (row.get(0), row.get(1), row.get(2));
        Ok(match (won, done, retry_ms) {
            (true, _, _) => Claim::Acquired(token.clone()),
            (false, Some(true), _) => Claim::Done,
            (false, Some(false), Some(ms)) => Claim::InFlight {
                retry_after: Duration::from_millis(u64::try_from(ms).unwrap_or(0)),
            },
            // Taken by a claim committed after this statement's snapshot: in flight, just now.
            _ => Claim::InFlight {
                retry_after: Duration::from_secs(1),
            },
        })
    }

    /// Marks `key` done for `ttl_ms`, if `token` still holds it.
    pub(crate) async fn complete(
        client: &impl GenericClient,
        key: &str,
        token: &ClaimToken,
        ttl_ms: i64,
    ) -> Result<(), Error> {
        client
            .execute(
                "UPDATE replicate_webhook_keys \
                 SET token = NULL, expires_at = now() + $3::bigint * interval '1 millisecond' \
                 WHERE key = $1 AND token = $2",
                &[&key, &token.as_str(), &ttl_ms],
            )
            .await
            .map(drop)
    }

    /// Drops `key`'s claim, if `token` still holds it.
    pub(crate) async fn release(
        client: &impl GenericClient,
        key: &str,
        token: &ClaimToken,
    ) -> Result<(), Error> {
        client
            .execute(
                "DELETE FROM replicate_webhook_keys WHERE key = $1 AND token = $2",
                &[&key, &token.as_str()],
            )
            .await
            .map(drop)
    }

    /// Whether `key` is done.
    pub(crate) async fn is_done(client: &impl GenericClient, key: &str) -> Result<bool, Error> {
        client
            .query_opt(
                "SELECT 1 FROM replicate_webhook_keys \
                 WHERE key = $1 AND token IS NULL AND expires_at > now()",
                &[&key],
            )
            .await
            .map(|row| row.is_some())
    }

    /// Marks `key` done for `ttl_ms`, whatever its state.
    pub(crate) async fn mark_done(
        client: &impl GenericClient,
        key: &str,
        ttl_ms: i64,
    ) -> Result<(), Error> {
        client
            .execute(
                "INSERT INTO replicate_webhook_keys (key, token, expires_at) \
                 VALUES ($1, NULL, now() + $2::bigint * interval '1 millisecond') \
                 ON CONFLICT (key) DO UPDATE SET token = NULL, expires_at = EXCLUDED.expires_at",
                &[&key, &ttl_ms],
            )
            .await
            .map(drop)
    }
}

#[async_trait::async_trait]
impl DedupeStore for PostgresStore {
    async fn claim(&self, key: &str, lease: Duration) -> Result<Claim, StoreError> {
        use std::sync::atomic::{AtomicU64, Ordering};
        static CLAIMS: AtomicU64 = AtomicU64::new(0);

        let client = self.client().await?;
        let claim = keys::claim(&client, key, &ClaimToken::new(), millis(lease))
            .await
            .map_err(|e| pg_error(&e))?;
        drop(client);
        if matches!(claim, Claim::Acquired(_))
            && CLAIMS.fetch_add(1, Ordering::Relaxed) % PURGE_EVERY == PURGE_EVERY - 1
        {
            let store = self.clone();
            tokio::spawn(async move {
                if let Err(e) = store.purge().await {
                    tracing::warn!(error = %e, "could not purge expired dedupe rows");
                }
            });
        }
        Ok(claim)
    }

    async fn complete(
        &self,
        key: &str,
        token: &ClaimToken,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        keys::complete(&self.client().await?, key, token, millis(ttl))
            .await
            .map_err(|e| pg_error(&e))
    }

    async fn release(&self, key: &str, token: &ClaimToken) -> Result<(), StoreError> {
        keys::release(&self.client().await?, key, token)
            .await
            .map_err(|e| pg_error(&e))
    }

    async fn is_done(&self, key: &str) -> Result<bool, StoreError> {
        keys::is_done(&self.client().await?, key)
            .await
            .map_err(|e| pg_error(&e))
    }

    async fn mark_done(&self, key: &str, ttl: Duration) -> Result<(), StoreError> {
        keys::mark_done(&self.client().await?, key, millis(ttl))
            .await
            .map_err(|e| pg_error(&e))
    }

    async fn swap_marker(
        &self,
        key: &str,
        marker: u64,
        ttl: Duration,
    ) -> Result<Option<u64>, StoreError> {
        // The old value comes from a row lock taken in the same statement's CTE, so two
        // concurrent swaps each see the other's marker or none, never the same previous twice.
        let row = self
            .client()
            .await?
            .query_one(
                "WITH old AS (
                     SELECT marker FROM replicate_webhook_markers
                     WHERE key = $1 AND expires_at > now() FOR UPDATE
                 ), new AS (
                     INSERT INTO replicate_webhook_markers (key, marker, expires_at)
                     VALUES ($1, $2, now() + $3::bigint * interval '1 millisecond')
                     ON CONFLICT (key) DO UPDATE
                         SET marker = EXCLUDED.marker, expires_at = EXCLUDED.expires_at
                     RETURNING 1
                 )
                 SELECT (SELECT marker FROM old), (SELECT count(*) FROM new)",
                &[&key, &signed(marker), &millis(ttl)],
            )
            .await
            .map_err(|e| pg_error(&e))?;
        let previous: Option<i64> = row.get(0);
        Ok(previous.map(|p| u64::from_ne_bytes(p.to_ne_bytes())))
    }

    async fn restore_marker(
        &self,
        key: &str,
        current: u64,
        previous: Option<u64>,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        let client = self.client().await?;
        let result = match previous {
            Some(previous) => {
                client
                    .execute(
                        "UPDATE replicate_webhook_markers \
                         SET marker = $3, expires_at = now() + $4::bigint * interval '1 millisecond' \
                         WHERE key = $1 AND marker = $2",
                        &[&key, &signed(current), &signed(previous), &millis(ttl)],
                    )
                    .await
            }
            None => {
                client
                    .execute(
                        "DELETE FROM replicate_webhook_markers WHERE key = $1 AND marker = $2",
                        &[&key, &signed(current)],
                    )
                    .await
            }
        };
        result.map(drop).map_err(|e| pg_error(&e))
    }

    async fn track(
        &self,
        prediction_id: &str,
        due_ms: i64,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        self.client()
            .await?
            .execute(
                "INSERT INTO replicate_webhook_watched (prediction, due_ms, attempts, expires_at) \
                 VALUES ($1, $2, 0, now() + $3::bigint * interval '1 millisecond') \
                 ON CONFLICT (prediction) DO UPDATE \
                 SET due_ms = EXCLUDED.due_ms, attempts = 0, expires_at = EXCLUDED.expires_at",
                &[&prediction_id, &due_ms, &millis(ttl)],
            )
            .await
            .map(drop)
            .map_err(|e| pg_error(&e))
    }

    async fn untrack(&self, prediction_id: &str) -> Result<(), StoreError> {
        self.client()
            .await?
            .execute(
                "DELETE FROM replicate_webhook_watched WHERE prediction = $1",
                &[&prediction_id],
            )
            .await
            .map(drop)
            .map_err(|e| pg_error(&e))
    }

    async fn take_due(
        &self,
        now_ms: i64,
        limit: usize,
        retry: Backoff,
    ) -> Result<Vec<(String, u32)>, StoreError> {
        let client = self.client().await?;
        client
            .execute(
                "DELETE FROM replicate_webhook_watched WHERE prediction IN \
                 (SELECT prediction FROM replicate_webhook_watched WHERE expires_at <= now() LIMIT 1000)",
                &[],
            )
            .await
            .map_err(|e| pg_error(&e))?;
        // SKIP LOCKED: instances polling at once each take other predictions.
        let rows = client
            .query(
                "UPDATE replicate_webhook_watched w \
                 SET due_ms = $1 + least($3::bigint * power(2, least(w.attempts, 40))::bigint, $4::bigint), \
                     attempts = w.attempts + 1 \
                 FROM (SELECT prediction FROM replicate_webhook_watched \
                       WHERE due_ms <= $1 ORDER BY due_ms LIMIT $2 FOR UPDATE SKIP LOCKED) due \
                 WHERE w.prediction = due.prediction \
                 RETURNING w.prediction, w.attempts - 1",
                &[&now_ms, &i64::try_from(limit).unwrap_or(i64::MAX), &retry.base_ms, &retry.cap_ms],
            )
            .await
            .map_err(|e| pg_error(&e))?;
        Ok(rows
            .iter()
            .map(|row| {
                let attempts: i32 = row.get(1);
                (row.get(0), u32::try_from(attempts).unwrap_or(0))
            })
            .collect())
    }

    async fn watched(&self, limit: usize) -> Result<Vec<super::WatchedPrediction>, StoreError> {
        let rows = self
            .client()
            .await?
            .query(
                "SELECT prediction, due_ms, attempts FROM replicate_webhook_watched \
                 WHERE expires_at > now() ORDER BY due_ms LIMIT $1",
                &[&i64::try_from(limit).unwrap_or(i64::MAX)],
            )
            .await
            .map_err(|e| pg_error(&e))?;
        Ok(rows
            .iter()
            .map(|row| {
                let attempts: i32 = row.get(2);
                super::WatchedPrediction {
                    prediction_id: row.get(0),
                    due_ms: row.get(1),
                    attempts: u32::try_from(attempts).unwrap_or(0),
                }
            })
            .collect())
    }
}
