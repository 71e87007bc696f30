//! The journal in process memory: a ring of the newest rows.

use std::collections::VecDeque;
use std::sync::{Mutex, MutexGuard, PoisonError};

use super::store::JournalStore;
use super::{Record, Search};
use crate::dedupe::StoreError;

#[derive(Debug, Default)]
pub(crate) struct MemoryJournal {
    rows: Mutex<Rows>,
}

#[derive(Debug, Default)]
struct Rows {
    next_id: i64,
    /// Oldest first.
    rows: VecDeque<Record>,
}

#[async_trait::async_trait]
impl JournalStore for MemoryJournal {
    async fn insert(&self, rows: Vec<Record>) -> Result<(), StoreError> {
        let mut state = self.lock();
        for row in rows {
            state.push(row);
        }
        Ok(())
    }

    async fn search(&self, search: &Search) -> Result<Vec<Record>, StoreError> {
        let state = self.lock();
        Ok(state
            .rows
            .iter()
            .rev()
            .filter(|row| search.matches(row))
            .take(search.limit())
            .cloned()
            .collect())
    }

    async fn trim(&self, keep: u64, before_ms: i64) -> Result<(), StoreError> {
        self.lock().trim(keep, before_ms);
        Ok(())
    }

    fn append_now(&self, row: Record, keep: u64, before_ms: i64) -> Option<Record> {
        let mut state = self.lock();
        state.push(row);
        // At most one row over the bound was just added, and the oldest age out one by one:
        // trimming here costs a pop now and then.
        state.trim(keep, before_ms);
        None
    }
}

impl MemoryJournal {
    fn lock(&self) -> MutexGuard<'_, Rows> {
        self.rows.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Rows {
    fn push(&mut self, mut row: Record) {
        self.next_id += 1;
        row.id = self.next_id;
        self.rows.push_back(row);
    }

    fn trim(&mut self, keep: u64, before_ms: i64) {
        let keep = usize::try_from(keep).unwrap_or(usize::MAX);
        while self
            .rows
            .front()
            .is_some_and(|row| row.received_ms < before_ms || self.rows.len() > keep)
        {
            self.rows.pop_front();
        }
    }
}
