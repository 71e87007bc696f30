//! The inbox's backlog bound: a flood of valid deliveries is refused with 503 past it, counted by
//! a metric, and stored again once workers drain the backlog. Its own test binary: it installs a
//! process-wide metrics recorder.

use std::time::{Duration, Instant};

use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use replicate_webhook::inbox::{InboxOptions, Worker};
use replicate_webhook::testkit::TestDelivery;
use replicate_webhook::{HandlerError, HandlerKind, Module, Prediction};
use replicate_webhook_tests::inbox::{Db, fast_options, model, secret, send, serve};
use serde_json::json;

#[actix_rt::test]
async fn past_the_backlog_bound_deliveries_get_503_until_workers_drain_it() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    recorder.install().unwrap();

    let db = Db::sqlite();
    let model = model("bound");
    let module = Module::new(&model).on(HandlerKind::Succeeded, |_: Prediction| async {
        Ok::<(), HandlerError>(())
    });
    // No worker yet: every stored job stays in the backlog.
    let options = InboxOptions {
        in_process: false,
        max_backlog: Some(3),
        ..fast_options()
    };
    let config = db.config(module, options);
    let server = serve(config.clone());
    let client = reqwest::Client::new();
    for n in 0..3 {
        let d = TestDelivery::succeeded(&model, json!(n)).sign(&secret());
        assert_eq!(send(&client, &server, &d).await.0, 200, "#{n}");
    }
    let refused = TestDelivery::succeeded(&model, json!("one too many"));
    let d = refused.sign(&secret());
    let mut request = client
        .post(server.url(d.path()))
        .header("content-type", "application/json")
        .body(d.body().to_vec());
    for (name, value) in d.headers() {
        request = request.header(name, value);
    }
    let response = request.send().await.unwrap();
    assert_eq!(response.status().as_u16(), 503);
    assert_eq!(replicate_webhook_tests::retry_after(&response), 30);
    assert_eq!(
        response.text().await.unwrap(),
        "inbox backlog full; retry later"
    );
    let inbox = replicate_webhook::inbox::Inbox::open_url(&db.url()).unwrap();
    assert_eq!(
        inbox.backlog().await.unwrap().pending,
        3,
        "nothing stored past the bound"
    );
    let refusals: Vec<_> = snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .filter(|(key, ..)| key.key().name() == "replicate_webhook_inbox_refused_total")
        .collect();
    assert_eq!(refusals.len(), 1, "{refusals:?}");
    let (key, _, _, value) = &refusals[0];
    assert!(
        key.key()
            .labels()
            .any(|l| l.key() == "reason" && l.value() == "backlog-full"),
        "{key:?}"
    );
    assert_eq!(*value, DebugValue::Counter(1));

    // A worker drains the backlog; the next count sees it (counts are at most a second old) and
    // Replicate's retry of the refused delivery is stored.
    let worker = Worker::new(&config).unwrap().spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (status, _) = send(&client, &server, &refused.sign(&secret())).await;
        if status == 200 {
            break;
        }
        assert_eq!(status, 503);
        assert!(Instant::now() < deadline, "still refused after 10 s");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::task::spawn_blocking(move || worker.shutdown())
        .await
        .unwrap();
}
