//! The HTTP endpoints.

// Helpers return the finished error response as their `Err`: it is what the handler sends.
#![allow(clippy::result_large_err)]

use std::sync::Arc;

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::{Value, json};

use super::State;
use super::lifecycle::{self, Finish};
use super::models::KnownModel;
use super::request::{Target, admit, gate, invalid_version, prefer_wait, problem, validate};

type Shared = web::Data<State>;

pub(super) fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/v1")
            .route("/predictions", web::post().to(create_by_version))
            .route("/predictions", web::get().to(list))
            .route("/predictions/{id}", web::get().to(get))
            .route("/predictions/{id}/cancel", web::post().to(cancel))
            .route(
                "/models/{owner}/{name}/predictions",
                web::post().to(create_official),
            )
            .route(
                "/deployments/{owner}/{name}/predictions",
                web::post().to(create_official),
            )
            .route("/models/{owner}/{name}", web::get().to(model))
            .route(
                "/models/{owner}/{name}/versions/{version}",
                web::get().to(version),
            )
            .route("/webhooks/default/secret", web::get().to(secret))
            .configure(super::trainings::routes)
            .default_service(web::to(|| async {
                problem(StatusCode::NOT_FOUND, "Not found.")
            })),
    )
    .route("/_simulator/deliveries", web::get().to(deliveries))
    .route("/_simulator/reads", web::get().to(reads))
    .route("/_simulator/rotate-secret", web::post().to(rotate_secret));
}

async fn create_by_version(state: Shared, req: HttpRequest, body: web::Bytes) -> HttpResponse {
    let request = match admit(&state, &req, &body) {
        Ok(request) => request,
        Err(refused) => return refused,
    };
    let Some(version) = request.get("version").and_then(Value::as_str) else {
        return problem(
            StatusCode::UNPROCESSABLE_ENTITY,
            "- version: Version is required",
        );
    };
    let target = if let Some((slug, id)) = version.split_once(':') {
        match state.models.find(slug) {
            Some(model) if model.version == id => Target::Known(model, id.to_owned()),
            _ => return invalid_version(),
        }
    } else if version.contains('/') {
        let model = state.models.find(version);
        Target::Official(version.to_owned(), model)
    } else {
        match state.models.find_version(version) {
            Some(model) => Target::Known(model, version.to_owned()),
            None => return invalid_version(),
        }
    };
    create(&state.into_inner(), &req, &request, target, None).await
}

/// `POST /models/{owner}/{name}/predictions` and its deployment twin, which also records the
/// deployment's name on the prediction.
async fn create_official(
    state: Shared,
    req: HttpRequest,
    path: web::Path<(String, String)>,
    body: web::Bytes,
) -> HttpResponse {
    let request = match admit(&state, &req, &body) {
        Ok(request) => request,
        Err(refused) => return refused,
    };
    let (owner, name) = path.into_inner();
    let slug = format!("{owner}/{name}");
    let model = state.models.find(&slug);
    let deployment = req
        .path()
        .starts_with("/v1/deployments/")
        .then(|| slug.clone());
    create(
        &state.into_inner(),
        &req,
        &request,
        Target::Official(slug, model),
        deployment,
    )
    .await
}

async fn create(
    state: &Arc<State>,
    req: &HttpRequest,
    request: &Value,
    target: Target,
    deployment: Option<String>,
) -> HttpResponse {
    let new = match validate(state, req, request, target, deployment) {
        Ok(new) => new,
        Err(response) => return response,
    };
    let wait = match prefer_wait(req) {
        Ok(wait) => wait,
        Err(response) => return response,
    };
    let id = lifecycle::create(state, &new);
    if let Some(limit) = wait {
        lifecycle::wait_for_terminal(state, &id, limit).await;
    }
    let body = state.lock().predictions.get(&id).map(|s| s.body.clone());
    let location = format!("{}/predictions/{id}", state.api_base);
    HttpResponse::Created()
        .insert_header(("location", location))
        .json(body.unwrap_or(Value::Null))
}

async fn get(state: Shared, req: HttpRequest, id: web::Path<String>) -> HttpResponse {
    if let Some(refused) = gate(&state, &req) {
        return refused;
    }
    let account = super::request::account(&state, &req);
    let mut inner = state.lock();
    // As on Replicate, an account sees only its own predictions.
    let (response, status) = match inner.predictions.get(id.as_str()) {
        Some(sim) if sim.account == account => (HttpResponse::Ok().json(&sim.body), 200),
        _ => (problem(StatusCode::NOT_FOUND, "Not found."), 404),
    };
    inner.reads.push(Read {
        prediction_id: id.into_inner(),
        account,
        status,
    });
    response
}

/// One `GET /v1/predictions/{id}`: by which account (0 for the main one, `n` for
/// `Config::accounts[n - 1]`; never the token itself) and what it was answered.
#[derive(Debug, Clone, serde::Serialize)]
pub(super) struct Read {
    prediction_id: String,
    account: usize,
    status: u16,
}

