//! OpenTelemetry: the receiver, configured only by the standard `OTEL_EXPORTER_OTLP_ENDPOINT`,
//! exports one span per delivery over OTLP/HTTP to a collector this test runs, continuing the
//! trace of the request's `traceparent` (and `tracestate`), with the delivery's attributes.
//!
//! The environment is the process's, which a test may not change while others run: the test
//! runs this binary again as a child (`otel_child`) with the variables set.

use std::net::TcpListener;
use std::sync::mpsc;
use std::time::Duration;

use actix_web::{App, HttpResponse, HttpServer, web};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message as _;
use replicate_webhook::otel::Otel;
use replicate_webhook::testkit::{TestDelivery, new_prediction_id, sample_prediction};
use replicate_webhook::{HandlerKind, Module, Prediction, WebhookConfig};
use replicate_webhook_tests::{TestServer, inbox};
use tracing_subscriber::layer::SubscriberExt as _;

const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT_ID: &str = "00f067aa0ba902b7";
const CHILD: &str = "REPLICATE_WEBHOOK_OTEL_CHILD";

/// The collector: OTLP/HTTP protobuf at /v1/traces, decoded with the protocol's own types.
fn collector() -> (u16, mpsc::Receiver<Span>, actix_web::dev::ServerHandle) {
    let (spans_tx, spans_rx) = mpsc::channel::<Span>();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let collector = HttpServer::new(move || {
        let spans = spans_tx.clone();
        App::new().route(
            "/v1/traces",
            web::post().to(move |body: web::Bytes| {
                let spans = spans.clone();
                async move {
                    let request = ExportTraceServiceRequest::decode(body).expect("OTLP protobuf");
                    for span in request
                        .resource_spans
                        .into_iter()
                        .flat_map(|r| r.scope_spans)
                        .flat_map(|s| s.spans)
                    {
                        let _ = spans.send(span);
                    }
                    HttpResponse::Ok()
                        .content_type("application/x-protobuf")
                        .finish()
                }
            }),
        )
    })
    .workers(1)
    .disable_signals()
    .listen(listener)
    .unwrap()
    .run();
    let handle = collector.handle();
    actix_web::rt::spawn(collector);
    (port, spans_rx, handle)
}

