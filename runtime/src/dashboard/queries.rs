//! The queries the pages and the JSON API share, and the inbox operations the CLI uses.

use actix_web::http::StatusCode;
use serde::{Deserialize, Serialize};

use super::Mount;
use crate::dedupe::StoreError;
use crate::inbox::{Backlog, Filter, Inbox, Job, JobState};
use crate::journal::{JournalStats, Outcome, Record, RefusalStats, Search, Summary};
use crate::monitor::MonitorSnapshot;

/// What a query can fail with.
#[derive(Debug, thiserror::Error)]
pub(crate) enum QueryError {
    #[error("the journal is off")]
    NoJournal,
    #[error("inbox mode is off")]
    NoInbox,
    #[error("{0}")]
    Invalid(String),
    /// No job the operation applies to (the API's 404).
    #[error("{0}")]
    Missing(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl QueryError {
    /// The status a page or the API answers it with; a store failure is logged here, once.
    pub(crate) fn reported(&self) -> StatusCode {
        match self {
            QueryError::Invalid(_) => StatusCode::BAD_REQUEST,
            QueryError::NoInbox | QueryError::NoJournal | QueryError::Missing(_) => {
                StatusCode::NOT_FOUND
            }
            QueryError::Store(e) => {
                tracing::warn!(error = %e, "dashboard query failed");
                StatusCode::SERVICE_UNAVAILABLE
            }
        }
    }
}

/// The deliveries search, as a query string (`?prediction=…&model=…&outcome=…&since=…`).
/// Every field is text, so no query string fails to parse before the caller is authenticated
/// (a missing field is `None`).
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub(crate) struct DeliveryQuery {
    pub(crate) prediction: Option<String>,
    pub(crate) model: Option<String>,
    pub(crate) outcome: Option<String>,
    /// Only the last this many minutes.
    pub(crate) since: Option<String>,
    pub(crate) limit: Option<String>,
}

/// A number a form field holds, if any.
pub(crate) fn number<T: std::str::FromStr>(
    name: &str,
    value: Option<&String>,
) -> Result<Option<T>, QueryError> {
    non_empty(value)
        .map(|v| {
            v.parse()
                .map_err(|_| QueryError::Invalid(format!("{name} must be a number, not {v:?}")))
        })
        .transpose()
}

/// The rows a search asks for: 100 unless it says, at most 1000.
fn limit(value: Option<&String>) -> Result<usize, QueryError> {
    Ok(number::<usize>("limit", value)?
        .unwrap_or(100)
        .clamp(1, 1000))
}

fn non_empty(value: Option<&String>) -> Option<String> {
    value
        .map(|v| v.trim())
        .filter(|v| !v.is_empty())
        .map(str::to_owned)
}

/// Journal rows matching `query`, newest first.
pub(crate) async fn deliveries(
    mount: &Mount,
    query: &DeliveryQuery,
) -> Result<Vec<Record>, QueryError> {
    let journal = mount.journal.as_ref().ok_or(QueryError::NoJournal)?;
    let outcome = non_empty(query.outcome.as_ref())
        .map(|name| {
            Outcome::parse(&name)
                .ok_or_else(|| QueryError::Invalid(format!("unknown outcome {name:?}")))
        })
        .transpose()?;
    let since: Option<i64> = number("since", query.since.as_ref())?;
    let search = Search {
        prediction_id: non_empty(query.prediction.as_ref()),
        model: non_empty(query.model.as_ref()),
        outcome,
        since_ms: since
            .filter(|m| *m > 0)
            .map(|minutes| crate::clock::now_ms() - minutes.saturating_mul(60_000)),
        until_ms: None,
        webhook_id_prefix: None,
        limit: limit(query.limit.as_ref())?,
    };
    Ok(journal.search(&search).await?)
}

/// Everything known about one prediction, in order.
#[derive(Debug, Default)]
pub(crate) struct Timeline {
    /// Its deliveries, oldest first.
    pub(crate) deliveries: Vec<Record>,
    /// Its inbox jobs (each a handler run or runs), oldest first.
    pub(crate) jobs: Vec<Job>,
}

pub(crate) async fn timeline(mount: &Mount, prediction: &str) -> Result<Timeline, QueryError> {
    let mut deliveries = deliveries(
        mount,
        &DeliveryQuery {
            prediction: Some(prediction.to_owned()),
            limit: Some("1000".to_owned()),
            ..DeliveryQuery::default()
        },
    )
    .await?;
    deliveries.reverse();
    let mut jobs = match &mount.inbox {
        Some(inbox) => {
            inbox
                .list(&Filter {
                    prediction_id: Some(prediction.to_owned()),
                    limit: 1000,
                    ..Filter::default()
                })
                .await?
        }
        None => Vec::new(),
    };
    jobs.reverse();
    Ok(Timeline { deliveries, jobs })
}

/// The jobs search: `?state=queued|retrying|pending|running|dead|done|discarded&model=…&prediction=…`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub(crate) struct JobQuery {
    pub(crate) state: Option<String>,
    pub(crate) model: Option<String>,
    pub(crate) prediction: Option<String>,
    pub(crate) limit: Option<String>,
}

impl JobQuery {
    /// The filters set (`state`, `model`, `prediction`), by name: what a bulk action carries.
    pub(crate) fn filters(&self) -> impl Iterator<Item = (&'static str, &str)> {
        [
            ("state", &self.state),
            ("model", &self.model),
            ("prediction", &self.prediction),
        ]
        .into_iter()
        .filter_map(|(name, value)| Some((name, value.as_deref().filter(|v| !v.is_empty())?)))
    }
}

/// The state a job is shown in: `pending` splits into `queued` (never run) and `retrying`.
pub(crate) fn shown_state(job: &Job) -> &'static str {
    match job.state {
        JobState::Pending if job.attempts > 0 => "retrying",
        JobState::Pending => "queued",
        state => state.as_str(),
    }
}

