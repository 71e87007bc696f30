//! The inbox in `SQLite`: the job table beside the dedupe tables, in the same file, so a claim
//! and its job commit in one `BEGIN IMMEDIATE` transaction.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension as _, Row, Transaction, params};

use super::job::{COLUMNS, KEEP_FINISHED_MS};
use super::{
    Backlog, Enqueued, Filter, Job, JobState, Keys, Lease, NewJob, Queue, Settle, Ttls, now_ms,
};
use crate::dedupe::{StoreError, sqlite_blocking};

/// Jobs, one row each; `claim` is the token its dedupe keys are held with.
const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS replicate_webhook_jobs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    module TEXT NOT NULL,
    model TEXT NOT NULL,
    prediction_id TEXT NOT NULL,
    status TEXT NOT NULL,
    handler TEXT NOT NULL,
    webhook_id TEXT NOT NULL,
    uri TEXT NOT NULL,
    headers TEXT NOT NULL,
    body BLOB NOT NULL,
    state TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    received_ms INTEGER NOT NULL,
    run_at_ms INTEGER NOT NULL,
    budget_from_ms INTEGER NOT NULL,
    lease TEXT,
    lease_until_ms INTEGER,
    claim TEXT NOT NULL,
    finished_ms INTEGER
);
CREATE INDEX IF NOT EXISTS replicate_webhook_jobs_ready ON replicate_webhook_jobs (module, state, run_at_ms);
CREATE INDEX IF NOT EXISTS replicate_webhook_jobs_prediction ON replicate_webhook_jobs (prediction_id, id);
";

pub(crate) struct SqliteQueue {
    conn: Arc<Mutex<Connection>>,
}

#[allow(clippy::needless_pass_by_value)] // used as `map_err(db_error)`
fn db_error(e: rusqlite::Error) -> StoreError {
    StoreError::new(format_args!("sqlite inbox: {e}"))
}

fn ms(duration: Duration) -> i64 {
    crate::dedupe::millis(duration)
}

impl SqliteQueue {
    pub(crate) fn open(path: &Path) -> Result<Self, StoreError> {
        let conn = crate::dedupe::sqlite_open(path)?;
        crate::dedupe::sqlite_prepare(&conn).map_err(db_error)?;
        conn.execute_batch(SCHEMA).map_err(db_error)?;
        Ok(Self {
            conn: Arc::new(Mutex::new(conn)),
        })
    }
}

/// What holds a dedupe key.
enum Holder {
    /// We just claimed it.
    Won,
    /// Done: handled before.
    Done,
    /// Held by a stored job.
    Queued,
    /// Held by an inline handler, for this long still.
    InFlight(Duration),
}

fn claim_key(tx: &Transaction<'_>, key: &str, claim: &str, now: i64) -> rusqlite::Result<Holder> {
    let won = tx
        .query_row(
            "INSERT INTO replicate_webhook_keys (key, token, expires_ms) VALUES (?1, ?2, ?3) \
             ON CONFLICT (key) DO UPDATE SET token = excluded.token, expires_ms = excluded.expires_ms \
             WHERE replicate_webhook_keys.expires_ms <= ?4 RETURNING 1",
            params![key, claim, now.saturating_add(ms(Duration::MAX)), now],
            |_| Ok(()),
        )
        .optional()?
        .is_some();
    if won {
        return Ok(Holder::Won);
    }
    let (token, expires): (Option<String>, i64) = tx.query_row(
        "SELECT token, expires_ms FROM replicate_webhook_keys WHERE key = ?1",
        params![key],
        |row| Ok((row.get(0)?, row.get(1)?)),
    )?;
    Ok(match token {
        None => Holder::Done,
        Some(t) if t.starts_with(super::intake::CLAIM_PREFIX) => Holder::Queued,
        Some(_) => Holder::InFlight(Duration::from_millis(
            u64::try_from(expires - now).unwrap_or(0),
        )),
    })
}

fn complete_key(
    tx: &Transaction<'_>,
    key: &str,
    claim: &str,
    expires: i64,
) -> rusqlite::Result<()> {
    tx.execute(
        "UPDATE replicate_webhook_keys SET token = NULL, expires_ms = ?3 WHERE key = ?1 AND token = ?2",
        params![key, claim, expires],
    )
    .map(drop)
}

