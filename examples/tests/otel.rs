//! The quickstart turns OpenTelemetry on when `OTEL_EXPORTER_OTLP_ENDPOINT` is set: a delivery
//! carrying a `traceparent` reaches the handler, and its `delivery` span, in the sender's trace,
//! reaches the OTLP collector this test runs (the protobuf holds the prediction id, the span's
//! name and the trace id as they are).

use std::net::TcpListener;
use std::time::Duration;

use actix_web::{App, HttpResponse, HttpServer, web};
use replicate_webhook::Secret;
use replicate_webhook::testkit::{TestDelivery, new_prediction_id, sample_prediction};
use replicate_webhook_tests::process::Process;

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const TRACE_ID: &str = "0af7651916cd43dd8448eb211c80319c";

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[actix_rt::test]
async fn the_quickstart_exports_each_deliverys_span_when_the_endpoint_is_set() {
    let (tx, mut exports) = tokio::sync::mpsc::unbounded_channel::<Vec<u8>>();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let collector = HttpServer::new(move || {
        let tx = tx.clone();
        App::new().route(
            "/v1/traces",
            web::post().to(move |body: web::Bytes| {
                let _ = tx.send(body.to_vec());
                async {
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

    let dir = tempfile::tempdir().unwrap();
    let endpoint = format!("http://127.0.0.1:{port}");
    let quickstart = Process::start(
        env!("CARGO_BIN_EXE_quickstart"),
        dir.path(),
        &[
            ("REPLICATE_WEBHOOK_SECRET", SECRET),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
            // The batch is sent every 100 ms instead of every 5 s.
            ("OTEL_BSP_SCHEDULE_DELAY", "100"),
        ],
    );
    assert!(
        quickstart
            .banner
            .iter()
            .any(|l| l.contains("OpenTelemetry on")),
        "{:?}",
        quickstart.banner
    );

    let prediction = new_prediction_id();
    let body = sample_prediction(
        &prediction,
        "replicate/hello-world",
        "succeeded",
        serde_json::json!("hello"),
    );
    let signed = TestDelivery::new(body.to_string()).sign(&Secret::parse(SECRET).unwrap());
    let mut request = reqwest::Client::new()
        .post(&quickstart.url)
        .header("content-type", "application/json")
        .header("traceparent", format!("00-{TRACE_ID}-b7ad6b7169203331-01"))
        .body(signed.body().to_vec());
    for (name, value) in signed.headers() {
        request = request.header(name, value);
    }
    assert_eq!(request.send().await.unwrap().status().as_u16(), 200);

    let trace_id: Vec<u8> = (0..TRACE_ID.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&TRACE_ID[i..i + 2], 16).unwrap())
        .collect();
    let exported = tokio::time::timeout(Duration::from_secs(15), async {
        while let Some(export) = exports.recv().await {
            if contains(&export, prediction.as_bytes()) {
                return export;
            }
        }
        panic!("the collector stopped");
    })
    .await
    .expect("the delivery's span reached the collector");
    assert!(contains(&exported, b"delivery"), "the span's name");
    assert!(contains(&exported, &trace_id), "the sender's trace id");
    drop(quickstart);
    handle.stop(false).await;
}
