//! Inbox mode against real SQLite and PostgreSQL: deliveries are acknowledged once stored, and
//! workers run the handlers with retries, dead letters and replay, in order per prediction.

use std::sync::Arc;
use std::time::Duration;

use replicate_webhook::inbox::{Filter, Inbox, InboxOptions, JobState};
use replicate_webhook::testkit::{TestDelivery, new_prediction_id, sample_prediction};
use replicate_webhook::{
    DeadLetter, HandlerError, HandlerKind, Module, Prediction, WebhookConfig, configure,
};
use replicate_webhook_tests::inbox::{
    Db, fast_options, id_of, model, next, secret, send, serve, until_state,
};
use serde_json::json;
use tokio::sync::mpsc;

/// Fails three times, then succeeds: four runs, done; a redelivery is a duplicate.
async fn retries_until_it_succeeds(db: &Db) {
    let model = model("retry");
    let (tx, mut rx) = mpsc::unbounded_channel();
    let runs = Arc::new(std::sync::atomic::AtomicU32::new(0));
    let module = Module::new(&model).on(HandlerKind::Succeeded, move |_: Prediction| {
        let n = runs.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
        let tx = tx.clone();
        async move {
            let _ = tx.send(n);
            if n <= 3 {
                Err(HandlerError::retry(format!("database down ({n})")))
            } else {
                Ok(())
            }
        }
    });
    let options = InboxOptions {
        max_attempts: 5,
        ..fast_options()
    };
    let config = db.config(module, options);
    let inbox = config_inbox(db);
    let server = serve(config);
    let client = reqwest::Client::new();
    let delivery = TestDelivery::succeeded(&model, json!("x"));
    let signed = delivery.sign(&secret());
    assert_eq!(send(&client, &server, &signed).await.0, 200);
    for n in 1..=4 {
        assert_eq!(next(&mut rx).await, n);
    }
    until_state(&inbox, &id_of(&delivery), JobState::Done).await;
    let job = &inbox
        .list(&Filter {
            prediction_id: Some(id_of(&delivery)),
            ..Filter::default()
        })
        .await
        .unwrap()[0];
    assert_eq!(job.attempts, 4);
    assert_eq!(
        job.last_error.as_deref(),
        Some("retryable handler error: database down (3)")
    );
    let (status, body) = send(&client, &server, &delivery.sign(&secret())).await;
    assert_eq!(
        (status, body.as_str()),
        (200, "prediction already stored or handled for this status")
    );
    // The same result under another webhook id is already handled too.
    let again = TestDelivery::new(delivery.body().to_vec()).sign(&secret());
    let (status, body) = send(&client, &server, &again).await;
    assert_eq!(
        (status, body.as_str()),
        (200, "prediction already stored or handled for this status")
    );
    assert!(rx.try_recv().is_err(), "the handler ran a fifth time");
}

fn config_inbox(db: &Db) -> Inbox {
    Inbox::open_url(&db.url()).unwrap()
}

#[actix_rt::test]
async fn sqlite_fails_three_times_then_succeeds_in_four_runs() {
    retries_until_it_succeeds(&Db::sqlite()).await;
}

#[actix_rt::test]
async fn postgres_fails_three_times_then_succeeds_in_four_runs() {
    let Some(db) = Db::postgres() else { return };
    retries_until_it_succeeds(&db).await;
}

