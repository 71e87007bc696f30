//! Deliveries from self-hosted Cog containers, over real HTTP: shaped as coglet 0.23.1 sends
//! them, and from a real coglet running `tests/cog/predict.py` (`COG_VENV`, see
//! `scripts/cog-deps`).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use replicate_webhook::dedupe::{DedupeStore as _, MemoryStore};
use replicate_webhook::{
    CogToken, Event, HandlerError, HandlerKind, Module, Prediction, Secret, SetupError,
    WebhookConfig, replicate_webhook,
};
use replicate_webhook_tests::{TestServer, cog, retry_after, within};
use serde_json::json;

/// What this test binary logs, INFO and up: the `delivery` span is INFO, and the handler's
/// lines must show it.
mod logs {
    use std::sync::{Mutex, OnceLock};

    static LOG: Mutex<Vec<u8>> = Mutex::new(Vec::new());

    pub(crate) fn captured() {
        static INIT: OnceLock<()> = OnceLock::new();
        INIT.get_or_init(|| {
            let subscriber = tracing_subscriber::fmt()
                .with_ansi(false)
                .with_max_level(tracing::Level::INFO)
                .with_writer(|| Capture)
                .finish();
            tracing::subscriber::set_global_default(subscriber).expect("no other subscriber");
        });
    }

    pub(crate) fn text() -> String {
        String::from_utf8_lossy(&LOG.lock().unwrap()).into_owned()
    }

    struct Capture;

