//! The reconciler of a multi-account receiver, against the simulator with three accounts whose
//! terminal webhooks are all lost: each tenant's prediction is polled with that tenant's own API
//! token (the simulator records which account read it) and delivered signed with that tenant's
//! secret (the receiver verifies it as the tenant's); a tenant with no API token is not polled,
//! and a log line, which shows no token, says so.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::Receiver;
use replicate_webhook::client::{Client, CreatePrediction, Target};
use replicate_webhook::reconcile::Reconcile;
use replicate_webhook::secrets::StaticSecrets;
use replicate_webhook::{
    Event, HandlerError, HandlerKind, Module, Prediction, Secret, Tenant, Tenants, Url,
    WebhookConfig,
};
use replicate_webhook_cli::simulator::{self, Account, Config, Faults};
use secrecy::SecretString;

const TOKEN_A: &str = "r8_reconcile_account_a";
const TOKEN_B: &str = "r8_reconcile_account_b";
const TOKEN_C: &str = "r8_reconcile_account_c";

/// A simulator with three accounts besides its main one, which never sends a terminal webhook.
fn simulator(secrets: &[&Secret; 3]) -> simulator::Running {
    let mut config = Config::new(Secret::generate());
    config.token = Some(SecretString::from("r8_main_token"));
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
    config.accounts = [TOKEN_A, TOKEN_B, TOKEN_C]
        .iter()
        .zip(secrets)
        .map(|(token, secret)| Account {
            token: (*token).into(),
            secret: (*secret).clone(),
        })
        .collect();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let (server, running) = simulator::serve(config, listener).unwrap();
    actix_web::rt::spawn(server);
    running
}

async fn predict(client: &Client, webhook: &str, events: &[Event]) -> String {
    let request = CreatePrediction::new(
        Target::Version("replicate/hello-world".into()),
        serde_json::json!({"text": "x"}),
    )
    .webhook(Url::parse(webhook).unwrap(), events.iter().copied());
    client.create(&request).await.unwrap().id
}

async fn wait_until(what: &str, done: impl Fn() -> bool) {
    replicate_webhook_tests::within(async {
        while !done() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(done(), "{what}");
}

/// Who read `prediction` from the simulator: one account number per `GET`, with its answer.
async fn reads(sim: &simulator::Running, prediction: &str) -> Vec<(u64, u64)> {
    let reads: Vec<serde_json::Value> = reqwest::get(format!(
        "http://{}/_simulator/reads?prediction={prediction}",
        sim.addr
    ))
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    reads
        .iter()
        .map(|r| {
            (
                r["account"].as_u64().unwrap(),
                r["status"].as_u64().unwrap(),
            )
        })
        .collect()
}

#[actix_rt::test]
async fn each_tenants_lost_webhooks_are_polled_with_its_token_and_signed_with_its_secret() {
    let log = replicate_webhook_tests::logs::captured();
    let secrets = [Secret::generate(), Secret::generate(), Secret::generate()];
    let sim = simulator(&[&secrets[0], &secrets[1], &secrets[2]]);
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
    // Two tenants with an API token, and `solo`, whose deliveries verify but who has none.
    let source = StaticSecrets::new()
        .tenant("acme", secrets[0].clone())
        .api_token("acme", TOKEN_A)
        .tenant("bolt", secrets[1].clone())
        .api_token("bolt", TOKEN_B)
        .tenant("solo", secrets[2].clone());
    // The app's own client has no token: every poll below is a tenant's.
    let own = Client::new(&sim.api_base, None).unwrap();
    let config = WebhookConfig::with_secrets(Vec::new())
        .collect_registered(false)
        .tenants(Tenants::by_path(source))
        .reconcile(Reconcile::new(own).after(Duration::from_millis(200)))
        .module(module);
    let receiver = Receiver::start(config.clone());
    let url = |tenant: &str| format!("{}/webhooks/replicate/{tenant}", receiver.root);
    let client = |token: &str| Client::new(&sim.api_base, Some(token.to_owned())).unwrap();

    // Heard of through their `start` webhooks, in each tenant's namespace...
    let both = [Event::Start, Event::Completed];
    let a = predict(&client(TOKEN_A), &url("acme"), &both).await;
    let b = predict(&client(TOKEN_B), &url("bolt"), &both).await;
    let c = predict(&client(TOKEN_C), &url("solo"), &both).await;
    // ...or created by a watching client acting for the tenant, with no webhook but the lost one.
    let watching = config.watching(client(TOKEN_A).tenant(Tenant::new("acme")));
    let a2 = predict(&watching, &url("acme"), &[Event::Completed]).await;

    wait_until("every lost result of acme and bolt recovered", || {
        let h = handled.lock().unwrap();
        [&a, &b, &a2].iter().all(|id| h.contains(id))
    })
    .await;
    wait_until("the skipped tenant logged", || {
        String::from_utf8_lossy(&log.lock().unwrap()).contains("no API token configured")
    })
    .await;

    // Polled with its own tenant's token only: account 1 is acme's, 2 bolt's.
    for (id, account) in [(&a, 1), (&a2, 1), (&b, 2)] {
        let reads = reads(&sim, id).await;
        assert!(!reads.is_empty(), "{id} was polled");
        assert!(
            reads
                .iter()
                .all(|(by, status)| *by == account && *status == 200),
            "{id}: {reads:?}"
        );
    }
    // Delivered by the reconciler to the tenant's own URL and accepted there: signed with the
    // tenant's secret, since the receiver has no other.
    let arrivals = receiver.arrivals.lock().unwrap().clone();
    for (id, tenant) in [(&a, "acme"), (&a2, "acme"), (&b, "bolt")] {
        let recovered: Vec<_> = arrivals
            .iter()
            .filter(|r| r.webhook_id == format!("msg_reconcile_{id}_succeeded"))
            .collect();
        assert_eq!(recovered.len(), 1, "{id}: {arrivals:?}");
        assert_eq!(
            recovered[0].path_and_query,
            format!("/webhooks/replicate/{tenant}")
        );
        assert_eq!(recovered[0].status, 200);
    }
    assert_eq!(handled.lock().unwrap().len(), 3, "each ran once");

    // The tenant without a token: never polled, nothing delivered, a clear line without tokens.
    assert!(reads(&sim, &c).await.is_empty());
    assert!(!handled.lock().unwrap().contains(&c));
    let text = String::from_utf8_lossy(&log.lock().unwrap()).into_owned();
    let line = text
        .lines()
        .find(|l| l.contains("no API token configured"))
        .unwrap();
    assert!(
        line.contains("tenant=\"solo\"") || line.contains("tenant=solo"),
        "{line}"
    );
    assert!(line.contains(&c), "{line}");
    for secret in [TOKEN_A, TOKEN_B, TOKEN_C, "r8_main_token"] {
        assert!(!text.contains(secret), "a token was logged: {text}");
    }
    receiver.stop().await;
    sim.handle.stop(false).await;
}
