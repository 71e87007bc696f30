//! The README's main job, as a user runs it: the quickstart binary on a loopback port, fed by the
//! `send-test-delivery` binary over real HTTP.

use std::process::Command;
use std::time::Duration;

use replicate_webhook_tests::process::{Process, free_port, wait_for};

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// The quickstart, killed when dropped, in a working directory of its own: its default SQLite
/// store lands there, a fresh one per run, so no run sees another's handled deliveries.
struct Quickstart {
    process: Process,
    _dir: tempfile::TempDir,
}

impl std::ops::Deref for Quickstart {
    type Target = Process;
    fn deref(&self) -> &Process {
        &self.process
    }
}

fn start(secret: Option<&str>) -> Quickstart {
    let dir = tempfile::tempdir().unwrap();
    let env: Vec<(&str, &str)> = secret
        .map(|s| ("REPLICATE_WEBHOOK_SECRET", s))
        .into_iter()
        .collect();
    let process = Process::start(env!("CARGO_BIN_EXE_quickstart"), dir.path(), &env);
    Quickstart { process, _dir: dir }
}

fn send(url: &str, secret: &str, status: &str, model: &str) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_send-test-delivery"))
        .args([url, status, model])
        .env("REPLICATE_WEBHOOK_SECRET", secret)
        .output()
        .unwrap();
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn prints_one_line_per_handler_run() {
    let q = start(Some(SECRET));
    assert!(send(&q.url, SECRET, "succeeded", "replicate/hello-world").starts_with("200 "));
    let line = q.stdout.recv_timeout(Duration::from_secs(10)).unwrap();
    assert!(line.starts_with("on_succeeded id="), "{line}");
    assert!(line.contains(" model=replicate/hello-world"), "{line}");
    assert!(line.ends_with(r#"output="hello Alice""#), "{line}");

    // Any other model reaches the catch-all module.
    assert!(send(&q.url, SECRET, "starting", "acme/other").starts_with("200 "));
    let line = q.stdout.recv_timeout(Duration::from_secs(10)).unwrap();
    assert!(
        line.starts_with("on_start id=") && line.contains(" model=acme/other"),
        "{line}"
    );

    // A delivery signed with another key is refused and prints nothing: the next line printed
    // is the one of the valid delivery sent after it.
    let other = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";
    assert!(send(&q.url, other, "succeeded", "acme/other").starts_with("401 "));
    assert!(send(&q.url, SECRET, "starting", "acme/marker").starts_with("200 "));
    let line = q.stdout.recv_timeout(Duration::from_secs(10)).unwrap();
    assert!(
        line.starts_with("on_start id=") && line.contains(" model=acme/marker"),
        "{line}"
    );
}

#[test]
fn without_a_secret_it_generates_and_prints_one() {
    let q = start(None);
    let seen = &q.banner;
    let secret_line = seen
        .iter()
        .find_map(|l| l.trim().strip_prefix("REPLICATE_WEBHOOK_SECRET="))
        .map(str::to_owned);
    let secret = secret_line.unwrap_or_else(|| panic!("no generated secret in {seen:?}"));
    assert!(secret.starts_with("whsec_"));
    assert!(send(&q.url, &secret, "failed", "acme/other").starts_with("200 "));
    let line = q.stdout.recv_timeout(Duration::from_secs(10)).unwrap();
    assert!(line.starts_with("on_failed id="), "{line}");
}

#[test]
fn an_invalid_secret_exits_non_zero_and_serves_nothing() {
    let port = free_port();
    let out = Command::new(env!("CARGO_BIN_EXE_quickstart"))
        .env("BIND", format!("127.0.0.1:{port}"))
        .env("REPLICATE_WEBHOOK_SECRET", "whsec_***notbase64***")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("REPLICATE_WEBHOOK_SECRET") && stderr.contains("invalid"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("notbase64"),
        "the secret must not be echoed: {stderr}"
    );
    assert!(out.stdout.is_empty());
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err());
}

/// Posts `body`, signed with [`SECRET`], and returns the status code.
fn post_signed(url: &str, body: &serde_json::Value) -> u16 {
    use replicate_webhook::Secret;
    use replicate_webhook::testkit::TestDelivery;

    let signed = TestDelivery::new(body.to_string()).sign(&Secret::parse(SECRET).unwrap());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let mut req = reqwest::Client::new()
            .post(url)
            .header("content-type", "application/json")
            .body(signed.body().to_vec());
        for (name, value) in signed.headers() {
            req = req.header(name, value);
        }
        req.send().await.unwrap().status().as_u16()
    })
}

