//! A verified body that does not decode into the handler's types, with no `on_decode_error`
//! hook: acknowledged (200, so a schema change does not burn Replicate's retries), marked done,
//! and logged with the prediction id so the lost result can be found. This file owns the test
//! process's log subscriber.

use replicate_webhook::testkit::{TestDelivery, new_prediction_id, sample_prediction};
use replicate_webhook::{
    Event, HandlerError, HandlerKind, Module, Prediction, Secret, WebhookConfig, configure,
};
use replicate_webhook_tests::{TestServer, logs};
use serde_json::json;

#[actix_web::test]
async fn a_decode_error_without_a_hook_is_logged_with_the_prediction_id() {
    logs::captured();
    let secret = Secret::generate();
    // The handler wants a list of strings; the delivery carries a number.
    let module = Module::new("acme/typed")
        .events([Event::Completed])
        .on(HandlerKind::Succeeded, |_: Prediction<Vec<String>>| async {
            Ok::<(), HandlerError>(())
        });
    let config = WebhookConfig::new(secret.clone())
        .collect_registered(false)
        .module(module);
    let srv = TestServer::start(move || configure(config.clone()));
    let id = new_prediction_id();
    let body = sample_prediction(&id, "acme/typed", "succeeded", json!(5)).to_string();
    let d = TestDelivery::new(body).sign(&secret);
    assert_eq!(srv.deliver(&d).await, (200, "decode error handled".into()));
    let log = logs::text();
    let line = log
        .lines()
        .find(|l| l.contains("body does not decode into the handler's types"))
        .unwrap_or_else(|| panic!("no decode error logged in {log}"));
    assert!(line.contains(&format!("prediction=\"{id}\"")), "{line}");
    assert!(line.contains("on_succeeded"), "{line}");
}
