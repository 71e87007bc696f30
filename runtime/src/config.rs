//! Receiver settings, from code or from the environment.

use std::sync::Arc;
use std::time::Duration;

use crate::dedupe::{DedupeStore, MemoryStore};
use crate::progress::Progress;
use crate::registry::Module;
use crate::signature::{DEFAULT_TOLERANCE, Secret, SecretError, Verifier};

/// The environment variable holding the signing secret(s), separated by spaces or commas.
pub const ENV_SECRET: &str = "REPLICATE_WEBHOOK_SECRET";
/// The environment variable choosing the dedupe store (`memory`).
pub const ENV_STORE: &str = "REPLICATE_WEBHOOK_STORE";

/// Everything the receiver needs: secrets, limits, the dedupe store and the handler modules.
///
/// Cheap to clone: actix calls `configure` once per worker.
#[derive(Clone)]
pub struct WebhookConfig {
    pub(crate) verifier: Verifier,
    pub(crate) body_limit: usize,
    pub(crate) store: Arc<dyn DedupeStore>,
    pub(crate) webhook_ttl: Duration,
    pub(crate) terminal_ttl: Duration,
    pub(crate) lease: Duration,
    pub(crate) signed_query: bool,
    pub(crate) modules: Vec<Module>,
    pub(crate) collect_registered: bool,
    /// Shared by every worker, so `output` and `logs` are told apart whichever worker answers.
    pub(crate) progress: Arc<Progress>,
    pub(crate) routes_logged: Arc<std::sync::atomic::AtomicBool>,
}

impl std::fmt::Debug for WebhookConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookConfig")
            .field("verifier", &self.verifier)
            .field("body_limit", &self.body_limit)
            .field("webhook_ttl", &self.webhook_ttl)
            .field("terminal_ttl", &self.terminal_ttl)
            .field("lease", &self.lease)
            .field("signed_query", &self.signed_query)
            .field("modules", &self.modules)
            .finish_non_exhaustive()
    }
}

/// A configuration that cannot work. Never contains a secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// `REPLICATE_WEBHOOK_SECRET` is unset or blank.
    #[error(
        "{ENV_SECRET} is not set; put your signing secret there (`replicate-webhook secret` fetches it)"
    )]
    MissingSecret,
    /// One of the secrets is unusable.
    #[error("secret #{position} in {ENV_SECRET} is invalid: {source}")]
    InvalidSecret {
        /// 1-based position in the list.
        position: usize,
        /// Why.
        source: SecretError,
    },
    /// `REPLICATE_WEBHOOK_STORE` names a store this build does not have.
    #[error("{ENV_STORE}=`{0}` is not supported; use `memory`")]
    UnsupportedStore(String),
}

impl WebhookConfig {
    /// The default body limit: 8 MiB (bodies carry the whole input and cumulative logs).
    pub const DEFAULT_BODY_LIMIT: usize = 8 * 1024 * 1024;
    /// How long a `webhook-id` is remembered.
    pub const DEFAULT_WEBHOOK_TTL: Duration = Duration::from_secs(24 * 60 * 60);
    /// How long a prediction's terminal status is remembered.
    pub const DEFAULT_TERMINAL_TTL: Duration = Duration::from_secs(7 * 24 * 60 * 60);
    /// How long a claim protects a running handler before another worker may take over.
    ///
    /// Well inside Replicate's retry window (about a minute after completion), so a claim left by
    /// a worker that died mid-handler expires while retries still arrive.
    pub const DEFAULT_LEASE: Duration = Duration::from_secs(30);

    /// A configuration accepting one secret, with every default.
    pub fn new(secret: Secret) -> Self {
        Self::with_secrets(vec![secret])
    }

    /// A configuration accepting any of `secrets` (for a rotation).
    pub fn with_secrets(secrets: Vec<Secret>) -> Self {
        Self {
            verifier: Verifier::new(secrets),
            body_limit: Self::DEFAULT_BODY_LIMIT,
            store: Arc::new(MemoryStore::new()),
            webhook_ttl: Self::DEFAULT_WEBHOOK_TTL,
            terminal_ttl: Self::DEFAULT_TERMINAL_TTL,
            lease: Self::DEFAULT_LEASE,
            signed_query: false,
            modules: Vec::new(),
            collect_registered: true,
            progress: Arc::new(Progress::default()),
            routes_logged: Arc::default(),
        }
    }

    /// Reads [`ENV_SECRET`] and [`ENV_STORE`].
    pub fn from_env() -> Result<Self, ConfigError> {
        let secrets = std::env::var(ENV_SECRET).unwrap_or_default();
        let secrets = parse_secrets(&secrets)?;
        check_store(std::env::var(ENV_STORE).ok().as_deref())?;
        Ok(Self::with_secrets(secrets))
    }

