//! The client against the simulator, and the simulator's deliveries into a receiver built with
//! `replicate_webhook::Module`, all over loopback with the real binary.

mod common;

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{Arrival, HELLO_WORLD_VERSION, Receiver, Runs, SECRET, Simulator, Stub};
use replicate_webhook::client::{Client, ClientError, CreatePrediction, RetryPolicy};
use replicate_webhook::{
    Event, HandlerError, HandlerKind, Module, Prediction, Secret, Status, Url, WebhookConfig,
    WebhookSpec,
};
use replicate_webhook_cli::simulator::DeliveryRecord;
use serde_json::json;

const SPEC: WebhookSpec = WebhookSpec {
    model: "replicate/hello-world",
    path: "/webhooks/replicate",
    events: &[Event::Start, Event::Output, Event::Completed],
};

const FAST: &[&str] = &["--start-delay", "50ms", "--steps", "2", "--step", "100ms"];

fn fast_retries() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 4,
        initial_delay: Duration::from_millis(10),
        max_delay: Duration::from_millis(100),
        ..RetryPolicy::default()
    }
}

fn client(sim: &Simulator, token: &str) -> Client {
    Client::new(&sim.api, Some(token.to_owned()))
        .unwrap()
        .retry_policy(fast_retries())
}

fn hello() -> serde_json::Value {
    json!({"text": "Alice"})
}

#[actix_rt::test]
async fn client_creates_reads_lists_and_cancels() {
    let mut args = vec!["--secret", SECRET, "--token", "r8_test", "--page-size", "2"];
    args.extend_from_slice(FAST);
    let sim = Simulator::start(&args);
    let client = client(&sim, "r8_test");

    // By official model, waiting for the result.
    let done = client
        .create(&CreatePrediction::model("replicate/hello-world", hello()).wait(Some(10)))
        .await
        .unwrap();
    assert_eq!(done.status, Status::Succeeded);
    assert_eq!(done.output, Some(json!("hello Alice")));
    assert_eq!(done.model, "replicate/hello-world");
    assert!(done.metrics.predict_time.is_some());

    // By version id and by owner/name:version.
    let by_id = client
        .create(&CreatePrediction::version(HELLO_WORLD_VERSION, hello()))
        .await
        .unwrap();
    assert_eq!(by_id.version, HELLO_WORLD_VERSION);
    assert_eq!(by_id.status, Status::Starting);
    let by_slug = client
        .create(&CreatePrediction::version(
            format!("replicate/hello-world:{HELLO_WORLD_VERSION}"),
            hello(),
        ))
        .await
        .unwrap();
    assert_eq!(by_slug.model, "replicate/hello-world");

    // By deployment.
    let deployed = client
        .create(&CreatePrediction::deployment("acme/greeter", hello()))
        .await
        .unwrap();
    assert_eq!(deployed.deployment.as_deref(), Some("acme/greeter"));

    // Typed errors with Replicate's message.
    let err = client
        .create(&CreatePrediction::version("0".repeat(64), hello()))
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(422), "{err}");
    assert!(err.to_string().contains("version does not exist"), "{err}");
    let err = client.get("doesnotexist").await.unwrap_err();
    assert!(
        matches!(err, ClientError::Api { status: 404, .. }),
        "{err:?}"
    );
    let err = Client::new(&sim.api, Some("r8_wrong".into()))
        .unwrap()
        .default_secret()
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(401));
    assert!(!format!("{err} {err:?}").contains("r8_wrong"));

    // Get.
    let again = client.get(&by_id.id).await.unwrap();
    assert_eq!(again.id, by_id.id);
    let typed = client
        .get_as::<String, serde_json::Value>(&done.id)
        .await
        .unwrap();
    assert_eq!(typed.output.as_deref(), Some("hello Alice"));

    // List, newest first, over pages of two.
    let first = client.list().await.unwrap();
    assert_eq!(first.results.len(), 2);
    assert_eq!(first.results[0].id, deployed.id);
    assert!(first.next.is_some());
    let all = client.list_all(10).await.unwrap();
    let ids: Vec<&str> = all.iter().map(|p| p.id.as_str()).collect();
    assert_eq!(ids, [&deployed.id, &by_slug.id, &by_id.id, &done.id]);

    // A `next` URL on another origin (here another local server, same host, other port) is
    // refused before any request: the token never leaves the API's origin.
    let elsewhere = Stub::start(|_| {
        actix_web::HttpResponse::Ok()
            .content_type("application/json")
            .body(r#"{"results": [], "next": null, "previous": null}"#)
    });
    let err = client
        .list_page(&format!("{}/v1/predictions?cursor=abc", elsewhere.root))
        .await
        .unwrap_err();
    assert!(matches!(err, ClientError::InvalidUrl(_)), "{err:?}");
    assert!(err.to_string().contains("not on the API origin"), "{err}");
    assert!(!format!("{err} {err:?}").contains("r8_test"), "{err:?}");
    // The other server is up (this request reaches it), and it never saw the client's.
    let probe = reqwest::get(format!("{}/probe", elsewhere.root))
        .await
        .unwrap();
    assert_eq!(probe.status(), 200);
    let seen = elsewhere.requests();
    assert_eq!(
        seen.iter()
            .map(|r| r.path_and_query.as_str())
            .collect::<Vec<_>>(),
        ["/probe"],
        "{seen:#?}"
    );
    assert!(seen.iter().all(|r| r.authorization.is_none()), "{seen:#?}");
    elsewhere.stop().await;

    // Secret and schemas.
    let secret = client.default_secret().await.unwrap();
    assert_eq!(secret.expose(), Secret::parse(SECRET).unwrap().expose());
    let schema = client.model_schema("replicate/hello-world").await.unwrap();
    assert_eq!(
        schema["components"]["schemas"]["Output"],
        json!({"type": "string", "title": "Output"})
    );
    let version = client
        .version("replicate/hello-world", HELLO_WORLD_VERSION)
        .await
        .unwrap();
    assert_eq!(version.id, HELLO_WORLD_VERSION);
    assert_eq!(version.openapi_schema, schema);
    let err = client.model_schema("acme/unknown").await.unwrap_err();
    assert_eq!(err.status(), Some(404));
}

