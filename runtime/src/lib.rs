//! Receive [Replicate](https://replicate.com) prediction webhooks in actix-web: verified,
//! deduplicated, typed.
//!
//! Annotate a module of handlers; the attribute generates the route, the signature check, the
//! dedupe hook and the typed dispatch; [`WebhookConfig::build`] builds the receiver of every
//! annotated module once, and each actix worker mounts it with [`Webhooks::configure`]:
//!
//! ```no_run
//! use actix_web::{App, HttpServer};
//! use replicate_webhook::{HandlerError, Prediction, WebhookConfig, replicate_webhook};
//!
//! #[replicate_webhook(model = "replicate/hello-world", events = ["start", "completed"])]
//! mod hello {
//!     use super::*;
//!
//!     pub async fn on_start(p: Prediction) -> Result<(), HandlerError> {
//!         println!("started {}", p.id);
//!         Ok(())
//!     }
//!
//!     pub async fn on_succeeded(p: Prediction<String>) -> Result<(), HandlerError> {
//!         println!("{}", p.output.unwrap_or_default());
//!         Ok(())
//!     }
//!
//!     pub async fn on_failed(p: Prediction) -> Result<(), HandlerError> {
//!         eprintln!("{} failed: {:?}", p.id, p.error);
//!         Ok(())
//!     }
//! }
//!
//! #[actix_web::main]
//! async fn main() -> std::io::Result<()> {
//!     let config = WebhookConfig::from_env().expect("REPLICATE_WEBHOOK_SECRET");
//!     let webhooks = config.build().unwrap_or_else(|e| panic!("{e}"));
//!     HttpServer::new(move || App::new().configure(webhooks.configure()))
//!         // A kept-alive connection's next request head has no deadline in actix-web:
//!         // without keep-alive, `client_request_timeout` bounds every request's head.
//!         .keep_alive(actix_web::http::KeepAlive::Disabled)
//!         .bind(("127.0.0.1", 8080))?
//!         .run()
//!         .await
//! }
//! ```
//!
//! # What a delivery gets
//!
//! | Situation | Status |
//! |---|---|
//! | handled, or a duplicate of a handled delivery | 200 |
//! | body larger than the limit (default 8 MiB, checked on `Content-Length` first) | 413 |
//! | missing, malformed or wrong signature, stale or future timestamp | 401 |
//! | verified body that is not a prediction | 400 |
//! | the same delivery is being handled by another worker | 409 + `Retry-After` |
//! | handler returned a retryable error, or panicked | 500 (Replicate retries terminal webhooks) |
//! | dedupe store unreachable | 503 |
//! | inbox mode: stored as a job (a worker runs the handler) | 200 |
//! | inbox mode: the inbox cannot store it | 503 |
//!
//! # Handlers in another crate
//!
//! Modules are collected at link time with `inventory`. A library crate whose items the binary
//! never references is not linked, so its handlers are missing; add `use that_crate as _;` to
//! the binary. [`WebhookConfig::build`] fails with this advice when it finds no handler at all
//! (and [`configure`], the shorthand, panics with it).
//!
//! # Cargo features
//!
//! None is on by default. Items that need one say so, and on docs.rs carry its name.
//!
#![doc = document_features::document_features!()]
// docs.rs builds with nightly and `--cfg docsrs`: there the feature-gated items get a label.
#![cfg_attr(docsrs, feature(doc_cfg))]

mod answer;
mod auth;
mod background;
mod backoff;
mod body;
mod borrowed;
#[cfg(feature = "client")]
#[cfg_attr(docsrs, doc(cfg(feature = "client")))]
pub mod client;
mod clock;
mod config;
#[cfg(feature = "dashboard")]
#[cfg_attr(docsrs, doc(cfg(feature = "dashboard")))]
pub mod dashboard;
pub mod dedupe;
mod envelope;
mod error;
#[cfg(feature = "files")]
#[cfg_attr(docsrs, doc(cfg(feature = "files")))]
pub mod files;
#[cfg(test)]
mod fixtures;
mod glue;
mod handler;
pub mod inbox;
pub mod journal;
pub mod live;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
mod migrate;
pub mod monitor;
#[cfg(feature = "otel")]
#[cfg_attr(docsrs, doc(cfg(feature = "otel")))]
pub mod otel;
mod prediction;
mod query;
mod receiver;
#[cfg(feature = "client")]
#[cfg_attr(docsrs, doc(cfg(feature = "client")))]
pub mod reconcile;
mod refusals;
mod registry;
pub mod secrets;
mod service;
pub mod signature;
pub mod sse;
#[cfg(feature = "testkit")]
#[cfg_attr(docsrs, doc(cfg(feature = "testkit")))]
pub mod testkit;
mod training;
mod verified;
#[cfg(feature = "client")]
mod watcher;
mod webhooks;

