//! Hostile and unlucky deliveries over real HTTP on 127.0.0.1: concurrency across workers,
//! bodies that are not predictions, broken framing, lease expiry, clock skew.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use replicate_webhook::signature::unix_now;
use replicate_webhook::testkit::{Signed, TestDelivery, new_prediction_id, sample_prediction};
use replicate_webhook::{
    DecodeError, Event, HandlerError, HandlerKind, Module, Prediction, Secret, WebhookConfig,
    configure,
};
use replicate_webhook_tests::raw::{self, RawRequest};
use replicate_webhook_tests::{TestServer, fails_once_then_succeeds, within};
use serde_json::json;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

const MODEL: &str = "acme/adversarial";

fn delivery(id: &str, status: &str, output: serde_json::Value) -> TestDelivery {
    TestDelivery::new(sample_prediction(id, MODEL, status, output).to_string())
}

fn config(secret: &Secret, module: Module) -> WebhookConfig {
    WebhookConfig::new(secret.clone())
        .collect_registered(false)
        .module(module)
}

/// Counts runs of `on_succeeded`.
fn counting_module(runs: &Arc<AtomicUsize>) -> Module {
    let runs = runs.clone();
    Module::new(MODEL).on(HandlerKind::Succeeded, move |_: Prediction| {
        runs.fetch_add(1, Ordering::SeqCst);
        async { Ok::<(), HandlerError>(()) }
    })
}

/// Counts runs of `on_succeeded`, each of which says it started and then waits until the
/// returned sender sends `true`.
fn gated_module(
    runs: &Arc<AtomicUsize>,
    started: &Arc<tokio::sync::Notify>,
) -> (Module, tokio::sync::watch::Sender<bool>) {
    let (open, gate) = tokio::sync::watch::channel(false);
    let (runs, started) = (runs.clone(), started.clone());
    let module = Module::new(MODEL).on(HandlerKind::Succeeded, move |_: Prediction| {
        runs.fetch_add(1, Ordering::SeqCst);
        started.notify_one();
        let mut gate = gate.clone();
        async move {
            gate.wait_for(|open| *open).await.expect("the gate is kept");
            Ok::<(), HandlerError>(())
        }
    });
    (module, open)
}

/// Posts every delivery at once; the statuses come on the receiver in the order answered.
fn spawn_all(base: &str, deliveries: Vec<Signed>) -> tokio::sync::mpsc::UnboundedReceiver<u16> {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    for d in deliveries {
        let (base, tx) = (base.to_owned(), tx.clone());
        actix_web::rt::spawn(async move {
            let _ = tx.send(post(&base, &d).await);
        });
    }
    rx
}

/// The next `n` statuses, each within the deadline of [`within`].
async fn next_statuses(rx: &mut tokio::sync::mpsc::UnboundedReceiver<u16>, n: usize) -> Vec<u16> {
    let mut statuses = Vec::new();
    for _ in 0..n {
        statuses.push(within(rx.recv()).await.expect("every request is answered"));
    }
    statuses
}

/// Several workers sharing one configuration.
fn start_workers(workers: usize, config: WebhookConfig) -> TestServer {
    TestServer::with_workers(workers, move || configure(config.clone()))
}

async fn post(base: &str, signed: &Signed) -> u16 {
    replicate_webhook_tests::post(base, signed).await.0
}

#[actix_web::test]
async fn concurrent_duplicates_across_workers_run_the_handler_once() {
    let secret = Secret::generate();
    let runs = Arc::new(AtomicUsize::new(0));
    let started = Arc::new(tokio::sync::Notify::new());
    let (module, open) = gated_module(&runs, &started);
    let srv = start_workers(4, config(&secret, module));
    let base = srv.base.clone();
    let signed = delivery(&new_prediction_id(), "succeeded", json!("x")).sign(&secret);

    let mut answers = spawn_all(&base, vec![signed.clone(); 24]);
    // One copy runs and waits at the gate; every other copy, whichever worker takes it, finds
    // the claim in flight.
    within(started.notified()).await;
    let statuses = next_statuses(&mut answers, 23).await;
    assert_eq!(statuses, [409; 23]);
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    open.send(true).unwrap();
    assert_eq!(next_statuses(&mut answers, 1).await, [200]);
    assert_eq!(post(&base, &signed).await, 200);
    assert_eq!(runs.load(Ordering::SeqCst), 1);
}

