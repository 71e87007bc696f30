//! What a handler receives and returns, independent of how it was registered.

use std::cell::Cell;
use std::fmt;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use actix_web::web::Bytes;
use actix_web::{FromRequest, HttpRequest};
use futures_util::FutureExt as _;
use serde::de::DeserializeOwned;

use crate::envelope::Decoded;
use crate::{HandlerError, Prediction};

pub use replicate_webhook_core::HandlerKind;

/// The future a handler call returns. Local: actix extractors and handlers need not be `Send`.
pub type HandlerFuture = Pin<Box<dyn Future<Output = Outcome> + 'static>>;

/// A registered handler, however it was registered.
pub(crate) type DynHandler = Arc<dyn Fn(Call) -> HandlerFuture + Send + Sync>;

/// One verified delivery on its way into a handler: the request (for extractors) and the raw body.
#[derive(Clone)]
pub struct Call {
    req: HttpRequest,
    body: Bytes,
    decode_error: Option<String>,
    dead: Option<DeadLetter>,
    /// The body as the receiver decoded it to route it, for the first typed decode to start
    /// from instead of parsing the body again.
    decoded: Rc<Cell<Option<Box<Decoded>>>>,
}

impl fmt::Debug for Call {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Call")
            .field("path", &self.req.path())
            .field("body_len", &self.body.len())
            .finish_non_exhaustive()
    }
}

impl Call {
    pub(crate) fn new(req: HttpRequest, body: Bytes) -> Self {
        Self {
            req,
            body,
            decode_error: None,
            dead: None,
            decoded: Rc::default(),
        }
    }

    pub(crate) fn with_decoded(self, decoded: Option<Box<Decoded>>) -> Self {
        self.decoded.set(decoded);
        self
    }

    pub(crate) fn with_dead_letter(mut self, dead: DeadLetter) -> Self {
        self.dead = Some(dead);
        self
    }

    pub(crate) fn with_decode_error(mut self, error: String) -> Self {
        self.decode_error = Some(error);
        self
    }

    /// Decodes the handler's first argument from the body.
    pub fn input<T: HandlerInput>(&self) -> Result<T, DecodeError> {
        T::from_call(self)
    }

    /// Runs an actix extractor for one of the handler's further arguments. Body extractors
    /// (`web::Bytes`, `web::Json<T>`, ...) read the verified body, which was consumed already.
    pub async fn extract<T: FromRequest>(&self) -> Result<T, actix_web::Error> {
        let mut payload = actix_web::dev::Payload::from(self.body.clone());
        T::from_request(&self.req, &mut payload)
            .await
            .map_err(Into::into)
    }

    /// The request the delivery came in.
    pub fn request(&self) -> &HttpRequest {
        &self.req
    }

    /// The raw, verified body.
    pub fn body(&self) -> &Bytes {
        &self.body
    }
}

/// A verified body that did not decode into a handler's types (schema drift, a new version).
///
/// This is what `on_decode_error` receives: the error and the raw JSON.
#[derive(Debug, Clone)]
pub struct DecodeError {
    message: String,
    body: Bytes,
}

impl DecodeError {
    pub(crate) fn new(message: String, body: Bytes) -> Self {
        Self { message, body }
    }

    /// What did not decode, as serde reported it (with line and column).
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The raw JSON body.
    pub fn body(&self) -> &[u8] {
        &self.body
    }

    /// The body as an untyped prediction (it decoded this far before reaching the handler).
    pub fn prediction(&self) -> Option<Prediction> {
        serde_json::from_slice(&self.body).ok()
    }

    /// The body as untyped JSON.
    pub fn raw(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// A job the inbox gave up on: what `on_dead` receives. It stays in the inbox as `dead` until
/// `replicate-webhook inbox replay` or `discard`.
#[derive(Debug, Clone)]
pub struct DeadLetter {
    pub(crate) job: i64,
    pub(crate) handler: &'static str,
    pub(crate) attempts: u32,
    pub(crate) error: String,
    pub(crate) body: Bytes,
}

impl DeadLetter {
    /// The job's id in the inbox (what `inbox show`, `replay` and `discard` take).
    pub fn job(&self) -> i64 {
        self.job
    }

    /// The handler that failed, e.g. `on_succeeded`.
    pub fn handler(&self) -> &'static str {
        self.handler
    }

    /// How many times the handler ran.
    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    /// The last error.
    pub fn error(&self) -> &str {
        &self.error
    }

    /// The delivery's raw JSON body.
    pub fn body(&self) -> &[u8] {
        &self.body
    }

    /// The body as an untyped prediction.
    pub fn prediction(&self) -> Option<Prediction> {
        serde_json::from_slice(&self.body).ok()
    }
}

impl HandlerInput for DeadLetter {
    fn from_call(call: &Call) -> Result<Self, DecodeError> {
        call.dead.clone().ok_or_else(|| {
            DecodeError::new(
                "on_dead runs only for dead inbox jobs".to_owned(),
                call.body.clone(),
            )
        })
    }
}

/// Types that can be a webhook handler's first argument.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be the first argument of a Replicate webhook handler",
    label = "expected `Prediction<Output, Input>` here",
    note = "write `async fn on_succeeded(p: Prediction<Output, Input>) -> Result<(), HandlerError>`; \
            `Output` and `Input` may be any `serde::de::DeserializeOwned` type, and default to `serde_json::Value`",
    note = "`on_decode_error` takes `replicate_webhook::DecodeError` instead"
)]
pub trait HandlerInput: Sized + 'static {
    /// Builds the argument from a verified delivery.
    fn from_call(call: &Call) -> Result<Self, DecodeError>;
}