fn mark_done(tx: &Transaction<'_>, key: &str, expires: i64) -> rusqlite::Result<()> {
    tx.execute(
        "INSERT INTO replicate_webhook_keys (key, token, expires_ms) VALUES (?1, NULL, ?2) \
         ON CONFLICT (key) DO UPDATE SET token = NULL, expires_ms = excluded.expires_ms",
        params![key, expires],
    )
    .map(drop)
}

/// Marks a job's keys done: the webhook id, and for a terminal event its status and the end
/// of the prediction.
fn settle_keys(
    tx: &Transaction<'_>,
    keys: &Keys,
    claim: &str,
    now: i64,
    ttls: Ttls,
) -> rusqlite::Result<()> {
    let terminal_until = now.saturating_add(ms(ttls.terminal_ttl));
    if let Some((status_key, finished)) = &keys.terminal {
        complete_key(tx, status_key, claim, terminal_until)?;
        mark_done(tx, finished, terminal_until)?;
    }
    complete_key(
        tx,
        &keys.webhook,
        claim,
        now.saturating_add(ms(ttls.webhook_ttl)),
    )
}

fn job_from_row(row: &Row<'_>) -> rusqlite::Result<Job> {
    let headers: String = row.get(8)?;
    let state: String = row.get(10)?;
    Ok(Job {
        id: row.get(0)?,
        module: row.get(1)?,
        model: row.get(2)?,
        prediction_id: row.get(3)?,
        status: row.get(4)?,
        handler: row.get(5)?,
        webhook_id: row.get(6)?,
        uri: row.get(7)?,
        // Written by this crate as JSON; a row edited by hand into nonsense loses its headers
        // rather than stopping the worker.
        headers: serde_json::from_str(&headers).unwrap_or_default(),
        body: row.get(9)?,
        state: JobState::parse(&state).unwrap_or(JobState::Dead),
        attempts: row.get(11)?,
        last_error: row.get(12)?,
        received_ms: row.get(13)?,
        run_at_ms: row.get(14)?,
        claim: row.get(15)?,
        budget_from_ms: row.get(16)?,
    })
}

#[async_trait::async_trait]
impl Queue for SqliteQueue {
    async fn enqueue(&self, job: NewJob, webhook_ttl: Duration) -> Result<Enqueued, StoreError> {
        let (claim, headers) = (super::intake::new_claim(), job.headers_json()?);
        sqlite_blocking(&self.conn, db_error, move |conn| {
            let keys = &job.keys;
            let now = now_ms();
            let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            match claim_key(&tx, &keys.webhook, &claim, now)? {
                Holder::Won => {}
                Holder::Done | Holder::Queued => return Ok(Enqueued::Duplicate),
                Holder::InFlight(left) => return Ok(Enqueued::InFlight(left)),
            }
            let webhook_until = now.saturating_add(ms(webhook_ttl));
            if let Some((status_key, _)) = &keys.terminal {
                match claim_key(&tx, status_key, &claim, now)? {
                    Holder::Won => {}
                    Holder::Done | Holder::Queued => {
                        complete_key(&tx, &keys.webhook, &claim, webhook_until)?;
                        tx.commit()?;
                        return Ok(Enqueued::AlreadyHandled);
                    }
                    // Dropping the transaction rolls the webhook claim back.
                    Holder::InFlight(left) => return Ok(Enqueued::InFlight(left)),
                }
            } else {
                let finished = tx
                    .query_row(
                        "SELECT 1 FROM replicate_webhook_keys \
                         WHERE key = ?1 AND token IS NULL AND expires_ms > ?2",
                        params![keys.finished, now],
                        |_| Ok(()),
                    )
                    .optional()?
                    .is_some();
                if finished {
                    complete_key(&tx, &keys.webhook, &claim, webhook_until)?;
                    tx.commit()?;
                    return Ok(Enqueued::Stale);
                }
            }
            let id = tx.query_row(
                "INSERT INTO replicate_webhook_jobs (module, model, prediction_id, status, handler, \
                 webhook_id, uri, headers, body, state, received_ms, run_at_ms, budget_from_ms, claim) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, 'pending', ?10, ?10, ?10, ?11) RETURNING id",
                params![
                    job.module,
                    job.model,
                    job.prediction_id,
                    job.status,
                    job.handler.fn_name(),
                    job.webhook_id,
                    job.uri,
                    headers,
                    job.body,
                    now,
                    claim
                ],
                |row| row.get(0),
            )?;
            tx.commit()?;
            Ok(Enqueued::Stored(id))
        })
        .await
    }

