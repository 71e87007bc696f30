//! Inbox mode: acknowledge a delivery once it is stored, run its handler in a worker.
//!
//! A verified, deduplicated delivery is written as a job in the same transaction that claims its
//! dedupe keys (`webhook-id`, and `(prediction, status)` for terminal events, in the very tables
//! [`crate::dedupe::SqliteStore`] and [`crate::dedupe::PostgresStore`] use), and only then
//! answered 200. Workers take jobs with a visibility timeout that heartbeats extend, run the
//! handler with the same typed dispatch and `web::Data` as the inline path, retry with
//! exponential backoff and jitter, and move a job that keeps failing to `dead`, where
//! `replicate-webhook inbox replay` picks it up again. When the handler is done, the job's dedupe
//! keys are marked done in the same transaction, so a later delivery of the same webhook or
//! status is a duplicate.
//!
//! | engine | feature | URL (`REPLICATE_WEBHOOK_INBOX`) | for |
//! |---|---|---|---|
//! | `SQLite` | `sqlite` | `sqlite://PATH` | one machine |
//! | `PostgreSQL` | `postgres` | `postgres://USER:PASSWORD@HOST/DB` | several instances (`FOR UPDATE SKIP LOCKED`) |
//!
//! Why a queue of our own on the drivers the dedupe stores use, not apalis or pgmq: the job
//! must commit in the transaction that claims its dedupe keys, so it must go through the same
//! connection. `apalis-sql` 0.7.4 brings sqlx 0.8 (208 crates with both engines), whose
//! `libsqlite3-sys` 0.30 cannot even be resolved beside rusqlite 0.43 (`links = "sqlite3"`),
//! and it pairs with `apalis-core` 0.7 while `apalis` is at 1.0; neither it nor pgmq (a
//! PostgreSQL extension that Debian does not package, and no `SQLite`) orders jobs per key.

mod intake;
mod job;
mod limit;
mod metrics;
#[cfg(feature = "postgres")]
mod postgres;
mod request;
#[cfg(feature = "sqlite")]
mod sqlite;
mod worker;

use std::sync::Arc;
use std::time::Duration;

pub use crate::backoff::Backoff;
pub use job::{Backlog, Filter, Job, JobState};
pub use worker::{Worker, WorkerHandle};

pub(crate) use intake::Intake;
pub(crate) use job::{Hold, NewJob, Settle, module_key};
pub(crate) use limit::BacklogLimit;

use crate::dedupe::{Admission, Policy, StoreError, StoreUrl, StoreUrlError, Ttls};

/// The environment variable that turns inbox mode on for every module: `sqlite://PATH` or
/// `postgres://USER:PASSWORD@HOST/DB`.
pub const ENV_INBOX: &str = "REPLICATE_WEBHOOK_INBOX";

/// A durable job queue with the dedupe keys beside it, in one database.
#[async_trait::async_trait]
pub(crate) trait Queue: Send + Sync + 'static {
    /// Admits the delivery inside one transaction, then stores it as a job in the same one:
    /// [`Admission::Stored`], or the refusal admission gave.
    async fn enqueue(&self, job: NewJob, webhook_ttl: Duration) -> Result<Admission, StoreError>;

    /// Takes up to `n` jobs of `module` that may run now, in arrival order, none of a
    /// prediction that has an earlier job pending or running; each under `hold`.
    async fn take(&self, module: &str, hold: &Hold, n: usize) -> Result<Vec<Job>, StoreError>;

    /// Extends a running job's hold; `false` when the hold was lost (taken over).
    async fn heartbeat(&self, id: i64, hold: &Hold) -> Result<bool, StoreError>;

    /// Records what became of a job; `false` when the hold was lost and nothing changed.
    async fn settle(&self, job: &Job, hold: &Hold, settle: Settle) -> Result<bool, StoreError>;

    /// Jobs matching `filter`, newest first.
    async fn list(&self, filter: &Filter) -> Result<Vec<Job>, StoreError>;

    /// One job.
    async fn get(&self, id: i64) -> Result<Option<Job>, StoreError>;

    /// Makes dead jobs pending again with a fresh retry budget: job `id`, or every dead job.
    async fn replay(&self, id: Option<i64>) -> Result<u64, StoreError>;

    /// Drops a pending or dead job and marks its dedupe keys done.
    async fn discard(&self, id: i64, ttls: Ttls) -> Result<bool, StoreError>;

    /// Counts by state and the oldest pending age.
    async fn backlog(&self) -> Result<Backlog, StoreError>;
}

/// An inbox: a job queue in `SQLite` or `PostgreSQL`. Cheap to clone.
#[derive(Clone)]
pub struct Inbox {
    pub(crate) queue: Arc<dyn Queue>,
    name: String,
}

impl std::fmt::Debug for Inbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inbox")
            .field("url", &self.name)
            .finish_non_exhaustive()
    }
}

impl Inbox {
    /// Opens the inbox `url` names (`sqlite://PATH` or `postgres://…`). `PostgreSQL` connects
    /// lazily: a database that is down at start makes deliveries 503 until it is back.
    pub fn open(url: &StoreUrl) -> Result<Self, StoreUrlError> {
        Ok(Self {
            queue: queue(url)?,
            name: url.redacted(),
        })
    }