/// Runs the test `child` of this binary with the OTLP endpoint at `port`; it delivers
/// `prediction` with the sender's `traceparent`.
async fn run_child(child: &'static str, prediction: &str, port: u16) {
    let prediction = prediction.to_owned();
    let child = tokio::task::spawn_blocking(move || {
        std::process::Command::new(std::env::current_exe().unwrap())
            .args([child, "--exact", "--nocapture"])
            .env(CHILD, &prediction)
            .env(
                "OTEL_EXPORTER_OTLP_ENDPOINT",
                format!("http://127.0.0.1:{port}"),
            )
            .env("OTEL_SERVICE_NAME", "otel-test")
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(
        child.status.success(),
        "child failed: {}\n{}",
        String::from_utf8_lossy(&child.stdout),
        String::from_utf8_lossy(&child.stderr)
    );
}

/// The attribute `key` of `span`, as text.
fn attribute(span: &Span, key: &str) -> Option<String> {
    span.attributes
        .iter()
        .find(|a| a.key == key)
        .and_then(|a| a.value.as_ref()?.value.as_ref())
        .map(|v| match v {
            Value::StringValue(s) => s.clone(),
            Value::IntValue(n) => n.to_string(),
            other => format!("{other:?}"),
        })
}

#[actix_rt::test]
async fn a_delivery_span_continues_the_senders_trace_and_reaches_the_collector() {
    let (port, spans_rx, handle) = collector();
    let prediction = new_prediction_id();
    run_child("otel_child", &prediction, port).await;
    let span = loop {
        let span = spans_rx
            .recv_timeout(Duration::from_secs(10))
            .expect("no delivery span reached the collector");
        if span.name == "delivery" {
            break span;
        }
    };
    handle.stop(false).await;

    assert_eq!(
        hex(&span.trace_id),
        TRACE_ID,
        "the sender's trace continues"
    );
    assert_eq!(
        hex(&span.parent_span_id),
        PARENT_ID,
        "a child of the sender's span"
    );
    assert_eq!(span.trace_state, "vendor=cog");
    let attribute = |key: &str| attribute(&span, key);
    assert_eq!(
        attribute("prediction").as_deref(),
        Some(prediction.as_str())
    );
    assert_eq!(attribute("model").as_deref(), Some("acme/traced"));
    assert_eq!(attribute("status").as_deref(), Some("succeeded"));
    assert_eq!(attribute("event").as_deref(), Some("completed"));
    assert_eq!(attribute("outcome").as_deref(), Some("ran"));
}

#[actix_rt::test]
async fn an_inbox_job_span_is_a_child_of_its_deliverys_span() {
    let (port, spans_rx, handle) = collector();
    let prediction = new_prediction_id();
    run_child("otel_inbox_child", &prediction, port).await;
    let (mut delivery, mut job) = (None, None);
    while delivery.is_none() || job.is_none() {
        let span = spans_rx
            .recv_timeout(Duration::from_secs(10))
            .expect("the delivery's and the job's spans reach the collector");
        match span.name.as_str() {
            "delivery" => delivery = Some(span),
            "inbox_job" => job = Some(span),
            _ => {}
        }
    }
    handle.stop(false).await;
    let (delivery, job) = (delivery.unwrap(), job.unwrap());

    assert_eq!(hex(&delivery.trace_id), TRACE_ID);
    assert_eq!(attribute(&delivery, "outcome").as_deref(), Some("queued"));
    assert_eq!(hex(&job.trace_id), TRACE_ID, "the sender's trace continues");
    assert_eq!(
        hex(&job.parent_span_id),
        hex(&delivery.span_id),
        "the job's run is a child of the delivery that stored it"
    );
    assert_eq!(
        attribute(&job, "prediction").as_deref(),
        Some(prediction.as_str())
    );
    assert_eq!(attribute(&job, "model").as_deref(), Some("acme/traced"));
    assert_eq!(attribute(&job, "status").as_deref(), Some("succeeded"));
    assert_eq!(attribute(&job, "event").as_deref(), Some("completed"));
    assert_eq!(attribute(&job, "handler").as_deref(), Some("on_succeeded"));
    assert_eq!(attribute(&job, "outcome").as_deref(), Some("done"));
}

/// The receiver with OpenTelemetry from the environment; a no-op unless run by the test above.
#[actix_rt::test]
async fn otel_child() {
    let Ok(prediction) = std::env::var(CHILD) else {
        return;
    };
    let otel = Otel::from_env()
        .unwrap()
        .expect("OTEL_EXPORTER_OTLP_ENDPOINT is set");
    tracing::subscriber::set_global_default(tracing_subscriber::registry().with(otel.layer()))
        .unwrap();
    let module = Module::new("acme/traced").on(HandlerKind::Succeeded, |_: Prediction| async {
        Ok::<(), replicate_webhook::HandlerError>(())
    });
    let server = TestServer::serve(
        WebhookConfig::new(inbox::secret())
            .collect_registered(false)
            .module(module),
    );
    let body = sample_prediction(
        &prediction,
        "acme/traced",
        "succeeded",
        serde_json::json!("x"),
    );
    let signed = TestDelivery::new(body.to_string()).sign(&inbox::secret());
    let mut request = reqwest::Client::new()
        .post(server.url(signed.path()))
        .header("content-type", "application/json")
        .header("traceparent", format!("00-{TRACE_ID}-{PARENT_ID}-01"))
        .header("tracestate", "vendor=cog")
        .body(signed.body().to_vec());
    for (name, value) in signed.headers() {
        request = request.header(name, value);
    }
    assert_eq!(request.send().await.unwrap().status().as_u16(), 200);
    // Sends what the batch holds before the process ends.
    tokio::task::spawn_blocking(move || otel.shutdown())
        .await
        .unwrap();
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().fold(String::new(), |mut out, b| {
        let _ = std::fmt::Write::write_fmt(&mut out, format_args!("{b:02x}"));
        out
    })
}

/// An inbox receiver with OpenTelemetry from the environment: a no-op unless run by
/// `an_inbox_job_span_is_a_child_of_its_deliverys_span`.
#[actix_rt::test]
async fn otel_inbox_child() {
    let Ok(prediction) = std::env::var(CHILD) else {
        return;
    };
    let otel = Otel::from_env()
        .unwrap()
        .expect("OTEL_EXPORTER_OTLP_ENDPOINT is set");
    tracing::subscriber::set_global_default(tracing_subscriber::registry().with(otel.layer()))
        .unwrap();
    let (ran_tx, mut ran) = tokio::sync::mpsc::unbounded_channel::<()>();
    let module = Module::new("acme/traced").on(HandlerKind::Succeeded, move |_: Prediction| {
        let ran = ran_tx.clone();
        async move {
            let _ = ran.send(());
            Ok::<(), replicate_webhook::HandlerError>(())
        }
    });
    let db = inbox::Db::sqlite();
    let server = TestServer::serve(
        db.config(module, inbox::fast_options())
            .collect_registered(false),
    );
    let body = sample_prediction(
        &prediction,
        "acme/traced",
        "succeeded",
        serde_json::json!("x"),
    );
    let signed = TestDelivery::new(body.to_string()).sign(&inbox::secret());
    let mut request = reqwest::Client::new()
        .post(server.url(signed.path()))
        .header("content-type", "application/json")
        .header("traceparent", format!("00-{TRACE_ID}-{PARENT_ID}-01"))
        .body(signed.body().to_vec());
    for (name, value) in signed.headers() {
        request = request.header(name, value);
    }
    assert_eq!(request.send().await.unwrap().status().as_u16(), 200);
    replicate_webhook_tests::within(ran.recv())
        .await
        .expect("the worker ran the job");
    // The job settles right after its handler returns; its span closes with it.
    let url = replicate_webhook::dedupe::StoreUrl::parse(&db.url()).unwrap();
    let jobs = replicate_webhook::inbox::Inbox::open(&url).unwrap();
    inbox::until_state(&jobs, &prediction, replicate_webhook::inbox::JobState::Done).await;
    tokio::task::spawn_blocking(move || otel.shutdown())
        .await
        .unwrap();
}
