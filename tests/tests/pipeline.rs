//! The receive pipeline end to end, over real HTTP on 127.0.0.1, with modules built in code.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use replicate_webhook::dedupe::{
    Claim, ClaimToken, DedupeStore, MemoryStore, ProgressMarkers, StoreError,
};
use replicate_webhook::testkit::{TestDelivery, new_prediction_id, sample_prediction};
use replicate_webhook::{
    DecodeError, Event, HandlerError, HandlerKind, Module, Prediction, Secret, WebhookConfig,
    configure,
};
use replicate_webhook_tests::{LIFECYCLE, TestServer, fails_once_then_succeeds, within};
use serde_json::json;

const MODEL: &str = "acme/pipeline";

/// Every handler run, as `kind id`.
#[derive(Clone, Default)]
struct Log(Arc<Mutex<Vec<String>>>);

impl Log {
    fn push(&self, entry: String) {
        self.0.lock().unwrap().push(entry);
    }
    fn entries(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }
    fn count(&self, prefix: &str) -> usize {
        self.entries()
            .iter()
            .filter(|e| e.starts_with(prefix))
            .count()
    }
}

fn recording_module(log: &Log) -> Module {
    let mut module = Module::new(MODEL).events(Event::ALL);
    for kind in LIFECYCLE {
        let log = log.clone();
        module = module.on(kind, move |p: Prediction| {
            let log = log.clone();
            async move {
                log.push(format!("{} {}", kind.fn_name(), p.id));
                Ok::<(), HandlerError>(())
            }
        });
    }
    module
}

fn server(secret: &Secret, module: Module) -> TestServer {
    let config = WebhookConfig::new(secret.clone())
        .collect_registered(false)
        .module(module);
    TestServer::start(move || configure(config.clone()))
}

fn delivery(id: &str, status: &str, output: serde_json::Value) -> TestDelivery {
    TestDelivery::new(sample_prediction(id, MODEL, status, output).to_string())
}

#[actix_web::test]
async fn a_signed_delivery_runs_its_handler_once() {
    let secret = Secret::generate();
    let log = Log::default();
    let srv = server(&secret, recording_module(&log));
    let id = new_prediction_id();

    let unsigned = delivery(&id, "succeeded", json!("hello Alice"));
    let d = unsigned.sign(&secret);
    assert_eq!(srv.deliver(&d).await, (200, "done".to_owned()));
    assert_eq!(log.entries(), [format!("on_succeeded {id}")]);

    // The identical request again (same webhook-id, timestamp and signature).
    let (status, body) = srv.deliver(&d).await;
    assert_eq!(
        (status, body.as_str()),
        (
            200,
            "prediction already handled; its first terminal status wins"
        )
    );
    // Replicate's retry: same webhook-id, a later timestamp, so another signature.
    let retry = unsigned
        .timestamp(replicate_webhook::signature::unix_now() + 1)
        .sign(&secret);
    assert_ne!(retry.headers(), d.headers());
    let (status, body) = srv.deliver(&retry).await;
    assert_eq!(
        (status, body.as_str()),
        (
            200,
            "prediction already handled; its first terminal status wins"
        )
    );
    assert_eq!(log.count("on_succeeded"), 1);
}

#[actix_web::test]
async fn every_event_reaches_the_matching_handler() {
    let secret = Secret::generate();
    let log = Log::default();
    let srv = server(&secret, recording_module(&log));
    each_event_reaches_its_handler(&srv, &secret, &log).await;
}

/// A custom store may offer claims only: outputs and logs are then told apart by the progress
/// markers the gate keeps in this process.
#[actix_web::test]
async fn a_store_without_progress_markers_still_tells_output_from_logs() {
    let secret = Secret::generate();
    let log = Log::default();
    let (srv, _) = flaky_server(&secret, recording_module(&log));
    each_event_reaches_its_handler(&srv, &secret, &log).await;
}

async fn each_event_reaches_its_handler(srv: &TestServer, secret: &Secret, log: &Log) {
    let id = new_prediction_id();
    for (status, output) in [
        ("starting", json!(null)),
        ("processing", json!(null)),
        ("processing", json!(["a"])),
        ("processing", json!(["a"])),
        ("processing", json!(["a", "b"])),
        ("failed", json!(null)),
    ] {
        let d = delivery(&id, status, output).sign(secret);
        assert_eq!(srv.deliver(&d).await.0, 200);
    }
    let expected: Vec<String> = [
        "on_start",
        "on_logs",
        "on_output",
        "on_logs",
        "on_output",
        "on_failed",
    ]
    .iter()
    .map(|k| format!("{k} {id}"))
    .collect();
    assert_eq!(log.entries(), expected);
}

