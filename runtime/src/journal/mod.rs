//! The delivery journal: one row for every verified request the receiver answered, with what it
//! answered and why (design.md §9).
//!
//! The request path hands a finished [`Record`] to a bounded channel and goes on; a task writes
//! rows in batches to the configured store. When the channel is full the row is dropped and
//! counted: a delivery never waits for, or fails because of, its journal. The memory ring is the
//! exception: a push under its lock costs less than waking the task, so rows go straight in. Requests refused before
//! verification are not rows: they are counted by reason and the latest few are sampled
//! ([`Journal::refusals`]), so a flood of forged requests cannot evict real history. Rows are
//! bounded by count and age ([`JournalOptions`]); bodies are kept only when the app opts in, and
//! only verified ones.
//!
//! | store | where rows live |
//! |---|---|
//! | `memory` | a ring in the process |
//! | `sqlite://PATH` | table `replicate_webhook_journal` in the same file, its own connection |
//! | `redis://…` | sorted set `{prefix}journal`, its own connection |
//! | `postgres://…` | table `replicate_webhook_journal`, its own pool |

mod memory;
mod note;
#[cfg(feature = "postgres")]
mod postgres;
mod record;
#[cfg(feature = "redis")]
mod redis;
mod refused;
#[cfg(feature = "sqlite")]
mod sqlite;
mod store;
mod summary;
mod writer;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use actix_web::HttpResponse;
use actix_web::web::Bytes;

pub use record::{Outcome, Record, Search};
pub use refused::{Refusal, RefusalStats};
pub use summary::{Minute, Summary};

pub(crate) use note::Noted;

use crate::clock::now_ms;
use crate::dedupe::{StoreError, StoreUrl, StoreUrlError};
use crate::envelope::Envelope;
use crate::prediction::{Event, Status};
use store::JournalStore;

/// How the journal keeps rows. The defaults suit a small app.
#[derive(Debug, Clone)]
pub struct JournalOptions {
    /// Where rows live (default: the dedupe store's URL; a custom store journals in memory).
    pub store: Option<StoreUrl>,
    /// Rows kept at most (default 10 000); older ones are deleted first.
    pub max_rows: u64,
    /// Rows older than this are deleted (default 7 days).
    pub max_age: Duration,
    /// Rows waiting to be written at most (default 4096); past it new rows are dropped and
    /// counted.
    pub capacity: usize,
    /// Whether verified bodies are kept with their rows (default false: they hold the
    /// prediction's input, which may carry the user's secrets).
    pub keep_bodies: bool,
}

impl Default for JournalOptions {
    fn default() -> Self {
        Self {
            store: None,
            max_rows: 10_000,
            max_age: Duration::from_hours(168),
            capacity: 4096,
            keep_bodies: false,
        }
    }
}

impl JournalOptions {
    /// Rows received before this time (ms since the epoch) are past `max_age` at `now_ms`.
    fn cutoff_ms(&self, now_ms: i64) -> i64 {
        let max_age = i64::try_from(self.max_age.as_millis()).unwrap_or(i64::MAX);
        now_ms.saturating_sub(max_age)
    }
}

/// Counters of the journal itself.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct JournalStats {
    /// Rows written to the store.
    pub written: u64,
    /// Rows dropped because the channel was full.
    pub dropped: u64,
    /// Rows lost because the store failed to take them.
    pub failed: u64,
}

/// The journal of one receiver. Cheap to clone.
#[derive(Clone)]
pub struct Journal {
    inner: Arc<Inner>,
}

struct Inner {
    store: Arc<dyn JournalStore>,
    name: String,
    options: JournalOptions,
    sender: tokio::sync::mpsc::Sender<Record>,
    /// Taken by the writer, which the receiver runs on its background thread.
    receiver: std::sync::Mutex<Option<tokio::sync::mpsc::Receiver<Record>>>,
    written: AtomicU64,
    dropped: AtomicU64,
    failed: AtomicU64,
    refused: refused::Refused,
}

impl std::fmt::Debug for Journal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Journal")
            .field("store", &self.inner.name)
            .field("options", &self.inner.options)
            .finish_non_exhaustive()
    }
}

impl Journal {
    /// Opens the journal `options.store` names, or `fallback` (the dedupe store's URL).
    pub fn open(options: JournalOptions, fallback: &StoreUrl) -> Result<Self, StoreUrlError> {
        let url = options.store.clone().unwrap_or_else(|| fallback.clone());
        let store = store::open(&url)?;
        let (sender, receiver) = tokio::sync::mpsc::channel(options.capacity.max(1));
        Ok(Self {
            inner: Arc::new(Inner {
                store,
                name: url.redacted(),
                options,
                sender,
                receiver: std::sync::Mutex::new(Some(receiver)),
                written: AtomicU64::new(0),
                dropped: AtomicU64::new(0),
                failed: AtomicU64::new(0),
                refused: refused::Refused::default(),
            }),
        })
    }

    /// Where rows live, with any password hidden.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The writer, for the receiver's background thread; `None` once taken.
    pub(crate) fn writer(&self) -> Option<crate::background::Task> {
        let receiver = self
            .inner
            .receiver
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take()?;
        Some(Box::pin(writer::run(self.clone(), receiver)))
    }

