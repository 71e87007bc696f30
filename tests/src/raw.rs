//! Requests written byte for byte on a TCP connection, for what an HTTP client would normalise
//! or refuse to send: duplicate or non-ASCII headers, lying `Content-Length`, stalled bodies.

use std::fmt::Write as _;
use std::time::Duration;

use replicate_webhook::testkit::Signed;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

/// An HTTP/1.1 request to build by hand.
#[derive(Debug, Clone)]
pub struct RawRequest {
    method: String,
    path: String,
    headers: Vec<(String, Vec<u8>)>,
    body: Vec<u8>,
    content_length: Length,
}

/// The `Content-Length` a [`RawRequest`] sends.
#[derive(Debug, Clone)]
enum Length {
    /// The body's length.
    OfBody,
    /// None (a chunked body).
    Absent,
    /// This text, whatever the body.
    Text(String),
}

impl RawRequest {
    /// A POST of `signed` to its path, with its three `webhook-*` headers and JSON content type.
    pub fn post(signed: &Signed) -> Self {
        let mut req = Self {
            method: "POST".to_owned(),
            path: signed.path().to_owned(),
            headers: vec![("content-type".to_owned(), b"application/json".to_vec())],
            body: signed.body().to_vec(),
            content_length: Length::OfBody,
        };
        for (name, value) in signed.headers() {
            req = req.header(name, value);
        }
        req
    }

    /// Sets the method.
    #[must_use]
    pub fn method(mut self, method: &str) -> Self {
        method.clone_into(&mut self.method);
        self
    }

    /// Adds a header line, as is (a second line when the name is already there).
    #[must_use]
    pub fn header(mut self, name: &str, value: impl AsRef<[u8]>) -> Self {
        self.headers
            .push((name.to_owned(), value.as_ref().to_vec()));
        self
    }

    /// Removes every line of header `name`.
    #[must_use]
    pub fn without(mut self, name: &str) -> Self {
        self.headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
        self
    }

    /// Replaces every line of header `name` with one line of `value`.
    #[must_use]
    pub fn replace(self, name: &str, value: impl AsRef<[u8]>) -> Self {
        self.without(name).header(name, value)
    }

    /// Sends `value` as the `Content-Length`, whatever the body is.
    #[must_use]
    pub fn content_length(mut self, value: impl Into<String>) -> Self {
        self.content_length = Length::Text(value.into());
        self
    }

    /// Sends the body in `chunk`-byte chunks (`Transfer-Encoding: chunked`, no `Content-Length`).
    #[must_use]
    pub fn chunked(mut self, chunk: usize) -> Self {
        let mut framed = Vec::new();
        for part in self.body.chunks(chunk.max(1)) {
            framed.extend_from_slice(format!("{:x}\r\n", part.len()).as_bytes());
            framed.extend_from_slice(part);
            framed.extend_from_slice(b"\r\n");
        }
        framed.extend_from_slice(b"0\r\n\r\n");
        self.body = framed;
        self.content_length = Length::Absent;
        self.header("transfer-encoding", "chunked")
    }

    /// Replaces the body (sent as is; the `Content-Length` follows it unless set).
    #[must_use]
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = body.into();
        self
    }

    /// The body's length in bytes.
    pub fn body_len(&self) -> usize {
        self.body.len()
    }

    /// The head: request line and headers, up to and including the blank line.
    pub fn head(&self) -> Vec<u8> {
        let mut head = format!(
            "{} {} HTTP/1.1\r\nhost: 127.0.0.1\r\nconnection: close\r\n",
            self.method, self.path
        );
        match &self.content_length {
            Length::OfBody => {
                let _ = write!(head, "content-length: {}\r\n", self.body.len());
            }
            Length::Text(value) => {
                let _ = write!(head, "content-length: {value}\r\n");
            }
            Length::Absent => {}
        }
        let mut bytes = head.into_bytes();
        for (name, value) in &self.headers {
            bytes.extend_from_slice(name.as_bytes());
            bytes.extend_from_slice(b": ");
            bytes.extend_from_slice(value);
            bytes.extend_from_slice(b"\r\n");
        }
        bytes.extend_from_slice(b"\r\n");
        bytes
    }

    /// Head and body.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut bytes = self.head();
        bytes.extend_from_slice(&self.body);
        bytes
    }
}

