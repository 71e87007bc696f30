//! Recovery of lost webhooks, as a user would see it: the quickstart, with an API token, is
//! down while its predictions finish and for longer than the simulator's retries; when it comes
//! back, its reconciler polls them and every terminal handler runs exactly once. And when the
//! webhooks do arrive, the reconciler never runs a handler a second time.

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use replicate_webhook::Secret;
use replicate_webhook::client::{Client, CreatePrediction};
use replicate_webhook::{Event, Status, Url};
use replicate_webhook_cli::simulator::{self, Script};
use replicate_webhook_tests::process::{Process, free_port};
use serde_json::json;

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const TOKEN: &str = "r8_reconcile_test";
const PREDICTIONS: usize = 20;

fn simulator() -> simulator::Running {
    let mut config = simulator::Config::new(Secret::parse(SECRET).unwrap());
    config.token = Some(TOKEN.to_owned().into());
    config.script = Script {
        start_delay: Duration::from_millis(50),
        steps: 1,
        // Long enough that every `start` reaches the receiver before it goes down.
        step: Duration::from_secs(3),
        ..Script::default()
    };
    // Replicate's retries, compressed: three attempts within a second, then it gives up.
    config.retry_schedule = vec![Duration::from_millis(200); 2];
    config.delivery_timeout = Duration::from_secs(2);
    config.verbose = false;
    common::serve_simulator(config)
}

fn quickstart(dir: &std::path::Path, port: u16, api: &str) -> Process {
    let bind = format!("127.0.0.1:{port}");
    let env = [
        ("REPLICATE_WEBHOOK_SECRET", SECRET),
        ("REPLICATE_API_TOKEN", TOKEN),
        ("REPLICATE_API_BASE_URL", api),
        ("REPLICATE_WEBHOOK_RECONCILE_AFTER", "1s"),
        ("BIND", bind.as_str()),
    ];
    Process::start(env!("CARGO_BIN_EXE_quickstart"), dir, &env)
}

/// Counts `on_succeeded` lines per prediction id among `lines`.
fn succeeded(lines: &[String]) -> HashMap<String, usize> {
    let mut runs = HashMap::new();
    for line in lines {
        if let Some(id) = line
            .strip_prefix("on_succeeded id=")
            .and_then(|rest| rest.split(' ').next())
        {
            *runs.entry(id.to_owned()).or_default() += 1;
        }
    }
    runs
}

/// Reads stdout until every id in `ids` has an `on_succeeded` line, then a quiet second more.
fn wait_for_all(q: &Process, ids: &[String], deadline: Duration) -> Vec<String> {
    let until = Instant::now() + deadline;
    let mut lines = Vec::new();
    while !ids.iter().all(|id| succeeded(&lines).contains_key(id)) {
        let left = until.saturating_duration_since(Instant::now());
        match q.stdout.recv_timeout(left) {
            Ok(line) => lines.push(line),
            Err(e) => panic!("not every prediction was handled: {e}; saw {lines:?}"),
        }
    }
    lines.extend(q.drain(Duration::from_secs(1)));
    lines
}

async fn create_all(client: &Client, url: &Url) -> Vec<String> {
    let mut ids = Vec::new();
    for i in 0..PREDICTIONS {
        let request =
            CreatePrediction::model("replicate/hello-world", json!({ "text": format!("n{i}") }))
                .webhook(url.clone(), [Event::Start, Event::Completed]);
        ids.push(client.create(&request).await.unwrap().id);
    }
    ids
}

