//! `output` events faster than 500 ms apart (coglet stopped throttling them, and a simulator
//! run with `--throttle 0s` sends them so): every one reaches its handler once, none is lost
//! or doubled, in order.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::Receiver;
use replicate_webhook::client::{Client, CreatePrediction};
use replicate_webhook::{
    Event, HandlerError, HandlerKind, Module, Prediction, Secret, Url, WebhookConfig,
};
use replicate_webhook_cli::simulator::{self, Config, DeliveryRecord, Script};

const STEPS: u32 = 12;

#[actix_rt::test]
async fn an_unthrottled_burst_is_handled_once_each_in_order() {
    let secret = Secret::generate();
    let mut config = Config::new(secret.clone());
    config.throttle = Duration::ZERO;
    config.script = Script {
        start_delay: Duration::from_millis(10),
        steps: STEPS,
        step: Duration::from_millis(5),
        ..Script::default()
    };
    config.verbose = false;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let (server, sim) = simulator::serve(config, listener).unwrap();
    actix_web::rt::spawn(server);

    let outputs: Arc<Mutex<Vec<usize>>> = Arc::default();
    let done: Arc<Mutex<usize>> = Arc::default();
    let (seen, finished) = (outputs.clone(), done.clone());
    let module = Module::new("*")
        .events([Event::Output, Event::Completed])
        .on(HandlerKind::Output, move |p: Prediction| {
            let seen = seen.clone();
            async move {
                let n = p.output.as_ref().map_or(0, |o| o.to_string().len());
                seen.lock().unwrap().push(n);
                Ok::<(), HandlerError>(())
            }
        })
        .on(HandlerKind::Succeeded, move |_: Prediction| {
            let finished = finished.clone();
            async move {
                *finished.lock().unwrap() += 1;
                Ok::<(), HandlerError>(())
            }
        });
    let receiver = Receiver::start(
        WebhookConfig::new(secret)
            .collect_registered(false)
            .module(module),
    );
    let client = Client::new(&sim.api_base, Some("r8_any".to_owned())).unwrap();
    let request = CreatePrediction::model(
        "replicate/hello-world",
        serde_json::json!({"text": "a burst of outputs, each a little longer"}),
    )
    .webhook(
        Url::parse(&format!("{}/webhooks/replicate", receiver.root)).unwrap(),
        [Event::Output, Event::Completed],
    );
    let id = client.create(&request).await.unwrap().id;
    replicate_webhook_tests::within(async {
        while *done.lock().unwrap() == 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    let sent: Vec<DeliveryRecord> = reqwest::get(format!(
        "http://{}/_simulator/deliveries?prediction={id}",
        sim.addr
    ))
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    let sent_outputs = sent.iter().filter(|d| d.event == "output").count();
    let handled = outputs.lock().unwrap().clone();
    // Every output delivery ran its handler once, the output growing each time: nothing
    // doubled, nothing skipped. (Were two to cross on the way, the older would be answered as
    // stale: outputs are cumulative, so the newer one carries it; the count below allows that,
    // the order and the final output do not.)
    assert_eq!(
        sent_outputs, STEPS as usize,
        "every step sent, none throttled: {sent:?}"
    );
    assert!(handled.windows(2).all(|w| w[1] > w[0]), "{handled:?}");
    assert!(
        handled.len() <= sent_outputs && handled.len() + 1 >= sent_outputs,
        "{handled:?}"
    );
    assert_eq!(*done.lock().unwrap(), 1);
    receiver.stop().await;
    sim.handle.stop(false).await;
}
