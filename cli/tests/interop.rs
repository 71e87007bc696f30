//! Interop with the official verifiers and signers, both ways:
//!
//! * what we sign (`signature::sign`, `replicate-webhook sign`, the simulator's deliveries) passes
//!   Node `replicate`'s `validateWebhook` (both call forms), Node `standardwebhooks`'
//!   `Webhook.verify` and Python `standardwebhooks`' `Webhook.verify`;
//! * what Node and Python `standardwebhooks` sign passes our `Verifier` and a real receiver on
//!   127.0.0.1. (`replicate` for Node has no signer.)
//!
//! Needs the packages `scripts/interop-deps DIR` installs, and `INTEROP_DIR=DIR`:
//!
//! ```text
//! scripts/interop-deps /tmp/interop
//! INTEROP_DIR=/tmp/interop cargo test -p replicate-webhook-cli --all-features --test interop
//! ```
//!
//! Without `INTEROP_DIR` every test says it skipped and passes, unless `REQUIRE_SERVICES=1`,
//! which makes it fail. Negative controls (a wrong key, a changed body) make sure a verifier
//! that accepted everything would fail these tests.

mod common;

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use common::{Receiver, SECRET, Simulator, bin};
use replicate_webhook::client::{Client, CreatePrediction};
use replicate_webhook::signature::{self, Verifier, VerifyError, new_message_id, unix_now};
use replicate_webhook::testkit::{new_prediction_id, sample_prediction};
use replicate_webhook::{
    Event, HandlerError, HandlerKind, Module, Prediction, Secret, Url, WebhookConfig,
};
use serde_json::{Value, json};

/// Another key, for the negative controls.
const OTHER_SECRET: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";

/// The folder `scripts/interop-deps` filled, or `None` (after saying so) when the test skips.
fn interop_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("INTEROP_DIR").filter(|d| !d.is_empty()) {
        let dir = PathBuf::from(dir);
        for package in [
            "node_modules/replicate",
            "node_modules/standardwebhooks",
            "py/standardwebhooks",
        ] {
            assert!(
                dir.join(package).is_dir(),
                "INTEROP_DIR={} has no {package}: run scripts/interop-deps {}",
                dir.display(),
                dir.display()
            );
        }
        return Some(dir);
    }
    assert!(
        std::env::var("REQUIRE_SERVICES").as_deref() != Ok("1"),
        "REQUIRE_SERVICES=1 but INTEROP_DIR is not set: run scripts/interop-deps DIR and set INTEROP_DIR=DIR"
    );
    // Straight to the file descriptor: the test harness captures `eprintln!` of passing tests.
    let _ = writeln!(
        std::io::stderr(),
        "interop: skipped: INTEROP_DIR is not set (scripts/interop-deps DIR installs the official verifiers)"
    );
    None
}

fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/official")
        .join(name)
}

