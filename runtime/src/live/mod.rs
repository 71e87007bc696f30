//! The live channel: each prediction's accepted deliveries pushed to browsers as Server-Sent
//! Events, with the current state for late subscribers, resume by `Last-Event-ID`, and
//! HMAC tokens minted by the app's server. See `docs/live.md`.
//!
//! - [`state`]: a prediction as subscribers know it; applying a delivery yields at most one event.
//! - [`token`]: subscriber tokens (one prediction, one expiry).
//! - `hub`: the in-process fan-out and replay ring.
//! - `routes`: the `GET …/events` endpoint.
//!
//! One call on the request path (`publish_delivery`) publishes what the receiver accepted.
//! With a Redis or PostgreSQL store (features `redis`, `postgres`) the state, the replay window
//! and the fan-out go through the store, so any instance serves any subscriber; with the memory
//! and SQLite stores they live in this process, which then serves its own subscribers only.

mod hub;
#[cfg(feature = "postgres")]
mod postgres;
#[cfg(feature = "redis")]
mod redis;
mod routes;
pub mod state;
// Without the store features no store is ever made.
#[cfg_attr(not(any(feature = "redis", feature = "postgres")), allow(dead_code))]
mod store;
pub mod token;

use std::fmt;
use std::future::{Ready, ready};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use actix_web::{FromRequest, HttpRequest, HttpResponse, dev::Payload, web::Bytes};
use futures_util::Stream;
use tokio::sync::broadcast;

pub use state::{LiveEvent, RESERVED, State, Update};
pub use token::{TokenError, TokenKey};

pub(crate) use routes::mount;

use crate::dedupe::StoreUrl;
use crate::signature::Secret;

/// The environment variable that turns the live channel on for [`WebhookConfig::from_env`]
/// (`1` or `true`).
///
/// [`WebhookConfig::from_env`]: crate::WebhookConfig::from_env
pub const ENV_LIVE: &str = "REPLICATE_WEBHOOK_LIVE";

/// The path under which the channel is mounted by default: `/live/predictions/{id}/events`.
pub const DEFAULT_PATH: &str = "/live";

/// How the live channel behaves: where it is mounted, its token lifetime and its bounds. Its
/// `Debug` hides the token key (see [`TokenKey`]).
#[derive(Clone, Debug)]
pub struct LiveOptions {
    pub(crate) path: String,
    pub(crate) token_ttl: Duration,
    pub(crate) token_key: Option<TokenKey>,
    pub(crate) heartbeat: Duration,
    pub(crate) allowed_origins: Vec<String>,
    pub(crate) max_subscribers: usize,
    pub(crate) store_timeout: Duration,
    pub(crate) bounds: Bounds,
}

/// What one channel and one process may hold.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Bounds {
    pub(crate) replay_events: usize,
    pub(crate) replay_bytes: usize,
    pub(crate) retention: Duration,
    pub(crate) subscriber_buffer: usize,
    pub(crate) max_predictions: usize,
}

impl Default for LiveOptions {
    fn default() -> Self {
        Self {
            path: DEFAULT_PATH.to_owned(),
            token_ttl: Duration::from_hours(1),
            token_key: None,
            heartbeat: crate::sse::DEFAULT_HEARTBEAT,
            allowed_origins: Vec::new(),
            max_subscribers: 20_000,
            store_timeout: Duration::from_millis(500),
            bounds: Bounds {
                replay_events: 256,
                replay_bytes: 1024 * 1024,
                retention: Duration::from_hours(1),
                subscriber_buffer: 64,
                max_predictions: 100_000,
            },
        }
    }
}

impl LiveOptions {
    /// The defaults: mounted at `/live`, tokens valid one hour, finished predictions kept one
    /// hour, 256 events or 1 MiB of replay per prediction, 64 events of buffer per subscriber,
    /// 20,000 subscribers per process, heartbeat every 15 s, same-origin only.
    pub fn new() -> Self {
        Self::default()
    }

    /// Mounts the channel at `path` (`{path}/predictions/{id}/events`).
    #[must_use]
    pub fn path(mut self, path: impl Into<String>) -> Self {
        path.into().trim_end_matches('/').clone_into(&mut self.path);
        self
    }

    /// How long a token minted by [`Live::token`] stays valid.
    #[must_use]
    pub fn token_ttl(mut self, ttl: Duration) -> Self {
        self.token_ttl = ttl;
        self
    }

    /// Signs tokens with a key derived from `key` instead of from the webhook secret.
    #[must_use]
    pub fn token_key(mut self, key: &[u8]) -> Self {
        self.token_key = Some(TokenKey::from_bytes(key));
        self
    }

