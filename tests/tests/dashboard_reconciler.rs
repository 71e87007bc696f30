//! The dashboard's reconciler page and `{prefix}/api/reconciler` show what the shared stores
//! hold, so every instance shows the same: the watch list with each prediction's tenant, next
//! poll and polls so far (from the dedupe store), and the reconciler's deliveries (from the
//! journal). Two instances on one store: one hears of the predictions, the other shows them.

use std::time::{Duration, Instant};

use replicate_webhook::client::Client;
use replicate_webhook::dashboard::Dashboard;
use replicate_webhook::reconcile::Reconcile;
use replicate_webhook::secrets::StaticSecrets;
use replicate_webhook::testkit::{TestDelivery, new_prediction_id, sample_prediction};
use replicate_webhook::{HandlerError, HandlerKind, Module, Prediction, Secret, Tenants};
use replicate_webhook::{WebhookConfig, dedupe::StoreUrl};
use replicate_webhook_tests::operator::{self, PREFIX, Store, TOKEN, api};
use replicate_webhook_tests::{TestServer, inbox, post};
use serde_json::Value;

const ACME: &str = "whsec_YWNtZS1zZWNyZXQtMDEyMzQ1Njc4OWFiY2RlZg==";

/// One instance of the receiver on `url`: its own secret, and tenant `acme`.
fn instance(url: &StoreUrl) -> TestServer {
    let module = Module::new("*").on(HandlerKind::Succeeded, |_: Prediction| async {
        Ok::<(), HandlerError>(())
    });
    // Polls nothing within the test: the first poll is an hour away.
    let reconcile = Reconcile::new(Client::new("http://127.0.0.1:9/v1", None).unwrap())
        .after(Duration::from_hours(1));
    TestServer::serve(
        WebhookConfig::new(inbox::secret())
            .collect_registered(false)
            .store_url(url)
            .unwrap()
            .tenants(Tenants::by_path(
                StaticSecrets::new().tenant("acme", Secret::parse(ACME).unwrap()),
            ))
            .reconcile(reconcile)
            .dashboard(Dashboard::new(TOKEN).prefix(PREFIX))
            .module(module),
    )
}

/// `GET {PREFIX}/api/reconciler` on `server`, until `done` holds (the journal is written off
/// the request path); fails after 15 s.
async fn until_reconciler(server: &TestServer, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (status, view) = api(server, "/api/reconciler").await;
        assert_eq!(status, 200, "{view}");
        if done(&view) {
            return view;
        }
        assert!(Instant::now() < deadline, "never got there: {view}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn watched<'a>(view: &'a Value, id: &str) -> Option<&'a Value> {
    view["watched"]
        .as_array()?
        .iter()
        .find(|w| w["prediction_id"] == id)
}

#[actix_rt::test]
async fn every_instance_shows_the_shared_watch_list_and_recoveries() {
    for store in Store::all().await {
        if matches!(store, Store::Memory) {
            continue; // one process's memory: no second instance shares it
        }
        let url = store.url();
        let (a, b) = (instance(&url), instance(&url));
        let (own, tenants) = (new_prediction_id(), new_prediction_id());

        // Instance A hears of two predictions, one of them tenant acme's...
        let starting = |id: &str| {
            TestDelivery::new(
                sample_prediction(id, "acme/model", "starting", Value::Null).to_string(),
            )
        };
        assert_eq!(
            post(&a.base, &starting(&own).sign(&inbox::secret()))
                .await
                .0,
            200
        );
        let d = starting(&tenants)
            .path("/webhooks/replicate/acme")
            .sign(&Secret::parse(ACME).unwrap());
        assert_eq!(post(&a.base, &d).await.0, 200);

        // ...and instance B shows both, with their tenant, next poll and polls.
        let view = until_reconciler(&b, |v| {
            watched(v, &own).is_some() && watched(v, &tenants).is_some()
        })
        .await;
        let (w1, w2) = (
            watched(&view, &own).unwrap(),
            watched(&view, &tenants).unwrap(),
        );
        assert_eq!(w1["tenant"], Value::Null, "{}", store.name());
        assert_eq!(w2["tenant"], "acme", "{}", store.name());
        assert_eq!(w1["polls"], 0);
        assert!(
            w1["next_poll_at"]
                .as_str()
                .is_some_and(|t| t.ends_with('Z')),
            "{w1}"
        );

        // The reconciler's delivery of `own` reaches A: B no longer lists it as watched, and
        // lists it as recovered, with the answer it got.
        let recovered = TestDelivery::new(
            sample_prediction(&own, "acme/model", "succeeded", "x".into()).to_string(),
        )
        .id(format!("msg_reconcile_{own}_succeeded"))
        .sign(&inbox::secret());
        assert_eq!(post(&a.base, &recovered).await.0, 200);
        let view = until_reconciler(&b, |v| {
            watched(v, &own).is_none()
                && v["recovered"]
                    .as_array()
                    .is_some_and(|r| r.iter().any(|d| d["prediction_id"] == own.as_str()))
        })
        .await;
        let row = view["recovered"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["prediction_id"] == own.as_str())
            .unwrap();
        assert_eq!(row["outcome"], "ran", "{}", store.name());
        assert_eq!(row["http_status"], 200);
        assert!(
            view["recovered"]
                .as_array()
                .unwrap()
                .iter()
                .all(|d| d["webhook_id"]
                    .as_str()
                    .unwrap()
                    .starts_with("msg_reconcile_")),
            "only the reconciler's: {view}"
        );

        // The page says the same, and says where it comes from.
        let browser = operator::logged_in(&b).await;
        let page = browser
            .get(b.url(&format!("{PREFIX}/reconciler")))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(page.contains(&tenants) && page.contains("acme"), "{page}");
        assert!(
            page.contains("as every instance sharing it sees them"),
            "{page}"
        );
        assert!(
            page.contains(&format!("msg_reconcile_{own}_succeeded")),
            "{page}"
        );

        // No token, no data.
        let anonymous = reqwest::get(b.url(&format!("{PREFIX}/api/reconciler")))
            .await
            .unwrap();
        assert_eq!(anonymous.status().as_u16(), 401);
        assert!(!anonymous.text().await.unwrap().contains(&tenants));
    }
}
