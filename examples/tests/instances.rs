//! Exactly once across instances: two quickstart processes share one Redis (and then one
//! PostgreSQL) store and receive the same deliveries, with duplicates sent to both at the same
//! moment, duplicates re-sent later with a fresh timestamp, and retries of every 409 and 503.
//! Each prediction's `on_succeeded` line must appear once over both, and none may be missing.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt as _;
use replicate_webhook::Secret;
use replicate_webhook::testkit::{TestDelivery, new_prediction_id};
use replicate_webhook_tests::process::Process;
use replicate_webhook_tests::services;
use serde_json::json;

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const PREDICTIONS: usize = 2_000;
/// 30 % of the predictions are delivered twice: half at once to both, half later.
const TWIN_NOW: usize = 300;
const TWIN_LATER: usize = 300;

struct Totals {
    sent: usize,
    retried: usize,
}

/// Posts `delivery` (re-signed with a fresh timestamp) until it is answered 200, retrying 409
/// and 5xx as Replicate does, but without its waits. Returns the number of retries.
async fn deliver(client: &reqwest::Client, url: &str, delivery: &TestDelivery) -> usize {
    let secret = Secret::parse(SECRET).unwrap();
    for attempt in 0..200 {
        let signed = delivery.sign_now(&secret);
        let mut req = client.post(url).body(signed.body().to_vec());
        for (name, value) in signed.headers() {
            req = req.header(name, value);
        }
        let status = req.send().await.map_or(0, |r| r.status().as_u16());
        match status {
            200 => return attempt,
            409 | 500..=599 | 0 => tokio::time::sleep(Duration::from_millis(20)).await,
            other => panic!("unexpected {other} for a valid delivery"),
        }
    }
    panic!("a delivery was never acknowledged")
}

async fn send_all(first_url: &str, second_url: &str) -> Totals {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(64)
        .build()
        .unwrap();
    let deliveries: Vec<TestDelivery> = (0..PREDICTIONS)
        .map(|i| {
            TestDelivery::succeeded("acme/exactly-once", json!(format!("out-{i}")))
                .id(format!("msg_{}", new_prediction_id()))
        })
        .collect();
    let deliveries = Arc::new(deliveries);
    let urls = Arc::new([first_url.to_owned(), second_url.to_owned()]);
    // First pass: every delivery once, alternating instances; the first TWIN_NOW also to the
    // other instance at the same moment.
    let retried: usize = futures_util::stream::iter(0..PREDICTIONS)
        .map(|i| {
            let (client, deliveries, urls) = (client.clone(), deliveries.clone(), urls.clone());
            async move {
                let (mine, other) = (&urls[i % 2], &urls[(i + 1) % 2]);
                let delivery = &deliveries[i];
                if i < TWIN_NOW {
                    let (one, two) = tokio::join!(
                        deliver(&client, mine, delivery),
                        deliver(&client, other, delivery)
                    );
                    one + two
                } else {
                    deliver(&client, mine, delivery).await
                }
            }
        })
        .buffer_unordered(32)
        .fold(0, |sum, n| async move { sum + n })
        .await;
    // Second pass: TWIN_LATER of the rest re-sent with a fresh timestamp to the other instance.
    let later: usize = futures_util::stream::iter(TWIN_NOW..TWIN_NOW + TWIN_LATER)
        .map(|i| {
            let (client, deliveries, urls) = (client.clone(), deliveries.clone(), urls.clone());
            async move { deliver(&client, &urls[(i + 1) % 2], &deliveries[i]).await }
        })
        .buffer_unordered(32)
        .fold(0, |sum, n| async move { sum + n })
        .await;
    Totals {
        sent: PREDICTIONS + TWIN_NOW + TWIN_LATER,
        retried: retried + later,
    }
}

/// Runs two quickstarts on `store` and checks every prediction ran `on_succeeded` once.
fn exactly_once_over_two_instances(store: &str) {
    let dir = tempfile::tempdir().unwrap();
    let env = [
        ("REPLICATE_WEBHOOK_SECRET", SECRET),
        ("REPLICATE_WEBHOOK_STORE", store),
    ];
    let bin = env!("CARGO_BIN_EXE_quickstart");
    let a = Process::start(bin, dir.path(), &env);
    let b = Process::start(bin, dir.path(), &env);
    let started = Instant::now();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let totals = runtime.block_on(send_all(&a.url, &b.url));
    let elapsed = started.elapsed();

    // Every delivery was answered 200, after its handler printed: what is in the pipes now is
    // all there will be.
    let mut runs: HashMap<String, usize> = HashMap::new();
    for line in a
        .drain(Duration::from_millis(500))
        .into_iter()
        .chain(b.drain(Duration::from_millis(500)))
    {
        let id = line
            .strip_prefix("on_succeeded id=")
            .and_then(|rest| rest.split(' ').next())
            .unwrap_or_else(|| panic!("unexpected line {line:?}"));
        *runs.entry(id.to_owned()).or_default() += 1;
    }
    let twice: Vec<_> = runs.iter().filter(|(_, n)| **n > 1).collect();
    eprintln!(
        "{store}: {} deliveries ({} duplicates) and {} retries of 409/5xx in {elapsed:?}; \
         {} predictions ran on_succeeded, {} more than once",
        totals.sent,
        totals.sent - PREDICTIONS,
        totals.retried,
        runs.len(),
        twice.len()
    );
    assert!(twice.is_empty(), "handlers ran more than once: {twice:?}");
    assert_eq!(
        runs.len(),
        PREDICTIONS,
        "some predictions never ran on_succeeded"
    );
}

#[test]
fn exactly_once_over_two_instances_sharing_redis() {
    let Some(url) = services::redis_url() else {
        return;
    };
    let prefix = services::unique("instances");
    exactly_once_over_two_instances(&format!("{url}?prefix={prefix}"));
}

#[test]
fn exactly_once_over_two_instances_sharing_postgres() {
    let Some(url) = services::database_url() else {
        return;
    };
    exactly_once_over_two_instances(&url);
}