/// Always failing: dead after `max_attempts`, `on_dead` told once; a replay runs it again.
async fn dead_after_the_limit_then_replayed(db: &Db) {
    let model = model("dead");
    let (tx, mut rx) = mpsc::unbounded_channel::<String>();
    let healthy = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (runs, deaths, ok) = (tx.clone(), tx, healthy.clone());
    let module = Module::new(&model)
        .on(HandlerKind::Succeeded, move |_: Prediction| {
            let (runs, ok) = (runs.clone(), ok.load(std::sync::atomic::Ordering::SeqCst));
            async move {
                let _ = runs.send("run".to_owned());
                if ok {
                    Ok(())
                } else {
                    Err(HandlerError::retry("bucket unreachable"))
                }
            }
        })
        .on(HandlerKind::Dead, move |dead: DeadLetter| {
            let deaths = deaths.clone();
            async move {
                let id = dead.prediction().map(|p| p.id).unwrap_or_default();
                let _ = deaths.send(format!(
                    "dead {} after {} attempts: {} ({id})",
                    dead.handler(),
                    dead.attempts(),
                    dead.error()
                ));
                Ok::<(), HandlerError>(())
            }
        });
    let config = db.config(module, fast_options());
    let inbox = config_inbox(db);
    let server = serve(config);
    let client = reqwest::Client::new();
    let delivery = TestDelivery::succeeded(&model, json!("x"));
    let prediction = id_of(&delivery);
    assert_eq!(
        send(&client, &server, &delivery.sign(&secret())).await.0,
        200
    );
    for _ in 0..3 {
        assert_eq!(next(&mut rx).await, "run");
    }
    assert_eq!(
        next(&mut rx).await,
        format!(
            "dead on_succeeded after 3 attempts: retryable handler error: bucket unreachable \
             ({prediction})"
        )
    );
    until_state(&inbox, &prediction, JobState::Dead).await;
    let dead = inbox
        .list(&Filter {
            state: Some(JobState::Dead),
            model: Some(model.clone()),
            ..Filter::default()
        })
        .await
        .unwrap();
    assert_eq!(dead.len(), 1, "{dead:?}");
    // A redelivery while dead is a duplicate: the job is kept for replay, not stored twice.
    let (status, body) = send(&client, &server, &delivery.sign(&secret())).await;
    assert_eq!(
        (status, body.as_str()),
        (200, "prediction already stored or handled for this status")
    );

    healthy.store(true, std::sync::atomic::Ordering::SeqCst);
    assert_eq!(inbox.replay(Some(dead[0].id)).await.unwrap(), 1);
    assert_eq!(next(&mut rx).await, "run");
    until_state(&inbox, &prediction, JobState::Done).await;
    assert_eq!(
        inbox.replay(Some(dead[0].id)).await.unwrap(),
        0,
        "only dead jobs replay"
    );
    assert!(rx.try_recv().is_err());
}

#[actix_rt::test]
async fn sqlite_always_failing_is_dead_after_the_limit_and_replay_runs_it_again() {
    dead_after_the_limit_then_replayed(&Db::sqlite()).await;
}

#[actix_rt::test]
async fn postgres_always_failing_is_dead_after_the_limit_and_replay_runs_it_again() {
    let Some(db) = Db::postgres() else { return };
    dead_after_the_limit_then_replayed(&db).await;
}

#[actix_rt::test]
async fn a_permanent_error_is_dead_at_once_and_discard_keeps_it_deduplicated() {
    let db = Db::sqlite();
    let model = model("permanent");
    let (tx, mut rx) = mpsc::unbounded_channel::<&'static str>();
    let module = Module::new(&model).on(HandlerKind::Succeeded, move |_: Prediction| {
        let tx = tx.clone();
        async move {
            let _ = tx.send("run");
            Err::<(), _>(HandlerError::permanent("no such user"))
        }
    });
    let config = db.config(module, fast_options());
    let inbox = config_inbox(&db);
    let server = serve(config);
    let client = reqwest::Client::new();
    let delivery = TestDelivery::succeeded(&model, json!("x"));
    let prediction = id_of(&delivery);
    assert_eq!(
        send(&client, &server, &delivery.sign(&secret())).await.0,
        200
    );
    assert_eq!(next(&mut rx).await, "run");
    until_state(&inbox, &prediction, JobState::Dead).await;
    let job = inbox
        .list(&Filter {
            prediction_id: Some(prediction.clone()),
            ..Filter::default()
        })
        .await
        .unwrap()
        .remove(0);
    assert_eq!(job.attempts, 1);
    assert!(inbox.discard(job.id).await.unwrap());
    assert!(!inbox.discard(job.id).await.unwrap(), "discarded twice");
    let again = TestDelivery::new(delivery.body().to_vec()).sign(&secret());
    let (status, body) = send(&client, &server, &again).await;
    assert_eq!(
        (status, body.as_str()),
        (200, "prediction already stored or handled for this status")
    );
    assert!(rx.try_recv().is_err());
}

