//! The error type handlers return, and how it maps to an HTTP status.

use std::error::Error as StdError;
use std::fmt;

type BoxError = Box<dyn StdError + Send + Sync + 'static>;

/// A handler failure.
///
/// - [`HandlerError::retry`] (and `?` on any [`std::error::Error`]): the claim is released and
///   the receiver answers 500, so Replicate retries a terminal webhook (for about a minute).
/// - [`HandlerError::permanent`]: the delivery is marked done, logged, and answered 200, so a
///   failure that no retry can fix does not burn the retries.
pub struct HandlerError {
    retryable: bool,
    source: BoxError,
}

impl HandlerError {
    /// A failure worth retrying: the receiver answers 500.
    pub fn retry(error: impl Into<BoxError>) -> Self {
        Self {
            retryable: true,
            source: error.into(),
        }
    }

    /// A failure no retry can fix: logged, marked done, answered 200.
    pub fn permanent(error: impl Into<BoxError>) -> Self {
        Self {
            retryable: false,
            source: error.into(),
        }
    }

    /// Whether the receiver answers 500 (true) or 200 (false).
    pub fn is_retryable(&self) -> bool {
        self.retryable
    }

    /// The underlying error.
    pub fn source(&self) -> &(dyn StdError + Send + Sync + 'static) {
        &*self.source
    }
}

// `HandlerError` deliberately does not implement `std::error::Error`, so that this blanket
// conversion (what makes `?` work in handlers) does not overlap with `From<T> for T`.
impl<E: StdError + Send + Sync + 'static> From<E> for HandlerError {
    fn from(error: E) -> Self {
        Self::retry(error)
    }
}

impl fmt::Debug for HandlerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HandlerError")
            .field("retryable", &self.retryable)
            .field("source", &self.source)
            .finish()
    }
}

impl fmt::Display for HandlerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = if self.retryable {
            "retryable"
        } else {
            "permanent"
        };
        write!(f, "{kind} handler error: {}", self.source)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn question_mark_converts_to_retryable() {
        fn fails() -> Result<(), HandlerError> {
            let _: u8 = "x".parse()?;
            Ok(())
        }
        let err = fails().unwrap_err();
        assert!(err.is_retryable());
        assert!(
            err.to_string()
                .starts_with("retryable handler error: invalid digit")
        );
    }

    #[test]
    fn permanent_is_not_retryable() {
        let err = HandlerError::permanent("bad input");
        assert!(!err.is_retryable());
        assert_eq!(err.to_string(), "permanent handler error: bad input");
    }
}
