//! Downloading output files before they expire (feature `files`).
//!
//! Replicate serves output files from `replicate.delivery` for one hour after a prediction
//! finishes; a handler that stores them later, or a retry an hour later, finds nothing. A
//! [`Fetcher`] downloads an output [`Url`] (or a `data:` URI) to bytes, a writer or a file,
//! streaming, with a size limit, a timeout, retries with backoff on 5xx, and a content-type and
//! length check.
//!
//! The body of a delivery is signed, but a signed body is not a trusted one: whoever holds the
//! secret (or a leaked one) could post `output: "http://169.254.169.254/…"`. So by default only
//! `https` URLs under `replicate.delivery` are fetched, redirects included; tests and other
//! hosts use [`AllowList`].
//!
//! ```no_run
//! use replicate_webhook::files::Fetcher;
//! use replicate_webhook::{HandlerError, Prediction, Url};
//!
//! async fn on_succeeded(p: Prediction<Vec<Url>>) -> Result<(), HandlerError> {
//!     let fetcher = Fetcher::new();
//!     let output = p.output.unwrap_or_default();
//!     let saved = fetcher
//!         .all_to_dir(&output, format!("outputs/{}", p.id))
//!         .await
//!         .map_err(HandlerError::retry)?;
//!     println!("saved {saved:?}");
//!     Ok(())
//! }
//! ```

mod allow;
mod data;
mod error;
mod urls;

use std::error::Error;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::io::{AsyncWrite, AsyncWriteExt as _};
use url::Url;

use crate::backoff::Backoff;
pub use allow::AllowList;
pub use error::FileError;
pub use urls::urls;

use data::decode_data;

/// A fetched file.
#[derive(Clone, PartialEq, Eq)]
pub struct File {
    /// The URL it came from.
    pub url: Url,
    /// `Content-Type`, or the `data:` URI's media type.
    pub content_type: Option<String>,
    /// The bytes.
    pub bytes: Vec<u8>,
}

impl fmt::Debug for File {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("File")
            .field("url", &shown(&self.url))
            .field("content_type", &self.content_type)
            .field("len", &self.bytes.len())
            .finish()
    }
}

/// What a streamed download wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fetched {
    /// `Content-Type`, or the `data:` URI's media type.
    pub content_type: Option<String>,
    /// Bytes written.
    pub len: u64,
}

/// Downloads output files within limits. Cheap to clone; build one and share it.
#[derive(Debug, Clone)]
pub struct Fetcher {
    http: reqwest::Client,
    allow: AllowList,
    max_bytes: u64,
    timeout: Duration,
    retries: u32,
    backoff: Backoff,
    content_types: Vec<String>,
}

impl Default for Fetcher {
    fn default() -> Self {
        Self::new()
    }
}

/// How many redirects are followed, each checked against the allow-list.
const MAX_REDIRECTS: usize = 5;

impl Fetcher {
    /// Replicate's hosts only, 100 MiB, 60 s per attempt, 3 retries from 500 ms.
    pub fn new() -> Self {
        Self::with_allow_list(AllowList::replicate())
    }

    /// Only what `allow` admits; otherwise the defaults of [`Fetcher::new`].
    pub fn with_allow_list(allow: AllowList) -> Self {
        let mut fetcher = Self {
            http: reqwest::Client::new(),
            allow,
            max_bytes: 100 * 1024 * 1024,
            timeout: Duration::from_mins(1),
            retries: 3,
            backoff: Backoff::new(Duration::from_millis(500), Duration::MAX),
            content_types: Vec::new(),
        };
        fetcher.rebuild();
        fetcher
    }

    fn rebuild(&mut self) {
        let allow = self.allow.clone();
        // A redirect is a new fetch: to an address the list refuses, it is refused too.
        let policy = reqwest::redirect::Policy::custom(move |attempt| {
            if attempt.previous().len() >= MAX_REDIRECTS {
                attempt.error("too many redirects")
            } else if allow.allows(attempt.url()) {
                attempt.follow()
            } else {
                let refused = shown(attempt.url());
                attempt.error(RefusedRedirect(refused))
            }
        });
        self.http = reqwest::Client::builder()
            .redirect(policy)
            .timeout(self.timeout)
            .build()
            .unwrap_or_default();
    }

