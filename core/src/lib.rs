//! Implementation detail of `replicate-webhook`: the contract's vocabulary, written once.
//!
//! The `#[replicate_webhook]` attribute (a proc-macro crate) and the runtime both depend on this
//! crate, so the names the attribute accepts and the ones the runtime dispatches on are the same
//! values, not two lists kept in step by hand. Users depend on `replicate-webhook`, which
//! re-exports what they need.

mod handler;
mod report;
mod rules;
#[cfg(feature = "schema")]
pub mod schema;
mod status;

pub use handler::HandlerKind;
pub use report::error_chain;
pub use rules::{
    ANY_MODEL, DEFAULT_PATH, PathError, is_name_part, is_plain_path, path_error, split_model,
};
pub use status::{Event, Status};
