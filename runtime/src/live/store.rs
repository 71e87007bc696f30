//! What the Redis and PostgreSQL backends share: the channel's state, replay window and fan-out
//! held in a store, so any instance serves any subscriber.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use tokio::sync::watch;

use super::hub::Hub;
use super::state::{LiveEvent, State};
use super::{Change, LiveError};

/// A store the channel goes through.
#[async_trait::async_trait]
pub(crate) trait LiveStore: Send + Sync {
    /// This instance's one listener on the store, which relays what any instance publishes.
    fn listener(&self) -> &Listener;

    /// Runs the listener, relaying to `hub` for as long as it lives.
    fn spawn_listener(&self, hub: Weak<Hub>, ready: watch::Sender<bool>);

    /// Applies `change` to the prediction's state in the store and notifies every instance.
    async fn publish(&self, change: &Change<'_>) -> Result<Option<LiveEvent>, LiveError>;

    /// What a subscriber resuming after `after` (or connecting) is sent first, and whether the
    /// prediction has ended.
    async fn initial(
        &self,
        id: &str,
        after: Option<u64>,
    ) -> Result<(Vec<LiveEvent>, bool), LiveError>;

    /// Starts this instance's one listener if it is not running yet, without waiting for it:
    /// a publish needs no listener of its own.
    fn start(&self, hub: &Arc<Hub>) {
        let listener = self.listener();
        if !listener.started.swap(true, Ordering::AcqRel) {
            self.spawn_listener(Arc::downgrade(hub), listener.ready.clone());
        }
    }

    /// Starts the listener and waits until it listens: a subscriber waits for it before reading
    /// the store, so no event falls between its first read and the relay.
    async fn listen(&self, hub: &Arc<Hub>) -> Result<(), LiveError> {
        self.start(hub);
        let listener = self.listener();
        let mut ready = listener.ready.subscribe();
        match tokio::time::timeout(Duration::from_secs(2), ready.wait_for(|r| *r)).await {
            Ok(Ok(_)) => Ok(()),
            _ => Err(LiveError::Store(listener.not_listening.to_owned())),
        }
    }
}

/// Whether the listener was started, and whether it listens now.
pub(crate) struct Listener {
    started: AtomicBool,
    /// True while the listener listens.
    ready: watch::Sender<bool>,
    /// The error of a subscriber that waited for it in vain.
    not_listening: &'static str,
}

impl Listener {
    pub(crate) fn new(not_listening: &'static str) -> Self {
        Self {
            started: AtomicBool::new(false),
            ready: watch::channel(false).0,
            not_listening,
        }
    }
}

/// `value` as the JSON the store holds or sends.
pub(crate) fn to_json(value: &impl serde::Serialize) -> Result<String, LiveError> {
    serde_json::to_string(value).map_err(|e| LiveError::Data(e.to_string()))
}

/// After a listener's connection ended: no longer ready; `false` once the hub is gone (the
/// listener stops), else `true` after a second (it reconnects).
pub(crate) async fn reconnect(ready: &watch::Sender<bool>, hub: &Weak<Hub>) -> bool {
    ready.send_replace(false);
    if hub.strong_count() == 0 {
        return false;
    }
    metrics::counter!("replicate_webhook_live_listener_reconnects_total").increment(1);
    tokio::time::sleep(Duration::from_secs(1)).await;
    true
}

/// What a subscriber resuming after `after` (or connecting) is sent first, given the state the
/// store holds and `events_from(seq)`, its replay window from `seq` on; and whether the
/// prediction has ended.
pub(crate) async fn initial(
    id: &str,
    state: &State,
    after: Option<u64>,
    events_from: impl AsyncFnOnce(u64) -> Result<Vec<LiveEvent>, LiveError>,
) -> Result<(Vec<LiveEvent>, bool), LiveError> {
    let ended = state.is_terminal();
    if state.seq == 0 {
        return Ok((Vec::new(), ended));
    }
    let snapshot = || Ok((vec![state.snapshot(id)], ended));
    let Some(after) = after.filter(|a| *a <= state.seq) else {
        return snapshot();
    };
    if after == state.seq {
        return Ok((Vec::new(), ended));
    }
    // From `after` itself: its presence proves nothing between it and now was trimmed.
    let events = events_from(after.max(1)).await?;
    if events.first().map(|e| e.seq) != Some(after.max(1)) {
        return snapshot();
    }
    Ok((
        events.into_iter().filter(|e| e.seq > after).collect(),
        ended,
    ))
}
