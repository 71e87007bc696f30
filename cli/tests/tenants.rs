//! A multi-account receiver against the simulator with two accounts: each tenant's deliveries
//! verify with its own secret, fetched with its own token; a rotated secret heals after one
//! refetch; forged requests cause at most the rate-limited refetches; an unknown tenant costs
//! no API call.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::Receiver;
use replicate_webhook::client::{Client, CreatePrediction, Target};
use replicate_webhook::secrets::{FetchedSecrets, SecretSourceError, StaticSecrets};
use replicate_webhook::testkit::TestDelivery;
use replicate_webhook::{
    Event, HandlerError, HandlerKind, Module, Prediction, Secret, Tenants, Url, WebhookConfig,
};
use replicate_webhook_cli::simulator::{self, Account, Config};
use replicate_webhook_tests::post;
use secrecy::SecretString;

const TOKEN_A: &str = "r8_account_a_token";
const TOKEN_B: &str = "r8_account_b_token";

/// A simulator with two accounts besides its main one.
fn simulator(secret_a: &Secret, secret_b: &Secret) -> simulator::Running {
    let mut config = Config::new(Secret::generate());
    config.token = Some(SecretString::from("r8_main_token"));
    config.throttle = Duration::ZERO;
    config.script = simulator::Script {
        start_delay: Duration::from_millis(10),
        steps: 1,
        step: Duration::from_millis(10),
        ..simulator::Script::default()
    };
    config.retry_schedule = vec![Duration::from_millis(50); 3];
    config.accounts = vec![
        Account {
            token: TOKEN_A.into(),
            secret: secret_a.clone(),
        },
        Account {
            token: TOKEN_B.into(),
            secret: secret_b.clone(),
        },
    ];
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let (server, running) = simulator::serve(config, listener).unwrap();
    actix_web::rt::spawn(server);
    running
}

type Handled = Arc<Mutex<Vec<String>>>;

