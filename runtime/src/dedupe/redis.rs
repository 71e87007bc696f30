//! Redis: shared by every instance, keys that expire on their own.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{AsyncCommands as _, Script};

use super::batch::Batcher;
use super::{
    Backoff, Claim, ClaimToken, DedupeStore, ProgressMarkers, StoreError, WatchList, millis,
};

/// A store in Redis (`redis://HOST:PORT/DB`, or `rediss://` for TLS); feature `redis`.
///
/// A claim is `SET key t:<token> NX PX lease`; completion and release compare the token and
/// write in one Lua script, so a worker whose lease expired can neither complete nor release the
/// claim another worker took over. Concurrent claims (and completions, and releases) share one
/// script call over all their keys: one round trip, one command for Redis to parse, each caller
/// answered once the script has run. Every key carries a TTL, so Redis forgets on its own.
/// The connection is made on first use and remade after a failure, so a Redis that is down at
/// start or restarts makes deliveries 503 for a while, never the receiver fail.
#[derive(Clone)]
pub struct RedisStore {
    conn: Conn,
    prefix: String,
    scripts: &'static Scripts,
    batches: Arc<Batches>,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

/// A shared connection, made on first use: it needs a runtime, and a Redis that is down at
/// start must not keep the receiver from starting. The dedupe store, the journal and the live
/// channel each hold their own.
#[derive(Clone)]
pub(crate) struct Conn {
    pub(crate) client: redis::Client,
    config: ConnectionManagerConfig,
    manager: Arc<tokio::sync::OnceCell<ConnectionManager>>,
}

impl Conn {
    /// A connection for a store URL, made as `config` says, and the key prefix the URL names.
    /// The `prefix` query parameter (`redis://host/0?prefix=myapp:`) is this crate's, so Redis
    /// itself never sees it.
    pub(crate) fn open(
        url: &str,
        config: ConnectionManagerConfig,
    ) -> Result<(Self, String), StoreError> {
        let mut parsed = ::url::Url::parse(url)
            .map_err(|e| StoreError::new(format_args!("invalid redis URL: {e}")))?;
        let (mut prefixes, kept): (Vec<_>, Vec<_>) = parsed
            .query_pairs()
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .partition(|(k, _)| k == "prefix");
        // The last `prefix` given wins.
        let prefix = prefixes
            .pop()
            .map_or_else(|| RedisStore::DEFAULT_PREFIX.to_owned(), |(_, v)| v);
        if kept.is_empty() {
            parsed.set_query(None);
        } else {
            parsed.query_pairs_mut().clear().extend_pairs(kept);
        }
        let client = redis::Client::open(parsed.as_str()).map_err(|e| redis_error(&e))?;
        let conn = Self {
            client,
            config,
            manager: Arc::default(),
        };
        Ok((conn, prefix))
    }

    /// The shared connection, made (or retried) on first use.
    pub(crate) async fn connect(&self) -> Result<ConnectionManager, redis::RedisError> {
        self.manager
            .get_or_try_init(|| {
                ConnectionManager::new_with_config(self.client.clone(), self.config.clone())
            })
            .await
            .cloned()
    }