#[actix_rt::test]
async fn events_of_one_prediction_run_in_arrival_order() {
    let db = Db::sqlite();
    let model = model("order");
    let (tx, mut rx) = mpsc::unbounded_channel::<String>();
    let (on_start, on_done) = (tx.clone(), tx);
    let module = Module::new(&model)
        .events([
            replicate_webhook::Event::Start,
            replicate_webhook::Event::Completed,
        ])
        .on(HandlerKind::Start, move |p: Prediction| {
            let tx = on_start.clone();
            async move {
                let _ = tx.send(format!("start begins {}", p.id));
                // Slow enough that an unordered worker would run `completed` meanwhile.
                tokio::time::sleep(Duration::from_millis(300)).await;
                let _ = tx.send(format!("start ends {}", p.id));
                Ok::<(), HandlerError>(())
            }
        })
        .on(HandlerKind::Succeeded, move |p: Prediction| {
            let tx = on_done.clone();
            async move {
                let _ = tx.send(format!("succeeded {}", p.id));
                Ok::<(), HandlerError>(())
            }
        });
    let server = serve(db.config(module, fast_options()));
    let client = reqwest::Client::new();
    let (a, b) = (new_prediction_id(), new_prediction_id());
    for id in [&a, &b] {
        let start =
            TestDelivery::new(sample_prediction(id, &model, "starting", json!(null)).to_string());
        assert_eq!(send(&client, &server, &start.sign(&secret())).await.0, 200);
    }
    for id in [&a, &b] {
        let done =
            TestDelivery::new(sample_prediction(id, &model, "succeeded", json!("x")).to_string());
        assert_eq!(send(&client, &server, &done.sign(&secret())).await.0, 200);
    }
    let mut seen = Vec::new();
    for _ in 0..6 {
        seen.push(next(&mut rx).await);
    }
    for id in [&a, &b] {
        let at = |what: &str| {
            seen.iter()
                .position(|l| *l == format!("{what} {id}"))
                .unwrap()
        };
        assert!(at("start ends") < at("succeeded"), "{seen:?}");
    }
    // Different predictions ran concurrently: both starts began before either ended.
    let first_end = seen
        .iter()
        .position(|l| l.starts_with("start ends"))
        .unwrap();
    assert_eq!(
        seen[..first_end]
            .iter()
            .filter(|l| l.starts_with("start begins"))
            .count(),
        2,
        "{seen:?}"
    );
}

#[actix_rt::test]
async fn an_unreachable_inbox_answers_503_without_the_password() {
    let port = replicate_webhook_tests::process::free_port();
    let url = format!("postgres://app:hunter2@127.0.0.1:{port}/app");
    let db = Db::Postgres(url);
    let model = model("down");
    let module = Module::new(&model).on(HandlerKind::Succeeded, |_: Prediction| async {
        Ok::<(), HandlerError>(())
    });
    let config = db.config(module, fast_options());
    assert!(!format!("{config:?}").contains("hunter2"));
    let server = serve(config);
    let client = reqwest::Client::new();
    let (status, body) = send(
        &client,
        &server,
        &TestDelivery::succeeded(&model, json!("x")).sign(&secret()),
    )
    .await;
    assert_eq!(status, 503, "{body}");
    assert!(!body.contains("hunter2"), "{body}");
}