async fn wait_until_terminal(client: &Client, ids: &[String]) {
    let until = Instant::now() + Duration::from_secs(30);
    for id in ids {
        while !client.get(id).await.unwrap().status.is_terminal() {
            assert!(Instant::now() < until, "{id} never finished");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(client.get(id).await.unwrap().status, Status::Succeeded);
    }
}

#[actix_rt::test]
async fn terminal_webhooks_lost_while_down_are_recovered_once_each() {
    let sim = simulator();
    let client = Client::new(&sim.api_base, Some(TOKEN.to_owned())).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let url = Url::parse(&format!("http://127.0.0.1:{port}/webhooks/replicate")).unwrap();

    let first = quickstart(dir.path(), port, &sim.api_base);
    let ids = create_all(&client, &url).await;
    // Each prediction's `start` reaches the receiver, which watches it from then on...
    let mut started = std::collections::HashSet::new();
    while started.len() < ids.len() {
        let line = first
            .stdout
            .recv_timeout(Duration::from_secs(30))
            .expect("every prediction's start reaches the receiver");
        if let Some(id) = line
            .strip_prefix("on_start id=")
            .and_then(|r| r.split(' ').next())
        {
            started.insert(id.to_owned());
        }
    }
    // ...and then it goes down before any finishes, for longer than the retries last: the
    // simulator records every terminal attempt failing and gives up on each.
    first.kill();
    wait_until_terminal(&client, &ids).await;
    let lost = all_terminal_attempts_failed(&sim, &ids).await;

    let second = quickstart(dir.path(), port, &sim.api_base);
    let lines = wait_for_all(&second, &ids, Duration::from_secs(30));
    let runs = succeeded(&lines);
    eprintln!(
        "reconcile: {PREDICTIONS} predictions, {lost} terminal webhook attempts lost while the \
         receiver was down; after restart on_succeeded ran {} times for {} predictions",
        runs.values().sum::<usize>(),
        runs.len()
    );
    assert_eq!(lost, PREDICTIONS * ATTEMPTS);
    assert_eq!(runs.len(), PREDICTIONS, "{lines:?}");
    assert!(runs.values().all(|n| *n == 1), "{runs:?}");
    // No late retry of the simulator's did it: it made no terminal attempt since giving up.
    assert_eq!(
        sim_deliveries_refused(&sim).await,
        (PREDICTIONS * ATTEMPTS, PREDICTIONS * ATTEMPTS)
    );
}

/// Terminal attempts the simulator makes of each prediction: the first and its two retries.
const ATTEMPTS: usize = 3;

/// Waits until the simulator has made, and failed, every terminal attempt of every prediction
/// in `ids` (so none is left to arrive late); returns how many attempts failed.
async fn all_terminal_attempts_failed(sim: &simulator::Running, ids: &[String]) -> usize {
    let until = Instant::now() + Duration::from_secs(30);
    loop {
        let (made, failed) = sim_deliveries_refused(sim).await;
        if made == failed && failed == ids.len() * ATTEMPTS {
            return failed;
        }
        assert!(
            made == failed && Instant::now() < until,
            "terminal attempts: {made} made, {failed} failed"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[actix_rt::test]
async fn delivered_webhooks_are_not_handled_again_by_the_reconciler() {
    let sim = simulator();
    let client = Client::new(&sim.api_base, Some(TOKEN.to_owned())).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let url = Url::parse(&format!("http://127.0.0.1:{port}/webhooks/replicate")).unwrap();
    let q = quickstart(dir.path(), port, &sim.api_base);
    let ids = create_all(&client, &url).await;
    let mut lines = wait_for_all(&q, &ids, Duration::from_secs(30));
    // Three reconcile periods later, still one run each.
    lines.extend(q.drain(Duration::from_secs(3)));
    let runs = succeeded(&lines);
    assert_eq!(runs.len(), PREDICTIONS);
    assert!(runs.values().all(|n| *n == 1), "{runs:?}");
}

/// Terminal delivery attempts the simulator made, and those of them it could not make
/// (connection refused).
async fn sim_deliveries_refused(sim: &simulator::Running) -> (usize, usize) {
    let records: serde_json::Value =
        reqwest::get(format!("http://{}/_simulator/deliveries", sim.addr))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
    let completed: Vec<_> = records
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["event"] == "completed")
        .collect();
    let failed = completed
        .iter()
        .filter(|r| r["response_status"].is_null())
        .count();
    (completed.len(), failed)
}

#[actix_rt::test]
async fn predictions_created_through_a_watching_client_are_watched_at_once() {
    use replicate_webhook::WebhookConfig;
    use replicate_webhook::dedupe::{Backoff, MemoryStore, WatchList as _};
    use replicate_webhook::reconcile::Reconcile;
    use replicate_webhook::testkit::protocol::now_ms;

    let sim = simulator();
    let client = Client::new(&sim.api_base, Some(TOKEN.to_owned())).unwrap();
    let store = std::sync::Arc::new(MemoryStore::new());
    let config = WebhookConfig::new(Secret::parse(SECRET).unwrap())
        .shared_store(store.clone())
        .reconcile(Reconcile::new(client.clone()).after(Duration::from_mins(1)));
    let watching = config.watching(client.clone());
    // No webhook at all: only the reconciler can ever report this prediction's result.
    let created = watching
        .create(&CreatePrediction::model(
            "replicate/hello-world",
            json!({ "text": "x" }),
        ))
        .await
        .unwrap();
    let retry = Backoff {
        base_ms: 1_000,
        cap_ms: 1_000,
    };
    assert!(
        store
            .take_due(now_ms(), 10, retry)
            .await
            .unwrap()
            .is_empty()
    );
    let due = store.take_due(now_ms() + 61_000, 10, retry).await.unwrap();
    assert_eq!(due, [(created.id.clone(), 0)]);
    // A client that is not watching leaves nothing behind.
    client
        .create(&CreatePrediction::model(
            "replicate/hello-world",
            json!({ "text": "y" }),
        ))
        .await
        .unwrap();
    // Only the watched one, due again after its first poll.
    assert_eq!(
        store.take_due(now_ms() + 600_000, 10, retry).await.unwrap(),
        [(created.id.clone(), 1)]
    );
}

#[test]
fn an_unparsable_reconcile_delay_is_a_config_error() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_quickstart"))
        .current_dir(tempfile::tempdir().unwrap().path())
        .env("BIND", format!("127.0.0.1:{}", free_port()))
        .env("REPLICATE_WEBHOOK_SECRET", SECRET)
        .env("REPLICATE_API_TOKEN", TOKEN)
        .env("REPLICATE_WEBHOOK_RECONCILE_AFTER", "soon")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("REPLICATE_WEBHOOK_RECONCILE_AFTER"),
        "{stderr}"
    );
    assert!(!stderr.contains(TOKEN), "{stderr}");
}