#[actix_rt::test]
async fn cancel_and_cancel_after() {
    let sim = Simulator::start(&["--start-delay", "50ms", "--step", "10s"]);
    let client = client(&sim, "any");
    let running = client
        .create(&CreatePrediction::model("replicate/hello-world", hello()))
        .await
        .unwrap();
    let canceled = client.cancel(&running.id).await.unwrap();
    assert_eq!(canceled.status, Status::Canceled);
    assert!(canceled.completed_at.is_some());
    // Canceling again is harmless.
    assert_eq!(
        client.cancel(&running.id).await.unwrap().status,
        Status::Canceled
    );

    let deadline = client
        .create(
            &CreatePrediction::model("replicate/hello-world", hello()).cancel_after_text("300ms"),
        )
        .await
        .unwrap();
    assert!(deadline.deadline.is_some());
    // Without the deadline it would process for 30 s (three 10 s steps): poll until it ends.
    let until = Instant::now() + Duration::from_secs(10);
    let ended = loop {
        let now = client.get(&deadline.id).await.unwrap();
        if now.status.is_terminal() {
            break now;
        }
        assert!(Instant::now() < until, "still {} after 10 s", now.status);
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(ended.status, Status::Canceled);
    assert!(ended.completed_at.is_some());
}

#[actix_rt::test]
async fn client_retries_429_and_5xx_with_backoff() {
    let sim = Simulator::start(&["--api-errors", "429,503,503,0,500,502"]);
    let client = client(&sim, "any");
    // 429 (Retry-After: 0), 503, 503, then the answer: four attempts, the two 503s after
    // backoffs of 20 ms and 40 ms (retries 2 and 3 of an initial 10 ms delay, doubled).
    let started = Instant::now();
    let secret = client.default_secret().await;
    let took = started.elapsed();
    assert!(secret.is_ok(), "{secret:?}");
    assert!(took >= Duration::from_millis(60), "no backoff: {took:?}");
    // Creates opt out of 5xx retries: the answer may have been lost after creating.
    let cautious = client.clone().retry_policy(RetryPolicy {
        retry_creates_on_server_error: false,
        ..fast_retries()
    });
    let err = cautious
        .create(&CreatePrediction::model("replicate/hello-world", hello()))
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(500));
    let once = client.clone().retry_policy(RetryPolicy::none());
    assert_eq!(once.list().await.unwrap_err().status(), Some(502));
    assert!(once.list().await.is_ok());

    // By default a create is retried on 5xx like every other call.
    let sim = Simulator::start(&["--api-errors", "503,500"]);
    let created = self::client(&sim, "any")
        .create(&CreatePrediction::model("replicate/hello-world", hello()))
        .await;
    assert!(created.is_ok(), "{created:?}");
}

