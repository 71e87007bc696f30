//! The inbox in `SQLite`: the job table beside the dedupe tables, in the same file, so a claim
//! and its job commit together, in the group commit that the file's writer thread makes of what
//! concurrent deliveries ask for.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension as _, Row, params};

use super::job::{COLUMNS, HELD_BY_A_JOB, PURGE_FINISHED, purge_before};
use super::{Backlog, Filter, Hold, Job, JobState, NewJob, Queue, Settle};
use crate::dedupe::{
    Admission, Claim, ClaimToken, Claims, Lease, SQLITE_MIGRATIONS, SqliteFile, StoreError, Ttls,
    admit, millis, now_ms, sqlite_keys as keys,
};
use crate::migrate::{Migrations, Step};

const MIGRATIONS: Migrations = Migrations {
    part: "inbox",
    steps: &[Step::Sql(SCHEMA)],
};

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
CREATE INDEX IF NOT EXISTS replicate_webhook_jobs_claim ON replicate_webhook_jobs (claim);
";

/// Stores an admitted delivery as a pending job; answers its id.
const INSERT_JOB: &str = "
INSERT INTO replicate_webhook_jobs (module, model, prediction_id, status, handler, webhook_id,
    uri, headers, body, state, received_ms, run_at_ms, budget_from_ms, claim)
VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, 'pending', ?10, ?10, ?10, ?11)
RETURNING id";

/// Takes up to `?5` jobs of module `?3` that may run at `?4`, none of a prediction that has an
/// earlier job pending or running, under hold `?1` until `?2`.
const TAKE: &str = "
UPDATE replicate_webhook_jobs
SET state = 'running', lease = ?1, lease_until_ms = ?2, attempts = attempts + 1
WHERE id IN (
    SELECT j.id FROM replicate_webhook_jobs j
    WHERE j.module = ?3
      AND ((j.state = 'pending' AND j.run_at_ms <= ?4)
           OR (j.state = 'running' AND j.lease_until_ms <= ?4))
      AND NOT EXISTS (
          SELECT 1 FROM replicate_webhook_jobs e
          WHERE e.prediction_id = j.prediction_id AND e.id < j.id
            AND e.state IN ('pending', 'running'))
    ORDER BY j.id LIMIT ?5)";

pub(crate) struct SqliteQueue {
    file: Arc<SqliteFile>,
}

/// How the inbox's errors begin.
const NAME: &str = "sqlite inbox";

#[allow(clippy::needless_pass_by_value)] // used as `map_err(db_error)`
fn db_error(e: rusqlite::Error) -> StoreError {
    StoreError::new(format_args!("{NAME}: {e}"))
}

impl SqliteQueue {
    pub(crate) fn open(path: &Path) -> Result<Self, StoreError> {
        // The dedupe tables first: the inbox admits through them.
        Ok(Self {
            file: SqliteFile::open(path, &[&SQLITE_MIGRATIONS, &MIGRATIONS], NAME)?,
        })
    }
}

/// Admission's key primitives inside the transaction that stores a job. The job holds its keys
/// under its own token until its handler is done; a key that another stored job holds counts as
/// done, since that job will run the handler.
struct JobClaims<'a> {
    conn: &'a Connection,
    token: &'a ClaimToken,
    now: i64,
}

impl Claims for JobClaims<'_> {
    fn in_transaction(&self) -> bool {
        true
    }

    async fn claim(&self, key: &str, lease: Duration) -> Result<Claim, StoreError> {
        let claim =
            keys::claim(self.conn, key, self.token, millis(lease), self.now).map_err(db_error)?;
        if !matches!(claim, Claim::InFlight { .. }) {
            return Ok(claim);
        }
        let stored = self
            .conn
            .prepare_cached(HELD_BY_A_JOB)
            .and_then(|mut s| s.query_row(params![key], |_| Ok(())).optional())
            .map_err(db_error)?;
        Ok(if stored.is_some() { Claim::Done } else { claim })
    }

    async fn complete(
        &self,
        key: &str,
        token: &ClaimToken,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        keys::complete(self.conn, key, token, self.now.saturating_add(millis(ttl)))
            .map_err(db_error)
    }

    async fn release(&self, key: &str, token: &ClaimToken) -> Result<(), StoreError> {
        keys::release(self.conn, key, token).map_err(db_error)
    }

    async fn is_done(&self, key: &str) -> Result<bool, StoreError> {
        keys::is_done(self.conn, key, self.now).map_err(db_error)
    }
}

