//! Redis: shared by every instance, keys that expire on their own.

use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{AsyncCommands as _, Script};

use super::{Backoff, Claim, ClaimToken, DedupeStore, StoreError, millis};

/// A store in Redis (`redis://HOST:PORT/DB`, or `rediss://` for TLS); feature `redis`.
///
/// A claim is `SET key t:<token> NX PX lease`; completion and release compare the token and
/// write in one Lua script, so a worker whose lease expired can neither complete nor release the
/// claim another worker took over. Every key carries a TTL, so Redis forgets on its own.
/// The connection is made on first use and remade after a failure, so a Redis that is down at
/// start or restarts makes deliveries 503 for a while, never the receiver fail.
#[derive(Clone)]
pub struct RedisStore {
    client: redis::Client,
    config: ConnectionManagerConfig,
    /// Made on first use: it needs a runtime, and a Redis that is down at start must not
    /// keep the receiver from starting.
    conn: std::sync::Arc<tokio::sync::OnceCell<ConnectionManager>>,
    prefix: String,
    scripts: &'static Scripts,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
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
        // Returns {1} acquired, {2} done, {3, pttl} in flight.
        claim: Script::new(
            r"
            if redis.call('SET', KEYS[1], 't:' .. ARGV[1], 'NX', 'PX', ARGV[2]) then
                return {1, 0}
            end
            local v = redis.call('GET', KEYS[1])
            if v == 'd' then return {2, 0} end
            return {3, redis.call('PTTL', KEYS[1])}
            ",
        ),
        complete: Script::new(
            r"
            if redis.call('GET', KEYS[1]) == 't:' .. ARGV[1] then
                redis.call('SET', KEYS[1], 'd', 'PX', ARGV[2])
            end
            return 0
            ",
        ),
        release: Script::new(
            r"
            if redis.call('GET', KEYS[1]) == 't:' .. ARGV[1] then
                redis.call('DEL', KEYS[1])
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

/// The default key prefix of everything this crate keeps in Redis.
pub(crate) const DEFAULT_PREFIX: &str = "replicate-webhook:";

/// A client for a store URL and the key prefix it names. The `prefix` query parameter
/// (`redis://host/0?prefix=myapp:`) is this crate's, so Redis itself never sees it. Shared by
/// the dedupe store, the journal and the live channel, which open their own connections.
pub(crate) fn client(url: &str) -> Result<(redis::Client, String), StoreError> {
    let mut parsed = ::url::Url::parse(url)
        .map_err(|e| StoreError::new(format_args!("invalid redis URL: {e}")))?;
    let mut prefix = DEFAULT_PREFIX.to_owned();
    let kept: Vec<(String, String)> = parsed
        .query_pairs()
        .filter_map(|(k, v)| {
            if k == "prefix" {
                prefix = v.into_owned();
                None
            } else {
                Some((k.into_owned(), v.into_owned()))
            }
        })
        .collect();
    if kept.is_empty() {
        parsed.set_query(None);
    } else {
        parsed.query_pairs_mut().clear().extend_pairs(kept);
    }
    let client = redis::Client::open(parsed.as_str()).map_err(|e| redis_error(&e))?;
    Ok((client, prefix))
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
    /// The default key prefix.
    pub const DEFAULT_PREFIX: &'static str = DEFAULT_PREFIX;

    /// A store for `url`, connecting on first use. A `prefix` query parameter
    /// (`redis://host/0?prefix=myapp:`) replaces [`Self::DEFAULT_PREFIX`].
    pub fn new(url: &str) -> Result<Self, StoreError> {
        let (client, prefix) = client(url)?;
        let config = manager_config();
        Ok(Self {
            client,
            config,
            conn: std::sync::Arc::default(),
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

    /// The shared connection, made (or retried) on first use.
    async fn conn(&self) -> Result<ConnectionManager, StoreError> {
        self.conn
            .get_or_try_init(|| {
                ConnectionManager::new_with_config(self.client.clone(), self.config.clone())
            })
            .await
            .cloned()
            .map_err(|e| redis_error(&e))
    }

    fn key(&self, key: &str) -> String {
        let mut full = String::with_capacity(self.prefix.len() + key.len());
        full.push_str(&self.prefix);
        full.push_str(key);
        full
    }
}

#[async_trait::async_trait]
impl DedupeStore for RedisStore {
    async fn claim(&self, key: &str, lease: Duration) -> Result<Claim, StoreError> {
        let token = ClaimToken::new();
        let (state, pttl): (i64, i64) = self
            .scripts
            .claim
            .key(self.key(key))
            .arg(token.as_str())
            .arg(px(lease))
            .invoke_async(&mut self.conn().await?)
            .await
            .map_err(|e| redis_error(&e))?;
        Ok(match state {
            1 => Claim::Acquired(token),
            2 => Claim::Done,
            _ => Claim::InFlight {
                retry_after: Duration::from_millis(u64::try_from(pttl).unwrap_or(0)),
            },
        })
    }

    async fn complete(
        &self,
        key: &str,
        token: &ClaimToken,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        self.scripts
            .complete
            .key(self.key(key))
            .arg(token.as_str())
            .arg(px(ttl))
            .invoke_async::<i64>(&mut self.conn().await?)
            .await
            .map(drop)
            .map_err(|e| redis_error(&e))
    }

    async fn release(&self, key: &str, token: &ClaimToken) -> Result<(), StoreError> {
        self.scripts
            .release
            .key(self.key(key))
            .arg(token.as_str())
            .invoke_async::<i64>(&mut self.conn().await?)
            .await
            .map(drop)
            .map_err(|e| redis_error(&e))
    }

    async fn is_done(&self, key: &str) -> Result<bool, StoreError> {
        let value: Option<String> = self
            .conn()
            .await?
            .get(self.key(key))
            .await
            .map_err(|e| redis_error(&e))?;
        Ok(value.as_deref() == Some("d"))
    }

    async fn mark_done(&self, key: &str, ttl: Duration) -> Result<(), StoreError> {
        let ttl = u64::try_from(px(ttl)).unwrap_or(1);
        self.conn()
            .await?
            .pset_ex::<_, _, ()>(self.key(key), "d", ttl)
            .await
            .map_err(|e| redis_error(&e))
    }

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
            .invoke_async(&mut self.conn().await?)
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
            .invoke_async::<i64>(&mut self.conn().await?)
            .await
            .map(drop)
            .map_err(|e| redis_error(&e))
    }

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
            .query_async::<()>(&mut self.conn().await?)
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
            .query_async::<()>(&mut self.conn().await?)
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
            .invoke_async::<Vec<(String, u32)>>(&mut self.conn().await?)
            .await
            .map_err(|e| redis_error(&e))
    }

    async fn watched(&self, limit: usize) -> Result<Vec<super::WatchedPrediction>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let mut conn = self.conn().await?;
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
