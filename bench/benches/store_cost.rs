//! Where a claim + complete spends its CPU: in this process, and in the server process (Redis,
//! PostgreSQL), per key, with keys in order and with keys spread over the key space as
//! Replicate's random ids are. What `stores` reports as a rate, this splits into the two sides
//! that share the machine, which bounds the rate any client could reach here.
//!
//! ```text
//! scripts/with-services cargo bench -p replicate-webhook-bench --bench store_cost -- 50000
//! ```
//!
//! Linux only (it reads `/proc`); needs `REDIS_URL` and `DATABASE_URL`, which with-services sets.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use replicate_webhook::dedupe::{Claim, DedupeStore, PostgresStore, RedisStore, SqliteStore};
use replicate_webhook_bench::cpu_ticks;

/// Calls in flight at once, as in the `stores` bench.
const CONCURRENT: u64 = 64;

/// The CPU ticks of every process whose command starts with `name`: all of a server's processes.
fn server_ticks(name: &str) -> u64 {
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .filter_map(|pid| pid.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .is_ok_and(|comm| comm.trim().starts_with(name))
        })
        .filter_map(cpu_ticks)
        .sum()
}

/// This process's CPU ticks (user + system, 1/100 s).
fn own_ticks() -> u64 {
    cpu_ticks(std::process::id()).unwrap_or_default()
}

/// Claims and completes `n` fresh keys, `CONCURRENT` at once; the keys in order, or spread.
async fn run(store: Arc<dyn DedupeStore>, prefix: String, n: u64, spread: bool) {
    let next = Arc::new(AtomicU64::new(0));
    let tasks: Vec<_> = (0..CONCURRENT)
        .map(|_| {
            let (store, next, prefix) = (store.clone(), next.clone(), prefix.clone());
            tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= n {
                        break;
                    }
                    // A multiplication by an odd number is a bijection: the keys stay distinct.
                    let k = if spread {
                        i.wrapping_mul(0x9E37_79B9_7F4A_7C15)
                    } else {
                        i
                    };
                    let key = format!("{prefix}:{k:016x}");
                    let Claim::Acquired(token) = store
                        .claim(&key, Duration::from_secs(30))
                        .await
                        .expect("claim")
                    else {
                        panic!("a fresh key is free")
                    };
                    store
                        .complete(&key, &token, Duration::from_mins(10))
                        .await
                        .expect("complete");
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("a bench task");
    }
}

fn main() {
    let n: u64 = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(50_000);
    let (Ok(redis), Ok(postgres)) = (std::env::var("REDIS_URL"), std::env::var("DATABASE_URL"))
    else {
        eprintln!("REDIS_URL and DATABASE_URL are needed: run under scripts/with-services");
        return;
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let dir = tempfile::tempdir().expect("a directory");
    println!("{n} keys a run, {CONCURRENT} at once; CPU per key (client: this process)");
    for spread in [false, true] {
        let order = if spread { "spread" } else { "in order" };
        let stores: [(&str, &str, Arc<dyn DedupeStore>); 3] = [
            (
                "sqlite",
                "",
                Arc::new(
                    SqliteStore::open(dir.path().join(format!("{order}.db"))).expect("sqlite"),
                ),
            ),
            (
                "redis",
                "redis-server",
                Arc::new(RedisStore::new(&redis).expect("redis")),
            ),
            (
                "postgres",
                "postgres",
                Arc::new(
                    rt.block_on(PostgresStore::connect(&postgres))
                        .expect("postgres"),
                ),
            ),
        ];
        for (name, server, store) in stores {
            let prefix = format!("cost:{}:{spread}", std::process::id());
            let (server_before, client_before) = (server_ticks(server), own_ticks());
            let started = Instant::now();
            rt.block_on(run(store, prefix, n, spread));
            let wall = started.elapsed().as_secs_f64();
            // Ticks are 1/100 s: µs per key = ticks * 10,000 / n.
            #[allow(clippy::cast_precision_loss)]
            let per_key = |ticks: u64| ticks as f64 * 10_000.0 / n as f64;
            let server = if server.is_empty() {
                "(in process)".to_owned()
            } else {
                format!("{:.1} µs", per_key(server_ticks(server) - server_before))
            };
            #[allow(clippy::cast_precision_loss)]
            let rate = n as f64 / wall / 1000.0;
            println!(
                "{name:<9} keys {order:<8}: {rate:>6.1} k/s, client {:>6.1} µs, server {server}",
                per_key(own_ticks() - client_before),
            );
        }
    }
}
