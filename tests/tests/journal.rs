//! The delivery journal on every store: one row per verified answer with what it answered and
//! why, bounded by count, a flood of forged requests counted and sampled but never stored, and a
//! journal store that fails while deliveries still succeed.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use replicate_webhook::dashboard::Dashboard;
use replicate_webhook::dedupe::StoreUrl;
use replicate_webhook::journal::JournalOptions;
use replicate_webhook::testkit::TestDelivery;
use replicate_webhook::{HandlerError, HandlerKind, Module, Prediction, Secret, WebhookConfig};
use replicate_webhook_tests::operator::{self, PREFIX, Store, TOKEN};
use replicate_webhook_tests::{TestServer, inbox, post};

fn secret() -> Secret {
    inbox::secret()
}

/// A module whose `on_succeeded` fails (retryably) when the output is "fail".
fn module(model: &str, runs: &Arc<AtomicUsize>) -> Module {
    let runs = runs.clone();
    Module::new(model).on(HandlerKind::Succeeded, move |p: Prediction| {
        runs.fetch_add(1, Ordering::SeqCst);
        async move {
            if p.output == Some(serde_json::json!("fail")) {
                Err(HandlerError::retry("the database is down"))
            } else {
                Ok(())
            }
        }
    })
}

fn config(store: &StoreUrl, module: Module, options: JournalOptions) -> WebhookConfig {
    WebhookConfig::new(secret())
        .collect_registered(false)
        .store_url(store)
        .unwrap()
        .journal(options)
        .dashboard(Dashboard::new(TOKEN).prefix(PREFIX))
        .module(module)
}

