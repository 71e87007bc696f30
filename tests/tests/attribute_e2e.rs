//! `#[replicate_webhook]` modules end to end: signed deliveries over real HTTP on 127.0.0.1.
//!
//! Every attribute module in this binary is mounted by every `configure` call, so each test
//! uses its own server (own dedupe store, own `Log`) and its own prediction ids.

use std::sync::Mutex;

use actix_web::web;
use replicate_webhook::testkit::{TestDelivery, new_prediction_id, sample_prediction};
use replicate_webhook::{
    DecodeError, HandlerError, Prediction, Secret, WebhookConfig, replicate_webhook,
};
use replicate_webhook_tests::TestServer;
use serde_json::{Value, json};

/// What the handlers saw, as `handler:prediction id:detail` lines. Reached through `web::Data`.
#[derive(Debug, Default)]
struct Log(Mutex<Vec<String>>);

impl Log {
    fn push(&self, handler: &str, id: &str, detail: impl std::fmt::Display) {
        self.0
            .lock()
            .unwrap()
            .push(format!("{handler}:{id}:{detail}"));
    }

    fn for_prediction(&self, id: &str) -> Vec<String> {
        let needle = format!(":{id}:");
        self.0
            .lock()
            .unwrap()
            .iter()
            .filter(|line| line.contains(&needle))
            .cloned()
            .collect()
    }
}

/// `on_start` takes no extractor, so it records here.
static STARTED: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// Never registered as app data: extracting it fails.
#[derive(Debug)]
struct NotRegistered;

#[replicate_webhook(model = "e2e/all", events = ["start", "output", "logs", "completed"])]
mod all {
    use super::{DecodeError, HandlerError, Log, Prediction, STARTED, web};

    async fn on_start(p: Prediction) -> Result<(), HandlerError> {
        STARTED.lock().unwrap().push(p.id);
        Ok(())
    }

    async fn on_output(
        p: Prediction<Vec<String>>,
        log: web::Data<Log>,
    ) -> Result<(), HandlerError> {
        log.push("output", &p.id, p.output.unwrap_or_default().join(","));
        Ok(())
    }

    async fn on_logs(p: Prediction, log: web::Data<Log>) -> Result<(), HandlerError> {
        log.push("logs", &p.id, p.logs.unwrap_or_default().trim());
        Ok(())
    }

    async fn on_succeeded(
        p: Prediction<Vec<String>>,
        log: web::Data<Log>,
        req: actix_web::HttpRequest,
    ) -> Result<(), HandlerError> {
        let output = p.output.unwrap_or_default().join(",");
        log.push("succeeded", &p.id, format!("{output}@{}", req.path()));
        Ok(())
    }

    async fn on_failed(p: Prediction, log: web::Data<Log>) -> Result<(), HandlerError> {
        log.push("failed", &p.id, p.error.unwrap_or_default());
        Ok(())
    }

    async fn on_canceled(p: Prediction, log: web::Data<Log>) -> Result<(), HandlerError> {
        log.push("canceled", &p.id, p.status);
        Ok(())
    }

    async fn on_decode_error(e: DecodeError, log: web::Data<Log>) -> Result<(), HandlerError> {
        let id = e.prediction().map(|p| p.id).unwrap_or_default();
        log.push("decode_error", &id, e.message());
        Ok(())
    }
}

#[replicate_webhook(model = "e2e/aborts")]
mod aborts {
    use super::{HandlerError, Log, Prediction, web};

    async fn on_aborted(p: Prediction, log: web::Data<Log>) -> Result<(), HandlerError> {
        log.push("aborted", &p.id, p.status);
        Ok(())
    }

    async fn on_canceled(p: Prediction, log: web::Data<Log>) -> Result<(), HandlerError> {
        log.push("canceled", &p.id, p.status);
        Ok(())
    }
}

#[replicate_webhook(model = "e2e/flaky")]
mod flaky {
    use super::{HandlerError, Log, Prediction, web};

    /// Fails the first attempt of each prediction, succeeds on the retry.
    async fn on_succeeded(p: Prediction, log: web::Data<Log>) -> Result<(), HandlerError> {
        let attempt = log.for_prediction(&p.id).len() + 1;
        log.push("succeeded", &p.id, attempt);
        if attempt == 1 {
            return Err(HandlerError::retry("database briefly unavailable"));
        }
        Ok(())
    }
}

