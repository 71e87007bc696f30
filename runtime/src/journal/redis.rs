//! The journal in Redis: one sorted set of JSON rows scored by arrival, its own connection.

use redis::aio::ConnectionManager;

use super::store::JournalStore;
use super::{Record, Search};
use crate::dedupe::{RedisConn, StoreError, redis_manager_config};

/// Rows read per round trip when searching.
const PAGE: isize = 1000;

pub(crate) struct RedisJournal {
    conn: RedisConn,
    rows: String,
    seq: String,
}

#[allow(clippy::needless_pass_by_value)] // used as `map_err(redis_error)`
fn redis_error(e: redis::RedisError) -> StoreError {
    // Its `Display` names the failing command or I/O error, never the URL's password.
    StoreError::new(format_args!("journal redis: {e}"))
}

impl RedisJournal {
    /// A journal for `url`, connecting on first use. A `prefix` query parameter namespaces the
    /// keys as it does the dedupe store's.
    pub(crate) fn new(url: &str) -> Result<Self, StoreError> {
        let (conn, prefix) = RedisConn::open(url, redis_manager_config())?;
        Ok(Self {
            conn,
            rows: format!("{prefix}journal"),
            seq: format!("{prefix}journal:seq"),
        })
    }

    /// `command` (a range read or delete) on the rows, over the ranks from `start` to `stop`.
    async fn by_rank<T: redis::FromRedisValue>(
        &self,
        conn: &mut ConnectionManager,
        command: &str,
        start: isize,
        stop: impl redis::ToRedisArgs,
    ) -> Result<T, StoreError> {
        redis::cmd(command)
            .arg(&self.rows)
            .arg(start)
            .arg(stop)
            .query_async(conn)
            .await
            .map_err(redis_error)
    }
}

#[async_trait::async_trait]
impl JournalStore for RedisJournal {
    async fn insert(&self, mut rows: Vec<Record>) -> Result<(), StoreError> {
        let mut conn = self.conn.connect().await.map_err(redis_error)?;
        let n = i64::try_from(rows.len()).unwrap_or(i64::MAX);
        let last: i64 = redis::cmd("INCRBY")
            .arg(&self.seq)
            .arg(n)
            .query_async(&mut conn)
            .await
            .map_err(redis_error)?;
        let mut pipe = redis::pipe();
        for (row, id) in rows.iter_mut().zip(last - n + 1..) {
            row.id = id;
            let json = serde_json::to_string(row)
                .map_err(|e| StoreError::new(format_args!("journal row: {e}")))?;
            // Scored by id, so order is write order and members never collide.
            pipe.zadd(&self.rows, json, id).ignore();
        }
        pipe.query_async::<()>(&mut conn).await.map_err(redis_error)
    }

    async fn search(&self, search: &Search) -> Result<Vec<Record>, StoreError> {
        let mut conn = self.conn.connect().await.map_err(redis_error)?;
        let mut found = Vec::new();
        let mut start = 0isize;
        // Newest first, a page at a time; the set is bounded by `trim`.
        while found.len() < search.limit() {
            let page: Vec<String> = self
                .by_rank(&mut conn, "ZREVRANGE", start, start + PAGE - 1)
                .await?;
            let done = page.len() < usize::try_from(PAGE).unwrap_or(0);
            for json in page {
                let Ok(row) = serde_json::from_str::<Record>(&json) else {
                    continue;
                };
                if search
                    .since_ms
                    .is_some_and(|t| row.received_ms < t - 60_000)
                {
                    // Rows arrive in id order within a minute of their time: nothing older follows.
                    return Ok(found);
                }
                if search.matches(&row) {
                    found.push(row);
                    if found.len() == search.limit() {
                        break;
                    }
                }
            }
            if done {
                break;
            }
            start += PAGE;
        }
        Ok(found)
    }

    async fn trim(&self, keep: u64, before_ms: i64) -> Result<(), StoreError> {
        let mut conn = self.conn.connect().await.map_err(redis_error)?;
        let keep = isize::try_from(keep).unwrap_or(isize::MAX);
        let _: i64 = self
            .by_rank(&mut conn, "ZREMRANGEBYRANK", 0, -keep - 1)
            .await?;
        // The age bound: drop from the oldest while the oldest is too old.
        loop {
            let oldest: Vec<String> = self.by_rank(&mut conn, "ZRANGE", 0, 99).await?;
            let old = oldest
                .iter()
                .take_while(|json| {
                    serde_json::from_str::<Record>(json).is_ok_and(|r| r.received_ms < before_ms)
                })
                .count();
            if old == 0 {
                return Ok(());
            }
            let _: i64 = self
                .by_rank(&mut conn, "ZREMRANGEBYRANK", 0, old - 1)
                .await?;
            if old < oldest.len() {
                return Ok(());
            }
        }
    }
}
