//! `PostgreSQL`: shared by every instance, durable, one statement for all the claims waiting.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::{
    Config, ManagerConfig, Pool, PoolConfig, PoolError, RecyclingMethod, Runtime, Timeouts,
};
use tokio::sync::OnceCell;
use tokio_postgres::NoTls;

use super::batch::Batcher;
use super::{
    Backoff, Claim, ClaimToken, DedupeStore, ProgressMarkers, StoreError, WatchList, millis,
};
use crate::migrate::{Migrations, Step};

/// A store in `PostgreSQL` tables (`postgres://USER:PASSWORD@HOST:PORT/DB`), through a pool;
/// feature `postgres`.
///
/// A claim is one `INSERT … ON CONFLICT DO UPDATE … WHERE expired` statement: it inserts a new
/// key or takes over an expired one, atomically across instances. Concurrent calls of one kind
/// (claims, completions, releases…) share one statement over `unnest` arrays, prepared once per
/// connection: each caller is answered once the statement that holds its write has committed,
/// so a claim is durable before its handler runs and a done marker before the 200. The tables
/// are created on first use by a migration that holds an advisory lock, so instances that start
/// together do not race. Expired rows are purged in small batches along the `expires_at` index.
#[derive(Clone)]
pub struct PostgresStore {
    db: Db,
    batches: Arc<Batches>,
}

/// A pool, the tables it serves, and whether they were migrated yet: the store's, the inbox's
/// (whose tables sit beside the store's), and the journal's and the live channel's (pools of
/// their own, smaller than the store's).
#[derive(Clone)]
pub(crate) struct Db {
    pub(crate) pool: Pool,
    parts: &'static [&'static Migrations],
    /// How its pool's errors begin in [`Db::client`].
    name: &'static str,
    migrated: Arc<OnceCell<()>>,
}

impl Db {
    /// Connections of a store's pool: every batcher's statements in flight, plus room for the
    /// calls that are not batched (markers, the reconciler's watch list, the purge).
    pub(crate) const POOL_SIZE: usize = 16;

    /// A pool for `url` of at most `size` connections that migrates `parts` on first use. Every
    /// wait is bounded, so a database that is down is an error in seconds rather than a hung
    /// delivery. Connects lazily.
    pub(crate) fn new(
        url: &str,
        size: usize,
        parts: &'static [&'static Migrations],
        name: &'static str,
    ) -> Result<Self, StoreError> {
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
        let pool = config
            .create_pool(Some(Runtime::Tokio1), NoTls)
            .map_err(|e| StoreError::new(format_args!("postgres: {e}")))?;
        Ok(Self {
            pool,
            parts,
            name,
            migrated: Arc::default(),
        })
    }

    /// A pooled connection, after the migration ran once for this pool.
    pub(crate) async fn client(&self) -> Result<deadpool_postgres::Object, StoreError> {
        self.client_or(
            |e| StoreError::new(format_args!("{} pool: {e}", self.name)),
            |e| pg_error(&e),
        )
        .await
    }

    /// [`Db::client`], with its pool's and its migration's errors told by `pool_error` and
    /// `migrate_error`.
    pub(crate) async fn client_or<E>(
        &self,
        pool_error: impl FnOnce(PoolError) -> E,
        migrate_error: impl FnOnce(tokio_postgres::Error) -> E,
    ) -> Result<deadpool_postgres::Object, E> {
        let mut client = self.pool.get().await.map_err(pool_error)?;
        self.migrated
            .get_or_try_init(|| async {
                crate::migrate::postgres(&mut client, self.parts)
                    .await
                    .map_err(migrate_error)
            })
            .await?;
        Ok(client)
    }
}

/// One batcher per kind of key call: what each statement takes, and what it answers.
struct Batches {
    claim: Batcher<keys::Timed, Claim>,
    complete: Batcher<keys::Timed, ()>,
    release: Batcher<(String, ClaimToken), ()>,
    is_done: Batcher<String, bool>,
    mark_done: Batcher<(String, i64), ()>,
}

/// Statements of one kind in flight at once, each on its own connection. Two keep the server
/// busy while the next batch fills; the pool holds enough for every kind at once.
const PARALLEL: usize = 2;

/// The most calls one statement carries.
const MAX_BATCH: usize = 512;