/// The reconciler polls what the store's watch list holds: a store that keeps none is refused
/// when the receiver is built, not discovered when a webhook goes missing.
#[test]
fn a_reconciler_over_a_store_without_a_watch_list_is_refused_at_set_up() {
    use replicate_webhook::client::Client;
    use replicate_webhook::reconcile::Reconcile;

    let client = Client::new("http://127.0.0.1:9/v1", Some("token".to_owned())).unwrap();
    let config = WebhookConfig::new(Secret::generate())
        .collect_registered(false)
        .module(recording_module(&Log::default()))
        .store(FlakyStore::default())
        .reconcile(Reconcile::new(client));
    let Err(err) = replicate_webhook::try_configure(config) else {
        panic!("a reconciler without a watch list was accepted");
    };
    assert!(
        matches!(err, replicate_webhook::SetupError::NoWatchList { .. }),
        "{err}"
    );
    assert!(err.to_string().contains("watch list"), "{err}");
}

#[actix_web::test]
async fn aborted_falls_back_to_on_canceled() {
    let secret = Secret::generate();
    let log = Log::default();
    let srv = server(&secret, recording_module(&log));
    let id = new_prediction_id();
    assert_eq!(
        srv.deliver(&delivery(&id, "aborted", json!(null)).sign(&secret))
            .await
            .0,
        200
    );
    assert_eq!(log.entries(), [format!("on_canceled {id}")]);
}

#[actix_web::test]
async fn bad_signatures_get_401_and_run_nothing() {
    let secret = Secret::generate();
    let log = Log::default();
    let srv = server(&secret, recording_module(&log));
    let d = delivery(&new_prediction_id(), "succeeded", json!("x"));

    let cases = [
        ("wrong key", d.sign_with_wrong_key()),
        ("tampered body", d.sign(&secret).tampered()),
        ("stale", d.clone().stale().sign(&secret)),
        ("future", d.clone().future().sign(&secret)),
        ("no id", d.sign(&secret).without_header("webhook-id")),
        (
            "no timestamp",
            d.sign(&secret).without_header("webhook-timestamp"),
        ),
        (
            "no signature",
            d.sign(&secret).without_header("webhook-signature"),
        ),
    ];
    for (name, signed) in cases {
        assert_eq!(srv.deliver(&signed).await.0, 401, "{name}");
    }
    assert!(log.entries().is_empty());
}

#[actix_web::test]
async fn duplicated_or_non_ascii_headers_get_401() {
    let secret = Secret::generate();
    let log = Log::default();
    let srv = server(&secret, recording_module(&log));
    let d = delivery(&new_prediction_id(), "succeeded", json!("x")).sign(&secret);
    let client = reqwest::Client::new();

    let mut req = client
        .post(srv.url("/webhooks/replicate"))
        .body(d.body().to_vec());
    for (name, value) in d.headers() {
        req = req.header(name, value);
    }
    let twice = req
        .header("webhook-signature", "v1,AAAA")
        .send()
        .await
        .unwrap();
    assert_eq!(twice.status().as_u16(), 401);

    let mut req = client
        .post(srv.url("/webhooks/replicate"))
        .body(d.body().to_vec());
    for (name, value) in d.headers() {
        let value = if name == "webhook-id" {
            format!("{value}\u{e9}")
        } else {
            value
        };
        req = req.header(
            name,
            reqwest::header::HeaderValue::from_bytes(value.as_bytes()).unwrap(),
        );
    }
    assert_eq!(req.send().await.unwrap().status().as_u16(), 401);
    assert!(log.entries().is_empty());
    // The worker is still serving.
    assert_eq!(srv.deliver(&d).await.0, 200);
}

#[actix_web::test]
async fn oversized_bodies_get_413_with_or_without_content_length() {
    let secret = Secret::generate();
    let log = Log::default();
    let config = WebhookConfig::new(secret.clone())
        .collect_registered(false)
        .module(recording_module(&log))
        .body_limit(1024);
    let srv = TestServer::start(move || configure(config.clone()));
    let big = json!({"id": "x", "model": MODEL, "status": "succeeded", "input": {}, "output": "a".repeat(4096)});
    let d = TestDelivery::new(big.to_string()).sign(&secret);
    assert_eq!(srv.deliver(&d).await.0, 413);

    // A chunked body declares no length: the limit applies while reading.
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        d.body().chunks(256).map(|c| Ok(c.to_vec())).collect();
    let mut req = reqwest::Client::new()
        .post(srv.url("/webhooks/replicate"))
        .body(reqwest::Body::wrap_stream(futures_util::stream::iter(
            chunks,
        )));
    for (name, value) in d.headers() {
        req = req.header(name, value);
    }
    assert_eq!(req.send().await.unwrap().status().as_u16(), 413);
    assert!(log.entries().is_empty());
}

#[actix_web::test]
async fn malformed_json_gets_400_after_verification() {
    let secret = Secret::generate();
    let log = Log::default();
    let srv = server(&secret, recording_module(&log));
    for body in ["{not json", r#"{"id": 1}"#, "[]"] {
        let d = TestDelivery::new(body).sign(&secret);
        assert_eq!(srv.deliver(&d).await.0, 400, "{body}");
    }
    // Unverified garbage is refused as unverified, before any parsing.
    let d = TestDelivery::new("{not json").sign_with_wrong_key();
    assert_eq!(srv.deliver(&d).await.0, 401);
    assert!(log.entries().is_empty());
}

