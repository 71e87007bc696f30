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

    pub(crate) fn output_changed(&self, prediction: &str, output: Option<&str>) -> bool {
        use std::hash::{BuildHasher as _, BuildHasherDefault, DefaultHasher};
        let Some(output) = output.filter(|o| *o != "null") else {
            return false;
        };
        let hash = BuildHasherDefault::<DefaultHasher>::default().hash_one(output);
        let mut map = self
            .last_output
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if map.len() >= Self::CAPACITY && !map.contains_key(prediction) {
            map.clear();
        }
        map.insert(prediction.to_owned(), hash) != Some(hash)
    }

    pub(crate) fn forget(&self, prediction: &str) {
        self.last_output
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(prediction);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_output_is_output_and_repeats_are_logs() {
        let p = Progress::default();
        assert!(!p.output_changed("a", None));
        assert!(!p.output_changed("a", Some("null")));
        assert!(p.output_changed("a", Some("[1]")));
        assert!(!p.output_changed("a", Some("[1]")));
        assert!(p.output_changed("a", Some("[1,2]")));
        assert!(p.output_changed("b", Some("[1,2]")));
        p.forget("a");
        assert!(p.output_changed("a", Some("[1,2]")));
    }
}
