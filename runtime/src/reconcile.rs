//! Recovery of lost terminal webhooks (feature `client`).
//!
//! Replicate retries a terminal webhook for about a minute and never replays it: a receiver down
//! for a deploy longer than that loses the result. The receiver therefore watches every
//! prediction it hears of (created through a watching [`Client`], or first seen through any
//! delivery) in the dedupe store, with a deadline `after` it was last heard of. A background
//! task polls `GET /predictions/{id}` for those past their deadline and, once a prediction is
//! terminal, delivers it to the prediction's own webhook URL, signed with the receiver's secret,
//! as Replicate would have. It goes through the same pipeline and the same terminal dedupe key,
//! so the handler runs exactly once whether the webhook or the poll arrives first.
//!
//! A tenant's prediction (see [`crate::Tenants`]) is watched in the tenant's namespace, polled
//! with the tenant's own API token ([`crate::secrets::SecretSource::api_token`]; each account
//! sees only its own predictions) and delivered signed with the tenant's secret. A tenant
//! without a token is not polled, and a log line says so.

use std::time::Duration;

use futures_util::StreamExt as _;

use crate::auth::tenant::Tenants;
use crate::client::{Client, ClientError};
use crate::dedupe::{Backoff, bounded, now_ms};
use crate::signature::{Secret, sign, unix_now};
use crate::watcher::Watcher;

/// `REPLICATE_WEBHOOK_RECONCILE_AFTER`: how long after it was last heard of a watched
/// prediction is polled (a duration such as `90s` or `10m`).
pub const ENV_RECONCILE_AFTER: &str = "REPLICATE_WEBHOOK_RECONCILE_AFTER";
/// `REPLICATE_WEBHOOK_RECONCILE=off` turns the reconciler off even with an API token.
pub const ENV_RECONCILE: &str = "REPLICATE_WEBHOOK_RECONCILE";

/// What the reconciler polls with and when.
#[derive(Debug, Clone)]
pub struct Reconcile {
    pub(crate) client: Client,
    pub(crate) after: Duration,
    pub(crate) every: Duration,
    pub(crate) concurrency: usize,
    pub(crate) backoff: Backoff,
    pub(crate) watch_for: Duration,
}

impl Reconcile {
    /// Past Replicate's retry window (about a minute), so a poll never races the retries.
    pub const DEFAULT_AFTER: Duration = Duration::from_mins(5);

    /// Polls through `client` (its token and base URL) for predictions silent for
    /// [`Self::DEFAULT_AFTER`].
    pub fn new(client: Client) -> Self {
        Self {
            client,
            after: Self::DEFAULT_AFTER,
            every: Duration::from_secs(5),
            concurrency: 4,
            backoff: Backoff::new(Duration::from_secs(30), Duration::from_mins(30)),
            // Replicate deletes a prediction's data after an hour and keeps it listed for
            // longer; a week covers any receiver outage worth recovering from.
            watch_for: Duration::from_hours(7 * 24),
        }
    }

    /// How long after it was last heard of a watched prediction is polled (default 5 min).
    /// The first poll comes then; later ones back off from 30 s to 30 min while it runs on.
    #[must_use]
    pub fn after(mut self, after: Duration) -> Self {
        self.after = after;
        self.every = (after / 4).clamp(Duration::from_millis(100), Duration::from_secs(5));
        self.backoff.base_ms = i64::try_from(after.as_millis())
            .unwrap_or(i64::MAX)
            .clamp(100, 30_000);
        self
    }

    /// At most this many polls at once (default 4).
    #[must_use]
    pub fn concurrency(mut self, n: usize) -> Self {
        self.concurrency = n.max(1);
        self
    }

    /// The reconciler `from_env` builds: on when `REPLICATE_API_TOKEN` is set and
    /// `REPLICATE_WEBHOOK_RECONCILE` is not `off`; the API at `REPLICATE_API_BASE_URL`
    /// (default Replicate's); `REPLICATE_WEBHOOK_RECONCILE_AFTER` (default 5 min).
    pub fn from_env() -> Result<Option<Self>, ReconcileError> {
        if std::env::var(ENV_RECONCILE).is_ok_and(|v| v.trim().eq_ignore_ascii_case("off")) {
            return Ok(None);
        }
        let client = match Client::from_env() {
            Ok(client) => client,
            Err(ClientError::MissingToken) => return Ok(None),
            Err(e) => return Err(ReconcileError::Client(e.to_string())),
        };
        let mut reconcile = Self::new(client);
        if let Ok(text) = std::env::var(ENV_RECONCILE_AFTER) {
            let after = humantime::parse_duration(text.trim())
                .map_err(|e| ReconcileError::After(format!("`{}`: {e}", text.trim())))?;
            reconcile = reconcile.after(after);
        }
        Ok(Some(reconcile))
    }
}

/// A reconciler setting that cannot work.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReconcileError {
    /// `REPLICATE_WEBHOOK_RECONCILE_AFTER` is not a duration.
    #[error("{ENV_RECONCILE_AFTER} is not a duration such as 90s or 10m: {0}")]
    After(String),
    /// The API client could not be built (a bad `REPLICATE_API_BASE_URL`).
    #[error("the reconciler's API client: {0}")]
    Client(String),
}

/// The background task: polls what is due, delivers what finished.
pub(crate) struct Task {
    pub(crate) reconcile: Reconcile,
    pub(crate) watcher: Watcher,
    /// The receiver's own signing secret, for the predictions of no tenant; `None` in an app
    /// that receives for tenants only.
    pub(crate) secret: Option<Secret>,
    pub(crate) tenants: Option<Tenants>,
}

