//! Receiver settings, from code or from the environment.

use std::sync::Arc;
use std::time::Duration;

pub use crate::auth::cog::{CogToken, ENV_COG_TOKEN};
use crate::auth::tenant::Tenants;
use crate::dedupe::{self, DedupeStore, MemoryStore, Policy, StoreUrl, StoreUrlError};
use crate::inbox::{ENV_INBOX, Inbox, InboxOptions};
use crate::journal::JournalOptions;
use crate::monitor::{Monitor, MonitorOptions};
use crate::registry::Module;
use crate::signature::{DEFAULT_TOLERANCE, Secret, SecretError, Verifier};

/// The environment variable holding the signing secret(s), separated by spaces or commas.
pub const ENV_SECRET: &str = "REPLICATE_WEBHOOK_SECRET";
/// The environment variable choosing the dedupe store: `memory`, `sqlite://PATH`,
/// `redis://HOST:PORT/DB`, `rediss://…` or `postgres://USER:PASSWORD@HOST/DB`.
pub const ENV_STORE: &str = "REPLICATE_WEBHOOK_STORE";
/// The environment variable holding the dashboard's token: when set, `from_env` mounts the
/// dashboard at [`crate::dashboard::DEFAULT_PREFIX`].
pub const ENV_DASHBOARD_TOKEN: &str = "REPLICATE_WEBHOOK_DASHBOARD_TOKEN";

/// The receiver's settings: secrets, limits, timing, the dedupe store and the handler modules.
///
/// Settings only: [`WebhookConfig::build`] turns them into the receiver (its routes, verifier,
/// the dedupe protocol over the store), which every actix worker then clones.
#[derive(Clone)]
pub struct WebhookConfig {
    pub(crate) verifier: Verifier,
    /// The bearer token of self-hosted Cog containers, when their deliveries are accepted.
    pub(crate) cog_token: Option<CogToken>,
    /// The accounts of a multi-account app.
    pub(crate) tenants: Option<Tenants>,
    pub(crate) body_limit: usize,
    pub(crate) read_timeout: Duration,
    pub(crate) idle_timeout: Duration,
    pub(crate) unverified_limit: usize,
    pub(crate) handler_timeout: Option<Duration>,
    pub(crate) store: Arc<dyn DedupeStore>,
    /// How the store is shown in logs: its URL with the password hidden.
    pub(crate) store_name: String,
    /// The store's URL, for the journal and the live channel to open their own connections
    /// (`None`: a custom store).
    pub(crate) store_url: Option<StoreUrl>,
    pub(crate) journal: Option<JournalOptions>,
    #[cfg(feature = "dashboard")]
    pub(crate) dashboard: Option<crate::dashboard::Dashboard>,
    pub(crate) monitor: Monitor,
    pub(crate) policy: Policy,
    pub(crate) signed_query: bool,
    pub(crate) modules: Vec<Module>,
    pub(crate) collect_registered: bool,
    #[cfg(feature = "client")]
    pub(crate) reconcile: Option<crate::reconcile::Reconcile>,
    /// Which configuration this is, for [`crate::configure`]: clones share it, so the workers
    /// that each mount a clone mount one receiver; a clone changed by a setter gets its own.
    pub(crate) identity: Arc<Identity>,
    /// Where inbox modules store their deliveries.
    pub(crate) inbox: Option<Inbox>,
    /// Every module runs in inbox mode, not only those that ask.
    pub(crate) inbox_every_module: bool,
    pub(crate) inbox_options: InboxOptions,
    /// What workers add to the requests they rebuild, so `web::Data<T>` extractors work.
    pub(crate) worker_data: Vec<DataFn>,
    /// The live channel, when on (see [`crate::live`]).
    pub(crate) live: Option<crate::live::Live>,
}

/// What tells one configuration from another; see [`WebhookConfig::identity`].
#[derive(Default)]
pub(crate) struct Identity;

/// Adds one piece of app data to the app a worker rebuilds requests in.
pub(crate) type DataFn = Arc<dyn Fn(&mut actix_web::web::ServiceConfig) + Send + Sync>;

