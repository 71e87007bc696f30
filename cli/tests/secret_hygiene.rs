//! Secret hygiene of the `replicate-webhook` command: every subcommand that handles the signing
//! secret or the API token (sign, verify, send, doctor, simulate, secret, predictions) runs with a known
//! secret, a known token and `REPLICATE_WEBHOOK_STORE` holding a password, with `RUST_LOG=trace`,
//! and nothing it prints may contain any of them (`replicate_webhook_tests::hygiene::Forbidden`
//! lists the forms: the text, the base64, the decoded key as hex, base64 and a byte list).
//!
//! Printed on purpose, and so excluded, each at its call site below:
//! * `secret` prints the signing secret to stdout: that is its job. Its stdout must be exactly
//!   the secret; only its stderr is checked.
//! * `sign` prints a signature, `simulate` the signatures of its deliveries when asked for the
//!   delivery log: MACs, not the key, so they are checked like everything else.

mod common;

use std::io::{BufRead as _, BufReader, Read};
use std::process::{Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use common::{Receiver, bin};
use replicate_webhook::testkit::sample_prediction;
use replicate_webhook::{
    Event, HandlerError, HandlerKind, Module, Prediction, Secret, WebhookConfig,
};
use replicate_webhook_tests::hygiene::{Forbidden, Known, STORE_WITH_PASSWORD, labelled, printed};

/// The binary with the secret, the token and the store in its environment.
fn cli(k: &Known) -> Command {
    let mut cmd = bin();
    cmd.env("REPLICATE_WEBHOOK_SECRET", &k.secret)
        .env("REPLICATE_API_TOKEN", &k.token)
        .env("REPLICATE_WEBHOOK_STORE", STORE_WITH_PASSWORD)
        .env("RUST_LOG", "trace")
        .stdin(Stdio::null());
    cmd
}

/// Runs `replicate-webhook ARGS`, off the test's runtime, and checks all it printed.
async fn run(k: &Known, args: &[&str]) -> Output {
    let mut cmd = cli(k);
    cmd.args(args);
    let out = actix_web::rt::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap();
    k.forbidden.assert_absent(
        &format!("replicate-webhook {}", args.join(" ")),
        &printed(&out),
    );
    out
}

fn body_file(name: &str, body: &[u8]) -> std::path::PathBuf {
    let path = std::env::temp_dir().join(format!(
        "replicate-webhook-hygiene-{name}-{}.json",
        std::process::id()
    ));
    std::fs::write(&path, body).unwrap();
    path
}

fn receiver(secret: &str, runs: mpsc::Sender<String>) -> Receiver {
    let runs = std::sync::Mutex::new(runs);
    let runs = std::sync::Arc::new(runs);
    let module =
        Module::new("*")
            .events(Event::ALL)
            .on(HandlerKind::Succeeded, move |p: Prediction| {
                let runs = runs.clone();
                async move {
                    let _ = runs.lock().unwrap().send(p.id);
                    Ok::<(), HandlerError>(())
                }
            });
    Receiver::start(
        WebhookConfig::new(Secret::parse(secret).unwrap())
            .collect_registered(false)
            .module(module),
    )
}

#[actix_rt::test]
async fn sign_verify_and_send_print_no_secret() {
    let k = Known::generate();
    let body = sample_prediction(
        "hygiene",
        "replicate/hello-world",
        "succeeded",
        "hello Alice".into(),
    )
    .to_string();
    let file = body_file("sign", body.as_bytes());
    let file = file.to_str().unwrap();

    // sign, from the variable and from the flag. Its output (three headers) is checked whole.
    let out = run(&k, &["sign", "--id", "msg_hygiene", file]).await;
    assert!(out.status.success());
    let stdout = String::from_utf8(out.stdout).unwrap();
    let header = |name: &str| {
        stdout
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{name}: ")))
            .unwrap()
            .to_owned()
    };
    let (timestamp, signature) = (header("webhook-timestamp"), header("webhook-signature"));
    let out = run(&k, &["sign", "--secret", &k.secret, file]).await;
    assert!(out.status.success());

    // verify: valid, invalid, and with a rotation list on the flag.
    let verify = ["verify", "--id", "msg_hygiene", "--timestamp", &timestamp];
    let mut args = verify.to_vec();
    args.extend(["--signature", &signature, file]);
    assert!(run(&k, &args).await.status.success());
    let mut args = verify.to_vec();
    args.extend(["--signature", "v1,AAAA", file]);
    assert_eq!(run(&k, &args).await.status.code(), Some(1));
    let other = Secret::generate().expose();
    let rotation = format!("{other} {}", k.secret);
    let mut args = verify.to_vec();
    args.extend(["--secret", &rotation, "--signature", &signature, file]);
    assert!(run(&k, &args).await.status.success());

    // Refused secrets are not echoed: one holding the password, one a near miss of the secret.
    let bad = "whsec_hunter2hunter2!!";
    assert_eq!(
        run(&k, &["sign", "--secret", bad, file])
            .await
            .status
            .code(),
        Some(2)
    );
    let near = format!("{}!", k.secret);
    assert_eq!(
        run(&k, &["sign", "--secret", &near, file])
            .await
            .status
            .code(),
        Some(2)
    );

    // send: to a receiver that accepts it, to one that refuses it, to nothing, and to a URL
    // carrying the password (the URL is not printed back).
    let (tx, rx) = mpsc::channel();
    let accepting = receiver(&k.secret, tx.clone());
    let url = format!("{}/webhooks/replicate", accepting.root);
    let out = run(&k, &["send", &url, "--prediction-id", "sent"]).await;
    assert!(out.status.success(), "{}", printed(&out));
    assert_eq!(rx.recv_timeout(Duration::from_secs(10)).unwrap(), "sent");
    let refusing = receiver(&other, tx);
    let url = format!("{}/webhooks/replicate", refusing.root);
    assert_eq!(run(&k, &["send", &url]).await.status.code(), Some(1));
    let out = run(&k, &["send", "http://127.0.0.1:1/webhooks/replicate"]).await;
    assert_eq!(out.status.code(), Some(1));
    let out = run(
        &k,
        &[
            "send",
            "http://admin:hunter2@127.0.0.1:1/webhooks/replicate",
        ],
    )
    .await;
    assert_eq!(out.status.code(), Some(1));
    accepting.stop().await;
    refusing.stop().await;
}

#[actix_rt::test]
async fn doctor_prints_no_secret() {
    let k = Known::generate();
    let (tx, rx) = mpsc::channel();
    let accepting = receiver(&k.secret, tx.clone());
    let url = format!("{}/webhooks/replicate", accepting.root);
    let out = run(&k, &["doctor", &url]).await;
    assert!(out.status.success(), "{}", printed(&out));
    assert_eq!(rx.recv_timeout(Duration::from_secs(10)).unwrap().len(), 26);
    let out = run(
        &k,
        &[
            "doctor",
            &url,
            "--secret",
            &k.secret,
            "--events",
            "completed",
        ],
    )
    .await;
    assert!(out.status.success(), "{}", printed(&out));
    let other = Secret::generate().expose();
    let refusing = receiver(&other, tx);
    let url = format!("{}/webhooks/replicate", refusing.root);
    assert_eq!(run(&k, &["doctor", &url]).await.status.code(), Some(1));
    // Credentials in the URL are not printed back.
    let port = refusing.root.rsplit(':').next().unwrap().to_owned();
    let url = format!("http://admin:hunter2@127.0.0.1:{port}/webhooks/replicate");
    assert_eq!(run(&k, &["doctor", &url]).await.status.code(), Some(1));
    accepting.stop().await;
    refusing.stop().await;
}

/// A running `replicate-webhook simulate`, all of whose output is kept.
struct Simulate {
    child: std::process::Child,
    api: String,
    stdout: std::thread::JoinHandle<String>,
    stderr: std::thread::JoinHandle<String>,
}

impl Simulate {
    fn start(k: &Known) -> Self {
        let mut child = cli(k)
            .args(["simulate", "--bind", "127.0.0.1:0", "--token", &k.token])
            .args(["--secret", &k.secret, "--start-delay", "20ms"])
            .args(["--steps", "1", "--step", "20ms"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (tx, rx) = mpsc::channel();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let stdout = std::thread::spawn(move || {
            let mut all = String::new();
            for line in lines.by_ref().map_while(Result::ok) {
                if let Some(api) = line.strip_prefix("api: ") {
                    let _ = tx.send(api.to_owned());
                }
                all.push_str(&line);
                all.push('\n');
            }
            all
        });
        let mut err = child.stderr.take().unwrap();
        let stderr = std::thread::spawn(move || {
            let mut all = String::new();
            let _ = err.read_to_string(&mut all);
            all
        });
        let api = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("the simulator prints its API address");
        Self {
            child,
            api,
            stdout,
            stderr,
        }
    }

    /// Stops it and returns everything it printed.
    fn stop(mut self) -> String {
        let _ = self.child.kill();
        let _ = self.child.wait();
        labelled(&self.stdout.join().unwrap(), &self.stderr.join().unwrap())
    }
}

#[actix_rt::test]
async fn simulate_secret_and_predictions_print_no_secret() {
    let k = Known::generate();
    let (tx, rx) = mpsc::channel();
    let receiver = receiver(&k.secret, tx);
    let sim = Simulate::start(&k);

    // A prediction with a webhook: the simulator signs and delivers it (and logs the attempts).
    let hook = format!("{}/webhooks/replicate?token=x", receiver.root);
    let request = serde_json::json!({
        "version": "replicate/hello-world",
        "input": {"text": "Alice"},
        "webhook": hook,
        "webhook_events_filter": ["start", "completed"],
    });
    let created: serde_json::Value = reqwest::Client::new()
        .post(format!("{}/predictions", sim.api))
        .bearer_auth(&k.token)
        .json(&request)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = created["id"].as_str().unwrap().to_owned();
    let delivered =
        actix_web::rt::task::spawn_blocking(move || rx.recv_timeout(Duration::from_secs(20)))
            .await
            .unwrap();
    assert_eq!(delivered.as_deref(), Ok(id.as_str()));
    // The delivery log holds signatures: MACs, checked like the rest.
    let log = reqwest::get(format!(
        "{}/_simulator/deliveries",
        sim.api.trim_end_matches("/v1")
    ))
    .await
    .unwrap()
    .text()
    .await
    .unwrap();
    k.forbidden
        .assert_absent("GET /_simulator/deliveries", &log);

    let api = sim.api.clone();
    // `secret` prints the secret on purpose: its stdout must be exactly that, and is not
    // checked for it; its stderr is.
    let mut cmd = cli(&k);
    cmd.args(["secret", "--api", &api]);
    let out = actix_web::rt::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap();
    assert!(out.status.success(), "{}", printed(&out));
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        format!("{}\n", k.secret)
    );
    k.forbidden.assert_absent(
        "replicate-webhook secret (stderr)",
        &String::from_utf8_lossy(&out.stderr),
    );

    // A wrong token is refused without echoing either token.
    let mut cmd = cli(&k);
    cmd.env("REPLICATE_API_TOKEN", "r8_wrongtoken")
        .args(["secret", "--api", &api]);
    let out = actix_web::rt::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", printed(&out));
    let wrong = Forbidden::new().text("the wrong token", "r8_wrongtoken");
    wrong.assert_absent("replicate-webhook secret (wrong token)", &printed(&out));
    k.forbidden
        .assert_absent("replicate-webhook secret (wrong token)", &printed(&out));

    // The prediction commands with the token.
    let out = run(&k, &["predictions", "get", &id, "--api", &api]).await;
    assert!(out.status.success(), "{}", printed(&out));
    let out = run(&k, &["predictions", "get", "doesnotexist", "--api", &api]).await;
    assert_eq!(out.status.code(), Some(1));
    let out = run(&k, &["predictions", "list", "--api", &api]).await;
    assert!(out.status.success(), "{}", printed(&out));

    receiver.stop().await;
    let all = sim.stop();
    assert!(
        all.contains("webhook "),
        "the simulator logged no delivery:\n{all}"
    );
    k.forbidden
        .assert_absent("replicate-webhook simulate", &all);
}
