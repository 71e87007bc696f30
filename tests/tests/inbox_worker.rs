//! The paths the inbox owns, each able to fail for its reason: a handler that panics or never
//! finishes, a job whose handler this worker does not have, an `on_dead` that fails itself, and
//! the intake's answers for a stale event and for a key an inline handler holds.

use std::time::Duration;

use replicate_webhook::dedupe::{Admission, Gate, Policy, SqliteStore};
use replicate_webhook::inbox::{Filter, Inbox, InboxOptions, Job, JobState, Worker};
use replicate_webhook::testkit::{Signed, TestDelivery};
use replicate_webhook::{DeadLetter, Event, HandlerError, HandlerKind, Module, Prediction};
use replicate_webhook_tests::TestServer;
use replicate_webhook_tests::inbox::{
    Db, fast_options, id_of, model, next, secret, send, serve, until_state,
};
use serde_json::json;
use tokio::sync::mpsc;

/// The one job of `prediction`.
async fn job_of(db: &Db, prediction: &str) -> Job {
    let jobs = Inbox::open_url(&db.url())
        .unwrap()
        .list(&Filter {
            prediction_id: Some(prediction.to_owned()),
            ..Filter::default()
        })
        .await
        .unwrap();
    assert_eq!(jobs.len(), 1, "{jobs:?}");
    jobs.into_iter().next().unwrap()
}

/// One run, then dead: what a failure did is in the job's `last_error`.
fn one_run() -> InboxOptions {
    InboxOptions {
        max_attempts: 1,
        ..fast_options()
    }
}

fn boom() -> Result<(), HandlerError> {
    panic!("boom")
}

#[actix_rt::test]
async fn a_panicking_handler_fails_its_run_and_the_worker_goes_on() {
    let db = Db::sqlite();
    let model = model("panics");
    let (tx, mut rx) = mpsc::unbounded_channel::<String>();
    let module = Module::new(&model).on(HandlerKind::Succeeded, move |p: Prediction| {
        let tx = tx.clone();
        async move {
            let _ = tx.send(p.id.clone());
            if p.output == Some(json!("panic")) {
                boom()
            } else {
                Ok(())
            }
        }
    });
    let server = serve(db.config(module, one_run()));
    let client = reqwest::Client::new();
    let (bad, good) = (
        TestDelivery::succeeded(&model, json!("panic")),
        TestDelivery::succeeded(&model, json!("fine")),
    );
    assert_eq!(send(&client, &server, &bad.sign(&secret())).await.0, 200);
    assert_eq!(next(&mut rx).await, id_of(&bad));
    let inbox = Inbox::open_url(&db.url()).unwrap();
    until_state(&inbox, &id_of(&bad), JobState::Dead).await;
    let job = job_of(&db, &id_of(&bad)).await;
    assert_eq!(
        job.last_error.as_deref(),
        Some("retryable handler error: handler panicked: boom")
    );
    // The worker thread survived the panic: the next job runs.
    assert_eq!(send(&client, &server, &good.sign(&secret())).await.0, 200);
    assert_eq!(next(&mut rx).await, id_of(&good));
    until_state(&inbox, &id_of(&good), JobState::Done).await;
}

#[actix_rt::test]
async fn a_handler_past_its_timeout_fails_its_run() {
    let db = Db::sqlite();
    let model = model("times-out");
    let (tx, mut rx) = mpsc::unbounded_channel::<()>();
    let module = Module::new(&model).on(HandlerKind::Succeeded, move |_: Prediction| {
        let tx = tx.clone();
        async move {
            let _ = tx.send(());
            std::future::pending::<()>().await;
            Ok::<(), HandlerError>(())
        }
    });
    let options = InboxOptions {
        handler_timeout: Duration::from_millis(50),
        ..one_run()
    };
    let server = serve(db.config(module, options));
    let delivery = TestDelivery::succeeded(&model, json!("x"));
    let (status, _) = send(&reqwest::Client::new(), &server, &delivery.sign(&secret())).await;
    assert_eq!(status, 200);
    next(&mut rx).await;
    let inbox = Inbox::open_url(&db.url()).unwrap();
    until_state(&inbox, &id_of(&delivery), JobState::Dead).await;
    let job = job_of(&db, &id_of(&delivery)).await;
    assert_eq!(
        job.last_error.as_deref(),
        Some("retryable handler error: handler did not finish within 50 ms")
    );
}

