//! The operator's dashboard: one mountable unit in the shape of Sidekiq's Web UI and Oban Web.
//!
//! [`WebhookConfig::dashboard`](crate::WebhookConfig::dashboard) mounts it at a prefix (default
//! [`DEFAULT_PREFIX`]); `REPLICATE_WEBHOOK_DASHBOARD_TOKEN` does the same from
//! [`WebhookConfig::from_env`](crate::WebhookConfig::from_env). Server-rendered pages
//! (overview, deliveries, a prediction's timeline, inbox, reconciler) behind a login form, and the
//! same data as JSON under `{prefix}/api` behind `Authorization: Bearer <token>`:
//!
//! | method and path | answer |
//! |---|---|
//! | `GET {prefix}/api/deliveries?prediction=&model=&outcome=&since=&limit=` | `{"deliveries": [...]}`, newest first |
//! | `GET {prefix}/api/jobs?state=&model=&prediction=&limit=` | `{"jobs": [...]}`, newest first |
//! | `POST {prefix}/api/jobs/{id}/replay` | `{"replayed": true}`; 404 unless the job is dead |
//! | `POST {prefix}/api/jobs/{id}/discard` | `{"discarded": true}`; 404 unless pending or dead |
//! | `GET {prefix}/api/overview` | the overview's figures |
//!
//! Without the token or a session every path answers 401 and no data (pages: the login form is
//! the body of that 401). Every page state change carries a CSRF token; every value that came
//! from a delivery is escaped by the templates; assets are embedded and every answer carries a
//! `Content-Security-Policy` that allows nothing from elsewhere.

mod api;
mod assets;
mod auth;
mod live;
mod pages;
mod queries;
mod routes;
mod templates;

use std::sync::Arc;

use secrecy::SecretString;

use crate::inbox::Inbox;
use crate::journal::Journal;
use crate::monitor::Monitor;

/// Where `from_env` mounts the dashboard.
pub const DEFAULT_PREFIX: &str = "/replicate/dashboard";

/// The dashboard's settings: its token and where it is mounted.
#[derive(Clone)]
pub struct Dashboard {
    token: SecretString,
    pub(crate) prefix: String,
}

impl std::fmt::Debug for Dashboard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dashboard")
            .field("token", &"<redacted>")
            .field("prefix", &self.prefix)
            .finish()
    }
}

impl Dashboard {
    /// A dashboard opened by `token` (as the login form's password and the API's Bearer
    /// token), at [`DEFAULT_PREFIX`]. Use a long random token: it is the only key.
    pub fn new(token: impl Into<String>) -> Self {
        Self {
            token: SecretString::from(token.into()),
            prefix: DEFAULT_PREFIX.to_owned(),
        }
    }

    /// Mounts it at `prefix` (e.g. `/ops/webhooks`) instead.
    #[must_use]
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        let prefix = prefix.into();
        self.prefix = format!("/{}", prefix.trim_matches('/'));
        if self.prefix == "/" {
            self.prefix.clear();
        }
        self
    }
}

/// What the dashboard's routes share.
#[derive(Clone, Debug)]
pub(crate) struct Mount {
    pub(crate) prefix: String,
    pub(crate) auth: Arc<auth::Auth>,
    pub(crate) journal: Option<Journal>,
    pub(crate) inbox: Option<Inbox>,
    pub(crate) monitor: Monitor,
    /// The reconciler's watch list, when the reconciler is on.
    pub(crate) watched: Option<Watched>,
}

/// The reconciler's watch list, read for its page.
#[derive(Clone)]
pub(crate) struct Watched(pub(crate) Arc<dyn crate::dedupe::WatchList>);

impl std::fmt::Debug for Watched {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Watched(..)")
    }
}

impl Mount {
    pub(crate) fn new(
        dashboard: Dashboard,
        journal: Option<Journal>,
        inbox: Option<Inbox>,
        monitor: Monitor,
        watched: Option<Arc<dyn crate::dedupe::WatchList>>,
    ) -> Self {
        Self {
            auth: Arc::new(auth::Auth::new(&dashboard.token)),
            prefix: dashboard.prefix,
            journal,
            inbox,
            monitor,
            watched: watched.map(Watched),
        }
    }
}
