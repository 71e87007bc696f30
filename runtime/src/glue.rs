//! What generated handler wrappers call. The macro spans each call at the user's own tokens, so
//! the bounds here (and their `on_unimplemented` notes) are what a wrong type is reported as.

use crate::handler::{Call, HandlerFuture, HandlerInput, HandlerReturn, Outcome};

/// Converts a handler's return value; spanned at the user's return type by the macro.
pub fn outcome<R: HandlerReturn>(value: R) -> Outcome {
    value.into_outcome()
}

/// Boxes a generated handler body; `Err` short-cuts a failed decode or extraction.
pub fn handler_future<F>(body: F) -> HandlerFuture
where
    F: Future<Output = Result<Outcome, Outcome>> + 'static,
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

/// The first argument of `on_dead`; spanned at the user's argument type.
pub fn dead_letter_input<T: DeadLetterInput>(call: &Call) -> Result<T, Outcome> {
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
pub trait Extractor: actix_web::FromRequest {}
impl<T: actix_web::FromRequest> Extractor for T {}

/// `on_decode_error` takes the decode error, not a prediction.
#[diagnostic::on_unimplemented(
    message = "`on_decode_error` takes `replicate_webhook::DecodeError`, not `{Self}`",
    label = "expected `DecodeError` here",
    note = "write `async fn on_decode_error(error: DecodeError) -> Result<(), HandlerError>`; \
            `error.prediction()` and `error.raw()` give the body"
)]
pub trait DecodeErrorInput: HandlerInput {}
impl DecodeErrorInput for crate::DecodeError {}

/// `on_dead` takes the dead letter, not a prediction.
#[diagnostic::on_unimplemented(
    message = "`on_dead` takes `replicate_webhook::DeadLetter`, not `{Self}`",
    label = "expected `DeadLetter` here",
    note = "write `async fn on_dead(dead: DeadLetter) -> Result<(), HandlerError>`; \
            `dead.prediction()` gives the body, `dead.error()` the last error"
)]
pub trait DeadLetterInput: HandlerInput {}
impl DeadLetterInput for crate::DeadLetter {}
