//! `doctor` against loopback servers: a correct receiver, one that redirects, one that never
//! verifies, one behind a wrong secret, and a closed port; the library for the verdicts, the
//! binary for the output and exit code.

mod common;

use std::sync::{Arc, Mutex};

use actix_web::HttpResponse;
use common::{Receiver, SECRET, Stub, bin};
use replicate_webhook::{
    Event, HandlerError, HandlerKind, Module, Prediction, Secret, WebhookConfig,
};
use replicate_webhook_cli::doctor::{self, Level, Options, REDIRECT_FIX, Report};

/// A receiver whose handlers log (handler, prediction id).
fn receiver(runs: &Arc<Mutex<Vec<(String, String)>>>) -> Receiver {
    let mut module = Module::new("*").events(Event::ALL);
    for kind in [
        HandlerKind::Start,
        HandlerKind::Output,
        HandlerKind::Logs,
        HandlerKind::Succeeded,
    ] {
        let runs = runs.clone();
        module = module.on(kind, move |p: Prediction| {
            let runs = runs.clone();
            async move {
                runs.lock().unwrap().push((kind.fn_name().to_owned(), p.id));
                Ok::<(), HandlerError>(())
            }
        });
    }
    let config = WebhookConfig::new(Secret::parse(SECRET).unwrap())
        .collect_registered(false)
        .module(module);
    Receiver::start(config)
}

fn options(url: &str) -> Options {
    Options::new(url.parse().unwrap()).secret(Secret::parse(SECRET).unwrap())
}

fn level(report: &Report, name: &str) -> Level {
    report
        .get(name)
        .unwrap_or_else(|| panic!("no `{name}` check in\n{report}"))
        .level
}

#[actix_rt::test]
async fn a_correct_receiver_passes_with_a_loopback_warning() {
    let runs = Arc::default();
    let receiver = receiver(&runs);
    let report = doctor::run(&options(&format!("{}/webhooks/replicate", receiver.root))).await;
    assert!(report.passed(), "{report}");
    for name in ["dns", "tcp", "redirect", "signature", "response time"] {
        assert_eq!(level(&report, name), Level::Ok, "{name} in\n{report}");
    }
    for event in Event::ALL {
        assert_eq!(
            level(&report, &format!("delivery {event}")),
            Level::Ok,
            "{report}"
        );
    }
    assert_eq!(level(&report, "reachable"), Level::Warn, "{report}");
    assert_eq!(level(&report, "https"), Level::Warn, "{report}");
    let replay = report.get("replay").unwrap();
    assert_eq!(replay.level, Level::Ok, "{report}");
    assert!(replay.message.contains("not run again"), "{report}");
    // Each sample event ran its handler once, the replay and the mis-signed one none.
    let runs = runs.lock().unwrap().clone();
    let handlers: Vec<&str> = runs.iter().map(|(h, _)| h.as_str()).collect();
    assert_eq!(
        handlers,
        ["on_start", "on_output", "on_logs", "on_succeeded"],
        "{runs:?}"
    );
    assert!(runs.windows(2).all(|w| w[0].1 == w[1].1), "{runs:?}");
    receiver.stop().await;
}

#[actix_rt::test]
async fn a_redirect_is_reported_with_the_fix() {
    let stub = Stub::start(|_| {
        HttpResponse::MovedPermanently()
            .insert_header(("location", "https://example.com/webhooks/replicate"))
            .finish()
    });
    let report = doctor::run(&options(&format!("{}/old", stub.root))).await;
    assert!(!report.passed(), "{report}");
    let redirect = report.get("redirect").unwrap();
    assert_eq!(redirect.level, Level::Fail);
    assert_eq!(
        redirect.message,
        format!("301 to https://example.com/webhooks/replicate; {REDIRECT_FIX}")
    );
    // Nothing after the redirect: every later request would redirect too.
    assert!(report.get("signature").is_none(), "{report}");
    assert_eq!(stub.requests().len(), 1);
    stub.stop().await;
}

#[actix_rt::test]
async fn a_server_that_never_verifies_is_told_so() {
    let stub = Stub::start(|_| HttpResponse::Ok().body("thanks"));
    let report = doctor::run(&options(&format!("{}/hook", stub.root))).await;
    assert!(!report.passed(), "{report}");
    let signature = report.get("signature").unwrap();
    assert_eq!(signature.level, Level::Fail);
    assert!(
        signature
            .message
            .contains("your endpoint does not verify signatures"),
        "{report}"
    );
    // It answers the signed deliveries; whether it dedupes cannot be seen.
    assert_eq!(level(&report, "delivery completed"), Level::Ok, "{report}");
    assert_eq!(level(&report, "replay"), Level::Warn, "{report}");
    stub.stop().await;
}