#[actix_rt::test]
async fn a_job_for_a_handler_this_worker_lacks_is_dead_and_kept_for_replay() {
    let db = Db::sqlite();
    let model = model("unknown-handler");
    // The receiver stores `on_succeeded` jobs and runs no worker; the worker, built from another
    // version of the module, has no `on_succeeded`.
    let stores = Module::new(&model).on(HandlerKind::Succeeded, |_: Prediction| async {
        Ok::<(), HandlerError>(())
    });
    let options = InboxOptions {
        in_process: false,
        ..one_run()
    };
    let server = serve(db.config(stores, options.clone()));
    let (tx, mut rx) = mpsc::unbounded_channel::<()>();
    let runs = Module::new(&model).on(HandlerKind::Failed, move |_: Prediction| {
        let tx = tx.clone();
        async move {
            let _ = tx.send(());
            Ok::<(), HandlerError>(())
        }
    });
    let worker = Worker::new(&db.config(runs, options))
        .unwrap()
        .spawn()
        .unwrap();
    let delivery = TestDelivery::succeeded(&model, json!("x"));
    let (status, _) = send(&reqwest::Client::new(), &server, &delivery.sign(&secret())).await;
    assert_eq!(status, 200);
    let inbox = Inbox::open_url(&db.url()).unwrap();
    until_state(&inbox, &id_of(&delivery), JobState::Dead).await;
    let job = job_of(&db, &id_of(&delivery)).await;
    let error = job.last_error.unwrap_or_default();
    assert!(
        error.contains("no handler `on_succeeded`"),
        "unexpected error: {error}"
    );
    assert_eq!(job.attempts, 1);
    assert!(rx.try_recv().is_err(), "another handler ran in its place");
    tokio::task::spawn_blocking(move || worker.shutdown())
        .await
        .unwrap();
}

#[actix_rt::test]
async fn an_on_dead_that_fails_leaves_the_job_dead_with_the_handlers_error() {
    let db = Db::sqlite();
    let model = model("on-dead-fails");
    let (tx, mut rx) = mpsc::unbounded_channel::<String>();
    let (dead_tx, handler_tx) = (tx.clone(), tx);
    let module = Module::new(&model)
        .on(HandlerKind::Succeeded, move |p: Prediction| {
            let tx = handler_tx.clone();
            async move {
                let _ = tx.send(format!("run {}", p.id));
                Err::<(), _>(HandlerError::permanent("no such user"))
            }
        })
        .on(HandlerKind::Dead, move |dead: DeadLetter| {
            let tx = dead_tx.clone();
            async move {
                let _ = tx.send(format!("on_dead {}", dead.job()));
                Err::<(), _>(HandlerError::retry("the alerting service is down"))
            }
        });
    let server = serve(db.config(module, one_run()));
    let client = reqwest::Client::new();
    let delivery = TestDelivery::succeeded(&model, json!("x"));
    assert_eq!(
        send(&client, &server, &delivery.sign(&secret())).await.0,
        200
    );
    assert_eq!(next(&mut rx).await, format!("run {}", id_of(&delivery)));
    let on_dead = next(&mut rx).await;
    let job = job_of(&db, &id_of(&delivery)).await;
    assert_eq!(on_dead, format!("on_dead {}", job.id));
    assert_eq!(job.state, JobState::Dead);
    assert_eq!(
        job.last_error.as_deref(),
        Some("permanent handler error: no such user")
    );
    // Nothing retries the dead job because its hook failed.
    let again = TestDelivery::succeeded(&model, json!("y"));
    assert_eq!(send(&client, &server, &again.sign(&secret())).await.0, 200);
    assert_eq!(next(&mut rx).await, format!("run {}", id_of(&again)));
    assert_eq!(job_of(&db, &id_of(&delivery)).await.attempts, 1);
}

