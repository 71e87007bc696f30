//! The quickstart remembers across restarts: by default it keeps its dedupe state in
//! `replicate-webhook.db` in its working directory, so a delivery it handled before a restart is
//! a duplicate after it (Replicate retries for about a minute; a deploy fits inside that).

use std::time::Duration;

use replicate_webhook::Secret;
use replicate_webhook::testkit::{TestDelivery, new_prediction_id};
use replicate_webhook_tests::post;
use replicate_webhook_tests::process::Process;
use serde_json::json;

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

#[actix_rt::test]
async fn a_restarted_quickstart_still_knows_what_it_handled() {
    let dir = tempfile::tempdir().unwrap();
    let env = [("REPLICATE_WEBHOOK_SECRET", SECRET)];
    let secret = Secret::parse(SECRET).unwrap();
    let delivery = TestDelivery::succeeded("acme/restart", json!("x"))
        .id(format!("msg_{}", new_prediction_id()));

    let first = Process::start(env!("CARGO_BIN_EXE_quickstart"), dir.path(), &env);
    assert!(
        first
            .banner
            .iter()
            .any(|l| l.contains("REPLICATE_WEBHOOK_STORE is not set")
                && l.contains("sqlite://replicate-webhook.db")),
        "{:?}",
        first.banner
    );
    assert_eq!(post(&first.base, &delivery.sign(&secret)).await.0, 200);
    let lines = first.drain(Duration::from_millis(300));
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(lines[0].starts_with("on_succeeded id="), "{lines:?}");
    first.kill();
    assert!(dir.path().join("replicate-webhook.db").exists());

    let second = Process::start(env!("CARGO_BIN_EXE_quickstart"), dir.path(), &env);
    // Replicate's retry: same webhook id, fresh timestamp and signature.
    let (status, body) = post(&second.base, &delivery.sign_now(&secret)).await;
    assert_eq!(
        (status, body.as_str()),
        (
            200,
            "prediction already handled; its first terminal status wins"
        )
    );
    assert_eq!(
        second.drain(Duration::from_millis(300)),
        Vec::<String>::new()
    );
}