#[test]
fn inbox_mode_without_an_inbox_is_a_setup_error() {
    let module = Module::new("acme/no-inbox")
        .inbox(true)
        .on(HandlerKind::Succeeded, |_: Prediction| async {
            Ok::<(), HandlerError>(())
        });
    let config = WebhookConfig::new(secret())
        .collect_registered(false)
        .module(module);
    let Err(err) = replicate_webhook::try_configure(config) else {
        panic!("configured without an inbox");
    };
    assert!(err.to_string().contains("REPLICATE_WEBHOOK_INBOX"), "{err}");
}

/// What the attribute module below reports, through the app data workers are given.
struct Seen(mpsc::UnboundedSender<String>);

#[replicate_webhook::replicate_webhook(
    model = "acme/attribute-inbox",
    inbox = true,
    concurrency = 2
)]
mod attribute_inbox {
    use actix_web::{HttpRequest, web};
    use replicate_webhook::{DeadLetter, HandlerError, Prediction};

    async fn on_succeeded(
        p: Prediction<String>,
        seen: web::Data<super::Seen>,
        req: HttpRequest,
    ) -> Result<(), HandlerError> {
        if p.output.as_deref() == Some("unusable") {
            return Err(HandlerError::permanent("unusable output"));
        }
        let webhook_id = req
            .headers()
            .get("webhook-id")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        let _ = seen.0.send(format!("{} {} {webhook_id}", p.id, req.uri()));
        Ok(())
    }

    async fn on_dead(dead: DeadLetter, seen: web::Data<super::Seen>) -> Result<(), HandlerError> {
        let _ = seen
            .0
            .send(format!("dead {}: {}", dead.handler(), dead.error()));
        Ok(())
    }
}

#[actix_rt::test]
async fn the_attribute_runs_a_module_in_inbox_mode_with_app_data_and_on_dead() {
    use replicate_webhook::__private::{Registration, inventory};
    let registration = inventory::iter::<Registration>
        .into_iter()
        .find(|r| r.model == "acme/attribute-inbox")
        .unwrap();
    assert!(registration.inbox);
    assert_eq!(registration.concurrency, 2);

    let db = Db::sqlite();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let config = WebhookConfig::new(secret())
        .store_url(&replicate_webhook::dedupe::StoreUrl::parse(&db.url()).unwrap())
        .unwrap()
        .inbox(Inbox::open_url(&db.url()).unwrap())
        .inbox_options(fast_options())
        .worker_data(actix_web::web::Data::new(Seen(tx)));
    let server = serve(config);
    let client = reqwest::Client::new();
    let delivery = TestDelivery::succeeded("acme/attribute-inbox", json!("fine"))
        .path(format!("{}?customer=42", replicate_webhook::DEFAULT_PATH));
    let signed = delivery.sign(&secret());
    let webhook_id = signed.signed_headers().id.clone();
    assert_eq!(send(&client, &server, &signed).await.0, 200);
    assert_eq!(
        next(&mut rx).await,
        format!(
            "{} /webhooks/replicate?customer=42 {webhook_id}",
            id_of(&delivery)
        )
    );
    let unusable = TestDelivery::succeeded("acme/attribute-inbox", json!("unusable"));
    assert_eq!(
        send(&client, &server, &unusable.sign(&secret())).await.0,
        200
    );
    assert_eq!(
        next(&mut rx).await,
        "dead on_succeeded: permanent handler error: unusable output"
    );
}

/// A handler running four times longer than the visibility timeout keeps its job through
/// heartbeats: it runs once.
async fn heartbeats_keep_a_long_handler_single(db: &Db) {
    let model = model("long");
    let (tx, mut rx) = mpsc::unbounded_channel::<&'static str>();
    let module = Module::new(&model).on(HandlerKind::Succeeded, move |_: Prediction| {
        let tx = tx.clone();
        async move {
            let _ = tx.send("run");
            tokio::time::sleep(Duration::from_millis(1200)).await;
            Ok::<(), HandlerError>(())
        }
    });
    let options = InboxOptions {
        visibility: Duration::from_millis(300),
        ..fast_options()
    };
    let config = db.config(module, options);
    let inbox = Inbox::open_url(&db.url()).unwrap();
    let server = serve(config);
    let delivery = TestDelivery::succeeded(&model, json!("x"));
    let client = reqwest::Client::new();
    assert_eq!(
        send(&client, &server, &delivery.sign(&secret())).await.0,
        200
    );
    assert_eq!(next(&mut rx).await, "run");
    until_state(&inbox, &id_of(&delivery), JobState::Done).await;
    assert!(rx.try_recv().is_err(), "the long handler ran twice");
}

