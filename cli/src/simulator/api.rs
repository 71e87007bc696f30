//! The HTTP endpoints.

// Helpers return the finished error response as their `Err`: it is what the handler sends.
#![allow(clippy::result_large_err)]

use secrecy::ExposeSecret as _;
use std::sync::Arc;
use std::time::Duration;
use subtle::ConstantTimeEq as _;

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use replicate_webhook::Event;
use serde_json::{Value, json};

use super::lifecycle::{self, Finish, NewPrediction};
use super::models::KnownModel;
use super::{Outcome, Script, State};

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
                web::post().to(create_by_model),
            )
            .route(
                "/deployments/{owner}/{name}/predictions",
                web::post().to(create_by_deployment),
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
    .route("/_simulator/deliveries", web::get().to(deliveries));
}

pub(super) fn problem(status: StatusCode, detail: &str) -> HttpResponse {
    let title = status.canonical_reason().unwrap_or("Error");
    HttpResponse::build(status).json(json!({
        "title": title,
        "detail": detail,
        "status": status.as_u16(),
    }))
}

/// Authentication and injected API errors, before every `/v1` call.
pub(super) fn gate(state: &State, req: &HttpRequest) -> Option<HttpResponse> {
    if let Some(code) = state.lock().api_errors.pop_front().filter(|c| *c != 0) {
        let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut response = problem(status, "simulated error (--api-errors)");
        if code == 429 {
            response.headers_mut().insert(
                actix_web::http::header::RETRY_AFTER,
                actix_web::http::header::HeaderValue::from_static("0"),
            );
        }
        return Some(response);
    }
    let token = state.config.token.as_ref()?.expose_secret();
    let given = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    if given.is_some_and(|g| bool::from(g.as_bytes().ct_eq(token.as_bytes()))) {
        None
    } else {
        Some(problem(
            StatusCode::UNAUTHORIZED,
            "You did not pass a valid authentication token",
        ))
    }
}

