//! The client against the simulator, and the simulator's deliveries into a receiver built with
//! `replicate_webhook::Module`, all over loopback with the real binary.

mod common;

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{HELLO_WORLD_VERSION, Receiver, Runs, SECRET, Simulator};
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
    assert!(
        client
            .list_page("http://example.com/v1/predictions")
            .await
            .is_err()
    );

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
    actix_web::rt::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(
        client.get(&deadline.id).await.unwrap().status,
        Status::Canceled
    );
}

#[actix_rt::test]
async fn client_retries_429_and_5xx_with_backoff() {
    let sim = Simulator::start(&["--api-errors", "429,503,503,0,500,502"]);
    let client = client(&sim, "any");
    // 429, 503, 503, then the answer: four attempts.
    let secret = client.default_secret().await;
    assert!(secret.is_ok(), "{secret:?}");
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
    use actix_web::{App, HttpResponse, HttpServer, web};
    let server = HttpServer::new(|| {
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
    })
    .workers(1)
    .disable_signals()
    .bind(("127.0.0.1", 0))
    .unwrap();
    let addr = server.addrs()[0];
    let server = server.run();
    let handle = server.handle();
    actix_web::rt::spawn(server);
    let client = Client::new(&format!("http://{addr}/v1"), Some("t".into()))
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
    use actix_web::{App, HttpResponse, HttpServer, web};
    let seen = Arc::new(AtomicU32::new(0));
    let server = HttpServer::new(move || {
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
    })
    .workers(1)
    .disable_signals()
    .bind(("127.0.0.1", 0))
    .unwrap();
    let addr = server.addrs()[0];
    let server = server.run();
    let handle = server.handle();
    actix_web::rt::spawn(server);
    let sim = Simulator::start(&["--start-delay", "50ms", "--steps", "4", "--step", "250ms"]);
    let url = Url::parse(&format!("http://{addr}/hook")).unwrap();
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
    // Six output steps 150 ms apart, throttled to one per 500 ms.
    let outputs = first_attempts(&records, "output");
    assert!(!outputs.is_empty() && outputs.len() < 6, "{outputs:#?}");
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

#[actix_rt::test]
async fn only_the_terminal_webhook_is_retried_with_the_same_id() {
    let failures = Arc::new(AtomicU32::new(0));
    let counted = failures.clone();
    let module = Module::new("*")
        .events(Event::ALL)
        .on(HandlerKind::Start, |_: Prediction| async {
            Err::<(), _>(HandlerError::retry("start handler down"))
        })
        .on(HandlerKind::Output, |_: Prediction| async {
            Err::<(), _>(HandlerError::retry("output handler down"))
        })
        .on(HandlerKind::Succeeded, move |_: Prediction| {
            let counted = counted.clone();
            async move {
                if counted.fetch_add(1, Ordering::SeqCst) < 2 {
                    Err(HandlerError::retry("not yet"))
                } else {
                    Ok(())
                }
            }
        });
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
    // Each attempt carried a valid signature: the receiver ran the handler each time.
    assert!(receiver.arrivals().iter().all(|a| a.status != 401));
    receiver.stop().await;
}

#[actix_rt::test]
async fn unreachable_receivers_are_given_up_and_the_prediction_stays_readable() {
    let mut args = vec!["--retry-schedule", "50ms,100ms", "--outcome", "failed"];
    args.extend_from_slice(FAST);
    let sim = Simulator::start(&args);
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
    actix_web::rt::time::sleep(Duration::from_millis(300)).await;
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
    // Delayed: nothing left before the delay.
    let created_ms = created.created_at.unwrap().unix_timestamp_nanos() / 1_000_000;
    let first_sent = records
        .iter()
        .filter(|r| r.outcome != "dropped")
        .map(|r| r.sent_at_ms)
        .min()
        .unwrap();
    assert!(i128::from(first_sent) - created_ms >= 200, "{records:#?}");
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

#[test]
fn a_generated_secret_is_printed_and_served() {
    let sim = Simulator::start(&[]);
    let printed = sim
        .generated_secret
        .clone()
        .expect("a generated secret is printed");
    assert!(Secret::parse(&printed).is_ok());
    let given = Simulator::start(&["--secret", SECRET]);
    assert!(
        given.generated_secret.is_none(),
        "a given secret is never printed"
    );
    let _ = Mutex::new(());
}
