//! The journal in process memory: a ring of the newest rows.

use std::collections::VecDeque;
use std::sync::Mutex;

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
        let mut state = self
            .rows
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for mut row in rows {
            state.next_id += 1;
            row.id = state.next_id;
            state.rows.push_back(row);
        }
        Ok(())
    }

    async fn search(&self, search: &Search) -> Result<Vec<Record>, StoreError> {
        let state = self
            .rows
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
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
        let mut state = self
            .rows
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let keep = usize::try_from(keep).unwrap_or(usize::MAX);
        while state
            .rows
            .front()
            .is_some_and(|row| row.received_ms < before_ms || state.rows.len() > keep)
        {
            state.rows.pop_front();
        }
        Ok(())
    }
}
