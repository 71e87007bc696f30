//! Shared helpers for the end-to-end tests: a real server on 127.0.0.1 and a real HTTP client.

// The READMEs' examples are compiled as doc-tests here, so what they show keeps compiling:
// the repository's, and the one crates.io shows for `replicate-webhook`.
#[doc = include_str!("../../README.md")]
#[allow(clippy::doc_markdown)]
mod readme {}

#[doc = include_str!("../../runtime/README.md")]
#[allow(clippy::doc_markdown)]
mod runtime_readme {}

// The guides under docs/, one item per page (`tests/tests/links.rs` fails for a page missing here).
#[cfg(doctest)]
#[doc = include_str!("../../docs/cli.md")]
mod docs_cli {}
#[cfg(doctest)]
#[doc = include_str!("../../docs/configuration.md")]
mod docs_configuration {}
#[cfg(doctest)]
#[doc = include_str!("../../docs/doctor.md")]
mod docs_doctor {}
#[cfg(doctest)]
#[doc = include_str!("../../docs/files.md")]
mod docs_files {}
#[cfg(doctest)]
#[doc = include_str!("../../docs/inbox.md")]
mod docs_inbox {}
#[cfg(doctest)]
#[doc = include_str!("../../docs/performance.md")]
mod docs_performance {}
#[cfg(doctest)]
#[doc = include_str!("../../docs/reconciler.md")]
mod docs_reconciler {}
#[cfg(doctest)]
#[doc = include_str!("../../docs/security.md")]
mod docs_security {}
#[cfg(doctest)]
#[doc = include_str!("../../docs/stores.md")]
mod docs_stores {}
#[cfg(doctest)]
#[doc = include_str!("../../docs/testing.md")]
mod docs_testing {}
#[cfg(doctest)]
#[doc = include_str!("../../docs/trainings.md")]
mod docs_trainings {}
#[cfg(doctest)]
#[doc = include_str!("../../docs/typed-models.md")]
mod docs_typed_models {}
#[cfg(doctest)]
#[doc = include_str!("../../docs/senders.md")]
mod senders {}
#[doc = include_str!("../../docs/dashboard.md")]
#[allow(clippy::doc_markdown)]
mod dashboard_doc {}
#[doc = include_str!("../../docs/live.md")]
#[allow(clippy::doc_markdown)]
mod live_doc {}

use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use actix_web::{App, HttpServer, web};
use replicate_webhook::__private::HandlerInput;
use replicate_webhook::testkit::Signed;
use replicate_webhook::{HandlerError, HandlerKind, Module, Prediction, WebhookConfig};

/// A receiver listening on an ephemeral loopback port, stopped when dropped.
#[derive(Debug)]
pub struct TestServer {
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    handle: actix_web::dev::ServerHandle,
}

impl TestServer {
    /// Serves `App::new().configure(make())` on 127.0.0.1, one worker.
    pub fn start<F, C>(make: F) -> Self
    where
        F: Fn() -> C + Send + Clone + 'static,
        C: FnOnce(&mut web::ServiceConfig) + 'static,
    {
        Self::with_workers(1, make)
    }

    /// Like [`TestServer::start`], with `workers` workers sharing what `make` configures.
    pub fn with_workers<F, C>(workers: usize, make: F) -> Self
    where
        F: Fn() -> C + Send + Clone + 'static,
        C: FnOnce(&mut web::ServiceConfig) + 'static,
    {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let port = listener.local_addr().expect("local addr").port();
        let server = HttpServer::new(move || App::new().configure(make.clone()()))
            .workers(workers)
            .disable_signals()
            .listen(listener)
            .expect("listen")
            .run();
        let handle = server.handle();
        actix_web::rt::spawn(server);
        Self {
            base: format!("http://127.0.0.1:{port}"),
            handle,
        }
    }