#[actix_rt::test]
async fn sqlite_heartbeats_keep_a_long_handler_from_running_twice() {
    heartbeats_keep_a_long_handler_single(&Db::sqlite()).await;
}

#[actix_rt::test]
async fn postgres_heartbeats_keep_a_long_handler_from_running_twice() {
    let Some(db) = Db::postgres() else { return };
    heartbeats_keep_a_long_handler_single(&db).await;
}

#[actix_rt::test]
async fn shutdown_stops_taking_jobs_and_waits_for_running_ones() {
    let db = Db::sqlite();
    let model = model("shutdown");
    let (tx, mut rx) = mpsc::unbounded_channel::<String>();
    // One slot: while the first job runs, the worker cannot take another before it stops.
    let module =
        Module::new(&model)
            .concurrency(1)
            .on(HandlerKind::Succeeded, move |p: Prediction| {
                let tx = tx.clone();
                async move {
                    let _ = tx.send(format!("begins {}", p.id));
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    let _ = tx.send(format!("ends {}", p.id));
                    Ok::<(), HandlerError>(())
                }
            });
    // The receiver only stores; a worker of our own runs the jobs.
    let options = InboxOptions {
        in_process: false,
        ..fast_options()
    };
    let config = db.config(module, options);
    let worker = replicate_webhook::inbox::Worker::new(&config)
        .unwrap()
        .spawn()
        .unwrap();
    let server = serve(config);
    let client = reqwest::Client::new();
    let (first, second) = (
        TestDelivery::succeeded(&model, json!("1")),
        TestDelivery::succeeded(&model, json!("2")),
    );
    assert_eq!(send(&client, &server, &first.sign(&secret())).await.0, 200);
    assert_eq!(next(&mut rx).await, format!("begins {}", id_of(&first)));
    let stopping = tokio::task::spawn_blocking(move || worker.shutdown());
    // Stored while the worker drains (the first job holds the only slot): left for the next
    // worker, not taken now.
    assert_eq!(send(&client, &server, &second.sign(&secret())).await.0, 200);
    stopping.await.unwrap();
    assert_eq!(
        rx.try_recv().ok(),
        Some(format!("ends {}", id_of(&first))),
        "shutdown returned before the running handler finished"
    );
    let inbox = Inbox::open_url(&db.url()).unwrap();
    until_state(&inbox, &id_of(&first), JobState::Done).await;
    until_state(&inbox, &id_of(&second), JobState::Pending).await;
    assert!(rx.try_recv().is_err(), "a stopping worker took a new job");
}

/// The app holds what it mounted: with the configuration moved into `configure` and dropped,
/// the in-process worker still runs the jobs the app stores (it used to stop with the config).
#[actix_rt::test]
async fn the_worker_runs_while_its_app_does_after_the_config_is_gone() {
    let db = Db::sqlite();
    let model = model("app-holds");
    let (tx, mut rx) = mpsc::unbounded_channel();
    let module = Module::new(&model).on(HandlerKind::Succeeded, move |p: Prediction| {
        let _ = tx.send(p.id);
        async { Ok::<(), HandlerError>(()) }
    });
    let app = actix_web::test::init_service(
        actix_web::App::new().configure(configure(db.config(module, fast_options()))),
    )
    .await;
    let delivery = TestDelivery::succeeded(&model, json!("x"));
    let response =
        actix_web::test::call_service(&app, delivery.sign(&secret()).to_request().to_request())
            .await;
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(next(&mut rx).await, id_of(&delivery));
}
