//! One conformance suite for every dedupe store: memory, SQLite, Redis and PostgreSQL, with the
//! same cases, and the dedupe protocol ([`Gate`]) over each. Redis and PostgreSQL are real
//! servers (`scripts/with-services`); without them those cases skip and say so.

#![allow(clippy::many_single_char_names)] // `h.a` and `h.b` are the two instances, `k` the key

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use replicate_webhook::Status;
use replicate_webhook::dedupe::{
    Backoff, Claim, DedupeStore, MemoryStore, PostgresStore, ProgressMarkers, RedisStore,
    SqliteStore, WatchList, WatchedPrediction,
};
use replicate_webhook::testkit::protocol::{Admission, Delivery, Gate, Policy, Progress, now_ms};
use replicate_webhook_tests::services;

const LEASE: Duration = Duration::from_secs(30);
const TTL: Duration = Duration::from_mins(1);
/// Short enough to wait out, long enough that the next call sees it in force.
const SHORT: Duration = Duration::from_millis(300);

/// Two handles on one store, as two instances of a receiver would have.
struct Handles {
    a: Arc<dyn DedupeStore>,
    b: Arc<dyn DedupeStore>,
    /// Keys of this test run, so runs sharing a server never meet.
    ns: String,
    _dir: Option<tempfile::TempDir>,
}

impl Handles {
    fn key(&self, name: &str) -> String {
        format!("{}{name}", self.ns)
    }

    /// The two handles' progress markers: every built-in store keeps them.
    fn markers(&self) -> Both<dyn ProgressMarkers> {
        let of =
            |s: &Arc<dyn DedupeStore>| s.clone().markers().expect("a built-in store keeps markers");
        Both {
            a: of(&self.a),
            b: of(&self.b),
        }
    }

    /// The two handles' watch lists: every built-in store keeps one.
    fn lists(&self) -> Both<dyn WatchList> {
        let of = |s: &Arc<dyn DedupeStore>| {
            s.clone()
                .watch_list()
                .expect("a built-in store keeps a watch list")
        };
        Both {
            a: of(&self.a),
            b: of(&self.b),
        }
    }
}

/// One part of a store, through each of the two handles.
struct Both<T: ?Sized> {
    a: Arc<T>,
    b: Arc<T>,
}

async fn open(kind: &str) -> Option<Handles> {
    let ns = services::unique(kind);
    let (a, b, dir): (Arc<dyn DedupeStore>, Arc<dyn DedupeStore>, _) = match kind {
        "memory" => {
            let store: Arc<dyn DedupeStore> = Arc::new(MemoryStore::new());
            (store.clone(), store, None)
        }
        "sqlite" => {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("dedupe.db");
            (
                Arc::new(SqliteStore::open(&path).unwrap()),
                Arc::new(SqliteStore::open(&path).unwrap()),
                Some(dir),
            )
        }
        "redis" => {
            let url = services::redis_url()?;
            (
                Arc::new(RedisStore::new(&url).unwrap()),
                Arc::new(RedisStore::new(&url).unwrap()),
                None,
            )
        }
        "postgres" => {
            let url = services::database_url()?;
            (
                Arc::new(PostgresStore::connect(&url).await.unwrap()),
                Arc::new(PostgresStore::connect(&url).await.unwrap()),
                None,
            )
        }
        other => unreachable!("{other}"),
    };
    Some(Handles {
        a,
        b,
        ns,
        _dir: dir,
    })
}

