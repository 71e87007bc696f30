//! Errors on one line, for the client's and the CLI's messages.

use std::error::Error;

/// The error and its causes, each once: `error sending request: ... Connection refused`.
/// Libraries such as reqwest repeat a cause in their own message or not; this joins the chain
/// without saying anything twice.
pub fn error_chain(error: &dyn Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
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

#[cfg(test)]
mod tests {
    use std::fmt;

    use super::*;

    #[derive(Debug)]
    struct Layer(&'static str, Option<Box<Layer>>);

    impl fmt::Display for Layer {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(self.0)
        }
    }

    impl Error for Layer {
        fn source(&self) -> Option<&(dyn Error + 'static)> {
            self.1.as_deref().map(|e| e as &(dyn Error + 'static))
        }
    }

    #[test]
    fn causes_are_joined_once() {
        let error = Layer(
            "error sending request: connect",
            Some(Box::new(Layer(
                "connect",
                Some(Box::new(Layer("Connection refused", None))),
            ))),
        );
        assert_eq!(
            error_chain(&error),
            "error sending request: connect: Connection refused"
        );
    }
}
