//! The CLI speaking as a self-hosted Cog container: `send --sender coglet` posts one delivery,
//! and `simulate --sender coglet` runs predictions whose webhooks coglet would send, both to a
//! receiver that accepts Cog's bearer token on a Cog module's path.

mod common;

use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{Receiver, Simulator, bin};
use replicate_webhook::client::{Client, CreatePrediction};
use replicate_webhook::{
    CogToken, Event, HandlerError, HandlerKind, Module, Prediction, Secret, Url, WebhookConfig,
};

const TOKEN: &str = "cli-cog-token-0c41";

type Seen = Arc<Mutex<Vec<(String, String)>>>;

fn receiver(seen: &Seen) -> Receiver {
    let mut module = Module::cog()
        .path("/webhooks/cog")
        .events([Event::Output, Event::Completed]);
    for kind in [HandlerKind::Output, HandlerKind::Succeeded] {
        let seen = seen.clone();
        module = module.on(kind, move |p: Prediction| {
            let seen = seen.clone();
            async move {
                seen.lock().unwrap().push((kind.fn_name().to_owned(), p.id));
                Ok::<(), HandlerError>(())
            }
        });
    }
    Receiver::start(
        WebhookConfig::new(Secret::generate())
            .collect_registered(false)
            .cog_token(CogToken::new(TOKEN).unwrap())
            .module(module),
    )
}

async fn send(args: &[&str]) -> std::process::Output {
    let mut cmd = bin();
    cmd.arg("send").args(args).stdin(Stdio::null());
    tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap()
}

#[actix_rt::test]
async fn send_posts_a_coglet_delivery() {
    let seen = Seen::default();
    let receiver = receiver(&seen);
    let url = format!("{}/webhooks/cog", receiver.root);
    let coglet = |id: &'static str, token: &'static str| {
        [
            url.clone(),
            "--sender".into(),
            "coglet".into(),
            "--prediction-id".into(),
            id.into(),
            "--cog-token".into(),
            token.into(),
        ]
    };
    let out = send(&coglet("sent-1", TOKEN).each_ref().map(String::as_str)).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_eq!(
        *seen.lock().unwrap(),
        [("on_succeeded".to_owned(), "sent-1".to_owned())]
    );
    let arrival = receiver.arrivals().pop().unwrap();
    assert!(arrival.webhook_id.is_empty() && arrival.signature.is_empty());
    // The wrong token is refused (exit 1), and no secret was needed for either.
    let out = send(&coglet("sent-2", "nope").each_ref().map(String::as_str)).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("401"));
    assert_eq!(seen.lock().unwrap().len(), 1);
    receiver.stop().await;
}

#[actix_rt::test]
async fn simulate_runs_predictions_as_coglet() {
    let seen = Seen::default();
    let receiver = receiver(&seen);
    let sim = Simulator::start(&[
        "--sender",
        "coglet",
        "--cog-token",
        TOKEN,
        "--steps",
        "4",
        "--step",
        "10ms",
        "--start-delay",
        "10ms",
    ]);
    let client = Client::new(&sim.api, Some("r8_any".to_owned())).unwrap();
    let request = CreatePrediction::model(
        "replicate/hello-world",
        serde_json::json!({"text": "coglet says hi"}),
    )
    .webhook(
        Url::parse(&format!("{}/webhooks/cog", receiver.root)).unwrap(),
        [Event::Output, Event::Completed],
    );
    let id = client.create(&request).await.unwrap().id;
    replicate_webhook_tests::within(async {
        while !seen
            .lock()
            .unwrap()
            .contains(&("on_succeeded".to_owned(), id.clone()))
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    let outputs = seen
        .lock()
        .unwrap()
        .iter()
        .filter(|(k, i)| k == "on_output" && *i == id)
        .count();
    assert_eq!(outputs, 4, "each of the four outputs, unthrottled, once");
    assert!(
        receiver
            .arrivals()
            .iter()
            .all(|a| a.webhook_id.is_empty() && a.signature.is_empty() && a.status == 200)
    );
    receiver.stop().await;
}
