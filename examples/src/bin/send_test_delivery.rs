//! Sends one signed sample delivery to a receiver, no curl needed:
//!
//! ```text
//! REPLICATE_WEBHOOK_SECRET=whsec_… cargo run --bin send-test-delivery -- [URL] [STATUS] [MODEL]
//! ```
//!
//! URL defaults to `http://127.0.0.1:8080/webhooks/replicate`, STATUS to `succeeded`, MODEL to
//! `replicate/hello-world`. Prints the response status and body.

use std::process::ExitCode;

use replicate_webhook::testkit::{TestDelivery, new_prediction_id, sample_prediction};
use replicate_webhook::{Secret, parse_secrets};

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let url = args
        .next()
        .unwrap_or_else(|| "http://127.0.0.1:8080/webhooks/replicate".to_owned());
    let status = args.next().unwrap_or_else(|| "succeeded".to_owned());
    let model = args
        .next()
        .unwrap_or_else(|| "replicate/hello-world".to_owned());

    let secret: Secret =
        match parse_secrets(&std::env::var("REPLICATE_WEBHOOK_SECRET").unwrap_or_default()) {
            Ok(mut secrets) => secrets.remove(0),
            Err(e) => {
                eprintln!("send-test-delivery: {e}");
                return ExitCode::from(2);
            }
        };
    let output = match status.as_str() {
        "succeeded" | "processing" => serde_json::json!("hello Alice"),
        _ => serde_json::Value::Null,
    };
    let body = sample_prediction(&new_prediction_id(), &model, &status, output).to_string();
    let signed = TestDelivery::new(body).sign(&secret);

    let mut req = reqwest::Client::new()
        .post(&url)
        .header("content-type", "application/json")
        .body(signed.body().to_vec());
    for (name, value) in signed.headers() {
        req = req.header(name, value);
    }
    match req.send().await {
        Ok(resp) => {
            let code = resp.status();
            println!(
                "{} {}",
                code.as_u16(),
                resp.text().await.unwrap_or_default()
            );
            if code.is_success() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!("send-test-delivery: {url}: {e}");
            ExitCode::FAILURE
        }
    }
}
