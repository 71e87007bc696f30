//! The commands' one error type, and the one place an outcome becomes an exit code.

use std::fmt;

use replicate_webhook::client::ClientError;

/// Exit code of an invalid delivery, a failed check or a failed request.
pub(crate) const EXIT_INVALID: u8 = 1;
/// Exit code of a usage or configuration error (clap uses it too).
pub(crate) const EXIT_USAGE: u8 = 2;

/// What a command returns: its exit code when it ran (a check that found drift ran, and
/// exits 1), or why it could not.
pub(crate) type Exit = Result<u8, CliError>;

/// Why a command stopped. `Display` is the message after `error: `.
#[derive(Debug)]
pub(crate) enum CliError {
    /// The command line, a file it names or the local setup is wrong.
    Usage(String),
    /// The work was tried and failed.
    Failed(String),
    /// The Replicate API client failed.
    Client(ClientError),
}

impl CliError {
    pub(crate) fn exit_code(&self) -> u8 {
        match self {
            Self::Usage(_)
            | Self::Client(
                ClientError::MissingToken
                | ClientError::InvalidUrl(_)
                | ClientError::InvalidWait(_),
            ) => EXIT_USAGE,
            Self::Failed(_) | Self::Client(_) => EXIT_INVALID,
        }
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Usage(message) | Self::Failed(message) => f.write_str(message),
            Self::Client(error) => error.fmt(f),
        }
    }
}

impl From<ClientError> for CliError {
    fn from(error: ClientError) -> Self {
        Self::Client(error)
    }
}

/// Prints the error, if any, and gives the process's exit code.
pub(crate) fn exit_code(exit: Exit) -> u8 {
    exit.unwrap_or_else(|error| {
        eprintln!("error: {error}");
        error.exit_code()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn setup_mistakes_are_usage_errors() {
        assert_eq!(CliError::Usage("x".into()).exit_code(), EXIT_USAGE);
        assert_eq!(
            CliError::Client(ClientError::MissingToken).exit_code(),
            EXIT_USAGE
        );
        assert_eq!(CliError::Failed("x".into()).exit_code(), EXIT_INVALID);
        assert_eq!(
            CliError::Client(ClientError::Decode("x".into())).exit_code(),
            EXIT_INVALID
        );
    }
}
