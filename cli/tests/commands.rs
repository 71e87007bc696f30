//! `sign`, `verify` and `send`, driving the real binary.

mod common;

use std::io::Write as _;
use std::process::{Output, Stdio};
use std::sync::{Arc, Mutex};

use actix_web::HttpResponse;
use common::{Receiver, SECRET, bin};
use replicate_webhook::signature::Verifier;
use replicate_webhook::{
    Event, HandlerError, HandlerKind, Module, Prediction, Secret, WebhookConfig,
};
use serde_json::Value;

fn run(args: &[&str], stdin: &[u8]) -> Output {
    let mut child = bin()
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The command may exit before reading its input (usage errors): a broken pipe is fine.
    let _ = child.stdin.take().unwrap().write_all(stdin);
    child.wait_with_output().unwrap()
}

fn code(output: &Output) -> i32 {
    output.status.code().expect("exited normally")
}

fn vectors() -> Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../fixtures/signature-vectors.json"
    );
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap()
}

fn body_of(vector: &Value) -> Vec<u8> {
    if let Some(repeat) = vector.get("body_repeat") {
        let text = repeat["text"].as_str().unwrap();
        let times = usize::try_from(repeat["times"].as_u64().unwrap()).unwrap();
        text.repeat(times).into_bytes()
    } else {
        vector["body"].as_str().unwrap().as_bytes().to_vec()
    }
}

fn verify_vector(vector: &Value, dir: &std::path::Path, index: usize) -> Output {
    let body = body_of(vector);
    let file = dir.join(format!("body-{index}"));
    std::fs::write(&file, &body).unwrap();
    let timestamp = vector["timestamp"].as_str().unwrap();
    run(
        &[
            "verify",
            "--secret",
            vector["secret"].as_str().unwrap(),
            "--id",
            vector["id"].as_str().unwrap(),
            "--timestamp",
            timestamp,
            "--signature",
            vector["signature"].as_str().unwrap(),
            "--now",
            timestamp,
            file.to_str().unwrap(),
        ],
        b"",
    )
}

fn temp_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "replicate-webhook-cli-{name}-{}",
        std::process::id()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn every_signature_vector_gives_the_right_exit_code() {
    let vectors = vectors();
    let dir = temp_dir("vectors");
    let mut checked = 0;
    for (i, vector) in vectors["valid"].as_array().unwrap().iter().enumerate() {
        let out = verify_vector(vector, &dir, i);
        assert_eq!(
            code(&out),
            0,
            "{}: {}",
            vector["name"],
            String::from_utf8_lossy(&out.stderr)
        );
        checked += 1;
    }
    for (i, vector) in vectors["invalid"].as_array().unwrap().iter().enumerate() {
        let out = verify_vector(vector, &dir, 1000 + i);
        assert_eq!(code(&out), 1, "{}", vector["name"]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        let reason = vector["reason"].as_str().unwrap_or("invalid");
        assert!(stderr.contains(reason), "{}: {stderr}", vector["name"]);
        checked += 1;
    }
    assert!(checked >= 15, "only {checked} vectors");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn refused_secrets_are_usage_errors_and_never_echoed() {
    let vectors = vectors();
    for secret in vectors["secrets_must_be_refused"].as_array().unwrap() {
        let secret = secret.as_str().unwrap();
        let verify = run(
            &[
                "verify",
                "--secret",
                secret,
                "--id",
                "msg_1",
                "--timestamp",
                "1614265330",
                "--signature",
                "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
                "--now",
                "1614265330",
            ],
            br#"{"test": 2432232314}"#,
        );
        assert_eq!(code(&verify), 2, "verify with {secret:?}");
        let sign = run(&["sign", "--secret", secret], b"{}");
        assert_eq!(code(&sign), 2, "sign with {secret:?}");
        for out in [&verify, &sign] {
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(stderr.contains("secret"), "{stderr}");
            if secret.len() > "whsec_".len() {
                assert!(!stderr.contains(secret), "{stderr}");
            }
        }
    }
}

#[test]
fn secret_errors_name_the_flag_not_only_the_variable() {
    let out = run(&["sign", "--secret", "whsec_!!!not-base64"], b"{}");
    assert_eq!(code(&out), 2);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("invalid --secret: secret #1:"), "{stderr}");
    assert!(!stderr.contains("REPLICATE_WEBHOOK_SECRET"), "{stderr}");
}

#[test]
fn sign_refuses_ids_that_would_break_its_three_lines() {
    for id in ["msg_1\nwebhook-signature: v1,forged", "msg_1\r", "msg\t1"] {
        let out = run(&["sign", "--secret", SECRET, "--id", id], b"{}");
        assert_eq!(code(&out), 2, "{id:?}");
        assert!(out.stdout.is_empty(), "{id:?}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("--id"),
            "{id:?}"
        );
    }
}

const BODY: &[u8] = br#"{"test": 2432232314}"#;
const ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
const SIG: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

fn verify_args<'a>(id: &'a str, timestamp: &'a str, signature: &'a str) -> Vec<&'a str> {
    vec![
        "verify",
        "--secret",
        SECRET,
        "--id",
        id,
        "--timestamp",
        timestamp,
        "--signature",
        signature,
        "--now",
        "1614265330",
    ]
}

