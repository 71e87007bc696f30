//! What the dedupe costs per store: one claim + complete (the two calls a handled delivery
//! makes per key), one at a time and 64 at once, against each store that is available.
//!
//! ```text
//! scripts/with-services cargo bench -p replicate-webhook --all-features --bench stores
//! ```
//!
//! Redis and PostgreSQL are measured when `REDIS_URL` / `DATABASE_URL` are set (with-services
//! sets both); memory and SQLite always.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use replicate_webhook::dedupe::{
    Claim, DedupeStore, MemoryStore, PostgresStore, RedisStore, SqliteStore,
};

const LEASE: Duration = Duration::from_secs(30);
const TTL: Duration = Duration::from_mins(10);
const CONCURRENT: usize = 64;

static KEY: AtomicU64 = AtomicU64::new(0);

/// A key no earlier call used, at a random-looking place among the others as real keys are
/// (Replicate's ids are random; consecutive keys would flatter the B-tree stores): a
/// multiplication by an odd number is a bijection, so keys stay distinct.
fn fresh_key(run: &str) -> String {
    let n = KEY.fetch_add(1, Ordering::Relaxed);
    format!("bench:{run}:{:016x}", n.wrapping_mul(0x9E37_79B9_7F4A_7C15))
}

async fn claim_complete(store: &dyn DedupeStore, run: &str) {
    let key = fresh_key(run);
    let Claim::Acquired(token) = store.claim(&key, LEASE).await.expect("claim") else {
        panic!("a fresh key is free")
    };
    store.complete(&key, &token, TTL).await.expect("complete");
}

fn stores(rt: &tokio::runtime::Runtime) -> Vec<(&'static str, Arc<dyn DedupeStore>)> {
    let dir = std::env::temp_dir().join(format!("replicate-webhook-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("bench directory");
    let mut stores: Vec<(&'static str, Arc<dyn DedupeStore>)> = vec![
        // A bench makes a million fresh keys in seconds: let the bound evict recent done
        // markers (a receiver never sees that rate) instead of refusing, and measure that path.
        (
            "memory",
            Arc::new(MemoryStore::new().protect_for(Duration::ZERO)),
        ),
        (
            "sqlite",
            Arc::new(SqliteStore::open(dir.join("bench.db")).expect("sqlite")),
        ),
    ];
    match std::env::var("REDIS_URL") {
        Ok(url) => stores.push(("redis", Arc::new(RedisStore::new(&url).expect("redis")))),
        Err(_) => eprintln!("REDIS_URL unset: Redis not measured"),
    }
    match std::env::var("DATABASE_URL") {
        Ok(url) => {
            let store = rt.block_on(PostgresStore::connect(&url)).expect("postgres");
            stores.push(("postgres", Arc::new(store)));
        }
        Err(_) => eprintln!("DATABASE_URL unset: PostgreSQL not measured"),
    }
    stores
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let run = format!("{}", std::process::id());
    for (name, store) in stores(&rt) {
        let mut group = c.benchmark_group(format!("store/{name}"));
        group.throughput(Throughput::Elements(1));
        group.bench_function("claim+complete", |b| {
            b.iter(|| rt.block_on(claim_complete(&*store, &run)));
        });
        group.throughput(Throughput::Elements(CONCURRENT as u64));
        group.bench_function(format!("claim+complete x{CONCURRENT}"), |b| {
            b.iter(|| {
                rt.block_on(async {
                    let tasks: Vec<_> = (0..CONCURRENT)
                        .map(|_| {
                            let (store, run) = (store.clone(), run.clone());
                            tokio::spawn(async move { claim_complete(&*store, &run).await })
                        })
                        .collect();
                    for task in tasks {
                        task.await.expect("task");
                    }
                });
            });
        });
        group.finish();
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(20)
        .measurement_time(Duration::from_secs(4))
        .warm_up_time(Duration::from_secs(1));
    targets = bench
}
criterion_main!(benches);
