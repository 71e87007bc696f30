//! Prediction statuses and the webhook events they belong to.

use std::fmt;

/// The status of a prediction. Values Replicate adds later decode as [`Status::Unknown`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Status {
    /// Starting up, often booting a worker.
    Starting,
    /// The model's `predict()` is running.
    Processing,
    /// Finished with output.
    Succeeded,
    /// Finished with an error.
    Failed,
    /// Canceled by the user, or by its deadline while running.
    Canceled,
    /// Terminated before it started running (deadline reached while queued).
    Aborted,
    /// A status this version of the crate does not know.
    Unknown(String),
}

impl Status {
    /// The statuses after which nothing changes, in the order the handlers are listed.
    pub const TERMINAL: [Status; 4] = [
        Status::Succeeded,
        Status::Failed,
        Status::Canceled,
        Status::Aborted,
    ];

    /// The wire spelling.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Starting => "starting",
            Self::Processing => "processing",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::Canceled => "canceled",
            Self::Aborted => "aborted",
            Self::Unknown(other) => other,
        }
    }

    /// Parses the wire spelling; anything unrecognised becomes [`Status::Unknown`].
    pub fn parse(text: &str) -> Self {
        match text {
            "starting" => Self::Starting,
            "processing" => Self::Processing,
            "succeeded" => Self::Succeeded,
            "failed" => Self::Failed,
            "canceled" => Self::Canceled,
            "aborted" => Self::Aborted,
            other => Self::Unknown(other.to_owned()),
        }
    }

    /// `succeeded`, `failed`, `canceled` or `aborted`: no further change will happen.
    pub fn is_terminal(&self) -> bool {
        matches!(
            self,
            Self::Succeeded | Self::Failed | Self::Canceled | Self::Aborted
        )
    }

    /// The event a delivery with this status belongs to; `None` for `processing`
    /// (output or logs) and for unknown statuses.
    pub fn event(&self) -> Option<Event> {
        match self {
            Self::Starting => Some(Event::Start),
            Self::Processing | Self::Unknown(_) => None,
            Self::Succeeded | Self::Failed | Self::Canceled | Self::Aborted => {
                Some(Event::Completed)
            }
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(feature = "serde")]
impl serde::Serialize for Status {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

#[cfg(feature = "serde")]
impl<'de> serde::Deserialize<'de> for Status {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = Status;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a prediction status string")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Status, E> {
                Ok(Status::parse(v))
            }
        }
        d.deserialize_str(Visitor)
    }
}

/// The webhook events of `webhook_events_filter`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(rename_all = "lowercase")
)]
pub enum Event {
    /// Sent once when the prediction starts.
    Start,
    /// Sent when the prediction produced new output (throttled to one per 500 ms).
    Output,
    /// Sent when the prediction logged (throttled to one per 500 ms).
    Logs,
    /// Sent when the prediction reached a terminal status; the only event Replicate retries.
    Completed,
}

impl Event {
    /// All four events, in lifecycle order.
    pub const ALL: [Event; 4] = [Event::Start, Event::Output, Event::Logs, Event::Completed];

    /// The wire spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Start => "start",
            Self::Output => "output",
            Self::Logs => "logs",
            Self::Completed => "completed",
        }
    }

    /// Parses the wire spelling.
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|e| e.as_str() == text)
    }
}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_map_to_events() {
        assert_eq!(Status::Starting.event(), Some(Event::Start));
        assert_eq!(Status::Processing.event(), None);
        for s in Status::TERMINAL {
            assert_eq!(Status::parse(s.as_str()), s);
            assert_eq!(s.event(), Some(Event::Completed));
        }
    }

    #[test]
    fn events_round_trip() {
        for e in Event::ALL {
            assert_eq!(Event::parse(e.as_str()), Some(e));
        }
    }
}
