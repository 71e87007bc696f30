//! Receive [Replicate](https://replicate.com) prediction webhooks in actix-web: verified,
//! deduplicated, typed.
//!
//! Annotate a module of handlers; the attribute generates the route, the signature check, the
//! dedupe hook and the typed dispatch, and [`configure`] mounts every annotated module:
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
//!     HttpServer::new(move || App::new().configure(replicate_webhook::configure(config.clone())))
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
//!
//! # Handlers in another crate
//!
//! Modules are collected at link time with `inventory`. A library crate whose items the binary
//! never references is not linked, so its handlers are missing; add `use that_crate as _;` to
//! the binary. [`configure`] panics with this advice when it finds no handler at all.

#[cfg(feature = "client")]
pub mod client;
mod config;
pub mod dedupe;
mod error;
mod handler;
mod prediction;
mod progress;
mod registry;
pub mod schema_check;
mod service;
pub mod signature;
#[cfg(feature = "testkit")]
pub mod testkit;

pub use config::{ConfigError, ENV_SECRET, ENV_STORE, WebhookConfig, parse_secrets};
pub use error::HandlerError;
pub use handler::{Call, DecodeError, HandlerInput, HandlerKind, HandlerReturn, Outcome};
pub use prediction::{Event, Metrics, Prediction, Status, Urls};
pub use registry::{ANY_MODEL, DEFAULT_PATH, Module, Registration, SetupError, WebhookSpec};
pub use replicate_webhook_macros::{replicate_model, replicate_webhook};
pub use service::{configure, try_configure};
pub use signature::Secret;
pub use url::Url;

/// Not public API. Used by generated code.
#[doc(hidden)]
pub mod __private {
    pub use std::boxed::Box;
    pub use std::result::Result::{Err, Ok};

    pub use ::inventory;
    pub use ::serde;
    pub use ::serde_json;

    pub use crate::handler::{
        Call, HandlerFuture, HandlerInput, HandlerKind, HandlerReturn, Outcome,
    };
    pub use crate::prediction::Event;
    pub use crate::registry::{HandlerEntry, HandlerFn, Registration, WebhookSpec};

    /// Converts a handler's return value; spanned at the user's return type by the macro.
    pub fn outcome<R: HandlerReturn>(value: R) -> Outcome {
        value.into_outcome()
    }

    /// Boxes a generated handler body; `Err` short-cuts a failed decode or extraction.
    pub fn handler_future<F>(body: F) -> HandlerFuture
    where
        F: ::core::future::Future<Output = Result<Outcome, Outcome>> + 'static,
    {
        Box::pin(async move {
            match body.await {
                Ok(outcome) | Err(outcome) => outcome,
            }
        })
    }

    /// Decodes a handler's first argument; spanned at the user's argument type by the macro.
    pub fn input<T: HandlerInput>(call: &Call) -> Result<T, Outcome> {
        call.input::<T>().map_err(Outcome::Decode)
    }

    /// The first argument of `on_decode_error`; spanned at the user's argument type.
    pub fn decode_error_input<T: DecodeErrorInput>(call: &Call) -> Result<T, Outcome> {
        call.input::<T>().map_err(Outcome::Decode)
    }

    /// Runs the extractor of a further handler argument; spanned at the user's argument type.
    pub async fn extract<T: Extractor>(call: &Call, position: usize) -> Result<T, Outcome> {
        call.extract::<T>().await.map_err(|e| Outcome::Extract {
            position,
            message: e.to_string(),
        })
    }

    /// Asserts at compile time that a further handler argument is an actix extractor.
    pub fn assert_extractor<T: Extractor>() {}

    /// Further handler arguments must be actix extractors.
    #[diagnostic::on_unimplemented(
        message = "`{Self}` cannot be an argument of a Replicate webhook handler",
        label = "not an actix-web extractor",
        note = "arguments after the prediction must implement `actix_web::FromRequest`, \
                e.g. `web::Data<T>`, `HttpRequest` or `web::Query<T>`"
    )]
    pub trait Extractor: ::actix_web::FromRequest {}
    impl<T: ::actix_web::FromRequest> Extractor for T {}

    /// `on_decode_error` takes the decode error, not a prediction.
    #[diagnostic::on_unimplemented(
        message = "`on_decode_error` takes `replicate_webhook::DecodeError`, not `{Self}`",
        label = "expected `DecodeError` here",
        note = "write `async fn on_decode_error(error: DecodeError) -> Result<(), HandlerError>`; \
                `error.prediction()` and `error.raw()` give the body"
    )]
    pub trait DecodeErrorInput: HandlerInput {}
    impl DecodeErrorInput for crate::DecodeError {}
}