#[actix_rt::test]
async fn bad_json_is_an_error_not_a_panic() {
    use actix_web::{App, HttpResponse, web};
    let (root, handle) = common::serve!(|| {
        App::new()
            .route(
                "/v1/predictions/text",
                web::get().to(|| async { HttpResponse::Ok().body("not json") }),
            )
            .route(
                "/v1/predictions/wrong",
                web::get().to(|| async { HttpResponse::Ok().body(r#"{"id": 5, "status": []}"#) }),
            )
            .route(
                "/v1/webhooks/default/secret",
                web::get().to(|| async { HttpResponse::Ok().body("{}") }),
            )
            .route(
                "/v1/predictions/html",
                web::get()
                    .to(|| async { HttpResponse::BadGateway().body("<html>bad gateway</html>") }),
            )
    });
    let client = Client::new(&format!("{root}/v1"), Some("t".into()))
        .unwrap()
        .retry_policy(RetryPolicy::none());
    for id in ["text", "wrong"] {
        let err = client.get(id).await.unwrap_err();
        assert!(matches!(err, ClientError::Decode(_)), "{err:?}");
    }
    let err = client.default_secret().await.unwrap_err();
    assert!(matches!(err, ClientError::Secret(_)), "{err:?}");
    let err = client.get("html").await.unwrap_err();
    assert_eq!(err.status(), Some(502));
    assert!(err.to_string().contains("bad gateway"), "{err}");
    handle.stop(false).await;
}

/// The attempt log's `sent_at_ms` is when the request went out, not when the receiver answered:
/// a slow answer to one `output` webhook must not make the next look throttled too little.
#[actix_rt::test]
async fn a_slow_receiver_does_not_shift_the_send_times() {
    use actix_web::{App, HttpResponse, web};
    let seen = Arc::new(AtomicU32::new(0));
    let (root, handle) = common::serve!(move || {
        let seen = seen.clone();
        App::new().route(
            "/hook",
            web::post().to(move |body: web::Bytes| {
                let seen = seen.clone();
                async move {
                    let processing = body.windows(12).any(|w| w == b"\"processing\"");
                    if processing && seen.fetch_add(1, Ordering::SeqCst) == 0 {
                        actix_web::rt::time::sleep(Duration::from_millis(450)).await;
                    }
                    HttpResponse::Ok().finish()
                }
            }),
        )
    });
    let sim = Simulator::start(&["--start-delay", "50ms", "--steps", "4", "--step", "250ms"]);
    let url = Url::parse(&format!("{root}/hook")).unwrap();
    let created = client(&sim, "any")
        .create(
            &CreatePrediction::model("replicate/hello-world", hello())
                .webhook(url, [Event::Output, Event::Completed]),
        )
        .await
        .unwrap();
    let records = sim.wait_for(&created.id, completed_delivered).await;
    let outputs = first_attempts(&records, "output");
    assert!(outputs.len() >= 2, "{outputs:#?}");
    for pair in outputs.windows(2) {
        assert!(
            pair[1].sent_at_ms - pair[0].sent_at_ms >= 500,
            "{outputs:#?}"
        );
    }
    handle.stop(false).await;
}

#[actix_rt::test]
async fn webhooks_must_be_http_urls() {
    let sim = Simulator::start(FAST);
    let client = client(&sim, "any");
    for url in [
        "ftp://127.0.0.1/hook",
        "htp://127.0.0.1/hook",
        "file:///tmp/hook",
    ] {
        let err = client
            .create(
                &CreatePrediction::model("replicate/hello-world", hello())
                    .webhook(Url::parse(url).unwrap(), [Event::Completed]),
            )
            .await
            .unwrap_err();
        assert_eq!(err.status(), Some(422), "{url}: {err}");
        assert!(err.to_string().contains("Invalid webhook URL"), "{err}");
    }
}

fn first_attempts<'a>(records: &'a [DeliveryRecord], event: &str) -> Vec<&'a DeliveryRecord> {
    records
        .iter()
        .filter(|r| r.event == event && r.attempt == 1 && !r.duplicate)
        .collect()
}

fn completed_delivered(records: &[DeliveryRecord]) -> bool {
    records
        .iter()
        .any(|r| r.event == "completed" && r.outcome == "delivered")
}

fn recording_module(runs: &Runs) -> Module {
    let mut module = Module::new("*").events(Event::ALL);
    for kind in [
        HandlerKind::Start,
        HandlerKind::Output,
        HandlerKind::Logs,
        HandlerKind::Succeeded,
        HandlerKind::Failed,
        HandlerKind::Canceled,
    ] {
        let runs = runs.clone();
        module = module.on(kind, move |p: Prediction| {
            let runs = runs.clone();
            async move {
                runs.lock()
                    .unwrap()
                    .push((format!("{kind:?}"), p.id, p.status.to_string()));
                Ok::<(), HandlerError>(())
            }
        });
    }
    module
}

fn config() -> WebhookConfig {
    WebhookConfig::new(Secret::parse(SECRET).unwrap()).collect_registered(false)
}

#[actix_rt::test]
async fn deliveries_are_filtered_throttled_signed_and_keep_the_query() {
    let runs: Runs = Arc::default();
    let receiver = Receiver::start(config().module(recording_module(&runs)));
    let sim = Simulator::start(&[
        "--secret",
        SECRET,
        "--start-delay",
        "100ms",
        "--steps",
        "6",
        "--step",
        "150ms",
    ]);
    let base = Url::parse(&format!("{}/?customId=42", receiver.root)).unwrap();
    let client = client(&sim, "any").webhook_base(base);
    let created = client
        .create(&CreatePrediction::model("replicate/hello-world", hello()).webhook_spec(&SPEC))
        .await
        .unwrap();
    assert_eq!(
        created.webhook.as_deref(),
        Some(format!("{}/webhooks/replicate?customId=42", receiver.root).as_str())
    );
    let records = sim.wait_for(&created.id, completed_delivered).await;

    // Only the requested events.
    assert!(records.iter().all(|r| r.event != "logs"), "{records:#?}");
    assert_eq!(first_attempts(&records, "start").len(), 1);
    assert_eq!(first_attempts(&records, "completed").len(), 1);
    // Six output steps 150 ms apart (900 ms), throttled to one per 500 ms: at least two
    // deliveries (so the spacing below is checked), fewer than six.
    let outputs = first_attempts(&records, "output");
    assert!((2..6).contains(&outputs.len()), "{outputs:#?}");
    for pair in outputs.windows(2) {
        assert!(
            pair[1].sent_at_ms - pair[0].sent_at_ms >= 500,
            "{outputs:#?}"
        );
    }
    // Every delivery went to the URL as given, was verified (no 401) and answered 200.
    let arrivals = receiver.arrivals();
    assert_eq!(arrivals.len(), records.len());
    for arrival in &arrivals {
        assert_eq!(arrival.path_and_query, "/webhooks/replicate?customId=42");
        assert_eq!(arrival.status, 200, "{arrival:?}");
    }
    let intermediate: Vec<_> = arrivals
        .iter()
        .filter(|a| outputs.iter().any(|o| o.webhook_id == a.webhook_id))
        .collect();
    assert_eq!(intermediate.len(), outputs.len(), "{intermediate:#?}");
    // Sent >= 500 ms apart (checked above); allow for loopback jitter on arrival.
    for pair in intermediate.windows(2) {
        assert!(
            pair[1].at - pair[0].at >= Duration::from_millis(350),
            "{intermediate:#?}"
        );
    }
    // The handlers saw start, output(s) and the final state.
    let runs = runs.lock().unwrap().clone();
    assert_eq!(runs.first().unwrap().0, "Start");
    assert_eq!(runs.last().unwrap().0, "Succeeded");
    let done = client.get(&created.id).await.unwrap();
    assert_eq!(done.output, Some(json!("hello Alice")));
    receiver.stop().await;
}

/// Adds an `on_succeeded` that fails (retryably) twice, then succeeds; `runs` counts its runs.
fn succeeded_on_the_third_attempt(module: Module, runs: &Arc<AtomicU32>) -> Module {
    let counted = runs.clone();
    module.on(HandlerKind::Succeeded, move |_: Prediction| {
        let counted = counted.clone();
        async move {
            if counted.fetch_add(1, Ordering::SeqCst) < 2 {
                Err(HandlerError::retry("not yet"))
            } else {
                Ok(())
            }
        }
    })
}

/// Each arrival after the first has a later `webhook-timestamp` and another signature.
fn assert_own_timestamps_and_signatures(arrivals: &[&Arrival]) {
    for pair in arrivals.windows(2) {
        let (before, after): (i64, i64) = (
            pair[0].timestamp.parse().unwrap(),
            pair[1].timestamp.parse().unwrap(),
        );
        assert!(after > before, "{arrivals:#?}");
        assert_ne!(pair[1].signature, pair[0].signature, "{arrivals:#?}");
    }
}

#[actix_rt::test]
async fn only_the_terminal_webhook_is_retried_with_the_same_id() {
    let failures = Arc::new(AtomicU32::new(0));
    let module = Module::new("*")
        .events(Event::ALL)
        .on(HandlerKind::Start, |_: Prediction| async {
            Err::<(), _>(HandlerError::retry("start handler down"))
        })
        .on(HandlerKind::Output, |_: Prediction| async {
            Err::<(), _>(HandlerError::retry("output handler down"))
        });
    let module = succeeded_on_the_third_attempt(module, &failures);
    let receiver = Receiver::start(config().module(module));
    let mut args = vec![
        "--secret",
        SECRET,
        "--retry-schedule",
        "1100ms,1100ms,1100ms,1100ms",
    ];
    args.extend_from_slice(FAST);
    let sim = Simulator::start(&args);
    let url = Url::parse(&format!("{}/webhooks/replicate", receiver.root)).unwrap();
    let created = client(&sim, "any")
        .create(
            &CreatePrediction::model("replicate/hello-world", hello())
                .webhook(url, [Event::Start, Event::Output, Event::Completed]),
        )
        .await
        .unwrap();
    let records = sim.wait_for(&created.id, completed_delivered).await;

    for event in ["start", "output"] {
        let attempts: Vec<_> = records.iter().filter(|r| r.event == event).collect();
        assert!(!attempts.is_empty());
        assert!(
            attempts
                .iter()
                .all(|r| r.attempt == 1 && r.response_status == Some(500)),
            "{event} must never be retried: {attempts:#?}"
        );
    }
    let completed: Vec<_> = records.iter().filter(|r| r.event == "completed").collect();
    assert_eq!(completed.len(), 3, "{completed:#?}");
    assert!(
        completed
            .iter()
            .all(|r| r.webhook_id == completed[0].webhook_id)
    );
    assert_eq!(
        completed
            .iter()
            .map(|r| r.response_status)
            .collect::<Vec<_>>(),
        [Some(500), Some(500), Some(200)]
    );
    for pair in completed.windows(2) {
        assert!(pair[1].timestamp > pair[0].timestamp, "{completed:#?}");
        assert_ne!(pair[1].signature, pair[0].signature);
    }
    assert_eq!(failures.load(Ordering::SeqCst), 3);
    // What the receiver got: three requests under the one webhook-id, each with its own later
    // timestamp and its own signature, each verified (the handler ran each time, no 401).
    let arrivals = receiver.arrivals();
    assert!(arrivals.iter().all(|a| a.status != 401), "{arrivals:#?}");
    let got: Vec<_> = arrivals
        .iter()
        .filter(|a| a.webhook_id == completed[0].webhook_id)
        .collect();
    assert_eq!(
        got.iter().map(|a| a.status).collect::<Vec<_>>(),
        [500, 500, 200],
        "{got:#?}"
    );
    assert_own_timestamps_and_signatures(&got);
    receiver.stop().await;
}

#[actix_rt::test]
async fn unreachable_receivers_are_given_up_and_the_prediction_stays_readable() {
    let mut args = vec!["--retry-schedule", "50ms,100ms", "--outcome", "failed"];
    args.extend_from_slice(FAST);
    let sim = Simulator::start_verbose(&args);
    // Nothing listens on this port once the listener is dropped.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = Url::parse(&format!("http://127.0.0.1:{port}/hook")).unwrap();
    let client = client(&sim, "any");
    let created = client
        .create(
            &CreatePrediction::model("replicate/hello-world", hello())
                .webhook(url, [Event::Completed]),
        )
        .await
        .unwrap();
    let records = sim
        .wait_for(&created.id, |r| {
            r.iter().filter(|r| r.event == "completed").count() == 3
        })
        .await;
    assert!(
        records
            .iter()
            .all(|r| r.outcome == "failed" && r.error.is_some())
    );
    // Retries sooner than a second apart still get their own timestamp and signature.
    assert!(
        records
            .iter()
            .all(|r| r.webhook_id == records[0].webhook_id)
    );
    for pair in records.windows(2) {
        assert!(pair[1].timestamp > pair[0].timestamp, "{records:#?}");
        assert_ne!(pair[1].signature, pair[0].signature);
    }
    // The simulator says when it stops retrying; after that, the log still has three attempts.
    sim.wait_for_stderr(&[
        "gave up on completed webhook",
        &created.id,
        "after 3 attempts",
    ])
    .await;
    assert_eq!(
        sim.deliveries(&created.id).await.len(),
        3,
        "no fourth attempt"
    );
    let failed = client.get(&created.id).await.unwrap();
    assert_eq!(failed.status, Status::Failed);
    assert!(failed.error.is_some());
}

#[actix_rt::test]
async fn faults_duplicate_drop_reorder_and_delay() {
    let runs: Runs = Arc::default();
    let receiver = Receiver::start(config().module(recording_module(&runs)));
    let sim = Simulator::start(&[
        "--secret",
        SECRET,
        "--start-delay",
        "50ms",
        "--steps",
        "3",
        "--step",
        "550ms",
        "--duplicate",
        "completed",
        "--drop",
        "start",
        "--reorder",
        "--delay",
        "200ms",
    ]);
    let url = Url::parse(&format!("{}/webhooks/replicate", receiver.root)).unwrap();
    let created = client(&sim, "any")
        .create(
            &CreatePrediction::model("replicate/hello-world", hello())
                .webhook(url, [Event::Start, Event::Output, Event::Completed]),
        )
        .await
        .unwrap();
    let records = sim
        .wait_for(&created.id, |r| {
            r.iter().filter(|r| r.event == "completed").count() == 2
                && r.iter().filter(|r| r.event == "output").count() == 3
        })
        .await;
    // Dropped: recorded, never sent.
    let start: Vec<_> = records.iter().filter(|r| r.event == "start").collect();
    assert_eq!(start.len(), 1);
    assert_eq!(start[0].outcome, "dropped");
    assert!(
        receiver
            .arrivals()
            .iter()
            .all(|a| a.webhook_id != start[0].webhook_id)
    );
    // Duplicated: the same webhook-id twice; the receiver runs on_succeeded once.
    let completed: Vec<_> = records.iter().filter(|r| r.event == "completed").collect();
    assert_eq!(completed[0].webhook_id, completed[1].webhook_id);
    assert!(completed[1].duplicate);
    // Reordered: an older intermediate state arrives after the terminal one.
    let completed_at = records.iter().position(|r| r.event == "completed").unwrap();
    assert!(
        records[completed_at..].iter().any(|r| r.event == "output"),
        "{records:#?}"
    );
    let succeeded = runs
        .lock()
        .unwrap()
        .iter()
        .filter(|(kind, _, _)| kind == "Succeeded")
        .count();
    assert_eq!(succeeded, 1);
    // Delayed: the terminal delivery leaves no sooner than the delay after the prediction
    // completed (without `--delay` it leaves at once; the scripted steps do not hide that, as
    // they would for a delay measured from creation).
    let completed_at = client(&sim, "any")
        .get(&created.id)
        .await
        .unwrap()
        .completed_at
        .expect("a completed prediction says when");
    let completed_ms = completed_at.unix_timestamp_nanos() / 1_000_000;
    let first_sent = completed.iter().map(|r| r.sent_at_ms).min().unwrap();
    assert!(
        i128::from(first_sent) - completed_ms >= 200,
        "sent {} ms after completion: {records:#?}",
        i128::from(first_sent) - completed_ms
    );
    receiver.stop().await;
}

#[actix_rt::test]
async fn predictions_create_command_walks_through_the_quickstart() {
    let runs: Runs = Arc::default();
    let receiver = Receiver::start(config().module(recording_module(&runs)));
    let mut args = vec!["--secret", SECRET];
    args.extend_from_slice(FAST);
    let sim = Simulator::start(&args);
    let api = sim.api.clone();
    let webhook = format!("{}/webhooks/replicate", receiver.root);
    let out = actix_web::rt::task::spawn_blocking(move || {
        common::bin()
            .args([
                "predictions",
                "create",
                "--api",
                &api,
                "--model",
                "replicate/hello-world",
                "--webhook",
                &webhook,
                "--events",
                "start,output,completed",
                "--input",
                "text=Alice",
                "--follow",
            ])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let prediction: Prediction<String> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(prediction.status, Status::Succeeded);
    assert_eq!(prediction.output.as_deref(), Some("hello Alice"));
    sim.wait_for(&prediction.id, completed_delivered).await;
    let kinds: Vec<String> = runs.lock().unwrap().iter().map(|r| r.0.clone()).collect();
    assert_eq!(kinds.first().map(String::as_str), Some("Start"));
    assert!(kinds.iter().any(|k| k == "Output"), "{kinds:?}");
    assert_eq!(kinds.last().map(String::as_str), Some("Succeeded"));

    // `secret` and `schema pull` / `schema check` against the same simulator.
    let api = sim.api.clone();
    let dir = std::env::temp_dir().join(format!("rw-schemas-{}", std::process::id()));
    let (secret, pull, check) = actix_web::rt::task::spawn_blocking(move || {
        let secret = common::bin()
            .args(["secret", "--api", &api])
            .output()
            .unwrap();
        let pull = common::bin()
            .args(["schema", "pull", "replicate/hello-world", "--out"])
            .arg(&dir)
            .args(["--api", &api])
            .output()
            .unwrap();
        let check_ok = common::bin()
            .args(["schema", "check"])
            .arg(&dir)
            .args(["--api", &api])
            .output()
            .unwrap();
        let file = dir.join("replicate/hello-world.json");
        let mut schema: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
        schema["components"]["schemas"]["Output"]["type"] = json!("array");
        std::fs::write(&file, serde_json::to_vec(&schema).unwrap()).unwrap();
        let check_drift = common::bin()
            .args(["schema", "check"])
            .arg(&dir)
            .args(["--api", &api])
            .output()
            .unwrap();
        let _ = std::fs::remove_dir_all(&dir);
        (secret, pull, (check_ok, check_drift))
    })
    .await
    .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&secret.stdout).trim(),
        Secret::parse(SECRET).unwrap().expose()
    );
    assert!(
        pull.status.success(),
        "{}",
        String::from_utf8_lossy(&pull.stderr)
    );
    assert!(
        String::from_utf8_lossy(&pull.stdout)
            .trim()
            .ends_with("replicate/hello-world.json")
    );
    assert_eq!(
        check.0.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&check.0.stderr)
    );
    assert_eq!(check.1.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&check.1.stdout).contains("drift replicate/hello-world"));
    receiver.stop().await;
}

