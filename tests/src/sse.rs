//! A Server-Sent Events reader over a real HTTP response, for the live channel's tests.

use std::pin::Pin;

use futures_util::{Stream, StreamExt as _};

/// One event as a browser would dispatch it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    /// The `id:` field, if any.
    pub id: Option<String>,
    /// The `event:` field, `message` when absent.
    pub event: String,
    /// The `data:` lines joined by `\n`.
    pub data: String,
}

impl SseEvent {
    /// `data` parsed as JSON; panics when it is not.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.data)
            .unwrap_or_else(|e| panic!("event data is not JSON ({e}): {}", self.data))
    }
}

/// Reads events from a `text/event-stream` response.
pub struct SseReader {
    body: Pin<Box<dyn Stream<Item = reqwest::Result<actix_web::web::Bytes>> + Send>>,
    buffer: String,
    /// Comment lines (heartbeats) seen so far.
    pub comments: usize,
}

impl std::fmt::Debug for SseReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SseReader")
            .field("comments", &self.comments)
            .finish_non_exhaustive()
    }
}

impl SseReader {
    /// Reads `response`'s body; panics unless it is a `200 text/event-stream`.
    pub fn new(response: reqwest::Response) -> Self {
        assert_eq!(response.status(), 200, "not a stream: {response:?}");
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        assert_eq!(content_type, "text/event-stream");
        Self {
            body: Box::pin(response.bytes_stream()),
            buffer: String::new(),
            comments: 0,
        }
    }

    /// The next event, or `None` when the server ended the stream.
    pub async fn next(&mut self) -> Option<SseEvent> {
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                if let Some(event) = self.parse(&block) {
                    return Some(event);
                }
                continue;
            }
            match self.body.next().await {
                Some(Ok(chunk)) => self
                    .buffer
                    .push_str(std::str::from_utf8(&chunk).expect("UTF-8 stream")),
                Some(Err(e)) => panic!("stream broke: {e}"),
                None => {
                    assert!(
                        self.buffer.trim().is_empty(),
                        "unfinished event: {:?}",
                        self.buffer
                    );
                    return None;
                }
            }
        }
    }

    /// Every event until the server ends the stream.
    pub async fn rest(&mut self) -> Vec<SseEvent> {
        let mut events = Vec::new();
        while let Some(event) = self.next().await {
            events.push(event);
        }
        events
    }

    fn parse(&mut self, block: &str) -> Option<SseEvent> {
        let (mut id, mut event, mut data) = (None, None, Vec::new());
        for line in block.lines() {
            if line.starts_with(':') {
                self.comments += 1;
                continue;
            }
            let (field, value) = line.split_once(':').unwrap_or((line, ""));
            let value = value.strip_prefix(' ').unwrap_or(value);
            match field {
                "id" => id = Some(value.to_owned()),
                "event" => event = Some(value.to_owned()),
                "data" => data.push(value.to_owned()),
                _ => {}
            }
        }
        if data.is_empty() {
            return None;
        }
        Some(SseEvent {
            id,
            event: event.unwrap_or_else(|| "message".to_owned()),
            data: data.join("\n"),
        })
    }
}