    /// The largest file accepted.
    #[must_use]
    pub fn max_bytes(mut self, bytes: u64) -> Self {
        self.max_bytes = bytes;
        self
    }

    /// The longest one attempt may take, connection to last byte.
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self.rebuild();
        self
    }

    /// Retries after a 5xx or 429 answer or a failed connection, waiting `backoff`, then
    /// twice that, and so on. Timeouts are not retried: the next attempt would wait as long.
    #[must_use]
    pub fn retries(mut self, retries: u32, backoff: Duration) -> Self {
        self.retries = retries;
        self.backoff = Backoff::new(backoff, Duration::MAX);
        self
    }

    /// Accepts only these content types (prefixes, such as `image/` or `application/json`).
    #[must_use]
    pub fn content_types<S: Into<String>>(mut self, types: impl IntoIterator<Item = S>) -> Self {
        self.content_types = types
            .into_iter()
            .map(|t| t.into().to_ascii_lowercase())
            .collect();
        self
    }

    /// Downloads `url` into memory.
    pub async fn bytes(&self, url: &Url) -> Result<File, FileError> {
        let mut bytes = Vec::new();
        let fetched = self.to_writer(url, &mut bytes).await?;
        Ok(File {
            url: url.clone(),
            content_type: fetched.content_type,
            bytes,
        })
    }

    /// Downloads `url` into `path`; nothing is left at `path` when it fails.
    pub async fn to_path(&self, url: &Url, path: impl AsRef<Path>) -> Result<Fetched, FileError> {
        let path = path.as_ref();
        let io = |source| FileError::Io {
            path: path.display().to_string(),
            source,
        };
        let mut part = path.as_os_str().to_owned();
        part.push(".part");
        let part = PathBuf::from(part);
        let mut file = tokio::fs::File::create(&part).await.map_err(io)?;
        let result = match self.to_writer(url, &mut file).await {
            Ok(fetched) => file.sync_all().await.map(|()| fetched).map_err(io),
            Err(e) => Err(e),
        };
        drop(file);
        if result.is_ok() {
            tokio::fs::rename(&part, path).await.map_err(io)?;
        } else {
            let _ = tokio::fs::remove_file(&part).await;
        }
        result
    }

    /// Streams `url` into `writer`, checking the limits as the bytes arrive.
    ///
    /// Only a failure before the first byte is retried: what reached the writer cannot be
    /// taken back.
    pub async fn to_writer<W: AsyncWrite + Unpin + ?Sized>(
        &self,
        url: &Url,
        writer: &mut W,
    ) -> Result<Fetched, FileError> {
        if !self.allow.allows(url) {
            return Err(FileError::Refused(shown(url)));
        }
        if url.scheme() == "data" {
            let (content_type, bytes) = decode_data(url)?;
            self.check_type(url, content_type.as_deref())?;
            let len = bytes.len() as u64;
            self.check_len(url, len)?;
            writer.write_all(&bytes).await.map_err(writer_error)?;
            writer.flush().await.map_err(writer_error)?;
            return Ok(Fetched { content_type, len });
        }
        let response = self.send(url).await?;
        self.stream(url, response, writer).await
    }

    /// The response to GET `url`, after retries on 5xx, 429 and connection failures.
    async fn send(&self, url: &Url) -> Result<reqwest::Response, FileError> {
        let mut attempt = 0;
        loop {
            let error = match self.http.get(url.clone()).send().await {
                Ok(response) if response.status().is_success() => return Ok(response),
                Ok(response) => FileError::Status {
                    url: shown(url),
                    status: response.status().as_u16(),
                },
                Err(e) => Self::http_error(url, e),
            };
            let again = error.is_retryable() && !matches!(error, FileError::Timeout(_));
            if !again || attempt >= self.retries {
                return Err(error);
            }
            tokio::time::sleep(self.backoff.delay(attempt)).await;
            attempt += 1;
        }
    }

    async fn stream<W: AsyncWrite + Unpin + ?Sized>(
        &self,
        url: &Url,
        mut response: reqwest::Response,
        writer: &mut W,
    ) -> Result<Fetched, FileError> {
        let content_type = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        self.check_type(url, content_type.as_deref())?;
        let declared = response.content_length();
        self.check_len(url, declared.unwrap_or(0))?;
        let mut len: u64 = 0;
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| Self::http_error(url, e))?
        {
            len += chunk.len() as u64;
            self.check_len(url, len)?;
            writer.write_all(&chunk).await.map_err(writer_error)?;
        }
        if let Some(expected) = declared
            && expected != len
        {
            return Err(FileError::Truncated {
                url: shown(url),
                expected,
                got: len,
            });
        }
        writer.flush().await.map_err(writer_error)?;
        Ok(Fetched { content_type, len })
    }

    fn check_type(&self, url: &Url, got: Option<&str>) -> Result<(), FileError> {
        let got = got.unwrap_or_default().to_ascii_lowercase();
        if self.content_types.is_empty() || self.content_types.iter().any(|t| got.starts_with(t)) {
            return Ok(());
        }
        Err(FileError::ContentType {
            url: shown(url),
            got,
            expected: self.content_types.clone(),
        })
    }

    /// Refuses `len` bytes over the limit, declared or counted.
    fn check_len(&self, url: &Url, len: u64) -> Result<(), FileError> {
        if len <= self.max_bytes {
            return Ok(());
        }
        Err(FileError::TooLarge {
            url: shown(url),
            limit: self.max_bytes,
        })
    }

    fn http_error(url: &Url, e: reqwest::Error) -> FileError {
        if e.is_timeout() {
            return FileError::Timeout(shown(url));
        }
        let mut causes = std::iter::successors(Some(&e as &(dyn Error + 'static)), |&e| e.source());
        if let Some(RefusedRedirect(to)) = causes.find_map(|e| e.downcast_ref()) {
            return FileError::Refused(to.clone());
        }
        FileError::Http {
            url: shown(url),
            message: replicate_webhook_core::error_chain(&e.without_url()),
        }
    }

    /// Downloads every file of `output` (see [`urls`]) into memory, in order; the first
    /// failure ends it.
    pub async fn all<T: serde::Serialize + ?Sized>(
        &self,
        output: &T,
    ) -> Result<Vec<File>, FileError> {
        let mut files = Vec::new();
        for url in urls(output) {
            files.push(self.bytes(&url).await?);
        }
        Ok(files)
    }

    /// Downloads every file of `output` into `dir` (created if missing), each named after the
    /// last segment of its URL (`out-0.webp`), else `file-N`; returns the paths in order.
    pub async fn all_to_dir<T: serde::Serialize + ?Sized>(
        &self,
        output: &T,
        dir: impl AsRef<Path>,
    ) -> Result<Vec<PathBuf>, FileError> {
        let dir = dir.as_ref();
        tokio::fs::create_dir_all(dir)
            .await
            .map_err(|source| FileError::Io {
                path: dir.display().to_string(),
                source,
            })?;
        let mut paths = Vec::new();
        for (n, url) in urls(output).into_iter().enumerate() {
            let path = dir.join(file_name(&url, n, &paths));
            self.to_path(&url, &path).await?;
            paths.push(path);
        }
        Ok(paths)
    }
}

/// A file name from the URL's last segment, if it is a plain one not used yet.
fn file_name(url: &Url, n: usize, taken: &[PathBuf]) -> String {
    let segment = url
        .path_segments()
        .and_then(|mut s| s.next_back())
        .filter(|s| {
            !s.is_empty()
                && *s != "."
                && *s != ".."
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        })
        .filter(|_| url.scheme() != "data")
        .map(str::to_owned);
    match segment {
        Some(name) if !taken.iter().any(|p| p.file_name() == Some(name.as_ref())) => name,
        _ => format!("file-{n}"),
    }
}

fn writer_error(source: std::io::Error) -> FileError {
    FileError::Io {
        path: "the writer".to_owned(),
        source,
    }
}

/// The redirect policy's refusal, found again in the error's causes.
#[derive(Debug)]
struct RefusedRedirect(String);

impl fmt::Display for RefusedRedirect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "redirect to {} refused", self.0)
    }
}