    /// The accepted clock difference for `webhook-timestamp` (default 300 s, both directions).
    #[must_use]
    pub fn tolerance(mut self, tolerance: Duration) -> Self {
        self.verifier = self.verifier.tolerance(tolerance);
        self
    }

    /// The largest accepted body, in bytes (default 8 MiB). Larger bodies get 413.
    #[must_use]
    pub fn body_limit(mut self, bytes: usize) -> Self {
        self.body_limit = bytes;
        self
    }

    /// The dedupe store (default: [`MemoryStore`]).
    #[must_use]
    pub fn store(mut self, store: impl DedupeStore) -> Self {
        self.store = Arc::new(store);
        self
    }

    /// The dedupe store, shared with other code.
    #[must_use]
    pub fn shared_store(mut self, store: Arc<dyn DedupeStore>) -> Self {
        self.store = store;
        self
    }

    /// How long a `webhook-id` is remembered (default 24 h).
    #[must_use]
    pub fn webhook_ttl(mut self, ttl: Duration) -> Self {
        self.webhook_ttl = ttl;
        self
    }

    /// How long a prediction's terminal status is remembered (default 7 days).
    #[must_use]
    pub fn terminal_ttl(mut self, ttl: Duration) -> Self {
        self.terminal_ttl = ttl;
        self
    }

    /// How long a running handler keeps its claim (default 30 s). A handler that runs longer
    /// may be run again by a retry: answer fast and do slow work elsewhere.
    #[must_use]
    pub fn lease(mut self, lease: Duration) -> Self {
        self.lease = lease;
        self
    }

    /// Requires the request's query string to equal the one in the signed body's `webhook` URL,
    /// so query parameters (`?customId=123`) are as authentic as the body. Off by default.
    #[must_use]
    pub fn require_signed_query(mut self, on: bool) -> Self {
        self.signed_query = on;
        self
    }

    /// Adds a module built in code, beside those registered with the attribute.
    #[must_use]
    pub fn module(mut self, module: Module) -> Self {
        self.modules.push(module);
        self
    }

    /// Whether modules registered with `#[replicate_webhook]` are mounted (default true).
    #[must_use]
    pub fn collect_registered(mut self, on: bool) -> Self {
        self.collect_registered = on;
        self
    }

    /// The default timestamp tolerance.
    pub const DEFAULT_TOLERANCE: Duration = DEFAULT_TOLERANCE;
}

/// Only `memory` exists for now. A store URL may carry a password: the error shows its scheme only.
fn check_store(setting: Option<&str>) -> Result<(), ConfigError> {
    match setting.map(str::trim) {
        None | Some("" | "memory") => Ok(()),
        Some(other) => Err(ConfigError::UnsupportedStore(
            match url::Url::parse(other) {
                Ok(url) => format!("{}://…", url.scheme()),
                Err(_) => other.to_owned(),
            },
        )),
    }
}

/// Splits a list of secrets on spaces and commas, refusing any unusable one.
pub fn parse_secrets(text: &str) -> Result<Vec<Secret>, ConfigError> {
    let parts: Vec<&str> = text
        .split([' ', ',', '\n', '\t'])
        .filter(|s| !s.is_empty())
        .collect();
    if parts.is_empty() {
        return Err(ConfigError::MissingSecret);
    }
    parts
        .iter()
        .enumerate()
        .map(|(i, s)| {
            Secret::parse(s).map_err(|source| ConfigError::InvalidSecret {
                position: i + 1,
                source,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_split_on_spaces_and_commas() {
        let list = parse_secrets(
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw, whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD",
        )
        .unwrap();
        assert_eq!(list.len(), 2);
        assert_eq!(parse_secrets("  ").unwrap_err(), ConfigError::MissingSecret);
        let err = parse_secrets("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw whsec_***notbase64***")
            .unwrap_err();
        assert_eq!(
            err,
            ConfigError::InvalidSecret {
                position: 2,
                source: SecretError::NotBase64
            }
        );
        assert!(!err.to_string().contains("notbase64"), "{err}");
    }

    #[test]
    fn store_errors_never_show_credentials() {
        assert_eq!(check_store(Some(" memory ")), Ok(()));
        assert_eq!(check_store(None), Ok(()));
        let err = check_store(Some("redis://admin:hunter2@cache:6379/0")).unwrap_err();
        assert_eq!(err, ConfigError::UnsupportedStore("redis://…".to_owned()));
        assert!(!err.to_string().contains("hunter2"), "{err}");
        let err = check_store(Some("memroy")).unwrap_err();
        assert!(err.to_string().contains("`memroy`"), "{err}");
    }

    #[test]
    fn debug_hides_secrets() {
        let config =
            WebhookConfig::new(Secret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap());
        let shown = format!("{config:?}");
        assert!(!shown.contains("MfKQ9r8"), "{shown}");
    }
}
