//! The journal is scoped by tenant: on every store, the same prediction id and `webhook-id`
//! under two tenants and under the app's own secret are three rows, each naming its tenant; a
//! PostgreSQL journal made before tenants gets the column and keeps its rows.

use replicate_webhook::WebhookConfig;
use replicate_webhook::dashboard::Dashboard;
use replicate_webhook::secrets::StaticSecrets;
use replicate_webhook::testkit::{TestDelivery, new_prediction_id, sample_prediction};
use replicate_webhook::{HandlerError, HandlerKind, Module, Prediction, Secret, Tenants};
use replicate_webhook_tests::operator::{PREFIX, Store, TOKEN, api};
use replicate_webhook_tests::{TestServer, inbox, post};
use serde_json::Value;

const ACME: &str = "whsec_YWNtZS1zZWNyZXQtMDEyMzQ1Njc4OWFiY2RlZg==";
const BOLT: &str = "whsec_Ym9sdC1zZWNyZXQtMDEyMzQ1Njc4OWFiY2RlZg==";

/// The journal table as it was before tenants, with one row.
async fn old_postgres_table(url: &str) {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap();
    actix_web::rt::spawn(connection);
    client
        .batch_execute(
            "CREATE TABLE replicate_webhook_journal (
                id BIGSERIAL PRIMARY KEY, received_ms BIGINT NOT NULL, webhook_id TEXT NOT NULL,
                prediction_id TEXT NOT NULL, model TEXT NOT NULL, event TEXT NOT NULL,
                status TEXT NOT NULL, http_status INTEGER NOT NULL, outcome TEXT NOT NULL,
                detail TEXT, duration_us BIGINT, body TEXT);
             INSERT INTO replicate_webhook_journal (received_ms, webhook_id, prediction_id, model,
                event, status, http_status, outcome)
                VALUES (1, 'msg_old', 'old-row', 'a/b', 'completed', 'succeeded', 200, 'ran');",
        )
        .await
        .unwrap();
}

#[actix_rt::test]
async fn every_store_journals_each_tenants_delivery_as_its_own() {
    for store in Store::all().await {
        if let Store::Postgres(url) = &store {
            old_postgres_table(url).await;
        }
        let module = Module::new("*").on(HandlerKind::Succeeded, |_: Prediction| async {
            Ok::<(), HandlerError>(())
        });
        let server = TestServer::serve(
            WebhookConfig::new(inbox::secret())
                .collect_registered(false)
                .store_url(&store.url())
                .unwrap()
                .tenants(Tenants::by_path(
                    StaticSecrets::new()
                        .tenant("acme", Secret::parse(ACME).unwrap())
                        .tenant("bolt", Secret::parse(BOLT).unwrap()),
                ))
                .dashboard(Dashboard::new(TOKEN).prefix(PREFIX))
                .module(module),
        );
        let id = new_prediction_id();
        let body = sample_prediction(&id, "acme/model", "succeeded", "x".into()).to_string();
        for (path, secret) in [
            ("/webhooks/replicate/acme", ACME),
            ("/webhooks/replicate/bolt", BOLT),
            ("/webhooks/replicate", inbox::SECRET),
        ] {
            let d = TestDelivery::new(body.clone())
                .id("msg_same")
                .path(path)
                .sign(&Secret::parse(secret).unwrap());
            assert_eq!(post(&server.base, &d).await.0, 200, "{}", store.name());
        }
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
        let rows = loop {
            let (status, found) = api(&server, &format!("/api/deliveries?prediction={id}")).await;
            assert_eq!(status, 200, "{found}");
            let rows = found["deliveries"].as_array().cloned().unwrap_or_default();
            if rows.len() == 3 {
                break rows;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{}: {found}",
                store.name()
            );
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        };
        let mut tenants: Vec<Value> = rows.iter().map(|r| r["tenant"].clone()).collect();
        tenants.sort_by_key(Value::to_string);
        assert_eq!(
            tenants,
            [Value::from("acme"), Value::from("bolt"), Value::Null],
            "{}",
            store.name()
        );
        assert!(rows.iter().all(|r| r["outcome"] == "ran"), "{rows:?}");
        if matches!(store, Store::Postgres(_)) {
            let (_, old) = api(&server, "/api/deliveries?prediction=old-row").await;
            assert_eq!(old["deliveries"][0]["tenant"], Value::Null, "{old}");
        }
    }
}