/// Runs `program script DIR` with `request` on stdin and returns its JSON answer.
fn run_official(program: &str, script_name: &str, dir: &Path, request: &Value) -> Value {
    let mut child = Command::new(program)
        .arg(script(script_name))
        .arg(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
    child
        .stdin
        .take()
        .unwrap()
        .write_all(request.to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{program} {script_name} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{program} {script_name} printed no JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

/// One delivery for the official verifiers, and whether it must pass.
#[derive(Debug, Clone)]
struct Case {
    label: String,
    secret: String,
    id: String,
    timestamp: String,
    signature: String,
    body: String,
    valid: bool,
}

impl Case {
    fn json(&self) -> Value {
        json!({
            "secret": self.secret,
            "id": self.id,
            "timestamp": self.timestamp,
            "signature": self.signature,
            "body": self.body,
        })
    }

    /// The same headers with another body: must fail everywhere.
    fn tampered(&self) -> Self {
        Self {
            label: format!("{} with a changed body", self.label),
            body: format!("{} ", self.body),
            valid: false,
            ..self.clone()
        }
    }
}

fn signed_case(label: &str, secret: &str, body: &str) -> Case {
    let headers = signature::sign(
        &Secret::parse(secret).unwrap(),
        &new_message_id(),
        unix_now(),
        body.as_bytes(),
    );
    Case {
        label: label.to_owned(),
        secret: secret.to_owned(),
        id: headers.id,
        timestamp: headers.timestamp,
        signature: headers.signature,
        body: body.to_owned(),
        valid: true,
    }
}

fn payload(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fixtures/payloads")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every verifier's answer on every case must be `true` for a valid case and `false` otherwise.
fn check_official(dir: &Path, cases: &[Case]) {
    let request = json!({ "verify": cases.iter().map(Case::json).collect::<Vec<_>>() });
    let node = run_official("node", "official.js", dir, &request);
    let python = run_official("python3", "official.py", dir, &request);
    let mut wrong = Vec::new();
    for (i, case) in cases.iter().enumerate() {
        let answers = [
            (
                "node replicate validateWebhook",
                &node["verified"][i]["replicate"],
            ),
            (
                "node replicate validateWebhook(headers)",
                &node["verified"][i]["replicate_headers"],
            ),
            (
                "node standardwebhooks",
                &node["verified"][i]["standardwebhooks"],
            ),
            (
                "python standardwebhooks",
                &python["verified"][i]["standardwebhooks"],
            ),
        ];
        for (verifier, answer) in answers {
            if *answer != Value::Bool(case.valid) {
                wrong.push(format!(
                    "{verifier} on {:?}: {answer} (expected {})",
                    case.label, case.valid
                ));
            }
        }
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
}

#[test]
fn our_library_and_cli_signatures_pass_the_official_verifiers() {
    let Some(dir) = interop_dir() else { return };
    let generated = Secret::generate().expose();
    let bodies = [
        ("hello-world", payload("hello-world-succeeded.json")),
        (
            "flux-kontext-pro",
            payload("flux-kontext-pro-succeeded.json"),
        ),
        (
            "non-ASCII",
            r#"{"id":"x","status":"succeeded","output":"héllo ✓ 😀 \u0000"}"#.to_owned(),
        ),
    ];
    let mut cases = Vec::new();
    for (name, body) in &bodies {
        let case = signed_case(&format!("sign() {name}"), SECRET, body);
        cases.push(case.tampered());
        cases.push(case);
        cases.push(signed_case(
            &format!("sign() {name}, generated key"),
            &generated,
            body,
        ));
    }

    // A rotation: the receiver's key is the second entry.
    let body = &bodies[0].1;
    let mut rotation = signed_case("rotation", SECRET, body);
    let old = signature::sign(
        &Secret::parse(OTHER_SECRET).unwrap(),
        &rotation.id,
        rotation.timestamp.parse().unwrap(),
        body.as_bytes(),
    );
    rotation.signature = format!("{} {}", old.signature, rotation.signature);
    cases.push(rotation);

    // Signed with another key.
    cases.push(Case {
        label: "sign() with another key".to_owned(),
        secret: SECRET.to_owned(),
        valid: false,
        ..signed_case("", OTHER_SECRET, body)
    });

    // The command line: `replicate-webhook sign` prints the three headers.
    let file = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fixtures/payloads/hello-world-succeeded.json");
    let id = new_message_id();
    let out = bin()
        .args(["sign", "--secret", SECRET, "--id", &id])
        .args(["--timestamp", &unix_now().to_string()])
        .arg(&file)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let stdout = String::from_utf8(out.stdout).unwrap();
    let header = |name: &str| {
        stdout
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{name}: ")))
            .unwrap_or_else(|| panic!("no {name} in {stdout}"))
            .to_owned()
    };
    assert_eq!(header("webhook-id"), id);
    let cli = Case {
        label: "replicate-webhook sign".to_owned(),
        secret: SECRET.to_owned(),
        id,
        timestamp: header("webhook-timestamp"),
        signature: header("webhook-signature"),
        body: std::fs::read_to_string(&file).unwrap(),
        valid: true,
    };
    cases.push(cli.tampered());
    cases.push(cli);

    check_official(&dir, &cases);
}

/// One request as it arrived: the three headers and the raw body.
type Captured = (String, String, String, Vec<u8>);

#[actix_rt::test]
async fn simulator_deliveries_pass_the_official_verifiers() {
    let Some(dir) = interop_dir() else { return };
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Captured>();
    let server = HttpServer::new(move || {
        let tx = tx.clone();
        App::new().route(
            "/hook",
            web::post().to(move |req: HttpRequest, body: web::Bytes| {
                let tx = tx.clone();
                async move {
                    let header = |name: &str| {
                        req.headers()
                            .get(name)
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or_default()
                            .to_owned()
                    };
                    let _ = tx.send((
                        header("webhook-id"),
                        header("webhook-timestamp"),
                        header("webhook-signature"),
                        body.to_vec(),
                    ));
                    HttpResponse::Ok().finish()
                }
            }),
        )
    })
    .workers(1)
    .disable_signals()
    .bind(("127.0.0.1", 0))
    .unwrap();
    let addr = server.addrs()[0];
    let server = server.run();
    let handle = server.handle();
    actix_web::rt::spawn(server);

    let sim = Simulator::start(&[
        "--secret",
        SECRET,
        "--start-delay",
        "20ms",
        "--steps",
        "1",
        "--step",
        "20ms",
    ]);
    let client = Client::new(&sim.api, Some("any".to_owned())).unwrap();
    let url = Url::parse(&format!("http://{addr}/hook")).unwrap();
    client
        .create(
            &CreatePrediction::model("replicate/hello-world", json!({"text": "Alice"}))
                .webhook(url, [Event::Start, Event::Completed]),
        )
        .await
        .unwrap();
    let mut cases = Vec::new();
    // `start`, then `completed`.
    for n in 1..=2 {
        let (id, timestamp, signature, body) =
            actix_web::rt::time::timeout(Duration::from_secs(20), rx.recv())
                .await
                .unwrap_or_else(|_| panic!("only {} deliveries from the simulator", n - 1))
                .unwrap();
        let status = serde_json::from_slice::<Value>(&body).unwrap()["status"].clone();
        // Our own verifier first, so a failure below is the official libraries' verdict.
        let ours = Verifier::new(vec![Secret::parse(SECRET).unwrap()]);
        assert_eq!(ours.verify(&id, &timestamp, &signature, &body), Ok(()));
        let case = Case {
            label: format!("simulator delivery {n} ({status})"),
            secret: SECRET.to_owned(),
            id,
            timestamp,
            signature,
            body: String::from_utf8(body).unwrap(),
            valid: true,
        };
        cases.push(case.tampered());
        cases.push(case);
    }
    handle.stop(false).await;
    drop(sim);
    check_official(&dir, &cases);
}

/// A delivery signed by an official library.
struct OfficialDelivery {
    signer: &'static str,
    secret: String,
    id: String,
    signature: String,
    prediction: String,
    body: String,
}

#[actix_rt::test]
async fn official_signatures_pass_our_verifier_and_receiver() {
    let Some(dir) = interop_dir() else { return };
    let runs: Arc<Mutex<Vec<String>>> = Arc::default();
    let log = runs.clone();
    let module =
        Module::new("*")
            .events(Event::ALL)
            .on(HandlerKind::Succeeded, move |p: Prediction| {
                let log = log.clone();
                async move {
                    log.lock().unwrap().push(p.id);
                    Ok::<(), HandlerError>(())
                }
            });
    let config = WebhookConfig::new(Secret::parse(SECRET).unwrap())
        .collect_registered(false)
        .module(module);
    let receiver = Receiver::start(config);

    // What each library signs: a fresh prediction (and message id) per key.
    let generated = Secret::generate().expose();
    let now = unix_now();
    let mut requests = Vec::new();
    for secret in [SECRET, generated.as_str()] {
        let prediction = new_prediction_id();
        let body = sample_prediction(
            &prediction,
            "replicate/hello-world",
            "succeeded",
            "hello Alice ✓".into(),
        );
        requests.push((secret.to_owned(), prediction, body.to_string()));
    }
    let mut signed = Vec::new();
    for (signer, program, script_name) in [
        ("node standardwebhooks", "node", "official.js"),
        ("python standardwebhooks", "python3", "official.py"),
    ] {
        // A message id of its own per signer: the receiver runs a webhook-id once.
        let ids: Vec<String> = requests.iter().map(|_| new_message_id()).collect();
        let request = json!({
            "sign": requests
                .iter()
                .zip(&ids)
                .map(|((secret, _, body), id)| json!({
                    "secret": secret, "id": id, "timestamp": now, "body": body,
                }))
                .collect::<Vec<_>>(),
        });
        let answer = run_official(program, script_name, &dir, &request);
        for (i, ((secret, prediction, body), id)) in requests.iter().zip(ids).enumerate() {
            signed.push(OfficialDelivery {
                signer,
                secret: secret.clone(),
                id,
                signature: answer["signed"][i].as_str().unwrap().to_owned(),
                prediction: prediction.clone(),
                body: body.clone(),
            });
        }
    }

    let http = reqwest::Client::new();
    let post = |id: String, sig: String, body: String| {
        let http = http.clone();
        let url = format!("{}/webhooks/replicate", receiver.root);
        async move {
            http.post(url)
                .header("content-type", "application/json")
                .header("webhook-id", id)
                .header("webhook-timestamp", now.to_string())
                .header("webhook-signature", sig)
                .body(body)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    let ts = now.to_string();
    for delivery in signed {
        let OfficialDelivery {
            signer,
            secret,
            id,
            signature: sig,
            prediction,
            body,
        } = delivery;
        let ours = Verifier::new(vec![Secret::parse(&secret).unwrap()]);
        assert_eq!(
            ours.verify(&id, &ts, &sig, body.as_bytes()),
            Ok(()),
            "{signer} signature refused by Verifier::verify"
        );
        let other = Verifier::new(vec![Secret::parse(OTHER_SECRET).unwrap()]);
        assert_eq!(
            other.verify(&id, &ts, &sig, body.as_bytes()),
            Err(VerifyError::NoMatch),
            "{signer}: another key must not match"
        );
        assert_eq!(
            ours.verify(&id, &ts, &sig, format!("{body} ").as_bytes()),
            Err(VerifyError::NoMatch),
            "{signer}: a changed body must not match"
        );
        if secret != SECRET {
            continue;
        }
        // Over HTTP: a changed body is refused, the signed one reaches the handler.
        let status = post(id.clone(), sig.clone(), format!("{body} ")).await;
        assert_eq!(status, 401, "{signer}: a changed body must be refused");
        let status = post(id, sig, body).await;
        assert_eq!(status, 200, "{signer}: the receiver refused its delivery");
        // The handler runs before the answer: it has run now.
        assert!(
            runs.lock().unwrap().contains(&prediction),
            "{signer}: the handler did not run"
        );
    }
    receiver.stop().await;
}