/// Posts `d` and returns the status, the `Retry-After` header and the body.
async fn post(server: &TestServer, d: &Signed) -> (u16, Option<String>, String) {
    let mut req = reqwest::Client::new()
        .post(server.url(d.path()))
        .header("content-type", "application/json")
        .body(d.body().to_vec());
    for (name, value) in d.headers() {
        req = req.header(name, value);
    }
    let resp = req.send().await.expect("request to the test server");
    let status = resp.status().as_u16();
    let retry_after = resp
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_owned());
    (status, retry_after, resp.text().await.unwrap_or_default())
}

#[actix_rt::test]
async fn intake_answers_409_with_retry_after_while_an_inline_claim_holds_the_key() {
    let db = Db::sqlite();
    let model = model("intake-in-flight");
    let module = Module::new(&model).on(HandlerKind::Succeeded, |_: Prediction| async {
        Ok::<(), HandlerError>(())
    });
    let server = serve(db.config(module, fast_options()));
    let Db::Sqlite(dir) = &db else { unreachable!() };
    // An inline handler elsewhere holds this delivery's claim (not a stored job): it was
    // admitted through the same file's store and is running.
    let store = SqliteStore::open(dir.path().join("inbox.db")).unwrap();
    let delivery = TestDelivery::succeeded(&model, json!("x")).id("msg_held_inline");
    let gate = Gate::new(
        std::sync::Arc::new(store),
        Policy {
            lease: Duration::from_secs(20),
            ..Policy::DEFAULT
        },
    );
    let prediction = id_of(&delivery);
    let admitted = gate
        .admit(replicate_webhook::dedupe::Delivery {
            webhook_id: "msg_held_inline",
            prediction_id: &prediction,
            status: &replicate_webhook::Status::Succeeded,
        })
        .await
        .unwrap();
    assert!(matches!(admitted, Admission::Run(_)), "{admitted:?}");
    let (status, retry_after, _) = post(&server, &delivery.sign(&secret())).await;
    assert_eq!(status, 409);
    let secs: u64 = retry_after
        .expect("a 409 says when to retry")
        .parse()
        .unwrap();
    assert!((1..=30).contains(&secs), "Retry-After: {secs}");
    // Nothing was stored: the sender's retry is the delivery.
    let jobs = Inbox::open_url(&db.url())
        .unwrap()
        .list(&Filter::default())
        .await
        .unwrap();
    assert!(jobs.is_empty(), "{jobs:?}");
}

#[actix_rt::test]
async fn intake_answers_stale_for_an_event_of_a_finished_prediction_and_stores_nothing() {
    let db = Db::sqlite();
    let model = model("intake-stale");
    let (tx, mut rx) = mpsc::unbounded_channel::<String>();
    let module = Module::new(&model)
        .events([Event::Start, Event::Completed])
        .on(HandlerKind::Succeeded, move |p: Prediction| {
            let tx = tx.clone();
            async move {
                let _ = tx.send(p.status.as_str().to_owned());
                Ok::<(), HandlerError>(())
            }
        })
        .on(HandlerKind::Start, |_: Prediction| async {
            Ok::<(), HandlerError>(())
        });
    let server = serve(db.config(module, fast_options()));
    let done = TestDelivery::succeeded(&model, json!("x"));
    let prediction = id_of(&done);
    assert_eq!(post(&server, &done.sign(&secret())).await.0, 200);
    assert_eq!(next(&mut rx).await, "succeeded");
    let inbox = Inbox::open_url(&db.url()).unwrap();
    until_state(&inbox, &prediction, JobState::Done).await;
    // A `starting` event of the same prediction, arriving late.
    let late =
        replicate_webhook::testkit::sample_prediction(&prediction, &model, "starting", json!(null));
    let late = TestDelivery::new(late.to_string()).sign(&secret());
    let (status, _, body) = post(&server, &late).await;
    assert_eq!(
        (status, body.as_str()),
        (200, "stale event: the prediction already finished")
    );
    assert_eq!(job_of(&db, &prediction).await.status, "succeeded");
}
