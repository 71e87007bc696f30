//! The expected-delivery monitor end to end: a receiver creates predictions through a watching
//! client, the simulator never sends their terminal webhooks, the reconciler recovers every
//! result, and the monitor says webhooks are missing the ways the issue asks: the app's hook,
//! a metric, a log line and the dashboard's overview. Its own test binary: it installs a
//! process-wide metrics recorder and log subscriber.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::Receiver;
use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use replicate_webhook::client::{Client, CreatePrediction, Target};
use replicate_webhook::dashboard::Dashboard;
use replicate_webhook::monitor::{Alert, MonitorOptions};
use replicate_webhook::reconcile::Reconcile;
use replicate_webhook::{
    Event, HandlerError, HandlerKind, Module, Prediction, Secret, Url, WebhookConfig,
};
use replicate_webhook_cli::simulator::{self, Config, Faults};
use secrecy::SecretString;

const TOKEN: &str = "r8_monitor_test";
const DASHBOARD_TOKEN: &str = "a-long-random-dashboard-token";
const PREDICTIONS: usize = 3;

/// A simulator whose terminal webhooks are never sent.
fn simulator(secret: &Secret) -> simulator::Running {
    let mut config = Config::new(secret.clone());
    config.token = Some(SecretString::from(TOKEN));
    config.throttle = Duration::ZERO;
    config.script = simulator::Script {
        start_delay: Duration::from_millis(10),
        steps: 1,
        step: Duration::from_millis(10),
        ..simulator::Script::default()
    };
    config.faults = Faults {
        drop: [Event::Completed].into(),
        ..Faults::default()
    };
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let (server, running) = simulator::serve(config, listener).unwrap();
    actix_web::rt::spawn(server);
    running
}

#[actix_rt::test]
async fn predictions_whose_webhooks_never_come_raise_the_alert() {
    let recorder = DebuggingRecorder::new();
    let metrics = recorder.snapshotter();
    recorder.install().unwrap();
    let log = replicate_webhook_tests::logs::captured();

    let secret = Secret::generate();
    let sim = simulator(&secret);
    let alerts = Arc::new(Mutex::new(Vec::<Alert>::new()));
    let handled = Arc::new(Mutex::new(Vec::<String>::new()));
    let module = Module::new("*").on(HandlerKind::Succeeded, {
        let handled = handled.clone();
        move |p: Prediction| {
            let handled = handled.clone();
            async move {
                handled.lock().unwrap().push(p.id);
                Ok::<(), HandlerError>(())
            }
        }
    });
    let client = Client::new(&sim.api_base, Some(TOKEN.to_owned())).unwrap();
    let config = WebhookConfig::new(secret)
        .collect_registered(false)
        .reconcile(Reconcile::new(client.clone()).after(Duration::from_millis(200)))
        .monitor(
            MonitorOptions::default()
                .threshold(0.5)
                .min_results(PREDICTIONS as u64)
                .on_alert({
                    let alerts = alerts.clone();
                    move |alert| alerts.lock().unwrap().push(alert.clone())
                }),
        )
        .dashboard(Dashboard::new(DASHBOARD_TOKEN))
        .module(module);
    let receiver = Receiver::start(config.clone());
    let webhook = Url::parse(&format!("{}/webhooks/replicate", receiver.root)).unwrap();

    // The app expects these webhooks: created through the watching client.
    let watching = config.watching(client);
    let mut ids = Vec::new();
    let mut model = String::new();
    for i in 0..PREDICTIONS {
        let request = CreatePrediction::new(
            Target::Version("replicate/hello-world".into()),
            serde_json::json!({ "text": format!("n{i}") }),
        )
        .webhook(webhook.clone(), [Event::Completed]);
        let created = watching.create(&request).await.unwrap();
        model.clone_from(&created.model);
        ids.push(created.id);
    }
    replicate_webhook_tests::within(async {
        while alerts.lock().unwrap().is_empty() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;

    // No webhook came: every result was the reconciler's, and each handler ran once.
    let arrivals = receiver.arrivals.lock().unwrap().clone();
    assert!(
        arrivals
            .iter()
            .all(|a| a.webhook_id.starts_with("msg_reconcile_")),
        "{arrivals:?}"
    );
    let mut ran = handled.lock().unwrap().clone();
    ran.sort();
    ids.sort();
    assert_eq!(ran, ids);

    // The hook, once, with the model and its figures.
    let alert = alerts.lock().unwrap().clone();
    assert_eq!(alert.len(), 1, "{alert:?}");
    assert_eq!(alert[0].model, model);
    assert_eq!(
        (alert[0].received, alert[0].recovered),
        (0, PREDICTIONS as u64)
    );
    assert!((alert[0].recovered_share - 1.0).abs() < f64::EPSILON);

    // The metrics: expected per model, and the gauge an operator alerts on. One snapshot:
    // taking one resets the counters.
    let snapshot = metrics.snapshot().into_vec();
    let metric = |name: &str| {
        snapshot
            .iter()
            .find(|(key, ..)| {
                key.key().name() == name
                    && key
                        .key()
                        .labels()
                        .any(|l| l.key() == "model" && l.value() == model)
            })
            .map(|(.., value)| value)
    };
    assert_eq!(
        metric("replicate_webhook_deliveries_missing"),
        Some(&DebugValue::Gauge(1.0.into()))
    );
    assert_eq!(
        metric("replicate_webhook_deliveries_expected_total"),
        Some(&DebugValue::Counter(PREDICTIONS as u64))
    );
    let text = String::from_utf8_lossy(&log.lock().unwrap()).into_owned();
    assert!(text.contains("webhooks are missing"), "{text}");

    // The dashboard's overview, as JSON and as the page.
    let prefix = format!("{}/replicate/dashboard", receiver.root);
    let overview: serde_json::Value = reqwest::Client::new()
        .get(format!("{prefix}/api/overview"))
        .bearer_auth(DASHBOARD_TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let stats = &overview["monitor"]["models"][&model];
    assert_eq!(stats["expected"], PREDICTIONS);
    assert_eq!(stats["received"], 0);
    assert_eq!(stats["recovered"], PREDICTIONS);
    assert_eq!(stats["alerting"], true, "{overview}");
    let browser = reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let login = browser
        .post(format!("{prefix}/login"))
        .form(&[("token", DASHBOARD_TOKEN)])
        .send()
        .await
        .unwrap();
    assert_eq!(login.status().as_u16(), 303);
    let page = browser
        .get(format!("{prefix}/"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("webhooks missing"), "{page}");
    receiver.stop().await;
    sim.handle.stop(false).await;
}
