//! The predictions the reconciler watches, for the memory store: by id, and ordered by when
//! they are due.

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

use super::super::{Backoff, StoreError};

#[derive(Debug, Default)]
pub(super) struct Tracked {
    by_id: HashMap<String, Watch>,
    by_due: BTreeSet<(i64, String)>,
}

#[derive(Debug, Clone, Copy)]
pub(super) struct Watch {
    due_ms: i64,
    attempts: u32,
    forget_after: Instant,
}

impl Tracked {
    /// Stops watching `id` (its terminal status was handled).
    pub(super) fn remove(&mut self, id: &str) -> Option<Watch> {
        let watch = self.by_id.remove(id)?;
        self.by_due.remove(&(watch.due_ms, id.to_owned()));
        Some(watch)
    }

    fn insert(&mut self, id: &str, watch: Watch) {
        self.remove(id);
        self.by_due.insert((watch.due_ms, id.to_owned()));
        self.by_id.insert(id.to_owned(), watch);
    }

    /// [`DedupeStore::track`](super::super::DedupeStore::track), holding at most `max` ids.
    pub(super) fn track(
        &mut self,
        prediction_id: &str,
        due_ms: i64,
        ttl: Duration,
        max: usize,
    ) -> Result<(), StoreError> {
        if self.by_id.len() >= max && !self.by_id.contains_key(prediction_id) {
            let now = Instant::now();
            self.by_id.retain(|_, w| w.forget_after > now);
            self.by_due.retain(|(_, id)| self.by_id.contains_key(id));
            if self.by_id.len() >= max {
                return Err(StoreError::new("memory store full of watched predictions"));
            }
        }
        let watch = Watch {
            due_ms,
            attempts: 0,
            forget_after: Instant::now()
                .checked_add(ttl)
                .unwrap_or_else(|| Instant::now() + Duration::from_hours(100 * 365 * 24)),
        };
        self.insert(prediction_id, watch);
        Ok(())
    }

    /// [`DedupeStore::watched`](super::super::DedupeStore::watched).
    pub(super) fn list(&self, limit: usize) -> Vec<super::super::WatchedPrediction> {
        let now = Instant::now();
        self.by_due
            .iter()
            .filter_map(|(due_ms, id)| {
                let watch = self.by_id.get(id).filter(|w| w.forget_after > now)?;
                Some(super::super::WatchedPrediction {
                    prediction_id: id.clone(),
                    due_ms: *due_ms,
                    attempts: watch.attempts,
                })
            })
            .take(limit)
            .collect()
    }

    /// [`DedupeStore::take_due`](super::super::DedupeStore::take_due).
    pub(super) fn take_due(
        &mut self,
        now_ms: i64,
        limit: usize,
        retry: Backoff,
    ) -> Vec<(String, u32)> {
        let now = Instant::now();
        let due: Vec<String> = self
            .by_due
            .iter()
            .take_while(|(due, _)| *due <= now_ms)
            .map(|(_, id)| id.clone())
            .collect();
        let mut taken = Vec::new();
        for id in due {
            let Some(watch) = self.remove(&id) else {
                continue;
            };
            if watch.forget_after <= now {
                continue;
            }
            if taken.len() < limit {
                taken.push((id.clone(), watch.attempts));
                let next = Watch {
                    due_ms: now_ms.saturating_add(retry.after(watch.attempts)),
                    attempts: watch.attempts + 1,
                    ..watch
                };
                self.insert(&id, next);
            } else {
                self.insert(&id, watch);
                break;
            }
        }
        taken
    }
}
