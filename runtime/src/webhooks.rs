//! The receiver a configuration builds, as a handle every actix worker clones
//! ([`WebhookConfig::build`], [`Webhooks::configure`]), and the [`configure`] shorthand that
//! takes the configuration itself.

use std::sync::{Arc, Mutex, PoisonError, Weak};

use actix_web::web;

use crate::auth::{self, tenant::Tenants};
use crate::config::{Identity, WebhookConfig};
use crate::receiver::Receiver;
use crate::registry::SetupError;

/// The receiver built from a [`WebhookConfig`]: its routes, the verifier, the dedupe protocol
/// over the store, and its background work (the inbox worker, the reconciler, the journal's
/// writer).
///
/// Build it once, before `HttpServer::new`, and clone it into the app factory, as with
/// `web::Data`: actix calls the factory once per worker, and every clone is the same receiver,
/// with one store connection pool, one journal and one inbox worker per process.
///
/// ```no_run
/// use actix_web::{App, HttpServer};
/// use replicate_webhook::WebhookConfig;
///
/// #[actix_web::main]
/// async fn main() -> Result<(), Box<dyn std::error::Error>> {
///     let webhooks = WebhookConfig::from_env()?.build()?;
///     HttpServer::new(move || App::new().configure(webhooks.configure()))
///         .bind(("127.0.0.1", 8080))?
///         .run()
///         .await?;
///     Ok(())
/// }
/// ```
///
/// The receiver lives while this handle or an app that mounted it does. Its background work
/// (the journal's writer, the reconciler, the in-process inbox worker) runs on threads of its
/// own from [`WebhookConfig::build`] on, and stops when the receiver is dropped.
#[derive(Clone)]
pub struct Webhooks {
    receiver: Arc<Receiver>,
}

impl std::fmt::Debug for Webhooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let paths: Vec<_> = self.receiver.endpoints.iter().map(|(p, _)| p).collect();
        f.debug_struct("Webhooks")
            .field("paths", &paths)
            .finish_non_exhaustive()
    }
}

impl WebhookConfig {
    /// Builds the receiver: the route table of every module, the dedupe protocol over the
    /// store, and the background work this configuration turns on. Each call builds another
    /// receiver; clone the one it returns.
    ///
    /// Fails, with the fix in the message, when no handler is registered, two modules claim
    /// the same model on one path, or a module needs something the configuration lacks (an
    /// inbox, a store with a watch list for the reconciler).
    pub fn build(&self) -> Result<Webhooks, SetupError> {
        Ok(Webhooks {
            receiver: Arc::new(Receiver::build(self)?),
        })
    }
}

impl Webhooks {
    /// Mounts every route of this receiver (and the dashboard and the live channel, when on).
    /// Use with `App::configure`, once per worker.
    pub fn configure(&self) -> impl FnOnce(&mut web::ServiceConfig) + use<> {
        let receiver = self.receiver.clone();
        move |cfg: &mut web::ServiceConfig| mount(&receiver, cfg)
    }
}

fn mount(receiver: &Arc<Receiver>, cfg: &mut web::ServiceConfig) {
    for (path, endpoint) in &receiver.endpoints {
        // Handler arguments that read the body (`web::Bytes`, `web::Json`, ...) get the
        // receiver's limit, not actix's smaller defaults, or a large valid delivery would fail
        // in every retry.
        let limit = endpoint.checks.body.max;
        let mut paths = vec![path.clone()];
        // Tenants named by path: `{path}/{tenant}` beside the path itself.
        if endpoint
            .checks
            .tenants
            .as_ref()
            .is_some_and(Tenants::by_path_segment)
        {
            paths.push(format!(
                "{}/{{{}}}",
                path.trim_end_matches('/'),
                auth::tenant::PATH_PARAMETER
            ));
        }
        for path in paths {
            cfg.service(
                web::resource(path)
                    // The app holds its receiver: its background work runs while the app does,
                    // and `configure(config)` finds it for the next worker.
                    .app_data(web::Data::from(receiver.clone()))
                    .app_data(endpoint.clone())
                    .app_data(web::PayloadConfig::new(limit))
                    .app_data(web::JsonConfig::default().limit(limit))
                    .route(web::post().to(crate::service::receive)),
            );
        }
    }
    #[cfg(feature = "dashboard")]
    if let Some(dashboard) = &receiver.dashboard {
        dashboard.mount(cfg);
    }
    if let Some(live) = &receiver.live {
        crate::live::mount(cfg, live);
    }
}

/// Mounts every registered webhook route. Use with `App::configure`, in the app factory:
/// `App::new().configure(replicate_webhook::configure(config.clone()))`.
///
/// A shorthand for [`WebhookConfig::build`] and [`Webhooks::configure`]: the receiver is
/// built by the first call and mounted by every later call for the same configuration or an
/// unchanged clone of it, while an app that mounted it still runs. A receiver no app mounted
/// is not kept: to check the set-up before the server starts, build it with
/// [`WebhookConfig::build`] and mount that.
///
/// Panics with a message that explains the fix when no handler is registered or two modules
/// claim the same model on one path; see [`try_configure`] for a `Result`.
pub fn configure(config: WebhookConfig) -> impl FnOnce(&mut web::ServiceConfig) {
    try_configure(config).unwrap_or_else(|e| panic!("replicate-webhook: {e}"))
}

/// Like [`configure`], but returns set-up errors instead of panicking.
#[expect(
    clippy::needless_pass_by_value,
    reason = "by value like `configure`, which apps call with a clone"
)]
pub fn try_configure(
    config: WebhookConfig,
) -> Result<impl FnOnce(&mut web::ServiceConfig), SetupError> {
    Ok(shared(&config)?.configure())
}

/// The receivers `configure(config)` built, by the configuration they were built from.
///
/// Weak both ways: an entry does not keep a configuration or a receiver alive. The apps that
/// mounted a receiver hold it, so it ends with the server that ran them, as one built with
/// [`WebhookConfig::build`] ends with its last handle.
static SHARED: Mutex<Vec<(Weak<Identity>, Weak<Receiver>)>> = Mutex::new(Vec::new());

/// The receiver built for `config` (or a clone of it) and still mounted, or a new one.
fn shared(config: &WebhookConfig) -> Result<Webhooks, SetupError> {
    // Held while building, so workers starting together build one receiver (and configs
    // mounted at the same moment build one after the other).
    let mut registry = SHARED.lock().unwrap_or_else(PoisonError::into_inner);
    registry
        .retain(|(identity, receiver)| identity.strong_count() > 0 && receiver.strong_count() > 0);
    let identity = Arc::downgrade(&config.identity);
    if let Some(receiver) = registry
        .iter()
        .find(|(built_for, _)| built_for.ptr_eq(&identity))
        .and_then(|(_, receiver)| receiver.upgrade())
    {
        return Ok(Webhooks { receiver });
    }
    let webhooks = config.build()?;
    registry.push((identity, Arc::downgrade(&webhooks.receiver)));
    Ok(webhooks)
}
