//! Inbox mode across processes: a receiver killed with SIGKILL mid-handler (and right after
//! acknowledging) then restarted completes every job exactly once; two instances on one
//! PostgreSQL database run each of 2,000 jobs once.

use std::collections::BTreeMap;
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

use replicate_webhook::testkit::{Signed, TestDelivery};
use replicate_webhook_tests::inbox::{SECRET, fresh_database, id_of, secret};
use replicate_webhook_tests::process::{Process, wait_for};
use replicate_webhook_tests::{post_response, services};
use serde_json::json;

fn receiver(dir: &std::path::Path, inbox: &str, delay_ms: &str) -> Process {
    Process::start(
        env!("CARGO_BIN_EXE_inbox_receiver"),
        dir,
        &[
            ("REPLICATE_WEBHOOK_SECRET", SECRET),
            ("REPLICATE_WEBHOOK_INBOX", inbox),
            ("HANDLER_DELAY_MS", delay_ms),
            ("VISIBILITY_MS", "1000"),
        ],
    )
}

/// `n` deliveries whose handler takes `HANDLER_DELAY_MS` when `slow`, no time otherwise.
fn deliveries(n: usize, model: &str, slow: bool) -> Vec<(String, Signed)> {
    (0..n)
        .map(|_| {
            let d = TestDelivery::succeeded(model, json!(if slow { "slow" } else { "fast" }));
            (id_of(&d), d.sign(&secret()))
        })
        .collect()
}

async fn deliver_all(base: &str, deliveries: &[(String, Signed)]) {
    for (_, d) in deliveries {
        let resp = post_response(base, d).await;
        assert_eq!(resp.status().as_u16(), 200, "{:?}", resp.text().await);
    }
}

/// Reads `<what> <id>` lines from `stdout` into `counts` until every id in `ids` was seen.
fn until_all(stdout: &Receiver<String>, ids: &[String], counts: &mut BTreeMap<String, usize>) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !ids.iter().all(|id| counts.contains_key(id)) {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = stdout
            .recv_timeout(left)
            .unwrap_or_else(|e| panic!("{} of {} finished: {e}", counts.len(), ids.len()));
        if let Some(id) = line.strip_prefix("finished ") {
            *counts.entry(id.to_owned()).or_default() += 1;
        }
    }
}

/// Counts `finished` lines printed until `quiet` passes without one.
fn count_rest(process: &Process, counts: &mut BTreeMap<String, usize>) {
    for line in process.drain(Duration::from_millis(500)) {
        if let Some(id) = line.strip_prefix("finished ") {
            *counts.entry(id.to_owned()).or_default() += 1;
        }
    }
}