impl std::fmt::Debug for WebhookConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookConfig")
            .field("verifier", &self.verifier)
            .field("cog_token", &self.cog_token)
            .field("tenants", &self.tenants)
            .field("body_limit", &self.body_limit)
            .field("read_timeout", &self.read_timeout)
            .field("idle_timeout", &self.idle_timeout)
            .field("unverified_limit", &self.unverified_limit)
            .field("handler_timeout", &self.handler_timeout)
            .field("store", &self.store_name)
            .field("journal", &self.journal)
            .field("policy", &self.policy)
            .field("signed_query", &self.signed_query)
            .field("modules", &self.modules)
            .field("inbox", &self.inbox)
            .field("inbox_every_module", &self.inbox_every_module)
            .field("live", &self.live)
            .finish_non_exhaustive()
    }
}

/// A configuration that cannot work. Never contains a secret or a password.
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
    /// `REPLICATE_WEBHOOK_STORE` names a store this build cannot open.
    #[error("{ENV_STORE}: {0}")]
    Store(#[from] StoreUrlError),
    /// The reconciler's settings cannot work (feature `client`).
    #[cfg(feature = "client")]
    #[cfg_attr(docsrs, doc(cfg(feature = "client")))]
    #[error(transparent)]
    Reconcile(#[from] crate::reconcile::ReconcileError),
    /// The live channel cannot use the store.
    #[error("live channel: {0}")]
    Live(crate::live::LiveError),
    /// `REPLICATE_WEBHOOK_INBOX` names an inbox this build cannot open.
    #[error("{ENV_INBOX}: {0}")]
    Inbox(StoreUrlError),
    /// `REPLICATE_WEBHOOK_DASHBOARD_TOKEN` is set but this build has no dashboard.
    #[error(
        "{ENV_DASHBOARD_TOKEN} is set, but the dashboard needs the `dashboard` feature of replicate-webhook"
    )]
    DashboardFeatureMissing,
}

impl WebhookConfig {
    /// Every setter goes through here: a changed configuration is another receiver, so a clone
    /// changed after its original was mounted builds its own instead of sharing the original's.
    fn changed(mut self, change: impl FnOnce(&mut Self)) -> Self {
        self.identity = Arc::default();
        change(&mut self);
        self
    }

    /// The default body limit: 8 MiB (bodies carry the whole input and cumulative logs).
    pub const DEFAULT_BODY_LIMIT: usize = 8 * 1024 * 1024;
    /// How long a `webhook-id` is remembered.
    pub const DEFAULT_WEBHOOK_TTL: Duration = Policy::DEFAULT.webhook_ttl;
    /// How long a prediction's terminal status is remembered.
    pub const DEFAULT_TERMINAL_TTL: Duration = Policy::DEFAULT.terminal_ttl;
    /// How long a claim protects a running handler before another worker may take over.
    ///
    /// Well inside Replicate's retry window (about a minute after completion), so a claim left by
    /// a worker that died mid-handler expires while retries still arrive.
    pub const DEFAULT_LEASE: Duration = Policy::DEFAULT.lease;
    /// The longest one store call may take before the delivery gets 503: well under Replicate's
    /// request timeout, so Replicate hears "retry" rather than nothing.
    pub const DEFAULT_STORE_TIMEOUT: Duration = Policy::DEFAULT.timeout;
    /// The longest a body may take to arrive, from the end of the headers.
    pub const DEFAULT_READ_TIMEOUT: Duration = Duration::from_secs(30);
    /// The longest a body may pause between two chunks.
    pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(5);
    /// Bytes of not-yet-verified bodies held at once over every connection: 64 MiB, eight
    /// bodies of the default limit.
    pub const DEFAULT_UNVERIFIED_LIMIT: usize = 64 * 1024 * 1024;

    /// A configuration accepting one secret, with every default.
    pub fn new(secret: Secret) -> Self {
        Self::with_secrets(vec![secret])
    }

    /// A configuration accepting any of `secrets` (for a rotation).
    pub fn with_secrets(secrets: Vec<Secret>) -> Self {
        Self {
            verifier: Verifier::new(secrets),
            cog_token: None,
            tenants: None,
            body_limit: Self::DEFAULT_BODY_LIMIT,
            read_timeout: Self::DEFAULT_READ_TIMEOUT,
            idle_timeout: Self::DEFAULT_IDLE_TIMEOUT,
            unverified_limit: Self::DEFAULT_UNVERIFIED_LIMIT,
            handler_timeout: None,
            store: Arc::new(MemoryStore::new()),
            store_name: "memory".to_owned(),
            store_url: Some(StoreUrl::Memory),
            journal: None,
            #[cfg(feature = "dashboard")]
            dashboard: None,
            monitor: Monitor::default(),
            policy: Policy::DEFAULT,
            signed_query: true,
            modules: Vec::new(),
            collect_registered: true,
            #[cfg(feature = "client")]
            reconcile: None,
            identity: Arc::default(),
            inbox: None,
            inbox_every_module: false,
            inbox_options: InboxOptions::default(),
            worker_data: Vec::new(),
            live: None,
        }
    }