#[actix_web::test]
async fn retryable_error_gives_500_and_the_retry_succeeds() {
    let secret = Secret::generate();
    let attempts = Arc::new(AtomicUsize::new(0));
    let module = fails_once_then_succeeds(MODEL, &attempts);
    let srv = server(&secret, module);
    let d = delivery(&new_prediction_id(), "succeeded", json!("x"));
    let signed = d.sign(&secret);
    assert_eq!(srv.deliver(&signed).await.0, 500);
    // Replicate's retry: same id, new timestamp, new signature.
    let retry = d
        .timestamp(replicate_webhook::signature::unix_now() + 1)
        .sign(&secret);
    assert_eq!(srv.deliver(&retry).await.0, 200);
    assert_eq!(srv.deliver(&retry).await.0, 200);
    assert_eq!(attempts.load(Ordering::SeqCst), 2);
}

#[actix_web::test]
async fn permanent_error_is_acknowledged_and_not_rerun() {
    let secret = Secret::generate();
    let attempts = Arc::new(AtomicUsize::new(0));
    let counter = attempts.clone();
    let module = Module::new(MODEL).on(HandlerKind::Succeeded, move |_: Prediction| {
        counter.fetch_add(1, Ordering::SeqCst);
        async { Err::<(), _>(HandlerError::permanent("unknown customer")) }
    });
    let srv = server(&secret, module);
    let d = delivery(&new_prediction_id(), "succeeded", json!("x")).sign(&secret);
    assert_eq!(srv.deliver(&d).await.0, 200);
    assert_eq!(srv.deliver(&d).await.0, 200);
    assert_eq!(attempts.load(Ordering::SeqCst), 1);
}

#[actix_web::test]
async fn a_panicking_handler_gives_500_and_the_worker_survives() {
    let secret = Secret::generate();
    let attempts = Arc::new(AtomicUsize::new(0));
    let counter = attempts.clone();
    let module = Module::new(MODEL).on(HandlerKind::Succeeded, move |p: Prediction| {
        let n = counter.fetch_add(1, Ordering::SeqCst);
        async move {
            assert!(n > 0, "boom on {}", p.id);
            Ok::<(), HandlerError>(())
        }
    });
    let srv = server(&secret, module);
    let d = delivery(&new_prediction_id(), "succeeded", json!("x")).sign(&secret);
    assert_eq!(srv.deliver(&d).await.0, 500);
    // Same single worker, still alive; the claim was released so the retry runs.
    assert_eq!(srv.deliver(&d).await.0, 200);
    assert_eq!(attempts.load(Ordering::SeqCst), 2);
}

#[actix_web::test]
async fn a_duplicate_while_in_flight_gets_409_with_retry_after() {
    let secret = Secret::generate();
    let runs = Arc::new(AtomicUsize::new(0));
    let release = Arc::new(tokio::sync::Notify::new());
    let started = Arc::new(tokio::sync::Notify::new());
    let (n, r, s) = (runs.clone(), release.clone(), started.clone());
    // Every run waits for the release: a second run would hold its request, which the
    // timeouts below turn into a failure.
    let module = Module::new(MODEL).on(HandlerKind::Succeeded, move |_: Prediction| {
        n.fetch_add(1, Ordering::SeqCst);
        let (r, s) = (r.clone(), s.clone());
        async move {
            s.notify_one();
            r.notified().await;
            Ok::<(), HandlerError>(())
        }
    });
    let srv = Arc::new(server(&secret, module));
    let d = delivery(&new_prediction_id(), "succeeded", json!("x")).sign(&secret);
    let first = {
        let (srv, d) = (srv.clone(), d.clone());
        actix_web::rt::spawn(async move { srv.deliver(&d).await })
    };
    within(started.notified()).await;

    let dup = within(srv.deliver_response(&d)).await;
    assert_eq!(dup.status().as_u16(), 409);
    let retry_after = replicate_webhook_tests::retry_after(&dup);
    assert!((1..=30).contains(&retry_after), "{retry_after}");
    assert_eq!(
        runs.load(Ordering::SeqCst),
        1,
        "the duplicate ran the handler"
    );

    release.notify_one();
    assert_eq!(within(first).await.unwrap(), (200, "done".to_owned()));
    assert_eq!(
        within(srv.deliver(&d)).await,
        (
            200,
            "prediction already handled; its first terminal status wins".to_owned()
        )
    );
    assert_eq!(runs.load(Ordering::SeqCst), 1);
}

#[actix_web::test]
async fn one_terminal_handler_per_prediction_across_webhook_ids() {
    let secret = Secret::generate();
    let log = Log::default();
    let srv = server(&secret, recording_module(&log));
    let id = new_prediction_id();
    let body = sample_prediction(&id, MODEL, "succeeded", json!("x")).to_string();
    // Two deliveries of the same result under different webhook ids (e.g. a webhook and a poll).
    assert_eq!(
        srv.deliver(&TestDelivery::new(body.clone()).sign(&secret))
            .await
            .0,
        200
    );
    let (status, text) = srv.deliver(&TestDelivery::new(body).sign(&secret)).await;
    assert_eq!(
        (status, text.as_str()),
        (
            200,
            "prediction already handled; its first terminal status wins"
        )
    );
    assert_eq!(log.count("on_succeeded"), 1);

    // A late intermediate event after the terminal one is dropped, not dispatched.
    let (status, text) = srv
        .deliver(&delivery(&id, "processing", json!("partial")).sign(&secret))
        .await;
    assert_eq!(
        (status, text.as_str()),
        (200, "stale event: the prediction already finished")
    );
    assert_eq!(log.count("on_output"), 0);
}

