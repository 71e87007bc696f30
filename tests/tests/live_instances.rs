//! The live channel across instances sharing a real Redis or a real PostgreSQL: deliver to A,
//! subscribe on B, and the reverse; tokens minted by one accepted by the other; an instance
//! started afresh loses nothing the store kept. Skips without `REDIS_URL` / `DATABASE_URL` unless
//! `REQUIRE_SERVICES=1`.

use std::sync::Arc;
use std::sync::atomic::AtomicUsize;

use replicate_webhook::dedupe::StoreUrl;
use replicate_webhook::live::{Live, LiveOptions};
use replicate_webhook::testkit::TestDelivery;
use replicate_webhook::{Prediction, Secret};
use replicate_webhook_tests::services::{database_url, redis_url, unique};
use replicate_webhook_tests::sse::{SseEvent, SseReader};
use replicate_webhook_tests::{LIFECYCLE, TestServer, counting, only, within};
use serde_json::{Value, json};

const MODEL: &str = "acme/live-instances";

fn secret() -> Secret {
    Secret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap()
}

/// One instance: its own receiver and channel, sharing only the store's URL and the secret.
fn instance(store: &str) -> (TestServer, Live) {
    let runs = Arc::new(AtomicUsize::new(0));
    let config = only(&secret(), counting::<Prediction>(MODEL, &LIFECYCLE, &runs))
        .store_url(&StoreUrl::parse(store).unwrap())
        .unwrap()
        .live(LiveOptions::new())
        .unwrap();
    let live = config.live_channel().unwrap();
    (TestServer::serve(config), live)
}

fn body(id: &str, status: &str, output: &Value, logs: &str) -> TestDelivery {
    TestDelivery::new(
        json!({
            "id": id, "model": MODEL, "version": "v1", "status": status,
            "input": {}, "output": output, "logs": logs, "error": null,
            "created_at": "2024-01-01T00:00:00Z",
        })
        .to_string(),
    )
}

async fn deliver(server: &TestServer, delivery: &TestDelivery) {
    let (status, text) = server.deliver(&delivery.sign(&secret())).await;
    assert_eq!(status, 200, "{text}");
}

async fn subscribe(server: &TestServer, events_url: &str, last: Option<&str>) -> SseReader {
    let mut req = reqwest::Client::new().get(server.url(events_url));
    if let Some(last) = last {
        req = req.header("last-event-id", last);
    }
    SseReader::new(req.send().await.unwrap())
}

fn kinds(events: &[SseEvent]) -> Vec<(String, String)> {
    events
        .iter()
        .map(|e| (e.id.clone().unwrap_or_default(), e.event.clone()))
        .collect()
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
        .collect()
}

/// Redis keys under a prefix of this run's own; PostgreSQL tables are shared, the prediction ids
/// of each run are not (see [`id`]).
fn redis_store() -> Option<String> {
    let base = redis_url()?;
    let sep = if base.contains('?') { '&' } else { '?' };
    Some(format!("{base}{sep}prefix={}", unique("live")))
}

fn id(label: &str) -> String {
    unique(label).replace(':', "")
}

#[actix_rt::test]
async fn redis_a_subscriber_on_b_sees_what_a_accepted_once_in_order() {
    let Some(store) = redis_store() else { return };
    a_to_b(&store, &id("a-to-b")).await;
}

#[actix_rt::test]
async fn postgres_a_subscriber_on_b_sees_what_a_accepted_once_in_order() {
    let Some(store) = database_url() else { return };
    a_to_b(&store, &id("a-to-b")).await;
}

#[actix_rt::test]
async fn redis_a_subscriber_on_a_resumes_and_catches_up_on_what_b_accepted() {
    let Some(store) = redis_store() else { return };
    b_to_a(&store, &id("b-to-a")).await;
}

#[actix_rt::test]
async fn postgres_a_subscriber_on_a_resumes_and_catches_up_on_what_b_accepted() {
    let Some(store) = database_url() else { return };
    b_to_a(&store, &id("b-to-a")).await;
}

