//! Server-Sent Events as the WHATWG HTML standard defines them (§9.2 "Server-sent events"):
//! event framing, heartbeat comments, `Last-Event-ID`, and a streaming response that interleaves
//! heartbeats with the events of any `Stream`. Shared by every web room that pushes to a browser.

use std::fmt::Write as _;
use std::time::Duration;

use actix_web::http::header;
use actix_web::web::Bytes;
use actix_web::{HttpRequest, HttpResponse};
use futures_util::{Stream, StreamExt as _};

/// The request header a reconnecting `EventSource` sends with the last `id:` it received.
pub const LAST_EVENT_ID: &str = "last-event-id";

/// How often a heartbeat comment is sent on an idle stream by default: well under the minute
/// after which common proxies and load balancers close an idle connection.
pub const DEFAULT_HEARTBEAT: Duration = Duration::from_secs(15);

/// One event: its `id:`, `event:` (type) and `data:` fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// The `id:` field; a reconnecting client sends it back as `Last-Event-ID`.
    pub id: Option<String>,
    /// The `event:` field; `None` dispatches as `message`.
    pub event: Option<String>,
    /// The `data:` field; line breaks become several `data:` lines, as the standard requires.
    pub data: String,
}

impl Event {
    /// An event of type `event` with `data`, and no id.
    pub fn new(event: impl Into<String>, data: impl Into<String>) -> Self {
        Self {
            id: None,
            event: Some(event.into()),
            data: data.into(),
        }
    }

    /// The same event with `id:`.
    #[must_use]
    pub fn with_id(mut self, id: impl Into<String>) -> Self {
        self.id = Some(id.into());
        self
    }

    /// The event's bytes on the wire, ending with the blank line that dispatches it.
    ///
    /// `id` and `event` cannot hold a line break (it would end the field): any is dropped, as is
    /// NUL in `id`, which makes clients ignore the whole field.
    pub fn encode(&self) -> Bytes {
        let mut out = String::with_capacity(self.data.len() + 64);
        if let Some(id) = &self.id {
            let _ = writeln!(out, "id: {}", one_line(id, Some('\0')));
        }
        if let Some(event) = &self.event {
            let _ = writeln!(out, "event: {}", one_line(event, None));
        }
        // CRLF, CR and LF each end a line in the stream; each line of data gets its own field.
        for line in self.data.split("\r\n").flat_map(|l| l.split(['\r', '\n'])) {
            let _ = writeln!(out, "data: {line}");
        }
        out.push('\n');
        Bytes::from(out)
    }
}

/// A comment line, ignored by clients: what keeps an idle stream open through proxies.
pub fn comment(text: &str) -> Bytes {
    Bytes::from(format!(": {}\n\n", one_line(text, None)))
}

/// `text` without line breaks, which would end its field, and without `also`.
fn one_line(text: &str, also: Option<char>) -> String {
    text.chars()
        .filter(|c| !matches!(c, '\r' | '\n') && Some(*c) != also)
        .collect()
}

/// The `Last-Event-ID` header of `req`, when present and valid UTF-8.
pub fn last_event_id(req: &HttpRequest) -> Option<&str> {
    req.headers()
        .get(LAST_EVENT_ID)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
}

/// A `200 text/event-stream` response sending `events`, with a heartbeat comment after every
/// `heartbeat` without an event; the response ends when `events` ends.
pub fn response<S>(events: S, heartbeat: Duration) -> HttpResponse
where
    S: Stream<Item = Event> + Unpin + 'static,
{
    HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header((header::CACHE_CONTROL, "no-store"))
        // nginx buffers responses by default, which would hold events back.
        .insert_header(("x-accel-buffering", "no"))
        .streaming(with_heartbeat(events, heartbeat).map(Ok::<_, std::convert::Infallible>))
}

/// The bytes of `events`, with a heartbeat comment whenever `heartbeat` passes without one.
pub fn with_heartbeat<S>(events: S, heartbeat: Duration) -> impl Stream<Item = Bytes>
where
    S: Stream<Item = Event> + Unpin,
{
    futures_util::stream::unfold(Some(events), move |events| async move {
        let mut events = events?;
        tokio::select! {
            next = events.next() => next.map(|event| (event.encode(), Some(events))),
            () = tokio::time::sleep(heartbeat) => Some((comment("heartbeat"), Some(events))),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_fields_and_splits_data_lines() {
        let event = Event::new("logs", "a\nb\r\nc\rd").with_id("7");
        assert_eq!(
            &event.encode()[..],
            b"id: 7\nevent: logs\ndata: a\ndata: b\ndata: c\ndata: d\n\n"
        );
    }

    #[test]
    fn line_breaks_cannot_inject_fields() {
        let event = Event::new("x\ndata: forged", "ok").with_id("1\nevent: y\0");
        assert_eq!(
            &event.encode()[..],
            b"id: 1event: y\nevent: xdata: forged\ndata: ok\n\n"
        );
        assert_eq!(&comment("a\nb")[..], b": ab\n\n");
    }

    #[test]
    fn empty_data_is_one_empty_field() {
        assert_eq!(&Event::new("e", "").encode()[..], b"event: e\ndata: \n\n");
    }
}