#[actix_web::test]
async fn one_result_under_many_webhook_ids_at_once_runs_once() {
    let secret = Secret::generate();
    let runs = Arc::new(AtomicUsize::new(0));
    let started = Arc::new(tokio::sync::Notify::new());
    let (module, open) = gated_module(&runs, &started);
    let srv = start_workers(4, config(&secret, module));
    let base = srv.base.clone();
    let body = sample_prediction(&new_prediction_id(), MODEL, "succeeded", json!("x")).to_string();
    let deliveries: Vec<_> = (0..16)
        .map(|_| TestDelivery::new(body.clone()).sign(&secret))
        .collect();

    let mut answers = spawn_all(&base, deliveries.clone());
    // The terminal claim is the prediction's, whatever the webhook-id: one run, fifteen 409s.
    within(started.notified()).await;
    assert_eq!(next_statuses(&mut answers, 15).await, [409; 15]);
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    open.send(true).unwrap();
    assert_eq!(next_statuses(&mut answers, 1).await, [200]);
    // Every 409 is retried by Replicate: all of them now get 200 without a second run.
    let mut retries = spawn_all(&base, deliveries);
    assert_eq!(next_statuses(&mut retries, 16).await, [200; 16]);
    assert_eq!(runs.load(Ordering::SeqCst), 1);
}

#[actix_web::test]
async fn an_output_retried_after_a_handler_error_is_still_an_output() {
    let secret = Secret::generate();
    let outputs = Arc::new(AtomicUsize::new(0));
    let logs = Arc::new(AtomicUsize::new(0));
    let (o, l) = (outputs.clone(), logs.clone());
    let module = Module::new(MODEL)
        .events([Event::Output, Event::Logs])
        .on(HandlerKind::Output, move |_: Prediction| {
            let n = o.fetch_add(1, Ordering::SeqCst);
            async move {
                if n == 0 {
                    Err(HandlerError::retry("database down"))
                } else {
                    Ok(())
                }
            }
        })
        .on(HandlerKind::Logs, move |_: Prediction| {
            l.fetch_add(1, Ordering::SeqCst);
            async { Ok::<(), HandlerError>(()) }
        });
    let srv = TestServer::start({
        let config = config(&secret, module);
        move || configure(config.clone())
    });
    let id = new_prediction_id();
    let first = delivery(&id, "processing", json!(["a"]));
    assert_eq!(srv.deliver(&first.sign(&secret)).await.0, 500);
    let retry = first.timestamp(unix_now() + 1).sign(&secret);
    assert_eq!(srv.deliver(&retry).await.0, 200);
    assert_eq!(
        (outputs.load(Ordering::SeqCst), logs.load(Ordering::SeqCst)),
        (2, 0)
    );
    // The output was acknowledged: the next delivery with the same output is logs.
    let next = delivery(&id, "processing", json!(["a"])).sign(&secret);
    assert_eq!(srv.deliver(&next).await.0, 200);
    assert_eq!(
        (outputs.load(Ordering::SeqCst), logs.load(Ordering::SeqCst)),
        (2, 1)
    );
}

#[actix_web::test]
async fn verified_bodies_that_are_not_predictions_get_400() {
    let secret = Secret::generate();
    let runs = Arc::new(AtomicUsize::new(0));
    let srv = TestServer::start({
        let config = config(&secret, counting_module(&runs));
        move || configure(config.clone())
    });
    let bodies: [&[u8]; 10] = [
        b"",
        b"   ",
        b"\xff\xfe{\"id\":\"x\"}",
        br#"{"id":"x","status":"succeeded","model":"acme/adversarial","logs":"\xff"}"#,
        br#""succeeded""#,
        b"42",
        b"null",
        br#"{"id":"x","status":5,"input":{}}"#,
        br#"{"id":"x","model":"acme/adversarial","input":{}}"#,
        br#"{"id":"x","status":"succeeded"} trailing"#,
    ];
    for body in bodies {
        let signed = TestDelivery::new(body).sign(&secret);
        let (status, text) = srv.deliver(&signed).await;
        assert_eq!(status, 400, "{}: {text}", String::from_utf8_lossy(body));
    }
    assert_eq!(runs.load(Ordering::SeqCst), 0);
    let ok = delivery(&new_prediction_id(), "succeeded", json!("x")).sign(&secret);
    assert_eq!(srv.deliver(&ok).await.0, 200);
    assert_eq!(runs.load(Ordering::SeqCst), 1);
}

