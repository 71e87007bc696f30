//! The dashboard over HTTP: 401 and no data without the token or a session, the login cookie's
//! attributes, failed logins rate limited, CSRF on every state change, escaping of every value
//! that came from a delivery, and replay through the API and through the page's form.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use replicate_webhook::dashboard::Dashboard;
use replicate_webhook::inbox::{Filter, Inbox, JobState};
use replicate_webhook::testkit::TestDelivery;
use replicate_webhook::{ANY_MODEL, HandlerError, HandlerKind, Module, Prediction, WebhookConfig};
use replicate_webhook_tests::inbox::{self as ib, Db};
use replicate_webhook_tests::operator::{self, PREFIX, TOKEN};
use replicate_webhook_tests::{TestServer, post};

const XSS: &str = "<script>alert(\"pwned\")</script>";

/// A receiver for any model whose `on_succeeded` fails permanently with an error carrying
/// markup, with the dashboard on.
fn escaping_server() -> TestServer {
    let module = Module::new(ANY_MODEL).on(HandlerKind::Succeeded, |_: Prediction| async {
        Err::<(), _>(HandlerError::permanent(format!("bad output {XSS}")))
    });
    TestServer::serve(
        WebhookConfig::new(ib::secret())
            .collect_registered(false)
            .dashboard(Dashboard::new(TOKEN).prefix(PREFIX))
            .module(module),
    )
}

/// A receiver in inbox mode whose handler fails permanently until `heal` is set, so its jobs go
/// dead at once.
fn inbox_server(db: &Db, model: &str, heal: &Arc<AtomicBool>) -> (TestServer, Inbox) {
    let heal = heal.clone();
    let module = Module::new(model).on(HandlerKind::Succeeded, move |_: Prediction| {
        let healed = heal.load(Ordering::SeqCst);
        async move {
            if healed {
                Ok(())
            } else {
                Err(HandlerError::permanent(
                    "the model's output is not what we expected",
                ))
            }
        }
    });
    let config = db
        .config(module, ib::fast_options())
        .dashboard(Dashboard::new(TOKEN).prefix(PREFIX));
    let inbox = Inbox::open_url(&db.url()).unwrap();
    (ib::serve(config), inbox)
}

async fn dead_job(server: &TestServer, inbox: &Inbox, model: &str) -> (String, i64) {
    let d = TestDelivery::succeeded(model, serde_json::json!("x"));
    let prediction = ib::id_of(&d);
    assert_eq!(post(&server.base, &d.sign(&ib::secret())).await.0, 200);
    ib::until_state(inbox, &prediction, JobState::Dead).await;
    let job = inbox
        .list(&Filter {
            prediction_id: Some(prediction.clone()),
            ..Filter::default()
        })
        .await
        .unwrap()
        .remove(0);
    (prediction, job.id)
}