/// Polls `check` until it holds, failing after `deadline`: for expiry, which has no event.
async fn eventually<F, Fut>(what: &str, deadline: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let start = Instant::now();
    while !check().await {
        assert!(
            start.elapsed() < deadline,
            "{what}: not within {deadline:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn claim_then_duplicates(h: Handles) {
    let k = h.key("k");
    let Claim::Acquired(token) = h.a.claim(&k, LEASE).await.unwrap() else {
        panic!("first claim")
    };
    match h.b.claim(&k, LEASE).await.unwrap() {
        Claim::InFlight { retry_after } => {
            assert!(
                retry_after <= LEASE && retry_after > LEASE / 2,
                "{retry_after:?}"
            );
        }
        other => panic!("duplicate while in flight: {other:?}"),
    }
    assert!(!h.b.is_done(&k).await.unwrap());
    h.a.complete(&k, &token, TTL).await.unwrap();
    assert_eq!(h.b.claim(&k, LEASE).await.unwrap(), Claim::Done);
    assert!(h.b.is_done(&k).await.unwrap());
}

async fn release_then_reclaim(h: Handles) {
    let k = h.key("k");
    let Claim::Acquired(token) = h.a.claim(&k, LEASE).await.unwrap() else {
        panic!("first claim")
    };
    h.a.release(&k, &token).await.unwrap();
    let Claim::Acquired(again) = h.b.claim(&k, LEASE).await.unwrap() else {
        panic!("reclaim after release")
    };
    assert_ne!(again, token);
}

async fn stale_token_is_a_no_op_after_lease_takeover(h: Handles) {
    let k = h.key("k");
    let Claim::Acquired(expired) = h.a.claim(&k, SHORT).await.unwrap() else {
        panic!("first claim")
    };
    let start = Instant::now();
    let second = loop {
        if let Claim::Acquired(t) = h.b.claim(&k, LEASE).await.unwrap() {
            break t;
        }
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "no takeover after the lease"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    // The first worker's real token, whose lease expired, neither releases nor completes.
    h.a.release(&k, &expired).await.unwrap();
    h.a.complete(&k, &expired, TTL).await.unwrap();
    assert!(matches!(
        h.a.claim(&k, LEASE).await.unwrap(),
        Claim::InFlight { .. }
    ));
    assert!(!h.a.is_done(&k).await.unwrap());
    h.b.complete(&k, &second, TTL).await.unwrap();
    assert!(h.a.is_done(&k).await.unwrap());
}

async fn done_keys_expire(h: Handles) {
    let k = h.key("k");
    h.a.mark_done(&k, SHORT).await.unwrap();
    assert!(h.b.is_done(&k).await.unwrap());
    eventually("done marker expiry", Duration::from_secs(5), || async {
        !h.b.is_done(&k).await.unwrap()
    })
    .await;
    assert!(matches!(
        h.b.claim(&k, LEASE).await.unwrap(),
        Claim::Acquired(_)
    ));
    let k2 = h.key("completed");
    let Claim::Acquired(t) = h.a.claim(&k2, LEASE).await.unwrap() else {
        panic!("fresh key")
    };
    h.a.complete(&k2, &t, SHORT).await.unwrap();
    eventually("completed key expiry", Duration::from_secs(5), || async {
        matches!(h.b.claim(&k2, LEASE).await.unwrap(), Claim::Acquired(_))
    })
    .await;
}

async fn one_of_64_concurrent_claims_wins(h: Handles) {
    let k = Arc::new(h.key("contended"));
    let barrier = Arc::new(tokio::sync::Barrier::new(64));
    let tasks: Vec<_> = (0..64)
        .map(|i| {
            let store = if i % 2 == 0 { h.a.clone() } else { h.b.clone() };
            let (k, barrier) = (k.clone(), barrier.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                store.claim(&k, LEASE).await.unwrap()
            })
        })
        .collect();
    let mut winners = 0;
    for task in tasks {
        match task.await.unwrap() {
            Claim::Acquired(_) => winners += 1,
            Claim::InFlight { .. } => {}
            Claim::Done => panic!("nothing completed the key"),
        }
    }
    assert_eq!(winners, 1);
}

async fn markers_are_shared_between_handles(h: Handles) {
    let m = h.markers();
    let k = h.key("marker");
    assert_eq!(m.a.swap_marker(&k, 1, TTL).await.unwrap(), None);
    assert_eq!(m.b.swap_marker(&k, 2, TTL).await.unwrap(), Some(1));
    assert_eq!(m.a.swap_marker(&k, u64::MAX, TTL).await.unwrap(), Some(2));
    // Undo of the last swap puts the one before back.
    m.b.restore_marker(&k, u64::MAX, Some(2), TTL)
        .await
        .unwrap();
    assert_eq!(m.a.swap_marker(&k, 3, TTL).await.unwrap(), Some(2));
    // An undo whose marker was superseded changes nothing.
    m.b.restore_marker(&k, 2, Some(1), TTL).await.unwrap();
    assert_eq!(m.a.swap_marker(&k, 3, TTL).await.unwrap(), Some(3));
    m.b.restore_marker(&k, 3, None, TTL).await.unwrap();
    assert_eq!(m.a.swap_marker(&k, 4, SHORT).await.unwrap(), None);
    // Reading a marker renews it, so expiry is waited out rather than polled.
    tokio::time::sleep(SHORT * 2).await;
    assert_eq!(
        m.b.swap_marker(&k, 5, TTL).await.unwrap(),
        None,
        "marker expired"
    );
}

async fn watched_predictions_are_taken_once_then_backed_off(h: Handles) {
    let w = h.lists();
    let retry = Backoff {
        base_ms: 1_000,
        cap_ms: 3_000,
    };
    let now = now_ms();
    let (due, later, gone) = (h.key("due"), h.key("later"), h.key("gone"));
    w.a.track(&due, now - 10, TTL).await.unwrap();
    w.a.track(&later, now + 60_000, TTL).await.unwrap();
    w.a.track(&gone, now - 5, TTL).await.unwrap();
    w.b.untrack(&gone).await.unwrap();
    // Both handles poll at once: the due prediction goes to exactly one of them.
    let (x, y) = tokio::join!(w.a.take_due(now, 100, retry), w.b.take_due(now, 100, retry));
    let mine = |taken: Vec<(String, u32)>| {
        taken
            .into_iter()
            .filter(|(id, _)| id.starts_with(&h.ns))
            .collect::<Vec<_>>()
    };
    let (x, y) = (mine(x.unwrap()), mine(y.unwrap()));
    assert_eq!(
        [x.clone(), y.clone()].concat(),
        [(due.clone(), 0)],
        "{x:?} {y:?}"
    );
    // Taken, it is due again only after the backoff, and counts its attempts.
    assert!(mine(w.a.take_due(now + 999, 100, retry).await.unwrap()).is_empty());
    assert_eq!(
        mine(w.b.take_due(now + 1_000, 100, retry).await.unwrap()),
        [(due.clone(), 1)]
    );
    assert!(mine(w.b.take_due(now + 2_999, 100, retry).await.unwrap()).is_empty());
    assert_eq!(
        mine(w.a.take_due(now + 3_000, 100, retry).await.unwrap()),
        [(due.clone(), 2)]
    );
    // The cap: 3 s, not 4 s.
    assert_eq!(
        mine(w.a.take_due(now + 6_000, 100, retry).await.unwrap()),
        [(due.clone(), 3)]
    );
    // Tracking again (a delivery arrived) moves it and resets its attempts; untrack ends it.
    w.b.track(&due, now + 7_000, TTL).await.unwrap();
    assert!(mine(w.a.take_due(now + 6_999, 100, retry).await.unwrap()).is_empty());
    assert_eq!(
        mine(w.a.take_due(now + 7_000, 100, retry).await.unwrap()),
        [(due.clone(), 0)]
    );
    w.a.untrack(&due).await.unwrap();
    let all = mine(w.b.take_due(now + 600_000, 100, retry).await.unwrap());
    assert_eq!(all, [(later, 0)]);
}

/// Two handles on a store of this test's own (a Redis prefix, a PostgreSQL database): polling
/// takes every due prediction in the store, so a shared one would take other tests' too.
async fn open_alone(kind: &str) -> Option<Handles> {
    let ns = services::unique(kind);
    let url = match kind {
        "redis" => format!("{}?prefix={ns}", services::redis_url()?),
        "postgres" => {
            replicate_webhook_tests::inbox::fresh_database(&services::database_url()?).await
        }
        _ => return open(kind).await,
    };
    let (a, b): (Arc<dyn DedupeStore>, Arc<dyn DedupeStore>) = if kind == "redis" {
        (
            Arc::new(RedisStore::new(&url).unwrap()),
            Arc::new(RedisStore::new(&url).unwrap()),
        )
    } else {
        (
            Arc::new(PostgresStore::connect(&url).await.unwrap()),
            Arc::new(PostgresStore::connect(&url).await.unwrap()),
        )
    };
    Some(Handles {
        a,
        b,
        ns,
        _dir: None,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn watched_predictions_are_listed_alike_by_every_handle_of_every_store() {
    for kind in ["memory", "sqlite", "redis", "postgres"] {
        if let Some(handles) = open_alone(kind).await {
            watched_predictions_are_listed_alike_by_every_handle(handles).await;
        }
    }
}

async fn watched_predictions_are_listed_alike_by_every_handle(h: Handles) {
    let w = h.lists();
    let retry = Backoff {
        base_ms: 1_000,
        cap_ms: 3_000,
    };
    let now = now_ms();
    let (first, second, gone) = (h.key("first"), h.key("second"), h.key("gone"));
    w.a.track(&second, now + 50_000, TTL).await.unwrap();
    w.a.track(&first, now - 10, TTL).await.unwrap();
    w.a.track(&gone, now + 60_000, TTL).await.unwrap();
    w.a.untrack(&gone).await.unwrap();
    let listed = |all: Vec<WatchedPrediction>| {
        all.into_iter()
            .filter(|w| w.prediction_id.starts_with(&h.ns))
            .map(|w| (w.prediction_id, w.due_ms, w.attempts))
            .collect::<Vec<_>>()
    };
    // The other instance lists what this one watches, the soonest due first.
    assert_eq!(
        listed(w.b.watched(10_000).await.unwrap()),
        [
            (first.clone(), now - 10, 0),
            (second.clone(), now + 50_000, 0)
        ]
    );
    // A poll moves the next one and counts it, for every instance.
    w.a.take_due(now, 10_000, retry).await.unwrap();
    assert_eq!(
        listed(w.b.watched(10_000).await.unwrap()),
        [
            (first.clone(), now + 1_000, 1),
            (second.clone(), now + 50_000, 0)
        ]
    );
    assert!(w.b.watched(1).await.unwrap().len() <= 1, "the limit holds");
    w.b.untrack(&first).await.unwrap();
    assert_eq!(
        listed(w.a.watched(10_000).await.unwrap()),
        [(second, now + 50_000, 0)]
    );
}

fn gates(h: &Handles) -> (Gate, Gate) {
    let policy = Policy::default();
    (
        Gate::new(h.a.clone(), policy),
        Gate::new(h.b.clone(), policy),
    )
}

async fn gate_admits_each_terminal_status_once(h: Handles) {
    let (a, b) = gates(&h);
    let (w1, w2, p) = (h.key("w1"), h.key("w2"), h.key("p"));
    let succeeded = Status::Succeeded;
    let first = Delivery {
        webhook_id: &w1,
        prediction_id: &p,
        status: &succeeded,
    };
    let Admission::Run(lease) = a.admit(first).await.unwrap() else {
        panic!("first delivery runs")
    };
    assert!(matches!(
        b.admit(first).await.unwrap(),
        Admission::InFlight { .. }
    ));
    // Another webhook id for the same prediction and status waits for the running one too.
    let other = Delivery {
        webhook_id: &w2,
        ..first
    };
    assert!(matches!(
        b.admit(other).await.unwrap(),
        Admission::InFlight { .. }
    ));
    a.complete(&lease).await.unwrap();
    // A terminal status is deduplicated by the prediction's terminal key alone: a retry of the
    // handled delivery and the same result under another webhook id get the same answer, on
    // every handle, as often as they come.
    for gate in [&a, &b, &b] {
        for delivery in [first, other] {
            assert!(matches!(
                gate.admit(delivery).await.unwrap(),
                Admission::AlreadyHandled
            ));
        }
    }
    // The first terminal status wins: a later `failed` or `canceled` of it is not dispatched.
    for (n, status) in [Status::Failed, Status::Canceled].iter().enumerate() {
        let w = h.key(&format!("late-terminal-{n}"));
        let late = Delivery {
            webhook_id: &w,
            prediction_id: &p,
            status,
        };
        assert!(matches!(
            b.admit(late).await.unwrap(),
            Admission::AlreadyHandled
        ));
    }
    let processing = Status::Processing;
    let w3 = h.key("w3");
    let late = Delivery {
        webhook_id: &w3,
        prediction_id: &p,
        status: &processing,
    };
    assert!(matches!(b.admit(late).await.unwrap(), Admission::Stale));
}

async fn gate_release_lets_a_retry_run(h: Handles) {
    let (a, b) = gates(&h);
    let (w, p) = (h.key("w"), h.key("p"));
    let failed = Status::Failed;
    let d = Delivery {
        webhook_id: &w,
        prediction_id: &p,
        status: &failed,
    };
    let Admission::Run(lease) = a.admit(d).await.unwrap() else {
        panic!("first delivery runs")
    };
    a.release(&lease).await;
    let Admission::Run(lease) = b.admit(d).await.unwrap() else {
        panic!("the retry runs after a release")
    };
    b.complete(&lease).await.unwrap();
    assert!(matches!(
        a.admit(d).await.unwrap(),
        Admission::AlreadyHandled
    ));
}

async fn gate_classifies_output_alike_on_every_handle(h: Handles) {
    let (a, b) = gates(&h);
    let p = h.key("p");
    let output = |p: Progress| matches!(p, Progress::Output(_));
    assert!(!output(a.observe(&p, None, 0).await.unwrap()));
    assert!(!output(a.observe(&p, Some("null"), 10).await.unwrap()));
    assert!(output(a.observe(&p, Some("[1]"), 20).await.unwrap()));
    assert!(
        !output(b.observe(&p, Some("[1]"), 30).await.unwrap()),
        "logs on b"
    );
    let Progress::Output(undo) = b.observe(&p, Some("[1,2]"), 30).await.unwrap() else {
        panic!("a longer output is an output")
    };
    b.undo_output(&p, undo).await;
    assert!(
        output(a.observe(&p, Some("[1,2]"), 30).await.unwrap()),
        "output again after undo"
    );
    // An older delivery arriving late changes nothing and is told apart.
    assert_eq!(
        b.observe(&p, Some("[1]"), 30).await.unwrap(),
        Progress::Regressed
    );
    assert_eq!(
        b.observe(&p, Some("[1,2]"), 20).await.unwrap(),
        Progress::Regressed
    );
    assert!(
        matches!(
            a.observe(&p, Some("[1,2]"), 30).await.unwrap(),
            Progress::Logs(_)
        ),
        "the regressed deliveries did not replace what was seen"
    );
}

macro_rules! conformance {
    ($($case:ident),* $(,)?) => {
        conformance!(@store memory; $($case),*);
        conformance!(@store sqlite; $($case),*);
        conformance!(@store redis; $($case),*);
        conformance!(@store postgres; $($case),*);
    };
    (@store $store:ident; $($case:ident),*) => {
        mod $store {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $case() {
                    if let Some(handles) = super::open(stringify!($store)).await {
                        super::$case(handles).await;
                    }
                }
            )*
        }
    };
}

conformance!(
    claim_then_duplicates,
    release_then_reclaim,
    stale_token_is_a_no_op_after_lease_takeover,
    done_keys_expire,
    one_of_64_concurrent_claims_wins,
    markers_are_shared_between_handles,
    watched_predictions_are_taken_once_then_backed_off,
    gate_admits_each_terminal_status_once,
    gate_release_lets_a_retry_run,
    gate_classifies_output_alike_on_every_handle,
);

/// A database of its own on the test server, dropped by [`Fresh::drop_database`].
struct Fresh {
    admin: tokio_postgres::Client,
    name: String,
    url: String,
}

impl Fresh {
    async fn create(url: &str, tag: &str) -> Self {
        let (admin, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(connection);
        let name = services::unique(tag)
            .trim_end_matches(':')
            .replace('-', "_");
        admin
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .unwrap();
        let mut fresh = url::Url::parse(url).unwrap();
        fresh.set_path(&name);
        Self {
            admin,
            name,
            url: fresh.to_string(),
        }
    }

    async fn drop_database(self) {
        self.admin
            .batch_execute(&format!("DROP DATABASE {} WITH (FORCE)", self.name))
            .await
            .unwrap();
    }
}

/// Eight instances starting at once on an empty database all migrate it, and it works.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_migration_is_safe_when_instances_start_together() {
    let Some(url) = services::database_url() else {
        return;
    };
    let fresh = Fresh::create(&url, "migrate").await;
    let starts: Vec<_> = (0..8)
        .map(|_| {
            let url = fresh.url.clone();
            tokio::spawn(async move { PostgresStore::connect(&url).await })
        })
        .collect();
    let mut stores = Vec::new();
    for start in starts {
        stores.push(start.await.unwrap().expect("every instance starts"));
    }
    let Claim::Acquired(token) = stores[0].claim("k", LEASE).await.unwrap() else {
        panic!("a fresh database has no claims")
    };
    stores[7].complete("k", &token, TTL).await.unwrap();
    assert!(stores[3].is_done("k").await.unwrap());
    drop(stores);
    fresh.drop_database().await;
}

/// A database the earlier migrator made (its own version table, tables created without
/// `IF NOT EXISTS`) opens with its rows, and is then recorded as up to date.
#[tokio::test]
async fn postgres_database_made_by_the_earlier_migrator_keeps_its_rows() {
    let Some(url) = services::database_url() else {
        return;
    };
    let fresh = Fresh::create(&url, "legacy").await;
    let (old, connection) = tokio_postgres::connect(&fresh.url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    old.batch_execute(
        "CREATE TABLE replicate_webhook_migrations (version INTEGER PRIMARY KEY);
         INSERT INTO replicate_webhook_migrations VALUES (1), (2);
         CREATE TABLE replicate_webhook_keys (key TEXT PRIMARY KEY, token TEXT,
             expires_at TIMESTAMPTZ NOT NULL);
         CREATE INDEX replicate_webhook_keys_expiry ON replicate_webhook_keys (expires_at);
         CREATE TABLE replicate_webhook_markers (key TEXT PRIMARY KEY, marker BIGINT NOT NULL,
             expires_at TIMESTAMPTZ NOT NULL);
         CREATE INDEX replicate_webhook_markers_expiry ON replicate_webhook_markers (expires_at);
         CREATE TABLE replicate_webhook_watched (prediction TEXT PRIMARY KEY,
             due_ms BIGINT NOT NULL, attempts INTEGER NOT NULL, expires_at TIMESTAMPTZ NOT NULL);
         CREATE INDEX replicate_webhook_watched_due ON replicate_webhook_watched (due_ms);
         INSERT INTO replicate_webhook_keys VALUES ('handled', NULL, now() + interval '1 hour');",
    )
    .await
    .unwrap();
    let store = PostgresStore::connect(&fresh.url).await.unwrap();
    assert!(
        store.is_done("handled").await.unwrap(),
        "the old row is kept"
    );
    assert!(matches!(
        store.claim("new", LEASE).await.unwrap(),
        Claim::Acquired(_)
    ));
    let version: i64 = old
        .query_one(
            "SELECT version FROM replicate_webhook_schema WHERE part = 'dedupe'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(version, 2);
    drop((store, old));
    fresh.drop_database().await;
}
