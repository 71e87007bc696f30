//! Clients that do not prove they are Replicate, in numbers: floods of unsigned requests, bodies
//! that stall, large unverified bodies, and the log lines all of that may write.
//!
//! The tests here run one at a time (`SERIAL`): the log test reads what every receiver in the
//! process logs, and timing bounds hold better without a neighbour's flood.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use replicate_webhook::testkit::{Signed, TestDelivery, new_prediction_id, sample_prediction};
use replicate_webhook::{HandlerKind, Prediction, Secret, WebhookConfig};
use replicate_webhook_tests::raw::{self, RawAnswer, RawRequest};
use replicate_webhook_tests::{TestServer, counting, only, within};
use serde_json::json;

const MODEL: &str = "acme/hostile";

static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn config(secret: &Secret, runs: &Arc<AtomicUsize>) -> WebhookConfig {
    only(
        secret,
        counting::<Prediction>(MODEL, &[HandlerKind::Succeeded], runs),
    )
}

fn signed(secret: &Secret) -> Signed {
    let body = sample_prediction(&new_prediction_id(), MODEL, "succeeded", json!("x"));
    TestDelivery::new(body.to_string()).sign(secret)
}

/// A request with a fresh, well-formed `webhook-*` header set whose MAC is wrong: it passes every
/// check made before the body, so its body is read. `pad` bytes of padding make it large.
fn unverified(pad: usize) -> RawRequest {
    let mut body = sample_prediction(&new_prediction_id(), MODEL, "succeeded", json!("x"));
    body["pad"] = json!("a".repeat(pad));
    RawRequest::post(&TestDelivery::new(body.to_string()).sign_with_wrong_key())
}