#[actix_web::test]
async fn unknown_statuses_are_acknowledged_and_do_not_end_the_prediction() {
    let secret = Secret::generate();
    let runs = Arc::new(AtomicUsize::new(0));
    let module = counting_module(&runs).events(Event::ALL);
    let srv = TestServer::start({
        let config = config(&secret, module);
        move || configure(config.clone())
    });
    let id = new_prediction_id();
    for status in ["paused", "successful", ""] {
        let signed = delivery(&id, status, json!("x")).sign(&secret);
        assert_eq!(srv.deliver(&signed).await, (200, "not subscribed".into()));
    }
    let done = delivery(&id, "succeeded", json!("x")).sign(&secret);
    assert_eq!(srv.deliver(&done).await.0, 200);
    assert_eq!(runs.load(Ordering::SeqCst), 1);
}

#[actix_web::test]
async fn huge_headers_are_refused_and_the_worker_survives() {
    let secret = Secret::generate();
    let runs = Arc::new(AtomicUsize::new(0));
    let srv = TestServer::start({
        let config = config(&secret, counting_module(&runs));
        move || configure(config.clone())
    });
    let d = delivery(&new_prediction_id(), "succeeded", json!("x"));
    let signed = d.sign(&secret);
    let client = reqwest::Client::new();

    // Far over any header limit: refused by the HTTP layer, or the connection is dropped.
    let mut req = client
        .post(srv.url("/webhooks/replicate"))
        .body(signed.body().to_vec());
    for (name, value) in signed.headers() {
        req = req.header(name, value);
    }
    let huge = req.header("x-padding", "a".repeat(256 * 1024)).send().await;
    if let Ok(resp) = huge {
        assert!(resp.status().is_client_error(), "{}", resp.status());
    }
    // Refused before the handler: the same delivery below is its first run, not a duplicate.
    assert_eq!(runs.load(Ordering::SeqCst), 0);

    // Bogus signature entries before the real one: verified up to the cap of 32 entries
    // (`MAX_SIGNATURE_ENTRIES`), refused above it, and above 4096 bytes, whatever they hold.
    let bogus = "v1,AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";
    let with_entries = |entries: Vec<&str>| {
        let mut req = client
            .post(srv.url("/webhooks/replicate"))
            .body(signed.body().to_vec());
        for (name, value) in signed.headers() {
            let value = if name == "webhook-signature" {
                format!("{} {value} v2,xyz", entries.join(" "))
            } else {
                value
            };
            req = req.header(name, value);
        }
        req.send()
    };
    let too_long = with_entries(vec![bogus; 300]).await.unwrap();
    assert_eq!(too_long.status().as_u16(), 401);
    let too_many = with_entries(vec!["v1,AAAA"; 40]).await.unwrap();
    assert_eq!(too_many.status().as_u16(), 401);
    assert_eq!(runs.load(Ordering::SeqCst), 0);
    // 30 bogus entries, the real one and a `v2` entry: 32 in all.
    let at_the_cap = with_entries(vec![bogus; 30]).await.unwrap();
    assert_eq!(at_the_cap.status().as_u16(), 200);
    assert_eq!(at_the_cap.text().await.unwrap(), "done");
    assert_eq!(runs.load(Ordering::SeqCst), 1);
}

/// Sends raw bytes on a fresh connection and returns everything the server answers.
async fn raw_exchange(base: &str, request: &[u8], close_write: bool) -> String {
    raw::exchange(base, request, close_write).await.text
}

fn raw_request(signed: &Signed, content_length: usize, body: &[u8]) -> Vec<u8> {
    RawRequest::post(signed)
        .content_length(content_length.to_string())
        .body(body)
        .to_bytes()
}