    /// Serves the receiver `config` builds, one worker.
    #[expect(
        clippy::needless_pass_by_value,
        reason = "callers hand over a config made for this server"
    )]
    pub fn serve(config: WebhookConfig) -> Self {
        let webhooks = config.build().unwrap_or_else(|e| panic!("{e}"));
        Self::start(move || webhooks.configure())
    }

    /// The absolute URL of `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Posts a signed delivery to its path and returns the status code and body.
    pub async fn deliver(&self, delivery: &Signed) -> (u16, String) {
        post(&self.base, delivery).await
    }

    /// Posts a signed delivery to its path and returns the whole response (headers included).
    pub async fn deliver_response(&self, delivery: &Signed) -> reqwest::Response {
        post_response(&self.base, delivery).await
    }
}

/// Posts a signed delivery to `base` + its path, as Replicate would, and returns the status code
/// and body.
pub async fn post(base: &str, delivery: &Signed) -> (u16, String) {
    let resp = post_response(base, delivery).await;
    let status = resp.status().as_u16();
    (status, resp.text().await.unwrap_or_default())
}

/// Like [`post`], returning the whole response.
pub async fn post_response(base: &str, delivery: &Signed) -> reqwest::Response {
    let mut req = reqwest::Client::new()
        .post(format!("{base}{}", delivery.path()))
        .header("content-type", "application/json")
        .body(delivery.body().to_vec());
    for (name, value) in delivery.headers() {
        req = req.header(name, value);
    }
    req.send().await.expect("request to the test server")
}

/// The `Retry-After` of a response, in seconds; panics when it is missing or not a number.
pub fn retry_after(response: &reqwest::Response) -> u64 {
    let value = response
        .headers()
        .get("retry-after")
        .unwrap_or_else(|| panic!("{} without Retry-After", response.status()));
    value
        .to_str()
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("Retry-After {value:?} is not a number of seconds"))
}

/// A module for `model` whose `on_succeeded` fails with a retryable error on its first run and
/// succeeds after; `attempts` counts its runs.
pub fn fails_once_then_succeeds(model: &str, attempts: &Arc<AtomicUsize>) -> Module {
    let counter = attempts.clone();
    Module::new(model).on(HandlerKind::Succeeded, move |_: Prediction| {
        let n = counter.fetch_add(1, Ordering::SeqCst);
        async move {
            if n == 0 {
                Err(HandlerError::retry("database down"))
            } else {
                Ok(())
            }
        }
    })
}

/// A configuration accepting `secret` that mounts `module` alone, none of the binary's
/// attribute modules.
pub fn only(secret: &replicate_webhook::Secret, module: Module) -> WebhookConfig {
    WebhookConfig::new(secret.clone())
        .collect_registered(false)
        .module(module)
}

/// Every handler kind of a prediction's lifecycle but `aborted`.
pub const LIFECYCLE: [HandlerKind; 6] = [
    HandlerKind::Start,
    HandlerKind::Output,
    HandlerKind::Logs,
    HandlerKind::Succeeded,
    HandlerKind::Failed,
    HandlerKind::Canceled,
];

/// A module for `model` with a handler for each of `kinds` that takes `P` and only counts its
/// runs in `runs`. Subscribed to every event, so each kind can be reached.
pub fn counting<P: HandlerInput>(
    model: &str,
    kinds: &[HandlerKind],
    runs: &Arc<AtomicUsize>,
) -> Module {
    kinds.iter().fold(
        Module::new(model).events(replicate_webhook::Event::ALL),
        |module, kind| {
            let runs = runs.clone();
            module.on(*kind, move |_: P| {
                runs.fetch_add(1, Ordering::SeqCst);
                async { Ok::<(), HandlerError>(()) }
            })
        },
    )
}

/// `future`'s output, or a test failure after 10 s instead of a hang.
pub async fn within<F: std::future::IntoFuture>(future: F) -> F::Output {
    tokio::time::timeout(std::time::Duration::from_secs(10), future)
        .await
        .expect("timed out after 10 s")
}

impl Drop for TestServer {
    fn drop(&mut self) {
        // Stopping is asynchronous; the runtime ends with the test anyway.
        drop(self.handle.stop(false));
    }
}

pub mod browser;
pub mod cog;
pub mod hygiene;
pub mod inbox;
pub mod logs;
pub mod operator;
pub mod process;
pub mod proxy;
pub mod raw;
pub mod receiver;
pub mod services;
pub mod sse;
pub mod strict_models;
