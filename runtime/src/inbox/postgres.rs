//! The inbox in `PostgreSQL`: the job table beside the dedupe tables, in the same database, so a
//! claim and its job commit in one transaction; workers of every instance take jobs with
//! `FOR UPDATE SKIP LOCKED`, so each job is taken once. Deliveries that arrive together share
//! that transaction: their claims are pipelined, their jobs inserted by one statement, and one
//! commit makes them all durable before any of them is acknowledged.

use std::time::Duration;

use tokio_postgres::Row;

use super::job::{COLUMNS, HELD_BY_A_JOB, PURGE_FINISHED, purge_before};
use super::{Backlog, Filter, Hold, Job, JobState, NewJob, Queue, Settle};
use crate::dedupe::{
    Admission, Batcher, Claim, ClaimToken, Claims, Lease, POSTGRES_MIGRATIONS, PgResult as _,
    PostgresDb as Db, StoreError, Ttls, admit, millis, now_ms, postgres_keys as keys,
};
use crate::migrate::{Migrations, Step};

/// The inbox's tables, migrated after the dedupe store's (which the inbox admits through).
const MIGRATIONS: Migrations = Migrations {
    part: "inbox",
    steps: &[
        Step::Sql(
            "
CREATE TABLE IF NOT EXISTS replicate_webhook_jobs (
    id BIGSERIAL PRIMARY KEY,
    module TEXT NOT NULL,
    model TEXT NOT NULL,
    prediction_id TEXT NOT NULL,
    status TEXT NOT NULL,
    handler TEXT NOT NULL,
    webhook_id TEXT NOT NULL,
    uri TEXT NOT NULL,
    headers TEXT NOT NULL,
    body BYTEA NOT NULL,
    state TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    received_ms BIGINT NOT NULL,
    run_at_ms BIGINT NOT NULL,
    budget_from_ms BIGINT NOT NULL,
    lease TEXT,
    lease_until_ms BIGINT,
    claim TEXT NOT NULL,
    finished_ms BIGINT
);
CREATE INDEX IF NOT EXISTS replicate_webhook_jobs_ready ON replicate_webhook_jobs (module, state, run_at_ms);
CREATE INDEX IF NOT EXISTS replicate_webhook_jobs_prediction ON replicate_webhook_jobs (prediction_id, id);
",
        ),
        Step::Sql(
            "
CREATE INDEX IF NOT EXISTS replicate_webhook_jobs_claim ON replicate_webhook_jobs (claim);
",
        ),
    ],
};

/// The database's clock, so instances with skewed clocks agree on what is due.
const NOW_MS: &str = "(extract(epoch FROM now()) * 1000)::bigint";

pub(crate) struct PostgresQueue {
    db: Db,
    intake: Batcher<Arrival, Admission>,
}

/// A delivery to admit and store, with the token its job holds its keys under.
struct Arrival {
    job: NewJob,
    token: ClaimToken,
    headers: String,
    webhook_ttl: Duration,
}

/// Intake transactions in flight at once, each on its own connection.
const PARALLEL: usize = 2;

/// The most deliveries one intake transaction stores.
const MAX_BATCH: usize = 256;

impl PostgresQueue {
    pub(crate) fn new(url: &str) -> Result<Self, StoreError> {
        // The dedupe tables first: the inbox admits through them.
        let db = Db::new(
            url,
            Db::POOL_SIZE,
            &[&POSTGRES_MIGRATIONS, &MIGRATIONS],
            "postgres inbox",
        )?;
        let intake_db = db.clone();
        let intake = Batcher::new(PARALLEL, MAX_BATCH, move |arrivals: Vec<Arrival>| {
            let db = intake_db.clone();
            async move {
                let client = db.client().await?;
                let result = enqueue_many(&client, &arrivals).await;
                if result.is_err() {
                    let _ = client.batch_execute("ROLLBACK").await;
                }
                result
            }
        });
        Ok(Self { db, intake })
    }
}

fn job_from_row(row: &Row) -> Job {
    let headers: String = row.get(8);
    let state: String = row.get(10);
    Job {
        id: row.get(0),
        module: row.get(1),
        model: row.get(2),
        prediction_id: row.get(3),
        status: row.get(4),
        handler: row.get(5),
        webhook_id: row.get(6),
        uri: row.get(7),
        headers: serde_json::from_str(&headers).unwrap_or_default(),
        body: row.get(9),
        state: JobState::parse(&state).unwrap_or(JobState::Dead),
        attempts: u32::try_from(row.get::<_, i32>(11)).unwrap_or(0),
        last_error: row.get(12),
        received_ms: row.get(13),
        run_at_ms: row.get(14),
        claim: row.get(15),
        budget_from_ms: row.get(16),
    }
}

