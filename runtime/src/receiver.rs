//! What a configuration builds once and every actix worker shares: routes, the verifier, the
//! dedupe protocol over the store, the background work. [`crate::Webhooks`] is its handle.

use std::sync::Arc;

use actix_web::web;

use crate::auth::cog::CogToken;
use crate::auth::tenant::Tenants;
use crate::background::{self, Background};
use crate::body::{BodyLimits, Budget};
use crate::config::WebhookConfig;
use crate::dedupe::Gate;
use crate::inbox::{Intake, Worker, WorkerHandle};
use crate::refusals::Refusals;
use crate::registry::{self, Route, SetupError};
use crate::signature::Verifier;

/// What every delivery is checked against, whatever its path.
pub(crate) struct Checks {
    pub(crate) verifier: Verifier,
    /// The bearer token Cog containers send, when Cog deliveries are accepted.
    pub(crate) cog_token: Option<CogToken>,
    /// The accounts of a multi-account app, when deliveries may name one.
    pub(crate) tenants: Option<Tenants>,
    pub(crate) body: BodyLimits,
    pub(crate) signed_query: bool,
    pub(crate) gate: Gate,
    pub(crate) handler_timeout: std::time::Duration,
    pub(crate) refusals: Refusals,
    #[cfg(feature = "client")]
    pub(crate) watcher: Option<crate::watcher::Watcher>,
    /// Where deliveries of inbox modules go, when any module is in inbox mode.
    pub(crate) inbox: Option<Intake>,
    /// Where answers are journaled, when the journal is on.
    pub(crate) journal: Option<crate::journal::Journal>,
    /// Where accepted deliveries are published, when the live channel is on.
    pub(crate) live: Option<crate::live::Live>,
}

/// One mounted path: the shared checks and the modules listening there.
pub(crate) struct Endpoint {
    pub(crate) checks: Arc<Checks>,
    pub(crate) route: Route,
}

impl Endpoint {
    /// The token a Cog delivery to this path must carry: only paths with a Cog module take one.
    pub(crate) fn cog_token(&self) -> Option<&CogToken> {
        self.checks
            .cog_token
            .as_ref()
            .filter(|_| self.route.cog.is_some())
    }
}

/// Every endpoint of one configuration, and its background work.
pub(crate) struct Receiver {
    pub(crate) endpoints: Vec<(String, web::Data<Endpoint>)>,
    /// The live channel whose route `configure()` mounts.
    pub(crate) live: Option<crate::live::Live>,
    /// The in-process inbox worker; stops (without waiting) when the receiver is dropped.
    _worker: Option<WorkerHandle>,
    /// The journal's writer and the reconciler; stop (without waiting) when the receiver is
    /// dropped.
    _background: Option<Background>,
    /// The dashboard, mounted beside the endpoints.
    #[cfg(feature = "dashboard")]
    pub(crate) dashboard: Option<crate::dashboard::Mount>,
}