pub use auth::Sender;
pub use auth::tenant::{NoTenant, Tenant, Tenants};
pub use config::{
    CogToken, ConfigError, ENV_COG_TOKEN, ENV_DASHBOARD_TOKEN, ENV_SECRET, ENV_STORE,
    WebhookConfig, parse_secrets,
};
pub use error::HandlerError;
pub use handler::{DeadLetter, DecodeError, HandlerKind};
pub use prediction::{Event, Metrics, Prediction, Status, Urls};
pub use query::{SignedQuery, SignedQueryError};
pub use registry::{ANY_MODEL, DEFAULT_PATH, Module, SetupError, WebhookSpec};
/// Generates typed `Input` and `Output` for a model from its pinned `openapi_schema` file.
///
/// ```ignore
/// use replicate_webhook::replicate_model;
///
/// // The file: `GET /v1/models/{owner}/{name}` (or the version, or its `openapi_schema`),
/// // path relative to this crate's Cargo.toml.
/// #[replicate_model(schema = "schemas/black-forest-labs/flux-schnell.json")]
/// mod flux {}
///
/// let input = flux::Input {
///     aspect_ratio: flux::AspectRatio::V16_9,
///     seed: Some(42),
///     ..flux::Input::new("a fox in the snow") // required fields; the rest at schema defaults
/// };
/// let body = serde_json::json!({ "input": input });
/// let output: flux::Output = serde_json::from_value(prediction_output)?; // Vec<Url>
/// ```
///
/// The module gets `Input` (a struct: `Input::new(required…)`, `Input::default_<field>()`,
/// `Default` when nothing is required), `Output` (a type alias, struct or enum), and the enums
/// and structs they use. The same types come with `#[replicate_webhook(schema = "…")]`.
/// When `Cargo.toml` renames this crate, say so with `crate = "new_name"`.
///
/// | Schema | Rust |
/// |---|---|
/// | `integer` with `minimum`/`maximum` (or `ge`/`le`) | the smallest fitting integer (`0..=100` → `u8`); unbounded → `i64` |
/// | `number` / `boolean` / `string` | `f64` / `bool` / `String` |
/// | `string` + `format: uri` (files, also `data:` URIs) | [`Url`] |
/// | `format: password` / `x-cog-secret` | `Secret` (generated; `Debug` redacted) |
/// | `enum` (also behind `allOf: [{"$ref": …}]`) | an enum: `V16_9` for `"16:9"`, `V0_25` for `"0.25"`, integers as numbers; `ALL`, `as_str()`, `Display` |
/// | `array` (also `x-cog-array-type: iterator`) | `Vec<T>` |
/// | `Output` iterator with `x-cog-array-display: concatenate` | `Output(pub Vec<String>)`: `text()` joins, `Deref` to the chunks |
/// | `object` with `properties` | a struct named from its `title` or property |
/// | `object` without properties, `{}`, untyped | `serde_json::Value` / `Map` |
/// | `anyOf` / `oneOf` | an untagged enum (`null` branches make it optional) |
/// | not required, no default / `nullable` | `Option<T>` (left out when `None` / sent as `null`) |
/// | `default` | filled in when missing on deserialize; `Input::default_<field>()` |
///
/// Descriptions become doc comments, `x-order` is the field order, JSON names that are not
/// snake case or are keywords are renamed (`fileSize` → `file_size`, `type` → `r#type`).
/// A missing file, invalid JSON or a broken schema is a compile error on the `schema` string
/// naming the JSON path (`components.schemas.Input.properties.foo.type: unsupported type
/// "tuple"`). Cargo rebuilds when the file changes. Check a pinned file against the API with
/// `replicate-webhook schema check`.
pub use replicate_webhook_macros::replicate_model;
/// Turns an inline module of `async fn on_*` handlers into a webhook receiver for one model.
///
/// ```
/// use actix_web::web;
/// use replicate_webhook::{DecodeError, HandlerError, Prediction, replicate_webhook};
///
/// struct Db;
///
/// #[replicate_webhook(model = "black-forest-labs/flux-schnell", events = ["start", "completed"])]
/// mod flux {
///     use super::*;
///
///     pub async fn on_start(p: Prediction) -> Result<(), HandlerError> {
///         println!("{} started", p.id);
///         Ok(())
///     }
///
///     // Further arguments are actix extractors, here the app's `web::Data<Db>`.
///     pub async fn on_succeeded(p: Prediction<Vec<String>>, db: web::Data<Db>) -> Result<(), HandlerError> {
///         let _ = (p.output, db);
///         Ok(())
///     }
///
///     pub async fn on_failed(p: Prediction) -> Result<(), HandlerError> {
///         Err(HandlerError::permanent(p.error.unwrap_or_default()))
///     }
///
///     pub async fn on_decode_error(e: DecodeError) -> Result<(), HandlerError> {
///         eprintln!("output changed shape: {e}");
///         Ok(())
///     }
/// }
///
/// fn main() {
///     // One source of truth for the route and for the predictions the client creates.
///     assert_eq!(flux::WEBHOOK.path, "/webhooks/replicate");
///     assert_eq!(flux::WEBHOOK.events_filter(), ["start", "completed"]);
/// }
/// ```
///
/// [`WebhookConfig::build`] collects every annotated module, and
/// `App::new().configure(webhooks.configure())` mounts them; you do not list them.
///
/// # Arguments
///
/// | Argument | Value | Default |
/// |---|---|---|
/// | `model` | `"owner/name"`, or `"*"` for any model no other module claims | required |
/// | `events` | `"completed"` or an array of `"start"`, `"output"`, `"logs"`, `"completed"` | `"completed"` |
/// | `path` | a plain route starting with `/` (no `{..}` parameters); several modules may share one | `"/webhooks/replicate"` |
/// | `schema` | a model schema file, relative to the crate's `Cargo.toml`: generates `Input` and `Output` in the module (see [`replicate_model`]) | none |
/// | `inbox` | `true`: deliveries are stored and acknowledged at once, workers run the handlers with retries (see [`inbox`]); needs [`WebhookConfig::inbox`] | `false` |
/// | `concurrency` | in inbox mode, how many of this module's jobs one worker runs at once | 4 per core |
/// | `crate` | the path of this crate when `Cargo.toml` renames it, e.g. `crate = "webhooks"` for `webhooks = { package = "replicate-webhook", .. }` | `"::replicate_webhook"` |
///
/// # Handlers
///
/// Functions named `on_*` are handlers; every other item of the module is left as it is.
///
/// | Handler | Runs for | Needs event |
/// |---|---|---|
/// | `on_start` | status `starting` | `start` |
/// | `on_output` | status `processing` with new output | `output` |
/// | `on_logs` | status `processing` with only new logs | `logs` |
/// | `on_succeeded`, `on_failed`, `on_canceled` | that terminal status | `completed` |
/// | `on_aborted` | status `aborted`; `on_canceled` gets it when `on_aborted` is absent | `completed` |
/// | `on_decode_error` | a verified body that did not decode into another handler's types | any |
/// | `on_dead` | in inbox mode, a job given up on; takes [`DeadLetter`] | any |
///
/// Each handler is an `async fn`. Its first argument is the typed [`Prediction<Output, Input>`](Prediction)
/// (`on_decode_error` takes [`DecodeError`]); further arguments are any actix-web
/// extractors (`web::Data<T>`, `HttpRequest`, `web::Query<T>`, ...). It returns
/// `Result<(), E>` with `E: Into<HandlerError>`: `Ok` marks the delivery done, a retryable error
/// (or a panic) answers 500 so Replicate retries, a permanent one is logged and acknowledged.
/// A failing extractor answers 500 and is logged.
///
/// The attribute also emits `pub const WEBHOOK: WebhookSpec` in the module: its model, path and
/// events, for creating predictions whose `webhook` and `webhook_events_filter` match.
///
/// # Compile errors
///
/// Mistakes are reported on your own tokens, all in one build: an unknown or repeated argument,
/// an unknown event, a `model` that is not `owner/name` or `*`, an unknown `on_*` name (with a
/// suggestion), a handler for an event the module does not subscribe to, `completed` without any
/// terminal handler, a handler that is not `async`, a first argument that is not a prediction, a
/// further argument that is not an extractor, a wrong return type, and the attribute on
/// anything but an inline `mod name { ... }`.
pub use replicate_webhook_macros::replicate_webhook;
pub use signature::Secret;
pub use training::{BodyKind, Training, TrainingOutput};
pub use url::Url;
pub use webhooks::{Webhooks, configure, try_configure};

/// Not public API. Used by generated code.
#[doc(hidden)]
#[path = "private.rs"]
pub mod __private;
