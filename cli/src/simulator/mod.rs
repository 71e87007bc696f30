//! A local Replicate API on loopback: predictions with a scripted lifecycle, and webhooks
//! delivered the way Replicate delivers them.
//!
//! # Endpoints
//!
//! | Method + path | What |
//! |---|---|
//! | `POST /v1/predictions` | create by `version` (`{id}`, `owner/name:{id}` or `owner/name`) |
//! | `POST /v1/models/{owner}/{name}/predictions` | create for a model |
//! | `POST /v1/deployments/{owner}/{name}/predictions` | create on a deployment (model = the deployment name) |
//! | `GET /v1/predictions` | list, newest first, `?cursor=` pagination |
//! | `GET /v1/predictions/{id}` | read |
//! | `POST /v1/predictions/{id}/cancel` | cancel |
//! | `GET /v1/webhooks/default/secret` | `{"key": "whsec_…"}` |
//! | `GET /v1/models/{owner}/{name}` | the model, with `latest_version.openapi_schema` |
//! | `GET /v1/models/{owner}/{name}/versions/{id}` | one version, with `openapi_schema` |
//! | `POST /v1/models/{owner}/{name}/versions/{id}/trainings` | create a training (`destination` required) |
//! | `GET /v1/trainings/{id}`, `POST /v1/trainings/{id}/cancel` | read, cancel a training |
//! | `GET /_simulator/deliveries[?prediction=ID]` | every delivery attempt so far |
//!
//! # Lifecycle
//!
//! `starting` for [`Script::start_delay`], then `processing` with a log line, then
//! [`Script::steps`] steps each adding a log line and output, then the outcome (`succeeded`,
//! `failed` or `canceled`). The script comes from the simulator's flags and can be changed per
//! request with headers: `x-simulator-outcome`, `x-simulator-steps`, `x-simulator-step-ms`,
//! `x-simulator-start-ms`. `Prefer: wait[=n]` and `Cancel-After` are honoured.
//!
//! # Deliveries
//!
//! A POST of the prediction JSON to the `webhook` URL as given, with Standard Webhooks headers
//! signed with the simulator's secret; only the events of `webhook_events_filter` (default
//! `output` and `completed`); `output` and `logs` at most once per throttle interval (500 ms,
//! latest state wins); `start` and `completed` never throttled; only the terminal webhook
//! retried (non-2xx, redirect or connection failure) on the retry schedule, with the same
//! `webhook-id` and a fresh timestamp and signature; redirects are not followed.

mod api;
mod deliver;
mod lifecycle;
pub mod models;
mod trainings;

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use actix_web::{App, HttpServer, web};
use replicate_webhook::{Event, Secret, Status};
use secrecy::SecretString;

pub use deliver::DeliveryRecord;

/// How a prediction ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// `succeeded` with the full output.
    Succeeded,
    /// `failed` with an error message.
    Failed,
    /// `canceled` (as if by its deadline, or by the user).
    Canceled,
}

impl Outcome {
    /// Parses `succeeded`, `failed` or `canceled`.
    pub fn parse(text: &str) -> Option<Self> {
        match Status::parse(text.trim()) {
            Status::Succeeded => Some(Self::Succeeded),
            Status::Failed => Some(Self::Failed),
            Status::Canceled => Some(Self::Canceled),
            _ => None,
        }
    }

    /// The terminal status.
    pub fn status(self) -> Status {
        match self {
            Self::Succeeded => Status::Succeeded,
            Self::Failed => Status::Failed,
            Self::Canceled => Status::Canceled,
        }
    }
}

/// The lifecycle of one prediction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Script {
    /// Time spent `starting`.
    pub start_delay: Duration,
    /// Number of output steps while `processing`.
    pub steps: u32,
    /// Time between steps.
    pub step: Duration,
    /// How it ends.
    pub outcome: Outcome,
}

impl Default for Script {
    fn default() -> Self {
        Self {
            start_delay: Duration::from_millis(300),
            steps: 3,
            step: Duration::from_millis(600),
            outcome: Outcome::Succeeded,
        }
    }
}

/// Fault injection.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Faults {
    /// Events whose deliveries are sent twice (same `webhook-id`).
    pub duplicate: BTreeSet<Event>,
    /// Events whose deliveries are never sent (not retried either).
    pub drop: BTreeSet<Event>,
    /// Intermediate deliveries are held back and sent after the next delivery.
    pub reorder: bool,
    /// Every delivery waits this long before its first attempt.
    pub delay: Duration,
}

