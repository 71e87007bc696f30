//! Not public API. Used by generated code: every path the attributes emit starts here (or at
//! `::core`/`::std`), so user crates need none of these dependencies themselves and a renamed
//! `replicate-webhook` works through `crate = "..."`.

pub use std::boxed::Box;
pub use std::result::Result::{Err, Ok};

pub use ::inventory;
pub use ::serde;
pub use ::serde_json;
pub use ::url::Url;

/// The receiver's own decode path, for the benchmarks to measure rather than copy.
pub use crate::envelope::{Decoded, Envelope, typed};
pub use crate::glue::{
    DeadLetterInput, DecodeErrorInput, Extractor, assert_extractor, dead_letter_input,
    decode_error_input, extract, handler_future, input, outcome,
};
pub use crate::handler::{Call, HandlerFuture, HandlerInput, HandlerKind, HandlerReturn, Outcome};
pub use crate::prediction::Event;
pub use crate::registry::{HandlerEntry, HandlerFn, Registration, WebhookSpec};
pub use crate::training::BodyKind;
