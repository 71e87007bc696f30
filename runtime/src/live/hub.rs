//! The in-process channel: per prediction, its state, a bounded replay ring and a broadcast to
//! this process's subscribers. What the memory and SQLite stores use, and what the Redis and
//! PostgreSQL backends feed on each instance so local subscribers share one upstream read.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use tokio::sync::broadcast;

use super::state::{LiveEvent, State};
use super::{Bounds, Change, Subscription};

/// Every channel of this process.
pub(crate) struct Hub {
    channels: Mutex<Channels>,
    bounds: Bounds,
}

struct Channels {
    by_id: HashMap<String, Channel>,
    /// Publishes since the last sweep of expired channels.
    since_sweep: usize,
}

struct Channel {
    state: State,
    ring: VecDeque<LiveEvent>,
    ring_bytes: usize,
    /// Events behind an `Arc`: the broadcast allocates its whole buffer (64 slots by default)
    /// when the channel is made, so its slot size is paid by every watched prediction, idle or
    /// not. A pointer is 8 bytes where the event is 64, which took an idle subscriber from about
    /// 6.3 KiB to 2.8 KiB (`live_channel`'s idle figure).
    tx: broadcast::Sender<Arc<LiveEvent>>,
    touched: Instant,
}

/// How many publishes between two sweeps of expired channels: the sweep walks every channel.
const SWEEP_EVERY: usize = 256;

impl Channel {
    fn push(&mut self, event: LiveEvent, bounds: &Bounds) {
        self.ring_bytes += event.data.len();
        self.ring.push_back(event.clone());
        while self.ring.len() > bounds.replay_events
            || (self.ring_bytes > bounds.replay_bytes && self.ring.len() > 1)
        {
            if let Some(old) = self.ring.pop_front() {
                self.ring_bytes -= old.data.len();
            }
        }
        self.touched = Instant::now();
        // No receiver is no error: nobody is watching this prediction on this instance.
        let _ = self.tx.send(Arc::new(event));
    }

    /// What a subscriber resuming after `after` (or connecting, with `None`) is sent first.
    fn initial(&self, id: &str, after: Option<u64>) -> Vec<LiveEvent> {
        if self.state.seq == 0 {
            return Vec::new();
        }
        match after {
            Some(after) if after == self.state.seq => Vec::new(),
            // Resumable when the ring still holds the event right after `after`.
            Some(after)
                if after < self.state.seq
                    && self
                        .ring
                        .front()
                        .is_some_and(|first| first.seq <= after + 1) =>
            {
                self.ring
                    .iter()
                    .filter(|e| e.seq > after)
                    .cloned()
                    .collect()
            }
            // Never seen, past the window, or from a channel that was reset: a fresh state.
            _ => vec![self.state.snapshot(id)],
        }
    }
}

impl Hub {
    pub(crate) fn new(bounds: Bounds) -> Self {
        Self {
            channels: Mutex::new(Channels {
                by_id: HashMap::new(),
                since_sweep: 0,
            }),
            bounds,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Channels> {
        self.channels.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Applies `change` to its channel; the event it made, if any, is sent to subscribers.
    pub(crate) fn apply(&self, change: &Change<'_>) -> Option<LiveEvent> {
        let mut channels = self.lock();
        let channel = channels.entry(change.id(), &self.bounds);
        let event = change.apply(&mut channel.state);
        if let Some(event) = &event {
            channel.push(event.clone(), &self.bounds);
        }
        // After the insert, so the channel just made counts against the bound.
        channels.sweep(&self.bounds);
        event
    }

    /// Joins `id`'s channel: what to send first, then what is published from now on, with no gap
    /// and no repeat between the two (both are taken under one lock).
    pub(crate) fn subscribe(&self, id: &str, after: Option<u64>) -> Subscription {
        let mut channels = self.lock();
        let channel = channels.entry(id, &self.bounds);
        channel.touched = Instant::now();
        Subscription {
            initial: channel.initial(id, after),
            live: channel.tx.subscribe(),
            ended: channel.state.is_terminal(),
        }
    }

    /// This process's receiver of `id`'s events, for a subscriber whose first events come from
    /// the store.
    pub(crate) fn join(&self, id: &str) -> broadcast::Receiver<Arc<LiveEvent>> {
        let mut channels = self.lock();
        let channel = channels.entry(id, &self.bounds);
        channel.touched = Instant::now();
        channel.tx.subscribe()
    }

    // Serves the store backends only.
    #[cfg_attr(not(any(feature = "redis", feature = "postgres")), allow(dead_code))]
    /// Hands an event another instance (or this one) published through the store to this
    /// process's subscribers of `id`, if any. The store holds state and replay, not the hub.
    pub(crate) fn relay(&self, id: &str, event: LiveEvent) {
        let mut channels = self.lock();
        if let Some(channel) = channels.by_id.get_mut(id) {
            channel.touched = Instant::now();
            let _ = channel.tx.send(Arc::new(event));
        }
        channels.sweep(&self.bounds);
    }

    /// Channels held, for tests and metrics.
    pub(crate) fn len(&self) -> usize {
        self.lock().by_id.len()
    }
}

impl Channels {
    /// The channel of `id`, made empty if it had none.
    fn entry(&mut self, id: &str, bounds: &Bounds) -> &mut Channel {
        self.by_id.entry(id.to_owned()).or_insert_with(|| Channel {
            state: State::default(),
            ring: VecDeque::new(),
            ring_bytes: 0,
            tx: broadcast::channel(bounds.subscriber_buffer.max(1)).0,
            touched: Instant::now(),
        })
    }

    /// Drops channels nobody listens to whose last change is older than the retention.
    fn sweep(&mut self, bounds: &Bounds) {
        self.since_sweep += 1;
        if self.since_sweep < SWEEP_EVERY && self.by_id.len() <= bounds.max_predictions {
            return;
        }
        self.since_sweep = 0;
        let now = Instant::now();
        self.by_id.retain(|_, c| {
            c.tx.receiver_count() > 0 || now.duration_since(c.touched) < bounds.retention
        });
        // Still too many: the least recently changed unwatched ones go first.
        if self.by_id.len() > bounds.max_predictions {
            let mut idle: Vec<_> = self
                .by_id
                .iter()
                .filter(|(_, c)| c.tx.receiver_count() == 0)
                .map(|(id, c)| (c.touched, id.clone()))
                .collect();
            idle.sort_unstable();
            let excess = self.by_id.len() - bounds.max_predictions;
            for (_, id) in idle.into_iter().take(excess) {
                self.by_id.remove(&id);
            }
        }
    }
}
