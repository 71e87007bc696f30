//! What the inbox stores: a delivery as a job, its states, and what the queue answers.

use std::fmt;
use std::time::Duration;

use crate::HandlerKind;
use crate::dedupe::Keys;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
use crate::dedupe::{ClaimToken, Delivery, Lease, StoreError};

/// Where a job is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum JobState {
    /// Waiting for a worker (new, or retrying after a backoff).
    Pending,
    /// Taken by a worker whose visibility timeout has not run out.
    Running,
    /// The handler returned `Ok` (or the body went to `on_decode_error`).
    Done,
    /// Out of attempts, or failed permanently: waits for `replay` or `discard`.
    Dead,
    /// Dropped by an operator; its deliveries stay deduplicated.
    Discarded,
}

impl JobState {
    /// Every state.
    pub const ALL: [Self; 5] = [
        Self::Pending,
        Self::Running,
        Self::Done,
        Self::Dead,
        Self::Discarded,
    ];

    /// The name stored and shown: `pending`, `running`, `done`, `dead`, `discarded`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Running => "running",
            Self::Done => "done",
            Self::Dead => "dead",
            Self::Discarded => "discarded",
        }
    }

    /// The state named `name`.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == name)
    }
}

impl fmt::Display for JobState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(any(feature = "sqlite", feature = "postgres"))]
/// The columns a job is read back with, in the order both engines' `job_from_row` read them.
pub(super) const COLUMNS: &str = "id, module, model, prediction_id, status, handler, webhook_id, \
    uri, headers, body, state, attempts, last_error, received_ms, run_at_ms, claim, budget_from_ms";

#[cfg(any(feature = "sqlite", feature = "postgres"))]
/// Whether a stored job holds key `$1` (text both engines run): a job's claim that finds its key
/// in flight counts it done when one does, since that job will run the handler.
pub(super) const HELD_BY_A_JOB: &str = "SELECT 1 FROM replicate_webhook_keys k \
    JOIN replicate_webhook_jobs j ON j.claim = k.token WHERE k.key = $1 LIMIT 1";

#[cfg(any(feature = "sqlite", feature = "postgres"))]
/// Finished jobs are kept this long for `inbox list`, then purged a batch at a time.
const KEEP_FINISHED_MS: i64 = 7 * 24 * 60 * 60 * 1000;

#[cfg(any(feature = "sqlite", feature = "postgres"))]
/// Deletes a batch of the jobs finished before `$1` (text both engines run).
pub(super) const PURGE_FINISHED: &str = "DELETE FROM replicate_webhook_jobs WHERE id IN \
    (SELECT id FROM replicate_webhook_jobs \
     WHERE state IN ('done', 'discarded') AND finished_ms < $1 LIMIT 1000)";

#[cfg(any(feature = "sqlite", feature = "postgres"))]
/// When settling job `id` done at `now` purges finished jobs too (one settle in 256): those
/// finished before the time returned.
pub(super) fn purge_before(id: i64, now: i64) -> Option<i64> {
    (id % 256 == 0).then(|| now - KEEP_FINISHED_MS)
}

/// A verified delivery on its way into the queue.
#[derive(Debug, Clone)]
#[cfg_attr(
    not(any(feature = "sqlite", feature = "postgres")),
    expect(dead_code, reason = "only the SQL engines read it")
)]
pub(crate) struct NewJob {
    /// The module's key: its path and model (see [`module_key`]).
    pub(crate) module: String,
    pub(crate) model: String,
    pub(crate) prediction_id: String,
    pub(crate) status: String,
    pub(crate) handler: HandlerKind,
    pub(crate) webhook_id: String,
    /// Path and query the delivery came to, for extractors such as `web::Query`.
    pub(crate) uri: String,
    /// The headers handlers may read: `webhook-*` and `content-type`. Never authorization.
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: Vec<u8>,
    /// The dedupe keys the job claims when it is stored.
    pub(crate) keys: Keys,
}

#[cfg(any(feature = "sqlite", feature = "postgres"))]
impl NewJob {
    /// The headers as they are stored, in a text column of either engine.
    pub(crate) fn headers_json(&self) -> Result<String, StoreError> {
        serde_json::to_string(&self.headers)
            .map_err(|e| StoreError::new(format_args!("inbox headers: {e}")))
    }
}

