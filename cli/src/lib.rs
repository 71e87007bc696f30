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

/// `text` as it may be printed to a terminal: every control character but line feeds and tabs
/// escaped (`\u{1b}`), so an answer from a server cannot move the cursor, clear the screen,
/// retitle the window or hide lines behind carriage returns.
pub fn terminal_safe(text: &str) -> std::borrow::Cow<'_, str> {
    let unsafe_char = |c: char| c.is_control() && c != '\n' && c != '\t';
    if !text.contains(unsafe_char) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut shown = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        if unsafe_char(c) {
            shown.extend(c.escape_default());
        } else {
            shown.push(c);
        }
    }
    std::borrow::Cow::Owned(shown)
}

#[cfg(test)]
mod tests {
    use super::terminal_safe;

    #[test]
    fn control_characters_are_escaped_and_lines_kept() {
        assert_eq!(terminal_safe("done"), "done");
        assert_eq!(terminal_safe("a\n\tb"), "a\n\tb");
        assert_eq!(
            terminal_safe("\u{1b}[2Jok\r\u{7}\u{9b}"),
            "\\u{1b}[2Jok\\r\\u{7}\\u{9b}"
        );
    }
}