#[actix_rt::test]
async fn a_wrong_secret_and_a_wrong_path_are_told_apart() {
    let runs = Arc::default();
    let receiver = receiver(&runs);
    let wrong_secret = Options::new(
        format!("{}/webhooks/replicate", receiver.root)
            .parse()
            .unwrap(),
    )
    .secret(Secret::generate())
    .events([Event::Completed]);
    let report = doctor::run(&wrong_secret).await;
    let delivery = report.get("delivery completed").unwrap();
    assert_eq!(delivery.level, Level::Fail, "{report}");
    assert!(delivery.message.contains("secret differs"), "{report}");
    let replay = report.get("replay").unwrap();
    assert_eq!(
        (replay.level, replay.message.as_str()),
        (Level::Skip, "the completed delivery was not accepted"),
        "{report}"
    );

    let wrong_path = options(&format!("{}/webhook", receiver.root)).events([Event::Completed]);
    let report = doctor::run(&wrong_path).await;
    let delivery = report.get("delivery completed").unwrap();
    assert_eq!(delivery.level, Level::Fail, "{report}");
    assert!(delivery.message.starts_with("404"), "{report}");
    assert!(runs.lock().unwrap().is_empty());
    receiver.stop().await;
}

#[actix_rt::test]
async fn a_closed_port_fails_at_tcp() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    // The listener is dropped: nothing listens on the port any more.
    let report = doctor::run(&options(&format!(
        "http://127.0.0.1:{port}/webhooks/replicate"
    )))
    .await;
    assert!(!report.passed(), "{report}");
    let tcp = report.get("tcp").unwrap();
    assert_eq!(tcp.level, Level::Fail, "{report}");
    assert!(tcp.message.contains("start the receiver"), "{report}");
    assert!(report.get("redirect").is_none(), "{report}");
}

/// The binary prints the report and exits 0 when it passed, 1 when not; the secret never shows.
#[actix_rt::test]
async fn the_command_prints_the_report_and_its_exit_code() {
    let runs = Arc::default();
    let receiver = receiver(&runs);
    let good = format!("{}/webhooks/replicate", receiver.root);
    let bad = format!("{}/nowhere", receiver.root);
    let outputs = actix_web::rt::task::spawn_blocking(move || {
        [good, bad].map(|url| {
            bin()
                .args(["doctor", &url, "--events", "completed"])
                .env("REPLICATE_WEBHOOK_SECRET", SECRET)
                .output()
                .unwrap()
        })
    })
    .await
    .unwrap();
    let [good, bad] = outputs;
    let text = String::from_utf8(good.stdout).unwrap();
    assert_eq!(good.status.code(), Some(0), "{text}");
    let (checks, summary) = text.trim_end().rsplit_once('\n').unwrap();
    let names: Vec<&str> = checks
        .lines()
        .map(|l| l[5..].split(':').next().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "dns",
            "reachable",
            "tcp",
            "https",
            "redirect",
            "signature",
            "delivery completed",
            "replay",
            "response time",
        ],
        "{text}"
    );
    assert_eq!(
        summary, "doctor: 7 ok, 2 warnings, 0 failed, 0 skipped",
        "{text}"
    );
    let bad_text = String::from_utf8(bad.stdout).unwrap();
    assert_eq!(bad.status.code(), Some(1), "{bad_text}");
    assert!(
        bad_text.contains("FAIL delivery completed: 404"),
        "{bad_text}"
    );
    for shown in [&text, &bad_text] {
        assert!(!shown.contains("MfKQ9r8"), "{shown}");
    }
    receiver.stop().await;
}

#[actix_rt::test]
async fn a_receiver_slower_than_replicates_timeout_fails() {
    // Its start handler never returns: no answer ever comes for that delivery.
    let module = Module::new("*")
        .events(Event::ALL)
        .on(HandlerKind::Start, |_: Prediction| {
            std::future::pending::<Result<(), HandlerError>>()
        });
    let config = WebhookConfig::new(Secret::parse(SECRET).unwrap())
        .collect_registered(false)
        .module(module);
    let receiver = Receiver::start(config);
    let mut options = options(&format!("{}/webhooks/replicate", receiver.root));
    options.timeout = std::time::Duration::from_millis(300);
    let report = doctor::run(&options).await;
    assert!(!report.passed(), "{report}");
    let start = report.get("delivery start").unwrap();
    assert_eq!(start.level, Level::Fail, "{report}");
    assert!(
        start.message.starts_with("no answer within 300ms"),
        "{report}"
    );
    // Nothing after it: every later delivery would wait as long.
    assert!(report.get("delivery completed").is_none(), "{report}");
    receiver.stop().await;
}