/// One job as the queue holds it.
#[derive(Clone)]
pub struct Job {
    /// The job's id: increasing in arrival order.
    pub id: i64,
    /// The module's key (`path model`).
    pub module: String,
    /// The delivery's model.
    pub model: String,
    /// The prediction's id.
    pub prediction_id: String,
    /// The prediction's status in the delivery.
    pub status: String,
    /// The handler's name, e.g. `on_succeeded`.
    pub handler: String,
    /// The `webhook-id` header.
    pub webhook_id: String,
    /// Path and query the delivery came to.
    pub uri: String,
    /// The stored headers (`webhook-*`, `content-type`).
    pub headers: Vec<(String, String)>,
    /// The raw body.
    pub body: Vec<u8>,
    /// The state.
    pub state: JobState,
    /// How many times a worker took it.
    pub attempts: u32,
    /// The last handler error, if any.
    pub last_error: Option<String>,
    /// When the delivery was stored, in milliseconds since the epoch.
    pub received_ms: i64,
    /// When it may run next, in milliseconds since the epoch.
    pub run_at_ms: i64,
    /// The token its dedupe keys are held with.
    #[cfg_attr(
        not(any(feature = "sqlite", feature = "postgres")),
        expect(dead_code, reason = "only the SQL engines read it")
    )]
    pub(crate) claim: String,
    /// Where the retry budget (max age) counts from: received, or the last replay.
    pub(crate) budget_from_ms: i64,
}

impl fmt::Debug for Job {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The body holds the prediction's input, which may carry the user's secrets.
        f.debug_struct("Job")
            .field("id", &self.id)
            .field("module", &self.module)
            .field("prediction_id", &self.prediction_id)
            .field("status", &self.status)
            .field("handler", &self.handler)
            .field("state", &self.state)
            .field("attempts", &self.attempts)
            .field("body_len", &self.body.len())
            .finish_non_exhaustive()
    }
}

#[cfg(any(feature = "sqlite", feature = "postgres"))]
impl Job {
    /// The dedupe claims the job holds until its handler is done.
    pub(crate) fn lease(&self) -> Lease {
        let keys = Keys::of(Delivery {
            webhook_id: &self.webhook_id,
            prediction_id: &self.prediction_id,
            status: &crate::Status::parse(&self.status),
        });
        Lease::of_job(keys, &ClaimToken::from_string(self.claim.clone()))
    }
}

/// Which jobs `list` shows.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// Only jobs in this state.
    pub state: Option<JobState>,
    /// Only jobs of this model.
    pub model: Option<String>,
    /// Only jobs of this prediction.
    pub prediction_id: Option<String>,
    /// At most this many (newest first); 0 for 100.
    pub limit: usize,
}

#[cfg(any(feature = "sqlite", feature = "postgres"))]
impl Filter {
    pub(crate) fn limit(&self) -> i64 {
        i64::try_from(if self.limit == 0 { 100 } else { self.limit }).unwrap_or(i64::MAX)
    }
}

/// How far behind the workers are.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Backlog {
    /// Jobs waiting (new or retrying).
    pub pending: u64,
    /// Jobs taken by a worker.
    pub running: u64,
    /// Dead jobs.
    pub dead: u64,
    /// Attempts made so far by pending and running jobs.
    pub attempts: u64,
    /// Age of the oldest pending or running job.
    pub oldest_pending: Option<Duration>,
}

/// The module key jobs are stored under: a module is its path, what it receives and its
/// model (a prediction module and a training module may share a path and a model).
pub(crate) fn module_key(module: &crate::registry::Module) -> String {
    match module.kind {
        crate::BodyKind::Prediction => format!("{} {}", module.path, module.model),
        crate::BodyKind::Training => format!("{} training:{}", module.path, module.model),
    }
}

/// A worker's visibility hold on the jobs it took: lost to another worker once `visibility`
/// passes without a heartbeat. (Not a dedupe [`Lease`]: it hides a job, it claims no key.)
#[derive(Debug, Clone)]
#[cfg_attr(
    not(any(feature = "sqlite", feature = "postgres")),
    expect(dead_code, reason = "only the SQL engines read it")
)]
pub(crate) struct Hold {
    pub(crate) token: String,
    pub(crate) visibility: Duration,
}

/// What a worker reports for a job it took.
#[derive(Debug, Clone)]
#[cfg_attr(
    not(any(feature = "sqlite", feature = "postgres")),
    expect(dead_code, reason = "only the SQL engines read it")
)]
pub(crate) enum Settle {
    /// Done: mark the dedupe keys done for these lives.
    Done(crate::dedupe::Ttls),
    /// Run again after `delay`.
    Retry { delay: Duration, error: String },
    /// Give up.
    Dead { error: String },
}