pub(crate) fn inbox(mount: &Mount) -> Result<&Inbox, QueryError> {
    mount.inbox.as_ref().ok_or(QueryError::NoInbox)
}

/// Jobs matching `query`, newest first.
pub(crate) async fn jobs(mount: &Mount, query: &JobQuery) -> Result<Vec<Job>, QueryError> {
    let inbox = inbox(mount)?;
    let wanted = non_empty(query.state.as_ref());
    let state = match wanted.as_deref() {
        None => None,
        Some("queued" | "retrying") => Some(JobState::Pending),
        Some(name) => Some(
            JobState::parse(name)
                .ok_or_else(|| QueryError::Invalid(format!("unknown job state {name:?}")))?,
        ),
    };
    let jobs = inbox
        .list(&Filter {
            state,
            model: non_empty(query.model.as_ref()),
            prediction_id: non_empty(query.prediction.as_ref()),
            limit: limit(query.limit.as_ref())?,
        })
        .await?;
    Ok(match wanted.as_deref() {
        Some(shown @ ("queued" | "retrying")) => jobs
            .into_iter()
            .filter(|job| shown_state(job) == shown)
            .collect(),
        _ => jobs,
    })
}

/// Replays dead job `id` (the CLI's `inbox replay ID`): `false` when it is not dead.
pub(crate) async fn replay(mount: &Mount, id: i64) -> Result<bool, QueryError> {
    Ok(inbox(mount)?.replay(Some(id)).await? > 0)
}

/// Discards pending or dead job `id` (the CLI's `inbox discard ID`).
pub(crate) async fn discard(mount: &Mount, id: i64) -> Result<bool, QueryError> {
    Ok(inbox(mount)?.discard(id).await?)
}

/// Replays every dead job `query` selects; returns how many.
pub(crate) async fn replay_matching(mount: &Mount, query: &JobQuery) -> Result<u64, QueryError> {
    let query = JobQuery {
        state: Some("dead".to_owned()),
        limit: Some("1000".to_owned()),
        ..query.clone()
    };
    let mut n = 0;
    for job in jobs(mount, &query).await? {
        n += u64::from(replay(mount, job.id).await?);
    }
    Ok(n)
}

/// Discards every pending or dead job `query` selects; returns how many.
pub(crate) async fn discard_matching(mount: &Mount, query: &JobQuery) -> Result<u64, QueryError> {
    let query = JobQuery {
        limit: Some("1000".to_owned()),
        ..query.clone()
    };
    let mut n = 0;
    for job in jobs(mount, &query).await? {
        if matches!(job.state, JobState::Pending | JobState::Dead) {
            n += u64::from(discard(mount, job.id).await?);
        }
    }
    Ok(n)
}

