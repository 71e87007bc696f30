//! Why a download failed.

/// Why a file could not be fetched.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FileError {
    /// The URL (or a redirect) is outside the [`AllowList`](super::AllowList).
    #[error("refused to fetch {0}: not in the allow-list")]
    Refused(String),
    /// The server answered this status (after the retries, for 5xx).
    #[error("{url} answered {status}")]
    Status {
        /// The URL, without its query.
        url: String,
        /// The HTTP status.
        status: u16,
    },
    /// Bigger than the limit (declared or counted).
    #[error("{url} is larger than the limit of {limit} bytes")]
    TooLarge {
        /// The URL, without its query.
        url: String,
        /// The limit.
        limit: u64,
    },
    /// Fewer bytes arrived than `Content-Length` declared.
    #[error("{url} ended after {got} of {expected} bytes")]
    Truncated {
        /// The URL, without its query.
        url: String,
        /// `Content-Length`.
        expected: u64,
        /// Bytes received.
        got: u64,
    },
    /// The content type is not one of those asked for.
    #[error("{url} has content type {got:?}, not one of {expected:?}")]
    ContentType {
        /// The URL, without its query.
        url: String,
        /// What the server said.
        got: String,
        /// What was asked for.
        expected: Vec<String>,
    },
    /// No complete answer within the timeout.
    #[error("{0} timed out")]
    Timeout(String),
    /// The connection failed.
    #[error("fetching {url} failed: {message}")]
    Http {
        /// The URL, without its query.
        url: String,
        /// The error and its causes.
        message: String,
    },
    /// A `data:` URI that does not decode.
    #[error("invalid data: URI: {0}")]
    InvalidData(String),
    /// Writing the file failed.
    #[error("writing {path}: {source}")]
    Io {
        /// Where.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

impl FileError {
    /// True for failures a later attempt may not have: 5xx, timeouts, connection errors.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Status { status, .. } if *status >= 500 || *status == 429)
            || matches!(self, Self::Timeout(_) | Self::Http { .. } | Self::Io { .. })
    }
}