    /// Parses and opens `text` (see [`Inbox::open`]).
    pub fn open_url(text: &str) -> Result<Self, StoreUrlError> {
        Self::open(&StoreUrl::parse(text)?)
    }

    /// The URL, with its password hidden.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Jobs matching `filter`, newest first.
    pub async fn list(&self, filter: &Filter) -> Result<Vec<Job>, StoreError> {
        self.queue.list(filter).await
    }

    /// One job.
    pub async fn get(&self, id: i64) -> Result<Option<Job>, StoreError> {
        self.queue.get(id).await
    }

    /// Makes dead job `id` (or, with `None`, every dead job) pending again, with its attempts and
    /// retry budget reset. Returns how many jobs it changed.
    pub async fn replay(&self, id: Option<i64>) -> Result<u64, StoreError> {
        self.queue.replay(id).await
    }

    /// Drops a pending or dead job for good; its deliveries stay deduplicated for the default
    /// lives (24 h for the webhook id, 7 days for the status). `false` when there is no such job.
    pub async fn discard(&self, id: i64) -> Result<bool, StoreError> {
        self.queue.discard(id, Ttls::from(&Policy::DEFAULT)).await
    }

    /// How far behind the workers are. [`InboxOptions::metrics_every`] publishes it through the
    /// `metrics` facade too.
    pub async fn backlog(&self) -> Result<Backlog, StoreError> {
        self.queue.backlog().await
    }
}

/// The queue `url` names, in an engine this build has.
fn queue(url: &StoreUrl) -> Result<Arc<dyn Queue>, StoreUrlError> {
    match url {
        #[cfg(feature = "sqlite")]
        StoreUrl::Sqlite(path) => Ok(Arc::new(
            sqlite::SqliteQueue::open(path).map_err(|e| StoreUrlError::open(url, &e))?,
        )),
        #[cfg(feature = "postgres")]
        StoreUrl::Postgres(text) => Ok(Arc::new(
            postgres::PostgresQueue::new(text).map_err(|e| StoreUrlError::open(url, &e))?,
        )),
        #[allow(unreachable_patterns)]
        StoreUrl::Sqlite(_) | StoreUrl::Postgres(_) => Err(StoreUrlError::feature_missing(url)),
        _ => Err(StoreUrlError::Unsupported(url.redacted())),
    }
}

/// How workers run jobs. Every duration is configurable so tests can use milliseconds.
#[derive(Debug, Clone)]
pub struct InboxOptions {
    /// How long a taken job stays invisible to other workers without a heartbeat (default 30 s):
    /// a worker that dies mid-handler delays its jobs by this much.
    pub visibility: Duration,
    /// How often a running handler extends its job's visibility (default: a third of it).
    pub heartbeat: Option<Duration>,
    /// The longest one handler run may take (default 5 min); past it the run counts as failed.
    pub handler_timeout: Duration,
    /// At most this many runs (default 20)...
    pub max_attempts: u32,
    /// ...and no retry this long after the delivery arrived (default 24 h), whichever first.
    pub max_age: Duration,
    /// The delay before each retry, with jitter (default 5 s doubling up to 1 h: with 20
    /// attempts, retries spread over about a day).
    pub backoff: Backoff,
    /// How often an idle worker looks for jobs stored by other processes (default 250 ms);
    /// jobs stored by this process wake it at once.
    pub poll: Duration,
    /// Jobs one worker runs at once per module without `concurrency = N` (default 4 per core).
    pub concurrency: usize,
    /// How often the worker publishes the backlog gauges (default 10 s; `None`: never).
    pub metrics_every: Option<Duration>,
    /// How long a stopping worker waits for running handlers (default 30 s).
    pub shutdown_deadline: Duration,
    /// Whether the receiver starts a worker in its own process (default true).
    pub in_process: bool,
    /// The most jobs that may wait or run at once (default 100,000; `None`: no bound). Past it
    /// deliveries are answered 503 with `Retry-After` and counted in
    /// `replicate_webhook_inbox_refused_total{reason="backlog-full"}`, so a flood of valid
    /// deliveries cannot grow the database without limit; Replicate retries terminal ones.
    pub max_backlog: Option<u64>,
}

impl Default for InboxOptions {
    fn default() -> Self {
        Self {
            visibility: Duration::from_secs(30),
            heartbeat: None,
            handler_timeout: Duration::from_mins(5),
            max_attempts: 20,
            max_age: Duration::from_hours(24),
            backoff: Backoff::new(Duration::from_secs(5), Duration::from_hours(1)),
            poll: Duration::from_millis(250),
            concurrency: 4 * std::thread::available_parallelism().map_or(1, usize::from),
            metrics_every: Some(Duration::from_secs(10)),
            shutdown_deadline: Duration::from_secs(30),
            in_process: true,
            max_backlog: Some(100_000),
        }
    }
}

impl InboxOptions {
    pub(crate) fn heartbeat_every(&self) -> Duration {
        self.heartbeat
            .unwrap_or(self.visibility / 3)
            .max(Duration::from_millis(10))
    }
}