#[actix_web::test]
async fn unsubscribed_events_and_unknown_models_are_acknowledged() {
    let secret = Secret::generate();
    let log = Log::default();
    let module = recording_module(&log).events([Event::Completed]);
    let srv = server(&secret, module);
    let d = delivery(&new_prediction_id(), "starting", json!(null)).sign(&secret);
    assert_eq!(srv.deliver(&d).await, (200, "not subscribed".to_owned()));
    let other = TestDelivery::succeeded("someone/else", json!("x")).sign(&secret);
    assert_eq!(
        srv.deliver(&other).await,
        (200, "no handler for this model".to_owned())
    );
    assert!(log.entries().is_empty());
}

#[actix_web::test]
async fn typed_decode_failure_goes_to_the_decode_error_hook() {
    let secret = Secret::generate();
    let hooked = Arc::new(Mutex::new(Vec::<String>::new()));
    let seen = hooked.clone();
    let module = Module::new(MODEL)
        .on(
            HandlerKind::Succeeded,
            |p: Prediction<Vec<String>>| async move {
                assert!(!p.output.unwrap_or_default().is_empty());
                Ok::<(), HandlerError>(())
            },
        )
        .on(HandlerKind::DecodeError, move |e: DecodeError| {
            seen.lock().unwrap().push(format!(
                "{} {}",
                e.raw()["output"],
                e.prediction().map(|p| p.id).unwrap_or_default()
            ));
            async { Ok::<(), HandlerError>(()) }
        });
    let srv = server(&secret, module);
    let id = new_prediction_id();
    // The schema says a list of URLs; this version returns a single string.
    let d = delivery(&id, "succeeded", json!("https://replicate.delivery/x.png")).sign(&secret);
    assert_eq!(srv.deliver(&d).await.0, 200);
    assert_eq!(
        hooked.lock().unwrap().clone(),
        [format!("\"https://replicate.delivery/x.png\" {id}")]
    );
    // And it is not retried: a schema change must not burn Replicate's retries.
    assert_eq!(srv.deliver(&d).await.0, 200);
    assert_eq!(hooked.lock().unwrap().len(), 1);
    let ok = delivery(
        &new_prediction_id(),
        "succeeded",
        json!(["https://replicate.delivery/y.png"]),
    )
    .sign(&secret);
    assert_eq!(srv.deliver(&ok).await.0, 200);
    assert_eq!(hooked.lock().unwrap().len(), 1);
}

/// A store whose backend is down.
struct DownStore;

#[async_trait::async_trait]
impl DedupeStore for DownStore {
    async fn claim(&self, _: &str, _: Duration) -> Result<Claim, StoreError> {
        Err(StoreError::new("connection refused"))
    }
    async fn complete(&self, _: &str, _: &ClaimToken, _: Duration) -> Result<(), StoreError> {
        Err(StoreError::new("connection refused"))
    }
    async fn release(&self, _: &str, _: &ClaimToken) -> Result<(), StoreError> {
        Err(StoreError::new("connection refused"))
    }
    async fn is_done(&self, _: &str) -> Result<bool, StoreError> {
        Err(StoreError::new("connection refused"))
    }
    async fn mark_done(&self, _: &str, _: Duration) -> Result<(), StoreError> {
        Err(StoreError::new("connection refused"))
    }
    fn markers(self: Arc<Self>) -> Option<Arc<dyn ProgressMarkers>> {
        Some(self)
    }
}

/// Its progress markers are down too; it keeps no watch list (no reconciler runs over it).
#[async_trait::async_trait]
impl ProgressMarkers for DownStore {
    async fn swap_marker(&self, _: &str, _: u64, _: Duration) -> Result<Option<u64>, StoreError> {
        Err(StoreError::new("connection refused"))
    }
    async fn restore_marker(
        &self,
        _: &str,
        _: u64,
        _: Option<u64>,
        _: Duration,
    ) -> Result<(), StoreError> {
        Err(StoreError::new("connection refused"))
    }
}

#[actix_web::test]
async fn an_unreachable_store_gives_503_and_runs_nothing() {
    let secret = Secret::generate();
    let log = Log::default();
    let config = WebhookConfig::new(secret.clone())
        .collect_registered(false)
        .module(recording_module(&log))
        .store(DownStore);
    let srv = TestServer::start(move || configure(config.clone()));
    for status in ["starting", "processing", "succeeded"] {
        let d = delivery(&new_prediction_id(), status, json!("x")).sign(&secret);
        let response = srv.deliver_response(&d).await;
        assert_eq!(response.status().as_u16(), 503, "{status}");
        let retry_after = replicate_webhook_tests::retry_after(&response);
        assert!((1..=60).contains(&retry_after), "{status}: {retry_after}");
    }
    assert!(log.entries().is_empty());
}