#[actix_rt::test]
async fn every_store_journals_answers_within_bounds_and_never_stores_forgeries() {
    for store in Store::all().await {
        let name = store.name();
        let model = inbox::model(&format!("journal-{name}"));
        let runs = Arc::new(AtomicUsize::new(0));
        let options = JournalOptions {
            max_rows: 20,
            ..JournalOptions::default()
        };
        let server = TestServer::serve(config(&store.url(), module(&model, &runs), options));

        // One prediction's story: a handler error, then its retry runs, then a duplicate.
        let failing = TestDelivery::succeeded(&model, serde_json::json!("fail"));
        let (status, _) = post(&server.base, &failing.sign(&secret())).await;
        assert_eq!(status, 500, "{name}");
        let retry = TestDelivery::new(
            String::from_utf8(failing.body().to_vec())
                .unwrap()
                .replace("\"fail\"", "\"ok\""),
        );
        let prediction = inbox::id_of(&retry);
        let retry = retry.sign(&secret());
        assert_eq!(post(&server.base, &retry).await.0, 200, "{name}");
        assert_eq!(post(&server.base, &retry).await.0, 200, "{name}");

        let (status, body) =
            operator::api(&server, &format!("/api/deliveries?prediction={prediction}")).await;
        assert_eq!(status, 200, "{name}: {body}");
        // Written off the request path: wait for the rows rather than assume them.
        let rows = loop {
            let (_, body) =
                operator::api(&server, &format!("/api/deliveries?prediction={prediction}")).await;
            let rows = body["deliveries"].as_array().unwrap().clone();
            if rows.len() == 3 {
                break rows;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        let outcomes: Vec<&str> = rows
            .iter()
            .map(|r| r["outcome"].as_str().unwrap())
            .collect();
        assert_eq!(
            outcomes,
            ["duplicate", "ran", "handler_error"],
            "{name}: newest first"
        );
        let statuses: Vec<u64> = rows
            .iter()
            .map(|r| r["http_status"].as_u64().unwrap())
            .collect();
        assert_eq!(statuses, [200, 200, 500], "{name}");
        for row in &rows {
            for field in [
                "webhook_id",
                "prediction_id",
                "event",
                "http_status",
                "outcome",
                "received_at",
                "duration_ms",
            ] {
                assert!(row.get(field).is_some(), "{name}: {field} missing in {row}");
            }
            assert_eq!(row["prediction_id"], prediction.as_str(), "{name}");
            assert_eq!(row["event"], "completed", "{name}");
        }
        assert!(
            rows[1]["duration_ms"].as_f64().is_some(),
            "{name}: the handler ran"
        );
        assert!(
            rows[0]["duration_ms"].is_null(),
            "{name}: a duplicate runs nothing"
        );
        let detail = rows[2]["detail"].as_str().unwrap();
        assert!(detail.contains("the database is down"), "{name}: {detail}");
        assert_eq!(runs.load(Ordering::SeqCst), 2, "{name}");

        // A flood of forged requests: counted and sampled, never a row.
        let forged = TestDelivery::succeeded(&model, serde_json::json!("x"));
        for _ in 0..200 {
            assert_eq!(
                post(&server.base, &forged.sign_with_wrong_key()).await.0,
                401
            );
        }
        // Real deliveries beyond the bound: the journal keeps the newest `max_rows`.
        for i in 0..30 {
            let d = TestDelivery::succeeded(&model, serde_json::json!(format!("out-{i}")));
            assert_eq!(
                post(&server.base, &d.sign(&secret())).await.0,
                200,
                "{name}"
            );
        }
        let overview = operator::until_journal(&server, |j| j["written"] == 33).await;
        assert_eq!(
            overview["refusals"]["by_reason"]["signature"], 200,
            "{name}"
        );
        assert_eq!(
            overview["refusals"]["sample"].as_array().unwrap().len(),
            20,
            "{name}"
        );
        assert_eq!(overview["journal"]["dropped"], 0, "{name}");
        let (_, body) = operator::api(&server, "/api/deliveries?limit=1000").await;
        let rows = body["deliveries"].as_array().unwrap();
        assert_eq!(rows.len(), 20, "{name}: bounded by count");
        assert!(
            rows.iter()
                .all(|r| r["outcome"] == "ran" && r["http_status"] == 200),
            "{name}: real history survived the flood: {body}"
        );
        assert_eq!(overview["summary"]["deliveries"], 20, "{name}");
    }
}

#[actix_rt::test]
async fn a_failing_journal_store_never_fails_or_delays_a_delivery() {
    let model = inbox::model("journal-down");
    let runs = Arc::new(AtomicUsize::new(0));
    // Nothing listens on port 1: every write fails.
    let options = JournalOptions {
        store: Some(StoreUrl::parse("postgres://journal@127.0.0.1:1/journal").unwrap()),
        capacity: 4,
        ..JournalOptions::default()
    };
    let server = TestServer::serve(config(&StoreUrl::Memory, module(&model, &runs), options));
    for i in 0..20 {
        let d = TestDelivery::succeeded(&model, serde_json::json!(format!("out-{i}")));
        let (status, body) = post(&server.base, &d.sign(&secret())).await;
        assert_eq!((status, body.as_str()), (200, "done"));
    }
    assert_eq!(runs.load(Ordering::SeqCst), 20);
    // Every row is accounted for as lost, none as written.
    let overview = operator::until_journal(&server, |j| {
        j["failed"].as_u64().unwrap() + j["dropped"].as_u64().unwrap() == 20
    })
    .await;
    assert_eq!(overview["journal"]["written"], 0);
    assert!(
        overview["problems"][0]
            .as_str()
            .unwrap()
            .starts_with("journal: "),
        "{overview}"
    );
    // The pages answer too, and say the journal store is down.
    let (status, body) = operator::api(&server, "/api/deliveries").await;
    assert_eq!(status, 503, "{body}");
    assert!(!body.to_string().contains("127.0.0.1:1/journal"), "{body}");
}

#[actix_rt::test]
async fn bodies_are_kept_only_on_opt_in() {
    let model = inbox::model("journal-bodies");
    let runs = Arc::new(AtomicUsize::new(0));
    for keep_bodies in [false, true] {
        let options = JournalOptions {
            keep_bodies,
            ..JournalOptions::default()
        };
        let store = Store::Sqlite(tempfile::tempdir().unwrap());
        let config = config(&store.url(), module(&model, &runs), options);
        let journal_url = store.url();
        let server = TestServer::serve(config);
        let d = TestDelivery::succeeded(&model, serde_json::json!("secret-output"));
        assert_eq!(post(&server.base, &d.sign(&secret())).await.0, 200);
        operator::until_journal(&server, |j| j["written"] == 1).await;
        // Read the store's own table: what is kept is what is on disk.
        let StoreUrl::Sqlite(path) = journal_url else {
            unreachable!()
        };
        let conn = rusqlite_free_read(&path);
        assert_eq!(
            conn.contains("secret-output"),
            keep_bodies,
            "keep_bodies = {keep_bodies}"
        );
    }
}

/// The database file's bytes as text (SQLite stores short text inline), with its WAL.
fn rusqlite_free_read(path: &std::path::Path) -> String {
    let mut text = String::from_utf8_lossy(&std::fs::read(path).unwrap()).into_owned();
    if let Ok(wal) = std::fs::read(path.with_extension("db-wal")) {
        text.push_str(&String::from_utf8_lossy(&wal));
    }
    text
}

#[actix_rt::test]
async fn every_store_forgets_rows_older_than_max_age() {
    let mut servers = Vec::new();
    for store in Store::all().await {
        let model = inbox::model(&format!("journal-age-{}", store.name()));
        let runs = Arc::new(AtomicUsize::new(0));
        let options = JournalOptions {
            max_age: Duration::from_secs(1),
            ..JournalOptions::default()
        };
        let server = TestServer::serve(config(&store.url(), module(&model, &runs), options));
        for _ in 0..3 {
            let d = TestDelivery::succeeded(&model, serde_json::json!("old"));
            assert_eq!(post(&server.base, &d.sign(&secret())).await.0, 200);
        }
        operator::until_journal(&server, |j| j["written"] == 3).await;
        servers.push((store, model, server));
    }
    // Past the age bound of the rows above; the next write trims them.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    for (store, model, server) in &servers {
        let d = TestDelivery::succeeded(model, serde_json::json!("new"));
        assert_eq!(post(&server.base, &d.sign(&secret())).await.0, 200);
        operator::until_journal(server, |j| j["written"] == 4).await;
        let (_, body) = operator::api(server, "/api/deliveries").await;
        let rows = body["deliveries"].as_array().unwrap();
        assert_eq!(rows.len(), 1, "{}: {body}", store.name());
        assert_eq!(rows[0]["prediction_id"], inbox::id_of(&d).as_str());
    }
}

/// One receiver however many workers mount it, whether built once with `config.build()` or by
/// the first worker's `configure(config.clone())`: one journal, whichever worker answered a
/// delivery or serves the dashboard.
#[actix_rt::test]
async fn one_receiver_is_one_journal_for_every_worker() {
    for built in [true, false] {
        let model = inbox::model("journal-workers");
        let runs = Arc::new(AtomicUsize::new(0));
        let config = config(
            &StoreUrl::Memory,
            module(&model, &runs),
            JournalOptions::default(),
        );
        let server = if built {
            let webhooks = config.build().unwrap();
            TestServer::with_workers(4, move || webhooks.configure())
        } else {
            TestServer::with_workers(4, move || replicate_webhook::configure(config.clone()))
        };
        // Each on a new connection, so actix hands them to every worker in turn.
        for _ in 0..8 {
            let d = TestDelivery::succeeded(&model, serde_json::json!("x"));
            assert_eq!(post(&server.base, &d.sign(&secret())).await.0, 200);
        }
        operator::until_journal(&server, |j| j["written"] == 8).await;
        for _ in 0..8 {
            let (status, overview) = operator::api(&server, "/api/overview").await;
            assert_eq!(status, 200, "{overview}");
            assert_eq!(
                overview["journal"]["written"], 8,
                "built: {built}: {overview}"
            );
        }
        assert_eq!(runs.load(Ordering::SeqCst), 8);
    }
}