impl<O: DeserializeOwned + 'static, I: DeserializeOwned + 'static> HandlerInput
    for Prediction<O, I>
{
    fn from_call(call: &Call) -> Result<Self, DecodeError> {
        // Only `input` and `output` are left to decode. When they do not fit `I` and `O`, the
        // whole body is decoded below for serde's error, positioned in the body.
        if let Some(decoded) = call.decoded.take()
            && let Ok(prediction) = crate::envelope::typed(decoded)
        {
            return Ok(prediction);
        }
        // One UTF-8 check of the whole body, then `from_str`, which skips the check per string:
        // 11-15 % faster on real payloads (`bench/run`, decode rows). Bytes that are not UTF-8
        // go through `from_slice` for its error message.
        match std::str::from_utf8(&call.body) {
            Ok(text) => serde_json::from_str(text),
            Err(_) => serde_json::from_slice(&call.body),
        }
        .map_err(|e| DecodeError::new(e.to_string(), call.body.clone()))
    }
}

impl HandlerInput for DecodeError {
    fn from_call(call: &Call) -> Result<Self, DecodeError> {
        let message = call
            .decode_error
            .clone()
            .unwrap_or_else(|| "no decode error".to_owned());
        Ok(DecodeError::new(message, call.body.clone()))
    }
}

/// What a handler's return value means for the delivery.
#[derive(Debug)]
pub enum Outcome {
    /// The handler ran and returned `Ok`.
    Done,
    /// The handler returned an error.
    Failed(HandlerError),
    /// The body did not decode into the handler's first argument.
    Decode(DecodeError),
    /// An extractor argument failed.
    Extract {
        /// The 0-based position of the argument.
        position: usize,
        /// The extractor's error message.
        message: String,
    },
}

/// What an [`Outcome`] means for its delivery: the one reading of it, inline and in the inbox.
#[derive(Debug)]
pub(crate) enum Verdict {
    /// Handled (or failed for good): record it so it never runs again; the text says how.
    Done(&'static str),
    /// Failed for now: run it again later (Replicate's retry, or the inbox's). `answer` is what
    /// the sender is told, `error` what is logged and kept.
    Retry { answer: &'static str, error: String },
    /// Failed for good: inline it is recorded as handled, in the inbox the job dies.
    GiveUp(String),
}

impl Outcome {
    /// The verdict on this outcome, logged once here for both ways of running a handler. The
    /// lines name the prediction themselves: the spans around them are INFO, and are not
    /// recorded where only warnings and errors are logged.
    pub(crate) fn verdict(self, handler: &'static str, prediction: &str) -> Verdict {
        match self {
            Self::Done => Verdict::Done("done"),
            Self::Decode(e) => {
                tracing::error!(prediction, error = %e, handler, "body does not decode into the handler's types");
                Verdict::Done("decode error handled")
            }
            Self::Failed(e) if e.is_retryable() => {
                tracing::error!(prediction, error = %e, handler, "handler failed; it will be retried");
                Verdict::Retry {
                    answer: "handler failed; retry",
                    error: e.to_string(),
                }
            }
            Self::Failed(e) => {
                tracing::error!(prediction, error = %e, handler, "handler failed permanently; not retried");
                Verdict::GiveUp(e.to_string())
            }
            Self::Extract { position, message } => {
                tracing::error!(
                    prediction,
                    position,
                    error = message,
                    handler,
                    "handler argument extraction failed"
                );
                Verdict::Retry {
                    answer: "handler argument extraction failed",
                    error: format!("handler argument {position} extraction failed: {message}"),
                }
            }
        }
    }
}

/// Runs `handler` within `timeout`: a panic is caught, so the server or worker survives, and
/// like a timeout it is a retryable failure (dropping the handler's future cancels it at its
/// next await). A body that does not decode goes to `on_decode_error` when there is one.
pub(crate) async fn run(
    handler: &DynHandler,
    on_decode_error: Option<&DynHandler>,
    call: Call,
    timeout: Duration,
) -> Outcome {
    let attempt = async {
        match (catch(handler, call.clone()).await, on_decode_error) {
            (Outcome::Decode(e), Some(hook)) => {
                catch(hook, call.with_decode_error(e.message().to_owned())).await
            }
            (outcome, _) => outcome,
        }
    };
    tokio::time::timeout(timeout, attempt)
        .await
        .unwrap_or_else(|_| {
            Outcome::Failed(HandlerError::retry(format!(
                "handler did not finish within {} ms",
                timeout.as_millis()
            )))
        })
}

async fn catch(handler: &DynHandler, call: Call) -> Outcome {
    AssertUnwindSafe(handler(call))
        .catch_unwind()
        .await
        .unwrap_or_else(|panic| {
            let text = panic
                .downcast_ref::<&str>()
                .copied()
                .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
                .unwrap_or("non-string panic payload");
            Outcome::Failed(HandlerError::retry(format!("handler panicked: {text}")))
        })
}

/// Return types a handler may have: `Result<(), E>` with `E: Into<HandlerError>`, or `()`.
#[diagnostic::on_unimplemented(
    message = "a Replicate webhook handler must return `Result<(), E>` where `E: Into<HandlerError>`",
    label = "this handler returns `{Self}`",
    note = "return `Ok(())` when the delivery was handled, `Err(HandlerError::retry(..))` to have Replicate retry"
)]
pub trait HandlerReturn {
    /// Converts the return value into an outcome.
    fn into_outcome(self) -> Outcome;
}

impl<E: Into<HandlerError>> HandlerReturn for Result<(), E> {
    fn into_outcome(self) -> Outcome {
        match self {
            Ok(()) => Outcome::Done,
            Err(e) => Outcome::Failed(e.into()),
        }
    }
}

impl HandlerReturn for () {
    fn into_outcome(self) -> Outcome {
        Outcome::Done
    }
}