#[actix_rt::test]
async fn schemas_from_a_directory_shape_the_output() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../fixtures/schemas");
    let mut args = vec!["--schemas", dir];
    args.extend_from_slice(FAST);
    let sim = Simulator::start(&args);
    let client = client(&sim, "any");
    let model = "black-forest-labs/flux-schnell";
    let schema = client.model_schema(model).await.unwrap();
    let pinned: serde_json::Value = serde_json::from_slice(
        &std::fs::read(format!("{dir}/black-forest-labs__flux-schnell.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(schema, pinned);
    let version = client.version(model, &"0".repeat(64)).await.unwrap_err();
    assert_eq!(version.status(), Some(404));
    let done = client
        .create(&CreatePrediction::model(model, json!({"prompt": "a cat"})).wait(Some(10)))
        .await
        .unwrap();
    let output = done.output.unwrap();
    let urls = output.as_array().unwrap();
    assert_eq!(urls.len(), 2);
    assert!(urls[0].as_str().unwrap().starts_with("https://"));
}

#[actix_rt::test]
async fn a_generated_secret_is_printed_and_served() {
    let sim = Simulator::start(&[]);
    let printed = sim
        .generated_secret
        .clone()
        .expect("a generated secret is printed");
    let printed = Secret::parse(&printed).unwrap();
    let served = client(&sim, "any").default_secret().await.unwrap();
    assert_eq!(served.expose(), printed.expose());
    let given = Simulator::start(&["--secret", SECRET]);
    assert!(
        given.generated_secret.is_none(),
        "a given secret is never printed"
    );
    let served = client(&given, "any").default_secret().await.unwrap();
    assert_eq!(served.expose(), Secret::parse(SECRET).unwrap().expose());
    // Two simulators without --secret do not share one.
    let other = Simulator::start(&[]);
    assert_ne!(
        other.generated_secret.as_deref(),
        sim.generated_secret.as_deref()
    );
}

/// Records every `on_logs` / `on_output` / `on_succeeded` run with the number of steps in the
/// delivered body's logs (each processing step adds a `step k/n` line).
fn step_recording_module(runs: &Arc<Mutex<Vec<(String, usize)>>>) -> Module {
    let mut module = Module::new("*").events(Event::ALL);
    for kind in [
        HandlerKind::Output,
        HandlerKind::Logs,
        HandlerKind::Succeeded,
    ] {
        let runs = runs.clone();
        module = module.on(kind, move |p: Prediction| {
            let runs = runs.clone();
            async move {
                let steps = p
                    .logs
                    .unwrap_or_default()
                    .lines()
                    .filter(|l| l.starts_with("step "))
                    .count();
                runs.lock().unwrap().push((format!("{kind:?}"), steps));
                Ok::<(), HandlerError>(())
            }
        });
    }
    module
}

/// One hello-world prediction run with the `script` flags, its webhooks for `events` going to a
/// receiver with [`step_recording_module`]: the simulator's log, the arrivals and the handler runs
/// once `completed` was delivered.
async fn run_into_step_receiver(
    script: &[&str],
    events: impl IntoIterator<Item = Event>,
) -> (Vec<DeliveryRecord>, Vec<Arrival>, Vec<(String, usize)>) {
    let runs = Arc::default();
    let receiver = Receiver::start(config().module(step_recording_module(&runs)));
    let mut args = vec!["--secret", SECRET];
    args.extend_from_slice(script);
    let sim = Simulator::start(&args);
    let url = Url::parse(&format!("{}/webhooks/replicate", receiver.root)).unwrap();
    let created = client(&sim, "any")
        .create(&CreatePrediction::model("replicate/hello-world", hello()).webhook(url, events))
        .await
        .unwrap();
    let records = sim.wait_for(&created.id, completed_delivered).await;
    let arrivals = receiver.arrivals();
    receiver.stop().await;
    let runs = runs.lock().unwrap().clone();
    (records, arrivals, runs)
}

fn intermediate_first_attempts(records: &[DeliveryRecord]) -> Vec<&DeliveryRecord> {
    let mut sent: Vec<_> = records
        .iter()
        .filter(|r| (r.event == "output" || r.event == "logs") && r.attempt == 1)
        .collect();
    sent.sort_by_key(|r| r.sent_at_ms);
    sent
}

#[actix_rt::test]
async fn logs_events_are_delivered_alone_when_only_logs_are_requested() {
    let (records, arrivals, runs) = run_into_step_receiver(
        &["--start-delay", "50ms", "--steps", "3", "--step", "300ms"],
        [Event::Logs, Event::Completed],
    )
    .await;

    // Every step changed the output too, but only `logs` was requested: each change goes out as
    // a `logs` delivery of the processing state, throttled to one per 500 ms.
    assert!(
        records
            .iter()
            .all(|r| r.event == "logs" || r.event == "completed"),
        "{records:#?}"
    );
    let logs = first_attempts(&records, "logs");
    assert!(logs.len() >= 2, "{logs:#?}");
    assert!(logs.iter().all(|r| r.status == "processing"), "{logs:#?}");
    for pair in logs.windows(2) {
        assert!(pair[1].sent_at_ms - pair[0].sent_at_ms >= 500, "{logs:#?}");
    }
    // Each reached the receiver, verified, and ran a handler once; the first carries only the
    // "Starting prediction" line (no output yet), so it is `logs` to the receiver too.
    assert_eq!(arrivals.len(), records.len(), "{arrivals:#?}");
    assert!(arrivals.iter().all(|a| a.status == 200), "{arrivals:#?}");
    assert_eq!(runs.len(), logs.len() + 1, "{runs:?}");
    assert_eq!(runs[0], ("Logs".to_owned(), 0), "{runs:?}");
    assert_eq!(
        runs.last().unwrap(),
        &("Succeeded".to_owned(), 3),
        "{runs:?}"
    );
}

#[actix_rt::test]
async fn output_and_logs_share_one_throttle_and_the_latest_state_wins() {
    let (records, _, runs) = run_into_step_receiver(
        &["--start-delay", "100ms", "--steps", "6", "--step", "150ms"],
        [Event::Output, Event::Logs, Event::Completed],
    )
    .await;

    // `logs` when processing starts, then `output` 150 ms later: one throttle for both, so the
    // output waits for the 500 ms to pass (separate throttles would send it at once).
    let sent = intermediate_first_attempts(&records);
    assert!(sent.len() >= 2, "{sent:#?}");
    assert_eq!(sent[0].event, "logs", "{sent:#?}");
    assert!(sent.iter().any(|r| r.event == "output"), "{sent:#?}");
    for pair in sent.windows(2) {
        assert!(pair[1].sent_at_ms - pair[0].sent_at_ms >= 500, "{sent:#?}");
    }

    // Latest state wins: the first output, triggered by step 1 and held back by the throttle,
    // carries the steps that happened while it waited (step 2 at +150 ms, before its +350 ms).
    let intermediate: Vec<_> = runs
        .iter()
        .filter(|(kind, _)| kind != "Succeeded")
        .collect();
    assert_eq!(intermediate.len(), sent.len(), "{runs:?}");
    assert_eq!(intermediate[0], &("Logs".to_owned(), 0), "{runs:?}");
    assert_eq!(intermediate[1].0, "Output", "{runs:?}");
    assert!(intermediate[1].1 >= 2, "an older state was sent: {runs:?}");
    // And no delivery carries an older state than the one before it.
    for pair in intermediate.windows(2) {
        assert!(pair[1].1 > pair[0].1, "{runs:?}");
    }
    assert_eq!(
        runs.last().unwrap(),
        &("Succeeded".to_owned(), 6),
        "{runs:?}"
    );
}

#[actix_rt::test]
async fn redirects_are_not_followed_and_count_as_failed_attempts() {
    let target = Stub::start(|_| actix_web::HttpResponse::Ok().finish());
    let location = format!("{}/moved", target.root);
    let redirector = Stub::start(move |_| {
        actix_web::HttpResponse::TemporaryRedirect()
            .insert_header(("location", location.clone()))
            .finish()
    });
    let mut args = vec!["--secret", SECRET, "--retry-schedule", "50ms"];
    args.extend_from_slice(FAST);
    let sim = Simulator::start_verbose(&args);
    let url = Url::parse(&format!("{}/hook", redirector.root)).unwrap();
    let created = client(&sim, "any")
        .create(
            &CreatePrediction::model("replicate/hello-world", hello())
                .webhook(url, [Event::Start, Event::Completed]),
        )
        .await
        .unwrap();
    sim.wait_for_stderr(&[
        "gave up on completed webhook",
        &created.id,
        "after 2 attempts",
    ])
    .await;
    let records = sim.deliveries(&created.id).await;
    // `start` once (never retried), `completed` twice (a redirect is a failed attempt).
    let events: Vec<_> = records.iter().map(|r| r.event.as_str()).collect();
    assert_eq!(events, ["start", "completed", "completed"], "{records:#?}");
    assert!(
        records
            .iter()
            .all(|r| r.response_status == Some(307) && r.outcome == "failed"),
        "{records:#?}"
    );
    assert_eq!(redirector.requests().len(), 3);
    assert!(
        redirector.requests().iter().all(|r| r.method == "POST"),
        "{:#?}",
        redirector.requests()
    );
    assert!(target.requests().is_empty(), "{:#?}", target.requests());
    redirector.stop().await;
    target.stop().await;
}

#[actix_rt::test]
async fn sub_second_retries_reach_the_receiver_with_their_own_timestamp_and_signature() {
    let failures = Arc::new(AtomicU32::new(0));
    let module = succeeded_on_the_third_attempt(Module::new("*"), &failures);
    let receiver = Receiver::start(config().module(module));
    let mut args = vec!["--secret", SECRET, "--retry-schedule", "50ms,50ms"];
    args.extend_from_slice(FAST);
    let sim = Simulator::start(&args);
    let url = Url::parse(&format!("{}/webhooks/replicate", receiver.root)).unwrap();
    let created = client(&sim, "any")
        .create(
            &CreatePrediction::model("replicate/hello-world", hello())
                .webhook(url, [Event::Completed]),
        )
        .await
        .unwrap();
    sim.wait_for(&created.id, completed_delivered).await;
    // Three requests within a fraction of a second, as the receiver saw them: one webhook-id,
    // three distinct increasing timestamps and signatures, each verified (500, 500, 200).
    let arrivals = receiver.arrivals();
    assert_eq!(
        arrivals.iter().map(|a| a.status).collect::<Vec<_>>(),
        [500, 500, 200],
        "{arrivals:#?}"
    );
    assert!(
        arrivals
            .iter()
            .all(|a| a.webhook_id == arrivals[0].webhook_id)
    );
    assert!(
        arrivals[2].at - arrivals[0].at < Duration::from_secs(1),
        "{arrivals:#?}"
    );
    assert_own_timestamps_and_signatures(&arrivals.iter().collect::<Vec<_>>());
    assert_eq!(failures.load(Ordering::SeqCst), 3);
    receiver.stop().await;
}