async fn killed_mid_handler_then_restarted(inbox: &str) {
    let dir = tempfile::tempdir().unwrap();
    let early = deliveries(10, "acme/crash", false);
    let late = deliveries(30, "acme/crash", true);

    // Long enough that no handler of the late batch can finish before the kill: one that
    // printed `finished` but was killed before recording it would rightly run again.
    let first = receiver(dir.path(), inbox, "10000");
    deliver_all(&first.base, &early).await;
    let early_ids: Vec<String> = early.iter().map(|(id, _)| id.clone()).collect();
    let mut finished = BTreeMap::new();
    until_all(&first.stdout, &early_ids, &mut finished);
    // Acknowledged, then killed right away: the handlers of the late batch are mid-run.
    deliver_all(&first.base, &late).await;
    wait_for(&first.stdout, &format!("started {}", late[0].0));
    let killed_at = Instant::now();
    first.kill();

    let second = receiver(dir.path(), inbox, "100");
    let all: Vec<String> = early
        .iter()
        .chain(&late)
        .map(|(id, _)| id.clone())
        .collect();
    until_all(&second.stdout, &all, &mut finished);
    let recovered = killed_at.elapsed();
    count_rest(&second, &mut finished);
    let twice: Vec<_> = finished.iter().filter(|(_, n)| **n != 1).collect();
    eprintln!(
        "{}: {} jobs, {} finished before the kill, {} killed mid-handler and run again after \
         the restart; all done {recovered:?} after the kill; completions per job: {}",
        inbox.split(':').next().unwrap_or_default(),
        all.len(),
        early.len(),
        late.len(),
        if twice.is_empty() { "1 each" } else { "NOT 1" }
    );
    assert!(
        twice.is_empty(),
        "jobs not completed exactly once: {twice:?}"
    );
    assert_eq!(finished.len(), all.len());
    // Handled deliveries stay handled after the restart.
    let (status, body) = replicate_webhook_tests::post(&second.base, &late[0].1).await;
    assert_eq!(
        (status, body.as_str()),
        (200, "prediction already stored or handled for this status")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_sigkill_mid_handler_then_restart_completes_every_job_once() {
    let dir = tempfile::tempdir().unwrap();
    let inbox = format!("sqlite://{}", dir.path().join("inbox.db").display());
    killed_mid_handler_then_restarted(&inbox).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_sigkill_mid_handler_then_restart_completes_every_job_once() {
    let Some(url) = services::database_url() else {
        return;
    };
    killed_mid_handler_then_restarted(&fresh_database(&url).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_on_one_postgres_run_each_of_2000_jobs_once() {
    const N: usize = 2000;
    let Some(url) = services::database_url() else {
        return;
    };
    let inbox = fresh_database(&url).await;
    let dir = tempfile::tempdir().unwrap();
    let a = receiver(dir.path(), &inbox, "0");
    let b = receiver(dir.path(), &inbox, "0");
    let all = deliveries(N, "acme/instances", false);
    let ids: Vec<String> = all.iter().map(|(id, _)| id.clone()).collect();
    let started = Instant::now();
    // Half the deliveries to each instance, four at a time, as a load balancer would.
    let mut lanes = tokio::task::JoinSet::new();
    let all = std::sync::Arc::new(all);
    for lane in 0..4 {
        let all = all.clone();
        let base = if lane % 2 == 0 {
            a.base.clone()
        } else {
            b.base.clone()
        };
        lanes.spawn(async move {
            let mine: Vec<_> = all.iter().skip(lane).step_by(4).cloned().collect();
            deliver_all(&base, &mine).await;
        });
    }
    while let Some(lane) = lanes.join_next().await {
        lane.unwrap();
    }
    // Both outputs, read until every id finished somewhere.
    let (mut by_a, mut by_b) = (BTreeMap::new(), BTreeMap::new());
    let deadline = Instant::now() + Duration::from_mins(1);
    while by_a.len() + by_b.len() < N {
        assert!(
            Instant::now() < deadline,
            "{} + {} of {N} finished",
            by_a.len(),
            by_b.len()
        );
        for (process, counts) in [(&a, &mut by_a), (&b, &mut by_b)] {
            while let Ok(line) = process.stdout.recv_timeout(Duration::from_millis(10)) {
                if let Some(id) = line.strip_prefix("finished ") {
                    *counts.entry(id.to_owned()).or_default() += 1;
                }
            }
        }
    }
    count_rest(&a, &mut by_a);
    count_rest(&b, &mut by_b);
    let mut runs: BTreeMap<&String, usize> = BTreeMap::new();
    for (id, n) in by_a.iter().chain(&by_b) {
        *runs.entry(id).or_default() += n;
    }
    eprintln!(
        "postgres: {N} jobs stored through two instances, run {} times in all ({} by one, {} by \
         the other) in {:?}",
        runs.values().sum::<usize>(),
        by_a.values().sum::<usize>(),
        by_b.values().sum::<usize>(),
        started.elapsed()
    );
    assert_eq!(runs.len(), N);
    assert!(
        ids.iter().all(|id| runs.get(id) == Some(&1)),
        "a job ran twice"
    );
    assert!(
        !by_a.is_empty() && !by_b.is_empty(),
        "one instance ran nothing"
    );
}