    async fn take(&self, module: &str, lease: &Lease, n: usize) -> Result<Vec<Job>, StoreError> {
        let (module, Lease { token, visibility }) = (module.to_owned(), lease.clone());
        let limit = i64::try_from(n).unwrap_or(i64::MAX);
        sqlite_blocking(&self.conn, db_error, move |conn| {
            let now = now_ms();
            let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let jobs = {
                let mut statement = tx.prepare_cached(&format!(
                    "UPDATE replicate_webhook_jobs \
                     SET state = 'running', lease = ?1, lease_until_ms = ?2, attempts = attempts + 1 \
                     WHERE id IN ( \
                         SELECT j.id FROM replicate_webhook_jobs j \
                         WHERE j.module = ?3 \
                           AND ((j.state = 'pending' AND j.run_at_ms <= ?4) \
                                OR (j.state = 'running' AND j.lease_until_ms <= ?4)) \
                           AND NOT EXISTS ( \
                               SELECT 1 FROM replicate_webhook_jobs e \
                               WHERE e.prediction_id = j.prediction_id AND e.id < j.id \
                                 AND e.state IN ('pending', 'running')) \
                         ORDER BY j.id LIMIT ?5) \
                     RETURNING {COLUMNS}"
                ))?;
                statement
                    .query_map(
                        params![token, now.saturating_add(ms(visibility)), module, now, limit],
                        job_from_row,
                    )?
                    .collect::<rusqlite::Result<Vec<_>>>()?
            };
            tx.commit()?;
            // RETURNING promises no order; a prediction's jobs must start in arrival order.
            let mut jobs = jobs;
            jobs.sort_by_key(|j| j.id);
            Ok(jobs)
        })
        .await
    }

    async fn heartbeat(&self, id: i64, lease: &Lease) -> Result<bool, StoreError> {
        let Lease { token, visibility } = lease.clone();
        sqlite_blocking(&self.conn, db_error, move |conn| {
            conn.execute(
                "UPDATE replicate_webhook_jobs SET lease_until_ms = ?3 \
                 WHERE id = ?1 AND lease = ?2 AND state = 'running'",
                params![id, token, now_ms().saturating_add(ms(visibility))],
            )
            .map(|n| n == 1)
        })
        .await
    }

    async fn settle(&self, job: &Job, lease: &Lease, settle: Settle) -> Result<bool, StoreError> {
        let (id, lease, claim, keys) = (job.id, lease.token.clone(), job.claim.clone(), job.keys());
        sqlite_blocking(&self.conn, db_error, move |conn| {
            let now = now_ms();
            let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let changed = match &settle {
                Settle::Done(ttls) => tx.execute(
                    "UPDATE replicate_webhook_jobs SET state = 'done', lease = NULL, finished_ms = ?3 \
                     WHERE id = ?1 AND lease = ?2 AND state = 'running'",
                    params![id, lease, now],
                )? == 1
                    && {
                        settle_keys(&tx, &keys, &claim, now, *ttls)?;
                        true
                    },
                Settle::Retry { delay, error } => tx.execute(
                    "UPDATE replicate_webhook_jobs \
                     SET state = 'pending', lease = NULL, run_at_ms = ?3, last_error = ?4 \
                     WHERE id = ?1 AND lease = ?2 AND state = 'running'",
                    params![id, lease, now.saturating_add(ms(*delay)), error],
                )? == 1,
                Settle::Dead { error } => tx.execute(
                    "UPDATE replicate_webhook_jobs \
                     SET state = 'dead', lease = NULL, last_error = ?3, finished_ms = ?4 \
                     WHERE id = ?1 AND lease = ?2 AND state = 'running'",
                    params![id, lease, error, now],
                )? == 1,
            };
            if changed && matches!(settle, Settle::Done { .. }) && id % 256 == 0 {
                tx.execute(
                    "DELETE FROM replicate_webhook_jobs WHERE id IN (SELECT id FROM replicate_webhook_jobs \
                     WHERE state IN ('done', 'discarded') AND finished_ms < ?1 LIMIT 1000)",
                    params![now - KEEP_FINISHED_MS],
                )?;
            }
            tx.commit()?;
            Ok(changed)
        })
        .await
    }

