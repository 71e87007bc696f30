//! The simulator's coglet profile against the quickstart: deliveries as a self-hosted Cog
//! container sends them (unsigned, a bearer token, no `webhook-id`, Cog's body, `output` never
//! throttled), each handled once; a wrong token is refused (the profile's retry policy, which
//! ends on a 401 as coglet's does, is unit-tested in `cli/src/simulator/coglet.rs`).

mod common;

use std::time::Duration;

use replicate_webhook::client::{Client, CreatePrediction};
use replicate_webhook::{Event, Secret, Url};
use replicate_webhook_cli::simulator::{self, DeliveryRecord, Script, Sender};
use replicate_webhook_tests::process::Process;
use serde_json::json;

const COG_TOKEN: &str = "cog-quickstart-token-5e1";

fn simulator(token: &str) -> simulator::Running {
    let mut config = simulator::Config::new(Secret::generate());
    config.sender = Sender::Coglet {
        token: Some(token.to_owned().into()),
    };
    // Outputs 20 ms apart: a burst no Replicate-style throttle would let through.
    config.script = Script {
        start_delay: Duration::from_millis(20),
        steps: 5,
        step: Duration::from_millis(20),
        ..Script::default()
    };
    config.verbose = false;
    common::serve_simulator(config)
}

async fn deliveries(sim: &simulator::Running, id: &str) -> Vec<DeliveryRecord> {
    reqwest::get(format!(
        "http://{}/_simulator/deliveries?prediction={id}",
        sim.addr
    ))
    .await
    .unwrap()
    .json()
    .await
    .unwrap()
}

async fn create(sim: &simulator::Running, webhook: &str) -> String {
    let client = Client::new(&sim.api_base, Some("r8_any".to_owned())).unwrap();
    let request = CreatePrediction::model("replicate/hello-world", json!({"text": "cog"})).webhook(
        Url::parse(webhook).unwrap(),
        [Event::Start, Event::Output, Event::Logs, Event::Completed],
    );
    client.create(&request).await.unwrap().id
}

#[actix_rt::test]
async fn the_quickstart_takes_a_cog_burst_once_each() {
    let dir = tempfile::tempdir().unwrap();
    let quickstart = Process::start(
        env!("CARGO_BIN_EXE_quickstart"),
        dir.path(),
        &[("REPLICATE_WEBHOOK_COG_TOKEN", COG_TOKEN)],
    );
    let sim = simulator(COG_TOKEN);
    let id = create(&sim, &format!("{}/webhooks/cog", quickstart.base)).await;

    let mut lines = Vec::new();
    while !lines
        .iter()
        .any(|l: &String| l.starts_with(&format!("on_succeeded id={id} ")))
    {
        lines.push(
            quickstart
                .stdout
                .recv_timeout(Duration::from_secs(30))
                .unwrap_or_else(|e| panic!("{e}: {lines:?}")),
        );
    }
    lines.extend(quickstart.drain(Duration::from_millis(500)));
    let outputs = lines
        .iter()
        .filter(|l| l.starts_with(&format!("on_output id={id} ")))
        .count();
    let sent = deliveries(&sim, &id).await;
    let sent_outputs = sent.iter().filter(|d| d.event == "output").count();
    assert_eq!(
        sent_outputs, 5,
        "every output sent, none throttled: {sent:?}"
    );
    assert_eq!(outputs, 5, "every output handled once: {lines:?}");
    assert_eq!(
        lines
            .iter()
            .filter(|l| l.starts_with(&format!("on_succeeded id={id} ")))
            .count(),
        1
    );
    // Cog's shape on the wire: no webhook-id, no signature; the model is not in the body.
    assert!(
        sent.iter()
            .all(|d| d.webhook_id.is_empty() && d.signature.is_empty())
    );
    assert!(
        sent.iter().all(|d| d.response_status == Some(200)),
        "{sent:?}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains("model= ") || l.contains("model=\"\"")),
        "{lines:?}"
    );
}

#[actix_rt::test]
async fn a_wrong_token_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let quickstart = Process::start(
        env!("CARGO_BIN_EXE_quickstart"),
        dir.path(),
        &[("REPLICATE_WEBHOOK_COG_TOKEN", COG_TOKEN)],
    );
    let sim = simulator("not-the-token");
    let id = create(&sim, &format!("{}/webhooks/cog", quickstart.base)).await;
    let completed = loop {
        let sent = deliveries(&sim, &id).await;
        if let Some(done) = sent.into_iter().find(|d| d.event == "completed") {
            break done;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(completed.response_status, Some(401));
    assert!(
        quickstart
            .drain(Duration::from_millis(100))
            .iter()
            .all(|l| !l.contains(&id))
    );
}
