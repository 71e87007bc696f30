//! The live channel over real HTTP: order, exactly-once across duplicate and stale deliveries,
//! state for late subscribers, resume by `Last-Event-ID`, every token refusal, CORS, a slow
//! subscriber, and the bounds.

use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::time::{Duration, SystemTime};

use futures_util::StreamExt as _;
use replicate_webhook::live::{Live, LiveOptions};
use replicate_webhook::testkit::TestDelivery;
use replicate_webhook::{Prediction, Secret, WebhookConfig, replicate_webhook};
use replicate_webhook_tests::sse::{SseEvent, SseReader};
use replicate_webhook_tests::{LIFECYCLE, TestServer, counting, only, within};
use serde_json::{Value, json};

const MODEL: &str = "acme/live";

fn secret() -> Secret {
    Secret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap()
}

/// A receiver with the live channel on, handling every event of `MODEL`.
fn serve(options: LiveOptions) -> (TestServer, Live) {
    let runs = Arc::new(AtomicUsize::new(0));
    let config = only(&secret(), counting::<Prediction>(MODEL, &LIFECYCLE, &runs))
        .live(options)
        .unwrap();
    let live = config.live_channel().unwrap();
    (TestServer::serve(config), live)
}

fn body(id: &str, status: &str, output: &Value, logs: &str) -> TestDelivery {
    TestDelivery::new(
        json!({
            "id": id,
            "model": MODEL,
            "version": "v1",
            "status": status,
            "input": {"prompt": "x"},
            "output": output,
            "logs": logs,
            "error": null,
            "created_at": "2024-01-01T00:00:00Z",
            "urls": {"get": "https://api.replicate.com/v1/predictions/x", "cancel": "https://api.replicate.com/v1/predictions/x/cancel"},
        })
        .to_string(),
    )
}

async fn deliver(server: &TestServer, delivery: &TestDelivery) -> u16 {
    let (status, text) = server.deliver(&delivery.sign(&secret())).await;
    assert_eq!(status, 200, "{text}");
    status
}

