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
//! | `GET /_simulator/reads[?prediction=ID]` | every `GET /v1/predictions/{id}` so far: `[{"prediction_id", "account", "status"}]` (`account` 0 is the main one, `n` the `n`th of `Config::accounts`; an account reads only its own predictions) |
//! | `POST /_simulator/rotate-secret` | a new signing secret for the caller's account: `{"key": "whsec_…"}` |
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
mod coglet;
mod config;
mod deliver;
mod lifecycle;
pub mod models;
mod request;
mod state;
mod trainings;

use std::net::{SocketAddr, TcpListener};
use std::sync::{Arc, Mutex};

use actix_web::{App, HttpServer, web};

pub use coglet::{
    Sender, USER_AGENT as COGLET_USER_AGENT, body as coglet_body, headers as coglet_headers,
};
pub use config::{Account, Config, Faults, Outcome, Script, default_retry_schedule};
pub use deliver::DeliveryRecord;
use state::{Inner, Sim, State};

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
        secrets: Mutex::new(
            std::iter::once(config.secret.clone())
                .chain(config.accounts.iter().map(|a| a.secret.clone()))
                .collect(),
        ),
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
