//! Trainings end to end: the client creates, reads and cancels them on the simulator, the
//! simulator runs their lifecycle and delivers their webhooks to a receiver whose training
//! module gets them typed, and `send --training` posts a sample one.

mod common;

use std::sync::{Arc, Mutex};

use common::{Receiver, SECRET, Simulator, bin};
use replicate_webhook::client::{Client, CreateTraining};
use replicate_webhook::{
    Event, HandlerError, HandlerKind, Module, Prediction, Secret, Status, Training, Url,
    WebhookConfig, WebhookSpec,
};
use replicate_webhook_cli::simulator::DeliveryRecord;
use serde_json::json;

const TRAINER: &str = "ostris/flux-dev-lora-trainer";

const SPEC: WebhookSpec = WebhookSpec {
    model: TRAINER,
    path: "/webhooks/replicate",
    events: &[Event::Start, Event::Completed],
};

type Runs = Arc<Mutex<Vec<String>>>;

/// A receiver with a training module for the trainer and a prediction module for any model.
fn receiver(runs: &Runs) -> Receiver {
    let mut trainings = Module::training(TRAINER).events(Event::ALL);
    for kind in [
        HandlerKind::Start,
        HandlerKind::Succeeded,
        HandlerKind::Canceled,
    ] {
        let runs = runs.clone();
        trainings = trainings.on(kind, move |t: Training| {
            let runs = runs.clone();
            async move {
                let version = t.output.and_then(|o| o.version).unwrap_or_default();
                runs.lock().unwrap().push(format!(
                    "training {} {} {version}",
                    kind.fn_name(),
                    t.id
                ));
                Ok::<(), HandlerError>(())
            }
        });
    }
    let predictions_runs = runs.clone();
    let predictions = Module::new("*").on(HandlerKind::Succeeded, move |p: Prediction| {
        let runs = predictions_runs.clone();
        async move {
            runs.lock().unwrap().push(format!("prediction {}", p.id));
            Ok::<(), HandlerError>(())
        }
    });
    let config = WebhookConfig::new(Secret::parse(SECRET).unwrap())
        .collect_registered(false)
        .module(trainings)
        .module(predictions);
    Receiver::start(config)
}

fn completed_delivered(records: &[DeliveryRecord]) -> bool {
    records
        .iter()
        .any(|r| r.event == "completed" && r.outcome == "delivered")
}

fn client(sim: &Simulator, receiver: &Receiver) -> Client {
    Client::new(&sim.api, Some("r8_test".to_owned()))
        .unwrap()
        .webhook_base(Url::parse(&receiver.root).unwrap())
}

#[actix_rt::test]
async fn a_training_runs_its_lifecycle_and_its_webhooks_reach_the_training_module() {
    let sim = Simulator::start(&[
        "--secret",
        SECRET,
        "--start-delay",
        "50ms",
        "--steps",
        "2",
        "--step",
        "100ms",
    ]);
    let runs = Runs::default();
    let receiver = receiver(&runs);
    let client = client(&sim, &receiver);
    let created = client
        .create_training(
            &CreateTraining::new(TRAINER, "abc123", "me/my-lora", json!({"steps": 10}))
                .webhook_spec(&SPEC),
        )
        .await
        .unwrap();
    assert_eq!(created.status, Status::Starting);
    assert!(created.output.is_none());
    let get = created.urls.get.clone().unwrap();
    assert!(
        get.ends_with(&format!("/v1/trainings/{}", created.id)),
        "{get}"
    );

    let records = sim.wait_for(&created.id, completed_delivered).await;
    let events: Vec<&str> = records.iter().map(|r| r.event.as_str()).collect();
    assert_eq!(events, ["start", "completed"], "{records:#?}");

    let done = client.get_training(&created.id).await.unwrap();
    assert_eq!(done.status, Status::Succeeded);
    let output = done.output.unwrap();
    let version = output.version.unwrap();
    assert!(version.starts_with("me/my-lora:"), "{version}");
    assert!(
        output
            .weights
            .unwrap()
            .starts_with("https://replicate.delivery/")
    );
    assert_eq!(
        *runs.lock().unwrap(),
        [
            format!("training on_start {} ", created.id),
            format!("training on_succeeded {} {version}", created.id),
        ]
    );
    receiver.stop().await;
}

#[actix_rt::test]
async fn a_training_is_canceled_and_its_canceled_webhook_arrives() {
    // It would start only after a minute: the cancel comes first.
    let sim = Simulator::start(&["--secret", SECRET, "--start-delay", "60s"]);
    let runs = Runs::default();
    let receiver = receiver(&runs);
    let client = client(&sim, &receiver);
    let created = client
        .create_training(
            &CreateTraining::new(TRAINER, "abc123", "me/my-lora", json!({})).webhook_spec(&SPEC),
        )
        .await
        .unwrap();
    let canceled = client.cancel_training(&created.id).await.unwrap();
    assert_eq!(canceled.status, Status::Canceled);
    sim.wait_for(&created.id, completed_delivered).await;
    assert_eq!(
        runs.lock().unwrap().last().unwrap(),
        &format!("training on_canceled {} ", created.id)
    );
    // An id the simulator never made is 404.
    let err = client.get_training("nosuchtraining").await.unwrap_err();
    assert_eq!(err.status(), Some(404), "{err}");
    receiver.stop().await;
}

#[actix_rt::test]
async fn the_simulator_refuses_a_training_without_a_destination() {
    let sim = Simulator::start(&["--secret", SECRET]);
    let client = Client::new(&sim.api, Some("r8_test".to_owned())).unwrap();
    let err = client
        .create_training(&CreateTraining::new(
            TRAINER,
            "abc123",
            "no-slash",
            json!({}),
        ))
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(422), "{err}");
    assert!(err.to_string().contains("destination"), "{err}");
}

#[actix_rt::test]
async fn send_training_posts_a_sample_training() {
    let runs = Runs::default();
    let receiver = receiver(&runs);
    let url = format!("{}/webhooks/replicate", receiver.root);
    let out = actix_web::rt::task::spawn_blocking(move || {
        bin()
            .args([
                "send",
                &url,
                "--training",
                "--prediction-id",
                "trainingsample1",
            ])
            .env("REPLICATE_WEBHOOK_SECRET", SECRET)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(stdout.starts_with("200 OK"), "{stdout}");
    let runs = runs.lock().unwrap().clone();
    assert_eq!(runs.len(), 1, "{runs:?}");
    assert!(
        runs[0].starts_with("training on_succeeded trainingsample1 acme/fine-tuned:"),
        "{runs:?}"
    );
    receiver.stop().await;
}