/// A batcher whose batches run `statement` on one pooled connection.
fn batcher<R, T, F, Fut>(db: &Db, statement: F) -> Batcher<R, T>
where
    R: Send + 'static,
    T: Send + 'static,
    F: Fn(deadpool_postgres::Object, Vec<R>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Result<Vec<T>, tokio_postgres::Error>> + Send + 'static,
{
    let db = db.clone();
    Batcher::new(PARALLEL, MAX_BATCH, move |requests| {
        let (db, statement) = (db.clone(), statement.clone());
        async move { statement(db.client().await?, requests).await.pg() }
    })
}

impl Batches {
    fn new(db: &Db) -> Self {
        Self {
            claim: batcher(db, |client, requests| async move {
                keys::claim(&client, &requests).await
            }),
            complete: batcher(db, |client, requests| async move {
                keys::complete(&client, &requests).await?;
                Ok(vec![(); requests.len()])
            }),
            release: batcher(db, |client, requests| async move {
                keys::release(&client, &requests).await?;
                Ok(vec![(); requests.len()])
            }),
            is_done: batcher(db, |client, requests| async move {
                keys::is_done(&client, &requests).await
            }),
            mark_done: batcher(db, |client, requests: Vec<(String, i64)>| async move {
                let (keys, ttls): (Vec<&str>, Vec<i64>) =
                    requests.iter().map(|(k, ttl)| (k.as_str(), *ttl)).unzip();
                let statement = client.prepare_cached(MARK_DONE_MANY).await?;
                client.execute(&statement, &[&keys, &ttls]).await?;
                Ok(vec![(); requests.len()])
            }),
        }
    }
}

impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresStore").finish_non_exhaustive()
    }
}