#[actix_web::test]
async fn content_length_that_lies_runs_nothing_and_the_worker_survives() {
    let secret = Secret::generate();
    let runs = Arc::new(AtomicUsize::new(0));
    let srv = TestServer::start({
        let config = config(&secret, counting_module(&runs));
        move || configure(config.clone())
    });
    let signed = delivery(&new_prediction_id(), "succeeded", json!("x")).sign(&secret);
    let body = signed.body();

    // Shorter than the body: only a prefix is read, and it does not verify.
    let short = raw_exchange(
        &srv.base,
        &raw_request(&signed, body.len() - 5, body),
        false,
    )
    .await;
    assert!(short.starts_with("HTTP/1.1 401"), "{short}");

    // Longer than the body, then the client hangs up: never a handler run.
    let long = raw_exchange(
        &srv.base,
        &raw_request(&signed, body.len() + 100, body),
        true,
    )
    .await;
    assert!(
        long.is_empty() || long.starts_with("HTTP/1.1 400"),
        "{long}"
    );

    // Not a number.
    let mut bad = raw_request(&signed, body.len(), body);
    let text = String::from_utf8(bad.clone()).unwrap();
    bad = text
        .replace(
            &format!("content-length: {}", body.len()),
            "content-length: 1e3",
        )
        .into_bytes();
    let bad = raw_exchange(&srv.base, &bad, false).await;
    assert!(bad.starts_with("HTTP/1.1 400"), "{bad}");

    assert_eq!(runs.load(Ordering::SeqCst), 0);
    assert_eq!(srv.deliver(&signed).await.0, 200);
    assert_eq!(runs.load(Ordering::SeqCst), 1);
}

#[actix_web::test]
async fn a_failed_terminal_handler_runs_again_under_a_new_webhook_id() {
    let secret = Secret::generate();
    let attempts = Arc::new(AtomicUsize::new(0));
    let module = fails_once_then_succeeds(MODEL, &attempts);
    let srv = TestServer::start({
        let config = config(&secret, module);
        move || configure(config.clone())
    });
    let body = sample_prediction(&new_prediction_id(), MODEL, "succeeded", json!("x")).to_string();
    let send = async || {
        srv.deliver(&TestDelivery::new(body.clone()).sign(&secret))
            .await
    };
    assert_eq!(send().await.0, 500);
    // A reconciliation poll (or a new webhook) brings the same result under another id.
    assert_eq!(send().await.0, 200);
    assert_eq!(
        send().await,
        (
            200,
            "prediction already handled; its first terminal status wins".into()
        )
    );
    assert_eq!(attempts.load(Ordering::SeqCst), 2);
}

