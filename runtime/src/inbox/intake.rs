//! The receiver's side of the inbox: store a verified delivery as a job and say what to answer.

use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse};

use super::{BacklogLimit, Inbox, NewJob, module_key};
use crate::answer;
use crate::dedupe::{Admission, Delivery, Keys, bounded};
use crate::handler::HandlerKind;
use crate::journal::{Noted as _, Outcome};
use crate::registry::Module;
use crate::verified::Verified;

/// Headers a worker rebuilds the request with. Nothing that authenticates anyone.
const KEPT_HEADERS: [&str; 5] = [
    "webhook-id",
    "webhook-timestamp",
    "webhook-signature",
    "content-type",
    "user-agent",
];

/// The W3C trace context the job's run continues: the delivery span's own (so the run is its
/// child) when OpenTelemetry records it, else the `traceparent` / `tracestate` the request
/// carried.
fn trace_context(req: &HttpRequest) -> Vec<(String, String)> {
    #[cfg(feature = "otel")]
    {
        let current = crate::otel::current_trace_headers();
        if !current.is_empty() {
            return current;
        }
    }
    text_headers(req, &["traceparent", "tracestate"]).collect()
}

/// The headers of `req` among `names` whose values are text, as a job stores them.
fn text_headers<'a>(
    req: &'a HttpRequest,
    names: &'a [&str],
) -> impl Iterator<Item = (String, String)> + 'a {
    names.iter().filter_map(|&name| {
        let value = req.headers().get(name)?.to_str().ok()?;
        Some((name.to_owned(), value.to_owned()))
    })
}

/// Where verified deliveries of inbox modules go.
pub(crate) struct Intake {
    pub(crate) inbox: Inbox,
    pub(crate) webhook_ttl: Duration,
    pub(crate) timeout: Duration,
    /// Wakes this process's worker when a job is stored.
    pub(crate) stored: tokio::sync::watch::Sender<u64>,
    /// Refuses deliveries while the backlog is at its bound.
    pub(crate) limit: BacklogLimit,
}

impl Intake {
    /// Wakes this process's workers for what [`Self::accept`] stored. Called once the delivery
    /// is published on the live channel, so that a worker's handler publishes after it.
    pub(crate) fn wake(&self) {
        self.stored.send_modify(|_| ());
    }

    /// Stores the delivery for `kind` of `module` and answers: 200 once it is durable, 409 while
    /// an inline handler holds its key, 503 when the database cannot take it or the backlog is
    /// at its bound. `keys` are the delivery's dedupe keys exactly as the inline path claims
    /// them, so one delivery can never run both inline and as a job.
    pub(crate) async fn accept(
        &self,
        delivery: &Verified<'_>,
        module: &Module,
        kind: HandlerKind,
        keys: Delivery<'_>,
    ) -> HttpResponse {
        if self.limit.full(&*self.inbox.queue, self.timeout).await {
            super::metrics::refused_full();
            tracing::warn!("inbox backlog at its bound; delivery refused");
            return answer::retry_after(
                StatusCode::SERVICE_UNAVAILABLE,
                30,
                "inbox backlog full; retry later",
            );
        }
        let req = delivery.req;
        let job = NewJob {
            keys: Keys::of(keys),
            module: module_key(module),
            model: module.model.clone(),
            prediction_id: keys.prediction_id.to_owned(),
            status: keys.status.as_str().to_owned(),
            handler: kind,
            webhook_id: delivery.webhook_id.to_owned(),
            uri: req
                .uri()
                .path_and_query()
                .map_or_else(|| req.path().to_owned(), |p| p.as_str().to_owned()),
            headers: text_headers(req, &KEPT_HEADERS)
                .chain(trace_context(req))
                .collect(),
            body: delivery.body.to_vec(),
        };
        let stored = bounded(
            self.timeout,
            self.inbox.queue.enqueue(job, self.webhook_ttl),
        )
        .await;
        match stored {
            Ok(Admission::Stored(id)) => {
                super::metrics::stored();
                self.limit.stored();
                // Counted now, woken by `wake` once the delivery is published (see there).
                self.stored.send_if_modified(|n| {
                    *n = n.wrapping_add(1);
                    false
                });
                tracing::debug!(
                    job = id,
                    handler = kind.fn_name(),
                    "delivery stored in the inbox"
                );
                answer::text(StatusCode::OK, "stored; a worker runs the handler")
                    .noted(Outcome::Queued)
            }
            Ok(Admission::Duplicate) => answer::text(
                StatusCode::OK,
                "duplicate delivery; already stored or handled",
            )
            .noted(Outcome::Duplicate),
            Ok(Admission::AlreadyHandled) => answer::text(
                StatusCode::OK,
                "prediction already stored or handled for this status",
            )
            .noted(Outcome::Duplicate),
            Ok(Admission::Stale) => answer::text(
                StatusCode::OK,
                "stale event: the prediction already finished",
            )
            .noted(Outcome::Stale),
            Ok(Admission::InFlight { retry_after }) => {
                answer::in_flight(retry_after).noted(Outcome::InFlight)
            }
            // A queue admits and stores in one transaction: it never hands a lease out.
            Ok(Admission::Run(_)) => unavailable("inbox: admitted but not stored"),
            Err(e) => unavailable(&format!("inbox: {e}")),
        }
    }
}

fn unavailable(error: &str) -> HttpResponse {
    tracing::error!(error, "inbox unavailable; delivery refused");
    answer::retry_after(
        StatusCode::SERVICE_UNAVAILABLE,
        5,
        "inbox unavailable; retry later",
    )
    .noted(Outcome::Unavailable)
}