/// The overview's figures.
#[derive(Debug, Default, Serialize)]
pub(crate) struct Overview {
    pub(crate) summary: Summary,
    pub(crate) refusals: RefusalStats,
    pub(crate) journal: JournalStats,
    #[serde(serialize_with = "backlog")]
    pub(crate) backlog: Option<Backlog>,
    pub(crate) monitor: MonitorSnapshot,
    /// Why the journal's rows or the inbox could not be read: the counters above still are.
    pub(crate) problems: Vec<String>,
}

#[allow(clippy::ref_option)] // serde's `serialize_with` signature
fn backlog<S: serde::Serializer>(backlog: &Option<Backlog>, s: S) -> Result<S::Ok, S::Error> {
    match backlog {
        None => s.serialize_none(),
        Some(b) => serde_json::json!({
            "pending": b.pending,
            "running": b.running,
            "dead": b.dead,
            "oldest_pending_s": b.oldest_pending.map(|d| d.as_secs()),
        })
        .serialize(s),
    }
}

pub(crate) async fn overview(mount: &Mount) -> Result<Overview, QueryError> {
    let journal = mount.journal.as_ref().ok_or(QueryError::NoJournal)?;
    let mut problems = Vec::new();
    let backlog = match &mount.inbox {
        Some(inbox) => inbox
            .backlog()
            .await
            .map_err(|e| problems.push(format!("inbox: {e}")))
            .ok(),
        None => None,
    };
    let summary = journal
        .summary()
        .await
        .map_err(|e| problems.push(format!("journal: {e}")))
        .unwrap_or_default();
    Ok(Overview {
        summary,
        problems,
        refusals: journal.refusals(),
        journal: journal.stats(),
        backlog,
        monitor: mount.monitor.snapshot(),
    })
}

/// Watched predictions listed at most.
const WATCHED_SHOWN: usize = 200;
/// Recoveries listed at most.
const RECOVERED_SHOWN: usize = 100;

/// One prediction the reconciler watches, as the store holds it.
#[derive(Debug, Serialize)]
pub(crate) struct WatchedRow {
    pub(crate) prediction_id: String,
    /// Its tenant, for a multi-account app's.
    pub(crate) tenant: Option<String>,
    pub(crate) next_poll_at: String,
    pub(crate) polls: u32,
}

/// The reconciler's page: its watch list and its recoveries from the shared stores (what every
/// instance sees), and this instance's monitor.
#[derive(Debug, Default, Serialize)]
pub(crate) struct ReconcilerView {
    /// `None` while the reconciler is off.
    pub(crate) watched: Option<Vec<WatchedRow>>,
    /// The reconciler's deliveries in the journal, newest first; `None` without a journal.
    pub(crate) recovered: Option<Vec<Record>>,
    #[serde(skip)]
    pub(crate) monitor: MonitorSnapshot,
    /// Why a list could not be read.
    pub(crate) problems: Vec<String>,
}

pub(crate) async fn reconciler(mount: &Mount) -> ReconcilerView {
    let mut problems = Vec::new();
    let watched = match &mount.watched {
        Some(list) => Some(match list.0.watched(WATCHED_SHOWN).await {
            Ok(rows) => rows
                .into_iter()
                .map(|w| {
                    let (tenant, id) = match crate::auth::unscoped(&w.prediction_id) {
                        Some((tenant, id)) => (Some(tenant.to_owned()), id.to_owned()),
                        None => (None, w.prediction_id.clone()),
                    };
                    WatchedRow {
                        prediction_id: id,
                        tenant,
                        next_poll_at: rfc3339(w.due_ms),
                        polls: w.attempts,
                    }
                })
                .collect(),
            Err(e) => {
                problems.push(format!("watched predictions: {e}"));
                Vec::new()
            }
        }),
        None => None,
    };
    let recovered = match &mount.journal {
        Some(journal) => Some(
            journal
                .search(&Search {
                    webhook_id_prefix: Some(crate::monitor::RECOVERED_PREFIX.to_owned()),
                    limit: RECOVERED_SHOWN,
                    ..Search::default()
                })
                .await
                .unwrap_or_else(|e| {
                    problems.push(format!("journal: {e}"));
                    Vec::new()
                }),
        ),
        None => None,
    };
    ReconcilerView {
        watched,
        recovered,
        monitor: mount.monitor.snapshot(),
        problems,
    }
}

/// A time for people and scripts: RFC 3339, UTC, milliseconds.
pub(crate) fn rfc3339(ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| {
            t.format(&time::macros::format_description!(
                "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
            ))
            .ok()
        })
        .unwrap_or_default()
}