    impl std::io::Write for Capture {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            LOG.lock().unwrap().write(buf)
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
}

const TOKEN: &str = "cog-test-token-7f3a9c";
const PATH: &str = "/webhooks/cog";

/// What the handlers saw: `(handler, prediction id, output JSON)`, in order.
type Seen = Arc<Mutex<Vec<(String, String, String)>>>;

/// A Cog module on [`PATH`] recording every handler run. A prediction whose id starts with
/// `fail-once` fails its first `on_succeeded` with a retryable error; `slow` ones wait 1.5 s.
fn module(seen: &Seen) -> Module {
    let record = |kind: HandlerKind, seen: &Seen| {
        let seen = seen.clone();
        move |p: Prediction| {
            let seen = seen.clone();
            async move {
                // Inside the handler: this line carries the delivery span, `traceparent` included.
                tracing::warn!(handler = kind.fn_name(), "cog handler ran");
                let output = p
                    .output
                    .as_ref()
                    .map(ToString::to_string)
                    .unwrap_or_default();
                let first = {
                    let mut seen = seen.lock().unwrap();
                    let first = !seen
                        .iter()
                        .any(|(k, id, _)| k == kind.fn_name() && *id == p.id);
                    seen.push((kind.fn_name().to_owned(), p.id.clone(), output));
                    first
                };
                if p.id.starts_with("slow") {
                    tokio::time::sleep(Duration::from_millis(1500)).await;
                }
                if kind == HandlerKind::Succeeded && p.id.starts_with("fail-once") && first {
                    return Err(HandlerError::retry("database down"));
                }
                Ok(())
            }
        }
    };
    let mut module =
        Module::cog()
            .path(PATH)
            .events([Event::Output, Event::Logs, Event::Completed]);
    for kind in [
        HandlerKind::Output,
        HandlerKind::Logs,
        HandlerKind::Succeeded,
        HandlerKind::Failed,
    ] {
        module = module.on(kind, record(kind, seen));
    }
    module
}

fn config(seen: &Seen) -> WebhookConfig {
    WebhookConfig::new(Secret::generate())
        .collect_registered(false)
        .cog_token(CogToken::new(TOKEN).unwrap())
        .module(module(seen))
}

fn runs(seen: &Seen, handler: &str, id: &str) -> Vec<String> {
    seen.lock()
        .unwrap()
        .iter()
        .filter(|(k, i, _)| k == handler && i == id)
        .map(|(_, _, output)| output.clone())
        .collect()
}

/// Waits (up to 10 s) until `handler` has run `n` times for `id`.
async fn ran(seen: &Seen, handler: &str, id: &str, n: usize) {
    within(async {
        while runs(seen, handler, id).len() < n {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
}

fn body(id: &str, status: &str, outputs: usize) -> serde_json::Value {
    let output: Vec<String> = (0..outputs).map(|i| format!("out-{i}")).collect();
    let logs = "step\n".repeat(outputs);
    let mut body = json!({"id": id, "status": status, "logs": logs, "metrics": {}});
    if outputs > 0 {
        body["output"] = json!(output);
    }
    if status == "succeeded" {
        body["metrics"] = json!({"predict_time": 0.0071});
    }
    body
}

#[actix_rt::test]
async fn the_bearer_token_is_the_proof_and_nothing_else_is() {
    logs::captured();
    let seen = Seen::default();
    let server = TestServer::serve(config(&seen));
    let url = server.url(PATH);

    let good = cog::post(&url, Some(TOKEN), &body("tok-good", "succeeded", 1)).await;
    assert_eq!(good.status(), 200, "{}", good.text().await.unwrap());
    assert_eq!(runs(&seen, "on_succeeded", "tok-good"), [r#"["out-0"]"#]);

    for (token, why) in [
        (Some("cog-test-token-7f3a9"), "a prefix of the token"),
        (Some("cog-test-token-7f3a9cX"), "the token and more"),
        (Some(""), "an empty token"),
        (None, "no token"),
    ] {
        let resp = cog::post(&url, token, &body("tok-bad", "succeeded", 1)).await;
        assert_eq!(resp.status(), 401, "{why}");
    }
    // A Replicate signature on a Cog path is still checked as one: unsigned is not enough.
    let resp = reqwest::Client::new()
        .post(&url)
        .header("authorization", format!("Bearer {TOKEN}"))
        .header("webhook-signature", "v1,AAAA")
        .header("webhook-id", "msg_x")
        .header("webhook-timestamp", "1")
        .body(body("tok-bad", "succeeded", 1).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    assert!(runs(&seen, "on_succeeded", "tok-bad").is_empty());
    let log = logs::text();
    assert!(!log.contains(TOKEN), "the token was logged: {log}");
}

#[actix_rt::test]
async fn without_a_configured_token_or_a_cog_module_a_bearer_request_stays_401() {
    let seen = Seen::default();
    let no_token = TestServer::serve(
        WebhookConfig::new(Secret::generate())
            .collect_registered(false)
            .module(module(&seen)),
    );
    let resp = cog::post(
        &no_token.url(PATH),
        Some(TOKEN),
        &body("nt", "succeeded", 1),
    )
    .await;
    assert_eq!(resp.status(), 401);

    // A token, but the path's modules are Replicate's: the token opens Cog paths only.
    let replicate_only = TestServer::serve(
        WebhookConfig::new(Secret::generate())
            .collect_registered(false)
            .cog_token(CogToken::new(TOKEN).unwrap())
            .module(
                Module::new("*")
                    .path(PATH)
                    .on(HandlerKind::Succeeded, |_: Prediction| async {
                        Ok::<(), HandlerError>(())
                    }),
            ),
    );
    let resp = cog::post(
        &replicate_only.url(PATH),
        Some(TOKEN),
        &body("nt", "succeeded", 1),
    )
    .await;
    assert_eq!(resp.status(), 401);
    assert!(seen.lock().unwrap().is_empty());
}

#[actix_rt::test]
async fn retries_run_nothing_twice_and_a_later_status_is_not_dispatched() {
    let seen = Seen::default();
    let server = TestServer::serve(config(&seen));
    let url = server.url(PATH);
    for _ in 0..3 {
        let resp = cog::post(&url, Some(TOKEN), &body("retried", "succeeded", 2)).await;
        assert_eq!(resp.status(), 200);
    }
    assert_eq!(runs(&seen, "on_succeeded", "retried").len(), 1);
    // Another terminal status of the same prediction: the first one handled wins.
    let resp = cog::post(&url, Some(TOKEN), &body("retried", "failed", 2)).await;
    assert_eq!(resp.status(), 200);
    assert!(runs(&seen, "on_failed", "retried").is_empty());
    // And an intermediate event arriving after the end is stale.
    let resp = cog::post(&url, Some(TOKEN), &body("retried", "processing", 1)).await;
    assert_eq!(resp.status(), 200);
    assert!(runs(&seen, "on_output", "retried").is_empty());
}

#[actix_rt::test]
async fn an_unthrottled_output_burst_is_neither_lost_nor_doubled() {
    let seen = Seen::default();
    let server = TestServer::serve(config(&seen));
    let url = server.url(PATH);
    // Twenty outputs back to back, each sent twice (a retry racing its original).
    for n in 1..=20 {
        let delivery = body("burst", "processing", n);
        let first = cog::post(&url, Some(TOKEN), &delivery);
        let again = cog::post(&url, Some(TOKEN), &delivery);
        let (first, again) = tokio::join!(first, again);
        assert!(first.status().is_success() || again.status().is_success());
        for resp in [first, again] {
            assert!(
                [200, 503].contains(&resp.status().as_u16()),
                "{}: coglet would not retry",
                resp.status()
            );
        }
    }
    let outputs = runs(&seen, "on_output", "burst");
    let expected: Vec<String> = (1..=20)
        .map(|n| serde_json::to_string(&body("burst", "processing", n)["output"]).unwrap())
        .collect();
    assert_eq!(outputs, expected, "every output once, in order");
}

#[actix_rt::test]
async fn in_flight_work_is_answered_with_a_status_coglet_retries() {
    let seen = Seen::default();
    let server = TestServer::serve(config(&seen));
    let url = server.url(PATH);
    let delivery = body("slow-1", "succeeded", 1);
    let slow = cog::post(&url, Some(TOKEN), &delivery);
    let again = async {
        ran(&seen, "on_succeeded", "slow-1", 1).await;
        cog::post(&url, Some(TOKEN), &delivery).await
    };
    let (slow, again) = tokio::join!(slow, again);
    assert_eq!(slow.status(), 200);
    assert_eq!(again.status(), 503, "coglet never retries a 409");
    assert!((1..=30).contains(&retry_after(&again)));
    assert_eq!(runs(&seen, "on_succeeded", "slow-1").len(), 1);
}

#[actix_rt::test]
async fn traceparent_is_kept_in_the_handlers_span() {
    logs::captured();
    let seen = Seen::default();
    let server = TestServer::serve(config(&seen));
    let traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let resp = cog::post_with(
        &server.url(PATH),
        Some(TOKEN),
        &body("traced", "succeeded", 1),
        &[("traceparent", traceparent)],
    )
    .await;
    assert_eq!(resp.status(), 200);
    let log = logs::text();
    let line = log
        .lines()
        .find(|l| l.contains("cog handler ran") && l.contains("prediction=\"traced\""))
        .unwrap_or_else(|| panic!("no handler line in {log}"));
    assert!(line.contains(traceparent), "{line}");
    assert!(line.contains("sender=\"cog\""), "{line}");
}

#[test]
fn two_cog_modules_on_one_path_are_a_start_up_error() {
    let seen = Seen::default();
    let two = config(&seen).module(Module::cog().path(PATH));
    let err = replicate_webhook::try_configure(two).err().unwrap();
    assert!(matches!(err, SetupError::DuplicateCog { .. }), "{err}");
    assert!(
        err.to_string()
            .contains("two Cog modules on path `/webhooks/cog`"),
        "{err}"
    );
    // On two paths they are fine.
    let apart = config(&seen).module(Module::cog().path("/webhooks/cog-2"));
    assert!(replicate_webhook::try_configure(apart).is_ok());
}

/// Registered with the attribute: the `cog` argument, and the sender as a handler argument.
#[replicate_webhook(cog, path = "/webhooks/cog-attribute")]
mod from_the_attribute {
    use replicate_webhook::{HandlerError, Prediction, Sender};

    pub(super) static SEEN: std::sync::Mutex<Vec<(String, Sender)>> =
        std::sync::Mutex::new(Vec::new());

    async fn on_succeeded(p: Prediction, sender: Sender) -> Result<(), HandlerError> {
        SEEN.lock().unwrap().push((p.id, sender));
        Ok(())
    }
}

#[actix_rt::test]
async fn the_attribute_mounts_a_cog_module_and_handlers_can_ask_who_sent() {
    let server = TestServer::serve(
        WebhookConfig::new(Secret::generate()).cog_token(CogToken::new(TOKEN).unwrap()),
    );
    let resp = cog::post(
        &server.url("/webhooks/cog-attribute"),
        Some(TOKEN),
        &body("attr-1", "succeeded", 1),
    )
    .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(
        *from_the_attribute::SEEN.lock().unwrap(),
        [("attr-1".to_owned(), replicate_webhook::Sender::Cog)]
    );
}

/// The real sender: coglet 0.23.1 running a 3-step streaming predictor, every event requested.
#[actix_rt::test]
async fn a_real_coglet_delivers_every_event_once() {
    let Some(venv) = cog::venv() else { return };
    logs::captured();
    let seen = Seen::default();
    let store = Arc::new(MemoryStore::new());
    let server = TestServer::serve(config(&seen).shared_store(store.clone()));
    let webhook = server.url(PATH);
    let container = cog::Container::start(&venv, Some(TOKEN));
    tokio::time::timeout(Duration::from_secs(90), container.ready())
        .await
        .expect("coglet ready");
    let events = ["start", "output", "logs", "completed"];
    let traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";

    // Good token: each output once, in order, then the terminal status once.
    container
        .predict(
            "real-1",
            json!({"steps": 3}),
            &webhook,
            &events,
            Some(traceparent),
        )
        .await;
    tokio::time::timeout(
        Duration::from_secs(30),
        ran(&seen, "on_succeeded", "real-1", 1),
    )
    .await
    .expect("on_succeeded");
    // Cog sends intermediate webhooks fire-and-forget, concurrently with each other and with
    // the terminal one: an output may arrive after a later one (then it is older than what was
    // seen) or after `succeeded` was handled (then the prediction already finished), and either
    // is answered stale. What runs is each output at most once, in order.
    let outputs = runs(&seen, "on_output", "real-1");
    let all = [
        r#"["out-0"]"#,
        r#"["out-0","out-1"]"#,
        r#"["out-0","out-1","out-2"]"#,
    ];
    let positions: Vec<usize> = outputs
        .iter()
        .map(|o| {
            all.iter()
                .position(|a| a == o)
                .expect("an output coglet sent")
        })
        .collect();
    assert!(
        !positions.is_empty() && positions.windows(2).all(|w| w[0] < w[1]),
        "{outputs:?}"
    );
    assert_eq!(
        runs(&seen, "on_succeeded", "real-1"),
        [r#"["out-0","out-1","out-2"]"#]
    );
    let log = logs::text();
    assert!(
        log.lines()
            .any(|l| l.contains("prediction=\"real-1\"") && l.contains(traceparent)),
        "traceparent not in the handler's span: {log}"
    );

    // A handler failure is a 500, which coglet retries: the second attempt runs it.
    container
        .predict(
            "fail-once-1",
            json!({"steps": 1}),
            &webhook,
            &["completed"],
            None,
        )
        .await;
    tokio::time::timeout(
        Duration::from_secs(30),
        ran(&seen, "on_succeeded", "fail-once-1", 2),
    )
    .await
    .expect("coglet retried the 500");

    // In flight elsewhere (another instance holds the prediction's terminal claim for 1 s):
    // answered 503 with Retry-After, which coglet retries until the claim is gone.
    let held = store
        .claim("prediction:cog/inflight-1:terminal", Duration::from_secs(1))
        .await
        .unwrap();
    assert!(matches!(
        held,
        replicate_webhook::dedupe::Claim::Acquired(_)
    ));
    container
        .predict(
            "inflight-1",
            json!({"steps": 1}),
            &webhook,
            &["completed"],
            None,
        )
        .await;
    tokio::time::timeout(
        Duration::from_secs(30),
        ran(&seen, "on_succeeded", "inflight-1", 1),
    )
    .await
    .expect("coglet retried the 503");
    assert_eq!(runs(&seen, "on_succeeded", "inflight-1").len(), 1);
    assert!(!logs::text().contains(TOKEN), "the token was logged");
}

/// The real sender with the wrong token, and with none: refused with 401 (which coglet does
/// not retry), and no handler runs.
#[actix_rt::test]
async fn a_real_coglet_with_the_wrong_token_or_none_is_refused() {
    let Some(venv) = cog::venv() else { return };
    logs::captured();
    let seen = Seen::default();
    for (token, id, reason) in [
        (
            Some("not-the-token"),
            "wrong-1",
            "reason=\"bearer-token-mismatch\"",
        ),
        (None, "none-1", "reason=\"missing-header\""),
    ] {
        let server = TestServer::serve(config(&seen));
        let container = cog::Container::start(&venv, token);
        tokio::time::timeout(Duration::from_secs(90), container.ready())
            .await
            .expect("coglet ready");
        let before = logs::text().matches(reason).count();
        container
            .predict(
                id,
                json!({"steps": 1}),
                &server.url(PATH),
                &["completed"],
                None,
            )
            .await;
        tokio::time::timeout(Duration::from_secs(30), async {
            while logs::text().matches(reason).count() == before {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await
        .unwrap_or_else(|_| panic!("no refusal with {reason}: {}", logs::text()));
        assert!(runs(&seen, "on_succeeded", id).is_empty());
    }
}