    /// How long an idle stream waits before a heartbeat comment.
    #[must_use]
    pub fn heartbeat(mut self, every: Duration) -> Self {
        self.heartbeat = every;
        self
    }

    /// Lets pages served from `origin` (`https://app.example.com`) subscribe cross-origin.
    #[must_use]
    pub fn allow_origin(mut self, origin: impl Into<String>) -> Self {
        self.allowed_origins.push(origin.into());
        self
    }

    /// The most subscribers this process serves at once; more get 503.
    #[must_use]
    pub fn max_subscribers(mut self, n: usize) -> Self {
        self.max_subscribers = n;
        self
    }

    /// The replay window of each prediction: at most `events` events and about `bytes` bytes.
    #[must_use]
    pub fn replay(mut self, events: usize, bytes: usize) -> Self {
        self.bounds.replay_events = events.max(1);
        self.bounds.replay_bytes = bytes;
        self
    }

    /// How long a prediction's state is kept after its last change while nobody watches it.
    #[must_use]
    pub fn retention(mut self, retention: Duration) -> Self {
        self.bounds.retention = retention;
        self
    }

    /// Events a subscriber may fall behind before it is sent `lagged` and disconnected.
    #[must_use]
    pub fn subscriber_buffer(mut self, events: usize) -> Self {
        self.bounds.subscriber_buffer = events.max(1);
        self
    }

    /// The longest a store call of the channel may take (default 500 ms): a delivery's publish
    /// that takes longer is logged and counted, never failed or held.
    #[must_use]
    pub fn store_timeout(mut self, timeout: Duration) -> Self {
        self.store_timeout = timeout;
        self
    }

    /// The most predictions this process keeps state for; the least recently changed
    /// unwatched ones are dropped first.
    #[must_use]
    pub fn max_predictions(mut self, n: usize) -> Self {
        self.bounds.max_predictions = n.max(1);
        self
    }
}

/// Why publishing or subscribing failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LiveError {
    /// An app event may not use a name the channel sends itself.
    #[error("event name {0:?} is reserved by the live channel")]
    Reserved(String),
    /// An app event name must be a short token: letters, digits, `-`, `_`, `.`.
    #[error("event name {0:?} is not a short token of letters, digits, '-', '_' or '.'")]
    BadName(String),
    /// The data could not be serialized.
    #[error("event data: {0}")]
    Data(String),
    /// The store holding the channel did not answer (in time).
    #[error("live channel store: {0}")]
    Store(String),
}

/// A change to publish: an accepted delivery, or an app's own event.
pub(crate) enum Change<'a> {
    Delivery(&'a Update),
    App {
        id: &'a str,
        event: &'a str,
        data: &'a serde_json::Value,
    },
}

impl Change<'_> {
    pub(crate) fn id(&self) -> &str {
        match self {
            Change::Delivery(update) => &update.id,
            Change::App { id, .. } => id,
        }
    }

    /// The event this change makes to `state`, if any (and `state` updated).
    pub(crate) fn apply(&self, state: &mut State) -> Option<LiveEvent> {
        match self {
            Change::Delivery(update) => state.apply(update),
            Change::App { event, data, .. } => Some(state.custom(event, data)),
        }
    }
}

/// The live channel of one configuration: publish, subscribe, mint tokens.
///
/// Cheap to clone. Handlers take it as an argument (it is an actix extractor, also in inbox
/// workers); server code gets it from [`WebhookConfig::live_channel`].
///
/// [`WebhookConfig::live_channel`]: crate::WebhookConfig::live_channel
#[derive(Clone)]
pub struct Live {
    inner: Arc<Inner>,
}

struct Inner {
    options: LiveOptions,
    key: TokenKey,
    hub: Arc<hub::Hub>,
    /// Where the state, replay and fan-out live when not in this process alone (memory and
    /// SQLite stores): Redis or PostgreSQL, so every instance serves every subscriber.
    store: Option<Box<dyn store::LiveStore>>,
    subscribers: AtomicUsize,
}

impl fmt::Debug for Live {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Live")
            .field("options", &self.inner.options)
            .field("subscribers", &self.subscribers())
            .finish_non_exhaustive()
    }
}

/// What a subscriber is sent first, and the receiver of what comes after.
pub(crate) struct Subscription {
    pub(crate) initial: Vec<LiveEvent>,
    pub(crate) live: broadcast::Receiver<Arc<LiveEvent>>,
    /// The prediction had ended when the subscriber joined: nothing follows `initial`.
    pub(crate) ended: bool,
}

