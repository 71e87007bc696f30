//! Reading a request body before it is verified: bounded in size, in time and, across every
//! connection at once, in memory.
//!
//! A body is buffered before its signature can be checked, so an unauthenticated client decides
//! how much memory it holds and for how long. Each limit here caps one way to abuse that: a
//! declared or streamed size over the body limit (413), a body that trickles in or stalls (408),
//! and many connections each holding a large body at once (503 once the budget is spent).
//!
//! The budget is charged by bytes received, never by what a client declares: a declaration
//! costs the client nothing to make, so reserving it would let a few idle connections that each
//! declare a large body hold the whole budget for free and starve Replicate's deliveries.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use actix_web::HttpRequest;
use actix_web::http::header;
use actix_web::web::{self, Bytes, BytesMut};
use futures_util::StreamExt as _;
use tokio::time::{Instant, timeout_at};

/// Why a body was not read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum BodyError {
    /// Declared or streamed past the body limit (or past the whole budget).
    TooLarge(usize),
    /// `Content-Length` that is not a number.
    BadLength,
    /// Not complete within the read deadline, or silent for longer than the idle timeout.
    TooSlow,
    /// The budget for unverified bodies is held by other requests right now.
    Busy,
    /// The connection failed while the body was read.
    Broken(String),
}

/// The limits a body is read under.
#[derive(Debug, Clone)]
pub(crate) struct BodyLimits {
    pub(crate) max: usize,
    pub(crate) read_timeout: Duration,
    pub(crate) idle_timeout: Duration,
    pub(crate) budget: Budget,
}

impl BodyLimits {
    /// The largest body that can ever be accepted: the limit, or the whole budget if smaller.
    fn largest(&self) -> usize {
        self.max.min(self.budget.max)
    }
}

/// Bytes of unverified bodies held at once, across every connection of a receiver.
#[derive(Debug, Clone)]
pub(crate) struct Budget {
    held: Arc<AtomicUsize>,
    max: usize,
}

impl Budget {
    pub(crate) fn new(max: usize) -> Self {
        Self {
            held: Arc::default(),
            max,
        }
    }

    /// Takes `bytes` from the budget, or nothing when that would exceed it.
    fn take(&self, bytes: usize) -> Option<Reservation> {
        self.held
            .fetch_update(Ordering::AcqRel, Ordering::Relaxed, |held| {
                held.checked_add(bytes).filter(|n| *n <= self.max)
            })
            .ok()?;
        Some(Reservation {
            held: self.held.clone(),
            bytes,
        })
    }

    /// Bytes held right now.
    #[cfg(test)]
    fn held(&self) -> usize {
        self.held.load(Ordering::Relaxed)
    }
}

/// Budget bytes held by one body until it is verified (or refused), returned on drop.
#[derive(Debug)]
pub(crate) struct Reservation {
    held: Arc<AtomicUsize>,
    bytes: usize,
}

impl Reservation {
    fn grow(&mut self, budget: &Budget, bytes: usize) -> bool {
        let Some(mut more) = budget.take(bytes) else {
            return false;
        };
        // The bytes move into this reservation; `more` must not return them on drop.
        self.bytes += std::mem::take(&mut more.bytes);
        true
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.held.fetch_sub(self.bytes, Ordering::AcqRel);
    }
}

/// The body's declared length, refused (413) when it is over the body limit or could never fit
/// in the budget for unverified bodies. Checked before anything else: it costs nothing.
pub(crate) fn declared_length(
    req: &HttpRequest,
    limits: &BodyLimits,
) -> Result<Option<usize>, BodyError> {
    let Some(value) = req.headers().get(header::CONTENT_LENGTH) else {
        return Ok(None);
    };
    let declared = value
        .to_str()
        .ok()
        .and_then(|s| s.parse::<usize>().ok())
        .ok_or(BodyError::BadLength)?;
    if declared > limits.largest() {
        return Err(BodyError::TooLarge(limits.largest()));
    }
    Ok(Some(declared))
}