#[actix_rt::test]
async fn redis_an_instance_started_afresh_serves_the_state_the_store_kept() {
    let Some(store) = redis_store() else { return };
    restart(&store, &id("restart")).await;
}

#[actix_rt::test]
async fn postgres_an_instance_started_afresh_serves_the_state_the_store_kept() {
    let Some(store) = database_url() else { return };
    restart(&store, &id("restart")).await;
}

async fn a_to_b(store: &str, id: &str) {
    let (a, live_a) = instance(store);
    let (b, _live_b) = instance(store);
    // Minted by A, accepted by B: both derive the key from the shared secret.
    let mut on_b = subscribe(&b, &live_a.events_url(id), None).await;

    deliver(&a, &body(id, "starting", &Value::Null, "")).await;
    let logs = body(id, "processing", &Value::Null, "one\n");
    deliver(&a, &logs).await;
    // Replicate's retry lands on B: the shared dedupe store refuses it, nothing is published.
    deliver(&b, &logs).await;
    deliver(&a, &body(id, "processing", &json!("he"), "one\ntwo\n")).await;
    deliver(&b, &body(id, "processing", &Value::Null, "one\n")).await;
    deliver(&a, &body(id, "succeeded", &json!("hello"), "one\ntwo\n")).await;
    deliver(&b, &body(id, "failed", &Value::Null, "")).await;

    let events = within(on_b.rest()).await;
    assert_eq!(
        kinds(&events),
        pairs(&[
            ("1", "start"),
            ("2", "logs"),
            ("3", "output"),
            ("4", "completed")
        ])
    );
    assert_eq!(events[2].json()["logs"], "two\n");
    assert_eq!(events[3].json()["output"], "hello");
}

async fn b_to_a(store: &str, id: &str) {
    let (a, live_a) = instance(store);
    let (b, live_b) = instance(store);
    deliver(&b, &body(id, "starting", &Value::Null, "")).await;
    deliver(&b, &body(id, "processing", &Value::Null, "x\n")).await;
    deliver(&b, &body(id, "processing", &Value::Null, "x\ny\n")).await;

    // A joins late: the current state from the store, then what B accepts next.
    let mut on_a = subscribe(&a, &live_b.events_url(id), None).await;
    let first = within(on_a.next()).await.unwrap();
    assert_eq!(
        kinds(std::slice::from_ref(&first)),
        pairs(&[("3", "state")])
    );
    assert_eq!(first.json()["logs"], "x\ny\n");
    // Another tab on A resumes after event 1 from B's replay window in the store.
    let mut resumed = subscribe(&a, &live_a.events_url(id), Some("1")).await;
    deliver(&b, &body(id, "canceled", &Value::Null, "x\ny\n")).await;
    assert_eq!(
        kinds(&within(on_a.rest()).await),
        pairs(&[("4", "completed")])
    );
    assert_eq!(
        kinds(&within(resumed.rest()).await),
        pairs(&[("2", "logs"), ("3", "logs"), ("4", "completed")])
    );
}

async fn restart(store: &str, id: &str) {
    {
        let (a, _) = instance(store);
        deliver(&a, &body(id, "starting", &Value::Null, "")).await;
        deliver(
            &a,
            &body(id, "succeeded", &json!(["https://x/1.png"]), "done\n"),
        )
        .await;
    }
    let (fresh, live) = instance(store);
    let events = within(subscribe(&fresh, &live.events_url(id), None).await.rest()).await;
    assert_eq!(kinds(&events), pairs(&[("2", "state")]));
    assert_eq!(events[0].json()["output"], json!(["https://x/1.png"]));
    assert_eq!(events[0].json()["logs"], "done\n");
    // An app event published on the fresh instance is numbered after what the store kept.
    let saved = live
        .publish(id, "saved", &json!({"url": "u"}))
        .await
        .unwrap();
    assert_eq!(saved.seq, 3);
}
