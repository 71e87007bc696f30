//! The test kit drives `actix_web::test` without a network: accepted and refused deliveries.

use actix_web::{App, test};
use replicate_webhook::testkit::TestDelivery;
use replicate_webhook::{
    HandlerError, HandlerKind, Module, Prediction, Secret, WebhookConfig, configure,
};

#[actix_web::test]
async fn signed_deliveries_work_with_actix_web_test() {
    let secret = Secret::generate();
    let module = Module::new("replicate/hello-world").on(
        HandlerKind::Succeeded,
        |p: Prediction<String>| async move {
            assert_eq!(p.output.as_deref(), Some("hello Alice"));
            Ok::<(), HandlerError>(())
        },
    );
    let config = WebhookConfig::new(secret.clone())
        .collect_registered(false)
        .module(module);
    let app = test::init_service(App::new().configure(configure(config))).await;

    let delivery = TestDelivery::succeeded("replicate/hello-world", "hello Alice".into());
    let cases = [
        ("valid", delivery.sign(&secret), 200),
        ("duplicate", delivery.sign(&secret), 200),
        ("wrong key", delivery.sign_with_wrong_key(), 401),
        ("tampered", delivery.sign(&secret).tampered(), 401),
        ("stale", delivery.clone().stale().sign(&secret), 401),
        ("future", delivery.clone().future().sign(&secret), 401),
        (
            "missing header",
            delivery.sign(&secret).without_header("webhook-signature"),
            401,
        ),
    ];
    for (name, signed, expected) in cases {
        let resp = test::call_service(&app, signed.to_request().to_request()).await;
        let status = resp.status().as_u16();
        let body = test::read_body(resp).await;
        assert_eq!(
            status,
            expected,
            "{name}: {}",
            String::from_utf8_lossy(&body)
        );
    }
}