#[actix_web::test]
async fn an_expired_lease_lets_a_retry_take_over() {
    let secret = Secret::generate();
    let runs = Arc::new(AtomicUsize::new(0));
    let started = Arc::new(tokio::sync::Notify::new());
    let release = Arc::new(tokio::sync::Notify::new());
    let (counter, signal, gate) = (runs.clone(), started.clone(), release.clone());
    // The first run outlives its lease, as a stuck or dead worker would: it waits for the test.
    let module = Module::new(MODEL).on(HandlerKind::Succeeded, move |_: Prediction| {
        let first = counter.fetch_add(1, Ordering::SeqCst) == 0;
        let (signal, gate) = (signal.clone(), gate.clone());
        async move {
            if first {
                signal.notify_one();
                gate.notified().await;
            }
            Ok::<(), HandlerError>(())
        }
    });
    let lease = Duration::from_secs(1);
    // A handler may outlive its lease when its timeout says so; the takeover is what is tested.
    let config = config(&secret, module)
        .lease(lease)
        .handler_timeout(Duration::from_mins(1));
    let srv = start_workers(2, config);
    let base = srv.base.clone();
    let signed = delivery(&new_prediction_id(), "succeeded", json!("x")).sign(&secret);

    let first = {
        let (base, signed) = (base.clone(), signed.clone());
        actix_web::rt::spawn(async move { post(&base, &signed).await })
    };
    let claimed = tokio::time::Instant::now();
    tokio::time::timeout(Duration::from_secs(10), started.notified())
        .await
        .expect("the first run starts");
    // While the lease holds, retries get 409; once it is over, a retry takes over and runs the
    // handler again (at-least-once). Polled, with a deadline.
    let mut answers = Vec::new();
    loop {
        let status = post(&base, &signed).await;
        answers.push(status);
        if status != 409 {
            break;
        }
        assert!(
            claimed.elapsed() < lease * 10,
            "the lease never expired: {answers:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(answers.last(), Some(&200), "{answers:?}");
    assert_eq!(
        answers[0], 409,
        "the lease did not protect the first run: {answers:?}"
    );
    assert!(
        claimed.elapsed() >= lease,
        "taken over before the lease ended"
    );
    assert_eq!(runs.load(Ordering::SeqCst), 2);
    // The late first run finds its claim taken over and still answers 200.
    release.notify_one();
    let late = tokio::time::timeout(Duration::from_secs(10), first).await;
    assert_eq!(late.expect("the first run ends").unwrap(), 200);
    assert_eq!(post(&base, &signed).await, 200);
    assert_eq!(runs.load(Ordering::SeqCst), 2);
}

#[actix_web::test]
async fn clock_skew_inside_the_tolerance_passes_and_outside_fails() {
    let secret = Secret::generate();
    let runs = Arc::new(AtomicUsize::new(0));
    let srv = TestServer::start({
        let config = config(&secret, counting_module(&runs));
        move || configure(config.clone())
    });
    // A few seconds of margin: the clock ticks between signing and verifying.
    for (skew, expected) in [(-295, 200), (295, 200), (-305, 401), (305, 401)] {
        let d = delivery(&new_prediction_id(), "succeeded", json!("x"));
        let signed = d.timestamp(unix_now() + skew).sign(&secret);
        assert_eq!(srv.deliver(&signed).await.0, expected, "skew {skew}");
    }
    assert_eq!(runs.load(Ordering::SeqCst), 2);
}

#[test]
fn a_path_actix_would_misread_is_a_setup_error_not_a_panic() {
    let module = Module::new(MODEL)
        .path("/hooks/{tenant")
        .on(HandlerKind::Succeeded, |_: Prediction| async {
            Ok::<(), HandlerError>(())
        });
    let config = config(&Secret::generate(), module);
    let err = replicate_webhook::try_configure(config)
        .err()
        .expect("an unbalanced `{` must be refused at start-up");
    assert!(err.to_string().contains("/hooks/{tenant"), "{err}");
}

#[actix_web::test]
async fn deeply_nested_json_is_refused_without_overflowing_the_stack() {
    let secret = Secret::generate();
    let runs = Arc::new(AtomicUsize::new(0));
    let outputs = runs.clone();
    // A handler for both events the bodies below are, so each reaches its typed decode.
    let module =
        counting_module(&runs)
            .events(Event::ALL)
            .on(HandlerKind::Output, move |_: Prediction| {
                outputs.fetch_add(1, Ordering::SeqCst);
                async { Ok::<(), HandlerError>(()) }
            });
    let srv = TestServer::start({
        let config = config(&secret, module);
        move || configure(config.clone())
    });
    let id = new_prediction_id();
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    for status in ["processing", "succeeded"] {
        let body = sample_prediction(&id, MODEL, status, json!("x"))
            .to_string()
            .replace(r#""output":"x""#, &format!(r#""output":{deep}"#));
        assert!(body.len() > deep.len(), "the nesting is in the body");
        // The envelope skips over the output; decoding it for the handler hits serde_json's
        // depth limit: a decode error, acknowledged, and the handler never runs.
        let answer = srv.deliver(&TestDelivery::new(body).sign(&secret)).await;
        assert_eq!(answer, (200, "decode error handled".to_owned()), "{status}");
    }
    assert_eq!(runs.load(Ordering::SeqCst), 0);
    // The worker is alive and its thread's stack intact.
    let ok = delivery(&new_prediction_id(), "succeeded", json!("x")).sign(&secret);
    assert_eq!(srv.deliver(&ok).await, (200, "done".to_owned()));
    assert_eq!(runs.load(Ordering::SeqCst), 1);
}

#[actix_web::test]
async fn never_expiring_ttls_do_not_panic_the_worker() {
    let secret = Secret::generate();
    let runs = Arc::new(AtomicUsize::new(0));
    let config = config(&secret, counting_module(&runs))
        .webhook_ttl(Duration::MAX)
        .terminal_ttl(Duration::MAX)
        .lease(Duration::MAX);
    let srv = TestServer::start(move || configure(config.clone()));
    let signed = delivery(&new_prediction_id(), "succeeded", json!("x")).sign(&secret);
    assert_eq!(srv.deliver(&signed).await.0, 200);
    assert_eq!(srv.deliver(&signed).await.0, 200);
    assert_eq!(runs.load(Ordering::SeqCst), 1);
}

#[actix_web::test]
async fn a_huge_declared_length_under_an_unlimited_body_limit_allocates_nothing_upfront() {
    let secret = Secret::generate();
    let runs = Arc::new(AtomicUsize::new(0));
    let config = config(&secret, counting_module(&runs)).body_limit(usize::MAX);
    let srv = TestServer::start(move || configure(config.clone()));
    let signed = delivery(&new_prediction_id(), "succeeded", json!("x")).sign(&secret);

    // A petabyte announced, a few bytes sent, then the client hangs up. With no body limit, the
    // budget for unverified bodies still bounds it: refused on the header, nothing buffered.
    let lie = raw_request(&signed, 1 << 50, b"{\"id\":");
    let answer = raw_exchange(&srv.base, &lie, true).await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert_eq!(srv.deliver(&signed).await.0, 200);
    assert_eq!(runs.load(Ordering::SeqCst), 1);
}

#[actix_web::test]
async fn an_oversized_content_length_gets_413_before_any_body_byte_is_sent() {
    let secret = Secret::generate();
    let runs = Arc::new(AtomicUsize::new(0));
    let config = config(&secret, counting_module(&runs)).body_limit(1024);
    let srv = TestServer::start(move || configure(config.clone()));
    let signed = delivery(&new_prediction_id(), "succeeded", json!("x")).sign(&secret);

    // Only the head, announcing a body over the limit; the connection stays open for writing.
    // A receiver that buffered first and checked after would wait for the body and time out.
    let head = raw_request(&signed, 1025, b"");
    let addr = srv.base.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.write_all(&head).await.unwrap();
    let mut answer = Vec::new();
    let mut buf = [0u8; 1024];
    while !answer.windows(4).any(|w| w == b"\r\n\r\n") {
        let read = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf))
            .await
            .expect("413 within 5 s, without the body")
            .unwrap();
        assert!(read > 0, "closed without an answer");
        answer.extend_from_slice(&buf[..read]);
    }
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    drop(stream);
    // At the limit exactly, the same head is accepted once the body comes.
    let at_limit = raw_request(&signed, signed.body().len(), signed.body());
    let answer = raw_exchange(&srv.base, &at_limit, false).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert_eq!(runs.load(Ordering::SeqCst), 1);
}

#[actix_web::test]
async fn output_and_logs_are_told_apart_whichever_worker_answers() {
    let secret = Secret::generate();
    let seen = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let mut module = Module::new(MODEL).events(Event::ALL);
    for kind in [HandlerKind::Output, HandlerKind::Logs] {
        let seen = seen.clone();
        module = module.on(kind, move |p: Prediction| {
            seen.lock().unwrap().push(format!(
                "{} {}",
                kind.fn_name(),
                p.output.unwrap_or_default()
            ));
            async { Ok::<(), HandlerError>(()) }
        });
    }
    let srv = start_workers(4, config(&secret, module));
    let id = new_prediction_id();
    // One connection per delivery, so the deliveries are spread over the four workers; a worker
    // that only knew what it had seen itself would take a repeated output for a new one.
    let steps = [
        json!(null),
        json!(["a"]),
        json!(["a"]),
        json!(["a"]),
        json!(["a", "b"]),
        json!(["a", "b"]),
        json!(["a", "b", "c"]),
        json!(["a", "b", "c"]),
        json!(["a", "b", "c"]),
    ];
    for output in &steps {
        let signed = delivery(&id, "processing", output.clone()).sign(&secret);
        assert_eq!(post(&srv.base, &signed).await, 200, "{output}");
    }
    let expected: Vec<String> = [
        "on_logs null",
        r#"on_output ["a"]"#,
        r#"on_logs ["a"]"#,
        r#"on_logs ["a"]"#,
        r#"on_output ["a","b"]"#,
        r#"on_logs ["a","b"]"#,
        r#"on_output ["a","b","c"]"#,
        r#"on_logs ["a","b","c"]"#,
        r#"on_logs ["a","b","c"]"#,
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    assert_eq!(*seen.lock().unwrap(), expected);
}

/// What a handler was given: the prediction, or the decode error's message.
type Given = Arc<std::sync::Mutex<Vec<Result<Prediction, String>>>>;

#[actix_web::test]
async fn the_handler_gets_exactly_what_a_decode_of_the_whole_body_gives() {
    let secret = Secret::generate();
    let given: Given = Arc::default();
    let (ok, failed) = (given.clone(), given.clone());
    let module = Module::new(MODEL)
        .on(HandlerKind::Succeeded, move |p: Prediction| {
            ok.lock().unwrap().push(Ok(p));
            async { Ok::<(), HandlerError>(()) }
        })
        .on(HandlerKind::DecodeError, move |e: DecodeError| {
            failed.lock().unwrap().push(Err(e.message().to_owned()));
            async { Ok::<(), HandlerError>(()) }
        });
    let srv = TestServer::start({
        let config = config(&secret, module);
        move || configure(config.clone())
    });
    let nested = |depth: usize| format!("{}{}", "[".repeat(depth), "]".repeat(depth));
    let bodies = [
        // Escaped keys, a duplicate unknown key, nulls where fields may be absent.
        format!(
            r#"{{"\u0069d":"{}","model":"{MODEL}","st\u0061tus":"succeeded","input":{{"a":1}},
            "output":null,"logs":null,"urls":null,"metrics":null,"x":1,"x":[2]}}"#,
            new_prediction_id()
        ),
        // The body's object is one of serde_json's 128 levels: 126 fit in output, 127 do not.
        format!(
            r#"{{"id":"{}","model":"{MODEL}","status":"succeeded","input":{{}},"output":{}}}"#,
            new_prediction_id(),
            nested(126)
        ),
        format!(
            r#"{{"id":"{}","model":"{MODEL}","status":"succeeded","input":{{}},"output":{}}}"#,
            new_prediction_id(),
            nested(127)
        ),
        format!(
            r#"{{"id":"{}","model":"{MODEL}","status":"succeeded","input":{},"output":1}}"#,
            new_prediction_id(),
            nested(127)
        ),
        // Routes leniently: the handler's error is serde's, positioned in the whole body.
        format!(
            r#"{{"id":"{}","model":"{MODEL}","status":"succeeded","input":{{}},
            "created_at":"yesterday","output":"o"}}"#,
            new_prediction_id()
        ),
        format!(
            r#"{{"id":"{}","model":"{MODEL}","status":"succeeded","input":{{}},"logs":5}}"#,
            new_prediction_id()
        ),
    ];
    for body in &bodies {
        let whole = serde_json::from_str::<Prediction>(body).map_err(|e| e.to_string());
        let signed = TestDelivery::new(body.clone()).sign(&secret);
        let (status, text) = srv.deliver(&signed).await;
        // `on_decode_error` answered Ok: "done" either way, told apart by what was given.
        assert_eq!((status, &*text), (200, "done"), "{body:.120}");
        let got = given.lock().unwrap().pop();
        assert_eq!(got, Some(whole), "{body:.120}");
    }
    // In many chunks, through the same path as a body that came in one.
    let body = sample_prediction(
        &new_prediction_id(),
        MODEL,
        "succeeded",
        json!({"é": [1, "\n"]}),
    )
    .to_string();
    let request = RawRequest::post(&TestDelivery::new(body.clone()).sign(&secret)).chunked(7);
    let answer = raw::exchange(&srv.base, &request.to_bytes(), false).await;
    assert_eq!((answer.status, answer.body()), (Some(200), "done"));
    let got = given.lock().unwrap().pop();
    assert_eq!(
        got,
        Some(Ok(serde_json::from_str::<Prediction>(&body).unwrap()))
    );
}
