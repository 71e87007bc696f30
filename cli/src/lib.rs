//! The `replicate-webhook` command line and the local Replicate simulator.
//!
//! The binary is the product; this library holds the parts worth testing on their own: the
//! [`simulator`], the [`doctor`] checks, the [`duration`] syntax shared by flags and `Cancel-After`, and the
//! [`schema_check`] behind `schema check`.

pub mod doctor;
pub mod duration;
pub mod schema_check;
pub mod simulator;

/// A `reqwest` error and its causes, without the URL: "error sending request: ... Connection refused".
pub fn describe_error(error: reqwest::Error) -> String {
    replicate_webhook_core::error_chain(&error.without_url())
}
