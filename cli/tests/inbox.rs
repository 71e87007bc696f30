//! `replicate-webhook inbox`: list, show, replay and discard the jobs of a real inbox filled by
//! a receiver in inbox mode.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use replicate_webhook::inbox::JobState;
use replicate_webhook::testkit::TestDelivery;
use replicate_webhook::{HandlerError, HandlerKind, Module, Prediction};
use replicate_webhook_tests::inbox::{
    Db, fast_options, id_of, model, next, secret, send, serve, until_state,
};
use serde_json::json;
use tokio::sync::mpsc;

fn inbox_cli(url: &str, args: &[&str]) -> (i32, String, String) {
    let out = common::bin()
        .env("REPLICATE_WEBHOOK_INBOX", url)
        .arg("inbox")
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[actix_rt::test]
async fn list_show_replay_and_discard_dead_jobs() {
    let db = Db::sqlite();
    let url = db.url();
    let model = model("cli");
    let healthy = Arc::new(AtomicBool::new(false));
    let (tx, mut rx) = mpsc::unbounded_channel::<String>();
    let ok = healthy.clone();
    let module = Module::new(&model).on(HandlerKind::Succeeded, move |p: Prediction| {
        let (tx, ok) = (tx.clone(), ok.load(Ordering::SeqCst));
        async move {
            let _ = tx.send(p.id);
            if ok {
                Ok(())
            } else {
                Err(HandlerError::permanent("no such user"))
            }
        }
    });
    let server = serve(db.config(module, fast_options()));
    let client = reqwest::Client::new();
    let first = TestDelivery::succeeded(&model, json!({"token": "r8_supersecret"}));
    let second = TestDelivery::succeeded(&model, json!("two"));
    let inbox = replicate_webhook::inbox::Inbox::open_url(&url).unwrap();
    for d in [&first, &second] {
        assert_eq!(send(&client, &server, &d.sign(&secret())).await.0, 200);
        assert_eq!(next(&mut rx).await, id_of(d));
        until_state(&inbox, &id_of(d), JobState::Dead).await;
    }

    let (code, out, err) = inbox_cli(&url, &["list", "--state", "dead"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains(&id_of(&first)) && out.contains(&id_of(&second)),
        "{out}"
    );
    assert!(
        out.contains("permanent handler error: no such user"),
        "{out}"
    );
    assert!(
        out.contains("backlog: 0 pending, 0 running, 2 dead"),
        "{out}"
    );
    let (_, out, _) = inbox_cli(&url, &["list", "--prediction", &id_of(&first)]);
    assert_eq!(
        out.lines().filter(|l| l.contains(&id_of(&first))).count(),
        1,
        "{out}"
    );

    let jobs = inbox
        .list(&replicate_webhook::inbox::Filter::default())
        .await
        .unwrap();
    let id_for = |prediction: &str| {
        jobs.iter()
            .find(|j| j.prediction_id == prediction)
            .unwrap()
            .id
            .to_string()
    };
    let (code, out, _) = inbox_cli(&url, &["show", &id_for(&id_of(&first))]);
    assert_eq!(code, 0);
    assert!(
        out.contains("state:       dead") && out.contains("bytes (--body prints it)"),
        "{out}"
    );
    assert!(
        !out.contains("supersecret"),
        "the body is shown only on --body: {out}"
    );
    let (_, out, _) = inbox_cli(&url, &["show", &id_for(&id_of(&first)), "--body"]);
    assert!(out.contains("r8_supersecret"), "{out}");
    assert_eq!(inbox_cli(&url, &["show", "999999"]).0, 1);

    healthy.store(true, Ordering::SeqCst);
    let (code, out, _) = inbox_cli(&url, &["replay", &id_for(&id_of(&first))]);
    assert_eq!((code, out.trim()), (0, "1 dead job(s) replayed"));
    assert_eq!(next(&mut rx).await, id_of(&first));
    until_state(&inbox, &id_of(&first), JobState::Done).await;

    let (code, out, _) = inbox_cli(&url, &["discard", &id_for(&id_of(&second))]);
    assert_eq!(
        (code, out.trim().to_owned()),
        (0, format!("job {} discarded", id_for(&id_of(&second))))
    );
    assert_eq!(inbox_cli(&url, &["discard", &id_for(&id_of(&second))]).0, 1);
    let (code, out, _) = inbox_cli(&url, &["replay", "--all"]);
    assert_eq!((code, out.trim()), (0, "0 dead job(s) replayed"));
    assert!(rx.try_recv().is_err(), "a discarded job ran");
}

#[test]
fn an_inbox_url_password_is_never_printed() {
    let port = replicate_webhook_tests::process::free_port();
    let url = format!("postgres://app:hunter2@127.0.0.1:{port}/app");
    for args in [
        &["list"][..],
        &["show", "1"],
        &["replay", "--all"],
        &["discard", "1"],
    ] {
        let (code, out, err) = inbox_cli(&url, args);
        assert_eq!(code, 1, "{args:?}: {out}{err}");
        assert!(
            !out.contains("hunter2") && !err.contains("hunter2"),
            "{args:?}: {out}{err}"
        );
    }
    let (code, _, err) = inbox_cli("mysql://root:hunter2@db/app", &["list"]);
    assert_eq!(code, 2);
    assert!(!err.contains("hunter2"), "{err}");
}