impl Error for RefusedRedirect {}

/// A URL for messages: no query or fragment (signed download URLs carry tokens there), and a
/// `data:` URI only by its length.
fn shown(url: &Url) -> String {
    if url.scheme() == "data" {
        return format!("a data: URI of {} bytes", url.as_str().len());
    }
    let mut url = url.clone();
    url.set_query(None);
    url.set_fragment(None);
    let _ = url.set_password(None);
    let _ = url.set_username("");
    url.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    #[test]
    fn the_default_list_is_https_replicate_delivery() {
        let allow = AllowList::default();
        for ok in [
            "https://replicate.delivery/x/out-0.webp",
            "https://pbxt.replicate.delivery/x/out-0.webp",
            "https://REPLICATE.delivery./x",
            "data:,hi",
        ] {
            assert!(allow.allows(&url(ok)), "{ok}");
        }
        for refused in [
            "http://replicate.delivery/x",
            "https://replicate.delivery.evil.com/x",
            "https://evilreplicate.delivery/x",
            "https://replicate.delivery@169.254.169.254/latest",
            "https://169.254.169.254/latest/meta-data",
            "http://127.0.0.1:8080/",
            "file:///etc/passwd",
        ] {
            assert!(!allow.allows(&url(refused)), "{refused}");
        }
    }

    #[test]
    fn origins_are_exact() {
        let allow = AllowList::none().origin("http://127.0.0.1:8081");
        assert!(allow.allows(&url("http://127.0.0.1:8081/a")));
        assert!(!allow.allows(&url("http://127.0.0.1:8082/a")));
        assert!(!allow.allows(&url("https://127.0.0.1:8081/a")));
        assert!(!allow.allows(&url("data:,x")));
    }

    #[test]
    fn data_uris_decode() {
        let (ty, bytes) = decode_data(&url("data:image/png;base64,aGVsbG8=")).unwrap();
        assert_eq!(
            (ty.as_deref(), bytes.as_slice()),
            (Some("image/png"), &b"hello"[..])
        );
        let (ty, bytes) = decode_data(&url("data:,a%20b")).unwrap();
        assert_eq!(ty.as_deref(), Some("text/plain;charset=US-ASCII"));
        assert_eq!(bytes, b"a b");
        assert!(decode_data(&url("data:;base64,@@@")).is_err());
        assert!(decode_data(&url("data:nocomma")).is_err());
    }

    #[test]
    fn urls_are_found_anywhere_in_an_output() {
        let output = serde_json::json!({
            "images": ["https://replicate.delivery/a/out-0.png", "not a url"],
            "mask": {"file": "data:,x"},
            "caption": "a cat",
            "seed": 3,
        });
        let found: Vec<String> = urls(&output).iter().map(ToString::to_string).collect();
        assert_eq!(found, ["https://replicate.delivery/a/out-0.png", "data:,x"]);
        let typed: Vec<Url> = vec![url("https://replicate.delivery/b/1.webp")];
        assert_eq!(urls(&typed), typed);
        assert_eq!(urls(&Some(typed[0].clone())), typed);
        assert!(urls(&None::<Url>).is_empty());
    }

    #[test]
    fn messages_drop_queries_and_credentials() {
        let shown = shown(&url("https://u:p@replicate.delivery/a?token=secret#f"));
        assert_eq!(shown, "https://replicate.delivery/a");
    }

    #[test]
    fn file_names_are_plain_and_unique() {
        let a = url("https://replicate.delivery/x/out-0.webp");
        assert_eq!(file_name(&a, 0, &[]), "out-0.webp");
        assert_eq!(file_name(&a, 1, &[PathBuf::from("d/out-0.webp")]), "file-1");
        assert_eq!(
            file_name(&url("https://replicate.delivery/x/..%2Fetc"), 2, &[]),
            "file-2"
        );
        assert_eq!(file_name(&url("data:,x"), 3, &[]), "file-3");
    }
}
