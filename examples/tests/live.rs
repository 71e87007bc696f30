//! The `live` example against the local simulator: its API contract over HTTP, and its page in
//! a real browser (headless Chromium), which must show the final output.

mod common;

use std::time::Duration;

use replicate_webhook::{Event, Secret};
use replicate_webhook_cli::simulator::{self, Script};
use replicate_webhook_tests::browser::Browser;
use replicate_webhook_tests::process::Process;
use replicate_webhook_tests::sse::SseReader;

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

fn simulator(duplicate_everything: bool) -> simulator::Running {
    let mut config = simulator::Config::new(Secret::parse(SECRET).unwrap());
    config.script = Script {
        start_delay: Duration::from_millis(100),
        steps: 3,
        step: Duration::from_millis(150),
        ..Script::default()
    };
    config.throttle = Duration::from_millis(100);
    if duplicate_everything {
        config.faults.duplicate = Event::ALL.into_iter().collect();
    }
    common::serve_simulator(config)
}

/// The example, its secret from the simulator's default-secret endpoint as a user's would be.
fn live(sim: &simulator::Running, dir: &std::path::Path) -> Process {
    Process::start(
        env!("CARGO_BIN_EXE_live"),
        dir,
        &[("REPLICATE_API_BASE_URL", sim.api_base.as_str())],
    )
}

async fn create(app: &Process, prompt: &str) -> serde_json::Value {
    let resp = reqwest::Client::new()
        .post(format!("{}/api/predictions", app.base))
        .json(&serde_json::json!({"model": "replicate/hello-world", "input": {"text": prompt}}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    resp.json().await.unwrap()
}

#[actix_rt::test]
async fn the_api_creates_a_prediction_whose_stream_shows_each_change_once() {
    let sim = simulator(true);
    let dir = tempfile::tempdir().unwrap();
    let app = live(&sim, dir.path());
    let created = create(&app, "Alice").await;
    let id = created["id"].as_str().unwrap();
    let events = created["events"].as_str().unwrap();
    assert!(
        events.starts_with(&format!("/live/predictions/{id}/events?token=")),
        "{events}"
    );

    let resp = reqwest::get(format!("{}{events}", app.base)).await.unwrap();
    let mut stream = SseReader::new(resp);
    let got = tokio::time::timeout(Duration::from_secs(20), stream.rest())
        .await
        .expect("the stream ended");
    // Every delivery was sent twice by the simulator: each change still arrives once.
    let ids: Vec<u64> = got
        .iter()
        .map(|e| e.id.as_deref().unwrap().parse().unwrap())
        .collect();
    let mut sorted = ids.clone();
    sorted.dedup();
    assert_eq!(ids, sorted, "ids strictly increase: {got:?}");
    let last = got.last().unwrap().json();
    assert_eq!(last["status"], "succeeded");
    assert_eq!(last["output"], "hello Alice");
    let logs: String = got
        .iter()
        .map(|e| e.json()["logs"].as_str().unwrap_or_default().to_owned())
        .collect();
    // `state` carries the logs so far, later events what was appended: together, each line once.
    assert_eq!(logs.matches("step 3/3").count(), 1, "{logs}");
}

#[actix_rt::test]
async fn the_api_refuses_cross_site_requests() {
    let sim = simulator(false);
    let dir = tempfile::tempdir().unwrap();
    let app = live(&sim, dir.path());
    let url = format!("{}/api/predictions", app.base);
    let body = r#"{"model": "replicate/hello-world", "input": {"text": "x"}}"#;
    let form = reqwest::Client::new()
        .post(&url)
        .header("content-type", "text/plain")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(form.status(), 415);
    let cross = reqwest::Client::new()
        .post(&url)
        .header("content-type", "application/json")
        .header("origin", "https://evil.example")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(cross.status(), 403);
    let page = reqwest::get(format!("{}/", app.base)).await.unwrap();
    let csp = page.headers()["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("default-src 'none'") && csp.contains("script-src 'self'"));
}

#[actix_rt::test]
async fn the_page_shows_the_prediction_live_in_a_browser() {
    let sim = simulator(false);
    let dir = tempfile::tempdir().unwrap();
    let app = live(&sim, dir.path());
    let Some(browser) = Browser::start().await else {
        return;
    };
    browser.goto(&format!("{}/", app.base)).await;
    browser.fill("#prompt", "Ada").await;
    browser.click("#run").await;
    let wait = Duration::from_secs(20);
    browser
        .wait_text("#status", wait, "live-example", |s| s == "succeeded")
        .await;
    let output = browser.text("#output").await.unwrap();
    assert_eq!(output, "hello Ada");
    let logs = browser.text("#logs").await.unwrap();
    assert!(logs.contains("step 3/3"), "{logs}");
    assert_eq!(logs.matches("step 3/3").count(), 1, "{logs}");
    browser.screenshot("live-example").await;
    browser.close().await;
}

#[actix_rt::test]
async fn the_quickstart_mounts_the_channel_with_replicate_webhook_live() {
    let dir = tempfile::tempdir().unwrap();
    let secret = [("REPLICATE_WEBHOOK_SECRET", SECRET)];
    let off = Process::start(env!("CARGO_BIN_EXE_quickstart"), dir.path(), &secret);
    let events = "/live/predictions/p/events";
    let status = |base: String| async move {
        reqwest::get(format!("{base}{events}"))
            .await
            .unwrap()
            .status()
    };
    assert_eq!(status(off.base.clone()).await, 404);
    drop(off);
    let on = Process::start(
        env!("CARGO_BIN_EXE_quickstart"),
        dir.path(),
        &[secret[0], ("REPLICATE_WEBHOOK_LIVE", "1")],
    );
    // Mounted, and a subscriber without a token is refused.
    assert_eq!(status(on.base.clone()).await, 401);
}
