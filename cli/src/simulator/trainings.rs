//! Trainings: the prediction lifecycle and its webhooks, with a training's body (`urls` under
//! `/v1/trainings/`, a `destination`, no output until it succeeds, then `{version, weights}`).

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

use super::State;
use super::lifecycle::{self, Finish};
use super::request::{Target, admit, gate, problem, validate};

type Shared = web::Data<State>;

pub(super) fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route(
        "/models/{owner}/{name}/versions/{version}/trainings",
        web::post().to(create),
    )
    .route("/trainings/{id}", web::get().to(get))
    .route("/trainings/{id}/cancel", web::post().to(cancel));
}

/// What a succeeded training of `id` produced: a new version of `destination` and its weights.
pub(super) fn output(destination: &str, id: &str) -> Value {
    let version = hex::encode(Sha256::digest(id.as_bytes()));
    json!({
        "version": format!("{destination}:{version}"),
        "weights": format!("https://replicate.delivery/xezq/{id}/trained_model.tar"),
    })
}

/// A stored body that is a training, by the same rule receivers use.
fn is_training(body: &Value) -> bool {
    body["urls"]["get"]
        .as_str()
        .is_some_and(|get| get.contains("/trainings/"))
}

async fn create(
    state: Shared,
    req: HttpRequest,
    path: web::Path<(String, String, String)>,
    body: web::Bytes,
) -> HttpResponse {
    let request = match admit(&state, &req, &body) {
        Ok(request) => request,
        Err(refused) => return refused,
    };
    let Some(destination) = request
        .get("destination")
        .and_then(Value::as_str)
        .filter(|d| replicate_webhook_core::split_model(d).is_some())
    else {
        return problem(
            StatusCode::UNPROCESSABLE_ENTITY,
            "- destination: must be `owner/name`, a model you own",
        );
    };
    let (owner, name, version) = path.into_inner();
    let slug = format!("{owner}/{name}");
    let state = state.into_inner();
    let target = Target::Official(slug, None);
    let mut new = match validate(&state, &req, &request, target, None) {
        Ok(new) => new,
        Err(response) => return response,
    };
    new.version = version;
    let id = lifecycle::create_training(&state, &new, destination);
    let body = state.lock().predictions.get(&id).map(|s| s.body.clone());
    let location = format!("{}/trainings/{id}", state.api_base);
    HttpResponse::Created()
        .insert_header(("location", location))
        .json(body.unwrap_or(Value::Null))
}

fn training(state: &State, id: &str) -> Option<Value> {
    state
        .lock()
        .predictions
        .get(id)
        .map(|s| s.body.clone())
        .filter(is_training)
}

async fn get(state: Shared, req: HttpRequest, id: web::Path<String>) -> HttpResponse {
    if let Some(refused) = gate(&state, &req) {
        return refused;
    }
    match training(&state, &id) {
        Some(body) => HttpResponse::Ok().json(body),
        None => problem(StatusCode::NOT_FOUND, "Not found."),
    }
}

async fn cancel(state: Shared, req: HttpRequest, id: web::Path<String>) -> HttpResponse {
    if let Some(refused) = gate(&state, &req) {
        return refused;
    }
    let state = state.into_inner();
    if training(&state, &id).is_none() {
        return problem(StatusCode::NOT_FOUND, "Not found.");
    }
    lifecycle::finish(&state, &id, Finish::Cancel);
    match training(&state, &id) {
        Some(body) => HttpResponse::Ok().json(body),
        None => problem(StatusCode::NOT_FOUND, "Not found."),
    }
}
