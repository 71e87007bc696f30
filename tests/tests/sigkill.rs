//! Durability under batching: a receiver killed with SIGKILL in the middle of a stream of
//! concurrent signed deliveries, then restarted on the same store (the SQLite file reopened, the
//! same PostgreSQL database), loses no acknowledgement and runs no acknowledged handler twice.
//!
//! Every delivery is re-sent after the restart (a fresh timestamp and signature, as Replicate's
//! retries) until it gets a 200. Each handler run prints `started <id>` to a pipe before it does
//! anything, so the kernel keeps the record of a run whatever happens to the process. Proved:
//! - a delivery answered 200 before the kill has its mark on disk: its re-send is answered as
//!   already handled (inline) or already stored (inbox), and inline it runs nothing again;
//! - a claim is on disk before its handler runs: inline, a handler started before the kill runs
//!   again only once its lease has expired (the re-send is first told 409), and only when its
//!   delivery was not acknowledged;
//! - no handler runs twice in one process, and every delivery is handled in the end.
//!
//! A handler cut short by the kill (or one that returned just before it, its done mark not yet
//! committed) runs again after the restart: that is the at-least-once promise, the same as in
//! `durability.rs` and `inbox_processes.rs`. In the inbox a 200 means "stored", so a stored job
//! killed mid-run runs again too.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use replicate_webhook::Secret;
use replicate_webhook::testkit::{Signed, TestDelivery, new_prediction_id};
use replicate_webhook_tests::inbox::{SECRET, fresh_database, id_of};
use replicate_webhook_tests::process::Process;
use replicate_webhook_tests::services;
use serde_json::json;

/// Deliveries in the stream, each of its own prediction.
const DELIVERIES: usize = 240;
/// Connections sending at once.
const SENDERS: usize = 24;
/// 200s seen before the kill: the stream is well under way, far from done.
const KILL_AFTER: usize = 60;
/// The claim lease (inline) and the job's visibility timeout (inbox).
const LEASE_MS: u64 = 2000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Inline,
    Inbox,
}

fn receiver(mode: Mode, dir: &std::path::Path, url: &str) -> Process {
    let lease = LEASE_MS.to_string();
    match mode {
        Mode::Inline => Process::start(
            env!("CARGO_BIN_EXE_slow_receiver"),
            dir,
            &[
                ("REPLICATE_WEBHOOK_SECRET", SECRET),
                ("REPLICATE_WEBHOOK_STORE", url),
                ("HANDLER_DELAY_MS", "20"),
                ("LEASE_MS", &lease),
            ],
        ),
        Mode::Inbox => Process::start(
            env!("CARGO_BIN_EXE_inbox_receiver"),
            dir,
            &[
                ("REPLICATE_WEBHOOK_SECRET", SECRET),
                ("REPLICATE_WEBHOOK_INBOX", url),
                ("HANDLER_DELAY_MS", "20"),
                ("VISIBILITY_MS", &lease),
            ],
        ),
    }
}

fn signed(d: &TestDelivery) -> Signed {
    d.sign(&Secret::parse(SECRET).unwrap())
}

async fn send(
    client: &reqwest::Client,
    url: &str,
    d: &TestDelivery,
) -> reqwest::Result<(u16, String)> {
    let d = signed(d);
    let mut req = client.post(url).body(d.body().to_vec());
    for (name, value) in d.headers() {
        req = req.header(name, value);
    }
    let resp = req.send().await?;
    let status = resp.status().as_u16();
    Ok((status, resp.text().await?))
}

/// How many times each id's handler started in `lines`; panics on an id started twice, since
/// no process may run one handler twice.
fn runs(lines: &[String], what: &str) -> BTreeMap<String, usize> {
    let mut runs = BTreeMap::<String, usize>::new();
    for line in lines {
        if let Some(id) = line.strip_prefix(what) {
            *runs.entry(id.to_owned()).or_default() += 1;
        }
    }
    let twice: Vec<_> = runs.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "run twice in one process: {twice:?}");
    runs
}