/// Everything the simulator needs. `Debug` shows neither the secret nor the token.
#[derive(Debug, Clone)]
pub struct Config {
    /// The secret deliveries are signed with and `GET /v1/webhooks/default/secret` returns.
    pub secret: Secret,
    /// When set, API calls must carry `Authorization: Bearer <token>`.
    pub token: Option<SecretString>,
    /// A directory of schema files (`owner/name.json` or `owner__name.json`).
    pub schemas: Option<PathBuf>,
    /// The default lifecycle.
    pub script: Script,
    /// Minimum time between two `output`/`logs` deliveries of one prediction.
    pub throttle: Duration,
    /// Delays between attempts of a terminal delivery; its length is the number of retries.
    pub retry_schedule: Vec<Duration>,
    /// Time allowed for one delivery attempt.
    pub delivery_timeout: Duration,
    /// Fault injection.
    pub faults: Faults,
    /// Predictions per page of `GET /v1/predictions`.
    pub page_size: usize,
    /// Statuses answered, in order, to the next API calls (e.g. `429`, `503`; `0` answers normally).
    pub api_errors: Vec<u16>,
    /// Print one line per delivery attempt on stderr.
    pub verbose: bool,
}

impl Config {
    /// Defaults like Replicate's: 500 ms throttle, retries for about a minute.
    pub fn new(secret: Secret) -> Self {
        Self {
            secret,
            token: None,
            schemas: None,
            script: Script::default(),
            throttle: Duration::from_millis(500),
            retry_schedule: default_retry_schedule(),
            delivery_timeout: Duration::from_secs(5),
            faults: Faults::default(),
            page_size: 100,
            api_errors: Vec::new(),
            verbose: false,
        }
    }
}

/// 1, 2, 4, 8, 16 and 30 s: the last retry about a minute after completion.
pub fn default_retry_schedule() -> Vec<Duration> {
    [1, 2, 4, 8, 16, 30]
        .into_iter()
        .map(Duration::from_secs)
        .collect()
}

/// One simulated prediction.
#[derive(Debug)]
struct Sim {
    body: serde_json::Value,
    events: BTreeSet<Event>,
    webhook: Option<String>,
    created: Instant,
    last_intermediate: Option<Instant>,
    pending_intermediate: Option<Event>,
    held: Option<deliver::Delivery>,
}

impl Sim {
    fn status(&self) -> &str {
        self.body["status"].as_str().unwrap_or_default()
    }

    fn is_terminal(&self) -> bool {
        Status::parse(self.status()).is_terminal()
    }
}

#[derive(Debug, Default)]
struct Inner {
    order: Vec<String>,
    predictions: HashMap<String, Sim>,
    deliveries: Vec<DeliveryRecord>,
    api_errors: VecDeque<u16>,
}

/// Shared simulator state.
#[derive(Debug)]
struct State {
    config: Config,
    models: models::Models,
    api_base: String,
    http: reqwest::Client,
    inner: Mutex<Inner>,
}

impl State {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves plain data behind: keep serving.
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// A running simulator.
#[derive(Debug)]
pub struct Running {
    /// The address it listens on.
    pub addr: SocketAddr,
    /// `http://ADDR/v1`.
    pub api_base: String,
    /// Stops the server.
    pub handle: actix_web::dev::ServerHandle,
}

/// Binds `listener` and returns the server future and its description. Run the future on an
/// actix system (`actix_web::rt::System`).
pub fn serve(
    config: Config,
    listener: TcpListener,
) -> std::io::Result<(actix_web::dev::Server, Running)> {
    let addr = listener.local_addr()?;
    let api_base = format!("http://{addr}/v1");
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(config.delivery_timeout)
        .user_agent(concat!(
            "replicate-webhook-simulator/",
            env!("CARGO_PKG_VERSION")
        ))
        .build()
        .map_err(std::io::Error::other)?;
    let state = Arc::new(State {
        models: models::Models::new(config.schemas.clone()),
        inner: Mutex::new(Inner {
            api_errors: config.api_errors.iter().copied().collect(),
            ..Inner::default()
        }),
        config,
        api_base: api_base.clone(),
        http,
    });
    let data = web::Data::from(state);
    let server = HttpServer::new(move || App::new().app_data(data.clone()).configure(api::routes))
        .workers(1)
        .disable_signals()
        .listen(listener)?
        .run();
    let handle = server.handle();
    Ok((
        server,
        Running {
            addr,
            api_base,
            handle,
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_hides_the_secret_and_the_token() {
        let secret = Secret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let config = Config {
            token: Some("r8_supersecret".into()),
            ..Config::new(secret)
        };
        let shown = format!("{config:?}");
        assert!(!shown.contains("MfKQ9r8"), "{shown}");
        assert!(!shown.contains("supersecret"), "{shown}");
    }

    #[test]
    fn the_default_schedule_lasts_about_a_minute() {
        let total: Duration = default_retry_schedule().iter().sum();
        assert!((50..=70).contains(&total.as_secs()), "{total:?}");
    }
}
