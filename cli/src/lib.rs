//! The `replicate-webhook` command line and the local Replicate simulator.
//!
//! The binary is the product; this library holds the parts worth testing on their own: the
//! [`simulator`], the [`duration`] syntax shared by flags and `Cancel-After`, and the
//! [`schema_check`] behind `schema check`.

pub mod duration;
pub mod schema_check;
pub mod simulator;

/// A `reqwest` error and its causes, without the URL: "error sending request: ... Connection refused".
pub fn describe_error(error: reqwest::Error) -> String {
    let error = error.without_url();
    let mut text = error.to_string();
    let mut source = std::error::Error::source(&error);
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}
