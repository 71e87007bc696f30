//! The JSON API under `{prefix}/api`: the pages' data for scripts and the CLI, behind
//! `Authorization: Bearer <token>`.

use actix_web::{HttpRequest, HttpResponse, web};
use serde::Serialize;

use super::Mount;
use super::queries::{self, DeliveryQuery, JobQuery, QueryError};
use crate::inbox::Job;
use crate::journal::Record;

/// 401 with no data, and how to authenticate.
fn unauthorized() -> HttpResponse {
    HttpResponse::Unauthorized()
        .insert_header(("www-authenticate", "Bearer realm=\"replicate-webhook\""))
        .json(serde_json::json!({ "error": "missing or wrong bearer token" }))
}

fn error(e: &QueryError) -> HttpResponse {
    HttpResponse::build(e.reported()).json(serde_json::json!({ "error": e.to_string() }))
}

/// 401 without the token; otherwise what `call` gives, as JSON, or its error.
async fn answer<T: Serialize>(
    req: &HttpRequest,
    mount: &Mount,
    call: impl AsyncFnOnce() -> Result<T, QueryError>,
) -> HttpResponse {
    if !mount.auth.bearer_ok(req) {
        return unauthorized();
    }
    match call().await {
        Ok(body) => HttpResponse::Ok().json(body),
        Err(e) => error(&e),
    }
}

/// A journal row as the API shows it.
#[derive(Debug, Serialize)]
pub(crate) struct DeliveryJson<'a> {
    webhook_id: &'a str,
    prediction_id: &'a str,
    model: &'a str,
    event: Option<&'a str>,
    status: &'a str,
    http_status: u16,
    outcome: &'static str,
    detail: Option<&'a str>,
    received_at: String,
    duration_ms: Option<f64>,
    tenant: Option<&'a str>,
}

impl<'a> From<&'a Record> for DeliveryJson<'a> {
    fn from(row: &'a Record) -> Self {
        Self {
            webhook_id: &row.webhook_id,
            prediction_id: &row.prediction_id,
            model: &row.model,
            event: Some(row.event.as_str()).filter(|e| !e.is_empty()),
            status: &row.status,
            http_status: row.http_status,
            outcome: row.outcome.as_str(),
            detail: row.detail.as_deref(),
            received_at: queries::rfc3339(row.received_ms),
            duration_ms: row.duration_ms(),
            tenant: row.tenant.as_deref(),
        }
    }
}

/// A job as the API shows it (never its body).
#[derive(Debug, Serialize)]
pub(crate) struct JobJson<'a> {
    id: i64,
    prediction_id: &'a str,
    model: &'a str,
    handler: &'a str,
    state: &'static str,
    attempts: u32,
    last_error: Option<&'a str>,
    received_at: String,
    next_run_at: Option<String>,
}

impl<'a> From<&'a Job> for JobJson<'a> {
    fn from(job: &'a Job) -> Self {
        Self {
            id: job.id,
            prediction_id: &job.prediction_id,
            model: &job.model,
            handler: &job.handler,
            state: queries::shown_state(job),
            attempts: job.attempts,
            last_error: job.last_error.as_deref(),
            received_at: queries::rfc3339(job.received_ms),
            next_run_at: matches!(job.state, crate::inbox::JobState::Pending)
                .then(|| queries::rfc3339(job.run_at_ms)),
        }
    }
}

pub(crate) async fn deliveries(
    req: HttpRequest,
    mount: web::Data<Mount>,
    query: web::Query<DeliveryQuery>,
) -> HttpResponse {
    answer(&req, &mount, async || {
        let rows = queries::deliveries(&mount, &query).await?;
        let rows: Vec<DeliveryJson<'_>> = rows.iter().map(DeliveryJson::from).collect();
        Ok(serde_json::json!({ "deliveries": rows }))
    })
    .await
}

pub(crate) async fn jobs(
    req: HttpRequest,
    mount: web::Data<Mount>,
    query: web::Query<JobQuery>,
) -> HttpResponse {
    answer(&req, &mount, async || {
        let jobs = queries::jobs(&mount, &query).await?;
        let jobs: Vec<JobJson<'_>> = jobs.iter().map(JobJson::from).collect();
        Ok(serde_json::json!({ "jobs": jobs }))
    })
    .await
}

pub(crate) async fn replay(
    req: HttpRequest,
    mount: web::Data<Mount>,
    id: web::Path<String>,
) -> HttpResponse {
    let missing = "no dead job";
    on_job(&req, &mount, &id, queries::replay, "replayed", missing).await
}

pub(crate) async fn discard(
    req: HttpRequest,
    mount: web::Data<Mount>,
    id: web::Path<String>,
) -> HttpResponse {
    let missing = "no pending or dead job";
    on_job(&req, &mount, &id, queries::discard, "discarded", missing).await
}

/// Runs `operation` on job `id`: `{"<done>": true}`, or 404 when the job is not in a state
/// the operation applies to.
async fn on_job(
    req: &HttpRequest,
    mount: &Mount,
    id: &str,
    operation: impl AsyncFnOnce(&Mount, i64) -> Result<bool, QueryError>,
    done: &str,
    missing: &str,
) -> HttpResponse {
    answer(req, mount, async || {
        let Ok(id) = id.parse::<i64>() else {
            return Err(QueryError::Invalid(format!("{id:?} is not a job id")));
        };
        if operation(mount, id).await? {
            Ok(serde_json::json!({ done: true }))
        } else {
            Err(QueryError::Missing(format!("{missing} {id}")))
        }
    })
    .await
}

pub(crate) async fn overview(req: HttpRequest, mount: web::Data<Mount>) -> HttpResponse {
    answer(&req, &mount, async || queries::overview(&mount).await).await
}

/// The reconciler's watch list and recoveries, as every instance sees them.
pub(crate) async fn reconciler(req: HttpRequest, mount: web::Data<Mount>) -> HttpResponse {
    answer(&req, &mount, async || {
        let view = queries::reconciler(&mount).await;
        let recovered: Option<Vec<DeliveryJson<'_>>> = view
            .recovered
            .as_ref()
            .map(|rows| rows.iter().map(DeliveryJson::from).collect());
        Ok(serde_json::json!({
            "watched": view.watched,
            "recovered": recovered,
            "problems": view.problems,
        }))
    })
    .await
}

/// Unknown paths: 401 unless authenticated, so nothing is learned without the token.
pub(crate) async fn not_found(req: HttpRequest, mount: web::Data<Mount>) -> HttpResponse {
    if mount.auth.session(&req).is_some() || mount.auth.bearer_ok(&req) {
        HttpResponse::NotFound().finish()
    } else {
        unauthorized()
    }
}