#[actix_rt::test]
async fn without_the_token_or_a_session_every_path_is_401_with_no_data() {
    let server = escaping_server();
    let d = TestDelivery::succeeded("acme/secret-model", serde_json::json!("x"));
    let prediction = ib::id_of(&d);
    assert_eq!(post(&server.base, &d.sign(&ib::secret())).await.0, 200);
    operator::until_journal(&server, |j| j["written"] == 1).await;

    let client = operator::browser_like();
    for path in [
        "",
        "/",
        "/deliveries",
        &format!("/predictions/{prediction}"),
        "/inbox",
        "/reconciler",
        "/live",
        "/api/deliveries",
        "/api/jobs?state=dead",
        "/api/overview",
        "/deliveries?since=&limit=x",
        "/api/jobs?limit=x",
        "/no-such-page",
    ] {
        for bearer in [None, Some("wrong-token"), Some("")] {
            let mut req = client.get(server.url(&format!("{PREFIX}{path}")));
            if let Some(token) = bearer {
                req = req.bearer_auth(token);
            }
            let resp = req.send().await.unwrap();
            assert_eq!(resp.status().as_u16(), 401, "GET {path} with {bearer:?}");
            assert!(resp.headers().get("location").is_none(), "not a redirect");
            let csp = resp.headers()["content-security-policy"]
                .to_str()
                .unwrap()
                .to_owned();
            assert!(csp.starts_with("default-src 'none'"), "{csp}");
            let body = resp.text().await.unwrap();
            assert!(
                !body.contains(&prediction) && !body.contains("secret-model"),
                "{path}: {body}"
            );
            if !path.starts_with("/api") && path != "/live" && path != "/no-such-page" {
                assert!(
                    body.contains(&format!("action=\"{PREFIX}/login\"")),
                    "{path}: the login form is the 401's body"
                );
            }
        }
    }
    for path in [
        "/api/jobs/1/replay",
        "/api/jobs/1/discard",
        "/inbox/act",
        "/logout",
    ] {
        let resp = client
            .post(server.url(&format!("{PREFIX}{path}")))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 401, "POST {path}");
    }
    // With the token, the same data is there.
    let (status, body) =
        operator::api(&server, &format!("/api/deliveries?prediction={prediction}")).await;
    assert_eq!(status, 200);
    assert_eq!(body["deliveries"][0]["prediction_id"], prediction.as_str());
}

#[actix_rt::test]
async fn login_sets_a_strict_http_only_cookie_and_failed_logins_are_rate_limited() {
    let server = escaping_server();
    let client = operator::browser_like();
    let login = |token: &'static str, https: bool| {
        let mut req = client
            .post(server.url(&format!("{PREFIX}/login")))
            .form(&[("token", token)]);
        if https {
            req = req.header("x-forwarded-proto", "https");
        }
        req.send()
    };
    let resp = login("wrong", false).await.unwrap();
    assert_eq!(resp.status().as_u16(), 401);
    assert!(resp.headers().get("set-cookie").is_none());
    assert!(resp.text().await.unwrap().contains("Wrong token."));

    let resp = login(TOKEN, false).await.unwrap();
    assert_eq!(resp.status().as_u16(), 303);
    assert_eq!(resp.headers()["location"], format!("{PREFIX}/").as_str());
    let cookie = resp.headers()["set-cookie"].to_str().unwrap().to_owned();
    for attribute in ["HttpOnly", "SameSite=Strict", &format!("Path={PREFIX}")] {
        assert!(cookie.contains(attribute), "{attribute} missing: {cookie}");
    }
    assert!(!cookie.contains("Secure"), "plain http: {cookie}");
    assert!(!cookie.contains(TOKEN), "{cookie}");
    let page = client
        .get(server.url(&format!("{PREFIX}/")))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status().as_u16(), 200);
    let html = page.text().await.unwrap();
    assert!(html.contains("Overview") && !html.contains(TOKEN));

    let resp = login(TOKEN, true).await.unwrap();
    let cookie = resp.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(cookie.contains("Secure"), "over https: {cookie}");

    // Ten attempts a minute from one address, then 429 whatever the token.
    let mut statuses = Vec::new();
    for _ in 0..10 {
        statuses.push(login("wrong", false).await.unwrap().status().as_u16());
    }
    assert_eq!(
        statuses.iter().filter(|s| **s == 429).count(),
        3,
        "{statuses:?}"
    );
    let resp = login(TOKEN, false).await.unwrap();
    assert_eq!(resp.status().as_u16(), 429);
    assert!(resp.headers().get("set-cookie").is_none());
}

