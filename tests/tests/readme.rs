//! The README's claims about defaults and start-up, each checked against the real behaviour.

use std::time::Duration;

use replicate_webhook::testkit::{TestDelivery, new_prediction_id, sample_prediction};
use replicate_webhook::{
    HandlerError, HandlerKind, Module, Prediction, Secret, WebhookConfig, configure,
};
use replicate_webhook_tests::TestServer;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

/// "`webhook_ttl` (24 h), `terminal_ttl` (7 days), `lease` (30 s)": the constants, and what a
/// new configuration actually uses (its `Debug` shows the values in force).
#[test]
fn ttl_and_lease_defaults_are_24_hours_7_days_and_30_seconds() {
    assert_eq!(WebhookConfig::DEFAULT_WEBHOOK_TTL, Duration::from_hours(24));
    assert_eq!(
        WebhookConfig::DEFAULT_TERMINAL_TTL,
        Duration::from_hours(7 * 24)
    );
    assert_eq!(WebhookConfig::DEFAULT_LEASE, Duration::from_secs(30));
    assert_eq!(WebhookConfig::DEFAULT_BODY_LIMIT, 8 * 1024 * 1024);
    assert_eq!(WebhookConfig::DEFAULT_TOLERANCE, Duration::from_mins(5));
    for config in [
        WebhookConfig::new(Secret::generate()),
        WebhookConfig::with_secrets(vec![Secret::generate(), Secret::generate()]),
    ] {
        let shown = format!("{config:?}");
        for field in [
            "webhook_ttl: 86400s",
            "terminal_ttl: 604800s",
            "lease: 30s",
            "body_limit: 8388608",
        ] {
            assert!(shown.contains(field), "{field} not in {shown}");
        }
    }
}

/// "`config.build()` fails with this advice when it finds no handler at all (and the
/// `configure` shorthand panics with it)."
#[test]
fn configure_without_any_handler_panics_with_the_use_advice() {
    let config = WebhookConfig::new(Secret::generate()).collect_registered(false);
    let error = config
        .build()
        .expect_err("build must fail without handlers");
    assert!(
        error.to_string().contains("use that_crate as _;"),
        "{error}"
    );
    let panic = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
        let _mount = configure(config);
    }))
    .expect_err("configure must panic without handlers");
    let message = panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
        .expect("a text panic");
    assert!(message.starts_with("replicate-webhook: "), "{message}");
    assert!(message.contains("use that_crate as _;"), "{message}");
}

/// "body larger than the limit (default 8 MiB; checked on `Content-Length` before buffering)":
/// one byte over the default, announced and not sent, is refused at once; a body of exactly the
/// default is accepted.
#[actix_web::test]
async fn the_default_body_limit_is_8_mib() {
    let secret = Secret::generate();
    let module = Module::new("acme/readme").on(HandlerKind::Succeeded, |_: Prediction| async {
        Ok::<(), HandlerError>(())
    });
    let config = WebhookConfig::new(secret.clone())
        .collect_registered(false)
        .module(module);
    let srv = TestServer::start(move || configure(config.clone()));
    let limit = WebhookConfig::DEFAULT_BODY_LIMIT;

    let mut stream = tokio::net::TcpStream::connect(srv.base.trim_start_matches("http://"))
        .await
        .unwrap();
    let head = format!(
        "POST /webhooks/replicate HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-length: {}\r\n\r\n",
        limit + 1
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut answer = vec![0u8; 64];
    let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut answer))
        .await
        .expect("answered without the body")
        .unwrap();
    let answer = String::from_utf8_lossy(&answer[..n]);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");

    // Exactly the limit: padded with spaces after the JSON, which JSON allows.
    let mut body = sample_prediction(&new_prediction_id(), "acme/readme", "succeeded", "x".into())
        .to_string()
        .into_bytes();
    body.resize(limit, b' ');
    let (status, text) = srv.deliver(&TestDelivery::new(body).sign(&secret)).await;
    assert_eq!((status, text.as_str()), (200, "done"));
}