async fn subscribe(server: &TestServer, live: &Live, id: &str, last: Option<&str>) -> SseReader {
    let mut req = reqwest::Client::new().get(server.url(&live.events_url(id)));
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

#[actix_rt::test]
async fn each_change_arrives_once_in_order_and_the_stream_ends_after_the_terminal_event() {
    let (server, live) = serve(LiveOptions::new());
    let id = "p-order";
    // Connected before the first webhook: nothing to send yet.
    let mut stream = subscribe(&server, &live, id, None).await;

    deliver(&server, &body(id, "starting", &Value::Null, "")).await;
    let logs = body(id, "processing", &Value::Null, "loading\n");
    deliver(&server, &logs).await;
    // Replicate's retry of the same delivery (same webhook-id): refused by dedupe.
    deliver(&server, &logs).await;
    deliver(
        &server,
        &body(id, "processing", &json!("hel"), "loading\nstep 1\n"),
    )
    .await;
    // Late: fewer logs than already seen.
    deliver(&server, &body(id, "processing", &Value::Null, "loading\n")).await;
    deliver(
        &server,
        &body(id, "succeeded", &json!("hello"), "loading\nstep 1\ndone\n"),
    )
    .await;
    // A second terminal status, and a straggler after the end.
    deliver(&server, &body(id, "failed", &Value::Null, "x")).await;
    deliver(
        &server,
        &body(
            id,
            "processing",
            &json!("h"),
            "loading\nstep 1\ndone\nmore\n",
        ),
    )
    .await;

    let events = within(stream.rest()).await;
    assert_eq!(
        kinds(&events),
        pairs(&[
            ("1", "start"),
            ("2", "logs"),
            ("3", "output"),
            ("4", "completed")
        ])
    );
    let data: Vec<Value> = events.iter().map(SseEvent::json).collect();
    for d in &data {
        assert_eq!(d["id"], id);
    }
    assert_eq!(data[1]["logs"], "loading\n");
    assert_eq!(data[1]["status"], "processing");
    assert_eq!(data[2]["logs"], "step 1\n", "only what was appended");
    assert_eq!(data[2]["output"], "hel");
    assert_eq!(data[3]["status"], "succeeded");
    assert_eq!(data[3]["output"], "hello");
    assert_eq!(data[3]["logs"], "done\n");
}

#[actix_rt::test]
async fn a_subscriber_after_the_terminal_webhook_gets_the_final_state_and_the_end() {
    let (server, live) = serve(LiveOptions::new());
    let id = "p-late";
    deliver(&server, &body(id, "starting", &Value::Null, "")).await;
    deliver(&server, &body(id, "processing", &Value::Null, "a\n")).await;
    deliver(
        &server,
        &body(id, "succeeded", &json!(["https://x/1.png"]), "a\nb\n"),
    )
    .await;

    let events = within(subscribe(&server, &live, id, None).await.rest()).await;
    assert_eq!(kinds(&events), pairs(&[("3", "state")]));
    let state = events[0].json();
    assert_eq!(state["status"], "succeeded");
    assert_eq!(state["output"], json!(["https://x/1.png"]));
    assert_eq!(state["logs"], "a\nb\n", "the whole logs so far");
}

#[actix_rt::test]
async fn last_event_id_resumes_with_nothing_missed_or_repeated() {
    let (server, live) = serve(LiveOptions::new());
    let id = "p-resume";
    deliver(&server, &body(id, "starting", &Value::Null, "")).await;
    deliver(&server, &body(id, "processing", &Value::Null, "a\n")).await;
    deliver(&server, &body(id, "processing", &Value::Null, "a\nb\n")).await;

    let mut stream = subscribe(&server, &live, id, Some("1")).await;
    let first = within(stream.next()).await.unwrap();
    let second = within(stream.next()).await.unwrap();
    assert_eq!(
        kinds(&[first.clone(), second.clone()]),
        pairs(&[("2", "logs"), ("3", "logs")])
    );
    assert_eq!(second.json()["logs"], "b\n");
    deliver(&server, &body(id, "succeeded", &json!("ok"), "a\nb\n")).await;
    assert_eq!(
        kinds(&within(stream.rest()).await),
        pairs(&[("4", "completed")])
    );

    // Caught up: nothing to replay, and the prediction has ended.
    let mut caught_up = subscribe(&server, &live, id, Some("4")).await;
    assert_eq!(within(caught_up.rest()).await, Vec::new());
    // An id the channel never sent resumes nowhere: the current state instead.
    let mut junk = subscribe(&server, &live, id, Some("not-an-id")).await;
    assert_eq!(kinds(&within(junk.rest()).await), pairs(&[("4", "state")]));
}

#[actix_rt::test]
async fn past_the_replay_window_a_fresh_state_replaces_the_gap() {
    let (server, live) = serve(LiveOptions::new().replay(2, 1 << 20));
    let id = "p-window";
    deliver(&server, &body(id, "starting", &Value::Null, "")).await;
    let mut logs = String::new();
    for n in 0..4 {
        logs += &["line ", &n.to_string(), "\n"].concat();
        deliver(&server, &body(id, "processing", &Value::Null, &logs)).await;
    }
    // Events 1..=5 were sent; the ring keeps 4 and 5: resuming after 1 would skip 2 and 3.
    let mut stream = subscribe(&server, &live, id, Some("1")).await;
    let event = within(stream.next()).await.unwrap();
    assert_eq!(
        kinds(std::slice::from_ref(&event)),
        pairs(&[("5", "state")])
    );
    assert_eq!(event.json()["logs"], logs);
    // Within the window, a replay.
    let mut stream = subscribe(&server, &live, id, Some("3")).await;
    let replayed = [
        within(stream.next()).await.unwrap(),
        within(stream.next()).await.unwrap(),
    ];
    assert_eq!(kinds(&replayed), pairs(&[("4", "logs"), ("5", "logs")]));
}

#[actix_rt::test]
async fn every_bad_token_is_refused_before_any_event() {
    let (server, live) = serve(LiveOptions::new());
    let id = "p-token";
    deliver(&server, &body(id, "succeeded", &json!("secret output"), "")).await;
    let path = live.events_path(id);
    let expired = live.token_until(id, SystemTime::now() - Duration::from_secs(1));
    let other = live.token("p-other");
    let foreign = WebhookConfig::new(Secret::generate())
        .live(LiveOptions::new())
        .unwrap()
        .live_channel()
        .unwrap()
        .token(id);
    let mut forged = live.token(id);
    forged.replace_range(forged.len() - 4.., "AAAA");
    let cases = [
        (path.clone(), 401),
        (format!("{path}?token="), 401),
        (format!("{path}?token={forged}"), 401),
        (format!("{path}?token={foreign}"), 401),
        (format!("{path}?token={expired}"), 401),
        (format!("{path}?token={other}"), 403),
    ];
    for (url, want) in cases {
        let resp = reqwest::get(server.url(&url)).await.unwrap();
        assert_eq!(resp.status(), want, "{url}");
        let text = resp.text().await.unwrap();
        assert!(
            !text.contains("secret output") && !text.contains("data:"),
            "{text}"
        );
    }
    let ok = reqwest::get(server.url(&live.events_url(id)))
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
}

#[actix_rt::test]
async fn bad_tokens_are_refused_without_a_store_round_trip() {
    // A Redis nobody listens on: any store call fails (503), so a 401 proves none was made.
    let config = only(
        &secret(),
        counting::<Prediction>(MODEL, &LIFECYCLE, &Arc::new(AtomicUsize::new(0))),
    )
    .store_url(&replicate_webhook::dedupe::StoreUrl::parse("redis://127.0.0.1:1/0").unwrap())
    .unwrap()
    .live(LiveOptions::new())
    .unwrap();
    let live = config.live_channel().unwrap();
    let server = TestServer::serve(config);
    let id = "p-flood";
    let path = live.events_path(id);
    for _ in 0..50 {
        let forged = reqwest::get(server.url(&format!("{path}?token=v1.9999999999.cA.AAAA")))
            .await
            .unwrap();
        assert_eq!(forged.status(), 401);
    }
    let valid = reqwest::get(server.url(&live.events_url(id)))
        .await
        .unwrap();
    assert_eq!(
        valid.status(),
        503,
        "a valid token reaches the (unreachable) store"
    );
}

#[actix_rt::test]
async fn cors_is_same_origin_unless_an_origin_is_allowed() {
    let (server, live) = serve(LiveOptions::new().allow_origin("https://app.example"));
    let id = "p-cors";
    deliver(&server, &body(id, "succeeded", &json!("x"), "")).await;
    let get = |origin: &'static str| {
        reqwest::Client::new()
            .get(server.url(&live.events_url(id)))
            .header("origin", origin)
            .send()
    };
    let allowed = get("https://app.example").await.unwrap();
    assert_eq!(
        allowed.headers()["access-control-allow-origin"],
        "https://app.example"
    );
    let other = get("https://evil.example").await.unwrap();
    assert!(other.headers().get("access-control-allow-origin").is_none());
}