/// Whose a watched prediction is: the client to poll it with and the secret to sign it with.
struct Account {
    client: Client,
    secret: Secret,
}

impl Task {
    /// Runs until the runtime stops.
    pub(crate) async fn run(self) {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            // Replicate follows no redirects; neither does its stand-in.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("a reqwest client with a timeout builds");
        let mut tick = tokio::time::interval(self.reconcile.every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let due = self.watcher.list.take_due(
                now_ms(),
                self.reconcile.concurrency * 4,
                self.reconcile.backoff,
            );
            let due = match bounded(self.watcher.timeout, due).await {
                Ok(due) => due,
                Err(e) => {
                    tracing::warn!(error = %e, "reconciler: could not read the watched predictions");
                    continue;
                }
            };
            let (task, http) = (&self, &http);
            futures_util::stream::iter(due)
                .for_each_concurrent(self.reconcile.concurrency, |(key, attempts)| async move {
                    task.poll(http, &key, attempts).await;
                })
                .await;
        }
    }

    /// The account `tenant`'s predictions are polled and signed with; `None`, after a log
    /// line, when it cannot be polled now. `Err(())` when it never can: stop watching.
    async fn account(&self, tenant: Option<&str>, id: &str) -> Result<Option<Account>, ()> {
        let Some(tenant) = tenant else {
            let Some(secret) = self.secret.clone() else {
                tracing::warn!(
                    prediction = id,
                    "reconciler: no signing secret of the receiver's own; not polled"
                );
                return Err(());
            };
            let client = self.reconcile.client.clone();
            return Ok(Some(Account { client, secret }));
        };
        let Some(tenants) = &self.tenants else {
            tracing::warn!(
                tenant,
                prediction = id,
                "reconciler: a tenant's prediction, and no tenants configured; not polled"
            );
            return Err(());
        };
        let token = match tenants.source.api_token(tenant).await {
            Ok(Some(token)) => token,
            Ok(None) => {
                tracing::warn!(
                    tenant,
                    prediction = id,
                    "reconciler: the tenant has no API token configured; its prediction is not polled"
                );
                return Ok(None);
            }
            Err(e) => {
                tracing::warn!(tenant, prediction = id, error = %e, "reconciler: the tenant's API token could not be read; will retry");
                return Ok(None);
            }
        };
        let secret = match tenants.source.secrets(tenant).await {
            Ok(Some(secrets)) if !secrets.is_empty() => secrets[0].clone(),
            Ok(_) => {
                tracing::warn!(
                    tenant,
                    prediction = id,
                    "reconciler: the tenant is gone or has no secret; stops watching"
                );
                return Err(());
            }
            Err(e) => {
                tracing::warn!(tenant, prediction = id, error = %e, "reconciler: the tenant's secret could not be read; will retry");
                return Ok(None);
            }
        };
        Ok(Some(Account {
            client: self.reconcile.client.with_token(token),
            secret,
        }))
    }

    /// Polls the prediction watched under `key` (its id, or its id in a tenant's namespace).
    async fn poll(&self, http: &reqwest::Client, key: &str, attempts: u32) {
        let (tenant, id) = crate::auth::unscoped(key).map_or((None, key), |(t, id)| (Some(t), id));
        let account = match self.account(tenant, id).await {
            Ok(Some(account)) => account,
            Ok(None) => return,
            Err(()) => {
                self.watcher.done(key).await;
                return;
            }
        };
        let prediction = match account.client.get(id).await {
            Ok(p) => p,
            Err(ClientError::Api { status: 404, .. }) => {
                self.watcher.done(key).await;
                return;
            }
            Err(e) => {
                tracing::warn!(prediction = id, attempts, error = %e, "reconciler: poll failed");
                return;
            }
        };
        if !prediction.status.is_terminal() {
            tracing::debug!(prediction = id, status = %prediction.status, "reconciler: still running");
            return;
        }
        let Some(url) = prediction.webhook.clone() else {
            tracing::warn!(
                prediction = id,
                "reconciler: finished without a webhook URL; not delivered"
            );
            self.watcher.done(key).await;
            return;
        };
        let body = match serde_json::to_vec(&prediction) {
            Ok(body) => body,
            Err(e) => {
                tracing::error!(prediction = id, error = %e, "reconciler: could not encode the prediction");
                return;
            }
        };
        // One webhook id per prediction and status: a second poll that delivers again is a
        // duplicate, and the terminal key stops it even under another id.
        let webhook_id = format!(
            "{}{id}_{}",
            crate::monitor::RECOVERED_PREFIX,
            prediction.status
        );
        let headers = sign(&account.secret, &webhook_id, unix_now(), &body);
        let mut request = http
            .post(&url)
            .header("content-type", "application/json")
            .body(body);
        for (name, value) in headers.pairs() {
            request = request.header(name, value);
        }
        match request.send().await {
            Ok(response) if response.status().is_success() => {
                tracing::info!(prediction = id, tenant, status = %prediction.status, "reconciler: delivered a lost terminal webhook");
                self.watcher.done(key).await;
            }
            Ok(response) => {
                tracing::warn!(
                    prediction = id,
                    answer = response.status().as_u16(),
                    "reconciler: delivery refused; will retry"
                );
            }
            Err(e) => {
                tracing::warn!(prediction = id, error = %crate::client::describe(e), "reconciler: delivery failed; will retry");
            }
        }
    }
}
