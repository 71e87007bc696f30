//! Durability: a receiver killed with SIGKILL while a handler runs, then restarted on the same
//! SQLite file (and the same PostgreSQL database), handles the retried delivery exactly once
//! after the dead worker's lease expires, and still knows every webhook id it handled.

use std::time::{Duration, Instant};

use replicate_webhook::Secret;
use replicate_webhook::testkit::{Signed, TestDelivery, new_prediction_id};
use replicate_webhook_tests::process::{Process, wait_for};
use replicate_webhook_tests::{post, services};
use serde_json::json;

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const LEASE_MS: &str = "1500";

fn receiver(dir: &std::path::Path, store: &str, delay_ms: &str) -> Process {
    Process::start(
        env!("CARGO_BIN_EXE_slow_receiver"),
        dir,
        &[
            ("REPLICATE_WEBHOOK_SECRET", SECRET),
            ("REPLICATE_WEBHOOK_STORE", store),
            ("HANDLER_DELAY_MS", delay_ms),
            ("LEASE_MS", LEASE_MS),
        ],
    )
}

fn signed(d: &TestDelivery) -> Signed {
    // A fresh timestamp and signature each time, like Replicate's retries.
    d.sign_now(&Secret::parse(SECRET).unwrap())
}

fn id_of(d: &TestDelivery) -> String {
    let body: serde_json::Value = serde_json::from_slice(d.body()).unwrap();
    body["id"].as_str().unwrap().to_owned()
}

async fn killed_mid_handler_then_restarted(store: &str) {
    let dir = tempfile::tempdir().unwrap();
    let fast = TestDelivery::succeeded("acme/durable", json!("fast"))
        .id(format!("msg_{}", new_prediction_id()));
    let slow = TestDelivery::succeeded("acme/durable", json!("slow"))
        .id(format!("msg_{}", new_prediction_id()));
    let (fast_id, slow_id) = (id_of(&fast), id_of(&slow));

    let first = receiver(dir.path(), store, "600000");
    assert_eq!(post(&first.base, &signed(&fast)).await.0, 200);
    assert_eq!(
        first.drain(Duration::from_millis(200)),
        [format!("started {fast_id}"), format!("finished {fast_id}")]
    );
    // The slow handler never finishes: kill the process while it runs.
    let url = first.url.clone();
    let hung = tokio::spawn({
        let d = signed(&slow);
        async move {
            let mut req = reqwest::Client::new().post(url).body(d.body().to_vec());
            for (name, value) in d.headers() {
                req = req.header(name, value);
            }
            req.send().await.map(|r| r.status().as_u16())
        }
    });
    wait_for(&first.stdout, &format!("started {slow_id}"));
    first.kill();
    let answer = hung.await.unwrap();
    assert!(answer.is_err(), "a killed receiver answered {answer:?}");

    let second = receiver(dir.path(), store, "0");
    // The dead worker's claim is still leased: the retry is told to come back, not run.
    let killed_at = Instant::now();
    let (status, body) = post(&second.base, &signed(&slow)).await;
    assert_eq!(status, 409, "{body}");
    let mut conflicts = 1;
    loop {
        let (status, body) = post(&second.base, &signed(&slow)).await;
        match status {
            200 => break,
            409 => conflicts += 1,
            other => panic!("{other}: {body}"),
        }
        assert!(
            killed_at.elapsed() < Duration::from_secs(15),
            "the lease never expired"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Handled webhook ids survived the restart.
    let (status, body) = post(&second.base, &signed(&fast)).await;
    assert_eq!(
        (status, body.as_str()),
        (
            200,
            "prediction already handled; its first terminal status wins"
        )
    );
    let (status, body) = post(&second.base, &signed(&slow)).await;
    assert_eq!(
        (status, body.as_str()),
        (
            200,
            "prediction already handled; its first terminal status wins"
        )
    );
    let lines = second.drain(Duration::from_millis(300));
    eprintln!(
        "{store}: killed mid-handler; after restart {conflicts} retries got 409 until the lease \
         expired ({:?}), then the handler ran once: {lines:?}",
        killed_at.elapsed()
    );
    assert_eq!(
        lines,
        [format!("started {slow_id}"), format!("finished {slow_id}")]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_survives_a_kill_mid_handler() {
    let dir = tempfile::tempdir().unwrap();
    let store = format!("sqlite://{}", dir.path().join("dedupe.db").display());
    killed_mid_handler_then_restarted(&store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_survives_a_kill_mid_handler() {
    let Some(url) = services::database_url() else {
        return;
    };
    killed_mid_handler_then_restarted(&url).await;
}
