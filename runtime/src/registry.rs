//! Handler modules: the const data the attribute emits, the code-built alternative, and the
//! start-up checks that turn a set of modules into a route table.

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use crate::auth::Sender;
use crate::handler::{
    Call, DynHandler, HandlerFuture, HandlerInput, HandlerKind, HandlerReturn, Outcome,
};
use crate::prediction::Event;
use crate::training::BodyKind;

use replicate_webhook_core::is_plain_path;
pub use replicate_webhook_core::{ANY_MODEL, DEFAULT_PATH};

/// A handler function as the attribute emits it.
pub type HandlerFn = fn(Call) -> HandlerFuture;

/// One handler of a registered module.
#[derive(Debug, Clone, Copy)]
pub struct HandlerEntry {
    /// Which deliveries it receives.
    pub kind: HandlerKind,
    /// Calls the user's function.
    pub call: HandlerFn,
}

/// What a handler module subscribes to: the single source of truth for both sides, the receiver
/// route and the `webhook` / `webhook_events_filter` of the predictions the client creates.
///
/// The attribute emits one as `pub const WEBHOOK` inside the annotated module.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WebhookSpec {
    /// `owner/name`, or `*` for any model.
    pub model: &'static str,
    /// The route path, e.g. `/webhooks/replicate`.
    pub path: &'static str,
    /// The subscribed events, in the order given.
    pub events: &'static [Event],
}

impl WebhookSpec {
    /// The webhook URL for a public base URL such as `https://example.com`: the base with this
    /// module's path (any path on the base is kept as a prefix, its query string too).
    pub fn url(&self, base: &url::Url) -> url::Url {
        let mut url = base.clone();
        let prefix = url.path().trim_end_matches('/').to_owned();
        url.set_path(&format!("{prefix}{}", self.path));
        url
    }

    /// The `webhook_events_filter` values.
    pub fn events_filter(&self) -> Vec<&'static str> {
        self.events.iter().map(|e| e.as_str()).collect()
    }
}

/// A module annotated with `#[replicate_webhook]`: const data collected with `inventory`.
#[derive(Debug)]
pub struct Registration {
    /// `owner/name`, or `*` for any model.
    pub model: &'static str,
    /// The route path.
    pub path: &'static str,
    /// The subscribed events.
    pub events: &'static [Event],
    /// The handlers found in the module.
    pub handlers: &'static [HandlerEntry],
    /// `inbox = true`: deliveries are stored as jobs and run by workers.
    pub inbox: bool,
    /// `concurrency = N`: jobs of this module run at once per worker; 0 for the default.
    pub concurrency: u32,
    /// `module_path!()` of the module.
    pub module: &'static str,
    /// Where the attribute is, for start-up errors.
    pub file: &'static str,
    /// Line of the attribute.
    pub line: u32,
    /// Predictions (`model = `) or trainings (`training = `).
    pub kind: BodyKind,
    /// `cog`: deliveries from a self-hosted Cog container, routed by path alone.
    pub cog: bool,
}

inventory::collect!(Registration);

/// Every module registered with the attribute and linked into this binary.
pub(crate) fn registrations() -> impl Iterator<Item = &'static Registration> {
    inventory::iter::<Registration>.into_iter()
}

/// A handler module built in code: the same thing the attribute generates, for code that cannot
/// use the attribute (or targets where `inventory` collects nothing).
///
/// ```
/// use replicate_webhook::{Event, HandlerError, HandlerKind, Module, Prediction};
///
/// let module = Module::new("replicate/hello-world")
///     .events([Event::Start, Event::Completed])
///     .on(HandlerKind::Succeeded, |p: Prediction<String>| async move {
///         println!("{}", p.output.unwrap_or_default());
///         Ok::<(), HandlerError>(())
///     });
/// # let _ = module;
/// ```
#[derive(Clone)]
pub struct Module {
    pub(crate) model: String,
    pub(crate) path: String,
    pub(crate) events: Vec<Event>,
    pub(crate) handlers: BTreeMap<HandlerKind, DynHandler>,
    pub(crate) origin: String,
    pub(crate) kind: BodyKind,
    pub(crate) inbox: bool,
    pub(crate) concurrency: Option<usize>,
    /// Takes the deliveries of self-hosted Cog containers on its path (see [`Module::cog`]).
    pub(crate) cog: bool,
}

impl fmt::Debug for Module {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Module")
            .field("model", &self.model)
            .field("path", &self.path)
            .field("events", &self.events)
            .field("handlers", &self.handlers.keys().collect::<Vec<_>>())
            .field("origin", &self.origin)
            .field("kind", &self.kind)
            .field("inbox", &self.inbox)
            .field("concurrency", &self.concurrency)
            .field("cog", &self.cog)
            .finish()
    }
}