#[test]
fn malformed_header_values_are_invalid_deliveries_not_usage_errors() {
    for (id, timestamp, signature) in [
        (ID, "1614265330.0", SIG),
        (ID, "", SIG),
        (ID, "+1614265330", SIG),
        (ID, "-5", SIG),
        ("", "1614265330", SIG),
        (ID, "1614265330", ""),
        (ID, "1614265330", "garbage"),
        (ID, "1614265330", "-v1"),
    ] {
        let out = run(&verify_args(id, timestamp, signature), BODY);
        assert_eq!(
            code(&out),
            1,
            "{id:?} {timestamp:?} {signature:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(!out.stderr.is_empty());
    }
    // The clock check: the vector's own time is fine, now is not.
    let out = run(&verify_args(ID, "1614265330", SIG), BODY);
    assert_eq!(code(&out), 0);
    let stale = run(
        &[
            "verify",
            "--secret",
            SECRET,
            "--id",
            ID,
            "--timestamp",
            "1614265330",
            "--signature",
            SIG,
        ],
        BODY,
    );
    assert_eq!(code(&stale), 1);
    assert!(String::from_utf8_lossy(&stale.stderr).contains("timestamp"));
    let wide = run(
        &[
            "verify",
            "--secret",
            SECRET,
            "--id",
            ID,
            "--timestamp",
            "1614265330",
            "--signature",
            SIG,
            "--now",
            "1614268929",
            "--tolerance",
            "3600",
        ],
        BODY,
    );
    assert_eq!(code(&wide), 0);
}

#[test]
fn missing_flags_are_usage_errors() {
    let out = run(
        &["verify", "--secret", SECRET, "--id", ID, "--timestamp", "1"],
        BODY,
    );
    assert_eq!(code(&out), 2);
    let out = run(
        &["verify", "--id", ID, "--timestamp", "1", "--signature", SIG],
        BODY,
    );
    assert_eq!(code(&out), 2, "no --secret and no environment variable");
    // The environment variable stands in for --secret.
    let mut child = bin()
        .env("REPLICATE_WEBHOOK_SECRET", SECRET)
        .args(
            verify_args(ID, "1614265330", SIG)
                .iter()
                .filter(|a| **a != "--secret" && **a != SECRET),
        )
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(BODY).unwrap();
    assert_eq!(code(&child.wait_with_output().unwrap()), 0);
}

fn parse_sign_output(stdout: &[u8]) -> (String, String, String) {
    let text = String::from_utf8(stdout.to_vec()).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    let value = |prefix: &str, line: &str| line.strip_prefix(prefix).unwrap().to_owned();
    (
        value("webhook-id: ", lines[0]),
        value("webhook-timestamp: ", lines[1]),
        value("webhook-signature: ", lines[2]),
    )
}

#[test]
fn sign_reproduces_the_vector_and_its_output_verifies() {
    let out = run(
        &[
            "sign",
            "--secret",
            SECRET,
            "--id",
            ID,
            "--timestamp",
            "1614265330",
            "-",
        ],
        BODY,
    );
    assert_eq!(code(&out), 0);
    assert_eq!(
        parse_sign_output(&out.stdout),
        (ID.to_owned(), "1614265330".to_owned(), SIG.to_owned())
    );

    // Generated id and timestamp: accepted by `verify` and by the runtime's verifier.
    let body = br#"{"id":"x","status":"succeeded","input":{}}"#;
    let out = run(&["sign", "--secret", SECRET], body);
    let (id, timestamp, signature) = parse_sign_output(&out.stdout);
    assert!(id.starts_with("msg_"));
    let verified = run(
        &[
            "verify",
            "--secret",
            SECRET,
            "--id",
            &id,
            "--timestamp",
            &timestamp,
            "--signature",
            &signature,
        ],
        body,
    );
    assert_eq!(code(&verified), 0);
    Verifier::new(vec![Secret::parse(SECRET).unwrap()])
        .verify(&id, &timestamp, &signature, body)
        .unwrap();
}

fn counting_receiver(runs: &Arc<Mutex<Vec<String>>>) -> Receiver {
    let on_succeeded = runs.clone();
    let config = WebhookConfig::new(Secret::parse(SECRET).unwrap())
        .collect_registered(false)
        .module(Module::new("*").events(Event::ALL).on(
            HandlerKind::Succeeded,
            move |p: Prediction| {
                let runs = on_succeeded.clone();
                async move {
                    runs.lock().unwrap().push(p.id);
                    Ok::<(), HandlerError>(())
                }
            },
        ));
    Receiver::start(config)
}

#[actix_rt::test]
async fn sign_output_is_accepted_by_a_runtime_receiver() {
    let runs = Arc::default();
    let receiver = counting_receiver(&runs);
    let body = serde_json::to_vec(&replicate_webhook::testkit::sample_prediction(
        "signedbycli",
        "replicate/hello-world",
        "succeeded",
        serde_json::json!("hello Alice"),
    ))
    .unwrap();
    let out = run(&["sign", "--secret", SECRET], &body);
    let (id, timestamp, signature) = parse_sign_output(&out.stdout);
    let response = reqwest::Client::new()
        .post(format!("{}/webhooks/replicate", receiver.root))
        .header("webhook-id", id)
        .header("webhook-timestamp", timestamp)
        .header("webhook-signature", signature)
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(*runs.lock().unwrap(), ["signedbycli"]);
    receiver.stop().await;
}

#[actix_rt::test]
async fn send_repeats_one_delivery_and_the_receiver_runs_the_handler_once() {
    let runs = Arc::default();
    let receiver = counting_receiver(&runs);
    let url = format!("{}/webhooks/replicate?customId=7", receiver.root);
    let out = actix_web::rt::task::spawn_blocking(move || {
        bin()
            .args([
                "send",
                &url,
                "--secret",
                SECRET,
                "--status",
                "succeeded",
                "--id",
                "msg_fixed",
                "--prediction-id",
                "sentbycli",
                "--repeat",
                "3",
            ])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        code(&out),
        0,
        "{stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        stdout.lines().filter(|l| l.starts_with("200")).count(),
        3,
        "{stdout}"
    );
    assert_eq!(*runs.lock().unwrap(), ["sentbycli"]);
    let arrivals = receiver.arrivals();
    assert_eq!(arrivals.len(), 3);
    assert!(arrivals.iter().all(|a| a.webhook_id == "msg_fixed"));
    assert!(
        arrivals
            .iter()
            .all(|a| a.path_and_query.ends_with("?customId=7"))
    );
    receiver.stop().await;
}

#[actix_rt::test]
async fn send_prints_a_receivers_escape_codes_escaped() {
    let stub = common::Stub::start(|_| {
        HttpResponse::Ok().body("\u{1b}]0;owned\u{7}\u{1b}[2Jdone\rfake line\nsecond line")
    });
    let url = format!("{}/webhooks/replicate", stub.root);
    let out = actix_web::rt::task::spawn_blocking(move || {
        bin()
            .args(["send", &url, "--secret", SECRET])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(code(&out), 0, "{stdout}");
    assert!(
        !stdout.contains(['\u{1b}', '\u{7}', '\r']),
        "raw control characters printed: {stdout:?}"
    );
    assert!(
        stdout.contains(r"\u{1b}]0;owned\u{7}\u{1b}[2Jdone\rfake line"),
        "{stdout}"
    );
    assert!(
        stdout.contains("\nsecond line"),
        "lines stay lines: {stdout}"
    );
    stub.stop().await;
}

#[actix_rt::test]
async fn trigger_with_a_wrong_secret_is_refused() {
    let runs = Arc::default();
    let receiver = counting_receiver(&runs);
    let url = format!("{}/webhooks/replicate", receiver.root);
    let wrong = Secret::generate().expose();
    let out = actix_web::rt::task::spawn_blocking(move || {
        bin()
            .args([
                "trigger",
                &url,
                "--status",
                "failed",
                "--model",
                "acme/other",
            ])
            .env("REPLICATE_WEBHOOK_SECRET", wrong)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert_eq!(code(&out), 1);
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("401"));
    assert!(runs.lock().unwrap().is_empty());
    receiver.stop().await;
}