/// actix calls `configure` once per worker with a clone of the config, and the clones share the
/// receiver the first one built; a clone changed afterwards is another receiver.
#[actix_web::test]
async fn a_config_changed_after_it_was_mounted_is_mounted_as_changed() {
    let secret = Secret::generate();
    let log = Log::default();
    let base = WebhookConfig::new(secret.clone())
        .collect_registered(false)
        .module(recording_module(&log));
    let first = {
        let config = base.clone();
        TestServer::start(move || configure(config.clone()))
    };
    let small = {
        let config = base.clone().body_limit(1024);
        TestServer::start(move || configure(config.clone()))
    };
    let large =
        || delivery(&new_prediction_id(), "succeeded", json!("a".repeat(4096))).sign(&secret);
    assert_eq!(first.deliver(&large()).await.0, 200);
    assert_eq!(
        small.deliver(&large()).await.0,
        413,
        "the changed clone has its own limit"
    );
    assert_eq!(
        first.deliver(&large()).await.0,
        200,
        "and the original keeps its own"
    );
}

#[actix_web::test]
async fn signed_query_must_match_the_request_query() {
    let secret = Secret::generate();
    let log = Log::default();
    let config = WebhookConfig::new(secret.clone())
        .collect_registered(false)
        .module(recording_module(&log))
        .require_signed_query(true);
    let srv = TestServer::start(move || configure(config.clone()));
    let id = new_prediction_id();
    let mut body = sample_prediction(&id, MODEL, "succeeded", json!("x"));
    body["webhook"] = json!("https://example.com/webhooks/replicate?customId=123");
    let d = TestDelivery::new(body.to_string());
    assert_eq!(
        srv.deliver(
            &d.clone()
                .path("/webhooks/replicate?customId=999")
                .sign(&secret)
        )
        .await
        .0,
        401
    );
    assert_eq!(
        srv.deliver(&d.clone().path("/webhooks/replicate").sign(&secret))
            .await
            .0,
        401
    );
    assert_eq!(
        srv.deliver(&d.path("/webhooks/replicate?customId=123").sign(&secret))
            .await
            .0,
        200
    );
    assert_eq!(log.entries(), [format!("on_succeeded {id}")]);
}

#[actix_web::test]
async fn secret_rotation_accepts_old_and_new() {
    let (old, new) = (Secret::generate(), Secret::generate());
    let log = Log::default();
    let config = WebhookConfig::with_secrets(vec![old.clone(), new.clone()])
        .collect_registered(false)
        .module(recording_module(&log));
    let srv = TestServer::start(move || configure(config.clone()));
    assert_eq!(
        srv.deliver(&delivery(&new_prediction_id(), "succeeded", json!(1)).sign(&old))
            .await
            .0,
        200
    );
    assert_eq!(
        srv.deliver(&delivery(&new_prediction_id(), "succeeded", json!(1)).sign(&new))
            .await
            .0,
        200
    );
    assert_eq!(log.count("on_succeeded"), 2);
}

#[actix_web::test]
async fn the_fixture_payloads_are_delivered_verbatim() {
    let secret = Secret::generate();
    let log = Log::default();
    let module = recording_module(&log);
    let catch_all = Module::new("*")
        .events(Event::ALL)
        .on(HandlerKind::Succeeded, {
            let log = log.clone();
            move |p: Prediction<String>| {
                let log = log.clone();
                async move {
                    log.push(format!(
                        "catch-all {} {}",
                        p.model,
                        p.output.unwrap_or_default()
                    ));
                    Ok::<(), HandlerError>(())
                }
            }
        });
    let config = WebhookConfig::new(secret.clone())
        .collect_registered(false)
        .module(module)
        .module(catch_all);
    let srv = TestServer::start(move || configure(config.clone()));
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../fixtures/payloads/");
    let body = std::fs::read(format!("{dir}hello-world-succeeded.json")).unwrap();
    assert_eq!(
        srv.deliver(&TestDelivery::new(body).sign(&secret)).await.0,
        200
    );
    assert_eq!(
        log.entries(),
        ["catch-all replicate/hello-world hello Alice"]
    );
}

#[test]
fn configure_without_handlers_panics_with_the_fix() {
    let config = WebhookConfig::new(Secret::generate()).collect_registered(false);
    let err = replicate_webhook::try_configure(config)
        .err()
        .expect("no modules must be an error");
    assert!(err.to_string().contains("use that_crate as _;"), "{err}");
}

