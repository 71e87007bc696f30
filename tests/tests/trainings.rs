//! Trainings and predictions of one model on one path: the body's `urls.get` routes each to its
//! own module, typed `Training` for the one, `Prediction` for the other.

use std::sync::Mutex;

use actix_web::web;
use replicate_webhook::testkit::{
    TestDelivery, new_prediction_id, sample_prediction, sample_training,
};
use replicate_webhook::{
    HandlerError, Prediction, Secret, Training, WebhookConfig, replicate_webhook,
};
use replicate_webhook_tests::TestServer;
use serde_json::json;

static RUNS: Mutex<Vec<String>> = Mutex::new(Vec::new());

fn runs_for(id: &str) -> Vec<String> {
    RUNS.lock()
        .unwrap()
        .iter()
        .filter(|r| r.contains(id))
        .cloned()
        .collect()
}

#[replicate_webhook(training = "trainer/lora", events = ["start", "completed"])]
mod lora_trainings {
    use super::{HandlerError, RUNS, Training};

    async fn on_start(t: Training) -> Result<(), HandlerError> {
        RUNS.lock()
            .unwrap()
            .push(format!("training start {}", t.id));
        Ok(())
    }

    async fn on_succeeded(t: Training) -> Result<(), HandlerError> {
        let output = t.output.unwrap_or_default();
        RUNS.lock().unwrap().push(format!(
            "training succeeded {} version={} weights={}",
            t.id,
            output.version.unwrap_or_default(),
            output.weights.unwrap_or_default()
        ));
        Ok(())
    }

    async fn on_failed(t: Training) -> Result<(), HandlerError> {
        RUNS.lock().unwrap().push(format!(
            "training failed {} {}",
            t.id,
            t.error.unwrap_or_default()
        ));
        Ok(())
    }
}

/// The same model's predictions, on the same default path.
#[replicate_webhook(model = "trainer/lora")]
mod lora_predictions {
    use super::{HandlerError, Prediction, RUNS};

    async fn on_succeeded(p: Prediction) -> Result<(), HandlerError> {
        RUNS.lock()
            .unwrap()
            .push(format!("prediction succeeded {}", p.id));
        Ok(())
    }
}

struct Server {
    srv: TestServer,
    secret: Secret,
}

impl Server {
    fn start() -> Self {
        let secret = Secret::generate();
        let config = WebhookConfig::new(secret.clone());
        let srv = TestServer::start(move || {
            let mount = replicate_webhook::configure(config.clone());
            move |cfg: &mut web::ServiceConfig| mount(cfg)
        });
        Self { srv, secret }
    }

    async fn send(&self, body: &serde_json::Value) -> (u16, String) {
        let delivery = TestDelivery::new(body.to_string());
        self.srv.deliver(&delivery.sign(&self.secret)).await
    }
}

#[actix_rt::test]
async fn a_training_reaches_the_training_module_typed() {
    let server = Server::start();
    let id = new_prediction_id();
    assert_eq!(
        server
            .send(&sample_training(&id, "trainer/lora", "starting"))
            .await
            .0,
        200
    );
    assert_eq!(
        server
            .send(&sample_training(&id, "trainer/lora", "succeeded"))
            .await
            .0,
        200
    );
    assert_eq!(
        runs_for(&id),
        [
            format!("training start {id}"),
            format!(
                "training succeeded {id} version=acme/fine-tuned:{} weights=https://replicate.delivery/xezq/{id}/trained_model.tar",
                "0".repeat(64)
            ),
        ]
    );
    // A retry of the terminal training webhook is deduplicated like a prediction's.
    let (status, body) = server
        .send(&sample_training(&id, "trainer/lora", "succeeded"))
        .await;
    assert_eq!(
        (status, body.as_str()),
        (
            200,
            "prediction already handled; its first terminal status wins"
        )
    );
    assert_eq!(runs_for(&id).len(), 2);
}

#[actix_rt::test]
async fn a_prediction_of_the_same_model_on_the_same_path_stays_a_prediction() {
    let server = Server::start();
    let id = new_prediction_id();
    let body = sample_prediction(
        &id,
        "trainer/lora",
        "succeeded",
        json!("https://replicate.delivery/x.png"),
    );
    assert_eq!(server.send(&body).await.0, 200);
    assert_eq!(runs_for(&id), [format!("prediction succeeded {id}")]);
}

#[actix_rt::test]
async fn a_training_of_a_model_without_a_training_module_runs_nothing() {
    let server = Server::start();
    let id = new_prediction_id();
    let (status, body) = server
        .send(&sample_training(&id, "other/trainer", "succeeded"))
        .await;
    assert_eq!((status, body.as_str()), (200, "no handler for this model"));
    assert!(runs_for(&id).is_empty());
}
