//! What the request path knows about an answer, carried on the response to the one place that
//! journals it: each exit says its outcome where it decides it, and `receive` records the row.

use std::time::Duration;

use actix_web::HttpResponse;

use super::Outcome;
use crate::prediction::Event;

/// Attached to a response as an extension.
#[derive(Debug, Clone, Default)]
pub(crate) struct Note {
    pub(crate) outcome: Option<Outcome>,
    pub(crate) event: Option<Event>,
    pub(crate) handler: Option<Duration>,
    pub(crate) detail: Option<String>,
}

/// Error text longer than this is cut: a row is a summary, not a log.
const DETAIL_MAX: usize = 500;

/// Marks how a response came about.
pub(crate) trait Noted: Sized {
    /// Sets the outcome.
    fn noted(self, outcome: Outcome) -> Self;
    /// Sets the outcome, the handler's run time and its error, if any.
    fn ran(self, outcome: Outcome, handler: Duration, detail: Option<String>) -> Self;
    /// Sets the inferred event, unless an exit set one already.
    fn event(self, event: Option<Event>) -> Self;
}

impl Noted for HttpResponse {
    fn noted(mut self, outcome: Outcome) -> Self {
        edit(&mut self, |note| note.outcome = Some(outcome));
        self
    }

    fn ran(mut self, outcome: Outcome, handler: Duration, detail: Option<String>) -> Self {
        edit(&mut self, |note| {
            note.outcome = Some(outcome);
            note.handler = Some(handler);
            note.detail = detail.map(|mut d| {
                d.truncate(d.floor_char_boundary(DETAIL_MAX));
                d
            });
        });
        self
    }

    fn event(mut self, event: Option<Event>) -> Self {
        edit(&mut self, |note| note.event = note.event.or(event));
        self
    }
}

fn edit(response: &mut HttpResponse, f: impl FnOnce(&mut Note)) {
    let mut extensions = response.extensions_mut();
    if let Some(note) = extensions.get_mut::<Note>() {
        f(note);
    } else {
        let mut note = Note::default();
        f(&mut note);
        extensions.insert(note);
    }
}

/// The note of `response`, if an exit left one.
pub(crate) fn of(response: &HttpResponse) -> Note {
    response
        .extensions()
        .get::<Note>()
        .cloned()
        .unwrap_or_default()
}
