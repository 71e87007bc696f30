//! What a request must carry: the token, a JSON body, a valid input, webhook, events filter and
//! `Prefer`/`Cancel-After`/`x-simulator-*` headers; each refusal as Replicate words it.

// Checks return the finished error response as their `Err`: it is what the handler sends.
#![allow(clippy::result_large_err)]

use std::sync::Arc;
use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse};
use replicate_webhook::Event;
use secrecy::ExposeSecret as _;
use serde_json::{Value, json};
use subtle::ConstantTimeEq as _;

use super::lifecycle::NewPrediction;
use super::models::KnownModel;
use super::{Outcome, Script, State};

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
    if account(state, req) > 0 {
        return None;
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

/// The account whose token `req` carries: `n` for `Config::accounts[n - 1]`, else 0 (the main
/// account, whose token the gate checks).
pub(super) fn account(state: &State, req: &HttpRequest) -> usize {
    let Some(given) = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
    else {
        return 0;
    };
    state
        .config
        .accounts
        .iter()
        .position(|a| bool::from(given.as_bytes().ct_eq(a.token.expose_secret().as_bytes())))
        .map_or(0, |i| i + 1)
}

/// The gate, then the body, which must be a JSON object: how every creating call starts.
pub(super) fn admit(state: &State, req: &HttpRequest, body: &[u8]) -> Result<Value, HttpResponse> {
    if let Some(refused) = gate(state, req) {
        return Err(refused);
    }
    parse_body(body)
}

fn parse_body(body: &[u8]) -> Result<Value, HttpResponse> {
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

pub(super) fn invalid_version() -> HttpResponse {
    problem(
        StatusCode::UNPROCESSABLE_ENTITY,
        "The specified version does not exist (or perhaps you don't have permission to use it?)",
    )
}

pub(super) enum Target {
    /// A model with a schema, at a version.
    Known(KnownModel, String),
    /// `owner/name` without a version (official model or deployment): version `hidden`.
    Official(String, Option<KnownModel>),
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
        account: account(state, req),
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
pub(super) fn prefer_wait(req: &HttpRequest) -> Result<Option<Duration>, HttpResponse> {
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