impl Module {
    /// A module for `model` (`owner/name` or `*`) on the default path, subscribed to `completed`.
    #[track_caller]
    pub fn new(model: impl Into<String>) -> Self {
        let at = std::panic::Location::caller();
        Self {
            model: model.into(),
            path: DEFAULT_PATH.to_owned(),
            events: vec![Event::Completed],
            handlers: BTreeMap::new(),
            origin: format!("{}:{}", at.file(), at.line()),
            kind: BodyKind::Prediction,
            inbox: false,
            concurrency: None,
            cog: false,
        }
    }

    /// A module for the webhooks of self-hosted Cog containers (coglet), on the default path
    /// until [`Module::path`] says otherwise. Their bodies name no model, so a Cog module takes
    /// every Cog delivery to its path (one Cog module per path), authenticated by the bearer
    /// token of [`crate::WebhookConfig::cog_token`].
    #[track_caller]
    pub fn cog() -> Self {
        let mut module = Self::new(ANY_MODEL);
        module.cog = true;
        module
    }

    /// A module for trainings of `model` (the trainer, `owner/name` or `*`): its handlers take
    /// [`crate::Training`]. Trainings and predictions share paths; the body tells them apart.
    #[track_caller]
    pub fn training(model: impl Into<String>) -> Self {
        let mut module = Self::new(model);
        module.kind = BodyKind::Training;
        module
    }

    /// Runs this module's handlers from the inbox (see [`crate::inbox`]) instead of inside the
    /// request; the receiver needs [`crate::WebhookConfig::inbox`].
    #[must_use]
    pub fn inbox(mut self, on: bool) -> Self {
        self.inbox = on;
        self
    }

    /// How many of this module's jobs one worker runs at once (default: 4 per core).
    #[must_use]
    pub fn concurrency(mut self, jobs: usize) -> Self {
        self.concurrency = Some(jobs.max(1));
        self
    }

    /// Sets the subscribed events.
    #[must_use]
    pub fn events(mut self, events: impl IntoIterator<Item = Event>) -> Self {
        self.events = events.into_iter().collect();
        self
    }

    /// Sets the route path.
    #[must_use]
    pub fn path(mut self, path: impl Into<String>) -> Self {
        self.path = path.into();
        self
    }

    /// Adds a handler taking the typed prediction (or [`crate::DecodeError`] for
    /// [`HandlerKind::DecodeError`]).
    #[must_use]
    pub fn on<P, F, Fut>(mut self, kind: HandlerKind, handler: F) -> Self
    where
        P: HandlerInput,
        F: Fn(P) -> Fut + Send + Sync + 'static,
        Fut: Future + 'static,
        Fut::Output: HandlerReturn,
    {
        let handler = Arc::new(handler);
        let call: DynHandler = Arc::new(move |call: Call| {
            let handler = handler.clone();
            Box::pin(async move {
                match call.input::<P>() {
                    Ok(input) => handler(input).await.into_outcome(),
                    Err(e) => crate::handler::Outcome::Decode(e),
                }
            })
        });
        self.handlers.insert(kind, call);
        self
    }

    pub(crate) fn from_registration(reg: &'static Registration) -> Self {
        Self {
            model: reg.model.to_owned(),
            path: reg.path.to_owned(),
            events: reg.events.to_vec(),
            handlers: reg
                .handlers
                .iter()
                .map(|h| (h.kind, Arc::new(h.call) as DynHandler))
                .collect(),
            origin: format!("{}:{} ({})", reg.file, reg.line, reg.module),
            kind: reg.kind,
            inbox: reg.inbox,
            concurrency: (reg.concurrency > 0).then_some(reg.concurrency as usize),
            cog: reg.cog,
        }
    }

    /// The model this module handles.
    pub fn model(&self) -> &str {
        &self.model
    }

    /// Whether it handles predictions or trainings.
    pub fn kind(&self) -> BodyKind {
        self.kind
    }

    /// The subscribed events.
    pub fn subscribed(&self) -> &[Event] {
        &self.events
    }

    pub(crate) fn handler(&self, kind: HandlerKind) -> Option<&DynHandler> {
        self.handlers.get(&kind)
    }

    /// Runs this module's handler for `kind` (see [`crate::handler::run`]); a module without
    /// one has nothing to do, which is done.
    pub(crate) async fn run(&self, kind: HandlerKind, call: Call, timeout: Duration) -> Outcome {
        let Some(handler) = self.handler(kind) else {
            return Outcome::Done;
        };
        let on_decode_error = self
            .handler(HandlerKind::DecodeError)
            .filter(|_| kind != HandlerKind::DecodeError);
        crate::handler::run(handler, on_decode_error, call, timeout).await
    }
}