    async fn list(&self, filter: &Filter) -> Result<Vec<Job>, StoreError> {
        let state = filter.state.map(JobState::as_str);
        let (model, prediction, limit) = (
            filter.model.clone(),
            filter.prediction_id.clone(),
            filter.limit(),
        );
        sqlite_blocking(&self.conn, db_error, move |conn| {
            let mut statement = conn.prepare_cached(&format!(
                "SELECT {COLUMNS} FROM replicate_webhook_jobs \
                 WHERE (?1 IS NULL OR state = ?1) AND (?2 IS NULL OR model = ?2) \
                   AND (?3 IS NULL OR prediction_id = ?3) \
                 ORDER BY id DESC LIMIT ?4"
            ))?;
            statement
                .query_map(params![state, model, prediction, limit], job_from_row)?
                .collect()
        })
        .await
    }

    async fn get(&self, id: i64) -> Result<Option<Job>, StoreError> {
        sqlite_blocking(&self.conn, db_error, move |conn| {
            conn.query_row(
                &format!("SELECT {COLUMNS} FROM replicate_webhook_jobs WHERE id = ?1"),
                params![id],
                job_from_row,
            )
            .optional()
        })
        .await
    }

    async fn replay(&self, id: Option<i64>) -> Result<u64, StoreError> {
        sqlite_blocking(&self.conn, db_error, move |conn| {
            let now = now_ms();
            conn.execute(
                "UPDATE replicate_webhook_jobs \
                 SET state = 'pending', attempts = 0, run_at_ms = ?1, budget_from_ms = ?1, \
                     finished_ms = NULL \
                 WHERE state = 'dead' AND (?2 IS NULL OR id = ?2)",
                params![now, id],
            )
            .map(|n| n as u64)
        })
        .await
    }

    async fn discard(&self, id: i64, ttls: Ttls) -> Result<bool, StoreError> {
        let Some(job) = self.get(id).await? else {
            return Ok(false);
        };
        let (claim, keys) = (job.claim.clone(), job.keys());
        sqlite_blocking(&self.conn, db_error, move |conn| {
            let now = now_ms();
            let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let changed = tx.execute(
                "UPDATE replicate_webhook_jobs SET state = 'discarded', lease = NULL, finished_ms = ?2 \
                 WHERE id = ?1 AND state IN ('pending', 'dead')",
                params![id, now],
            )? == 1;
            if changed {
                settle_keys(&tx, &keys, &claim, now, ttls)?;
            }
            tx.commit()?;
            Ok(changed)
        })
        .await
    }

    async fn backlog(&self) -> Result<Backlog, StoreError> {
        sqlite_blocking(&self.conn, db_error, move |conn| {
            let now = now_ms();
            let mut backlog = Backlog::default();
            let mut statement = conn.prepare_cached(
                "SELECT state, count(*), coalesce(sum(attempts), 0), min(received_ms) \
                 FROM replicate_webhook_jobs WHERE state IN ('pending', 'running', 'dead') \
                 GROUP BY state",
            )?;
            let rows = statement.query_map([], |row| {
                Ok((
                    row.get::<_, String>(0)?,
                    row.get::<_, i64>(1)?,
                    row.get::<_, i64>(2)?,
                    row.get::<_, Option<i64>>(3)?,
                ))
            })?;
            for row in rows {
                let (state, count, attempts, oldest) = row?;
                super::metrics::add(&mut backlog, &state, count, attempts, oldest, now);
            }
            Ok(backlog)
        })
        .await
    }
}
