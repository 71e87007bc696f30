//! Handlers that hang, panic, or read the body through an extractor.

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use actix_web::web;
use replicate_webhook::testkit::{TestDelivery, new_prediction_id, sample_prediction};
use replicate_webhook::{
    HandlerError, HandlerKind, Module, Prediction, Secret, WebhookConfig, replicate_webhook,
};
use replicate_webhook_tests::{TestServer, only};
use serde_json::json;

const MODEL: &str = "acme/faults";

/// Body lengths the extractor handlers saw, as `model:prediction id:length` lines.
static SEEN: Mutex<Vec<String>> = Mutex::new(Vec::new());

#[replicate_webhook(model = "acme/raw-bytes")]
mod raw_bytes {
    use super::{HandlerError, Prediction, SEEN, web};

    async fn on_succeeded(p: Prediction, body: web::Bytes) -> Result<(), HandlerError> {
        SEEN.lock()
            .unwrap()
            .push(format!("bytes:{}:{}", p.id, body.len()));
        Ok(())
    }
}

#[replicate_webhook(model = "acme/raw-json")]
mod raw_json {
    use super::{HandlerError, Prediction, SEEN, web};

    async fn on_succeeded(
        p: Prediction,
        json: web::Json<serde_json::Value>,
    ) -> Result<(), HandlerError> {
        let len = json["output"].as_str().map_or(0, str::len);
        SEEN.lock().unwrap().push(format!("json:{}:{len}", p.id));
        Ok(())
    }
}

/// A module whose `on_succeeded` misbehaves (`first`) on its first run only; `runs` counts runs.
fn first_run(
    runs: &Arc<AtomicUsize>,
    first: fn() -> std::pin::Pin<Box<dyn Future<Output = ()>>>,
) -> Module {
    let runs = runs.clone();
    Module::new(MODEL).on(HandlerKind::Succeeded, move |_: Prediction| {
        let n = runs.fetch_add(1, Ordering::SeqCst);
        async move {
            if n == 0 {
                first().await;
            }
            Ok::<(), HandlerError>(())
        }
    })
}

fn serve(secret: &Secret, module: Module, timeout: Duration) -> TestServer {
    TestServer::serve(only(secret, module).handler_timeout(timeout))
}

#[actix_web::test]
async fn a_handler_past_its_timeout_gets_500_and_its_retry_runs_once_more() {
    let secret = Secret::generate();
    let runs = Arc::new(AtomicUsize::new(0));
    // The first run never finishes on its own.
    let module = first_run(&runs, || Box::pin(std::future::pending()));
    let timeout = Duration::from_millis(300);
    let srv = serve(&secret, module, timeout);
    let signed = TestDelivery::new(
        sample_prediction(&new_prediction_id(), MODEL, "succeeded", json!("x")).to_string(),
    )
    .sign(&secret);
    let started = Instant::now();
    assert_eq!(
        srv.deliver(&signed).await,
        (500, "handler failed; retry".into())
    );
    let took = started.elapsed();
    assert!(took >= timeout && took < Duration::from_secs(5), "{took:?}");
    // Replicate's retry: the claim was released, so it runs again, fast this time.
    assert_eq!(srv.deliver(&signed).await, (200, "done".into()));
    assert_eq!(srv.deliver(&signed).await.0, 200);
    assert_eq!(runs.load(Ordering::SeqCst), 2);
}

#[actix_web::test]
async fn a_panicking_handler_gets_500_and_its_retry_is_handled_once() {
    let secret = Secret::generate();
    let runs = Arc::new(AtomicUsize::new(0));
    let module = first_run(&runs, || Box::pin(async { panic!("handler bug") }));
    let srv = serve(&secret, module, Duration::from_secs(10));
    let signed = TestDelivery::new(
        sample_prediction(&new_prediction_id(), MODEL, "succeeded", json!("x")).to_string(),
    )
    .sign(&secret);
    assert_eq!(
        srv.deliver(&signed).await,
        (500, "handler failed; retry".into())
    );
    assert_eq!(srv.deliver(&signed).await, (200, "done".into()));
    assert_eq!(
        srv.deliver(&signed).await,
        (
            200,
            "prediction already handled; its first terminal status wins".into()
        )
    );
    assert_eq!(runs.load(Ordering::SeqCst), 2);
}

#[actix_web::test]
async fn body_extractors_get_the_receivers_limit_not_actix_defaults() {
    let secret = Secret::generate();
    let srv = TestServer::serve(WebhookConfig::new(secret.clone()));
    // Over actix's defaults (256 KiB for web::Bytes, 2 MiB for web::Json), under the 8 MiB limit.
    let output = "a".repeat(3 * 1024 * 1024);
    for (model, kind) in [("acme/raw-bytes", "bytes"), ("acme/raw-json", "json")] {
        let id = new_prediction_id();
        let body = sample_prediction(&id, model, "succeeded", json!(output)).to_string();
        assert!(body.len() > 3 * 1024 * 1024);
        let expected = if kind == "bytes" {
            body.len()
        } else {
            output.len()
        };
        let signed = TestDelivery::new(body).sign(&secret);
        assert_eq!(srv.deliver(&signed).await, (200, "done".into()), "{kind}");
        let line = format!("{kind}:{id}:{expected}");
        assert!(
            SEEN.lock().unwrap().contains(&line),
            "{line} in {:?}",
            SEEN.lock()
                .unwrap()
                .iter()
                .map(|l| &l[..l.len().min(60)])
                .collect::<Vec<_>>()
        );
    }
}