/// What the server answered on a raw connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawAnswer {
    /// The status code, or `None` when the server closed without an answer.
    pub status: Option<u16>,
    /// Everything it sent.
    pub text: String,
}

impl RawAnswer {
    fn parse(bytes: &[u8]) -> Self {
        let text = String::from_utf8_lossy(bytes).into_owned();
        let status = text
            .strip_prefix("HTTP/1.1 ")
            .and_then(|rest| rest.get(..3))
            .and_then(|code| code.parse().ok());
        Self { status, text }
    }

    /// The response body (after the head).
    pub fn body(&self) -> &str {
        self.text
            .split_once("\r\n\r\n")
            .map_or("", |(_, body)| body)
    }
}

/// The `host:port` of `base` (`http://127.0.0.1:PORT`).
fn addr(base: &str) -> &str {
    base.trim_start_matches("http://")
}

/// Writes `request` on a fresh connection to `base`, then reads until the server closes (within
/// 5 s). Writing goes on beside reading and may fail: a server that answers early (413) and
/// closes is still heard. With `close_write`, the client half-closes after writing.
pub async fn exchange(base: &str, request: &[u8], close_write: bool) -> RawAnswer {
    let stream = TcpStream::connect(addr(base)).await.expect("connect");
    let (mut read, mut write) = stream.into_split();
    let request = request.to_vec();
    let writer = tokio::spawn(async move {
        if write.write_all(&request).await.is_ok() && close_write {
            let _ = write.shutdown().await;
        }
        // Kept open (unless half-closed) until the answer is read.
        std::future::pending::<()>().await;
        drop(write);
    });
    let answer = tokio::time::timeout(Duration::from_secs(5), read_answer(&mut read))
        .await
        .expect("the server answers or closes within 5 s");
    writer.abort();
    answer
}

/// Reads until one whole response has come (its head and `Content-Length` bytes) or the server
/// closes: after an early answer actix may keep the connection a while before closing it.
async fn read_answer(stream: &mut (impl tokio::io::AsyncRead + Unpin)) -> RawAnswer {
    let mut answer = Vec::new();
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => answer.extend_from_slice(&buf[..n]),
        }
        if complete(&answer) {
            break;
        }
    }
    RawAnswer::parse(&answer)
}

/// Whether `bytes` hold a whole response with a `Content-Length`.
fn complete(bytes: &[u8]) -> bool {
    let Some(end) = bytes.windows(4).position(|w| w == b"\r\n\r\n") else {
        return false;
    };
    let head = String::from_utf8_lossy(&bytes[..end]).to_ascii_lowercase();
    head.lines()
        .find_map(|line| line.strip_prefix("content-length:"))
        .and_then(|n| n.trim().parse::<usize>().ok())
        .is_some_and(|len| bytes.len() >= end + 4 + len)
}

/// Sends only `request`'s head and the first `sent` bytes of its body, then stalls: reads the
/// answer the server gives while the connection stays open, within `wait`.
pub async fn stall(base: &str, request: &RawRequest, sent: usize, wait: Duration) -> RawAnswer {
    let mut stream = TcpStream::connect(addr(base)).await.expect("connect");
    let mut bytes = request.head();
    bytes.extend_from_slice(&request.body[..sent.min(request.body.len())]);
    stream.write_all(&bytes).await.expect("write the head");
    tokio::time::timeout(wait, read_answer(&mut stream))
        .await
        .expect("the stalled request is answered or closed in time")
}

/// A `v1` signature entry over `id`, `timestamp` and `body` taken as given, so a test can sign a
/// timestamp no [`replicate_webhook::signature::sign`] caller could (`+1614265330`, `1e9`).
pub fn sign_text(
    secret: &replicate_webhook::Secret,
    id: &str,
    timestamp: &str,
    body: &[u8],
) -> String {
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD;
    use hmac::{KeyInit as _, Mac as _};

    let exposed = secret.expose();
    let key = STANDARD
        .decode(exposed.trim_start_matches("whsec_"))
        .expect("an exposed secret is base64");
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&key).expect("any key length");
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
}
