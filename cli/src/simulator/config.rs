//! What the simulator is told: the default lifecycle, fault injection and the rest of its flags.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Duration;

use replicate_webhook::{Event, Secret, Status};
use secrecy::SecretString;

/// How a prediction ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// `succeeded` with the full output.
    Succeeded,
    /// `failed` with an error message.
    Failed,
    /// `canceled` (as if by its deadline, or by the user).
    Canceled,
}

impl Outcome {
    /// Parses `succeeded`, `failed` or `canceled`.
    pub fn parse(text: &str) -> Option<Self> {
        match Status::parse(text.trim()) {
            Status::Succeeded => Some(Self::Succeeded),
            Status::Failed => Some(Self::Failed),
            Status::Canceled => Some(Self::Canceled),
            _ => None,
        }
    }

    /// The terminal status.
    pub fn status(self) -> Status {
        match self {
            Self::Succeeded => Status::Succeeded,
            Self::Failed => Status::Failed,
            Self::Canceled => Status::Canceled,
        }
    }
}

/// The lifecycle of one prediction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Script {
    /// Time spent `starting`.
    pub start_delay: Duration,
    /// Number of output steps while `processing`.
    pub steps: u32,
    /// Time between steps.
    pub step: Duration,
    /// How it ends.
    pub outcome: Outcome,
}

impl Default for Script {
    fn default() -> Self {
        Self {
            start_delay: Duration::from_millis(300),
            steps: 3,
            step: Duration::from_millis(600),
            outcome: Outcome::Succeeded,
        }
    }
}

/// Fault injection.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Faults {
    /// Events whose deliveries are sent twice (same `webhook-id`).
    pub duplicate: BTreeSet<Event>,
    /// Events whose deliveries are never sent (not retried either).
    pub drop: BTreeSet<Event>,
    /// Intermediate deliveries are held back and sent after the next delivery.
    pub reorder: bool,
    /// Every delivery waits this long before its first attempt.
    pub delay: Duration,
}

/// Everything the simulator needs. `Debug` shows neither the secret nor the token.
#[derive(Debug, Clone)]
pub struct Config {
    /// The secret deliveries are signed with and `GET /v1/webhooks/default/secret` returns.
    pub secret: Secret,
    /// When set, API calls must carry `Authorization: Bearer <token>`.
    pub token: Option<SecretString>,
    /// A directory of schema files (`owner/name.json` or `owner__name.json`).
    pub schemas: Option<PathBuf>,
    /// The default lifecycle.
    pub script: Script,
    /// Minimum time between two `output`/`logs` deliveries of one prediction.
    pub throttle: Duration,
    /// Delays between attempts of a terminal delivery; its length is the number of retries.
    pub retry_schedule: Vec<Duration>,
    /// Time allowed for one delivery attempt.
    pub delivery_timeout: Duration,
    /// Fault injection.
    pub faults: Faults,
    /// Predictions per page of `GET /v1/predictions`.
    pub page_size: usize,
    /// Statuses answered, in order, to the next API calls (e.g. `429`, `503`; `0` answers normally).
    pub api_errors: Vec<u16>,
    /// Print one line per delivery attempt on stderr.
    pub verbose: bool,
    /// Further Replicate accounts, each with its own API token and signing secret: a prediction
    /// created with an account's token is delivered signed with that account's secret, and
    /// `GET /v1/webhooks/default/secret` answers the caller's own.
    pub accounts: Vec<Account>,
    /// Who the deliveries look like they come from: Replicate, or a self-hosted Cog container.
    pub sender: super::Sender,
}

/// One more account of the simulated API. `Debug` shows neither the token nor the secret.
#[derive(Debug, Clone)]
pub struct Account {
    /// Its API token.
    pub token: SecretString,
    /// Its signing secret (until rotated with `POST /_simulator/rotate-secret`).
    pub secret: Secret,
}

impl Config {
    /// Defaults like Replicate's: 500 ms throttle, retries for about a minute.
    pub fn new(secret: Secret) -> Self {
        Self {
            secret,
            token: None,
            schemas: None,
            script: Script::default(),
            throttle: Duration::from_millis(500),
            retry_schedule: default_retry_schedule(),
            delivery_timeout: Duration::from_secs(5),
            faults: Faults::default(),
            page_size: 100,
            api_errors: Vec::new(),
            verbose: false,
            accounts: Vec::new(),
            sender: super::Sender::Replicate,
        }
    }
}

/// 1, 2, 4, 8, 16 and 30 s: the last retry about a minute after completion.
pub fn default_retry_schedule() -> Vec<Duration> {
    [1, 2, 4, 8, 16, 30]
        .into_iter()
        .map(Duration::from_secs)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The decoded key of `whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw`.
    fn secret_bytes() -> Vec<u8> {
        hex::decode("31f290f6bf06298aab4f08d43c3f082cf648a362da2da4b0").unwrap()
    }

    #[test]
    fn debug_hides_the_secret_and_the_token() {
        let secret = Secret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let config = Config {
            token: Some("r8_supersecret".into()),
            ..Config::new(secret)
        };
        let shown = format!("{config:?}");
        assert!(!shown.contains("MfKQ9r8"), "{shown}");
        assert!(!shown.contains("supersecret"), "{shown}");
        // The key is held decoded: its bytes must not show in any form either.
        let key = secret_bytes();
        let hex = hex::encode(&key);
        assert!(!shown.contains(&hex), "{shown}");
        assert!(
            !shown.contains(format!("{:?}", &key[..4]).trim_end_matches(']')),
            "{shown}"
        );
        assert!(shown.contains("<redacted>"), "{shown}");
    }

    #[test]
    fn the_default_schedule_lasts_about_a_minute() {
        let total: Duration = default_retry_schedule().iter().sum();
        assert!((50..=70).contains(&total.as_secs()), "{total:?}");
    }
}
