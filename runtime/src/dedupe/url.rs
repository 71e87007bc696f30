//! Store URLs: `memory`, `sqlite://PATH`, `redis://…`, `rediss://…`, `postgres://…`.
//!
//! A store URL may carry a password. Every way a [`StoreUrl`] or an error about one is shown
//! (`Display`, `Debug`, error messages) goes through [`redact`].

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use super::{DedupeStore, MemoryStore};

/// A parsed `REPLICATE_WEBHOOK_STORE` value. Shown, it never reveals a password.
#[derive(Clone, PartialEq, Eq)]
pub enum StoreUrl {
    /// `memory`: in process, lost on restart.
    Memory,
    /// `sqlite://PATH` (relative to the working directory) or `sqlite:///absolute/path`.
    Sqlite(PathBuf),
    /// `redis://…` or `rediss://…` (TLS); an optional `prefix` query parameter namespaces keys.
    Redis(String),
    /// `postgres://…` or `postgresql://…`.
    Postgres(String),
}

/// A store URL that cannot be used. The messages show the URL with its password hidden.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreUrlError {
    /// Not a store URL this crate knows.
    #[error(
        "`{0}` is not a store URL; use memory, sqlite://PATH, redis://HOST:PORT/DB or postgres://USER@HOST/DB"
    )]
    Unsupported(String),
    /// A known scheme whose cargo feature is off in this build.
    #[error("`{url}` needs the `{feature}` feature of replicate-webhook")]
    FeatureMissing {
        /// The URL, redacted.
        url: String,
        /// The cargo feature to turn on.
        feature: &'static str,
    },
    /// The store could not be opened (a `SQLite` file that cannot be created, a malformed URL).
    #[error("cannot open `{url}`: {reason}")]
    Open {
        /// The URL, redacted.
        url: String,
        /// Why, without credentials.
        reason: String,
    },
}

impl StoreUrl {
    /// Parses a store setting; surrounding white space is ignored.
    pub fn parse(text: &str) -> Result<Self, StoreUrlError> {
        let text = text.trim();
        if text == "memory" {
            return Ok(Self::Memory);
        }
        if let Some(path) = text
            .strip_prefix("sqlite://")
            .or_else(|| text.strip_prefix("sqlite:"))
        {
            if path.is_empty() {
                return Err(StoreUrlError::Unsupported(redact(text)));
            }
            return Ok(Self::Sqlite(PathBuf::from(path)));
        }
        let scheme = text.split_once("://").map(|(s, _)| s);
        match scheme {
            Some("redis" | "rediss") => Ok(Self::Redis(text.to_owned())),
            Some("postgres" | "postgresql") => Ok(Self::Postgres(text.to_owned())),
            _ => Err(StoreUrlError::Unsupported(redact(text))),
        }
    }

    /// The URL with any password replaced by `***`.
    pub fn redacted(&self) -> String {
        match self {
            Self::Memory => "memory".to_owned(),
            Self::Sqlite(path) => format!("sqlite://{}", path.display()),
            Self::Redis(url) | Self::Postgres(url) => redact(url),
        }
    }

    /// Whether deliveries are remembered across restarts.
    pub fn is_durable(&self) -> bool {
        !matches!(self, Self::Memory)
    }
}

impl fmt::Display for StoreUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

impl fmt::Debug for StoreUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "StoreUrl({})", self.redacted())
    }
}

/// Opens the store a URL names. Network stores connect lazily, so a store that is down at start
/// makes deliveries 503 until it is back instead of keeping the receiver from starting.
pub fn open(url: &StoreUrl) -> Result<Arc<dyn DedupeStore>, StoreUrlError> {
    let opened: Result<Arc<dyn DedupeStore>, super::StoreError> = match url {
        StoreUrl::Memory => Ok(Arc::new(MemoryStore::new())),
        #[cfg(feature = "sqlite")]
        StoreUrl::Sqlite(path) => super::SqliteStore::open(path).map(|s| Arc::new(s) as _),
        #[cfg(feature = "redis")]
        StoreUrl::Redis(text) => super::RedisStore::new(text).map(|s| Arc::new(s) as _),
        #[cfg(feature = "postgres")]
        StoreUrl::Postgres(text) => super::PostgresStore::new(text).map(|s| Arc::new(s) as _),
        #[allow(unreachable_patterns)]
        _ => return Err(StoreUrlError::feature_missing(url)),
    };
    opened.map_err(|e| StoreUrlError::open(url, &e))
}