#[replicate_webhook(model = "e2e/panics")]
mod panics {
    use super::{HandlerError, Prediction};

    async fn on_succeeded(p: Prediction) -> Result<(), HandlerError> {
        panic!("handler bug for {}", p.id);
    }
}

#[replicate_webhook(model = "e2e/needs-data")]
mod needs_data {
    use super::{HandlerError, NotRegistered, Prediction, web};

    async fn on_succeeded(
        _p: Prediction,
        _missing: web::Data<NotRegistered>,
    ) -> Result<(), HandlerError> {
        Ok(())
    }
}

#[replicate_webhook(model = "e2e/raw-body")]
mod raw_body {
    use super::{HandlerError, Log, Prediction, web};

    async fn on_succeeded(
        p: Prediction,
        body: web::Bytes,
        json: web::Json<Prediction>,
        log: web::Data<Log>,
    ) -> Result<(), HandlerError> {
        log.push("raw", &p.id, format!("{} {}", body.len(), json.id == p.id));
        Ok(())
    }
}

/// An extractor with a bug.
#[derive(Debug)]
struct Explodes;

impl actix_web::FromRequest for Explodes {
    type Error = actix_web::Error;
    type Future = std::future::Ready<Result<Self, Self::Error>>;

    fn from_request(_: &actix_web::HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        panic!("extractor bug")
    }
}

#[replicate_webhook(model = "e2e/extractor-panics")]
mod extractor_panics {
    use super::{Explodes, HandlerError, Prediction};

    async fn on_succeeded(_p: Prediction, _boom: Explodes) -> Result<(), HandlerError> {
        Ok(())
    }
}

#[replicate_webhook(model = "*")]
mod any_model {
    use super::{HandlerError, Log, Prediction, web};

    async fn on_succeeded(p: Prediction, log: web::Data<Log>) -> Result<(), HandlerError> {
        log.push("any", &p.id, p.model);
        Ok(())
    }
}

#[replicate_webhook(model = "e2e/all", path = "/hooks/second")]
mod second_path {
    use super::{HandlerError, Log, Prediction, web};

    async fn on_succeeded(p: Prediction, log: web::Data<Log>) -> Result<(), HandlerError> {
        log.push("second", &p.id, p.model);
        Ok(())
    }
}

#[replicate_webhook(
    model = "black-forest-labs/flux-schnell",
    schema = "../fixtures/schemas/black-forest-labs__flux-schnell.json"
)]
mod flux {
    use super::{HandlerError, Log, Prediction, web};

    async fn on_succeeded(
        p: Prediction<Output, Input>,
        log: web::Data<Log>,
    ) -> Result<(), HandlerError> {
        let images = p.output.map(|o| o.len()).unwrap_or_default();
        log.push("flux", &p.id, format!("{} -> {images}", p.input.prompt));
        Ok(())
    }
}

/// A running server and what it needs to send to it.
struct Server {
    srv: TestServer,
    secret: Secret,
    log: web::Data<Log>,
}

impl Server {
    fn start() -> Self {
        let secret = Secret::generate();
        let config = WebhookConfig::new(secret.clone());
        let log = web::Data::new(Log::default());
        let app_log = log.clone();
        let srv = TestServer::start(move || {
            let app_log = app_log.clone();
            let mount = replicate_webhook::configure(config.clone());
            move |cfg: &mut web::ServiceConfig| {
                cfg.app_data(app_log);
                mount(cfg);
            }
        });
        Self { srv, secret, log }
    }

    /// Signs and posts `delivery`; returns the status and body.
    async fn send(&self, delivery: &TestDelivery) -> (u16, String) {
        self.srv.deliver(&delivery.sign(&self.secret)).await
    }
}

fn delivery(id: &str, model: &str, status: &str, output: Value) -> TestDelivery {
    TestDelivery::new(sample_prediction(id, model, status, output).to_string())
}

