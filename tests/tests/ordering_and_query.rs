//! The order of deliveries (the first terminal status wins, late regressing progress is dropped)
//! and the query string, authenticated by the signed body's `webhook` URL.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use replicate_webhook::testkit::{TestDelivery, new_prediction_id, sample_prediction};
use replicate_webhook::{
    Event, HandlerError, HandlerKind, Prediction, Secret, SignedQuery, WebhookConfig,
    replicate_webhook,
};
use replicate_webhook_tests::{TestServer, counting, only};
use serde_json::{Value, json};

const MODEL: &str = "acme/ordering";
/// The model whose handler takes a `SignedQuery`.
const QUERY_MODEL: &str = "acme/signed-query";
const FIRST_WINS: &str = "prediction already handled; its first terminal status wins";
const STALE: &str = "stale event: older than one already seen";

/// What the `SignedQuery` handler received, as `prediction id:customId:note` lines.
static QUERIES: Mutex<Vec<String>> = Mutex::new(Vec::new());

#[derive(Debug, serde::Deserialize)]
struct Custom {
    #[serde(rename = "customId")]
    custom_id: String,
    #[serde(default)]
    note: String,
}

#[replicate_webhook(model = "acme/signed-query")]
mod with_query {
    use super::{Custom, HandlerError, Prediction, QUERIES, SignedQuery};

    async fn on_succeeded(p: Prediction, q: SignedQuery<Custom>) -> Result<(), HandlerError> {
        let q = q.into_inner();
        QUERIES
            .lock()
            .unwrap()
            .push(format!("{}:{}:{}", p.id, q.custom_id, q.note));
        Ok(())
    }
}

fn queries_for(id: &str) -> Vec<String> {
    let prefix = format!("{id}:");
    QUERIES
        .lock()
        .unwrap()
        .iter()
        .filter(|line| line.starts_with(&prefix))
        .cloned()
        .collect()
}

fn body(id: &str, model: &str, status: &str, output: Value) -> Value {
    sample_prediction(id, model, status, output)
}

/// A delivery of `body` to `/webhooks/replicate{query}`, with the signed `webhook` URL `webhook`.
fn to_query(mut body: Value, webhook: Option<&str>, query: &str) -> TestDelivery {
    if let Some(webhook) = webhook {
        body["webhook"] = json!(webhook);
    }
    TestDelivery::new(body.to_string()).path(format!("/webhooks/replicate{query}"))
}

#[actix_web::test]
async fn after_succeeded_a_failed_or_canceled_delivery_runs_nothing() {
    let secret = Secret::generate();
    let runs = Arc::new(AtomicUsize::new(0));
    let kinds = [
        HandlerKind::Succeeded,
        HandlerKind::Failed,
        HandlerKind::Canceled,
    ];
    let module = counting::<Prediction>(MODEL, &kinds, &runs);
    let srv = TestServer::serve(only(&secret, module));
    let id = new_prediction_id();
    let succeeded = TestDelivery::new(body(&id, MODEL, "succeeded", json!("x")).to_string());
    assert_eq!(
        srv.deliver(&succeeded.sign(&secret)).await,
        (200, "done".into())
    );
    for status in ["failed", "canceled", "succeeded"] {
        // Another webhook id each: a new delivery, not a retry.
        let late = TestDelivery::new(body(&id, MODEL, status, json!("x")).to_string());
        assert_eq!(
            srv.deliver(&late.sign(&secret)).await,
            (200, FIRST_WINS.into()),
            "{status}"
        );
    }
    assert_eq!(runs.load(Ordering::SeqCst), 1);
}

