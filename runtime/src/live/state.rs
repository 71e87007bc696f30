//! A prediction as its subscribers know it, and the change one delivery makes to it.
//!
//! Applying a delivery is idempotent: one that changes nothing (a duplicate, a redelivery of a
//! handled event) or goes backwards (fewer logs, an earlier status, anything after the terminal
//! status) yields no event. So even a delivery that reaches the channel twice is seen once.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// What one accepted delivery says about its prediction: the fields the channel shows.
#[derive(Debug, Clone, Deserialize)]
pub struct Update {
    /// The prediction id.
    pub id: String,
    /// Its status, as Replicate spells it.
    pub status: String,
    /// Output so far.
    #[serde(default)]
    pub output: Value,
    /// Logs so far (cumulative, as Replicate sends them).
    #[serde(default)]
    pub logs: Option<String>,
    /// The error of a failed prediction.
    #[serde(default)]
    pub error: Value,
}

/// The state of one prediction's channel.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct State {
    /// The number of the last event published: events are numbered 1, 2, 3… per prediction.
    pub seq: u64,
    /// The last status, empty before the first delivery.
    pub status: String,
    /// Output so far.
    pub output: Value,
    /// Logs so far.
    pub logs: String,
    /// The error, when failed.
    pub error: Value,
}

/// One event of a channel: its number, its type and its JSON `data`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LiveEvent {
    /// Its number in the prediction's channel (the SSE `id:`).
    pub seq: u64,
    /// Its type (the SSE `event:`): `start`, `output`, `logs`, `completed`, or the app's own.
    pub event: String,
    /// Its JSON object (the SSE `data:`).
    pub data: String,
    /// Whether the channel ends after it.
    pub terminal: bool,
}

/// Event types the channel itself sends; an app's own event may use none of them.
pub const RESERVED: [&str; 7] = [
    "state",
    "start",
    "output",
    "logs",
    "completed",
    "lagged",
    "reset",
];

pub(crate) fn is_terminal(status: &str) -> bool {
    matches!(status, "succeeded" | "failed" | "canceled" | "aborted")
}

fn rank(status: &str) -> u8 {
    match status {
        "" => 0,
        "starting" => 1,
        "processing" => 2,
        _ if is_terminal(status) => 3,
        // A status this version does not know: after starting, before the end.
        _ => 2,
    }
}

impl State {
    /// Whether the prediction has ended: nothing changes it any more.
    pub fn is_terminal(&self) -> bool {
        is_terminal(&self.status)
    }

    /// Applies `update`; returns the event it makes, or `None` when it changes nothing or goes
    /// backwards.
    pub fn apply(&mut self, update: &Update) -> Option<LiveEvent> {
        if self.is_terminal() || rank(&update.status) < rank(&self.status) {
            return None;
        }
        let logs = update.logs.as_deref().unwrap_or_default();
        if logs.len() < self.logs.len() && !is_terminal(&update.status) {
            return None;
        }
        // Logs only grow; text that does not extend what was sent replaces it (`reset`).
        let (appended, reset) = match logs.strip_prefix(self.logs.as_str()) {
            Some(tail) => (tail, false),
            None => (logs, true),
        };
        let output_changed = update.output != self.output;
        let status_changed = update.status != self.status;
        if !status_changed && !output_changed && appended.is_empty() && !reset {
            return None;
        }
        let event = if is_terminal(&update.status) {
            "completed"
        } else if update.status == "starting" {
            "start"
        } else if output_changed {
            "output"
        } else {
            "logs"
        };
        let mut data = serde_json::json!({
            "id": update.id,
            "status": update.status,
            "output": update.output,
            "error": update.error,
            "logs": appended,
        });
        if reset {
            data["logs_reset"] = Value::Bool(true);
        }
        self.seq += 1;
        self.status.clone_from(&update.status);
        self.output.clone_from(&update.output);
        self.error.clone_from(&update.error);
        logs.clone_into(&mut self.logs);
        Some(LiveEvent {
            seq: self.seq,
            event: event.to_owned(),
            data: data.to_string(),
            terminal: self.is_terminal(),
        })
    }

    /// The whole state as one `state` event numbered as the last event, for a subscriber that
    /// connects (or reconnects past the replay window): logs are all logs so far.
    pub fn snapshot(&self, id: &str) -> LiveEvent {
        let data = serde_json::json!({
            "id": id,
            "status": self.status,
            "output": self.output,
            "error": self.error,
            "logs": self.logs,
        });
        LiveEvent {
            seq: self.seq,
            event: "state".to_owned(),
            data: data.to_string(),
            terminal: self.is_terminal(),
        }
    }

    /// Numbers an app's own event: it changes no field, but is replayed like the others.
    pub fn custom(&mut self, event: &str, data: &Value) -> LiveEvent {
        self.seq += 1;
        LiveEvent {
            seq: self.seq,
            event: event.to_owned(),
            data: data.to_string(),
            terminal: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An update of prediction `p` with no output.
    fn update(status: &str, logs: &str) -> Update {
        Update {
            id: "p".into(),
            status: status.into(),
            output: Value::Null,
            logs: Some(logs.into()),
            error: Value::Null,
        }
    }

    #[test]
    fn logs_are_sent_as_appended_and_duplicates_publish_nothing() {
        let mut state = State::default();
        let start = state.apply(&update("starting", "")).unwrap();
        assert_eq!((start.seq, start.event.as_str()), (1, "start"));
        let logs = state.apply(&update("processing", "a\n")).unwrap();
        assert_eq!(logs.event, "logs");
        let more = state.apply(&update("processing", "a\nb\n")).unwrap();
        let data: Value = serde_json::from_str(&more.data).unwrap();
        assert_eq!(data["logs"], "b\n");
        assert_eq!(data["id"], "p");
        assert_eq!(data["status"], "processing");
        assert!(state.apply(&update("processing", "a\nb\n")).is_none());
        assert!(state.apply(&update("processing", "a\n")).is_none());
        let out = state
            .apply(&Update {
                output: serde_json::json!(["x"]),
                ..update("processing", "a\nb\n")
            })
            .unwrap();
        assert_eq!((out.seq, out.event.as_str()), (4, "output"));
    }

    #[test]
    fn nothing_changes_a_finished_prediction() {
        let mut state = State::default();
        let done = state
            .apply(&Update {
                output: serde_json::json!("hi"),
                ..update("succeeded", "x")
            })
            .unwrap();
        assert!(done.terminal);
        assert_eq!(done.event, "completed");
        assert!(state.apply(&update("failed", "x")).is_none());
        assert!(state.apply(&update("processing", "x\ny")).is_none());
        assert!(state.apply(&update("starting", "")).is_none());
        let snapshot: Value = serde_json::from_str(&state.snapshot("p").data).unwrap();
        assert_eq!(snapshot["output"], "hi");
        assert_eq!(snapshot["logs"], "x");
    }
}