/// Admission's key primitives inside the transaction that stores a job. The job holds its keys
/// under its own token until its handler is done; a key that another stored job holds counts as
/// done, since that job will run the handler.
struct JobClaims<'a> {
    client: &'a deadpool_postgres::Object,
    token: &'a ClaimToken,
}

impl Claims for JobClaims<'_> {
    fn in_transaction(&self) -> bool {
        true
    }

    async fn claim(&self, key: &str, lease: Duration) -> Result<Claim, StoreError> {
        let claim = keys::claim_one(self.client, key, self.token, millis(lease))
            .await
            .pg()?;
        if !matches!(claim, Claim::InFlight { .. }) {
            return Ok(claim);
        }
        let stored = self.client.query_opt(HELD_BY_A_JOB, &[&key]).await.pg()?;
        Ok(if stored.is_some() { Claim::Done } else { claim })
    }

    async fn complete(
        &self,
        key: &str,
        token: &ClaimToken,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        keys::complete_one(self.client, key, token, millis(ttl))
            .await
            .pg()
    }

    async fn release(&self, key: &str, token: &ClaimToken) -> Result<(), StoreError> {
        keys::release_one(self.client, key, token).await.pg()
    }

    async fn is_done(&self, key: &str) -> Result<bool, StoreError> {
        keys::is_done_one(self.client, key).await.pg()
    }
}

/// Marks a handled (or discarded) job's key done.
async fn complete_key(
    tx: &deadpool_postgres::Transaction<'_>,
    lease: &Lease,
    ttls: Ttls,
) -> Result<(), StoreError> {
    let (key, token, ttl) = lease.held(ttls);
    keys::complete_one(tx, key, token, millis(ttl)).await.pg()
}

type Param<'a> = dyn tokio_postgres::types::ToSql + Sync + 'a;

/// Jobs of one prediction get ids in the order their transactions commit, so "earlier id" is
/// "arrived earlier" for the ordering rule: an advisory lock per prediction serialises them.
/// Taken in one order (sorted), so two transactions that share predictions never deadlock.
const LOCK_PREDICTIONS: &str = "
SELECT count(pg_advisory_xact_lock(h)) FROM (
    SELECT DISTINCT hashtextextended(p, 0) AS h FROM unnest($1::text[]) AS p ORDER BY 1
) AS locks";

/// Inserts the jobs of the admitted deliveries by one statement (`insert`, prepared before the
/// transaction began: a statement prepared now would be sent after the `COMMIT` pipelined
/// behind it), in arrival order; each row is a job's id and its claim token.
async fn insert_jobs(
    client: &deadpool_postgres::Object,
    insert: &tokio_postgres::Statement,
    stored: &[&Arrival],
) -> Result<Vec<Row>, tokio_postgres::Error> {
    let column = |f: fn(&Arrival) -> &str| stored.iter().map(|&a| f(a)).collect::<Vec<&str>>();
    let bodies: Vec<&[u8]> = stored.iter().map(|a| a.job.body.as_slice()).collect();
    let insert_params: [&Param<'_>; 10] = [
        &column(|a| &a.job.module),
        &column(|a| &a.job.model),
        &column(|a| &a.job.prediction_id),
        &column(|a| &a.job.status),
        &column(|a| a.job.handler.fn_name()),
        &column(|a| &a.job.webhook_id),
        &column(|a| &a.job.uri),
        &column(|a| &a.headers),
        &bodies,
        &column(|a| a.token.as_str()),
    ];
    client.query(insert, &insert_params).await
}

/// The jobs of admitted deliveries, in arrival order.
const INSERT_JOBS: &str = "INSERT INTO replicate_webhook_jobs (module, model, prediction_id, status, handler, \
     webhook_id, uri, headers, body, state, received_ms, run_at_ms, budget_from_ms, claim) \
     SELECT module, model, prediction_id, status, handler, webhook_id, uri, headers, body, \
            'pending', now_ms, now_ms, now_ms, claim \
     FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], \
                 $7::text[], $8::text[], $9::bytea[], $10::text[]) WITH ORDINALITY \
          AS j(module, model, prediction_id, status, handler, webhook_id, uri, headers, \
               body, claim, n), \
          (SELECT (extract(epoch FROM now()) * 1000)::bigint AS now_ms) AS clock \
     ORDER BY n \
     RETURNING id, claim";