#[actix_rt::test]
async fn values_from_deliveries_stay_text() {
    let server = escaping_server();
    let model = format!("acme/{XSS}");
    let d = TestDelivery::succeeded(&model, serde_json::json!("x"));
    let prediction = ib::id_of(&d);
    assert_eq!(post(&server.base, &d.sign(&ib::secret())).await.0, 200);
    operator::until_journal(&server, |j| j["written"] == 1).await;
    let client = operator::logged_in(&server).await;
    for path in [
        "/".to_owned(),
        "/deliveries".to_owned(),
        format!(
            "/deliveries?model={}",
            url::form_urlencoded::byte_serialize(model.as_bytes()).collect::<String>()
        ),
        format!("/predictions/{prediction}"),
    ] {
        let html = client
            .get(server.url(&format!("{PREFIX}{path}")))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(!html.contains("<script>alert"), "{path}: {html}");
        assert!(
            html.contains("&lt;script&gt;alert(&quot;pwned&quot;)&lt;/script&gt;"),
            "{path}: {html}"
        );
    }
    // The JSON API gives the same text, as JSON.
    let (_, body) =
        operator::api(&server, &format!("/api/deliveries?prediction={prediction}")).await;
    assert_eq!(body["deliveries"][0]["outcome"], "handler_error");
    assert!(
        body["deliveries"][0]["detail"]
            .as_str()
            .unwrap()
            .contains(XSS)
    );
}

#[actix_rt::test]
async fn replay_through_the_api_runs_the_job_again() {
    let db = Db::sqlite();
    let model = ib::model("dash-api-replay");
    let heal = Arc::new(AtomicBool::new(false));
    let (server, inbox) = inbox_server(&db, &model, &heal);
    let (prediction, id) = dead_job(&server, &inbox, &model).await;

    let (status, body) = operator::api(&server, "/api/jobs?state=dead").await;
    assert_eq!(status, 200);
    let jobs = body["jobs"].as_array().unwrap();
    let job = jobs
        .iter()
        .find(|j| j["id"] == id)
        .unwrap_or_else(|| panic!("{body}"));
    assert_eq!(job["prediction_id"], prediction.as_str());
    assert_eq!(job["state"], "dead");
    assert_eq!(job["attempts"], 1);
    assert!(
        job["last_error"]
            .as_str()
            .unwrap()
            .contains("not what we expected")
    );

    // Not dead: nothing to replay.
    assert_eq!(
        operator::api_post(&server, "/api/jobs/999999/replay")
            .await
            .0,
        404
    );
    heal.store(true, Ordering::SeqCst);
    let (status, body) = operator::api_post(&server, &format!("/api/jobs/{id}/replay")).await;
    assert_eq!(
        (status, body["replayed"].as_bool()),
        (200, Some(true)),
        "{body}"
    );
    ib::until_state(&inbox, &prediction, JobState::Done).await;
    let (_, body) = operator::api(&server, &format!("/api/jobs?prediction={prediction}")).await;
    assert_eq!(body["jobs"][0]["state"], "done");
    assert_eq!(
        body["jobs"][0]["attempts"], 1,
        "attempts start again on replay"
    );
    // The delivery is on its timeline, answered 200 and queued.
    let (_, body) =
        operator::api(&server, &format!("/api/deliveries?prediction={prediction}")).await;
    assert_eq!(body["deliveries"][0]["outcome"], "queued");
}