impl Receiver {
    /// Builds the receiver of `config`; [`WebhookConfig::build`] is the public way.
    pub(crate) fn build(config: &WebhookConfig) -> Result<Self, SetupError> {
        let modules = config.every_module();
        let inbox_modules = modules.iter().filter(|m| m.inbox).count();
        if let Some(module) = modules.iter().find(|m| m.inbox)
            && config.inbox.is_none()
        {
            return Err(SetupError::NoInbox {
                origin: module.origin.clone(),
            });
        }
        #[cfg(feature = "client")]
        if config.reconcile.is_some() && config.store.clone().watch_list().is_none() {
            return Err(SetupError::NoWatchList {
                store: config.store_name.clone(),
            });
        }
        let routes = registry::build_routes(modules)?;
        let (wake, woken) = tokio::sync::watch::channel(0u64);
        let intake = config
            .inbox
            .clone()
            .filter(|_| inbox_modules > 0)
            .map(|inbox| Intake {
                inbox,
                webhook_ttl: config.policy.webhook_ttl,
                timeout: config.policy.timeout,
                stored: wake,
                limit: crate::inbox::BacklogLimit::new(config.inbox_options.max_backlog),
            });
        let worker = match &intake {
            Some(intake) if config.inbox_options.in_process => {
                tracing::info!(inbox = intake.inbox.name(), "replicate webhook inbox");
                let worker = Worker::new(config)?.wake_on(woken).spawn().map_err(|e| {
                    SetupError::Worker {
                        reason: e.to_string(),
                    }
                })?;
                Some(worker)
            }
            _ => None,
        };
        let journal = open_journal(config)?;
        #[cfg(feature = "dashboard")]
        let dashboard = config.dashboard.clone().map(|dashboard| {
            tracing::info!(prefix = dashboard.prefix, "replicate webhook dashboard");
            // The reconciler's watch list: none while it is off.
            #[cfg(feature = "client")]
            let watched = config.watcher().map(|w| w.list);
            #[cfg(not(feature = "client"))]
            let watched = None;
            crate::dashboard::Mount::new(
                dashboard,
                journal.clone(),
                config.inbox.clone(),
                config.monitor.clone(),
                watched,
            )
        });
        let checks = Arc::new(Checks {
            verifier: config.verifier.clone(),
            cog_token: config.cog_token.clone(),
            tenants: config.tenants.clone(),
            body: BodyLimits {
                max: config.body_limit,
                read_timeout: config.read_timeout,
                idle_timeout: config.idle_timeout,
                budget: Budget::new(config.unverified_limit),
            },
            signed_query: config.signed_query,
            gate: Gate::new(config.store.clone(), config.policy),
            // A handler running past its lease may be run again by a retry: stop it there.
            handler_timeout: config.handler_timeout.unwrap_or(config.policy.lease),
            refusals: Refusals::new(std::time::Duration::from_secs(1)),
            #[cfg(feature = "client")]
            watcher: config.watcher(),
            inbox: intake,
            journal: journal.clone(),
            live: config.live.clone(),
        });
        tracing::info!(store = config.store_name, "replicate webhook dedupe store");
        let endpoints = routes
            .into_iter()
            .map(|(path, route)| {
                log_route(&path, &route);
                let checks = checks.clone();
                (path, web::Data::new(Endpoint { checks, route }))
            })
            .collect();
        let mut tasks: Vec<background::Task> = Vec::new();
        tasks.extend(journal.as_ref().and_then(crate::journal::Journal::writer));
        #[cfg(feature = "client")]
        tasks.extend(reconciler(config).map(|task| -> background::Task { Box::pin(task.run()) }));
        let background = Background::start(tasks).map_err(|e| SetupError::Worker {
            reason: e.to_string(),
        })?;
        Ok(Self {
            endpoints,
            live: config.live.clone(),
            _worker: worker,
            _background: background,
            #[cfg(feature = "dashboard")]
            dashboard,
        })
    }
}

/// The journal, when the config turns it on.
fn open_journal(config: &WebhookConfig) -> Result<Option<crate::journal::Journal>, SetupError> {
    let Some(options) = config.journal_options() else {
        return Ok(None);
    };
    let journal =
        crate::journal::Journal::open(options, &config.journal_fallback()).map_err(|e| {
            SetupError::Journal {
                reason: e.to_string(),
            }
        })?;
    tracing::info!(store = journal.name(), "replicate webhook delivery journal");
    Ok(Some(journal))
}

fn log_route(path: &str, route: &Route) {
    for module in route
        .by_model
        .values()
        .flatten()
        .map(|(_, m)| m)
        .chain(&route.cog)
    {
        let handlers: Vec<_> = module.handlers.keys().map(|k| k.fn_name()).collect();
        let events: Vec<_> = module.events.iter().map(|e| e.as_str()).collect();
        tracing::info!(
            path,
            model = module.model,
            kind = module.kind.as_str(),
            cog = module.cog,
            events = events.join(","),
            handlers = handlers.join(","),
            origin = module.origin,
            "replicate webhook route mounted"
        );
    }
}

/// The reconciler's task, when it is on and has someone to sign for: the receiver's own secret,
/// or its tenants'.
#[cfg(feature = "client")]
fn reconciler(config: &WebhookConfig) -> Option<crate::reconcile::Task> {
    let reconcile = config.reconcile.clone()?;
    let watcher = config.watcher()?;
    let secret = config.verifier.signing_secret().cloned();
    if secret.is_none() && config.tenants.is_none() {
        return None;
    }
    tracing::info!(after = ?reconcile.after, "reconciler on: silent predictions are polled");
    Some(crate::reconcile::Task {
        reconcile,
        watcher,
        secret,
        tenants: config.tenants.clone(),
    })
}
