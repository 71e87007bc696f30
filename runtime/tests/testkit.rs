//! The test kit drives `actix_web::test` without a network: accepted and refused deliveries.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use actix_web::{App, test};
use replicate_webhook::testkit::TestDelivery;
use replicate_webhook::{
    HandlerError, HandlerKind, Module, Prediction, Secret, WebhookConfig, configure,
};

#[actix_web::test]
async fn signed_deliveries_work_with_actix_web_test() {
    let secret = Secret::generate();
    let runs = Arc::new(AtomicUsize::new(0));
    let counter = runs.clone();
    let module = Module::new("replicate/hello-world").on(
        HandlerKind::Succeeded,
        move |p: Prediction<String>| {
            let counter = counter.clone();
            async move {
                assert_eq!(p.output.as_deref(), Some("hello Alice"));
                counter.fetch_add(1, Ordering::SeqCst);
                Ok::<(), HandlerError>(())
            }
        },
    );
    let config = WebhookConfig::new(secret.clone())
        .collect_registered(false)
        .module(module);
    let app = test::init_service(App::new().configure(configure(config))).await;

    let delivery = TestDelivery::succeeded("replicate/hello-world", "hello Alice".into());
    // Each case with the status it must get and the handler runs counted after it: the valid
    // delivery runs the handler, its duplicate and every refused one do not.
    let cases = [
        ("valid", delivery.sign(&secret), 200, 1),
        ("duplicate", delivery.sign(&secret), 200, 1),
        ("wrong key", delivery.sign_with_wrong_key(), 401, 1),
        ("tampered", delivery.sign(&secret).tampered(), 401, 1),
        ("stale", delivery.clone().stale().sign(&secret), 401, 1),
        ("future", delivery.clone().future().sign(&secret), 401, 1),
        (
            "missing header",
            delivery.sign(&secret).without_header("webhook-signature"),
            401,
            1,
        ),
    ];
    for (name, signed, expected, runs_after) in cases {
        let resp = test::call_service(&app, signed.to_request().to_request()).await;
        let status = resp.status().as_u16();
        let body = test::read_body(resp).await;
        assert_eq!(
            status,
            expected,
            "{name}: {}",
            String::from_utf8_lossy(&body)
        );
        assert_eq!(runs.load(Ordering::SeqCst), runs_after, "{name}");
    }

    // The refused copies are refused for their signature, not because the delivery was handled:
    // a new delivery signed the same bad ways runs nothing either, and signed well it runs.
    let fresh = TestDelivery::succeeded("replicate/hello-world", "hello Alice".into());
    for (name, signed) in [
        ("wrong key", fresh.sign_with_wrong_key()),
        ("tampered", fresh.sign(&secret).tampered()),
        ("stale", fresh.clone().stale().sign(&secret)),
    ] {
        let resp = test::call_service(&app, signed.to_request().to_request()).await;
        assert_eq!(resp.status().as_u16(), 401, "fresh {name}");
    }
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    let resp = test::call_service(&app, fresh.sign(&secret).to_request().to_request()).await;
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(runs.load(Ordering::SeqCst), 2);
}