/// Admits each delivery and stores the admitted ones as jobs, all in one transaction: the
/// claims of every delivery pipelined (sent together on the connection, answered in order),
/// the jobs inserted by one statement, one commit. Each answer holds once the commit returned;
/// an error rolls everything back.
async fn enqueue_many(
    client: &deadpool_postgres::Object,
    arrivals: &[Arrival],
) -> Result<Vec<Admission>, StoreError> {
    let insert = client.prepare_cached(INSERT_JOBS).await.pg()?;
    let lock = client.prepare_cached(LOCK_PREDICTIONS).await.pg()?;
    let predictions: Vec<&str> = arrivals
        .iter()
        .map(|a| a.job.prediction_id.as_str())
        .collect();
    let claims: Vec<JobClaims<'_>> = arrivals
        .iter()
        .map(|a| JobClaims {
            client,
            token: &a.token,
        })
        .collect();
    let admits = futures_util::future::join_all(
        arrivals
            .iter()
            .zip(&claims)
            .map(|(a, claims)| admit(claims, &a.job.keys, Duration::MAX, a.webhook_ttl)),
    );
    let lock_params: [&Param<'_>; 1] = [&predictions];
    let (begun, locked, admitted) = tokio::join!(
        client.batch_execute("BEGIN"),
        client.query_one(&lock, &lock_params),
        admits
    );
    begun.pg()?;
    locked.pg()?;
    let admissions = admitted.into_iter().collect::<Result<Vec<_>, _>>()?;
    let stored: Vec<&Arrival> = arrivals
        .iter()
        .zip(&admissions)
        .filter(|(_, admission)| matches!(admission, Admission::Run(_)))
        .map(|(a, _)| a)
        .collect();
    if stored.is_empty() {
        client.batch_execute("COMMIT").await.pg()?;
        return Ok(admissions);
    }
    let (rows, commit) = tokio::join!(
        insert_jobs(client, &insert, &stored),
        client.batch_execute("COMMIT")
    );
    let rows = rows.pg()?;
    commit.pg()?;
    let ids: std::collections::HashMap<String, i64> = rows
        .iter()
        .map(|row| (row.get::<_, String>(1), row.get::<_, i64>(0)))
        .collect();
    arrivals
        .iter()
        .zip(admissions)
        .map(|(a, admission)| match admission {
            Admission::Run(_) => ids
                .get(a.token.as_str())
                .map(|id| Admission::Stored(*id))
                .ok_or_else(|| StoreError::new("postgres inbox: a job was not stored")),
            other => Ok(other),
        })
        .collect()
}

#[async_trait::async_trait]
impl Queue for PostgresQueue {
    async fn enqueue(&self, job: NewJob, webhook_ttl: Duration) -> Result<Admission, StoreError> {
        let headers = job.headers_json()?;
        // Through the batcher, whose task owns the transaction: a caller that gives up (the
        // store timeout) never leaves a connection inside an open transaction. The transaction
        // then still commits or rolls back; a delivery answered 503 but stored is a duplicate
        // when Replicate retries it.
        self.intake
            .call(Arrival {
                job,
                token: ClaimToken::new(),
                headers,
                webhook_ttl,
            })
            .await
    }

    async fn take(&self, module: &str, hold: &Hold, n: usize) -> Result<Vec<Job>, StoreError> {
        let client = self.db.client().await?;
        let statement = client
            .prepare_cached(&format!(
                "WITH next AS (
                     SELECT j.id AS next_id FROM replicate_webhook_jobs j
                     WHERE j.module = $3
                       AND ((j.state = 'pending' AND j.run_at_ms <= {NOW_MS})
                            OR (j.state = 'running' AND j.lease_until_ms <= {NOW_MS}))
                       AND NOT EXISTS (
                           SELECT 1 FROM replicate_webhook_jobs e
                           WHERE e.prediction_id = j.prediction_id AND e.id < j.id
                             AND e.state IN ('pending', 'running'))
                     ORDER BY j.id LIMIT $4
                     FOR UPDATE SKIP LOCKED
                 )
                 UPDATE replicate_webhook_jobs AS u
                 SET state = 'running', lease = $1, lease_until_ms = {NOW_MS} + $2,
                     attempts = u.attempts + 1
                 FROM next WHERE u.id = next.next_id
                 RETURNING {COLUMNS}"
            ))
            .await
            .pg()?;
        let limit = i64::try_from(n).unwrap_or(i64::MAX);
        let visibility = millis(hold.visibility);
        let rows = client
            .query(&statement, &[&hold.token, &visibility, &module, &limit])
            .await
            .pg()?;
        let mut jobs: Vec<Job> = rows.iter().map(job_from_row).collect();
        jobs.sort_by_key(|j| j.id);
        Ok(jobs)
    }

    async fn heartbeat(&self, id: i64, hold: &Hold) -> Result<bool, StoreError> {
        self.db
            .client()
            .await?
            .execute(
                &format!(
                    "UPDATE replicate_webhook_jobs SET lease_until_ms = {NOW_MS} + $3 \
                     WHERE id = $1 AND lease = $2 AND state = 'running'"
                ),
                &[&id, &hold.token, &millis(hold.visibility)],
            )
            .await
            .map(|n| n == 1)
            .pg()
    }

    async fn settle(&self, job: &Job, hold: &Hold, settle: Settle) -> Result<bool, StoreError> {
        let lease = &hold.token;
        let mut client = self.db.client().await?;
        let tx = client.transaction().await.pg()?;
        // The three statements differ only in what they set.
        let (set, params): (String, &[&Param<'_>]) = match &settle {
            Settle::Done(_) => (
                format!("state = 'done', lease = NULL, finished_ms = {NOW_MS}"),
                &[&job.id, lease],
            ),
            Settle::Retry { delay, error } => (
                format!(
                    "state = 'pending', lease = NULL, run_at_ms = {NOW_MS} + $3, last_error = $4"
                ),
                &[&job.id, lease, &millis(*delay), error],
            ),
            Settle::Dead { error } => (
                format!("state = 'dead', lease = NULL, last_error = $3, finished_ms = {NOW_MS}"),
                &[&job.id, lease, error],
            ),
        };
        let statement = format!(
            "UPDATE replicate_webhook_jobs SET {set} WHERE id = $1 AND lease = $2 AND state = 'running'"
        );
        let changed = tx.execute(&statement, params).await.pg()? == 1;
        if let (true, Settle::Done(ttls)) = (changed, &settle) {
            complete_key(&tx, &job.lease(), *ttls).await?;
            if let Some(before) = purge_before(job.id, now_ms()) {
                tx.execute(PURGE_FINISHED, &[&before]).await.pg()?;
            }
        }
        tx.commit().await.pg()?;
        Ok(changed)
    }

    async fn list(&self, filter: &Filter) -> Result<Vec<Job>, StoreError> {
        let state = filter.state.map(JobState::as_str);
        let rows = self
            .db
            .client()
            .await?
            .query(
                &format!(
                    "SELECT {COLUMNS} FROM replicate_webhook_jobs \
                     WHERE ($1::text IS NULL OR state = $1) AND ($2::text IS NULL OR model = $2) \
                       AND ($3::text IS NULL OR prediction_id = $3) \
                     ORDER BY id DESC LIMIT $4"
                ),
                &[
                    &state,
                    &filter.model,
                    &filter.prediction_id,
                    &filter.limit(),
                ],
            )
            .await
            .pg()?;
        Ok(rows.iter().map(job_from_row).collect())
    }

    async fn get(&self, id: i64) -> Result<Option<Job>, StoreError> {
        let row = self
            .db
            .client()
            .await?
            .query_opt(
                &format!("SELECT {COLUMNS} FROM replicate_webhook_jobs WHERE id = $1"),
                &[&id],
            )
            .await
            .pg()?;
        Ok(row.as_ref().map(job_from_row))
    }

    async fn replay(&self, id: Option<i64>) -> Result<u64, StoreError> {
        self.db
            .client()
            .await?
            .execute(
                &format!(
                    "UPDATE replicate_webhook_jobs \
                     SET state = 'pending', attempts = 0, run_at_ms = {NOW_MS}, \
                         budget_from_ms = {NOW_MS}, finished_ms = NULL \
                     WHERE state = 'dead' AND ($1::bigint IS NULL OR id = $1)"
                ),
                &[&id],
            )
            .await
            .pg()
    }

    async fn discard(&self, id: i64, ttls: Ttls) -> Result<bool, StoreError> {
        let Some(job) = self.get(id).await? else {
            return Ok(false);
        };
        let mut client = self.db.client().await?;
        let tx = client.transaction().await.pg()?;
        let changed = tx
            .execute(
                &format!(
                    "UPDATE replicate_webhook_jobs SET state = 'discarded', lease = NULL, \
                     finished_ms = {NOW_MS} WHERE id = $1 AND state IN ('pending', 'dead')"
                ),
                &[&id],
            )
            .await
            .pg()?
            == 1;
        if changed {
            complete_key(&tx, &job.lease(), ttls).await?;
        }
        tx.commit().await.pg()?;
        Ok(changed)
    }

    async fn backlog(&self) -> Result<Backlog, StoreError> {
        let rows = self
            .db
            .client()
            .await?
            .query(
                &format!(
                    "SELECT state, count(*), coalesce(sum(attempts), 0)::bigint, min(received_ms), {NOW_MS} \
                     FROM replicate_webhook_jobs WHERE state IN ('pending', 'running', 'dead') \
                     GROUP BY state"
                ),
                &[],
            )
            .await
            .pg()?;
        let mut backlog = Backlog::default();
        for row in &rows {
            let state: String = row.get(0);
            super::metrics::add(
                &mut backlog,
                &state,
                row.get(1),
                row.get(2),
                row.get(3),
                row.get(4),
            );
        }
        Ok(backlog)
    }
}
