//! The simulator's shared state: every prediction and every delivery attempt, behind one lock.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::{Mutex, MutexGuard};
use std::time::Instant;

use replicate_webhook::{Event, Status};

use super::Config;
use super::deliver::{Delivery, DeliveryRecord};
use super::models::Models;

/// One simulated prediction.
#[derive(Debug)]
pub(super) struct Sim {
    pub(super) body: serde_json::Value,
    pub(super) events: BTreeSet<Event>,
    pub(super) webhook: Option<String>,
    pub(super) created: Instant,
    pub(super) last_intermediate: Option<Instant>,
    pub(super) pending_intermediate: Option<Event>,
    pub(super) held: Option<Delivery>,
}

impl Sim {
    pub(super) fn status(&self) -> &str {
        self.body["status"].as_str().unwrap_or_default()
    }

    pub(super) fn is_terminal(&self) -> bool {
        Status::parse(self.status()).is_terminal()
    }
}

#[derive(Debug, Default)]
pub(super) struct Inner {
    pub(super) order: Vec<String>,
    pub(super) predictions: HashMap<String, Sim>,
    pub(super) deliveries: Vec<DeliveryRecord>,
    pub(super) api_errors: VecDeque<u16>,
}

/// Shared simulator state.
#[derive(Debug)]
pub(super) struct State {
    pub(super) config: Config,
    pub(super) models: Models,
    pub(super) api_base: String,
    pub(super) http: reqwest::Client,
    pub(super) inner: Mutex<Inner>,
}

impl State {
    pub(super) fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves plain data behind: keep serving.
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}