#[actix_rt::test]
async fn each_lifecycle_event_reaches_its_handler() {
    let server = Server::start();
    let id = new_prediction_id();

    let (status, _) = server
        .send(&delivery(&id, "e2e/all", "starting", Value::Null))
        .await;
    assert_eq!(status, 200);
    assert!(STARTED.lock().unwrap().contains(&id));

    let processing = delivery(&id, "e2e/all", "processing", json!(["a"]));
    assert_eq!(server.send(&processing).await.0, 200);
    // Same output again, new delivery: only the logs changed.
    let processing = delivery(&id, "e2e/all", "processing", json!(["a"]));
    assert_eq!(server.send(&processing).await.0, 200);

    let done = delivery(&id, "e2e/all", "succeeded", json!(["a", "b"]));
    assert_eq!(server.send(&done).await.0, 200);

    assert_eq!(
        server.log.for_prediction(&id),
        [
            format!("output:{id}:a"),
            format!("logs:{id}:Generating..."),
            format!("succeeded:{id}:a,b@/webhooks/replicate"),
        ]
    );
}

#[actix_rt::test]
async fn failed_canceled_and_aborted_reach_their_handlers() {
    let server = Server::start();
    let (failed, canceled, aborted) = (
        new_prediction_id(),
        new_prediction_id(),
        new_prediction_id(),
    );
    let direct = new_prediction_id();

    for (id, model, status) in [
        (&failed, "e2e/all", "failed"),
        (&canceled, "e2e/all", "canceled"),
        (&aborted, "e2e/all", "aborted"),
        (&direct, "e2e/aborts", "aborted"),
    ] {
        let (code, body) = server.send(&delivery(id, model, status, Value::Null)).await;
        assert_eq!(code, 200, "{status}: {body}");
    }

    assert_eq!(
        server.log.for_prediction(&failed),
        [format!("failed:{failed}:CUDA out of memory")]
    );
    assert_eq!(
        server.log.for_prediction(&canceled),
        [format!("canceled:{canceled}:canceled")]
    );
    // No `on_aborted` in `all`: `on_canceled` gets it.
    assert_eq!(
        server.log.for_prediction(&aborted),
        [format!("canceled:{aborted}:aborted")]
    );
    // `aborts` has `on_aborted`: it wins over `on_canceled`.
    assert_eq!(
        server.log.for_prediction(&direct),
        [format!("aborted:{direct}:aborted")]
    );
}

#[actix_rt::test]
async fn output_that_does_not_decode_goes_to_on_decode_error() {
    let server = Server::start();
    let id = new_prediction_id();
    let (status, body) = server
        .send(&delivery(&id, "e2e/all", "succeeded", json!(42)))
        .await;
    assert_eq!(status, 200, "{body}");
    let log = server.log.for_prediction(&id);
    assert_eq!(log.len(), 1, "{log:?}");
    assert!(
        log[0].starts_with(&format!("decode_error:{id}:")),
        "{log:?}"
    );
    assert!(log[0].contains("expected a sequence"), "{log:?}");
}

#[actix_rt::test]
async fn a_duplicate_delivery_does_not_run_the_handler_again() {
    let server = Server::start();
    let id = new_prediction_id();
    let done = delivery(&id, "e2e/all", "succeeded", json!(["x"])).id("msg_duplicate");
    assert_eq!(server.send(&done).await.0, 200);
    let (status, body) = server.send(&done).await;
    assert_eq!(status, 200);
    // A terminal status is deduplicated by its prediction: the first one handled wins.
    assert!(body.contains("already handled"), "{body}");
    assert_eq!(server.log.for_prediction(&id).len(), 1);
}

#[actix_rt::test]
async fn a_handler_error_gives_500_and_the_retry_succeeds() {
    let server = Server::start();
    let id = new_prediction_id();
    let done = delivery(&id, "e2e/flaky", "succeeded", Value::Null).id("msg_flaky");

    let (status, body) = server.send(&done).await;
    assert_eq!(status, 500, "{body}");
    let (status, body) = server.send(&done).await;
    assert_eq!(status, 200, "{body}");
    // The claim was released, so the retry ran the handler; a third delivery is a duplicate.
    assert_eq!(server.send(&done).await.0, 200);
    assert_eq!(
        server.log.for_prediction(&id),
        [format!("succeeded:{id}:1"), format!("succeeded:{id}:2")]
    );
}

#[actix_rt::test]
async fn a_panicking_handler_gives_500_and_the_server_stays_up() {
    let server = Server::start();
    let id = new_prediction_id();
    let (status, body) = server
        .send(&delivery(&id, "e2e/panics", "succeeded", Value::Null))
        .await;
    assert_eq!(status, 500, "{body}");

    let next = new_prediction_id();
    let (status, _) = server
        .send(&delivery(&next, "e2e/all", "succeeded", json!(["ok"])))
        .await;
    assert_eq!(status, 200);
    assert_eq!(server.log.for_prediction(&next).len(), 1);
}