/// Why the receiver could not be built: [`WebhookConfig::build`](crate::WebhookConfig::build)
/// returns it, and the `configure` shorthand panics with its message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SetupError {
    /// No module was registered at all.
    #[error(
        "no Replicate webhook handlers are registered: annotate a module with \
         #[replicate_webhook(model = \"owner/name\")] or add one with WebhookConfig::module. \
         If your handlers live in another crate, add `use that_crate as _;` to your binary so the \
         linker keeps them"
    )]
    NoHandlers,
    /// Two modules claim the same model on the same path.
    #[error("two webhook modules handle model `{model}` on path `{path}`: {first} and {second}")]
    Duplicate {
        /// The route path.
        path: String,
        /// The model.
        model: String,
        /// Where the first module is.
        first: String,
        /// Where the second module is.
        second: String,
    },
    /// A module asks for inbox mode but the configuration has no inbox.
    #[error(
        "{origin} runs in inbox mode, but no inbox is configured: call WebhookConfig::inbox or \
         set REPLICATE_WEBHOOK_INBOX=sqlite://PATH or postgres://..."
    )]
    NoInbox {
        /// Where the module is.
        origin: String,
    },
    /// A worker was built for a configuration without any module in inbox mode.
    #[error(
        "no module runs in inbox mode: add `inbox = true` to #[replicate_webhook], call \
         Module::inbox(true), or WebhookConfig::inbox_every_module(true)"
    )]
    NoInboxModules,
    /// The reconciler is on, but the dedupe store keeps no [`WatchList`](crate::dedupe::WatchList).
    #[error(
        "the reconciler needs a dedupe store with a watch list, and the store `{store}` keeps \
         none: use one of the built-in stores, or implement DedupeStore::watch_list"
    )]
    NoWatchList {
        /// The store's name.
        store: String,
    },
    /// The delivery journal could not be opened.
    #[error("the delivery journal could not be opened: {reason}")]
    Journal {
        /// Why, without credentials.
        reason: String,
    },
    /// The in-process inbox worker could not start.
    #[error("the inbox worker could not start: {reason}")]
    Worker {
        /// Why.
        reason: String,
    },
    /// Two Cog modules on one path: Cog bodies name no model, so the path alone must choose.
    #[error(
        "two Cog modules on path `{path}`: {first} and {second}; Cog deliveries name no model, so \
         give each Cog module a path of its own"
    )]
    DuplicateCog {
        /// The route path.
        path: String,
        /// Where the first module is.
        first: String,
        /// Where the second module is.
        second: String,
    },
    /// A Cog module asks for inbox mode, which keys jobs on a `webhook-id` Cog does not send.
    #[error("{origin} is a Cog module in inbox mode; Cog modules run their handlers inline")]
    CogInbox {
        /// Where the module is.
        origin: String,
    },
    /// A path that actix cannot route as written.
    #[error(
        "webhook path `{path}` of {origin} must start with `/` and be a plain path, without \
         `{{`, `}}`, `?`, `#` or spaces"
    )]
    BadPath {
        /// The path.
        path: String,
        /// Where the module is.
        origin: String,
    },
}

/// The modules of one path, routed by the body's kind and `model`.
#[derive(Debug, Default, Clone)]
pub(crate) struct Route {
    /// By kind, then model ([`ANY_MODEL`] for the catch-all): a lookup by `&str` needs no owned
    /// key.
    pub(crate) by_model: BTreeMap<BodyKind, BTreeMap<String, Module>>,
    /// The module taking Cog deliveries to this path.
    pub(crate) cog: Option<Module>,
}

impl Route {
    /// A specific module wins over the catch-all of its kind; a prediction module never gets a
    /// training, nor the other way round.
    pub(crate) fn module_for(
        &self,
        sender: &Sender,
        kind: BodyKind,
        model: &str,
    ) -> Option<&Module> {
        if *sender == Sender::Cog {
            return self.cog.as_ref();
        }
        let models = self.by_model.get(&kind)?;
        models.get(model).or_else(|| models.get(ANY_MODEL))
    }
}

