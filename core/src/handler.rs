//! Handler names, and the event each needs.

use crate::{Event, Status};

/// Which handler of a module a delivery goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum HandlerKind {
    /// `on_start`: status `starting`.
    Start,
    /// `on_output`: status `processing` with new output.
    Output,
    /// `on_logs`: status `processing` with new logs only.
    Logs,
    /// `on_succeeded`.
    Succeeded,
    /// `on_failed`.
    Failed,
    /// `on_canceled` (also used for `aborted` when `on_aborted` is absent).
    Canceled,
    /// `on_aborted`.
    Aborted,
    /// `on_decode_error`: a verified body did not decode into the handler's types.
    DecodeError,
    /// `on_dead`: in inbox mode, a job that ran out of attempts or failed permanently.
    Dead,
}

impl HandlerKind {
    /// Every kind, in lifecycle order.
    pub const ALL: [HandlerKind; 9] = [
        Self::Start,
        Self::Output,
        Self::Logs,
        Self::Succeeded,
        Self::Failed,
        Self::Canceled,
        Self::Aborted,
        Self::DecodeError,
        Self::Dead,
    ];

    /// The handler function's name, e.g. `on_succeeded`.
    pub fn fn_name(self) -> &'static str {
        match self {
            Self::Start => "on_start",
            Self::Output => "on_output",
            Self::Logs => "on_logs",
            Self::Succeeded => "on_succeeded",
            Self::Failed => "on_failed",
            Self::Canceled => "on_canceled",
            Self::Aborted => "on_aborted",
            Self::DecodeError => "on_decode_error",
            Self::Dead => "on_dead",
        }
    }

    /// The kind for a handler function's name.
    pub fn from_fn_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.fn_name() == name)
    }

    /// The event a module must subscribe to for this handler to run; `None` for
    /// `on_decode_error` and `on_dead`, which any event can reach.
    pub fn event(self) -> Option<Event> {
        match self {
            Self::Start => Some(Event::Start),
            Self::Output => Some(Event::Output),
            Self::Logs => Some(Event::Logs),
            Self::Succeeded | Self::Failed | Self::Canceled | Self::Aborted => {
                Some(Event::Completed)
            }
            Self::DecodeError | Self::Dead => None,
        }
    }

    /// A handler for one of the terminal statuses.
    pub fn is_terminal(self) -> bool {
        self.event() == Some(Event::Completed)
    }

    /// The handler a delivery with `status` goes to: the body carries no event name, so a
    /// `processing` delivery is an output or logs as `new_output` says. `None` for unknown
    /// statuses.
    pub fn for_status(status: &Status, new_output: bool) -> Option<Self> {
        match status {
            Status::Starting => Some(Self::Start),
            Status::Processing if new_output => Some(Self::Output),
            Status::Processing => Some(Self::Logs),
            status => Self::for_terminal(status),
        }
    }

    /// The kind for a terminal status.
    pub fn for_terminal(status: &Status) -> Option<Self> {
        match status {
            Status::Succeeded => Some(Self::Succeeded),
            Status::Failed => Some(Self::Failed),
            Status::Canceled => Some(Self::Canceled),
            Status::Aborted => Some(Self::Aborted),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_terminal_handlers_follow_the_statuses() {
        for kind in HandlerKind::ALL {
            assert_eq!(HandlerKind::from_fn_name(kind.fn_name()), Some(kind));
        }
        let terminal: Vec<_> = HandlerKind::ALL
            .into_iter()
            .filter(|k| k.is_terminal())
            .collect();
        let by_status: Vec<_> = Status::TERMINAL
            .iter()
            .map(|s| HandlerKind::for_terminal(s).expect("terminal status has a handler"))
            .collect();
        assert_eq!(terminal, by_status);
    }
}