#[actix_rt::test]
async fn page_state_changes_need_the_csrf_token_and_go_through_a_confirmation() {
    let db = Db::sqlite();
    let model = ib::model("dash-page-replay");
    let heal = Arc::new(AtomicBool::new(false));
    let (server, inbox) = inbox_server(&db, &model, &heal);
    let (prediction, id) = dead_job(&server, &inbox, &model).await;
    let client = operator::logged_in(&server).await;

    let html = client
        .get(server.url(&format!("{PREFIX}/inbox?state=dead")))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let confirm_link = format!("{PREFIX}/inbox/confirm?action=replay&amp;id={id}");
    assert!(html.contains(&confirm_link), "{html}");
    let confirm = client
        .get(server.url(&format!("{PREFIX}/inbox/confirm?action=replay&id={id}")))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(confirm.contains(&format!("Replay job {id}?")), "{confirm}");
    let csrf = operator::csrf_of(&confirm);

    let act = |csrf: Option<String>| {
        let mut form = vec![("action", "replay".to_owned()), ("id", id.to_string())];
        if let Some(csrf) = csrf {
            form.push(("csrf", csrf));
        }
        client
            .post(server.url(&format!("{PREFIX}/inbox/act")))
            .form(&form)
            .send()
    };
    // Missing, wrong, or another session's token: refused, and the job stays dead.
    let resp = act(None).await.unwrap();
    assert_eq!(
        resp.status().as_u16(),
        403,
        "{}",
        resp.text().await.unwrap()
    );
    assert_eq!(
        act(Some("00".repeat(32))).await.unwrap().status().as_u16(),
        403
    );
    let other = operator::logged_in(&server).await;
    let other_csrf = operator::csrf_of(
        &other
            .get(server.url(&format!("{PREFIX}/")))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
    );
    assert_ne!(other_csrf, csrf);
    assert_eq!(act(Some(other_csrf)).await.unwrap().status().as_u16(), 403);
    assert_eq!(inbox.get(id).await.unwrap().unwrap().state, JobState::Dead);
    // From another site, the browser sends no SameSite=Strict cookie: 401.
    let anonymous = operator::browser_like();
    let resp = anonymous
        .post(server.url(&format!("{PREFIX}/inbox/act")))
        .form(&[
            ("action", "replay"),
            ("id", &id.to_string()),
            ("csrf", &csrf),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 401);

    heal.store(true, Ordering::SeqCst);
    let resp = act(Some(csrf)).await.unwrap();
    assert_eq!(resp.status().as_u16(), 303);
    let location = resp.headers()["location"].to_str().unwrap().to_owned();
    assert!(
        location.starts_with(&format!("{PREFIX}/inbox?done=")),
        "{location}"
    );
    ib::until_state(&inbox, &prediction, JobState::Done).await;
    let notice = client
        .get(server.url(&location))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(notice.contains(&format!("Job {id} replayed.")), "{notice}");
}

const FROM_ENV_CHILD: &str = "REPLICATE_WEBHOOK_DASHBOARD_CHILD";

/// `REPLICATE_WEBHOOK_DASHBOARD_TOKEN` makes `WebhookConfig::from_env` mount the dashboard at
/// `/replicate/dashboard`. The environment is the process's, so a child run of this binary
/// (`from_env_child`) reads it.
#[actix_rt::test]
async fn from_env_mounts_the_dashboard_at_its_default_prefix() {
    let output = tokio::task::spawn_blocking(|| {
        std::process::Command::new(std::env::current_exe().unwrap())
            .args(["from_env_child", "--exact", "--nocapture"])
            .env(FROM_ENV_CHILD, "1")
            .env("REPLICATE_WEBHOOK_SECRET", ib::SECRET)
            .env("REPLICATE_WEBHOOK_DASHBOARD_TOKEN", TOKEN)
            .env_remove("REPLICATE_WEBHOOK_STORE")
            .env_remove("REPLICATE_WEBHOOK_INBOX")
            .env_remove("REPLICATE_API_TOKEN")
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains("dashboard answered 401 then 200"),
        "{stdout}"
    );
}

/// Serves `WebhookConfig::from_env()`; a no-op unless run by the test above.
#[actix_rt::test]
async fn from_env_child() {
    if std::env::var(FROM_ENV_CHILD).is_err() {
        return;
    }
    let module = Module::new("acme/from-env").on(HandlerKind::Succeeded, |_: Prediction| async {
        Ok::<(), HandlerError>(())
    });
    let config = WebhookConfig::from_env()
        .unwrap()
        .collect_registered(false)
        .module(module);
    let server = TestServer::serve(config);
    let url = server.url(&format!(
        "{}/api/overview",
        replicate_webhook::dashboard::DEFAULT_PREFIX
    ));
    let anonymous = reqwest::get(&url).await.unwrap().status().as_u16();
    let with_token = reqwest::Client::new()
        .get(&url)
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16();
    assert_eq!((anonymous, with_token), (401, 200));
    println!("dashboard answered {anonymous} then {with_token}");
}