/// Groups modules by path and checks them.
pub(crate) fn build_routes(modules: Vec<Module>) -> Result<BTreeMap<String, Route>, SetupError> {
    if modules.is_empty() {
        return Err(SetupError::NoHandlers);
    }
    let mut routes: BTreeMap<String, Route> = BTreeMap::new();
    for module in modules {
        if !is_plain_path(&module.path) {
            return Err(SetupError::BadPath {
                path: module.path,
                origin: module.origin,
            });
        }
        let route = routes.entry(module.path.clone()).or_default();
        if module.cog {
            if module.inbox {
                return Err(SetupError::CogInbox {
                    origin: module.origin,
                });
            }
            if let Some(cog) = &route.cog {
                let (first, second) = origins(cog, &module);
                return Err(SetupError::DuplicateCog {
                    path: module.path,
                    first,
                    second,
                });
            }
            route.cog = Some(module);
            continue;
        }
        let models = route.by_model.entry(module.kind).or_default();
        if let Some(existing) = models.get(&module.model) {
            let (first, second) = origins(existing, &module);
            return Err(SetupError::Duplicate {
                path: module.path,
                model: module.model,
                first,
                second,
            });
        }
        models.insert(module.model.clone(), module);
    }
    Ok(routes)
}

/// Where two modules are, in a stable order, so an error names them the same way on every start.
fn origins(a: &Module, b: &Module) -> (String, String) {
    let (first, second) = if a.origin <= b.origin { (a, b) } else { (b, a) };
    (first.origin.clone(), second.origin.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The module `route` gives a delivery from Replicate.
    fn replicate<'a>(route: &'a Route, kind: BodyKind, model: &str) -> Option<&'a Module> {
        route.module_for(&Sender::Replicate, kind, model)
    }

    #[test]
    fn spec_builds_the_webhook_url() {
        let spec = WebhookSpec {
            model: "acme/x",
            path: DEFAULT_PATH,
            events: &[Event::Start, Event::Completed],
        };
        let base = url::Url::parse("https://example.com/app/").unwrap();
        assert_eq!(
            spec.url(&base).as_str(),
            "https://example.com/app/webhooks/replicate"
        );
        let base = url::Url::parse("https://example.com?customId=1").unwrap();
        assert_eq!(
            spec.url(&base).as_str(),
            "https://example.com/webhooks/replicate?customId=1"
        );
        assert_eq!(spec.events_filter(), ["start", "completed"]);
    }

    #[test]
    fn zero_modules_explain_the_use_as_underscore_fix() {
        let err = build_routes(Vec::new()).unwrap_err();
        assert!(err.to_string().contains("use that_crate as _;"), "{err}");
    }

    #[test]
    fn duplicates_name_both_locations() {
        let a = Module::new("acme/x");
        let b = Module::new("acme/x");
        let err = build_routes(vec![a, b]).unwrap_err().to_string();
        assert!(err.contains("registry.rs:"), "{err}");
        assert_eq!(err.matches("registry.rs:").count(), 2, "{err}");
    }

    #[test]
    fn specific_model_wins_over_catch_all() {
        let routes = build_routes(vec![Module::new("*"), Module::new("acme/x")]).unwrap();
        let route = &routes[DEFAULT_PATH];
        for (model, module) in [("acme/x", "acme/x"), ("acme/y", "*")] {
            let found = replicate(route, BodyKind::Prediction, model).unwrap();
            assert_eq!(found.model, module, "{model}");
        }
    }

    #[test]
    fn trainings_and_predictions_route_apart_on_one_path() {
        let routes = build_routes(vec![
            Module::new("*"),
            Module::training("acme/trainer"),
            Module::new("acme/trainer"),
        ])
        .unwrap();
        let route = &routes[DEFAULT_PATH];
        let training = replicate(route, BodyKind::Training, "acme/trainer").unwrap();
        assert_eq!(training.kind, BodyKind::Training);
        let prediction = replicate(route, BodyKind::Prediction, "acme/trainer").unwrap();
        assert_eq!(prediction.kind, BodyKind::Prediction);
        // The prediction catch-all takes no trainings.
        assert!(replicate(route, BodyKind::Training, "acme/other").is_none());
        let err = build_routes(vec![Module::training("*"), Module::training("*")]).unwrap_err();
        assert!(matches!(err, SetupError::Duplicate { .. }), "{err}");
    }

    #[test]
    fn same_model_on_two_paths_is_fine() {
        let routes = build_routes(vec![
            Module::new("acme/x"),
            Module::new("acme/x").path("/other"),
        ])
        .unwrap();
        assert_eq!(routes.len(), 2);
        for path in ["nope", "/hooks/{", "/hooks/{tenant}", "/hooks?x=1", "/a b"] {
            let err = build_routes(vec![Module::new("acme/x").path(path)]).unwrap_err();
            assert!(matches!(err, SetupError::BadPath { .. }), "{path}");
        }
    }
}
