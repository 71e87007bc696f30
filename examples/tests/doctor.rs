//! `doctor` against the quickstart binary, as a user runs it: every check passes (the loopback
//! address is a warning), and the quickstart's own output shows each sample ran its handler
//! once and the replay none.

use std::process::Command;

use replicate_webhook::{Event, Secret};
use replicate_webhook_cli::doctor::{self, Level, Options};
use replicate_webhook_tests::process::{Process, wait_for};

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

#[actix_rt::test]
async fn the_quickstart_passes_doctor() {
    let dir = tempfile::tempdir().unwrap();
    let q = Process::start(
        env!("CARGO_BIN_EXE_quickstart"),
        dir.path(),
        &[("REPLICATE_WEBHOOK_SECRET", SECRET)],
    );
    let options = Options::new(q.url.parse().unwrap()).secret(Secret::parse(SECRET).unwrap());
    let report = doctor::run(&options).await;
    assert!(report.passed(), "{report}");
    for event in Event::ALL {
        let check = report.get(&format!("delivery {event}")).unwrap();
        assert_eq!(check.level, Level::Ok, "{report}");
    }
    assert_eq!(
        report.get("signature").unwrap().level,
        Level::Ok,
        "{report}"
    );
    assert_eq!(report.get("replay").unwrap().level, Level::Ok, "{report}");
    assert_eq!(
        report.get("reachable").unwrap().level,
        Level::Warn,
        "{report}"
    );

    // A last delivery of another model: the lines before its own are everything doctor caused.
    let sent = Command::new(env!("CARGO_BIN_EXE_send-test-delivery"))
        .args([q.url.as_str(), "starting", "acme/sentinel"])
        .env("REPLICATE_WEBHOOK_SECRET", SECRET)
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&sent.stdout).starts_with("200 "));
    let lines = wait_for(&q.stdout, "model=acme/sentinel");
    let handlers: Vec<&str> = lines.iter().map(|l| l.split(' ').next().unwrap()).collect();
    assert_eq!(
        handlers,
        [
            "on_start",
            "on_output",
            "on_logs",
            "on_succeeded",
            "on_start"
        ],
        "{lines:#?}"
    );
    assert!(lines[3].ends_with(r#"output="hello doctor""#), "{lines:#?}");
}