#[actix_rt::test]
async fn a_failing_extractor_gives_500() {
    let server = Server::start();
    let id = new_prediction_id();
    let (status, body) = server
        .send(&delivery(&id, "e2e/needs-data", "succeeded", Value::Null))
        .await;
    assert_eq!(status, 500);
    assert!(body.contains("extraction"), "{body}");
}

#[actix_rt::test]
async fn a_panicking_extractor_gives_500_and_the_server_stays_up() {
    let server = Server::start();
    let d = delivery(
        &new_prediction_id(),
        "e2e/extractor-panics",
        "succeeded",
        Value::Null,
    );
    assert_eq!(server.send(&d).await.0, 500);
    assert_eq!(server.send(&d).await.0, 500);
    let next = new_prediction_id();
    let ok = delivery(&next, "e2e/all", "succeeded", json!(["ok"]));
    assert_eq!(server.send(&ok).await.0, 200);
    assert_eq!(server.log.for_prediction(&next).len(), 1);
}

#[actix_rt::test]
async fn body_extractors_receive_the_verified_body() {
    let server = Server::start();
    let id = new_prediction_id();
    let d = delivery(&id, "e2e/raw-body", "succeeded", json!("x"));
    assert_eq!(server.send(&d).await.0, 200);
    assert_eq!(
        server.log.for_prediction(&id),
        [format!("raw:{id}:{} true", d.body().len())]
    );
}

#[actix_rt::test]
async fn the_catch_all_only_covers_its_own_path() {
    let server = Server::start();
    let id = new_prediction_id();
    let elsewhere =
        delivery(&id, "e2e/someone-else", "succeeded", json!("o")).path("/hooks/second");
    assert_eq!(
        server.send(&elsewhere).await,
        (200, "no handler for this model".to_owned())
    );
    assert!(server.log.for_prediction(&id).is_empty());
}

#[actix_rt::test]
async fn a_specific_model_wins_over_the_catch_all() {
    let server = Server::start();
    let (specific, other) = (new_prediction_id(), new_prediction_id());
    assert_eq!(
        server
            .send(&delivery(&specific, "e2e/all", "succeeded", json!(["s"])))
            .await
            .0,
        200
    );
    assert_eq!(
        server
            .send(&delivery(
                &other,
                "e2e/someone-else",
                "succeeded",
                json!("o")
            ))
            .await
            .0,
        200
    );

    assert_eq!(
        server.log.for_prediction(&specific),
        [format!("succeeded:{specific}:s@/webhooks/replicate")]
    );
    assert_eq!(
        server.log.for_prediction(&other),
        [format!("any:{other}:e2e/someone-else")]
    );
}

#[actix_rt::test]
async fn two_paths_route_to_their_own_modules() {
    let server = Server::start();
    let (first, second) = (new_prediction_id(), new_prediction_id());
    assert_eq!(
        server
            .send(&delivery(&first, "e2e/all", "succeeded", json!(["1"])))
            .await
            .0,
        200
    );
    let on_second = delivery(&second, "e2e/all", "succeeded", json!(["2"])).path("/hooks/second");
    assert_eq!(server.send(&on_second).await.0, 200);

    assert_eq!(
        server.log.for_prediction(&first),
        [format!("succeeded:{first}:1@/webhooks/replicate")]
    );
    assert_eq!(
        server.log.for_prediction(&second),
        [format!("second:{second}:e2e/all")]
    );
    assert_eq!(second_path::WEBHOOK.path, "/hooks/second");
    assert_eq!(
        all::WEBHOOK.events_filter(),
        ["start", "output", "logs", "completed"]
    );
}

#[actix_rt::test]
async fn schema_types_decode_input_and_output() {
    let server = Server::start();
    let id = new_prediction_id();
    let output = json!([
        "https://replicate.delivery/a.webp",
        "https://replicate.delivery/b.webp"
    ]);
    let done = delivery(&id, "black-forest-labs/flux-schnell", "succeeded", output);
    let (status, body) = server.send(&done).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        server.log.for_prediction(&id),
        [format!("flux:{id}:an astronaut riding a horse -> 2")]
    );
}