impl Live {
    /// A channel with `options`, its token key derived from `secret` unless the options give one
    /// (with no secret at all, a random key: tokens then work in this process only).
    ///
    /// With a Redis `store` (and the `redis` feature) the channel goes through Redis; with any
    /// other store it lives in this process.
    // Without the store features only the in-process channel exists: nothing fails, nothing waits.
    #[cfg_attr(
        not(any(feature = "redis", feature = "postgres")),
        allow(clippy::unnecessary_wraps)
    )]
    pub(crate) fn new(
        options: LiveOptions,
        secret: Option<&Secret>,
        store: Option<&StoreUrl>,
    ) -> Result<Self, LiveError> {
        let key = match (&options.token_key, secret) {
            (Some(key), _) => key.clone(),
            (None, Some(secret)) => TokenKey::derive(secret),
            (None, None) => TokenKey::derive(&Secret::generate()),
        };
        let store: Option<Box<dyn store::LiveStore>> = match store {
            #[cfg(feature = "redis")]
            Some(StoreUrl::Redis(url)) => {
                Some(Box::new(redis::RedisLive::open(url, options.bounds)?))
            }
            #[cfg(feature = "postgres")]
            Some(StoreUrl::Postgres(url)) => {
                Some(Box::new(postgres::PostgresLive::open(url, options.bounds)?))
            }
            _ => None,
        };
        Ok(Self {
            inner: Arc::new(Inner {
                hub: Arc::new(hub::Hub::new(options.bounds)),
                key,
                store,
                options,
                subscribers: AtomicUsize::new(0),
            }),
        })
    }

    /// Applies `change` where the channel lives, within the publish timeout.
    async fn apply(&self, change: &Change<'_>) -> Result<Option<LiveEvent>, LiveError> {
        let Some(store) = &self.inner.store else {
            return Ok(self.inner.hub.apply(change));
        };
        store.start(&self.inner.hub);
        self.bounded(store.publish(change)).await
    }

    /// `call`, or an error once the store timeout passes.
    async fn bounded<T>(
        &self,
        call: impl Future<Output = Result<T, LiveError>>,
    ) -> Result<T, LiveError> {
        tokio::time::timeout(self.inner.options.store_timeout, call)
            .await
            .map_err(|_| LiveError::Store("no answer in time".to_owned()))?
    }

    /// A token for `prediction` that expires after the configured `token_ttl`.
    pub fn token(&self, prediction: &str) -> String {
        let expiry = SystemTime::now() + self.inner.options.token_ttl;
        self.token_until(prediction, expiry)
    }

    /// A token for `prediction` that expires at `expiry`.
    pub fn token_until(&self, prediction: &str, expiry: SystemTime) -> String {
        let secs = expiry
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
        self.inner.key.mint(prediction, secs)
    }

    /// The path of `prediction`'s events stream.
    pub fn events_path(&self, prediction: &str) -> String {
        format!(
            "{}/predictions/{}/events",
            self.inner.options.path,
            url::form_urlencoded::byte_serialize(prediction.as_bytes()).collect::<String>()
        )
    }

    /// The path and query of `prediction`'s events stream with a fresh token: what a page
    /// opens with `new EventSource(…)`.
    pub fn events_url(&self, prediction: &str) -> String {
        format!(
            "{}?token={}",
            self.events_path(prediction),
            self.token(prediction)
        )
    }

    /// Checks a token for `prediction` now. Costs one HMAC and nothing else.
    pub fn check_token(&self, token: Option<&str>, prediction: &str) -> Result<(), TokenError> {
        self.inner
            .key
            .check(token, prediction, crate::signature::unix_now())
    }

    /// Publishes the app's own event on `prediction`'s channel (a `saved` with the URL the
    /// app copied the output to, say). Subscribers get it in order with the rest, and it is
    /// replayed like them; it does not end the stream.
    pub async fn publish(
        &self,
        prediction: &str,
        event: &str,
        data: &impl serde::Serialize,
    ) -> Result<LiveEvent, LiveError> {
        if RESERVED.contains(&event) {
            return Err(LiveError::Reserved(event.to_owned()));
        }
        if event.is_empty()
            || event.len() > 64
            || !event
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        {
            return Err(LiveError::BadName(event.to_owned()));
        }
        let data = serde_json::to_value(data).map_err(|e| LiveError::Data(e.to_string()))?;
        let change = Change::App {
            id: prediction,
            event,
            data: &data,
        };
        let published = self.apply(&change).await?;
        metrics::counter!("replicate_webhook_live_published_total", "event" => "app").increment(1);
        published.ok_or_else(|| LiveError::Store("the app event was not recorded".to_owned()))
    }

    /// Applies an accepted delivery; the event it made, if it changed anything.
    pub async fn publish_update(&self, update: &Update) -> Result<Option<LiveEvent>, LiveError> {
        let event = self.apply(&Change::Delivery(update)).await?;
        if event.is_some() {
            metrics::counter!("replicate_webhook_live_published_total", "event" => "delivery")
                .increment(1);
        }
        Ok(event)
    }

    /// Subscribes to `prediction`'s channel from server code: the current state (or what came
    /// after `after`, the `seq` of the last event seen), then each event as it is published,
    /// ending after the terminal one, or with a `lagged` event when the consumer fell more
    /// than the subscriber buffer behind.
    pub async fn subscribe(
        &self,
        prediction: &str,
        after: Option<u64>,
    ) -> Result<impl Stream<Item = LiveEvent> + Send + use<>, LiveError> {
        let subscription = match &self.inner.store {
            None => self.inner.hub.subscribe(prediction, after),
            Some(store) => {
                // Joined before the store is read: what is published meanwhile is relayed to
                // this receiver, and anything also in the first read is skipped by its number.
                store.listen(&self.inner.hub).await?;
                let live = self.inner.hub.join(prediction);
                let (initial, ended) = self.bounded(store.initial(prediction, after)).await?;
                Subscription {
                    initial,
                    live,
                    ended,
                }
            }
        };
        Ok(stream(subscription))
    }

    /// Subscribers this process serves now.
    pub fn subscribers(&self) -> usize {
        self.inner.subscribers.load(Ordering::Relaxed)
    }

    /// Predictions whose state this process holds.
    pub fn predictions(&self) -> usize {
        self.inner.hub.len()
    }

    pub(crate) fn options(&self) -> &LiveOptions {
        &self.inner.options
    }

    /// A subscriber slot, or `None` when the process serves its maximum already.
    pub(crate) fn slot(&self) -> Option<Slot> {
        let n = self.inner.subscribers.fetch_add(1, Ordering::AcqRel);
        let slot = Slot(self.clone());
        (n < self.inner.options.max_subscribers).then_some(slot)
    }
}