#[actix_web::test]
async fn an_unsubscribed_terminal_status_still_makes_later_events_stale() {
    let secret = Secret::generate();
    let log = Log::default();
    let module = recording_module(&log).events([Event::Start, Event::Output]);
    let srv = server(&secret, module);
    let id = new_prediction_id();
    let done = delivery(&id, "succeeded", json!("x")).sign(&secret);
    assert_eq!(srv.deliver(&done).await, (200, "not subscribed".to_owned()));
    let late = delivery(&id, "processing", json!("partial")).sign(&secret);
    let (status, text) = srv.deliver(&late).await;
    assert_eq!(
        (status, text.as_str()),
        (200, "stale event: the prediction already finished")
    );
    assert!(log.entries().is_empty());
}

/// Which operations of a [`FlakyStore`] fail, switchable while the server runs.
#[derive(Default)]
struct Faults {
    /// The next claim is taken at once but answered only after `LATE_BY`.
    late_claim: AtomicBool,
    complete: AtomicBool,
    /// Fails only the completion of a `webhook-id` key.
    complete_webhook: AtomicBool,
    release: AtomicBool,
    is_done: AtomicBool,
    mark_done: AtomicBool,
}

/// How late a `late_claim` is answered: well past the store timeout of the test that uses it.
const LATE_BY: Duration = Duration::from_millis(400);

/// A memory store whose operations fail on demand; `claim` always works, late on demand. It
/// offers claims only, as a custom store may: the gate keeps this process's progress markers.
#[derive(Clone, Default)]
struct FlakyStore {
    inner: Arc<MemoryStore>,
    faults: Arc<Faults>,
}

fn fail_if(flag: &AtomicBool) -> Result<(), StoreError> {
    if flag.load(Ordering::SeqCst) {
        Err(StoreError::new("connection reset"))
    } else {
        Ok(())
    }
}

#[async_trait::async_trait]
impl DedupeStore for FlakyStore {
    async fn claim(&self, key: &str, lease: Duration) -> Result<Claim, StoreError> {
        let claim = self.inner.claim(key, lease).await;
        if self.faults.late_claim.swap(false, Ordering::SeqCst) {
            tokio::time::sleep(LATE_BY).await;
        }
        claim
    }
    async fn complete(
        &self,
        key: &str,
        token: &ClaimToken,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        fail_if(&self.faults.complete)?;
        if key.starts_with("webhook:") {
            fail_if(&self.faults.complete_webhook)?;
        }
        self.inner.complete(key, token, ttl).await
    }
    async fn release(&self, key: &str, token: &ClaimToken) -> Result<(), StoreError> {
        fail_if(&self.faults.release)?;
        self.inner.release(key, token).await
    }
    async fn is_done(&self, key: &str) -> Result<bool, StoreError> {
        fail_if(&self.faults.is_done)?;
        self.inner.is_done(key).await
    }
    async fn mark_done(&self, key: &str, ttl: Duration) -> Result<(), StoreError> {
        fail_if(&self.faults.mark_done)?;
        self.inner.mark_done(key, ttl).await
    }
}

const SHORT_LEASE: Duration = Duration::from_millis(300);

/// A server over a [`FlakyStore`] with a short lease, and the store's fault switches.
fn flaky_server(secret: &Secret, module: Module) -> (TestServer, Arc<Faults>) {
    let store = FlakyStore::default();
    let faults = store.faults.clone();
    let config = WebhookConfig::new(secret.clone())
        .collect_registered(false)
        .module(module)
        .lease(SHORT_LEASE)
        .store(store);
    (TestServer::start(move || configure(config.clone())), faults)
}

