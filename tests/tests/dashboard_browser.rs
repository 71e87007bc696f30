//! The dashboard in a real browser (headless Chromium through chromedriver): log in, watch the
//! overview's live counters arrive over SSE, find a prediction's timeline through the search,
//! replay a dead job from the inbox page with the keyboard, and keep a screenshot of each page.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use fantoccini::Locator;
use fantoccini::key::Key;
use replicate_webhook::client::Client;
use replicate_webhook::dashboard::Dashboard;
use replicate_webhook::inbox::{Filter, Inbox, JobState};
use replicate_webhook::reconcile::Reconcile;
use replicate_webhook::testkit::{TestDelivery, new_prediction_id, sample_prediction};
use replicate_webhook::{HandlerError, HandlerKind, Module, Prediction};
use replicate_webhook_tests::browser::Browser;
use replicate_webhook_tests::inbox::{self as ib, Db};
use replicate_webhook_tests::operator::{PREFIX, TOKEN};
use replicate_webhook_tests::post;

const WAIT: Duration = Duration::from_secs(10);

#[actix_rt::test]
async fn an_operator_finds_a_timeline_and_replays_a_dead_job_in_a_browser() {
    let Some(browser) = Browser::start().await else {
        return;
    };
    let db = Db::sqlite();
    let model = ib::model("dash-browser");
    let heal = Arc::new(AtomicBool::new(false));
    let healed = heal.clone();
    let module = Module::new(&model).on(HandlerKind::Succeeded, move |_: Prediction| {
        let ok = healed.load(Ordering::SeqCst);
        async move {
            if ok {
                Ok(())
            } else {
                Err(HandlerError::permanent("unexpected output <b>shape</b>"))
            }
        }
    });
    // The reconciler on, its first poll an hour away: the reconciler page lists what it watches.
    let reconcile = Reconcile::new(Client::new("http://127.0.0.1:9/v1", None).unwrap())
        .after(Duration::from_hours(1));
    let config = db
        .config(module, ib::fast_options())
        .reconcile(reconcile)
        .dashboard(Dashboard::new(TOKEN).prefix(PREFIX));
    let inbox = Inbox::open_url(&db.url()).unwrap();
    let server = ib::serve(config);

    // One prediction: its start (no handler for it) and its result, whose job dies.
    let prediction = new_prediction_id();
    for status in ["starting", "succeeded"] {
        let body = sample_prediction(&prediction, &model, status, serde_json::json!("out"));
        let d = TestDelivery::new(body.to_string());
        assert_eq!(post(&server.base, &d.sign(&ib::secret())).await.0, 200);
    }
    ib::until_state(&inbox, &prediction, JobState::Dead).await;
    let job = inbox
        .list(&Filter {
            prediction_id: Some(prediction.clone()),
            ..Filter::default()
        })
        .await
        .unwrap()
        .remove(0);

    // Every page answers 401 with the login form until the operator logs in.
    browser.goto(&server.url(&format!("{PREFIX}/"))).await;
    browser
        .wait_text("h1", WAIT, "dashboard-login", |t| t.contains("dashboard"))
        .await;
    browser.screenshot("dashboard-login").await;
    browser.fill("#token", TOKEN).await;
    browser.click("button[type=submit]").await;
    browser
        .wait_text("main h1", WAIT, "dashboard-overview", |t| t == "Overview")
        .await;

    // The live counters arrive over SSE (the script counts the events it applied).
    let deadline = Instant::now() + WAIT;
    loop {
        let updates = browser
            .client()
            .execute("return document.body.dataset.liveUpdates || '0';", vec![])
            .await
            .unwrap();
        if updates.as_str().is_some_and(|n| n != "0") {
            break;
        }
        assert!(Instant::now() < deadline, "no live update within {WAIT:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let delivered = browser.text("[data-live=deliveries]").await.unwrap();
    assert_eq!(delivered, "2");
    browser.screenshot("dashboard-overview").await;

    // Search the deliveries by prediction, then open its timeline.
    browser
        .client()
        .find(Locator::LinkText("Deliveries"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    browser
        .wait_text("main h1", WAIT, "dashboard-deliveries", |t| {
            t == "Deliveries"
        })
        .await;
    browser.fill("#prediction", &prediction).await;
    browser.click("form.search button[type=submit]").await;
    browser
        .wait_text(
            "tr.delivery td:nth-child(2)",
            WAIT,
            "dashboard-search",
            |t| t == prediction,
        )
        .await;
    browser.screenshot("dashboard-deliveries").await;
    browser
        .client()
        .find(Locator::LinkText(&prediction))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    browser
        .wait_text("main h1", WAIT, "dashboard-timeline", |t| {
            t.starts_with("Timeline of")
        })
        .await;
    let rows = browser
        .client()
        .find_all(Locator::Css("tr.delivery"))
        .await
        .unwrap();
    let mut outcomes = Vec::new();
    for row in rows {
        outcomes.push(
            row.find(Locator::Css("span.tag"))
                .await
                .unwrap()
                .text()
                .await
                .unwrap(),
        );
    }
    assert_eq!(outcomes, ["ignored", "queued"], "oldest first");
    let error = browser.text("tr.job td.detail").await.unwrap();
    assert_eq!(
        error, "permanent handler error: unexpected output <b>shape</b>",
        "shown as text"
    );
    browser.screenshot("dashboard-timeline").await;

    // Replay the dead job from the inbox page: a link, a confirmation, Enter on its button.
    heal.store(true, Ordering::SeqCst);
    browser
        .goto(&server.url(&format!("{PREFIX}/inbox?state=dead")))
        .await;
    browser
        .wait_text("main h1", WAIT, "dashboard-inbox-dead", |t| t == "Inbox")
        .await;
    browser.screenshot("dashboard-inbox-dead").await;
    browser
        .click(&format!("tr[data-job=\"{}\"] a.button", job.id))
        .await;
    browser
        .wait_text("form.confirm p", WAIT, "dashboard-confirm", |t| {
            t.starts_with("Replay job")
        })
        .await;
    browser.screenshot("dashboard-confirm").await;
    let focused = browser.client().active_element().await.unwrap();
    assert_eq!(
        focused.attr("id").await.unwrap().as_deref(),
        Some("confirm")
    );
    focused.send_keys(&Key::Enter.to_string()).await.unwrap();
    let notice = browser
        .wait_text(".notice", WAIT, "dashboard-replayed", |t| {
            t.contains("replayed")
        })
        .await;
    assert_eq!(notice, format!("Job {} replayed.", job.id));
    ib::until_state(&inbox, &prediction, JobState::Done).await;
    browser.goto(&server.url(&format!("{PREFIX}/inbox"))).await;
    let state = browser
        .wait_text(
            &format!("tr[data-job=\"{}\"] span.tag", job.id),
            WAIT,
            "dashboard-inbox",
            |t| t == "done",
        )
        .await;
    assert_eq!(state, "done");
    browser.screenshot("dashboard-inbox").await;

    // A prediction that started and has not finished: watched, as the store holds it.
    let running = new_prediction_id();
    let body = sample_prediction(&running, &model, "starting", serde_json::Value::Null);
    let d = TestDelivery::new(body.to_string());
    assert_eq!(post(&server.base, &d.sign(&ib::secret())).await.0, 200);
    browser
        .goto(&server.url(&format!("{PREFIX}/reconciler")))
        .await;
    browser
        .wait_text("main h1", WAIT, "dashboard-reconciler", |t| {
            t == "Reconciler"
        })
        .await;
    let row = browser
        .wait_text("tr.watched", WAIT, "dashboard-reconciler", |t| {
            t.contains(running.as_str())
        })
        .await;
    assert!(row.contains(&running), "{row}");
    assert!(
        !row.contains(&prediction),
        "a handled prediction is no longer watched: {row}"
    );
    browser.screenshot("dashboard-reconciler").await;
    browser.close().await;
}
