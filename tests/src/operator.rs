//! Helpers for the journal and dashboard tests: the four stores, each isolated, and the
//! dashboard's API and pages over a real HTTP client.

use std::time::{Duration, Instant};

use replicate_webhook::dedupe::StoreUrl;

use crate::{TestServer, inbox, services};

/// The dashboard token of every test.
pub const TOKEN: &str = "dashboard-token-0123456789abcdef";
/// Where the tests mount the dashboard.
pub const PREFIX: &str = "/ops/webhooks";

/// One of the four stores, private to the test that made it.
#[derive(Debug)]
pub enum Store {
    /// In process.
    Memory,
    /// A SQLite file in a temporary directory.
    Sqlite(tempfile::TempDir),
    /// Redis under a key prefix no other test uses.
    Redis(String),
    /// A fresh PostgreSQL database.
    Postgres(String),
}

impl Store {
    /// Every store this run can reach: memory and SQLite always, Redis and PostgreSQL when
    /// `scripts/with-services` started them (required under `REQUIRE_SERVICES=1`).
    pub async fn all() -> Vec<Self> {
        let mut stores = vec![Self::Memory, Self::Sqlite(tempfile::tempdir().unwrap())];
        if let Some(url) = services::redis_url() {
            let prefix = services::unique("journal");
            stores.push(Self::Redis(format!("{url}?prefix={prefix}")));
        }
        if let Some(url) = services::database_url() {
            stores.push(Self::Postgres(inbox::fresh_database(&url).await));
        }
        stores
    }

    /// The store's URL.
    pub fn url(&self) -> StoreUrl {
        let text = match self {
            Self::Memory => "memory".to_owned(),
            Self::Sqlite(dir) => format!("sqlite://{}", dir.path().join("store.db").display()),
            Self::Redis(url) | Self::Postgres(url) => url.clone(),
        };
        StoreUrl::parse(&text).unwrap()
    }

    /// Its name in assertion messages.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Memory => "memory",
            Self::Sqlite(_) => "sqlite",
            Self::Redis(_) => "redis",
            Self::Postgres(_) => "postgres",
        }
    }
}

/// `GET {PREFIX}{path}` with the Bearer token; the status and the JSON body.
pub async fn api(server: &TestServer, path: &str) -> (u16, serde_json::Value) {
    let resp = reqwest::Client::new()
        .get(server.url(&format!("{PREFIX}{path}")))
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("request to the dashboard");
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(serde_json::Value::Null))
}

/// `POST {PREFIX}{path}` with the Bearer token; the status and the JSON body.
pub async fn api_post(server: &TestServer, path: &str) -> (u16, serde_json::Value) {
    let resp = reqwest::Client::new()
        .post(server.url(&format!("{PREFIX}{path}")))
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("request to the dashboard");
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(serde_json::Value::Null))
}

/// Polls the API's overview until the journal's counters satisfy `done` (the writer batches
/// off the request path, and nothing announces a write); fails after 15 s.
pub async fn until_journal(
    server: &TestServer,
    done: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (status, overview) = api(server, "/api/overview").await;
        assert_eq!(status, 200, "{overview}");
        if done(&overview["journal"]) {
            return overview;
        }
        assert!(
            Instant::now() < deadline,
            "the journal never got there: {}",
            overview["journal"]
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A client that keeps cookies and does not follow redirects, logged in to the dashboard.
pub async fn logged_in(server: &TestServer) -> reqwest::Client {
    let client = browser_like();
    let resp = client
        .post(server.url(&format!("{PREFIX}/login")))
        .form(&[("token", TOKEN)])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 303, "login failed");
    client
}

/// A client that keeps cookies and does not follow redirects.
pub fn browser_like() -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// The value of the hidden `csrf` field in `html`.
pub fn csrf_of(html: &str) -> String {
    let at = html
        .find("name=\"csrf\" value=\"")
        .unwrap_or_else(|| panic!("no csrf field in {html}"));
    let rest = &html[at + "name=\"csrf\" value=\"".len()..];
    rest[..rest.find('"').unwrap()].to_owned()
}