/// Delivers `d` until it is no longer answered 409 (another claim still holds it; each 409
/// must carry `Retry-After`), for at most 5 s; returns the first other answer.
async fn deliver_past_409(
    srv: &TestServer,
    d: &replicate_webhook::testkit::Signed,
) -> (u16, String) {
    let until = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let response = srv.deliver_response(d).await;
        if response.status().as_u16() != 409 {
            let status = response.status().as_u16();
            return (status, response.text().await.unwrap());
        }
        replicate_webhook_tests::retry_after(&response);
        assert!(std::time::Instant::now() < until, "still 409 after 5 s");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// A 503 with a `Retry-After` of 1 to 60 s.
async fn assert_unavailable(response: reqwest::Response) {
    assert_eq!(response.status().as_u16(), 503);
    let retry_after = replicate_webhook_tests::retry_after(&response);
    assert!((1..=60).contains(&retry_after), "{retry_after}");
    assert_eq!(
        response.text().await.unwrap(),
        "dedupe store unavailable; retry later"
    );
}

/// A terminal delivery claims and completes its prediction's terminal key alone: a store that
/// cannot complete `webhook-id` keys does not stop it, and its retry runs nothing.
#[actix_web::test]
async fn a_terminal_delivery_records_its_terminal_key_alone() {
    let secret = Secret::generate();
    let log = Log::default();
    let (srv, faults) = flaky_server(&secret, recording_module(&log));
    faults.complete_webhook.store(true, Ordering::SeqCst);
    let id = new_prediction_id();
    let d = delivery(&id, "succeeded", json!("x")).sign(&secret);
    assert_eq!(srv.deliver(&d).await, (200, "done".to_owned()));
    assert_eq!(
        srv.deliver(&d).await,
        (
            200,
            "prediction already handled; its first terminal status wins".to_owned()
        )
    );
    assert_eq!(log.entries(), [format!("on_succeeded {id}")]);
}

/// After the terminal handler ran, the store fails to record it (`complete` of its terminal
/// claim): 503 with `Retry-After`, and Replicate's retry (once the claim's lease is over) gets
/// `retry_answer` after `runs_after_retry` handler runs in all. (Completing a terminal delivery
/// makes no other store call: its terminal claim is the prediction's end.)
#[actix_web::test]
async fn store_failures_after_the_terminal_handler_ran_give_503_and_a_retry_is_answered() {
    type Switch = fn(&Faults) -> &AtomicBool;
    let secret = Secret::generate();
    let cases: [(&str, Switch, &str, usize); 1] = [
        // Nothing recorded: at least once, the retry runs the handler again.
        ("complete", |f| &f.complete, "done", 2),
    ];
    for (name, switch, retry_answer, runs_after_retry) in cases {
        let log = Log::default();
        let (srv, faults) = flaky_server(&secret, recording_module(&log));
        let id = new_prediction_id();
        let d = delivery(&id, "succeeded", json!("x")).sign(&secret);

        switch(&faults).store(true, Ordering::SeqCst);
        assert_unavailable(srv.deliver_response(&d).await).await;
        assert_eq!(log.entries(), [format!("on_succeeded {id}")], "{name}");

        switch(&faults).store(false, Ordering::SeqCst);
        assert_eq!(
            deliver_past_409(&srv, &d).await,
            (200, retry_answer.to_owned()),
            "{name}"
        );
        assert_eq!(log.count("on_succeeded"), runs_after_retry, "{name}");
        assert_eq!(
            srv.deliver(&d).await,
            (
                200,
                "prediction already handled; its first terminal status wins".to_owned()
            ),
            "{name}"
        );
        assert_eq!(log.count("on_succeeded"), runs_after_retry, "{name}");
    }
}

/// The store takes a claim but answers after the store timeout: the delivery gets 503, and the
/// claim is released once the store answers, so Replicate's retry runs the handler rather than
/// being answered 409 for a whole lease by a delivery that never ran.
#[actix_web::test]
async fn a_claim_the_store_grants_too_late_is_released_for_the_retry() {
    let secret = Secret::generate();
    let log = Log::default();
    let store = FlakyStore::default();
    let faults = store.faults.clone();
    let config = WebhookConfig::new(secret.clone())
        .collect_registered(false)
        .module(recording_module(&log))
        .lease(Duration::from_mins(1))
        .store_timeout(LATE_BY / 4)
        .store(store);
    let srv = TestServer::start(move || configure(config.clone()));
    let id = new_prediction_id();
    let d = delivery(&id, "succeeded", json!("x")).sign(&secret);

    faults.late_claim.store(true, Ordering::SeqCst);
    assert_unavailable(srv.deliver_response(&d).await).await;
    assert!(log.entries().is_empty());
    // Until the late answer arrives the key is held (409); then it is free, long before the
    // 60 s lease would have freed it.
    assert_eq!(deliver_past_409(&srv, &d).await, (200, "done".to_owned()));
    assert_eq!(log.entries(), [format!("on_succeeded {id}")]);
}

#[actix_web::test]
async fn a_release_the_store_refuses_leaves_the_claim_to_its_lease() {
    let secret = Secret::generate();
    let attempts = Arc::new(AtomicUsize::new(0));
    let module = fails_once_then_succeeds(MODEL, &attempts);
    let (srv, faults) = flaky_server(&secret, module);
    let d = delivery(&new_prediction_id(), "succeeded", json!("x")).sign(&secret);

    faults.release.store(true, Ordering::SeqCst);
    assert_eq!(
        srv.deliver(&d).await,
        (500, "handler failed; retry".to_owned())
    );
    faults.release.store(false, Ordering::SeqCst);
    // The claim outlives the failed release until its lease ends; then the retry runs.
    assert_eq!(deliver_past_409(&srv, &d).await, (200, "done".to_owned()));
    assert_eq!(attempts.load(Ordering::SeqCst), 2);
}

#[actix_web::test]
async fn is_done_failing_gives_503_runs_nothing_and_frees_the_claim() {
    let secret = Secret::generate();
    let log = Log::default();
    let (srv, faults) = flaky_server(&secret, recording_module(&log));
    let id = new_prediction_id();
    let d = delivery(&id, "processing", json!(["a"])).sign(&secret);

    faults.is_done.store(true, Ordering::SeqCst);
    assert_unavailable(srv.deliver_response(&d).await).await;
    assert!(log.entries().is_empty());

    // The claim was given back and the output not taken as seen: the retry is answered at once
    // (no 409) and is still an output.
    faults.is_done.store(false, Ordering::SeqCst);
    assert_eq!(srv.deliver(&d).await, (200, "done".to_owned()));
    assert_eq!(log.entries(), [format!("on_output {id}")]);
}

#[actix_web::test]
async fn mark_done_failing_for_an_unsubscribed_terminal_status_is_still_acknowledged() {
    let secret = Secret::generate();
    let log = Log::default();
    let (srv, faults) = flaky_server(&secret, recording_module(&log).events([Event::Start]));
    faults.mark_done.store(true, Ordering::SeqCst);
    let d = delivery(&new_prediction_id(), "succeeded", json!("x")).sign(&secret);
    assert_eq!(srv.deliver(&d).await, (200, "not subscribed".to_owned()));
    assert!(log.entries().is_empty());
}

#[actix_web::test]
async fn a_decode_error_without_a_hook_is_acknowledged_and_marked_done() {
    let secret = Secret::generate();
    let runs = Arc::new(AtomicUsize::new(0));
    let (succeeded, output) = (runs.clone(), runs.clone());
    let module = Module::new(MODEL)
        .events(Event::ALL)
        .on(HandlerKind::Succeeded, move |_: Prediction<Vec<String>>| {
            succeeded.fetch_add(1, Ordering::SeqCst);
            async { Ok::<(), HandlerError>(()) }
        })
        .on(HandlerKind::Output, move |_: Prediction| {
            output.fetch_add(1, Ordering::SeqCst);
            async { Ok::<(), HandlerError>(()) }
        });
    let srv = server(&secret, module);
    let id = new_prediction_id();
    let body = sample_prediction(&id, MODEL, "succeeded", json!("not a list")).to_string();
    let d = TestDelivery::new(body.clone()).sign(&secret);
    assert_eq!(
        srv.deliver(&d).await,
        (200, "decode error handled".to_owned())
    );
    assert_eq!(runs.load(Ordering::SeqCst), 0);
    // Done under its webhook-id, its terminal status and the prediction's end.
    assert_eq!(
        srv.deliver(&d).await,
        (
            200,
            "prediction already handled; its first terminal status wins".to_owned()
        )
    );
    assert_eq!(
        srv.deliver(&TestDelivery::new(body).sign(&secret)).await,
        (
            200,
            "prediction already handled; its first terminal status wins".to_owned()
        )
    );
    assert_eq!(
        srv.deliver(&delivery(&id, "processing", json!(["a"])).sign(&secret))
            .await,
        (
            200,
            "stale event: the prediction already finished".to_owned()
        )
    );
    assert_eq!(runs.load(Ordering::SeqCst), 0);
}

/// A module whose `on_succeeded` wants a list, with an `on_decode_error` that does `hook(n)` on
/// its n-th run (0-based); `runs` counts the hook's runs.
fn decode_hook_module(
    runs: &Arc<AtomicUsize>,
    hook: fn(usize) -> Result<(), HandlerError>,
) -> Module {
    let counter = runs.clone();
    Module::new(MODEL)
        .on(HandlerKind::Succeeded, |_: Prediction<Vec<String>>| async {
            Ok::<(), HandlerError>(())
        })
        .on(HandlerKind::DecodeError, move |_: DecodeError| {
            let n = counter.fetch_add(1, Ordering::SeqCst);
            async move { hook(n) }
        })
}

#[actix_web::test]
async fn a_decode_error_hook_that_fails_or_panics_gets_500_and_is_retried() {
    let secret = Secret::generate();
    for (name, hook) in [
        (
            "retryable error",
            (|n| {
                if n == 0 {
                    Err(HandlerError::retry("database down"))
                } else {
                    Ok(())
                }
            }) as fn(usize) -> Result<(), HandlerError>,
        ),
        ("panic", |n| {
            assert!(n > 0, "boom");
            Ok(())
        }),
    ] {
        let runs = Arc::new(AtomicUsize::new(0));
        let srv = server(&secret, decode_hook_module(&runs, hook));
        let d = delivery(&new_prediction_id(), "succeeded", json!("not a list")).sign(&secret);
        let (status, _) = srv.deliver(&d).await;
        assert_eq!(status, 500, "{name}");
        // The claim was released (the worker survived the panic): the retry runs the hook again.
        assert_eq!(srv.deliver(&d).await, (200, "done".to_owned()), "{name}");
        assert_eq!(
            srv.deliver(&d).await,
            (
                200,
                "prediction already handled; its first terminal status wins".to_owned()
            ),
            "{name}"
        );
        assert_eq!(runs.load(Ordering::SeqCst), 2, "{name}");
    }
}

#[actix_web::test]
async fn a_decode_error_hook_with_a_permanent_error_is_acknowledged_once() {
    let secret = Secret::generate();
    let runs = Arc::new(AtomicUsize::new(0));
    let srv = server(
        &secret,
        decode_hook_module(&runs, |_| Err(HandlerError::permanent("unknown shape"))),
    );
    let d = delivery(&new_prediction_id(), "succeeded", json!("not a list")).sign(&secret);
    assert_eq!(
        srv.deliver(&d).await,
        (200, "handler failed permanently".to_owned())
    );
    assert_eq!(
        srv.deliver(&d).await,
        (
            200,
            "prediction already handled; its first terminal status wins".to_owned()
        )
    );
    assert_eq!(runs.load(Ordering::SeqCst), 1);
}