#[actix_web::test]
async fn regressing_processing_deliveries_are_not_dispatched_while_growing_ones_are() {
    let secret = Secret::generate();
    let (outputs, logs) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let events = [Event::Output, Event::Logs];
    let module = counting::<Prediction>(MODEL, &[HandlerKind::Output], &outputs)
        .events(events)
        .on(HandlerKind::Logs, {
            let logs = logs.clone();
            move |_: Prediction| {
                logs.fetch_add(1, Ordering::SeqCst);
                async { Ok::<(), HandlerError>(()) }
            }
        });
    let srv = TestServer::serve(only(&secret, module));
    let id = new_prediction_id();
    let processing = |output: Value, log: &str| {
        let mut b = body(&id, MODEL, "processing", output);
        b["logs"] = json!(log);
        TestDelivery::new(b.to_string()).sign(&secret)
    };
    let counts = || (outputs.load(Ordering::SeqCst), logs.load(Ordering::SeqCst));
    let steps: [(Value, &str, &str, (usize, usize)); 6] = [
        (json!(["a", "b"]), "1\n2\n", "done", (1, 0)),
        (json!(["a"]), "1\n2\n", STALE, (1, 0)),
        (json!(["a", "b"]), "1\n", STALE, (1, 0)),
        (json!(["a", "b", "c"]), "1\n2\n3\n", "done", (2, 0)),
        (json!(["a", "b", "c"]), "1\n2\n3\n4\n", "done", (2, 1)),
        (json!(["a", "b"]), "1\n2\n3\n4\n5\n", STALE, (2, 1)),
    ];
    for (output, log, answer, expected) in steps {
        let shown = format!("{output} {log:?}");
        assert_eq!(
            srv.deliver(&processing(output, log)).await,
            (200, answer.to_owned()),
            "{shown}"
        );
        assert_eq!(counts(), expected, "{shown}");
    }
}

#[actix_web::test]
async fn the_query_must_be_the_signed_one() {
    let secret = Secret::generate();
    let srv = TestServer::serve(WebhookConfig::new(secret.clone()));
    let signed_url = "https://app.example/webhooks/replicate?customId=123&note=a%20b";

    // The body says customId=123; the URL was changed to say otherwise.
    let id = new_prediction_id();
    let b = body(&id, QUERY_MODEL, "succeeded", json!("x"));
    for query in [
        "?customId=attacker&note=a%20b",
        "?customId=123",
        "?customId=123&note=a%20b&admin=1",
        "",
    ] {
        let attack = to_query(b.clone(), Some(signed_url), query).sign(&secret);
        let (status, text) = srv.deliver(&attack).await;
        assert_eq!(status, 401, "{query}: {text}");
    }
    assert!(queries_for(&id).is_empty(), "{:?}", queries_for(&id));

    // The same pairs with another encoding: accepted, and the handler gets the decoded values.
    let real = to_query(b, Some(signed_url), "?customId=123&note=a+b").sign(&secret);
    assert_eq!(srv.deliver(&real).await, (200, "done".into()));
    assert_eq!(queries_for(&id), [format!("{id}:123:a b")]);
}

#[actix_web::test]
async fn without_the_check_a_mismatch_is_accepted_but_signed_query_is_refused() {
    let secret = Secret::generate();
    let runs = Arc::new(AtomicUsize::new(0));
    let plain = counting::<Prediction>(MODEL, &[HandlerKind::Succeeded], &runs);
    let srv = TestServer::serve(
        WebhookConfig::new(secret.clone())
            .require_signed_query(false)
            .module(plain),
    );
    let signed_url = "https://app.example/webhooks/replicate?customId=123";

    // A handler without SignedQuery: the mismatch is not looked at.
    let b = body(&new_prediction_id(), MODEL, "succeeded", json!("x"));
    let mismatch = to_query(b, Some(signed_url), "?customId=attacker").sign(&secret);
    assert_eq!(srv.deliver(&mismatch).await, (200, "done".into()));
    assert_eq!(runs.load(Ordering::SeqCst), 1);

    // A handler with SignedQuery: nothing vouches for the query, so extraction fails (500) and
    // the claim is released: the retry is tried again, not answered as a duplicate or in flight.
    let id = new_prediction_id();
    let b = body(&id, QUERY_MODEL, "succeeded", json!("x"));
    let delivery = to_query(b, Some(signed_url), "?customId=123").sign(&secret);
    for attempt in 0..2 {
        assert_eq!(
            srv.deliver(&delivery).await,
            (500, "handler argument extraction failed".into()),
            "attempt {attempt}"
        );
    }
    assert!(queries_for(&id).is_empty());
}

#[actix_web::test]
async fn a_body_without_a_webhook_url_is_accepted_whatever_the_query() {
    let secret = Secret::generate();
    let runs = Arc::new(AtomicUsize::new(0));
    let module = counting::<Prediction>(MODEL, &[HandlerKind::Succeeded], &runs);
    let srv = TestServer::serve(only(&secret, module));
    for query in ["", "?customId=anything"] {
        let b = body(&new_prediction_id(), MODEL, "succeeded", json!("x"));
        assert!(b.get("webhook").is_none());
        let d = to_query(b, None, query).sign(&secret);
        assert_eq!(srv.deliver(&d).await, (200, "done".into()), "{query}");
    }
    assert_eq!(runs.load(Ordering::SeqCst), 2);
}
