//! The simulator's shared state: every prediction and every delivery attempt, behind one lock.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::{Mutex, MutexGuard};
use std::time::Instant;

use replicate_webhook::signature::Secret;
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
    /// The account that created it: 0 for the main one, `n` for `Config::accounts[n - 1]`.
    pub(super) account: usize,
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
    /// Every `GET /v1/predictions/{id}`, in order.
    pub(super) reads: Vec<super::api::Read>,
}

/// Shared simulator state.
#[derive(Debug)]
pub(super) struct State {
    pub(super) config: Config,
    pub(super) models: Models,
    pub(super) api_base: String,
    pub(super) http: reqwest::Client,
    pub(super) inner: Mutex<Inner>,
    /// Each account's current secret, the main account's first.
    pub(super) secrets: Mutex<Vec<Secret>>,
}

impl State {
    /// The current secret of `account`.
    pub(super) fn secret(&self, account: usize) -> Secret {
        let secrets = self
            .secrets
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        secrets.get(account).unwrap_or(&secrets[0]).clone()
    }

    /// Gives `account` a new secret, and returns it.
    pub(super) fn rotate(&self, account: usize) -> Secret {
        let secret = Secret::generate();
        let mut secrets = self
            .secrets
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(slot) = secrets.get_mut(account) {
            *slot = secret.clone();
        }
        secret
    }

    pub(super) fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves plain data behind: keep serving.
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}