    /// Every module: those added and, unless turned off, those registered, with inbox mode
    /// applied to all when the config says so.
    pub(crate) fn every_module(&self) -> Vec<Module> {
        let mut modules = self.modules.clone();
        if self.collect_registered {
            modules.extend(crate::registry::registrations().map(Module::from_registration));
        }
        if self.inbox_every_module && self.inbox.is_some() {
            // Cog modules stay inline: a Cog delivery has no `webhook-id` for the inbox to key on.
            for module in modules.iter_mut().filter(|m| !m.cog) {
                module.inbox = true;
            }
        }
        modules
    }

    /// Reads [`ENV_SECRET`], [`ENV_COG_TOKEN`] (when set, self-hosted Cog containers sending
    /// that bearer token are accepted on the paths of Cog modules; with it, [`ENV_SECRET`] may be
    /// unset for a receiver of Cog deliveries only), [`ENV_STORE`] (default `memory`) and
    /// [`ENV_INBOX`]: when set,
    /// every module runs in inbox mode there, and the dedupe store defaults to the same database.
    /// With the `client` feature it also reads the reconciler's settings (on when
    /// `REPLICATE_API_TOKEN` is set; see [`crate::reconcile::Reconcile::from_env`]).
    pub fn from_env() -> Result<Self, ConfigError> {
        let cog_token = std::env::var(ENV_COG_TOKEN).ok().and_then(CogToken::new);
        let secrets = std::env::var(ENV_SECRET).unwrap_or_default();
        let secrets = match parse_secrets(&secrets) {
            Err(ConfigError::MissingSecret) if cog_token.is_some() => Vec::new(),
            other => other?,
        };
        let setting = |var| {
            std::env::var(var)
                .ok()
                .filter(|s: &String| !s.trim().is_empty())
        };
        let inbox = setting(ENV_INBOX)
            .map(|s| StoreUrl::parse(&s))
            .transpose()
            .map_err(ConfigError::Inbox)?;
        let store = match (setting(ENV_STORE), &inbox) {
            (Some(s), _) => StoreUrl::parse(&s)?,
            (None, Some(inbox)) => inbox.clone(),
            (None, None) => StoreUrl::Memory,
        };
        let mut config = Self::with_secrets(secrets).store_url(&store)?;
        config.cog_token = cog_token;
        if let Some(inbox) = inbox {
            config = config
                .inbox(Inbox::open(&inbox).map_err(ConfigError::Inbox)?)
                .inbox_every_module(true);
        }
        if setting(crate::live::ENV_LIVE).is_some_and(|v| v == "1" || v == "true") {
            config = config
                .live(crate::live::LiveOptions::default())
                .map_err(ConfigError::Live)?;
        }
        #[cfg(feature = "client")]
        if let Some(reconcile) = crate::reconcile::Reconcile::from_env()? {
            config = config.reconcile(reconcile);
        }
        #[cfg(feature = "dashboard")]
        if let Some(token) = setting(ENV_DASHBOARD_TOKEN) {
            config = config.dashboard(crate::dashboard::Dashboard::new(token));
        }
        #[cfg(not(feature = "dashboard"))]
        if setting(ENV_DASHBOARD_TOKEN).is_some() {
            return Err(ConfigError::DashboardFeatureMissing);
        }
        Ok(config)
    }

    /// Recovers lost terminal webhooks by polling the API (see [`crate::reconcile`]): every
    /// prediction heard of is watched in the store, and polled once silent for longer than
    /// the reconciler's `after`. Feature `client`.
    #[cfg(feature = "client")]
    #[cfg_attr(docsrs, doc(cfg(feature = "client")))]
    #[must_use]
    pub fn reconcile(self, reconcile: crate::reconcile::Reconcile) -> Self {
        self.changed(|c| c.reconcile = Some(reconcile))
    }

