//! Requests refused before verification: counted by reason and sampled, never a row each, so a
//! flood of forged requests cannot evict real history from the journal.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Mutex, MutexGuard, PoisonError};

use serde::Serialize;

/// How many recent refusals are kept as a sample.
const SAMPLE: usize = 20;

/// One sampled refusal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Refusal {
    /// When, in milliseconds since the epoch.
    pub at_ms: i64,
    /// The HTTP status answered.
    pub http_status: u16,
    /// Why (`bad-signature`, `body-too-large`, …).
    pub reason: String,
}

/// Counts by reason since start, and the latest few.
#[derive(Debug, Default)]
pub(crate) struct Refused {
    inner: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    by_reason: BTreeMap<String, u64>,
    sample: VecDeque<Refusal>,
}

/// What the overview shows of refusals.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RefusalStats {
    /// Refusals since start, by reason.
    pub by_reason: BTreeMap<String, u64>,
    /// The latest refusals, newest first.
    pub sample: Vec<Refusal>,
}

impl Refused {
    fn state(&self) -> MutexGuard<'_, State> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn record(&self, http_status: u16, reason: &str, at_ms: i64) {
        let mut state = self.state();
        if let Some(n) = state.by_reason.get_mut(reason) {
            *n += 1;
        } else {
            state.by_reason.insert(reason.to_owned(), 1);
        }
        if state.sample.len() == SAMPLE {
            state.sample.pop_back();
        }
        state.sample.push_front(Refusal {
            at_ms,
            http_status,
            reason: reason.to_owned(),
        });
    }

    pub(crate) fn stats(&self) -> RefusalStats {
        let state = self.state();
        RefusalStats {
            by_reason: state.by_reason.clone(),
            sample: state.sample.iter().cloned().collect(),
        }
    }
}