/// Streams every delivery at `first` from [`SENDERS`] connections and kills it with SIGKILL
/// once [`KILL_AFTER`] have been answered 200. Returns each delivery's answer, if one came.
async fn stream_then_kill(
    first: &mut Process,
    deliveries: &Arc<Vec<(String, TestDelivery)>>,
) -> Vec<Option<(u16, String)>> {
    let next = Arc::new(AtomicUsize::new(0));
    let ok = Arc::new(AtomicUsize::new(0));
    let answers = Arc::new(Mutex::new(vec![None; deliveries.len()]));
    let senders: Vec<_> = (0..SENDERS)
        .map(|_| {
            let (next, ok, answers) = (next.clone(), ok.clone(), answers.clone());
            let (deliveries, url) = (deliveries.clone(), first.url.clone());
            tokio::spawn(async move {
                let client = reqwest::Client::new();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some((_, d)) = deliveries.get(i) else {
                        return;
                    };
                    // After the kill every send fails: that sender is done.
                    let Ok(answer) = send(&client, &url, d).await else {
                        return;
                    };
                    assert_eq!(answer.0, 200, "before the kill: {answer:?}");
                    answers.lock().unwrap()[i] = Some(answer);
                    ok.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(30);
    while ok.load(Ordering::Relaxed) < KILL_AFTER {
        assert!(Instant::now() < deadline, "the stream never got going");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    first.child.kill().unwrap();
    first.child.wait().unwrap();
    for sender in senders {
        sender.await.unwrap();
    }
    answers.lock().unwrap().clone()
}

/// What the restarted receiver answered a re-sent delivery.
#[derive(Debug, Clone)]
struct Again {
    /// The 200's body.
    body: String,
    /// 409s before it.
    conflicts: usize,
    /// When it was first re-sent.
    first_sent: Instant,
}

/// Re-sends every delivery to `second` until each is answered 200.
async fn resend_until_handled(
    second: &Process,
    deliveries: &Arc<Vec<(String, TestDelivery)>>,
) -> Vec<Again> {
    let next = Arc::new(AtomicUsize::new(0));
    let unanswered = Again {
        body: String::new(),
        conflicts: 0,
        first_sent: Instant::now(),
    };
    let answers = Arc::new(Mutex::new(vec![unanswered; deliveries.len()]));
    let senders: Vec<_> = (0..SENDERS)
        .map(|_| {
            let (next, answers) = (next.clone(), answers.clone());
            let (deliveries, url) = (deliveries.clone(), second.url.clone());
            tokio::spawn(async move {
                let client = reqwest::Client::new();
                let deadline = Instant::now() + Duration::from_secs(30);
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some((id, d)) = deliveries.get(i) else {
                        return;
                    };
                    let (mut conflicts, first_sent) = (0, Instant::now());
                    loop {
                        let (status, body) = send(&client, &url, d).await.unwrap();
                        match status {
                            200 => {
                                answers.lock().unwrap()[i] = Again {
                                    body,
                                    conflicts,
                                    first_sent,
                                };
                                break;
                            }
                            409 => conflicts += 1,
                            other => panic!("{id} re-sent: {other} {body}"),
                        }
                        assert!(Instant::now() < deadline, "{id} never got its 200");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                }
            })
        })
        .collect();
    for sender in senders {
        sender.await.unwrap();
    }
    answers.lock().unwrap().clone()
}

/// Every line `process` prints until `id`s are all `finished` here or in `before`, then until
/// `quiet` passes without a line.
fn lines_until_finished(
    process: &Process,
    ids: &[String],
    before: &BTreeMap<String, usize>,
    quiet: Duration,
) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut lines = Vec::new();
    let mut finished = before.clone();
    while !ids.iter().all(|id| finished.contains_key(id)) {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = process
            .stdout
            .recv_timeout(left)
            .unwrap_or_else(|e| panic!("{} of {} handled: {e}", finished.len(), ids.len()));
        if let Some(id) = line.strip_prefix("finished ") {
            *finished.entry(id.to_owned()).or_default() += 1;
        }
        lines.push(line);
    }
    lines.extend(process.drain(quiet));
    lines
}

async fn killed_mid_stream_then_restarted(mode: Mode, url: &str) {
    let dir = tempfile::tempdir().unwrap();
    let deliveries: Arc<Vec<(String, TestDelivery)>> = Arc::new(
        (0..DELIVERIES)
            .map(|_| {
                let d = TestDelivery::succeeded("acme/sigkill", json!("slow"))
                    .id(format!("msg_{}", new_prediction_id()));
                (id_of(&d), d)
            })
            .collect(),
    );
    let ids: Vec<String> = deliveries.iter().map(|(id, _)| id.clone()).collect();

    let mut first = receiver(mode, dir.path(), url);
    let before = stream_then_kill(&mut first, &deliveries).await;
    let killed_at = Instant::now();
    let first_lines = first.drain(Duration::from_millis(100));
    let started_first = runs(&first_lines, "started ");
    let finished_first = runs(&first_lines, "finished ");
    drop(first);

    let second = receiver(mode, dir.path(), url);
    let again = resend_until_handled(&second, &deliveries).await;
    // Inline, every handler ran by the time its re-send got its 200; in the inbox the workers
    // run them after, and waiting past the job lease catches a job run again after it.
    let quiet = match mode {
        Mode::Inline => Duration::from_millis(300),
        Mode::Inbox => Duration::from_millis(LEASE_MS + 500),
    };
    let second_lines = lines_until_finished(&second, &ids, &finished_first, quiet);
    let started_second = runs(&second_lines, "started ");

    let acknowledged: Vec<usize> = (0..DELIVERIES).filter(|&i| before[i].is_some()).collect();
    let mut run_again = 0;
    for (i, (id, _)) in deliveries.iter().enumerate() {
        let Again {
            body,
            conflicts,
            first_sent,
        } = &again[i];
        if before[i].is_some() {
            // Answered 200 before the kill: its mark was on disk.
            assert!(
                body.contains("already"),
                "{id} was acknowledged before the kill, yet its re-send got {body:?}"
            );
            if mode == Mode::Inline {
                assert!(
                    !started_second.contains_key(id),
                    "{id} was handled and acknowledged before the kill, yet ran again"
                );
            }
        }
        if started_first.contains_key(id) && started_second.contains_key(id) {
            run_again += 1;
            // Its claim (or job lease) was on disk when it started: nothing ran it again until
            // the lease expired.
            assert!(
                *conflicts > 0
                    || mode == Mode::Inbox
                    || first_sent.duration_since(killed_at) >= Duration::from_millis(LEASE_MS),
                "{id} started before the kill and ran again at once after it"
            );
            assert!(
                mode == Mode::Inbox || before[i].is_none(),
                "{id} was acknowledged, yet ran again"
            );
        }
        assert!(
            started_first.contains_key(id) || started_second.contains_key(id),
            "{id} never ran"
        );
    }
    eprintln!(
        "{mode:?} on {}: {DELIVERIES} deliveries from {SENDERS} connections; killed after {} \
         200s ({} handlers started, {} finished); after the restart every re-send got a 200, \
         {} handlers ran there, {run_again} of them started before the kill without their done \
         mark committed, run again once their lease expired",
        url.split(':').next().unwrap_or_default(),
        acknowledged.len(),
        started_first.len(),
        finished_first.len(),
        started_second.len(),
    );
}

fn sqlite_url(dir: &tempfile::TempDir) -> String {
    format!("sqlite://{}", dir.path().join("store.db").display())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_inline_sigkill_mid_stream_keeps_every_acknowledgement() {
    let dir = tempfile::tempdir().unwrap();
    killed_mid_stream_then_restarted(Mode::Inline, &sqlite_url(&dir)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_inbox_sigkill_mid_stream_keeps_every_acknowledgement() {
    let dir = tempfile::tempdir().unwrap();
    killed_mid_stream_then_restarted(Mode::Inbox, &sqlite_url(&dir)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_inline_sigkill_mid_stream_keeps_every_acknowledgement() {
    let Some(url) = services::database_url() else {
        return;
    };
    killed_mid_stream_then_restarted(Mode::Inline, &fresh_database(&url).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_inbox_sigkill_mid_stream_keeps_every_acknowledgement() {
    let Some(url) = services::database_url() else {
        return;
    };
    killed_mid_stream_then_restarted(Mode::Inbox, &fresh_database(&url).await).await;
}