/// The dedupe tables; the inbox's migrate after them.
pub(crate) const MIGRATIONS: Migrations = Migrations {
    part: "dedupe",
    steps: &[
        Step::Sql(
            "
CREATE TABLE IF NOT EXISTS replicate_webhook_keys (
    key TEXT PRIMARY KEY,
    token TEXT,                          -- NULL once done
    expires_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX IF NOT EXISTS replicate_webhook_keys_expiry ON replicate_webhook_keys (expires_at);
CREATE TABLE IF NOT EXISTS replicate_webhook_markers (
    key TEXT PRIMARY KEY,
    marker BIGINT NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX IF NOT EXISTS replicate_webhook_markers_expiry ON replicate_webhook_markers (expires_at);
",
        ),
        Step::Sql(
            "
CREATE TABLE IF NOT EXISTS replicate_webhook_watched (
    prediction TEXT PRIMARY KEY,
    due_ms BIGINT NOT NULL,
    attempts INTEGER NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX IF NOT EXISTS replicate_webhook_watched_due ON replicate_webhook_watched (due_ms);
",
        ),
    ],
};

/// [`CLAIM_MANY`] for one key, which the inbox's intake sends once per delivery, pipelined in
/// the transaction that stores the jobs. Its own statement, not the batch one over one-element
/// arrays: with that one the inbox acknowledged a third as many deliveries a second (about
/// 1,500 against 4,700 in alternated runs of the quickstart in `receive` mode).
const CLAIM: &str = "
WITH claimed AS (
    INSERT INTO replicate_webhook_keys (key, token, expires_at)
    VALUES ($1, $2, now() + $3::bigint * interval '1 millisecond')
    ON CONFLICT (key) DO UPDATE SET token = EXCLUDED.token, expires_at = EXCLUDED.expires_at
        WHERE replicate_webhook_keys.expires_at <= now()
    RETURNING 1
)
SELECT EXISTS (SELECT 1 FROM claimed),
       CASE WHEN k.key IS NULL THEN NULL ELSE k.token IS NULL END,
       greatest(0, extract(epoch FROM k.expires_at - now()) * 1000)::bigint
FROM (SELECT 1) AS one
LEFT JOIN replicate_webhook_keys k ON k.key = $1";

/// Claims distinct keys, each inserted or taken over where its claim expired, atomically across
/// instances; answered in the order given. The rows are inserted in key order, so two batches
/// that share keys lock them in the same order and never deadlock.
const CLAIM_MANY: &str = "
WITH input AS (
    SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[]) WITH ORDINALITY
        AS i(key, token, lease_ms, n)
), claimed AS (
    INSERT INTO replicate_webhook_keys (key, token, expires_at)
    SELECT key, token, now() + lease_ms * interval '1 millisecond' FROM input ORDER BY key
    ON CONFLICT (key) DO UPDATE SET token = EXCLUDED.token, expires_at = EXCLUDED.expires_at
        WHERE replicate_webhook_keys.expires_at <= now()
    RETURNING key
)
SELECT c.key IS NOT NULL,
       -- NULL, not true, when the row is not in this statement's snapshot (see `keys::claim`).
       CASE WHEN k.key IS NULL THEN NULL ELSE k.token IS NULL END,
       greatest(0, extract(epoch FROM k.expires_at - now()) * 1000)::bigint
FROM input i
LEFT JOIN claimed c ON c.key = i.key
LEFT JOIN replicate_webhook_keys k ON k.key = i.key
ORDER BY i.n";

/// Marks each key done for its time to live, where its token still holds it.
const COMPLETE_MANY: &str = "
UPDATE replicate_webhook_keys k
SET token = NULL, expires_at = now() + i.ttl_ms * interval '1 millisecond'
FROM unnest($1::text[], $2::text[], $3::bigint[]) AS i(key, token, ttl_ms)
WHERE k.key = i.key AND k.token = i.token";

/// Drops each key's claim, where its token still holds it.
const RELEASE_MANY: &str = "
DELETE FROM replicate_webhook_keys k
USING unnest($1::text[], $2::text[]) AS i(key, token)
WHERE k.key = i.key AND k.token = i.token";

/// Whether each key is done, in the order given.
const IS_DONE_MANY: &str = "
SELECT EXISTS (
    SELECT 1 FROM replicate_webhook_keys k
    WHERE k.key = i.key AND k.token IS NULL AND k.expires_at > now())
FROM unnest($1::text[]) WITH ORDINALITY AS i(key, n)
ORDER BY i.n";

/// Marks each key done whatever its state; a key given twice keeps its longer time to live
/// (one statement may not update a row twice).
const MARK_DONE_MANY: &str = "
INSERT INTO replicate_webhook_keys (key, token, expires_at)
SELECT DISTINCT ON (key) key, NULL, now() + ttl_ms * interval '1 millisecond'
FROM unnest($1::text[], $2::bigint[]) AS i(key, ttl_ms)
ORDER BY key, ttl_ms DESC
ON CONFLICT (key) DO UPDATE SET token = NULL, expires_at = EXCLUDED.expires_at";

/// Expired rows are purged after every this many claims, a bounded batch at a time.
const PURGE_EVERY: u64 = 1024;

/// A driver result with its error as the store's, for `?`: `.pg()?`.
pub(crate) trait PgResult<T> {
    /// The result, its error told as [`pg_error`] tells it.
    fn pg(self) -> Result<T, StoreError>;
}

impl<T> PgResult<T> for Result<T, tokio_postgres::Error> {
    fn pg(self) -> Result<T, StoreError> {
        self.map_err(|e| pg_error(&e))
    }
}

fn pg_error(e: &tokio_postgres::Error) -> StoreError {
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

impl PostgresStore {
    /// A store for `url`, connecting (and migrating) on first use.
    pub fn new(url: &str) -> Result<Self, StoreError> {
        let db = Db::new(url, Db::POOL_SIZE, &[&MIGRATIONS], "postgres")?;
        Ok(Self {
            batches: Arc::new(Batches::new(&db)),
            db,
        })
    }

    /// A store for `url`, connected and migrated before it returns.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let store = Self::new(url)?;
        drop(store.db.client().await?);
        Ok(store)
    }

    async fn purge(&self) -> Result<(), StoreError> {
        let client = self.db.client().await?;
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
                .pg()?;
        }
        Ok(())
    }
}

/// The key statements, on a client or inside the caller's transaction: over arrays of keys, which
/// the store runs for a batch of concurrent calls; and for one key (`*_one`), which the inbox
/// runs for one delivery in the transaction that stores its job, so that several deliveries'
/// statements are pipelined into one transaction.
pub(crate) mod keys {
    use deadpool_postgres::GenericClient;
    use tokio_postgres::Error;

    use super::{
        CLAIM, CLAIM_MANY, COMPLETE_MANY, Claim, ClaimToken, Duration, HashMap, IS_DONE_MANY,
        RELEASE_MANY,
    };

    /// A key, the token that claims it and milliseconds: a lease to claim, or a time to live
    /// to complete.
    pub(crate) type Timed = (String, ClaimToken, i64);

    /// The key, token and milliseconds of each request, as the arrays a statement unnests.
    fn columns<'a>(
        requests: impl Iterator<Item = &'a Timed>,
    ) -> (Vec<&'a str>, (Vec<&'a str>, Vec<i64>)) {
        requests
            .map(|(key, token, ms)| (key.as_str(), (token.as_str(), *ms)))
            .unzip()
    }

    /// What a claim statement's row says: won, done, or in flight for how long.
    fn answer(row: &tokio_postgres::Row, token: &ClaimToken) -> Claim {
        let (won, done, retry_ms): (bool, Option<bool>, Option<i64>) =
            (row.get(0), row.get(1), row.get(2));
        match (won, done, retry_ms) {
            (true, _, _) => Claim::Acquired(token.clone()),
            (false, Some(true), _) => Claim::Done,
            (false, Some(false), Some(ms)) => Claim::InFlight {
                retry_after: Duration::from_millis(u64::try_from(ms).unwrap_or(0)),
            },
            // Taken by a claim committed after this statement's snapshot: in flight, just now.
            _ => Claim::InFlight {
                retry_after: Duration::from_secs(1),
            },
        }
    }

    /// Claims `key` for `lease_ms` unless it is in flight or done ([`CLAIM`]).
    pub(crate) async fn claim_one(
        client: &impl GenericClient,
        key: &str,
        token: &ClaimToken,
        lease_ms: i64,
    ) -> Result<Claim, Error> {
        let statement = client.prepare_cached(CLAIM).await?;
        let row = client
            .query_one(&statement, &[&key, &token.as_str(), &lease_ms])
            .await?;
        Ok(answer(&row, token))
    }

    /// Marks `key` done for `ttl_ms`, if `token` still holds it: the inbox's single-key
    /// statements, in its own transactions, as [`claim_one`] is.
    pub(crate) async fn complete_one(
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
    pub(crate) async fn release_one(
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
    pub(crate) async fn is_done_one(client: &impl GenericClient, key: &str) -> Result<bool, Error> {
        client
            .query_opt(
                "SELECT 1 FROM replicate_webhook_keys \
                 WHERE key = $1 AND token IS NULL AND expires_at > now()",
                &[&key],
            )
            .await
            .map(|row| row.is_some())
    }

    /// Claims each `(key, token, lease_ms)` unless it is in flight or done, in one statement,
    /// answered in the order given.
    ///
    /// A key asked twice is claimed once: one statement may not take a row twice. The later
    /// asks get what the store holds once the first is answered: in flight for its lease when
    /// the first won, else the first's answer.
    pub(crate) async fn claim(
        client: &impl GenericClient,
        requests: &[Timed],
    ) -> Result<Vec<Claim>, Error> {
        // Each key's first ask, by index into `requests`, and each ask's first.
        let mut first: HashMap<&str, usize> = HashMap::with_capacity(requests.len());
        let mut leaders = Vec::with_capacity(requests.len());
        let firsts: Vec<usize> = requests
            .iter()
            .enumerate()
            .map(|(i, (key, _, _))| {
                *first.entry(key.as_str()).or_insert_with(|| {
                    leaders.push(i);
                    i
                })
            })
            .collect();
        let (keys, (tokens, leases)) = columns(leaders.iter().map(|&i| &requests[i]));
        let statement = client.prepare_cached(CLAIM_MANY).await?;
        let rows = client.query(&statement, &[&keys, &tokens, &leases]).await?;
        let mut claims: Vec<Option<Claim>> = vec![None; requests.len()];
        for (row, &i) in rows.iter().zip(&leaders) {
            claims[i] = Some(answer(row, &requests[i].1));
        }
        Ok(firsts
            .iter()
            .enumerate()
            .map(|(i, &leader)| {
                let claim = claims[leader].clone().unwrap_or(Claim::InFlight {
                    retry_after: Duration::from_secs(1),
                });
                match claim {
                    Claim::Acquired(_) if i != leader => Claim::InFlight {
                        retry_after: Duration::from_millis(
                            u64::try_from(requests[leader].2).unwrap_or(0),
                        ),
                    },
                    claim => claim,
                }
            })
            .collect())
    }

    /// Marks each `(key, token, ttl_ms)` done for its time to live, where its token still
    /// holds it.
    pub(crate) async fn complete(
        client: &impl GenericClient,
        requests: &[Timed],
    ) -> Result<(), Error> {
        let (keys, (tokens, ttls)) = columns(requests.iter());
        let statement = client.prepare_cached(COMPLETE_MANY).await?;
        client
            .execute(&statement, &[&keys, &tokens, &ttls])
            .await
            .map(drop)
    }

    /// Drops each key's claim, where its token still holds it.
    pub(crate) async fn release(
        client: &impl GenericClient,
        requests: &[(String, ClaimToken)],
    ) -> Result<(), Error> {
        let (keys, tokens): (Vec<&str>, Vec<&str>) = requests
            .iter()
            .map(|(key, token)| (key.as_str(), token.as_str()))
            .unzip();
        let statement = client.prepare_cached(RELEASE_MANY).await?;
        client
            .execute(&statement, &[&keys, &tokens])
            .await
            .map(drop)
    }

    /// Whether each key is done, in the order given.
    pub(crate) async fn is_done(
        client: &impl GenericClient,
        keys: &[String],
    ) -> Result<Vec<bool>, Error> {
        let statement = client.prepare_cached(IS_DONE_MANY).await?;
        let rows = client.query(&statement, &[&keys]).await?;
        Ok(rows.iter().map(|row| row.get(0)).collect())
    }
}

#[async_trait::async_trait]
impl DedupeStore for PostgresStore {
    async fn claim(&self, key: &str, lease: Duration) -> Result<Claim, StoreError> {
        use std::sync::atomic::{AtomicU64, Ordering};
        static CLAIMS: AtomicU64 = AtomicU64::new(0);

        let claim = self
            .batches
            .claim
            .call((key.to_owned(), ClaimToken::new(), millis(lease)))
            .await?;
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
        self.batches
            .complete
            .call((key.to_owned(), token.clone(), millis(ttl)))
            .await
    }

    async fn release(&self, key: &str, token: &ClaimToken) -> Result<(), StoreError> {
        self.batches
            .release
            .call((key.to_owned(), token.clone()))
            .await
    }

    async fn is_done(&self, key: &str) -> Result<bool, StoreError> {
        self.batches.is_done.call(key.to_owned()).await
    }

    async fn mark_done(&self, key: &str, ttl: Duration) -> Result<(), StoreError> {
        self.batches
            .mark_done
            .call((key.to_owned(), millis(ttl)))
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
impl ProgressMarkers for PostgresStore {
    async fn swap_marker(
        &self,
        key: &str,
        marker: u64,
        ttl: Duration,
    ) -> Result<Option<u64>, StoreError> {
        // The old value comes from a row lock taken in the same statement's CTE, so two
        // concurrent swaps each see the other's marker or none, never the same previous twice.
        let row = self
            .db
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
                &[&key, &marker.cast_signed(), &millis(ttl)],
            )
            .await
            .pg()?;
        let previous: Option<i64> = row.get(0);
        Ok(previous.map(i64::cast_unsigned))
    }

    async fn restore_marker(
        &self,
        key: &str,
        current: u64,
        previous: Option<u64>,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        let client = self.db.client().await?;
        let result = match previous {
            Some(previous) => {
                client
                    .execute(
                        "UPDATE replicate_webhook_markers \
                         SET marker = $3, expires_at = now() + $4::bigint * interval '1 millisecond' \
                         WHERE key = $1 AND marker = $2",
                        &[&key, &current.cast_signed(), &previous.cast_signed(), &millis(ttl)],
                    )
                    .await
            }
            None => {
                client
                    .execute(
                        "DELETE FROM replicate_webhook_markers WHERE key = $1 AND marker = $2",
                        &[&key, &current.cast_signed()],
                    )
                    .await
            }
        };
        result.map(drop).pg()
    }
}

#[async_trait::async_trait]
impl WatchList for PostgresStore {
    async fn track(
        &self,
        prediction_id: &str,
        due_ms: i64,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        self.db
            .client()
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
            .pg()
    }

    async fn untrack(&self, prediction_id: &str) -> Result<(), StoreError> {
        self.db
            .client()
            .await?
            .execute(
                "DELETE FROM replicate_webhook_watched WHERE prediction = $1",
                &[&prediction_id],
            )
            .await
            .map(drop)
            .pg()
    }

    async fn take_due(
        &self,
        now_ms: i64,
        limit: usize,
        retry: Backoff,
    ) -> Result<Vec<(String, u32)>, StoreError> {
        let client = self.db.client().await?;
        client
            .execute(
                "DELETE FROM replicate_webhook_watched WHERE prediction IN \
                 (SELECT prediction FROM replicate_webhook_watched WHERE expires_at <= now() LIMIT 1000)",
                &[],
            )
            .await
            .pg()?;
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
            .pg()?;
        Ok(rows
            .iter()
            .map(|row| (row.get(0), u32::try_from(row.get::<_, i32>(1)).unwrap_or(0)))
            .collect())
    }

    async fn watched(&self, limit: usize) -> Result<Vec<super::WatchedPrediction>, StoreError> {
        let rows = self
            .db
            .client()
            .await?
            .query(
                "SELECT prediction, due_ms, attempts FROM replicate_webhook_watched \
                 WHERE expires_at > now() ORDER BY due_ms LIMIT $1",
                &[&i64::try_from(limit).unwrap_or(i64::MAX)],
            )
            .await
            .pg()?;
        Ok(rows
            .iter()
            .map(|row| super::WatchedPrediction {
                prediction_id: row.get(0),
                due_ms: row.get(1),
                attempts: u32::try_from(row.get::<_, i32>(2)).unwrap_or(0),
            })
            .collect())
    }
}