/// Reads a body of `declared` length (from [`declared_length`]) or chunked: 413 if the stream
/// says more than allowed, within the read deadline and the idle timeout, within the shared
/// budget. The reservation comes back with the body: hold it until the body is verified.
pub(crate) async fn read(
    mut payload: web::Payload,
    declared: Option<usize>,
    limits: &BodyLimits,
) -> Result<(Bytes, Reservation), BodyError> {
    // Charged as bytes arrive (see the module docs): nothing is held before the first one.
    let mut reservation = Reservation {
        held: limits.budget.held.clone(),
        bytes: 0,
    };
    // The declared length is unverified: trust it for the limit, not for an allocation. A
    // connection's buffer is at most this far ahead of the bytes it was charged for.
    let capacity = declared.unwrap_or(8 * 1024).min(AHEAD);
    let mut body = Collected::Empty;
    let deadline = Instant::now() + limits.read_timeout;
    loop {
        let idle = (Instant::now() + limits.idle_timeout).min(deadline);
        let chunk = match timeout_at(idle, payload.next()).await {
            Err(_) => return Err(BodyError::TooSlow),
            Ok(None) => break,
            Ok(Some(Err(e))) => return Err(BodyError::Broken(e.to_string())),
            Ok(Some(Ok(chunk))) => chunk,
        };
        let len = body.len() + chunk.len();
        if len > limits.largest() {
            return Err(BodyError::TooLarge(limits.largest()));
        }
        if len > reservation.bytes && !reservation.grow(&limits.budget, len - reservation.bytes) {
            return Err(BodyError::Busy);
        }
        body.push(chunk, capacity);
    }
    Ok((body.into_bytes(), reservation))
}

/// The most a body's buffer is allocated ahead of the bytes that arrived: the one uncharged
/// allocation an unverified client can cause per connection.
const AHEAD: usize = 64 * 1024;

/// A body as it arrives. Most arrive in one chunk, which is kept as it is: it is copied only
/// when a second chunk follows.
enum Collected {
    Empty,
    One(Bytes),
    Many(BytesMut),
}

impl Collected {
    fn len(&self) -> usize {
        match self {
            Self::Empty => 0,
            Self::One(bytes) => bytes.len(),
            Self::Many(bytes) => bytes.len(),
        }
    }

    fn push(&mut self, chunk: Bytes, capacity: usize) {
        *self = match std::mem::replace(self, Self::Empty) {
            Self::Empty => Self::One(chunk),
            Self::One(first) => {
                let mut all = BytesMut::with_capacity(capacity.max(first.len() + chunk.len()));
                all.extend_from_slice(&first);
                all.extend_from_slice(&chunk);
                Self::Many(all)
            }
            Self::Many(mut all) => {
                all.extend_from_slice(&chunk);
                Self::Many(all)
            }
        };
    }

    fn into_bytes(self) -> Bytes {
        match self {
            Self::Empty => Bytes::new(),
            Self::One(bytes) => bytes,
            Self::Many(bytes) => bytes.freeze(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_are_joined_in_order_and_one_chunk_is_not_copied() {
        let one = Bytes::from_static(b"{\"id\":1}");
        let mut body = Collected::Empty;
        body.push(one.clone(), 4);
        assert_eq!(body.len(), one.len());
        let kept = body.into_bytes();
        assert_eq!(kept.as_ptr(), one.as_ptr(), "the chunk itself, not a copy");

        let mut body = Collected::Empty;
        for chunk in [&b"ab"[..], b"", b"cde", b"f"] {
            body.push(Bytes::copy_from_slice(chunk), 2);
        }
        assert_eq!(body.len(), 6);
        assert_eq!(&body.into_bytes()[..], b"abcdef");
        assert!(Collected::Empty.into_bytes().is_empty());
    }

    #[test]
    fn the_budget_is_shared_and_returned() {
        let budget = Budget::new(100);
        let a = budget.take(60).unwrap();
        assert!(budget.take(50).is_none(), "over the shared budget");
        let mut b = budget.take(40).unwrap();
        assert_eq!(budget.held(), 100);
        assert!(!b.grow(&budget, 1));
        drop(a);
        assert!(b.grow(&budget, 10));
        assert_eq!(budget.held(), 50);
        drop(b);
        assert_eq!(budget.held(), 0);
    }
}