async fn create_by_version(state: Shared, req: HttpRequest, body: web::Bytes) -> HttpResponse {
    if let Some(refused) = gate(&state, &req) {
        return refused;
    }
    let request: Value = match parse_body(&body) {
        Ok(v) => v,
        Err(r) => return r,
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

fn invalid_version() -> HttpResponse {
    problem(
        StatusCode::UNPROCESSABLE_ENTITY,
        "The specified version does not exist (or perhaps you don't have permission to use it?)",
    )
}

async fn create_by_model(
    state: Shared,
    req: HttpRequest,
    path: web::Path<(String, String)>,
    body: web::Bytes,
) -> HttpResponse {
    create_official(state, req, path, body, false).await
}

async fn create_by_deployment(
    state: Shared,
    req: HttpRequest,
    path: web::Path<(String, String)>,
    body: web::Bytes,
) -> HttpResponse {
    create_official(state, req, path, body, true).await
}

/// `POST /models/{owner}/{name}/predictions` and its deployment twin, which also records the
/// deployment's name on the prediction.
async fn create_official(
    state: Shared,
    req: HttpRequest,
    path: web::Path<(String, String)>,
    body: web::Bytes,
    deployment: bool,
) -> HttpResponse {
    if let Some(refused) = gate(&state, &req) {
        return refused;
    }
    let request = match parse_body(&body) {
        Ok(v) => v,
        Err(r) => return r,
    };
    let (owner, name) = path.into_inner();
    let slug = format!("{owner}/{name}");
    let model = state.models.find(&slug);
    let deployment = deployment.then(|| slug.clone());
    create(
        &state.into_inner(),
        &req,
        &request,
        Target::Official(slug, model),
        deployment,
    )
    .await
}

pub(super) fn parse_body(body: &[u8]) -> Result<Value, HttpResponse> {
    match serde_json::from_slice::<Value>(body) {
        Ok(v) if v.is_object() => Ok(v),
        Ok(_) => Err(problem(
            StatusCode::BAD_REQUEST,
            "The request body must be a JSON object",
        )),
        Err(e) => Err(problem(
            StatusCode::BAD_REQUEST,
            &format!("The request body is not valid JSON: {e}"),
        )),
    }
}

pub(super) enum Target {
    /// A model with a schema, at a version.
    Known(KnownModel, String),
    /// `owner/name` without a version (official model or deployment): version `hidden`.
    Official(String, Option<KnownModel>),
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

pub(super) fn validate(
    state: &Arc<State>,
    req: &HttpRequest,
    request: &Value,
    target: Target,
    deployment: Option<String>,
) -> Result<NewPrediction, HttpResponse> {
    let unprocessable = |detail: &str| problem(StatusCode::UNPROCESSABLE_ENTITY, detail);
    let input = match request.get("input") {
        Some(input @ Value::Object(_)) => input.clone(),
        Some(_) => return Err(unprocessable("- input: Invalid type. Expected: object")),
        None => return Err(unprocessable("- input: Input is required")),
    };
    let webhook = match request.get("webhook") {
        None | Some(Value::Null) => None,
        // Replicate posts over HTTP(S) only; a `ftp:` or mistyped scheme would fail every attempt.
        Some(Value::String(url))
            if url::Url::parse(url)
                .is_ok_and(|u| u.has_host() && matches!(u.scheme(), "http" | "https")) =>
        {
            Some(url.clone())
        }
        Some(_) => return Err(unprocessable("- webhook: Invalid webhook URL")),
    };
    let events = match request.get("webhook_events_filter") {
        None | Some(Value::Null) => None,
        Some(Value::Array(items)) => {
            let parsed: Option<Vec<Event>> = items
                .iter()
                .map(|e| e.as_str().and_then(Event::parse))
                .collect();
            Some(parsed.ok_or_else(|| {
                unprocessable(
                    "- webhook_events_filter: must be one of: start, output, logs, completed",
                )
            })?)
        }
        Some(_) => {
            return Err(unprocessable(
                "- webhook_events_filter: Invalid type. Expected: array",
            ));
        }
    };
    let cancel_after = match req.headers().get("cancel-after") {
        None => None,
        Some(value) => Some(
            value
                .to_str()
                .ok()
                .and_then(|v| crate::duration::parse(v).ok())
                .ok_or_else(|| unprocessable("Cancel-After: invalid duration"))?,
        ),
    };
    let script = script_for(&state.config.script, req).map_err(|e| unprocessable(&e))?;
    let (model, version, schema) = match target {
        Target::Known(model, version) => (model.slug, version, Some(model.schema)),
        Target::Official(slug, model) => (slug, "hidden".to_owned(), model.map(|m| m.schema)),
    };
    Ok(NewPrediction {
        model,
        version,
        deployment,
        input,
        webhook,
        events,
        cancel_after,
        script,
        schema,
    })
}

/// `Prefer: wait` (60 s) or `Prefer: wait=n` (1..=60).
fn prefer_wait(req: &HttpRequest) -> Result<Option<Duration>, HttpResponse> {
    let Some(value) = req.headers().get("prefer") else {
        return Ok(None);
    };
    let text = value.to_str().unwrap_or_default().trim();
    let seconds = match text.strip_prefix("wait") {
        Some("") => 60,
        Some(rest) => match rest.strip_prefix('=').and_then(|n| n.parse::<u64>().ok()) {
            Some(n @ 1..=60) => n,
            _ => {
                return Err(problem(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "Prefer: wait must be `wait` or `wait=n` with n between 1 and 60",
                ));
            }
        },
        None => return Ok(None),
    };
    Ok(Some(Duration::from_secs(seconds)))
}

/// The default script, changed by `x-simulator-*` request headers.
fn script_for(default: &Script, req: &HttpRequest) -> Result<Script, String> {
    let header = |name: &str| {
        req.headers()
            .get(name)
            .map(|v| v.to_str().unwrap_or_default().trim().to_owned())
    };
    let millis = |name: &str| -> Result<Option<Duration>, String> {
        header(name)
            .map(|v| {
                v.parse::<u64>()
                    .map(Duration::from_millis)
                    .map_err(|_| format!("{name} must be a number of milliseconds"))
            })
            .transpose()
    };
    let mut script = *default;
    if let Some(outcome) = header("x-simulator-outcome") {
        script.outcome = Outcome::parse(&outcome)
            .ok_or("x-simulator-outcome must be succeeded, failed or canceled")?;
    }
    if let Some(steps) = header("x-simulator-steps") {
        script.steps = steps
            .parse()
            .map_err(|_| "x-simulator-steps must be a number")?;
    }
    if let Some(step) = millis("x-simulator-step-ms")? {
        script.step = step;
    }
    if let Some(start) = millis("x-simulator-start-ms")? {
        script.start_delay = start;
    }
    Ok(script)
}

async fn get(state: Shared, req: HttpRequest, id: web::Path<String>) -> HttpResponse {
    if let Some(refused) = gate(&state, &req) {
        return refused;
    }
    match state.lock().predictions.get(id.as_str()) {
        Some(sim) => HttpResponse::Ok().json(&sim.body),
        None => problem(StatusCode::NOT_FOUND, "Not found."),
    }
}

async fn cancel(state: Shared, req: HttpRequest, id: web::Path<String>) -> HttpResponse {
    if let Some(refused) = gate(&state, &req) {
        return refused;
    }
    let state = state.into_inner();
    if !state.lock().predictions.contains_key(id.as_str()) {
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
    HttpResponse::Ok().json(json!({"key": state.config.secret.expose()}))
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
