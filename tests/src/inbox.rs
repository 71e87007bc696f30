//! Helpers for the inbox tests: a fresh SQLite or the shared PostgreSQL inbox, a receiver in
//! inbox mode, deliveries over one HTTP client, and waiting for handler events.

use std::time::{Duration, Instant};

use replicate_webhook::inbox::{Backoff, Filter, Inbox, InboxOptions, JobState};
use replicate_webhook::testkit::{Signed, TestDelivery};
use replicate_webhook::{Module, Secret, WebhookConfig};
use tokio::sync::mpsc;

use crate::{TestServer, services};

/// The signing secret of every inbox test.
pub const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// [`SECRET`], parsed.
pub fn secret() -> Secret {
    Secret::parse(SECRET).unwrap()
}

/// Retries in milliseconds, so the tests wait out real backoffs quickly.
pub fn fast_options() -> InboxOptions {
    InboxOptions {
        backoff: Backoff::new(Duration::from_millis(10), Duration::from_millis(40)),
        poll: Duration::from_millis(20),
        max_attempts: 3,
        ..InboxOptions::default()
    }
}

/// A fresh inbox: a new SQLite file, or PostgreSQL (shared; tests use their own models).
#[derive(Debug)]
pub enum Db {
    /// A SQLite file in a temporary directory.
    Sqlite(tempfile::TempDir),
    /// A PostgreSQL URL.
    Postgres(String),
}

impl Db {
    /// A new SQLite file.
    pub fn sqlite() -> Self {
        Self::Sqlite(tempfile::tempdir().unwrap())
    }

    /// `DATABASE_URL`, or `None` when PostgreSQL tests skip.
    pub fn postgres() -> Option<Self> {
        services::database_url().map(Self::Postgres)
    }

    /// The inbox URL.
    pub fn url(&self) -> String {
        match self {
            Self::Sqlite(dir) => format!("sqlite://{}", dir.path().join("inbox.db").display()),
            Self::Postgres(url) => url.clone(),
        }
    }

    /// A receiver config with `module` in inbox mode on this database.
    pub fn config(&self, module: Module, options: InboxOptions) -> WebhookConfig {
        let url = replicate_webhook::dedupe::StoreUrl::parse(&self.url()).unwrap();
        WebhookConfig::new(secret())
            .collect_registered(false)
            .store_url(&url)
            .unwrap()
            .inbox(Inbox::open(&url).unwrap())
            .inbox_options(options)
            .module(module.inbox(true))
    }
}

/// A model name no other test uses.
pub fn model(label: &str) -> String {
    format!(
        "acme/{}",
        services::unique(label)
            .trim_end_matches(':')
            .replace(':', "-")
    )
}

/// A receiver for `config` on two workers.
pub fn serve(config: WebhookConfig) -> TestServer {
    TestServer::with_workers(2, move || replicate_webhook::configure(config.clone()))
}

/// Posts `d` over `client` and returns the status code and body.
pub async fn send(client: &reqwest::Client, server: &TestServer, d: &Signed) -> (u16, String) {
    let mut req = client
        .post(server.url(d.path()))
        .header("content-type", "application/json")
        .body(d.body().to_vec());
    for (name, value) in d.headers() {
        req = req.header(name, value);
    }
    let resp = req.send().await.expect("request to the test server");
    let status = resp.status().as_u16();
    (status, resp.text().await.unwrap_or_default())
}

/// Waits for the next event a handler sent, or fails after 10 s.
pub async fn next<T>(rx: &mut mpsc::UnboundedReceiver<T>) -> T {
    tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .expect("no handler event within 10 s")
        .expect("handler channel closed")
}

/// Polls the inbox until the job of `prediction` is in `state` (the worker records it right
/// after the handler returns, and nothing announces it).
pub async fn until_state(inbox: &Inbox, prediction: &str, state: JobState) {
    let filter = Filter {
        prediction_id: Some(prediction.to_owned()),
        ..Filter::default()
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let jobs = inbox.list(&filter).await.unwrap();
        if jobs.iter().any(|j| j.state == state) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "job never reached {state}: {jobs:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The prediction id in a delivery's body.
pub fn id_of(d: &TestDelivery) -> String {
    let body: serde_json::Value = serde_json::from_slice(d.body()).unwrap();
    body["id"].as_str().unwrap().to_owned()
}

/// A new, empty database on the server of `url` (so processes under test see only their own
/// jobs), and its URL.
pub async fn fresh_database(url: &str) -> String {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .expect("connect to DATABASE_URL");
    tokio::spawn(connection);
    let name = services::unique("inbox")
        .trim_end_matches(':')
        .replace(['-', ':'], "_");
    client
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await
        .expect("create a database");
    let mut parsed = url::Url::parse(url).expect("DATABASE_URL is a URL");
    parsed.set_path(&format!("/{name}"));
    parsed.to_string()
}