impl StoreUrlError {
    /// `url` could not be opened, for `reason` (which must name no credentials).
    pub(crate) fn open(url: &StoreUrl, reason: &impl fmt::Display) -> Self {
        Self::Open {
            url: url.redacted(),
            reason: reason.to_string(),
        }
    }

    /// `url` names a store whose cargo feature is off in this build.
    pub(crate) fn feature_missing(url: &StoreUrl) -> Self {
        Self::FeatureMissing {
            url: url.redacted(),
            feature: match url {
                StoreUrl::Sqlite(_) => "sqlite",
                StoreUrl::Redis(_) => "redis",
                _ => "postgres",
            },
        }
    }
}

/// `text` with a URL's password replaced by `***`. Text that does not parse as a URL but looks
/// like one keeps only its scheme: it may be a URL with a password that the parser refused.
/// Text with no scheme at all is shown only when it is a near miss of a store word (`memroy`):
/// anything else may be a password pasted into the wrong variable.
pub(crate) fn redact(text: &str) -> String {
    match ::url::Url::parse(text) {
        Ok(mut url) => {
            if url.password().is_some() {
                let _ = url.set_password(Some("***"));
            }
            url.to_string()
        }
        Err(_) => match text.split_once("://") {
            Some((scheme, _))
                if scheme
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c)) =>
            {
                format!("{scheme}://…")
            }
            _ if is_near_a_store_word(text) => text.to_owned(),
            _ => "…".to_owned(),
        },
    }
}

/// Whether `text` is a store word (`memory`, a scheme) with at most two letters wrong.
fn is_near_a_store_word(text: &str) -> bool {
    const WORDS: [&str; 6] = [
        "memory",
        "sqlite",
        "redis",
        "rediss",
        "postgres",
        "postgresql",
    ];
    let text = text.to_ascii_lowercase();
    text.len() <= 12
        && WORDS
            .iter()
            .any(|word| strsim::damerau_levenshtein(&text, word) <= 2)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_scheme() {
        assert_eq!(StoreUrl::parse(" memory ").unwrap(), StoreUrl::Memory);
        assert_eq!(
            StoreUrl::parse("sqlite://replicate-webhook.db").unwrap(),
            StoreUrl::Sqlite("replicate-webhook.db".into())
        );
        assert_eq!(
            StoreUrl::parse("sqlite:///var/lib/rw.db").unwrap(),
            StoreUrl::Sqlite("/var/lib/rw.db".into())
        );
        assert!(matches!(
            StoreUrl::parse("rediss://h:6380/0").unwrap(),
            StoreUrl::Redis(_)
        ));
        assert!(matches!(
            StoreUrl::parse("postgresql://u@h/db").unwrap(),
            StoreUrl::Postgres(_)
        ));
        assert!(StoreUrl::parse("sqlite://").is_err());
        assert!(StoreUrl::parse("memroy").is_err());
    }

    #[test]
    fn passwords_never_show() {
        for text in [
            "redis://admin:hunter2@cache:6379/0",
            "postgres://app:hunter2@db.internal:5432/app?sslmode=disable",
            "postgres://app:hunter2@[::1:5432/app",
            "mysql://root:hunter2@db/app",
            "redis//admin:hunter2@cache",
        ] {
            let shown = match StoreUrl::parse(text) {
                Ok(url) => format!("{url} {url:?} {}", url.redacted()),
                Err(e) => format!("{e} {e:?}"),
            };
            assert!(!shown.contains("hunter2"), "{text} shown as {shown}");
        }
        assert_eq!(
            redact("redis://admin:hunter2@cache:6379/0"),
            "redis://admin:***@cache:6379/0"
        );
        let e = StoreUrl::parse("memroy").unwrap_err();
        assert!(e.to_string().contains("`memroy`"), "{e}");
        // A setting without a scheme may be a password pasted into the wrong variable.
        for secret in [
            "hunter2",
            "s3cr3t-Passw0rd!",
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        ] {
            let e = StoreUrl::parse(secret).unwrap_err();
            let shown = format!("{e} {e:?}");
            assert!(!shown.contains(secret), "{secret} shown as {shown}");
            assert!(shown.contains("is not a store URL"), "{shown}");
        }
        assert_eq!(redact("sqlit"), "sqlit");
    }
}