    /// `client`, with every prediction it creates watched by this receiver's reconciler (a
    /// no-op when the reconciler is off, or when the store keeps no watch list, which the
    /// receiver refuses with the reconciler on), so even a prediction whose every webhook is
    /// lost is recovered. Feature `client`.
    #[cfg(feature = "client")]
    #[cfg_attr(docsrs, doc(cfg(feature = "client")))]
    pub fn watching(&self, client: crate::client::Client) -> crate::client::Client {
        match self.watcher() {
            Some(watcher) => client.with_watcher(watcher),
            None => client,
        }
    }

    #[cfg(feature = "client")]
    pub(crate) fn watcher(&self) -> Option<crate::watcher::Watcher> {
        let reconcile = self.reconcile.as_ref()?;
        Some(crate::watcher::Watcher {
            list: self.store.clone().watch_list()?,
            after: reconcile.after,
            watch_for: reconcile.watch_for,
            timeout: self.policy.timeout,
            monitor: self.monitor.clone(),
        })
    }

    /// Journals every verified request the receiver answers (see [`crate::journal`]): in the
    /// dedupe store's database unless `options.store` names another.
    #[must_use]
    pub fn journal(self, options: JournalOptions) -> Self {
        self.changed(|c| c.journal = Some(options))
    }

    /// Mounts the operator's dashboard and its JSON API (see [`crate::dashboard`]); turns the
    /// journal on with its defaults unless [`WebhookConfig::journal`] set it.
    #[cfg(feature = "dashboard")]
    #[must_use]
    pub fn dashboard(self, dashboard: crate::dashboard::Dashboard) -> Self {
        self.changed(|c| c.dashboard = Some(dashboard))
    }

    /// When the expected-delivery monitor alerts (see [`crate::monitor`]).
    #[must_use]
    pub fn monitor(self, options: MonitorOptions) -> Self {
        self.changed(|c| c.monitor = Monitor::new(options))
    }

    /// The journal's options, when the journal is on.
    pub(crate) fn journal_options(&self) -> Option<JournalOptions> {
        #[cfg(feature = "dashboard")]
        if self.dashboard.is_some() && self.journal.is_none() {
            return Some(JournalOptions::default());
        }
        self.journal.clone()
    }

    /// Where the journal lives unless its options say: the dedupe store's database, or memory
    /// beside a custom store.
    pub(crate) fn journal_fallback(&self) -> StoreUrl {
        self.store_url.clone().unwrap_or(StoreUrl::Memory)
    }

    /// The inbox for modules in inbox mode (`#[replicate_webhook(inbox = true)]`,
    /// [`Module::inbox`]): their deliveries are stored there and answered at once, and workers
    /// run the handlers (see [`crate::inbox`]).
    #[must_use]
    pub fn inbox(self, inbox: Inbox) -> Self {
        self.changed(|c| c.inbox = Some(inbox))
    }

    /// Runs every module in inbox mode, not only those that ask for it (what
    /// `REPLICATE_WEBHOOK_INBOX` does).
    #[must_use]
    pub fn inbox_every_module(self, on: bool) -> Self {
        self.changed(|c| c.inbox_every_module = on)
    }

    /// How workers run jobs: retries, timeouts, concurrency, whether one runs in this process.
    #[must_use]
    pub fn inbox_options(self, options: InboxOptions) -> Self {
        self.changed(|c| c.inbox_options = options)
    }

