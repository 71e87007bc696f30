//! The paths the inbox owns, each able to fail for its reason: a handler that panics, never
//! finishes or fails an extractor, a result that cannot be recorded at once, a visibility hold
//! lost mid-run, a job whose handler this worker does not have, an `on_dead` that fails itself,
//! the shutdown deadline, the 24-hour retry budget, and the intake's answers for a stale event,
//! for a key an inline handler holds and for a database that stalls.

use std::time::Duration;

use replicate_webhook::dedupe::SqliteStore;
use replicate_webhook::inbox::{Filter, Inbox, InboxOptions, Job, JobState, Worker};
use replicate_webhook::testkit::protocol::{Admission, Gate, Policy};
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

/// Delivers a `succeeded` prediction of `model`, which is stored (200), and returns its job
/// once it is dead.
async fn stored_then_dead(db: &Db, server: &TestServer, model: &str) -> Job {
    let delivery = TestDelivery::succeeded(model, json!("x"));
    let (status, _) = send(&reqwest::Client::new(), server, &delivery.sign(&secret())).await;
    assert_eq!(status, 200);
    let inbox = Inbox::open_url(&db.url()).unwrap();
    until_state(&inbox, &id_of(&delivery), JobState::Dead).await;
    job_of(db, &id_of(&delivery)).await
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
    let job = stored_then_dead(&db, &server, &model).await;
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
        .admit(replicate_webhook::testkit::protocol::Delivery {
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

/// A handler argument no one provides: `web::Data` of a type the worker was not given.
#[derive(Debug)]
struct NotProvided;

#[replicate_webhook::replicate_webhook(model = "acme/extractor-fails-inbox", inbox = true)]
mod extractor_fails {
    use actix_web::web;
    use replicate_webhook::{HandlerError, Prediction};

    async fn on_succeeded(
        _: Prediction,
        _: web::Data<super::NotProvided>,
    ) -> Result<(), HandlerError> {
        Ok(())
    }
}

#[actix_rt::test]
async fn a_failing_extractor_fails_the_run_with_the_arguments_error() {
    let db = Db::sqlite();
    let url = replicate_webhook::dedupe::StoreUrl::parse(&db.url()).unwrap();
    // The registered module above, and no `worker_data`.
    let config = replicate_webhook::WebhookConfig::new(secret())
        .store_url(&url)
        .unwrap()
        .inbox(Inbox::open(&url).unwrap())
        .inbox_options(one_run());
    let server = serve(config);
    let job = stored_then_dead(&db, &server, "acme/extractor-fails-inbox").await;
    let error = job.last_error.unwrap_or_default();
    assert!(
        error.contains("handler argument 1 extraction failed"),
        "unexpected error: {error}"
    );
    assert_eq!(job.attempts, 1);
}

/// Renames the inbox's job table away in the SQLite file of `db` (so every query of the queue
/// fails), and back after `away`; then says so on `back`.
fn jobs_table_away(db: &Db, away: Duration, back: mpsc::UnboundedSender<String>) {
    let Db::Sqlite(dir) = db else {
        unreachable!("a SQLite inbox")
    };
    let path = dir.path().join("inbox.db");
    let rename = move |from: &str, to: &str| {
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.busy_timeout(Duration::from_secs(5)).unwrap();
        conn.execute_batch(&format!("ALTER TABLE {from} RENAME TO {to}"))
            .unwrap();
    };
    rename("replicate_webhook_jobs", "replicate_webhook_jobs_away");
    std::thread::spawn(move || {
        std::thread::sleep(away);
        rename("replicate_webhook_jobs_away", "replicate_webhook_jobs");
        let _ = back.send("table back".to_owned());
    });
}

#[actix_rt::test]
async fn a_result_that_cannot_be_recorded_at_once_is_recorded_by_a_retry() {
    let db = std::sync::Arc::new(Db::sqlite());
    let model = model("settle-fails");
    let (tx, mut rx) = mpsc::unbounded_channel::<String>();
    let in_handler = db.clone();
    let module = Module::new(&model).on(HandlerKind::Succeeded, move |p: Prediction| {
        let (tx, db) = (tx.clone(), in_handler.clone());
        async move {
            // The database refuses every query for the next 250 ms: the worker's first tries
            // to record this run fail, a later one succeeds.
            jobs_table_away(&db, Duration::from_millis(250), tx.clone());
            let _ = tx.send(p.id.clone());
            Ok::<(), HandlerError>(())
        }
    });
    // The default visibility (30 s): if the result were not recorded by the worker's own
    // retries, the job would stay `running` far past this test's wait.
    let server = serve(db.config(module, fast_options()));
    // Opened (and its tables made) before the table goes away, not while it is away.
    let inbox = Inbox::open_url(&db.url()).unwrap();
    let delivery = TestDelivery::succeeded(&model, json!("x"));
    let (status, _) = send(&reqwest::Client::new(), &server, &delivery.sign(&secret())).await;
    assert_eq!(status, 200);
    assert_eq!(next(&mut rx).await, id_of(&delivery));
    assert_eq!(next(&mut rx).await, "table back");
    until_state(&inbox, &id_of(&delivery), JobState::Done).await;
    assert_eq!(job_of(&db, &id_of(&delivery)).await.attempts, 1);
    assert!(rx.try_recv().is_err(), "the handler ran twice");
}

/// Sends `message` when dropped: a handler's future is dropped when its run is stopped.
struct OnDrop(mpsc::UnboundedSender<String>, String);

impl Drop for OnDrop {
    fn drop(&mut self) {
        let _ = self.0.send(std::mem::take(&mut self.1));
    }
}

/// A module whose `on_succeeded` says `run N` on each run; the first run never finishes by
/// itself and says `run 1 stopped` when it is stopped.
fn first_run_never_ends(model: &str, tx: mpsc::UnboundedSender<String>) -> Module {
    let runs = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
    Module::new(model).on(HandlerKind::Succeeded, move |_: Prediction| {
        let (tx, runs) = (tx.clone(), runs.clone());
        async move {
            let run = runs.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
            let _ = tx.send(format!("run {run}"));
            if run == 1 {
                let _guard = OnDrop(tx.clone(), "run 1 stopped".to_owned());
                std::future::pending::<()>().await;
            }
            Ok::<(), HandlerError>(())
        }
    })
}

#[actix_rt::test]
async fn a_run_whose_hold_is_lost_stops_and_the_new_holder_finishes_the_job() {
    let db = Db::sqlite();
    let model = model("hold-lost");
    let (tx, mut rx) = mpsc::unbounded_channel::<String>();
    let module = first_run_never_ends(&model, tx);
    // The hold lasts 200 ms and is extended only every 600 ms: it runs out under the first run,
    // another take holds the job, and the first run's next heartbeat finds the hold lost.
    let options = InboxOptions {
        visibility: Duration::from_millis(200),
        heartbeat: Some(Duration::from_millis(600)),
        ..fast_options()
    };
    let server = serve(db.config(module, options));
    let delivery = TestDelivery::succeeded(&model, json!("x"));
    let (status, _) = send(&reqwest::Client::new(), &server, &delivery.sign(&secret())).await;
    assert_eq!(status, 200);
    assert_eq!(next(&mut rx).await, "run 1");
    assert_eq!(next(&mut rx).await, "run 2");
    assert_eq!(next(&mut rx).await, "run 1 stopped");
    let inbox = Inbox::open_url(&db.url()).unwrap();
    until_state(&inbox, &id_of(&delivery), JobState::Done).await;
    assert_eq!(job_of(&db, &id_of(&delivery)).await.attempts, 2);
}

#[actix_rt::test]
async fn at_the_shutdown_deadline_a_running_job_is_left_to_its_visibility_timeout() {
    let db = Db::sqlite();
    let model = model("shutdown-deadline");
    let (tx, mut rx) = mpsc::unbounded_channel::<String>();
    let module = first_run_never_ends(&model, tx);
    let options = InboxOptions {
        in_process: false,
        visibility: Duration::from_millis(300),
        shutdown_deadline: Duration::from_millis(100),
        ..fast_options()
    };
    let config = db.config(module, options);
    let worker = Worker::new(&config).unwrap().spawn().unwrap();
    let server = serve(config.clone());
    let delivery = TestDelivery::succeeded(&model, json!("x"));
    let (status, _) = send(&reqwest::Client::new(), &server, &delivery.sign(&secret())).await;
    assert_eq!(status, 200);
    assert_eq!(next(&mut rx).await, "run 1");
    // The handler never finishes: shutdown returns at its deadline, not never.
    // On a thread of its own, so a shutdown that never returns fails the test instead of
    // holding the test's runtime open.
    let (stopped, stopping) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        worker.shutdown();
        let _ = stopped.send(());
    });
    tokio::task::spawn_blocking(move || stopping.recv_timeout(Duration::from_secs(10)))
        .await
        .unwrap()
        .expect("shutdown waited past its deadline");
    assert_eq!(next(&mut rx).await, "run 1 stopped");
    let job = job_of(&db, &id_of(&delivery)).await;
    assert_eq!(
        (job.state, job.attempts),
        (JobState::Running, 1),
        "a run cut off by shutdown records nothing"
    );
    // The next worker takes it once its hold runs out.
    let next_worker = Worker::new(&config).unwrap().spawn().unwrap();
    assert_eq!(next(&mut rx).await, "run 2");
    let inbox = Inbox::open_url(&db.url()).unwrap();
    until_state(&inbox, &id_of(&delivery), JobState::Done).await;
    assert_eq!(job_of(&db, &id_of(&delivery)).await.attempts, 2);
    tokio::task::spawn_blocking(move || next_worker.shutdown())
        .await
        .unwrap();
}

#[actix_rt::test]
async fn a_retry_past_the_24_hour_budget_is_dead_though_attempts_remain() {
    let db = Db::sqlite();
    let model = model("budget");
    let module = Module::new(&model).on(HandlerKind::Succeeded, |_: Prediction| async {
        Err::<(), _>(HandlerError::retry("the model's bucket is down"))
    });
    // The default 24 h budget and 20 attempts; the first retry would come 25 to 50 hours after
    // the delivery arrived (backoff with equal jitter), past the budget: no clock to wait out.
    let options = InboxOptions {
        backoff: replicate_webhook::inbox::Backoff::new(
            Duration::from_hours(50),
            Duration::from_hours(50),
        ),
        max_attempts: InboxOptions::default().max_attempts,
        ..fast_options()
    };
    assert_eq!(options.max_age, Duration::from_hours(24));
    let server = serve(db.config(module, options));
    let delivery = TestDelivery::succeeded(&model, json!("x"));
    let (status, _) = send(&reqwest::Client::new(), &server, &delivery.sign(&secret())).await;
    assert_eq!(status, 200);
    let inbox = Inbox::open_url(&db.url()).unwrap();
    until_state(&inbox, &id_of(&delivery), JobState::Dead).await;
    let job = job_of(&db, &id_of(&delivery)).await;
    assert_eq!(job.attempts, 1);
    assert_eq!(
        job.last_error.as_deref(),
        Some("retryable handler error: the model's bucket is down")
    );
}

#[actix_rt::test]
async fn intake_answers_503_with_retry_after_when_the_database_stalls() {
    // A "database" that accepts connections and never says a word.
    let stalled = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = stalled.local_addr().unwrap().port();
    let held = std::thread::spawn(move || {
        let mut open = Vec::new();
        for conn in stalled.incoming().take(8) {
            open.push(conn);
        }
        open
    });
    let model = model("intake-stalls");
    let module = Module::new(&model).on(HandlerKind::Succeeded, |_: Prediction| async {
        Ok::<(), HandlerError>(())
    });
    let inbox = Inbox::open_url(&format!("postgres://user:hunter2@127.0.0.1:{port}/jobs")).unwrap();
    let config = replicate_webhook::WebhookConfig::new(secret())
        .collect_registered(false)
        .store_timeout(Duration::from_millis(300))
        .inbox(inbox)
        .inbox_options(InboxOptions {
            in_process: false,
            ..fast_options()
        })
        .module(module.inbox(true));
    let server = serve(config);
    let delivery = TestDelivery::succeeded(&model, json!("x"));
    let (status, retry_after, body) = tokio::time::timeout(
        Duration::from_secs(10),
        post(&server, &delivery.sign(&secret())),
    )
    .await
    .expect("the intake waited on a stalled database");
    assert_eq!(
        (status, body.as_str()),
        (503, "inbox unavailable; retry later")
    );
    let secs: u64 = retry_after
        .expect("a 503 says when to retry")
        .parse()
        .unwrap();
    assert!(secs >= 1, "Retry-After: {secs}");
    drop(server);
    drop(held);
}