/// `GET /_simulator/reads[?prediction=ID]`: every read of a prediction so far, in order.
async fn reads(state: Shared, query: web::Query<DeliveriesQuery>) -> HttpResponse {
    let inner = state.lock();
    let reads: Vec<&Read> = inner
        .reads
        .iter()
        .filter(|r| {
            query
                .prediction
                .as_deref()
                .is_none_or(|p| p == r.prediction_id)
        })
        .collect();
    HttpResponse::Ok().json(reads)
}

async fn cancel(state: Shared, req: HttpRequest, id: web::Path<String>) -> HttpResponse {
    if let Some(refused) = gate(&state, &req) {
        return refused;
    }
    let state = state.into_inner();
    let account = super::request::account(&state, &req);
    if state
        .lock()
        .predictions
        .get(id.as_str())
        .is_none_or(|sim| sim.account != account)
    {
        return problem(StatusCode::NOT_FOUND, "Not found.");
    }
    lifecycle::finish(&state, &id, Finish::Cancel);
    let body = state
        .lock()
        .predictions
        .get(id.as_str())
        .map(|s| s.body.clone());
    HttpResponse::Ok().json(body.unwrap_or(Value::Null))
}

#[derive(serde::Deserialize)]
struct ListQuery {
    cursor: Option<usize>,
}

async fn list(state: Shared, req: HttpRequest, query: web::Query<ListQuery>) -> HttpResponse {
    if let Some(refused) = gate(&state, &req) {
        return refused;
    }
    let size = state.config.page_size.max(1);
    let offset = query.cursor.unwrap_or(0);
    let inner = state.lock();
    let total = inner.order.len();
    let results: Vec<&Value> = inner
        .order
        .iter()
        .rev()
        .skip(offset)
        .take(size)
        .filter_map(|id| inner.predictions.get(id).map(|s| &s.body))
        .collect();
    let base = &state.api_base;
    let next =
        (offset + size < total).then(|| format!("{base}/predictions?cursor={}", offset + size));
    let previous =
        (offset > 0).then(|| format!("{base}/predictions?cursor={}", offset.saturating_sub(size)));
    HttpResponse::Ok().json(json!({"next": next, "previous": previous, "results": results}))
}

async fn secret(state: Shared, req: HttpRequest) -> HttpResponse {
    if let Some(refused) = gate(&state, &req) {
        return refused;
    }
    let secret = state.secret(super::request::account(&state, &req));
    HttpResponse::Ok().json(json!({"key": secret.expose()}))
}

/// `POST /_simulator/rotate-secret`: what rotating the secret in Replicate's dashboard does.
async fn rotate_secret(state: Shared, req: HttpRequest) -> HttpResponse {
    if let Some(refused) = gate(&state, &req) {
        return refused;
    }
    let secret = state.rotate(super::request::account(&state, &req));
    HttpResponse::Ok().json(json!({"key": secret.expose()}))
}

fn version_json(model: &KnownModel) -> Value {
    json!({
        "id": model.version,
        "created_at": "2024-01-01T00:00:00.000000Z",
        "cog_version": "0.9.0",
        "openapi_schema": model.schema,
    })
}

async fn model(state: Shared, req: HttpRequest, path: web::Path<(String, String)>) -> HttpResponse {
    if let Some(refused) = gate(&state, &req) {
        return refused;
    }
    let (owner, name) = path.into_inner();
    let Some(model) = state.models.find(&format!("{owner}/{name}")) else {
        return problem(StatusCode::NOT_FOUND, "Not found.");
    };
    HttpResponse::Ok().json(json!({
        "url": format!("https://replicate.com/{owner}/{name}"),
        "owner": owner,
        "name": name,
        "description": "served by the replicate-webhook simulator",
        "visibility": "public",
        "latest_version": version_json(&model),
    }))
}

async fn version(
    state: Shared,
    req: HttpRequest,
    path: web::Path<(String, String, String)>,
) -> HttpResponse {
    if let Some(refused) = gate(&state, &req) {
        return refused;
    }
    let (owner, name, version) = path.into_inner();
    match state.models.find(&format!("{owner}/{name}")) {
        Some(model) if model.version == version => HttpResponse::Ok().json(version_json(&model)),
        _ => problem(StatusCode::NOT_FOUND, "Not found."),
    }
}

#[derive(serde::Deserialize)]
struct DeliveriesQuery {
    prediction: Option<String>,
}

async fn deliveries(state: Shared, query: web::Query<DeliveriesQuery>) -> HttpResponse {
    let inner = state.lock();
    let mut records: Vec<_> = inner
        .deliveries
        .iter()
        .filter(|r| {
            query
                .prediction
                .as_deref()
                .is_none_or(|p| p == r.prediction_id)
        })
        .collect();
    // Logged when answered; listed in the order they were sent.
    records.sort_by_key(|r| r.sent_at_ms);
    HttpResponse::Ok().json(records)
}