#[actix_rt::test]
async fn subscribers_beyond_the_limit_get_503_and_a_freed_slot_is_reused() {
    // Heartbeats are what tell the server a silent subscriber went away.
    let (server, live) = serve(
        LiveOptions::new()
            .max_subscribers(1)
            .heartbeat(Duration::from_millis(20)),
    );
    let id = "p-limit";
    let first = subscribe(&server, &live, id, None).await;
    let second = reqwest::get(server.url(&live.events_url(id)))
        .await
        .unwrap();
    assert_eq!(second.status(), 503);
    assert!(second.headers().contains_key("retry-after"));
    drop(first);
    let mut freed = None;
    for _ in 0..100 {
        let resp = reqwest::get(server.url(&live.events_url(id)))
            .await
            .unwrap();
        if resp.status() == 200 {
            freed = Some(resp);
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        freed.is_some(),
        "the closed subscriber's slot was never freed"
    );
}

#[actix_rt::test]
async fn idle_streams_get_heartbeat_comments() {
    let (server, live) = serve(LiveOptions::new().heartbeat(Duration::from_millis(20)));
    let id = "p-heartbeat";
    let mut stream = subscribe(&server, &live, id, None).await;
    // The first event arrives after heartbeats were sent on the idle stream.
    let wait = async {
        while live.subscribers() == 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        deliver(&server, &body(id, "starting", &Value::Null, "")).await;
    };
    let (event, ()) = within(async { tokio::join!(stream.next(), wait) }).await;
    assert_eq!(event.unwrap().event, "start");
    assert!(stream.comments > 0, "no heartbeat on an idle stream");
}

#[actix_rt::test]
async fn a_slow_subscriber_is_told_it_lagged_and_disconnected() {
    let (_server, live) = serve(LiveOptions::new().subscriber_buffer(2));
    let id = "p-slow";
    let mut slow = Box::pin(live.subscribe(id, None).await.unwrap());
    for n in 0..5 {
        live.publish(id, "tick", &json!({ "n": n })).await.unwrap();
    }
    let event = within(slow.next()).await.unwrap();
    assert_eq!(event.event, "lagged");
    assert!(
        within(slow.next()).await.is_none(),
        "disconnected after lagged"
    );
    // A subscriber that keeps up is not affected.
    let mut quick = Box::pin(live.subscribe(id, Some(5)).await.unwrap());
    live.publish(id, "tick", &json!({ "n": 5 })).await.unwrap();
    let event = within(quick.next()).await.unwrap();
    assert_eq!((event.seq, event.event.as_str()), (6, "tick"));
}

#[actix_rt::test]
async fn the_channel_keeps_at_most_max_predictions() {
    let (_server, live) = serve(LiveOptions::new().max_predictions(3));
    for n in 0..10 {
        live.publish(&format!("p-{n}"), "tick", &json!(n))
            .await
            .unwrap();
    }
    assert_eq!(live.predictions(), 3);
    // The newest remain.
    let kept = Box::pin(live.subscribe("p-9", Some(0)).await.unwrap())
        .next()
        .await
        .unwrap();
    assert_eq!(kept.event, "tick");
}

#[actix_rt::test]
async fn unwatched_predictions_are_dropped_after_the_retention() {
    let (_server, live) = serve(LiveOptions::new().retention(Duration::ZERO));
    let watched = Box::pin(live.subscribe("p-watched", None).await.unwrap());
    // Expired channels are swept every 256 publishes: the last one here sweeps.
    for n in 0..256 {
        live.publish(&format!("p-{n}"), "tick", &json!(n))
            .await
            .unwrap();
    }
    assert_eq!(live.predictions(), 1, "only the watched one is kept");
    drop(watched);
}

#[actix_rt::test]
async fn a_delivery_whose_handler_fails_is_published_by_its_successful_retry() {
    let attempts = Arc::new(AtomicUsize::new(0));
    let config = only(
        &secret(),
        replicate_webhook_tests::fails_once_then_succeeds(MODEL, &attempts),
    )
    .live(LiveOptions::new())
    .unwrap();
    let live = config.live_channel().unwrap();
    let server = TestServer::serve(config);
    let id = "p-retry";
    let mut events = Box::pin(live.subscribe(id, None).await.unwrap());
    let done = body(id, "succeeded", &json!("ok"), "").sign(&secret());
    assert_eq!(server.deliver(&done).await.0, 500);
    // Publishing happens before the answer: had the failed attempt published, it would be here.
    assert!(
        futures_util::FutureExt::now_or_never(events.next()).is_none(),
        "a failed handler's delivery was published"
    );
    assert_eq!(server.deliver(&done).await.0, 200);
    let first = within(events.next()).await.unwrap();
    assert_eq!((first.seq, first.event.as_str()), (1, "completed"));
    assert!(within(events.next()).await.is_none());
}

#[actix_rt::test]
async fn app_event_names_are_checked() {
    let (_server, live) = serve(LiveOptions::new());
    assert!(live.publish("p", "completed", &json!({})).await.is_err());
    assert!(live.publish("p", "two words", &json!({})).await.is_err());
    assert!(live.publish("p", "", &json!({})).await.is_err());
    assert!(live.publish("p", "saved", &json!({})).await.is_ok());
}

/// A handler that copies the image out and says where, before the terminal event is published.
#[replicate_webhook(model = "acme/saver", events = ["completed"])]
mod saver {
    use replicate_webhook::live::Live;
    use replicate_webhook::{HandlerError, Prediction};

    async fn on_succeeded(p: Prediction, live: Live) -> Result<(), HandlerError> {
        let url = format!("https://app.example/images/{}.png", p.id);
        live.publish(&p.id, "saved", &serde_json::json!({ "url": url }))
            .await
            .map_err(HandlerError::permanent)?;
        Ok(())
    }
}

#[actix_rt::test]
async fn handlers_publish_their_own_events_in_order_with_the_rest() {
    let config = WebhookConfig::new(secret())
        .live(LiveOptions::new())
        .unwrap();
    let live = config.live_channel().unwrap();
    let server = TestServer::serve(config);
    let id = "p-saved";
    let mut stream = subscribe(&server, &live, id, None).await;
    let done = TestDelivery::new(
        json!({
            "id": id, "model": "acme/saver", "version": "v", "status": "succeeded",
            "input": {}, "output": "https://replicate.delivery/x.png", "logs": "",
            "error": null, "created_at": "2024-01-01T00:00:00Z",
        })
        .to_string(),
    );
    deliver(&server, &done).await;
    let events = within(stream.rest()).await;
    assert_eq!(kinds(&events), pairs(&[("1", "saved"), ("2", "completed")]));
    assert_eq!(
        events[0].json()["url"],
        "https://app.example/images/p-saved.png"
    );
}

#[actix_rt::test]
async fn server_code_subscribes_as_a_stream() {
    let (server, live) = serve(LiveOptions::new());
    let id = "p-stream";
    let mut events = Box::pin(live.subscribe(id, None).await.unwrap());
    deliver(&server, &body(id, "starting", &Value::Null, "")).await;
    deliver(&server, &body(id, "canceled", &Value::Null, "")).await;
    let got: Vec<_> = within(async {
        let mut got = Vec::new();
        while let Some(e) = events.next().await {
            got.push((e.seq, e.event));
        }
        got
    })
    .await;
    assert_eq!(
        got,
        vec![(1, "start".to_owned()), (2, "completed".to_owned())]
    );
}

#[actix_rt::test]
async fn deliveries_of_unhandled_failures_are_not_published() {
    let (server, live) = serve(LiveOptions::new());
    let id = "p-unsigned";
    let mut stream = subscribe(&server, &live, id, None).await;
    // A forged delivery (wrong key) is refused with 401 and publishes nothing.
    let forged = body(id, "succeeded", &json!("forged"), "").sign_with_wrong_key();
    assert_eq!(server.deliver(&forged).await.0, 401);
    deliver(&server, &body(id, "failed", &Value::Null, "")).await;
    let events = within(stream.rest()).await;
    assert_eq!(kinds(&events), pairs(&[("1", "completed")]));
    assert_eq!(events[0].json()["status"], "failed");
}

#[test]
fn debug_output_hides_the_token_key() {
    let options = LiveOptions::new().token_key(b"a very secret key of the app");
    let config = WebhookConfig::new(secret()).live(options.clone()).unwrap();
    let shown = format!("{options:?} {config:?}");
    assert!(!shown.contains("very secret"), "{shown}");
    assert!(shown.contains("<redacted>"), "{shown}");
}

/// The same, in inbox mode: the worker's handler takes `Live` too.
#[replicate_webhook(model = "acme/inbox-saver", events = ["completed"])]
mod inbox_saver {
    use replicate_webhook::live::Live;
    use replicate_webhook::{HandlerError, Prediction};

    async fn on_succeeded(p: Prediction, live: Live) -> Result<(), HandlerError> {
        live.publish(&p.id, "saved", &serde_json::json!({ "by": "worker" }))
            .await
            .map_err(HandlerError::permanent)?;
        Ok(())
    }
}

#[actix_rt::test]
async fn inbox_workers_publish_through_the_same_channel() {
    let db = replicate_webhook_tests::inbox::Db::sqlite();
    let url = replicate_webhook::dedupe::StoreUrl::parse(&db.url()).unwrap();
    let config = WebhookConfig::new(secret())
        .store_url(&url)
        .unwrap()
        .inbox(replicate_webhook::inbox::Inbox::open(&url).unwrap())
        .inbox_every_module(true)
        .inbox_options(replicate_webhook_tests::inbox::fast_options())
        .live(LiveOptions::new())
        .unwrap();
    let live = config.live_channel().unwrap();
    let server = TestServer::serve(config);
    let id = "p-inbox-saved";
    let mut first = Box::pin(live.subscribe(id, None).await.unwrap());
    let done = TestDelivery::new(
        json!({
            "id": id, "model": "acme/inbox-saver", "version": "v", "status": "succeeded",
            "input": {}, "output": "x", "logs": "", "error": null,
            "created_at": "2024-01-01T00:00:00Z",
        })
        .to_string(),
    );
    deliver(&server, &done).await;
    // Published when stored: the stream ends with the terminal event.
    let completed = within(first.next()).await.unwrap();
    assert_eq!((completed.seq, completed.event.as_str()), (1, "completed"));
    assert!(within(first.next()).await.is_none());
    // The worker's event follows; a subscriber resuming after the terminal event gets it.
    let saved = within(async {
        loop {
            let mut resumed = Box::pin(live.subscribe(id, Some(1)).await.unwrap());
            if let Some(event) = resumed.next().await {
                break event;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert_eq!((saved.seq, saved.event.as_str()), (2, "saved"));
    assert_eq!(saved.data, r#"{"by":"worker"}"#);
}
