//! The quickstart in inbox mode: `REPLICATE_WEBHOOK_INBOX` stores every delivery and answers at
//! once, a worker in the same process runs the handler; or `quickstart receive` and
//! `quickstart worker` split the two between processes sharing the inbox.

use std::time::Duration;

use replicate_webhook::Secret;
use replicate_webhook::testkit::TestDelivery;
use replicate_webhook_tests::post;
use replicate_webhook_tests::process::{Process, wait_for};
use serde_json::json;

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

#[actix_rt::test]
async fn the_quickstart_honours_replicate_webhook_inbox() {
    let dir = tempfile::tempdir().unwrap();
    let env = [
        ("REPLICATE_WEBHOOK_SECRET", SECRET),
        ("REPLICATE_WEBHOOK_INBOX", "sqlite://inbox.db"),
    ];
    let quickstart = Process::start(env!("CARGO_BIN_EXE_quickstart"), dir.path(), &env);
    assert!(
        quickstart
            .banner
            .iter()
            .any(|l| l.contains("dedupe store sqlite://inbox.db"))
            && quickstart
                .banner
                .iter()
                .any(|l| l.contains("inbox mode, jobs in sqlite://inbox.db")),
        "{:?}",
        quickstart.banner
    );
    let delivery = TestDelivery::succeeded("acme/inbox", json!("x"));
    let (status, body) = post(
        &quickstart.base,
        &delivery.sign(&Secret::parse(SECRET).unwrap()),
    )
    .await;
    assert_eq!(
        (status, body.as_str()),
        (200, "stored; a worker runs the handler")
    );
    let line = wait_for(&quickstart.stdout, "on_succeeded id=");
    assert_eq!(line.len(), 1, "{line:?}");
}

#[actix_rt::test]
async fn a_worker_process_runs_what_a_receive_only_process_stored() {
    let dir = tempfile::tempdir().unwrap();
    let env = [
        ("REPLICATE_WEBHOOK_SECRET", SECRET),
        ("REPLICATE_WEBHOOK_INBOX", "sqlite://inbox.db"),
    ];
    let bin = env!("CARGO_BIN_EXE_quickstart");
    let receiver = Process::start_with_args(bin, &["receive"], dir.path(), &env);
    let mut worker = Process::start_with_args(bin, &["worker"], dir.path(), &env);
    let delivery = TestDelivery::succeeded("acme/inbox", json!("x"));
    let (status, _) = post(
        &receiver.base,
        &delivery.sign(&Secret::parse(SECRET).unwrap()),
    )
    .await;
    assert_eq!(status, 200);
    wait_for(&worker.stdout, "on_succeeded id=");
    assert_eq!(
        receiver.drain(Duration::from_millis(200)),
        Vec::<String>::new()
    );

    // SIGTERM: the worker stops taking jobs, waits for running ones, and exits cleanly.
    let pid = worker.child.id().to_string();
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(killed.success());
    let exit = worker.child.wait().unwrap();
    assert!(exit.success(), "{exit:?}");
}