    /// Rows matching `search`, newest first.
    pub async fn search(&self, search: &Search) -> Result<Vec<Record>, StoreError> {
        self.inner.store.search(search).await
    }

    /// The last hour, summarized (at most `max_rows` rows are looked at).
    pub async fn summary(&self) -> Result<Summary, StoreError> {
        let rows = self
            .search(&Search {
                since_ms: Some(now_ms() - 60 * 60 * 1000),
                limit: usize::try_from(self.inner.options.max_rows).unwrap_or(usize::MAX),
                ..Search::default()
            })
            .await?;
        Ok(Summary::of(&rows))
    }

    /// Requests refused before verification: counts by reason, and the latest few.
    pub fn refusals(&self) -> RefusalStats {
        self.inner.refused.stats()
    }

    /// The journal's own counters.
    pub fn stats(&self) -> JournalStats {
        JournalStats {
            written: self.inner.written.load(Ordering::Relaxed),
            dropped: self.inner.dropped.load(Ordering::Relaxed),
            failed: self.inner.failed.load(Ordering::Relaxed),
        }
    }

    /// Counts a request refused before verification (no row).
    pub(crate) fn refused(&self, http_status: u16, reason: &str) {
        self.inner.refused.record(http_status, reason, now_ms());
    }

    /// Queues the row for `response`; never waits. A full channel drops the row and counts it.
    pub(crate) fn record(&self, facts: Facts, response: &HttpResponse) {
        if !facts.verified {
            return;
        }
        let note = note::of(response);
        let status = response.status();
        let outcome = note.outcome.unwrap_or(if status.is_server_error() {
            Outcome::Unavailable
        } else {
            Outcome::Ignored
        });
        let event = note
            .event
            .or_else(|| inferred_event(&facts.status))
            .map_or("", Event::as_str);
        let row = Record {
            id: 0,
            received_ms: facts.received_ms,
            webhook_id: facts.webhook_id,
            prediction_id: facts.prediction_id,
            model: facts.model,
            event: event.to_owned(),
            status: facts.status,
            http_status: status.as_u16(),
            outcome,
            detail: note.detail,
            duration_us: note
                .handler
                .map(|d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX)),
            body: facts
                .body
                .filter(|_| self.inner.options.keep_bodies)
                .map(|b| String::from_utf8_lossy(&b).into_owned()),
            tenant: facts.tenant,
        };
        let options = &self.inner.options;
        let before_ms = options.cutoff_ms(row.received_ms);
        let Some(row) = self
            .inner
            .store
            .append_now(row, options.max_rows, before_ms)
        else {
            self.inner.written.fetch_add(1, Ordering::Relaxed);
            return;
        };
        if self.inner.sender.try_send(row).is_err() {
            self.inner.dropped.fetch_add(1, Ordering::Relaxed);
            ::metrics::counter!("replicate_webhook_journal_dropped_total").increment(1);
        }
    }
}

/// What the request path learned about a request before answering it.
#[derive(Debug, Default)]
pub(crate) struct Facts {
    /// Whether anything is journaled: when not, nothing is copied.
    enabled: bool,
    received_ms: i64,
    /// Set once the signature is verified: only verified requests are rows.
    verified: bool,
    webhook_id: String,
    prediction_id: String,
    model: String,
    status: String,
    body: Option<Bytes>,
    tenant: Option<String>,
}

impl Facts {
    /// A request that just arrived, to be journaled when `enabled`.
    pub(crate) fn arrived(enabled: bool) -> Self {
        Self {
            enabled,
            received_ms: if enabled { now_ms() } else { 0 },
            ..Self::default()
        }
    }

    /// Its signature is verified: its `webhook-id`, its body (kept only on opt-in), and the
    /// tenant it was sent for, if any.
    pub(crate) fn verified(&mut self, webhook_id: &str, body: &Bytes, tenant: Option<&str>) {
        if !self.enabled {
            return;
        }
        self.verified = true;
        webhook_id.clone_into(&mut self.webhook_id);
        self.body = Some(body.clone());
        self.tenant = tenant.map(str::to_owned);
    }

    /// Adds what the envelope says.
    pub(crate) fn envelope(&mut self, envelope: &Envelope<'_>) {
        if !self.enabled {
            return;
        }
        envelope.id().clone_into(&mut self.prediction_id);
        envelope.model().clone_into(&mut self.model);
        envelope.status().as_str().clone_into(&mut self.status);
    }
}

/// Records the outcome and event of `response` on the delivery's span (and so on its
/// OpenTelemetry span).
pub(crate) fn annotate(span: &tracing::Span, response: &HttpResponse) {
    let note = note::of(response);
    if let Some(outcome) = note.outcome {
        span.record("outcome", outcome.as_str());
    }
    if let Some(event) = note.event {
        span.record("event", event.as_str());
    }
}

/// The event a status implies when no exit said (a `processing` one is output or logs, which
/// only the progress check can tell).
fn inferred_event(status: &str) -> Option<Event> {
    match Status::parse(status) {
        Status::Starting => Some(Event::Start),
        s if s.is_terminal() => Some(Event::Completed),
        _ => None,
    }
}