    /// [`Conn::connect`], its error told as the store's.
    async fn get(&self) -> Result<ConnectionManager, StoreError> {
        self.connect().await.map_err(|e| redis_error(&e))
    }
}

/// One batcher per kind of key call; each request carries its full (prefixed) key.
struct Batches {
    claim: Batcher<(String, ClaimToken, i64), Claim>,
    complete: Batcher<(String, ClaimToken, i64), ()>,
    release: Batcher<(String, ClaimToken), ()>,
}

/// Script calls of one kind in flight at once: two keep Redis busy while the next batch fills.
const PARALLEL: usize = 2;

/// The most keys one script call carries: a script blocks Redis while it runs.
const MAX_BATCH: usize = 256;

/// A batcher whose batches run `script` on the shared connection.
fn batcher<R, T, F, Fut>(conn: &Conn, script: F) -> Batcher<R, T>
where
    R: Send + 'static,
    T: Send + 'static,
    F: Fn(ConnectionManager, Vec<R>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Result<Vec<T>, redis::RedisError>> + Send + 'static,
{
    let conn = conn.clone();
    Batcher::new(PARALLEL, MAX_BATCH, move |requests| {
        let (conn, script) = (conn.clone(), script.clone());
        async move {
            let manager = conn.get().await?;
            script(manager, requests).await.map_err(|e| redis_error(&e))
        }
    })
}

impl Batches {
    fn new(conn: &Conn, scripts: &'static Scripts) -> Self {
        Self {
            claim: batcher(
                conn,
                move |mut conn, requests: Vec<(String, ClaimToken, i64)>| async move {
                    let mut call = scripts.claim.prepare_invoke();
                    for (key, token, lease_ms) in &requests {
                        call.key(key).arg(token.as_str()).arg(*lease_ms);
                    }
                    let answers: Vec<i64> = call.invoke_async(&mut conn).await?;
                    Ok(requests
                        .into_iter()
                        .zip(answers.chunks(2))
                        .map(|((_, token, _), answer)| match answer {
                            [1, _] => Claim::Acquired(token),
                            [2, _] => Claim::Done,
                            [_, pttl] => Claim::InFlight {
                                retry_after: Duration::from_millis(
                                    u64::try_from(*pttl).unwrap_or(0),
                                ),
                            },
                            _ => Claim::InFlight {
                                retry_after: Duration::from_secs(1),
                            },
                        })
                        .collect())
                },
            ),
            complete: batcher(
                conn,
                move |mut conn, requests: Vec<(String, ClaimToken, i64)>| async move {
                    let mut call = scripts.complete.prepare_invoke();
                    for (key, token, ttl_ms) in &requests {
                        call.key(key).arg(token.as_str()).arg(*ttl_ms);
                    }
                    call.invoke_async::<i64>(&mut conn).await?;
                    Ok(vec![(); requests.len()])
                },
            ),
            release: batcher(
                conn,
                move |mut conn, requests: Vec<(String, ClaimToken)>| async move {
                    let mut call = scripts.release.prepare_invoke();
                    for (key, token) in &requests {
                        call.key(key).arg(token.as_str());
                    }
                    call.invoke_async::<i64>(&mut conn).await?;
                    Ok(vec![(); requests.len()])
                },
            ),
        }
    }
}

struct Scripts {
    take_due: Script,
    claim: Script,
    complete: Script,
    release: Script,
    swap: Script,
    restore: Script,
}

fn scripts() -> &'static Scripts {
    static SCRIPTS: std::sync::OnceLock<Scripts> = std::sync::OnceLock::new();
    SCRIPTS.get_or_init(|| Scripts {
        // KEYS: the due sorted set, the attempts hash. Each member taken is pushed back by
        // min(base * 2^attempts, cap) and its attempts counted, in one atomic step.
        take_due: Script::new(
            r"
            local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[2])
            local out = {}
            for _, id in ipairs(ids) do
                local attempts = tonumber(redis.call('HGET', KEYS[2], id) or '0')
                local delay = math.min(tonumber(ARGV[3]) * 2 ^ math.min(attempts, 40), tonumber(ARGV[4]))
                redis.call('ZADD', KEYS[1], tonumber(ARGV[1]) + delay, id)
                redis.call('HSET', KEYS[2], id, attempts + 1)
                table.insert(out, id)
                table.insert(out, attempts)
            end
            return out
            ",
        ),
        // KEYS: the keys to claim; ARGV: each one's token and lease. Answers two numbers per
        // key, in order: 1 acquired, 2 done, 3 in flight, then the time left on the lease. A
        // key asked twice is taken by its first ask, and the second finds it in flight.
        claim: Script::new(
            r"
            local out = {}
            for i, key in ipairs(KEYS) do
                if redis.call('SET', key, 't:' .. ARGV[2 * i - 1], 'NX', 'PX', ARGV[2 * i]) then
                    out[#out + 1] = 1
                    out[#out + 1] = 0
                elseif redis.call('GET', key) == 'd' then
                    out[#out + 1] = 2
                    out[#out + 1] = 0
                else
                    out[#out + 1] = 3
                    out[#out + 1] = redis.call('PTTL', key)
                end
            end
            return out
            ",
        ),
        // KEYS: the keys to complete; ARGV: each one's token and time to live.
        complete: Script::new(
            r"
            for i, key in ipairs(KEYS) do
                if redis.call('GET', key) == 't:' .. ARGV[2 * i - 1] then
                    redis.call('SET', key, 'd', 'PX', ARGV[2 * i])
                end
            end
            return 0
            ",
        ),
        // KEYS: the keys to release; ARGV: each one's token.
        release: Script::new(
            r"
            for i, key in ipairs(KEYS) do
                if redis.call('GET', key) == 't:' .. ARGV[i] then
                    redis.call('DEL', key)
                end
            end
            return 0
            ",
        ),
        swap: Script::new(
            r"
            local old = redis.call('GET', KEYS[1])
            redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
            return old
            ",
        ),
        restore: Script::new(
            r"
            if redis.call('GET', KEYS[1]) == ARGV[1] then
                if ARGV[2] == '' then
                    redis.call('DEL', KEYS[1])
                else
                    redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
                end
            end
            return 0
            ",
        ),
    })
}

fn redis_error(e: &redis::RedisError) -> StoreError {
    // The error's text names the failed operation and the server's answer, never the URL.
    StoreError::new(format_args!("redis: {e}"))
}

/// `PX` refuses 0: the shortest lease Redis can express is 1 ms.
fn px(duration: Duration) -> i64 {
    millis(duration).max(1)
}

/// How a connection manager connects and waits: every wait bounded, so a Redis that is down is
/// an error in seconds rather than a hung delivery.
pub(crate) fn manager_config() -> ConnectionManagerConfig {
    ConnectionManagerConfig::new()
        .set_connection_timeout(Some(Duration::from_secs(2)))
        .set_response_timeout(Some(Duration::from_secs(2)))
        .set_number_of_retries(2)
        .set_max_delay(Duration::from_millis(500))
}

impl RedisStore {
    /// The default key prefix of everything this crate keeps in Redis.
    pub const DEFAULT_PREFIX: &'static str = "replicate-webhook:";

    /// A store for `url`, connecting on first use. A `prefix` query parameter
    /// (`redis://host/0?prefix=myapp:`) replaces [`Self::DEFAULT_PREFIX`].
    pub fn new(url: &str) -> Result<Self, StoreError> {
        let (conn, prefix) = Conn::open(url, manager_config())?;
        Ok(Self {
            batches: Arc::new(Batches::new(&conn, scripts())),
            conn,
            prefix,
            scripts: scripts(),
        })
    }

    /// Namespaces every key with `prefix` instead of [`Self::DEFAULT_PREFIX`].
    #[must_use]
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    fn key(&self, key: &str) -> String {
        [self.prefix.as_str(), key].concat()
    }
}

#[async_trait::async_trait]
impl DedupeStore for RedisStore {
    async fn claim(&self, key: &str, lease: Duration) -> Result<Claim, StoreError> {
        self.batches
            .claim
            .call((self.key(key), ClaimToken::new(), px(lease)))
            .await
    }

    async fn complete(
        &self,
        key: &str,
        token: &ClaimToken,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        self.batches
            .complete
            .call((self.key(key), token.clone(), px(ttl)))
            .await
    }

    async fn release(&self, key: &str, token: &ClaimToken) -> Result<(), StoreError> {
        self.batches
            .release
            .call((self.key(key), token.clone()))
            .await
    }

    async fn is_done(&self, key: &str) -> Result<bool, StoreError> {
        let value: Option<String> = self
            .conn
            .get()
            .await?
            .get(self.key(key))
            .await
            .map_err(|e| redis_error(&e))?;
        Ok(value.as_deref() == Some("d"))
    }

    async fn mark_done(&self, key: &str, ttl: Duration) -> Result<(), StoreError> {
        let ttl = u64::try_from(px(ttl)).unwrap_or(1);
        self.conn
            .get()
            .await?
            .pset_ex::<_, _, ()>(self.key(key), "d", ttl)
            .await
            .map_err(|e| redis_error(&e))
    }

    fn markers(self: Arc<Self>) -> Option<Arc<dyn ProgressMarkers>> {
        Some(self)
    }

    fn watch_list(self: Arc<Self>) -> Option<Arc<dyn WatchList>> {
        Some(self)
    }
}

#[async_trait::async_trait]
impl ProgressMarkers for RedisStore {
    async fn swap_marker(
        &self,
        key: &str,
        marker: u64,
        ttl: Duration,
    ) -> Result<Option<u64>, StoreError> {
        let old: Option<String> = self
            .scripts
            .swap
            .key(self.key(key))
            .arg(marker)
            .arg(px(ttl))
            .invoke_async(&mut self.conn.get().await?)
            .await
            .map_err(|e| redis_error(&e))?;
        Ok(old.and_then(|o| o.parse().ok()))
    }

    async fn restore_marker(
        &self,
        key: &str,
        current: u64,
        previous: Option<u64>,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        self.scripts
            .restore
            .key(self.key(key))
            .arg(current)
            .arg(previous.map(|p| p.to_string()).unwrap_or_default())
            .arg(px(ttl))
            .invoke_async::<i64>(&mut self.conn.get().await?)
            .await
            .map(drop)
            .map_err(|e| redis_error(&e))
    }
}

#[async_trait::async_trait]
impl WatchList for RedisStore {
    async fn track(
        &self,
        prediction_id: &str,
        due_ms: i64,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        // Watched predictions share one sorted set (by due time) and one hash (attempts); a
        // per-member TTL does not exist, so the set as a whole expires after the longest `ttl`.
        let (due, attempts) = (self.key("watched:due"), self.key("watched:attempts"));
        redis::pipe()
            .atomic()
            .zadd(&due, prediction_id, due_ms)
            .ignore()
            .hdel(&attempts, prediction_id)
            .ignore()
            .pexpire(&due, px(ttl))
            .ignore()
            .pexpire(&attempts, px(ttl))
            .ignore()
            .query_async::<()>(&mut self.conn.get().await?)
            .await
            .map_err(|e| redis_error(&e))
    }

    async fn untrack(&self, prediction_id: &str) -> Result<(), StoreError> {
        redis::pipe()
            .atomic()
            .zrem(self.key("watched:due"), prediction_id)
            .ignore()
            .hdel(self.key("watched:attempts"), prediction_id)
            .ignore()
            .query_async::<()>(&mut self.conn.get().await?)
            .await
            .map_err(|e| redis_error(&e))
    }

    async fn take_due(
        &self,
        now_ms: i64,
        limit: usize,
        retry: Backoff,
    ) -> Result<Vec<(String, u32)>, StoreError> {
        // The script answers `[id, attempts, id, attempts, ...]`: read as pairs.
        self.scripts
            .take_due
            .key(self.key("watched:due"))
            .key(self.key("watched:attempts"))
            .arg(now_ms)
            .arg(limit)
            .arg(retry.base_ms)
            .arg(retry.cap_ms)
            .invoke_async::<Vec<(String, u32)>>(&mut self.conn.get().await?)
            .await
            .map_err(|e| redis_error(&e))
    }

    async fn watched(&self, limit: usize) -> Result<Vec<super::WatchedPrediction>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let mut conn = self.conn.get().await?;
        // Scores are due times in milliseconds: exact in a double until the year 287 396.
        let due: Vec<(String, f64)> = redis::cmd("ZRANGE")
            .arg(self.key("watched:due"))
            .arg(0)
            .arg(isize::try_from(limit).unwrap_or(isize::MAX) - 1)
            .arg("WITHSCORES")
            .query_async(&mut conn)
            .await
            .map_err(|e| redis_error(&e))?;
        if due.is_empty() {
            return Ok(Vec::new());
        }
        let attempts: Vec<Option<u32>> = redis::cmd("HMGET")
            .arg(self.key("watched:attempts"))
            .arg(due.iter().map(|(id, _)| id.as_str()).collect::<Vec<_>>())
            .query_async(&mut conn)
            .await
            .map_err(|e| redis_error(&e))?;
        Ok(due
            .into_iter()
            .zip(attempts)
            .map(
                |((prediction_id, due), attempts)| super::WatchedPrediction {
                    prediction_id,
                    #[allow(clippy::cast_possible_truncation)]
                    due_ms: due as i64,
                    attempts: attempts.unwrap_or(0),
                },
            )
            .collect())
    }
}
