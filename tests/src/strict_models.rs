//! `#[replicate_model]` in a library under the strictest lints a user may set.
//!
//! Public generated types without a schema description must not trip `missing_docs`, schema
//! text must not trip clippy or become doctests, and nothing may need `unsafe`. Building (and
//! doc-testing) this crate is the test.
#![deny(
    missing_docs,
    unreachable_pub,
    unused_qualifications,
    unused_results,
    missing_debug_implementations,
    missing_copy_implementations,
    rust_2018_idioms,
    trivial_casts,
    trivial_numeric_casts,
    clippy::pedantic,
    clippy::nursery
)]
#![forbid(unsafe_code)]

/// flux-schnell: URL outputs, enums via `allOf`.
#[replicate_webhook::replicate_model(
    schema = "../fixtures/schemas/black-forest-labs__flux-schnell.json"
)]
pub mod flux_schnell {}

/// whisper: inline enums, nested output objects without descriptions.
#[replicate_webhook::replicate_model(schema = "../fixtures/schemas/openai__whisper.json")]
pub mod whisper {}

/// hermes: a concatenated iterator, a secret training input.
#[replicate_webhook::replicate_model(
    schema = "../fixtures/schemas/lucataco__hermes-2-pro-llama-3-8b.json"
)]
pub mod hermes {}

/// Hand-made hazards: undocumented nested objects, a recursive array newtype, odd enums.
#[replicate_webhook::replicate_model(schema = "tests/schemas/torture.json")]
pub mod torture {}