/// Marks a handled (or discarded) job's key done.
fn complete_key(conn: &Connection, lease: &Lease, now: i64, ttls: Ttls) -> rusqlite::Result<()> {
    let (key, token, ttl) = lease.held(ttls);
    keys::complete(conn, key, token, now.saturating_add(millis(ttl)))
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
    async fn enqueue(&self, job: NewJob, webhook_ttl: Duration) -> Result<Admission, StoreError> {
        let (token, headers) = (ClaimToken::new(), job.headers_json()?);
        // The primitives never wait, so the protocol runs to its end at once on the writer
        // thread: `block_on` only drives it there.
        let runtime = tokio::runtime::Handle::current();
        let admit_and_insert = move |conn: &Connection| {
            let now = now_ms();
            let claims = JobClaims {
                conn,
                token: &token,
                now,
            };
            // Admit inside this transaction, then insert the job; an error (admission's too)
            // rolls back what either wrote.
            let admission =
                runtime.block_on(admit(&claims, &job.keys, Duration::MAX, webhook_ttl))?;
            if !matches!(admission, Admission::Run(_)) {
                return Ok(admission);
            }
            let row = params![
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
                token.as_str()
            ];
            conn.query_row(INSERT_JOB, row, |row| row.get(0).map(Admission::Stored))
                .map_err(db_error)
        };
        self.file.write_or(NAME, admit_and_insert).await
    }

    async fn take(&self, module: &str, hold: &Hold, n: usize) -> Result<Vec<Job>, StoreError> {
        let (module, Hold { token, visibility }) = (module.to_owned(), hold.clone());
        let limit = i64::try_from(n).unwrap_or(i64::MAX);
        let take = move |conn: &Connection| {
            let now = now_ms();
            let until = now.saturating_add(millis(visibility));
            let mut jobs = conn
                .prepare_cached(&format!("{TAKE} RETURNING {COLUMNS}"))?
                .query_map(params![token, until, module, now, limit], job_from_row)?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            // RETURNING promises no order; a prediction's jobs must start in arrival order.
            jobs.sort_by_key(|j| j.id);
            Ok(jobs)
        };
        self.file.write(NAME, take).await
    }

    async fn heartbeat(&self, id: i64, hold: &Hold) -> Result<bool, StoreError> {
        let Hold { token, visibility } = hold.clone();
        self.file
            .write(NAME, move |conn| {
                conn.execute(
                    "UPDATE replicate_webhook_jobs SET lease_until_ms = ?3 \
                 WHERE id = ?1 AND lease = ?2 AND state = 'running'",
                    params![id, token, now_ms().saturating_add(millis(visibility))],
                )
                .map(|n| n == 1)
            })
            .await
    }

    async fn settle(&self, job: &Job, hold: &Hold, settle: Settle) -> Result<bool, StoreError> {
        let (id, lease, claims) = (job.id, hold.token.clone(), job.lease());
        self.file.write(NAME, move |conn| {
            let now = now_ms();
            let changed = match &settle {
                Settle::Done(_) => conn.execute(
                    "UPDATE replicate_webhook_jobs SET state = 'done', lease = NULL, finished_ms = ?3 \
                     WHERE id = ?1 AND lease = ?2 AND state = 'running'",
                    params![id, lease, now],
                )?,
                Settle::Retry { delay, error } => conn.execute(
                    "UPDATE replicate_webhook_jobs \
                     SET state = 'pending', lease = NULL, run_at_ms = ?3, last_error = ?4 \
                     WHERE id = ?1 AND lease = ?2 AND state = 'running'",
                    params![id, lease, now.saturating_add(millis(*delay)), error],
                )?,
                Settle::Dead { error } => conn.execute(
                    "UPDATE replicate_webhook_jobs \
                     SET state = 'dead', lease = NULL, last_error = ?3, finished_ms = ?4 \
                     WHERE id = ?1 AND lease = ?2 AND state = 'running'",
                    params![id, lease, error, now],
                )?,
            } == 1;
            if let (true, Settle::Done(ttls)) = (changed, &settle) {
                complete_key(conn, &claims, now, *ttls)?;
                if let Some(before) = purge_before(id, now) {
                    conn.execute(PURGE_FINISHED, params![before])?;
                }
            }
            Ok(changed)
        })
        .await
    }

    async fn list(&self, filter: &Filter) -> Result<Vec<Job>, StoreError> {
        let (state, filter) = (filter.state.map(JobState::as_str), filter.clone());
        self.file
            .read(NAME, move |conn| {
                let mut statement = conn.prepare_cached(&format!(
                    "SELECT {COLUMNS} FROM replicate_webhook_jobs \
                 WHERE (?1 IS NULL OR state = ?1) AND (?2 IS NULL OR model = ?2) \
                   AND (?3 IS NULL OR prediction_id = ?3) \
                 ORDER BY id DESC LIMIT ?4"
                ))?;
                statement
                    .query_map(
                        params![state, filter.model, filter.prediction_id, filter.limit()],
                        job_from_row,
                    )?
                    .collect()
            })
            .await
    }

    async fn get(&self, id: i64) -> Result<Option<Job>, StoreError> {
        self.file
            .read(NAME, move |conn| {
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
        self.file
            .write(NAME, move |conn| {
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
        let claims = job.lease();
        self.file.write(NAME, move |conn| {
            let now = now_ms();
            let changed = conn.execute(
                "UPDATE replicate_webhook_jobs SET state = 'discarded', lease = NULL, finished_ms = ?2 \
                 WHERE id = ?1 AND state IN ('pending', 'dead')",
                params![id, now],
            )? == 1;
            if changed {
                complete_key(conn, &claims, now, ttls)?;
            }
            Ok(changed)
        })
        .await
    }

    async fn backlog(&self) -> Result<Backlog, StoreError> {
        self.file
            .read(NAME, move |conn| {
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