    /// App data for handlers run by inbox workers, such as the `web::Data<Db>` the app
    /// registers: a worker has no app of its own, so give it what the handlers extract.
    #[must_use]
    pub fn worker_data<T: Clone + Send + Sync + 'static>(self, data: T) -> Self {
        let add: DataFn = Arc::new(move |cfg: &mut actix_web::web::ServiceConfig| {
            cfg.app_data(data.clone());
        });
        self.changed(|c| c.worker_data.push(add))
    }

    /// Accepts the webhooks of self-hosted Cog containers that send `Authorization: Bearer
    /// <token>` (the container's `WEBHOOK_AUTH_TOKEN`) and no signature, on the paths of Cog
    /// modules (`#[replicate_webhook(cog)]`, [`Module::cog`]). Without a token, an unsigned
    /// request is refused with 401 like any other.
    ///
    /// The token is compared in constant time and never logged or shown by `Debug`.
    #[must_use]
    pub fn cog_token(self, token: CogToken) -> Self {
        self.changed(|c| c.cog_token = Some(token))
    }

    /// Receives for many Replicate accounts: a delivery naming a tenant (by path or query, as
    /// `tenants` says) is verified with that tenant's secrets, and its dedupe keys live in the
    /// tenant's namespace. An unknown tenant gets 404 before any store or API call; a delivery
    /// naming none is verified with this configuration's own secrets, as before.
    #[must_use]
    pub fn tenants(self, tenants: Tenants) -> Self {
        self.changed(|c| c.tenants = Some(tenants))
    }

    /// Turns the live channel on (see [`crate::live`]): `configure()` mounts its events route,
    /// and every delivery the receiver accepts is published on its prediction's channel.
    /// Tokens are signed with a key derived from the signing secret unless `options` give one,
    /// so instances sharing a secret accept each other's tokens.
    ///
    /// Call it after [`WebhookConfig::store_url`]: with a Redis or PostgreSQL store the channel
    /// goes through it, so every instance serves every subscriber; with the memory and SQLite
    /// stores it lives in this process. A store URL that cannot be used is an error.
    pub fn live(self, options: crate::live::LiveOptions) -> Result<Self, crate::live::LiveError> {
        let live = crate::live::Live::new(
            options,
            self.verifier.signing_secret(),
            self.store_url.as_ref(),
        )?;
        // Handlers run by inbox workers take `Live` as an argument too.
        Ok(self
            .changed(|c| c.live = Some(live.clone()))
            .worker_data(live))
    }

    /// The live channel, when [`WebhookConfig::live`] turned it on: to mint tokens, publish the
    /// app's own events and subscribe from server code.
    pub fn live_channel(&self) -> Option<crate::live::Live> {
        self.live.clone()
    }

    /// Opens the store `url` names and uses it (see [`dedupe::open`]).
    pub fn store_url(self, url: &StoreUrl) -> Result<Self, StoreUrlError> {
        let store = dedupe::open(url)?;
        Ok(self.changed(|c| {
            c.store = store;
            c.store_name = url.redacted();
            c.store_url = Some(url.clone());
        }))
    }

    /// The dedupe store, shown in logs as the URL with its password hidden.
    pub fn store_name(&self) -> &str {
        &self.store_name
    }

    /// The accepted clock difference for `webhook-timestamp` (default 300 s, both directions).
    #[must_use]
    pub fn tolerance(self, tolerance: Duration) -> Self {
        self.changed(|c| c.verifier = c.verifier.clone().tolerance(tolerance))
    }

    /// The largest accepted body, in bytes (default 8 MiB). Larger bodies get 413.
    #[must_use]
    pub fn body_limit(self, bytes: usize) -> Self {
        self.changed(|c| c.body_limit = bytes)
    }

    /// The longest a body may take to arrive after the headers (default 30 s); slower gets 408.
    #[must_use]
    pub fn read_timeout(self, timeout: Duration) -> Self {
        self.changed(|c| c.read_timeout = timeout)
    }

    /// The longest a body may pause between two chunks (default 5 s); longer gets 408.
    #[must_use]
    pub fn idle_timeout(self, timeout: Duration) -> Self {
        self.changed(|c| c.idle_timeout = timeout)
    }

    /// Bytes of bodies not yet verified that the receiver holds at once over every connection
    /// (default 64 MiB). Past it, new bodies get 503 until others are verified or refused, so
    /// unauthenticated clients cannot make the receiver hold more.
    #[must_use]
    pub fn unverified_limit(self, bytes: usize) -> Self {
        self.changed(|c| c.unverified_limit = bytes)
    }

    /// How long a handler may run before it is cancelled, its claim released and 500 answered
    /// so Replicate retries (default: the lease, past which a retry could run it again).
    #[must_use]
    pub fn handler_timeout(self, timeout: Duration) -> Self {
        self.changed(|c| c.handler_timeout = Some(timeout))
    }

    /// The dedupe store (default: [`MemoryStore`]).
    #[must_use]
    pub fn store(self, store: impl DedupeStore) -> Self {
        self.shared_store(Arc::new(store))
    }

    /// The dedupe store, shared with other code.
    #[must_use]
    pub fn shared_store(self, store: Arc<dyn DedupeStore>) -> Self {
        self.changed(|c| {
            c.store = store;
            "custom".clone_into(&mut c.store_name);
            c.store_url = None;
        })
    }

    /// How long a `webhook-id` is remembered (default 24 h).
    #[must_use]
    pub fn webhook_ttl(self, ttl: Duration) -> Self {
        self.changed(|c| c.policy.webhook_ttl = ttl)
    }

    /// How long a prediction's terminal status is remembered (default 7 days).
    #[must_use]
    pub fn terminal_ttl(self, ttl: Duration) -> Self {
        self.changed(|c| c.policy.terminal_ttl = ttl)
    }

    /// How long a running handler keeps its claim (default 30 s). A handler that runs longer
    /// may be run again by a retry: answer fast and do slow work elsewhere.
    #[must_use]
    pub fn lease(self, lease: Duration) -> Self {
        self.changed(|c| c.policy.lease = lease)
    }

    /// The longest one store call may take (default 2 s); past it the delivery gets 503 and
    /// Replicate retries it.
    #[must_use]
    pub fn store_timeout(self, timeout: Duration) -> Self {
        self.changed(|c| c.policy.timeout = timeout)
    }

    /// Whether the request's query string must equal the one in the signed body's `webhook` URL
    /// (compared as decoded key/value pairs), so query parameters (`?customId=123`) are as
    /// authentic as the body: a mismatch gets 401. On by default; a body without a `webhook`
    /// field is not checked, and its handlers get no [`crate::SignedQuery`].
    #[must_use]
    pub fn require_signed_query(self, on: bool) -> Self {
        self.changed(|c| c.signed_query = on)
    }

    /// Adds a module built in code, beside those registered with the attribute.
    #[must_use]
    pub fn module(self, module: Module) -> Self {
        self.changed(|c| c.modules.push(module))
    }

    /// Whether modules registered with `#[replicate_webhook]` are mounted (default true).
    #[must_use]
    pub fn collect_registered(self, on: bool) -> Self {
        self.changed(|c| c.collect_registered = on)
    }

    /// The default timestamp tolerance.
    pub const DEFAULT_TOLERANCE: Duration = DEFAULT_TOLERANCE;
}

