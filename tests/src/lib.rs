//! Shared helpers for the end-to-end tests: a real server on 127.0.0.1 and a real HTTP client.

// The README's examples are compiled as doc-tests here, so what it shows keeps compiling.
#[doc = include_str!("../../README.md")]
#[allow(clippy::doc_markdown)]
mod readme {}

use std::net::TcpListener;

use actix_web::{App, HttpServer, web};
use replicate_webhook::testkit::Signed;

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

    /// The absolute URL of `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Posts a signed delivery to its path and returns the status code and body.
    pub async fn deliver(&self, delivery: &Signed) -> (u16, String) {
        post(&self.base, delivery).await
    }
}

/// Posts a signed delivery to `base` + its path, as Replicate would, and returns the status code
/// and body.
pub async fn post(base: &str, delivery: &Signed) -> (u16, String) {
    let mut req = reqwest::Client::new()
        .post(format!("{base}{}", delivery.path()))
        .header("content-type", "application/json")
        .body(delivery.body().to_vec());
    for (name, value) in delivery.headers() {
        req = req.header(name, value);
    }
    let resp = req.send().await.expect("request to the test server");
    let status = resp.status().as_u16();
    (status, resp.text().await.unwrap_or_default())
}

impl Drop for TestServer {
    fn drop(&mut self) {
        // Stopping is asynchronous; the runtime ends with the test anyway.
        drop(self.handle.stop(false));
    }
}

pub mod hygiene;
pub mod process;
pub mod proxy;
pub mod services;
pub mod strict_models;