fn module(handled: &Handled) -> Module {
    let handled = handled.clone();
    Module::new("*").on(HandlerKind::Succeeded, move |p: Prediction| {
        let handled = handled.clone();
        async move {
            handled.lock().unwrap().push(p.id);
            Ok::<(), HandlerError>(())
        }
    })
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

async fn predict(api: &str, token: &str, webhook: &str) -> String {
    let client = Client::new(api, Some(token.to_owned())).unwrap();
    let request = CreatePrediction::new(
        Target::Version("replicate/hello-world".into()),
        serde_json::json!({"text": "x"}),
    )
    .webhook(Url::parse(webhook).unwrap(), [Event::Completed]);
    client.create(&request).await.unwrap().id
}

#[actix_rt::test]
async fn two_accounts_each_with_its_own_fetched_secret() {
    let (secret_a, secret_b) = (Secret::generate(), Secret::generate());
    let sim = simulator(&secret_a, &secret_b);
    // Every fetch asks the app for the tenant's token first: counting the tokens handed out
    // counts the API calls.
    let fetches = Arc::new(AtomicUsize::new(0));
    let asked = Arc::new(Mutex::new(Vec::<String>::new()));
    let source = {
        let (fetches, asked) = (fetches.clone(), asked.clone());
        FetchedSecrets::new(move |tenant: String| {
            asked.lock().unwrap().push(tenant.clone());
            let token = match tenant.as_str() {
                "acme" => Some(TOKEN_A.to_owned()),
                "bolt" => Some(TOKEN_B.to_owned()),
                _ => None,
            };
            if token.is_some() {
                fetches.fetch_add(1, Ordering::SeqCst);
            }
            async move { Ok::<_, SecretSourceError>(token) }
        })
        .base_url(sim.api_base.clone())
        .refetch_period(Duration::from_hours(1))
    };
    let handled = Handled::default();
    let receiver = Receiver::start(
        WebhookConfig::with_secrets(Vec::new())
            .collect_registered(false)
            .tenants(Tenants::by_path(source.clone()))
            .module(module(&handled)),
    );
    let url = |tenant: &str| format!("{}/webhooks/replicate/{tenant}", receiver.root);

    // Each account's predictions, signed with its own secret, fetched once with its own token.
    let a = predict(&sim.api_base, TOKEN_A, &url("acme")).await;
    let b = predict(&sim.api_base, TOKEN_B, &url("bolt")).await;
    wait_until("both handled", || {
        let h = handled.lock().unwrap();
        h.contains(&a) && h.contains(&b)
    })
    .await;
    assert_eq!(fetches.load(Ordering::SeqCst), 2);

    // A rotates its secret: the next delivery fails the cached one, one refetch heals it.
    let rotated = reqwest::Client::new()
        .post(format!("http://{}/_simulator/rotate-secret", sim.addr))
        .bearer_auth(TOKEN_A)
        .send()
        .await
        .unwrap();
    assert_eq!(rotated.status(), 200);
    let a2 = predict(&sim.api_base, TOKEN_A, &url("acme")).await;
    wait_until("handled after the rotation", || {
        handled.lock().unwrap().contains(&a2)
    })
    .await;
    assert_eq!(
        fetches.load(Ordering::SeqCst),
        3,
        "one refetch for the rotation"
    );

    // A delivery for A signed with B's secret is refused; A's refetch budget is spent, so it
    // costs no API call.
    let forged = TestDelivery::succeeded("acme/x", serde_json::json!("x"))
        .path("/webhooks/replicate/acme")
        .sign(&secret_b);
    assert_eq!(post(&receiver.root, &forged).await.0, 401);
    assert_eq!(fetches.load(Ordering::SeqCst), 3);

    // A flood of forged deliveries for both: at most one refetch per tenant and period (B's).
    for i in 0..40 {
        let tenant = if i % 2 == 0 { "acme" } else { "bolt" };
        let forged = TestDelivery::succeeded("acme/x", serde_json::json!("x"))
            .path(format!("/webhooks/replicate/{tenant}"))
            .sign_with_wrong_key();
        assert_eq!(post(&receiver.root, &forged).await.0, 401);
    }
    assert_eq!(
        fetches.load(Ordering::SeqCst),
        4,
        "B's one refetch, nothing more"
    );

    // An unknown tenant: 404, and no API call (the app said it has no token).
    let unknown = TestDelivery::succeeded("acme/x", serde_json::json!("x"))
        .path("/webhooks/replicate/nobody")
        .sign(&secret_a);
    assert_eq!(post(&receiver.root, &unknown).await.0, 404);
    assert_eq!(fetches.load(Ordering::SeqCst), 4);
    assert_eq!(
        asked.lock().unwrap().last().map(String::as_str),
        Some("nobody")
    );

    // The client the source scopes to a tenant creates in that tenant's account: its
    // prediction comes back signed with that account's (rotated) secret, and is handled.
    let client = source
        .client("acme")
        .await
        .unwrap()
        .expect("a known tenant");
    assert!(source.client("nobody").await.unwrap().is_none());
    // Acting for the tenant: through `config.watching(..)` what it creates is watched in the
    // tenant's namespace and polled with its token (`tenant_reconcile.rs`).
    let shown = format!("{client:?}");
    assert!(shown.contains(r#"tenant: Some("acme")"#), "{shown}");
    assert!(!shown.contains(TOKEN_A), "{shown}");
    let request = CreatePrediction::new(
        Target::Version("replicate/hello-world".into()),
        serde_json::json!({"text": "x"}),
    )
    .webhook(Url::parse(&url("acme")).unwrap(), [Event::Completed]);
    let a3 = client.create(&request).await.unwrap().id;
    wait_until("handled", || handled.lock().unwrap().contains(&a3)).await;

    // A delivery naming no tenant is checked against the app's own secrets: it has none here.
    let own = TestDelivery::succeeded("acme/x", serde_json::json!("x")).sign(&secret_a);
    assert_eq!(post(&receiver.root, &own).await.0, 401);
    receiver.stop().await;
    sim.handle.stop(false).await;
}

#[actix_rt::test]
async fn dedupe_keys_are_per_tenant_and_the_query_can_name_the_tenant() {
    let (secret_a, secret_b) = (Secret::generate(), Secret::generate());
    let handled = Handled::default();
    let receiver = Receiver::start(
        WebhookConfig::with_secrets(Vec::new())
            .collect_registered(false)
            .tenants(Tenants::by_query(
                "account",
                StaticSecrets::new()
                    .tenant("acme", secret_a.clone())
                    .tenant("bolt", secret_b.clone()),
            ))
            .module(module(&handled)),
    );
    // The same prediction id and webhook-id under two accounts: two predictions, two runs.
    let body = replicate_webhook::testkit::sample_prediction(
        "shared-id",
        "acme/x",
        "succeeded",
        serde_json::json!("x"),
    );
    for (tenant, secret) in [
        ("acme", &secret_a),
        ("bolt", &secret_b),
        ("acme", &secret_a),
    ] {
        let mut body = body.clone();
        body["webhook"] = serde_json::json!(format!(
            "https://app.example/webhooks/replicate?account={tenant}"
        ));
        let delivery = TestDelivery::new(body.to_string())
            .id("msg_shared")
            .path(format!("/webhooks/replicate?account={tenant}"))
            .sign(secret);
        assert_eq!(post(&receiver.root, &delivery).await.0, 200);
    }
    assert_eq!(*handled.lock().unwrap(), ["shared-id", "shared-id"]);
    // B's secret does not open A's query.
    let mut body = body.clone();
    body["webhook"] = serde_json::json!("https://app.example/webhooks/replicate?account=acme");
    let crossed = TestDelivery::new(body.to_string())
        .path("/webhooks/replicate?account=acme")
        .sign(&secret_b);
    assert_eq!(post(&receiver.root, &crossed).await.0, 401);
    receiver.stop().await;
}