/// Splits a list of secrets on spaces and commas, refusing any unusable one.
pub fn parse_secrets(text: &str) -> Result<Vec<Secret>, ConfigError> {
    let secrets = text
        .split([' ', ',', '\n', '\t'])
        .filter(|s| !s.is_empty())
        .enumerate()
        .map(|(i, s)| {
            Secret::parse(s).map_err(|source| ConfigError::InvalidSecret {
                position: i + 1,
                source,
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    if secrets.is_empty() {
        return Err(ConfigError::MissingSecret);
    }
    Ok(secrets)
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
        for url in [
            "redis://admin:hunter2@cache:6379/0",
            "postgres://app:hunter2@db:5432/app",
            "postgres://app:hunter2@[::1:5432/app",
            "mysql://root:hunter2@db/app",
        ] {
            let config = WebhookConfig::new(
                Secret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap(),
            );
            let shown = match StoreUrl::parse(url).and_then(|u| config.store_url(&u)) {
                Ok(config) => format!("{config:?} {}", config.store_name()),
                Err(e) => format!("{e:?} {}", ConfigError::from(e.clone())),
            };
            assert!(!shown.contains("hunter2"), "{url}: {shown}");
        }
        let err = ConfigError::from(StoreUrl::parse("memroy").unwrap_err());
        assert!(err.to_string().contains("`memroy`"), "{err}");
    }

    #[test]
    fn debug_hides_secrets() {
        let config =
            WebhookConfig::new(Secret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap());
        let shown = format!("{config:?}");
        // The key is held decoded: look for every form it could leak in, not only its base64.
        let key = base64::Engine::decode(
            &base64::engine::general_purpose::STANDARD,
            "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        )
        .unwrap();
        let hex = "31f290f6bf06298aab4f08d43c3f082cf648a362da2da4b0".to_owned();
        for form in [
            "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".to_owned(),
            hex.clone(),
            hex.to_uppercase(),
            format!("{key:?}"),
            format!("{:?}", &key[..4]).trim_end_matches(']').to_owned(),
        ] {
            assert!(!shown.contains(&form), "{form} in {shown}");
        }
        assert!(shown.contains("Secret(<redacted>)"), "{shown}");
    }
}