/// One subscriber counted against the limit while it lives.
pub(crate) struct Slot(Live);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.inner.subscribers.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The events of a subscription: the initial ones, then the live ones newer than those, ending
/// after a terminal event or with `lagged`.
fn stream(subscription: Subscription) -> impl Stream<Item = LiveEvent> + Send + use<> {
    struct Cursor {
        pending: std::collections::VecDeque<LiveEvent>,
        live: broadcast::Receiver<Arc<LiveEvent>>,
        last: Option<u64>,
        done: bool,
    }
    let cursor = Cursor {
        done: subscription.ended && subscription.initial.is_empty(),
        pending: subscription.initial.into(),
        live: subscription.live,
        last: None,
    };
    futures_util::stream::unfold(cursor, |mut c| async move {
        if c.done {
            return None;
        }
        let event = loop {
            if let Some(event) = c.pending.pop_front() {
                break event;
            }
            match c.live.recv().await {
                // Already sent (the snapshot covers every event up to its own number).
                Ok(event) if c.last.is_some_and(|last| event.seq <= last) => {}
                // The last subscriber to see an event takes it without a copy.
                Ok(event) => break Arc::unwrap_or_clone(event),
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    metrics::counter!("replicate_webhook_live_lagged_total").increment(1);
                    c.done = true;
                    break LiveEvent {
                        seq: c.last.unwrap_or_default(),
                        event: "lagged".to_owned(),
                        data: serde_json::json!({ "missed": missed }).to_string(),
                        terminal: true,
                    };
                }
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        };
        c.last = Some(event.seq);
        c.done |= event.terminal;
        Some((event, c))
    })
}

/// Publishes what a delivery the receiver dispatched and acknowledged says, when the live
/// channel is on: the one call on the request path. Never fails the delivery: an unreadable
/// body publishes nothing and is counted.
pub(crate) async fn publish_delivery(live: Option<&Live>, body: &Bytes, response: &HttpResponse) {
    let Some(live) = live else { return };
    if !response.status().is_success() {
        return;
    }
    let published = match serde_json::from_slice::<Update>(body) {
        Ok(update) => live.publish_update(&update).await.map(drop),
        Err(e) => Err(LiveError::Data(e.to_string())),
    };
    if let Err(e) = published {
        metrics::counter!("replicate_webhook_live_publish_failed_total").increment(1);
        tracing::warn!(error = %e, "live channel: delivery not published");
    }
}

impl FromRequest for Live {
    type Error = actix_web::Error;
    type Future = Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(req.app_data::<Live>().cloned().ok_or_else(|| {
            actix_web::error::ErrorInternalServerError(
                "the live channel is off: enable it with WebhookConfig::live",
            )
        }))
    }
}
