//! Per-prediction progress shared by every worker of a receiver.

use std::collections::HashMap;
use std::sync::Mutex;

/// The last output seen per prediction, to tell `output` deliveries from `logs` ones.
/// Per process and bounded: a heuristic, since the body carries no event name.
#[derive(Debug, Default)]
pub(crate) struct Progress {
    last_output: Mutex<HashMap<String, u64>>,
}

impl Progress {
    const CAPACITY: usize = 10_000;

    /// Records `output` as the latest of `prediction`; `Some` when it differs from the one before.
    /// Undo it when the delivery is not acknowledged, so its retry is an output again.
    pub(crate) fn observe(&self, prediction: &str, output: Option<&str>) -> Option<Undo> {
        use std::hash::{BuildHasher as _, BuildHasherDefault, DefaultHasher};
        let output = output.filter(|o| *o != "null")?;
        let hash = BuildHasherDefault::<DefaultHasher>::default().hash_one(output);
        let mut map = self.lock();
        if map.len() >= Self::CAPACITY && !map.contains_key(prediction) {
            map.clear();
        }
        let previous = map.insert(prediction.to_owned(), hash);
        (previous != Some(hash)).then_some(Undo {
            previous,
            current: hash,
        })
    }

    /// Puts back the output seen before, unless a later delivery recorded another since.
    pub(crate) fn undo(&self, prediction: &str, undo: Undo) {
        let mut map = self.lock();
        if map.get(prediction) == Some(&undo.current) {
            match undo.previous {
                Some(previous) => map.insert(prediction.to_owned(), previous),
                None => map.remove(prediction),
            };
        }
    }

    pub(crate) fn forget(&self, prediction: &str) {
        self.lock().remove(prediction);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, u64>> {
        self.last_output
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// What [`Progress::observe`] changed.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Undo {
    previous: Option<u64>,
    current: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_output_is_output_and_repeats_are_logs() {
        let p = Progress::default();
        assert!(p.observe("a", None).is_none());
        assert!(p.observe("a", Some("null")).is_none());
        assert!(p.observe("a", Some("[1]")).is_some());
        assert!(p.observe("a", Some("[1]")).is_none());
        assert!(p.observe("a", Some("[1,2]")).is_some());
        assert!(p.observe("b", Some("[1,2]")).is_some());
        p.forget("a");
        assert!(p.observe("a", Some("[1,2]")).is_some());
    }

    #[test]
    fn undo_restores_the_previous_output_unless_superseded() {
        let p = Progress::default();
        p.observe("a", Some("[1]"));
        let undo = p.observe("a", Some("[1,2]")).unwrap();
        p.undo("a", undo);
        assert!(p.observe("a", Some("[1,2]")).is_some());
        let undo = p.observe("a", Some("[1,2,3]")).unwrap();
        p.observe("a", Some("[1,2,3,4]"));
        p.undo("a", undo);
        assert!(p.observe("a", Some("[1,2,3,4]")).is_none());
    }
}