/// The value of header `name` in a raw answer.
fn header<'a>(answer: &'a RawAnswer, name: &str) -> Option<&'a str> {
    let head = answer.text.split("\r\n\r\n").next()?;
    head.lines().find_map(|line| {
        let (n, v) = line.split_once(':')?;
        n.eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

#[actix_web::test]
async fn signed_deliveries_are_answered_promptly_through_floods_and_stalled_bodies() {
    let _serial = SERIAL.lock().await;
    let secret = Secret::generate();
    let runs = Arc::new(AtomicUsize::new(0));
    let idle = Duration::from_millis(300);
    let srv = TestServer::serve(
        config(&secret, &runs)
            .idle_timeout(idle)
            .read_timeout(Duration::from_secs(10)),
    );

    // 200 connections that send their head and one body byte, then nothing.
    let mut stalled = Vec::new();
    for _ in 0..200 {
        let (base, request) = (srv.base.clone(), unverified(0));
        stalled.push(actix_web::rt::spawn(async move {
            let sent = Instant::now();
            let answer = raw::stall(&base, &request, 1, Duration::from_secs(10)).await;
            (answer.status, sent.elapsed())
        }));
    }
    // 1,000 unsigned requests from 10 clients at once.
    let mut flood = Vec::new();
    for _ in 0..10 {
        let url = srv.url("/webhooks/replicate");
        flood.push(actix_web::rt::spawn(async move {
            let client = reqwest::Client::new();
            let mut statuses = Vec::new();
            for _ in 0..100 {
                let resp = client.post(&url).body("{}").send().await.expect("answered");
                statuses.push(resp.status().as_u16());
            }
            statuses
        }));
    }
    // Meanwhile, Replicate's deliveries: each answered as usual, promptly.
    let mut slowest = Duration::ZERO;
    for n in 0..20 {
        let started = Instant::now();
        assert_eq!(
            srv.deliver(&signed(&secret)).await,
            (200, "done".into()),
            "#{n}"
        );
        slowest = slowest.max(started.elapsed());
    }
    assert!(
        slowest < Duration::from_secs(2),
        "a signed delivery took {slowest:?}"
    );
    assert_eq!(runs.load(Ordering::SeqCst), 20);

    for client in flood {
        let statuses = within(client).await.unwrap();
        assert!(statuses.iter().all(|s| *s == 401), "{statuses:?}");
    }
    for connection in stalled {
        let (status, took) = within(connection).await.unwrap();
        assert_eq!(status, Some(408));
        assert!(
            took >= idle,
            "cut off after {took:?}, before the idle timeout"
        );
    }
    assert_eq!(runs.load(Ordering::SeqCst), 20);
}

#[actix_web::test]
async fn large_unverified_bodies_get_503_while_the_budget_is_spent() {
    let _serial = SERIAL.lock().await;
    let secret = Secret::generate();
    let runs = Arc::new(AtomicUsize::new(0));
    let budget = 256 * 1024;
    let srv = TestServer::serve(
        config(&secret, &runs)
            .unverified_limit(budget)
            .idle_timeout(Duration::from_millis(1500)),
    );

    // One client sends all but the last byte of a body as large as the whole budget, then
    // stalls: it holds (nearly) all of it. Declaring a length alone holds nothing (see
    // `idle_declarations_hold_no_budget`): the budget is charged by bytes received.
    let holder = unverified(budget - 1024);
    let holder_len = holder.body_len();
    assert!(holder_len <= budget && holder_len > budget - 2048);
    let held = {
        let base = srv.base.clone();
        actix_web::rt::spawn(async move {
            raw::stall(&base, &holder, holder_len - 1, Duration::from_secs(10)).await
        })
    };
    // Once the holder's head is read (no event says so: polled, bounded), other large
    // unverified bodies are refused with 503 rather than buffered.
    let large = unverified(100 * 1024);
    let mut answers = Vec::new();
    for _ in 0..100 {
        let answer = raw::exchange(&srv.base, &large.to_bytes(), false).await;
        let status = answer.status;
        answers.push(answer);
        if status == Some(503) {
            break;
        }
        assert_eq!(status, Some(401), "before the budget is held");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let refused = answers.last().unwrap();
    assert_eq!(refused.status, Some(503), "the budget was never spent");
    assert_eq!(
        header(refused, "retry-after"),
        Some("1"),
        "{}",
        refused.text
    );

    // Several at once: all refused, and so is a small signed one while nothing is left.
    let mut concurrent = Vec::new();
    for _ in 0..5 {
        let (base, bytes) = (srv.base.clone(), large.to_bytes());
        concurrent.push(actix_web::rt::spawn(async move {
            raw::exchange(&base, &bytes, false).await
        }));
    }
    for answer in concurrent {
        let answer = within(answer).await.unwrap();
        assert_eq!(answer.status, Some(503));
        assert!(header(&answer, "retry-after").is_some());
    }
    let small = signed(&secret);
    let busy = srv.deliver_response(&small).await;
    assert_eq!(busy.status().as_u16(), 503);
    assert_eq!(replicate_webhook_tests::retry_after(&busy), 1);
    assert_eq!(runs.load(Ordering::SeqCst), 0);

    // The holder is cut off (408); its budget returns and the retry of the signed one succeeds.
    assert_eq!(within(held).await.unwrap().status, Some(408));
    assert_eq!(srv.deliver(&small).await, (200, "done".into()));
    assert_eq!(runs.load(Ordering::SeqCst), 1);
}

#[actix_web::test]
async fn idle_declarations_hold_no_budget() {
    let _serial = SERIAL.lock().await;
    let secret = Secret::generate();
    let runs = Arc::new(AtomicUsize::new(0));
    let budget = 256 * 1024;
    let srv = TestServer::serve(
        config(&secret, &runs)
            .body_limit(budget / 4)
            .unverified_limit(budget)
            .idle_timeout(Duration::from_secs(3))
            .read_timeout(Duration::from_secs(10)),
    );

    // Eight connections each declare a body of a quarter of the budget (twice the budget in all)
    // and send one byte of it: on a budget reserved by declaration they would hold it all.
    let declared = (budget / 4).to_string();
    let mut idle = Vec::new();
    for _ in 0..8 {
        let (base, request) = (
            srv.base.clone(),
            unverified(0).content_length(declared.clone()),
        );
        idle.push(actix_web::rt::spawn(async move {
            raw::stall(&base, &request, 1, Duration::from_secs(10)).await
        }));
    }
    // Signed deliveries, small and large, all find room meanwhile. The receiver has read every
    // idle head once the eighth connection is answered (408) at the end: until then each
    // delivery below runs while they hold whatever they were charged.
    for n in 0..10 {
        let mut body = sample_prediction(&new_prediction_id(), MODEL, "succeeded", json!("x"));
        body["pad"] = json!("a".repeat(n * 4096));
        let delivery = TestDelivery::new(body.to_string()).sign(&secret);
        assert_eq!(srv.deliver(&delivery).await, (200, "done".into()), "#{n}");
    }
    assert_eq!(runs.load(Ordering::SeqCst), 10);
    for connection in idle {
        assert_eq!(within(connection).await.unwrap().status, Some(408));
    }
}

/// The refusal lines logged since the buffer was last cleared.
fn refusal_lines(log: &Mutex<Vec<u8>>) -> Vec<String> {
    String::from_utf8_lossy(&log.lock().unwrap())
        .lines()
        .filter(|line| line.contains("webhook request refused"))
        .map(str::to_owned)
        .collect()
}

fn field(line: &str, name: &str) -> u64 {
    let at = line
        .find(&format!("{name}="))
        .unwrap_or_else(|| panic!("no {name} in {line}"));
    line[at + name.len() + 1..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect::<String>()
        .parse()
        .unwrap_or_else(|e| panic!("{name} in {line}: {e}"))
}

#[actix_web::test]
async fn a_thousand_refusals_write_a_handful_of_lines_that_count_them_all() {
    let _serial = SERIAL.lock().await;
    let log = replicate_webhook_tests::logs::captured();
    log.lock().unwrap().clear();
    let runs = Arc::new(AtomicUsize::new(0));
    let srv = TestServer::serve(config(&Secret::generate(), &runs));
    let client = reqwest::Client::new();
    let url = srv.url("/webhooks/replicate");
    let refuse = || async {
        let resp = client.post(&url).body("{}").send().await.expect("answered");
        assert_eq!(resp.status().as_u16(), 401);
    };
    let started = Instant::now();
    for _ in 0..1000 {
        refuse().await;
    }
    let took = started.elapsed();
    let lines = refusal_lines(log);
    // One line a second at most, and the first refusal writes one.
    let bound = usize::try_from(took.as_secs()).unwrap() + 2;
    assert!(
        !lines.is_empty() && lines.len() <= bound.min(5),
        "{} lines in {took:?}:\n{}",
        lines.len(),
        lines.join("\n")
    );

    // A refusal after the interval writes a line carrying every refusal since the last one.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    refuse().await;
    let lines = refusal_lines(log);
    let last = lines.last().unwrap();
    assert_eq!(field(last, "refused_total"), 1001, "{last}");
    let counted: u64 = lines
        .iter()
        .map(|line| field(line, "refused_since_last_line"))
        .sum();
    assert_eq!(counted, 1001, "{}", lines.join("\n"));
    assert_eq!(runs.load(Ordering::SeqCst), 0);
}