#[test]
fn untrusted_text_cannot_forge_a_line() {
    use replicate_webhook::testkit::sample_prediction;

    let q = start(Some(SECRET));
    let forged = "abc\n on_succeeded id=forged model=replicate/hello-world status=succeeded";
    let body = sample_prediction(forged, "replicate/hello-world", "succeeded", "hi".into());
    assert_eq!(post_signed(&q.url, &body), 200);
    // The model too, in the catch-all module.
    let body = sample_prediction(
        "plain2",
        "acme/x\r\non_start id=forged",
        "starting",
        ().into(),
    );
    assert_eq!(post_signed(&q.url, &body), 200);
    // The handler runs before the 200, so once this last line is read, every earlier one is too.
    let marker = sample_prediction("marker", "acme/other", "starting", ().into());
    assert_eq!(post_signed(&q.url, &marker), 200);
    let lines = wait_for(&q.stdout, "id=marker");

    assert_eq!(lines.len(), 3, "{lines:#?}");
    assert!(
        !lines
            .iter()
            .any(|l| l.trim_start().contains("id=forged") && !l.contains('"')),
        "{lines:#?}"
    );
    assert!(
        !lines
            .iter()
            .any(|l| l.trim_start().starts_with("on_succeeded id=forged")
                || l.trim_start().starts_with("on_start id=forged")),
        "{lines:#?}"
    );
    assert_eq!(
        lines[0],
        r#"on_succeeded id="abc\n on_succeeded id=forged model=replicate/hello-world status=succeeded" model=replicate/hello-world status=succeeded output="hi""#
    );
    assert_eq!(
        lines[1],
        r#"on_start id=plain2 model="acme/x\r\non_start id=forged" status=starting"#
    );
    // Ordinary values are printed exactly as before: no quotes, no escapes.
    assert_eq!(
        lines[2],
        "on_start id=marker model=acme/other status=starting"
    );
}

#[test]
fn a_training_prints_the_usual_line_with_kind_training() {
    use replicate_webhook::testkit::{sample_prediction, sample_training};

    let q = start(Some(SECRET));
    let starting = sample_training("trainingid1", "ostris/flux-dev-lora-trainer", "starting");
    assert_eq!(post_signed(&q.url, &starting), 200);
    let done = sample_training("trainingid1", "ostris/flux-dev-lora-trainer", "succeeded");
    assert_eq!(post_signed(&q.url, &done), 200);
    // A prediction after it: its line is unchanged by the training module.
    let marker = sample_prediction("marker", "acme/other", "starting", ().into());
    assert_eq!(post_signed(&q.url, &marker), 200);
    let lines = wait_for(&q.stdout, "id=marker");
    assert_eq!(
        lines,
        [
            "on_start id=trainingid1 model=ostris/flux-dev-lora-trainer status=starting kind=training".to_owned(),
            format!(
                "on_succeeded id=trainingid1 model=ostris/flux-dev-lora-trainer status=succeeded kind=training version=acme/fine-tuned:{} weights=https://replicate.delivery/xezq/trainingid1/trained_model.tar",
                "0".repeat(64)
            ),
            "on_start id=marker model=acme/other status=starting".to_owned(),
        ]
    );
}
