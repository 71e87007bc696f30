//! Inbox mode acknowledges in milliseconds whatever the handler costs: 1,000 deliveries whose
//! handler sleeps 2 s, on real SQLite and then PostgreSQL. One test in its own binary, so no
//! other test competes for the two cores while it measures.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use replicate_webhook::inbox::{Filter, Inbox, JobState};
use replicate_webhook::testkit::{Signed, TestDelivery};
use replicate_webhook::{HandlerError, HandlerKind, Module, Prediction};
use replicate_webhook_tests::inbox::{Db, fast_options, model, secret, send, serve};
use serde_json::json;
use tokio::sync::Semaphore;

const N: usize = 1000;
/// Concurrent connections, as Replicate sends deliveries of many predictions at once.
const LANES: usize = 4;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss
    )]
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i]
}

/// Sends `N` deliveries over `LANES` connections; every one must be acknowledged with 200,
/// and every handler then run once. Returns (p50, p99).
async fn acks_slow_handlers_at_once(db: &Db) -> (Duration, Duration) {
    let model = model("latency");
    let done = Arc::new(Semaphore::new(0));
    let finished = done.clone();
    let runs = Arc::new(AtomicUsize::new(0));
    let counted = runs.clone();
    let module =
        Module::new(&model)
            .concurrency(N + 1)
            .on(HandlerKind::Succeeded, move |_: Prediction| {
                let (finished, counted) = (finished.clone(), counted.clone());
                async move {
                    counted.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_secs(2)).await;
                    finished.add_permits(1);
                    Ok::<(), HandlerError>(())
                }
            });
    let server = serve(db.config(module, fast_options()));
    let deliveries: Arc<Vec<Signed>> = Arc::new(
        (0..N)
            .map(|_| TestDelivery::succeeded(&model, json!("out")).sign(&secret()))
            .collect(),
    );
    let client = reqwest::Client::new();
    // Warm the connection pools (HTTP and database), as a running receiver has them.
    let warm = TestDelivery::succeeded(&model, json!("warm")).sign(&secret());
    assert_eq!(send(&client, &server, &warm).await.0, 200);

    let started = Instant::now();
    let mut lanes = tokio::task::JoinSet::new();
    for lane in 0..LANES {
        let (client, deliveries, base) = (client.clone(), deliveries.clone(), server.base.clone());
        lanes.spawn_local(async move {
            let mut took = Vec::new();
            for d in deliveries.iter().skip(lane).step_by(LANES) {
                let mut req = client
                    .post(format!("{base}{}", d.path()))
                    .header("content-type", "application/json")
                    .body(d.body().to_vec());
                for (name, value) in d.headers() {
                    req = req.header(name, value);
                }
                let at = Instant::now();
                let resp = req.send().await.unwrap();
                took.push(at.elapsed());
                assert_eq!(resp.status().as_u16(), 200, "{:?}", resp.text().await);
            }
            took
        });
    }
    let mut took = Vec::new();
    while let Some(lane) = lanes.join_next().await {
        took.extend(lane.unwrap());
    }
    let sent = started.elapsed();
    took.sort();
    let (p50, p99) = (percentile(&took, 0.50), percentile(&took, 0.99));
    let all = tokio::time::timeout(
        Duration::from_mins(1),
        done.acquire_many(u32::try_from(N + 1).unwrap()),
    )
    .await
    .expect("not every handler ran within 60 s");
    drop(all);
    // Exactly once each (the warm-up delivery included): every job done, none run twice.
    let done_jobs = Inbox::open_url(&db.url())
        .unwrap()
        .list(&Filter {
            state: Some(JobState::Done),
            model: Some(model.clone()),
            limit: N + 10,
            ..Filter::default()
        })
        .await
        .unwrap();
    assert_eq!(done_jobs.len(), N + 1);
    assert!(done_jobs.iter().all(|j| j.attempts == 1));
    assert_eq!(runs.load(Ordering::SeqCst), N + 1);
    eprintln!(
        "{}: {N} deliveries with a 2 s handler acknowledged in {sent:?} over {LANES} \
         connections: p50 {p50:?}, p99 {p99:?}, max {:?}; every handler done {:?} after the first",
        db.url().split(':').next().unwrap_or_default(),
        took[took.len() - 1],
        started.elapsed()
    );
    (p50, p99)
}

/// The behaviour, not the speed target: an acknowledgement never waits for the 2 s handler. The
/// p50/p99 figures it prints are what docs/inbox.md reports against the 20 ms target; a timed
/// assertion at that bound would fail on a loaded machine for reasons that have nothing to do
/// with the code.
#[actix_rt::test]
async fn inbox_acknowledges_1000_slow_deliveries_before_their_handlers_run() {
    let mut results = vec![("sqlite", acks_slow_handlers_at_once(&Db::sqlite()).await)];
    if let Some(db) = Db::postgres() {
        results.push(("postgres", acks_slow_handlers_at_once(&db).await));
    }
    for (engine, (_, p99)) in results {
        assert!(
            p99 < Duration::from_secs(1),
            "{engine}: p99 {p99:?}: acknowledgements wait for the handler"
        );
    }
}
