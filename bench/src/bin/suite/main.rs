//! Runs the HTTP, memory and latency benchmarks (the micro benches ran before it, under
//! criterion) and prints one table of every figure beside its peer. `bench/run` calls it.
//!
//! ```text
//! suite TARGET_DIR REPO_DIR
//! ```
//!
//! Servers run on CPU 0 and the load generator on CPU 1 when the machine has two, so each has a
//! core; a server's CPU use during the run is printed, to show which side was the bottleneck.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use replicate_webhook_bench::{SECRET, cpu_ticks, rss_kib, sha256_backend};
use serde_json::Value;

mod live;
mod table;

use table::{Table, opt_time};

mod operator;

struct Env {
    bin: PathBuf,
    repo: PathBuf,
    criterion: PathBuf,
    pin: bool,
    work: PathBuf,
}

struct Server {
    child: Child,
}

impl Server {
    fn start(env: &Env, program: &Path, args: &[&str], envs: &[(&str, &str)], port: u16) -> Self {
        let mut cmd = if env.pin {
            let mut c = Command::new("taskset");
            c.args(["-c", "0"]).arg(program);
            c
        } else {
            Command::new(program)
        };
        cmd.args(args)
            .env("REPLICATE_WEBHOOK_SECRET", SECRET)
            .env("RUST_LOG", "info,actix_server=warn")
            .envs(envs.iter().copied())
            .current_dir(&env.work)
            .stdin(Stdio::null())
            // The quickstart prints a line per handler run: a benchmark sends it nowhere.
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("{}: {e}", program.display()));
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "{} did not listen",
                program.display()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Self { child }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One load run: the load generator's JSON, plus the server's CPU use and memory after it.
fn load(env: &Env, server: &Server, port: u16, size: usize, extra: &[&str]) -> Value {
    let loadgen = env.bin.join("loadgen");
    let mut cmd = if env.pin {
        let mut c = Command::new("taskset");
        c.args(["-c", "1"]).arg(&loadgen);
        c
    } else {
        Command::new(&loadgen)
    };
    let addr = format!("127.0.0.1:{port}");
    let size = size.to_string();
    cmd.args([
        "--addr", &addr, "--conns", "32", "--size", &size, "--secs", "5", "--warmup", "1",
    ])
    .args(extra);
    let ticks_before = cpu_ticks(server.pid()).unwrap_or(0);
    let started = Instant::now();
    let out = cmd.output().expect("loadgen");
    let wall = started.elapsed().as_secs_f64();
    let ticks = cpu_ticks(server.pid()).unwrap_or(0) - ticks_before;
    assert!(
        out.status.success(),
        "loadgen: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut result: Value = serde_json::from_slice(&out.stdout).expect("loadgen JSON");
    // Clock ticks are 1/100 s on Linux.
    #[allow(clippy::cast_precision_loss)]
    let cpu = ticks as f64 / 100.0 / wall;
    result["server_cpu"] = cpu.into();
    // CPU per request does not depend on how much of its core the server got from a busy
    // machine, as requests per second do.
    #[allow(clippy::cast_precision_loss)]
    let per_request = ticks as f64 * 10_000.0 / result["sent"].as_f64().unwrap_or(f64::NAN);
    result["cpu_us_per_req"] = per_request.into();
    result["rss_mib"] = rss_kib(server.pid()).map_or(Value::Null, |k| (k / 1024).into());
    eprintln!("  {addr} {size} B {}: {result}", extra.join(" "));
    result
}

/// A paired result (`replicate_webhook_bench::paired`): median time and median ratio to the
/// first candidate, measured round by round in the same run.
fn paired(env: &Env, id: &str, name: &str) -> Option<(f64, f64)> {
    let path = env.criterion.join("paired").join(format!("{id}.json"));
    let json: Value = serde_json::from_slice(&std::fs::read(path).ok()?).ok()?;
    let c = json.as_array()?.iter().find(|c| c["name"] == name)?;
    Some((c["median_ns"].as_f64()?, c["ratio_to_first"].as_f64()?))
}

fn micro(env: &Env, table: &mut Table) {
    for (size, tight) in [("1KiB", 1.15), ("64KiB", 1.02), ("1MiB", 1.02)] {
        let id = format!("verify-{size}");
        let ours = paired(env, &id, "ours");
        let floor = paired(env, &id, "hmac-floor");
        let ratio = ours.zip(floor).map(|(o, f)| o.1 / f.1);
        table.row(
            &format!("verify {size}: ours / HMAC floor"),
            opt_time(ours.map(|o| o.0)),
            opt_time(floor.map(|f| f.0)),
            ratio.map_or("n/a".into(), |r| format!("{r:.3}×")),
            &format!("≤ {tight}×"),
            ratio.map(|r| r <= tight),
        );
        for peer in ["standardwebhooks", "svix"] {
            let theirs = paired(env, &id, peer);
            let ratio = ours.zip(theirs).map(|(o, t)| t.1 / o.1);
            table.row(
                &format!("verify {size}: {peer} / ours"),
                opt_time(ours.map(|o| o.0)),
                opt_time(theirs.map(|t| t.0)),
                ratio.map_or("n/a".into(), |r| format!("{r:.2}× slower")),
                "≥ 4×",
                ratio.map(|r| r >= 4.0),
            );
        }
    }
    for payload in ["hello-world", "flux-kontext-pro", "llm-1MiB"] {
        let id = format!("decode-{payload}");
        let value = paired(env, &id, "value");
        for (ours, what, target) in [
            ("envelope", "envelope", "(one parse)"),
            ("typed", "envelope + typed", "≤ 1× Value"),
        ] {
            let t = paired(env, &id, ours);
            table.row(
                &format!("decode {payload}: {what} / Value"),
                opt_time(t.map(|t| t.0)),
                opt_time(value.map(|v| v.0)),
                t.map_or("n/a".into(), |t| format!("{:.2}×", t.1)),
                target,
                (ours == "typed").then(|| t.map(|t| t.1 <= 1.0)).flatten(),
            );
        }
        let slice = paired(env, &id, "from_slice");
        let from_str = paired(env, &id, "from_str");
        let ratio = from_str.zip(slice).map(|(s, f)| s.1 / f.1);
        table.row(
            &format!("decode {payload}: typed from_str(after UTF-8 check) / from_slice"),
            opt_time(from_str.map(|s| s.0)),
            opt_time(slice.map(|s| s.0)),
            ratio.map_or("n/a".into(), |r| format!("{r:.2}×")),
            "(keep the faster)",
            None,
        );
        let sonic = paired(env, &id, "sonic-rs");
        let ratio = sonic.zip(from_str).map(|(s, f)| s.1 / f.1);
        table.row(
            &format!("decode {payload}: typed, sonic-rs (SIMD) / serde_json from_str"),
            opt_time(sonic.map(|s| s.0)),
            opt_time(from_str.map(|s| s.0)),
            ratio.map_or("n/a".into(), |r| format!("{r:.2}×")),
            "(keep the faster)",
            None,
        );
    }
}

#[allow(clippy::too_many_lines)]
fn http(env: &Env, table: &mut Table) -> Vec<(String, Value)> {
    let mut notes = Vec::new();
    let node = "node";
    let script = env.repo.join("bench/node/receiver.js");
    let script = script.to_str().expect("UTF-8 path");
    let quickstart = env.bin.join("quickstart");
    let fmt_rps = |v: &Value| {
        let refused = v["not_ok"].as_u64().unwrap_or(0) + v["errors"].as_u64().unwrap_or(0);
        let rps = v["rps"].as_f64().unwrap_or(0.0);
        if refused == 0 {
            format!("{rps:.0} req/s")
        } else {
            format!("{rps:.0} req/s ({refused} not 200)")
        }
    };
    // The default memory store holds 1.75 million keys, one per terminal delivery, and keeps
    // done markers for 300 s whatever the load: a run must stay under that or measure 503s.
    let stored = ["--max-requests", "150000"];
    let rps = |v: &Value| v["rps"].as_f64().unwrap_or(0.0);
    // A ratio of requests per second says something only when both servers had their core;
    // on a busy machine the CPU-per-request rows are the ones to read.
    let saturated = |a: &Value, b: &Value| {
        [a, b]
            .iter()
            .all(|v| v["server_cpu"].as_f64().unwrap_or(0.0) >= 0.9)
    };

    for size in [2048usize, 64 * 1024] {
        eprintln!("throughput, {size} B bodies");
        let bare = {
            let s = Server::start(env, &env.bin.join("bare"), &["127.0.0.1:18081"], &[], 18081);
            load(env, &s, 18081, size, &[])
        };
        let ours = {
            let s = Server::start(
                env,
                &env.bin.join("receiver"),
                &["127.0.0.1:18082"],
                &[],
                18082,
            );
            let first = load(env, &s, 18082, size, &stored);
            if size == 2048 {
                let second = load(env, &s, 18082, size, &stored);
                notes.push((
                    "receiver RSS after run 1 / run 2 (MiB), deliveries in run 2".into(),
                    serde_json::json!([first["rss_mib"], second["rss_mib"], second["sent"]]),
                ));
                let half = format!("{:.0}", rps(&first).max(rps(&second)) / 2.0);
                // A fresh receiver: the two runs above left it hundreds of thousands of done
                // markers, which a real receiver collects over days, not seconds.
                let fresh = Server::start(
                    env,
                    &env.bin.join("receiver"),
                    &["127.0.0.1:18087"],
                    &[],
                    18087,
                );
                let paced = load(
                    env,
                    &fresh,
                    18087,
                    size,
                    &["--rate", &half, stored[0], stored[1]],
                );
                notes.push(("receiver at half its peak rate".into(), paced));
                if rps(&second) > rps(&first) {
                    second
                } else {
                    first
                }
            } else {
                first
            }
        };
        let nodejs = {
            let s = Server::start(
                env,
                Path::new(node),
                &[script, "127.0.0.1:18083"],
                &[],
                18083,
            );
            load(env, &s, 18083, size, &[])
        };
        let kib = size / 1024;
        let cpu = |v: &Value| v["cpu_us_per_req"].as_f64().unwrap_or(f64::NAN);
        let fmt_cpu = |v: &Value| format!("{:.1} µs", cpu(v));
        let r = cpu(&bare) / cpu(&ours);
        table.row(
            &format!("HTTP {kib} KiB: server CPU per request, bare (b) / receiver (a)"),
            fmt_cpu(&ours),
            fmt_cpu(&bare),
            format!("{r:.2}×"),
            "≥ 0.75×",
            (size == 2048).then_some(r >= 0.75),
        );
        let r = cpu(&nodejs) / cpu(&ours);
        table.row(
            &format!("HTTP {kib} KiB: server CPU per request, Node.js (c) / receiver (a)"),
            fmt_cpu(&ours),
            fmt_cpu(&nodejs),
            format!("{r:.2}×"),
            "≥ 3.5×",
            (size == 2048).then_some(r >= 3.5),
        );
        let r = rps(&ours) / rps(&bare);
        table.row(
            &format!("HTTP {kib} KiB: receiver (a) / bare actix (b)"),
            fmt_rps(&ours),
            fmt_rps(&bare),
            format!("{r:.2}×"),
            "≥ 0.75×",
            (size == 2048 && saturated(&ours, &bare)).then_some(r >= 0.75),
        );
        let r = rps(&ours) / rps(&nodejs);
        table.row(
            &format!("HTTP {kib} KiB: receiver (a) / Node.js docs receiver (c)"),
            fmt_rps(&ours),
            fmt_rps(&nodejs),
            format!("{r:.2}×"),
            "≥ 3.5×",
            (size == 2048 && saturated(&ours, &nodejs)).then_some(r >= 3.5),
        );
        for (name, v) in [("bare", &bare), ("receiver", &ours), ("node", &nodejs)] {
            notes.push((format!("{kib} KiB {name}"), v.clone()));
        }
        if size == 2048 {
            let qs_memory = {
                let s = Server::start(
                    env,
                    &quickstart,
                    &[],
                    &[
                        ("REPLICATE_WEBHOOK_STORE", "memory"),
                        ("BIND", "127.0.0.1:18084"),
                    ],
                    18084,
                );
                load(env, &s, 18084, size, &stored)
            };
            let _ = std::fs::remove_file(env.work.join("replicate-webhook.db"));
            let qs_sqlite = {
                let s = Server::start(env, &quickstart, &[], &[("BIND", "127.0.0.1:18085")], 18085);
                load(env, &s, 18085, size, &[])
            };
            for (what, v) in [
                ("quickstart, memory store", &qs_memory),
                ("quickstart as shipped (SQLite)", &qs_sqlite),
            ] {
                let r = rps(v) / rps(&bare);
                table.row(
                    &format!("HTTP 2 KiB: {what} / bare actix"),
                    fmt_rps(v),
                    fmt_rps(&bare),
                    format!("{r:.2}×"),
                    "≥ 0.75×",
                    saturated(v, &bare).then_some(r >= 0.75),
                );
                let r = rps(v) / rps(&nodejs);
                table.row(
                    &format!("HTTP 2 KiB: {what} / Node.js"),
                    fmt_rps(v),
                    fmt_rps(&nodejs),
                    format!("{r:.2}×"),
                    "≥ 3.5×",
                    saturated(v, &nodejs).then_some(r >= 3.5),
                );
                notes.push((what.into(), v.clone()));
            }
            if let Some((_, paced)) = notes
                .iter()
                .find(|(n, _)| n == "receiver at half its peak rate")
            {
                let p99 = paced["p99_us"].as_f64().unwrap_or(f64::MAX);
                // Half of the peak measured when the server had its core: if it has less now,
                // the offered rate is no longer half of what it can do.
                table.row(
                    "HTTP 2 KiB: receiver p99 at half peak rate",
                    format!("{:.2} ms", p99 / 1000.0),
                    format!(
                        "{} req/s offered",
                        paced["rps"].as_f64().unwrap_or(0.0).round()
                    ),
                    String::new(),
                    "< 5 ms",
                    Some(p99 < 5000.0),
                );
            }
            if let Some((_, rss)) = notes.iter().find(|(n, _)| n.starts_with("receiver RSS")) {
                let (a, b) = (
                    rss[0].as_f64().unwrap_or(0.0),
                    rss[1].as_f64().unwrap_or(0.0),
                );
                // Each delivery of run 2 is a new prediction: the store keeps its terminal key
                // for its TTL, at the cost per key it documents. What grows beyond that is the
                // receiver's own.
                #[allow(clippy::cast_precision_loss)]
                let kept = rss[2].as_f64().unwrap_or(0.0)
                    * replicate_webhook::dedupe::MemoryStore::BYTES_PER_KEY as f64
                    / f64::from(1 << 20);
                table.row(
                    "receiver RSS after two identical 2 KiB runs",
                    format!("{b} MiB"),
                    format!("{a} MiB"),
                    format!("{:+} MiB", b - a),
                    "no growth",
                    Some(b <= a + 1.0),
                );
                table.row(
                    &format!(
                        "  same, beyond the dedupe keys run 2 added (1 per delivery, {} B each)",
                        replicate_webhook::dedupe::MemoryStore::BYTES_PER_KEY
                    ),
                    format!("{:+.1} MiB", b - a - kept),
                    format!("{kept:.1} MiB kept"),
                    String::new(),
                    "≤ 1 MiB",
                    Some(b - a - kept <= 1.0),
                );
            }
        }
    }
    notes
}

fn memory(env: &Env, table: &mut Table) {
    let out = Command::new(env.bin.join("memstore"))
        .output()
        .expect("memstore");
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    let mib = v["rss_mib"].as_f64().unwrap_or(f64::NAN);
    table.row(
        "memory store, 1 million done markers (RSS)",
        format!("{mib:.0} MiB"),
        String::new(),
        String::new(),
        "< 150 MB",
        Some(mib * 1.048_576 < 150.0),
    );
    // A terminal delivery leaves one key (its prediction's terminal key) that must outlive the
    // replay window: the store's bound over that window is the rate it accepts for good.
    let held = v["keys_at_bound"].as_f64().unwrap_or(f64::NAN);
    let window = v["protect_s"].as_f64().unwrap_or(f64::NAN);
    let refused = v["refused_past_bound"].as_bool().unwrap_or(false);
    let rate = held / window;
    table.row(
        "memory store, new terminal deliveries/s it keeps for the replay window",
        format!("{rate:.0}/s"),
        format!("{held:.0} keys / {window:.0} s"),
        if refused { "then 503" } else { "never refused" }.to_owned(),
        "≥ 5,000/s, then 503",
        Some(rate >= 5000.0 && refused),
    );
}

/// The median time of one criterion benchmark, in nanoseconds.
fn criterion_median(env: &Env, group: &str, function: &str) -> Option<f64> {
    let path = env
        .criterion
        .join(group)
        .join(function)
        .join("new/estimates.json");
    let json: Value = serde_json::from_slice(&std::fs::read(path).ok()?).ok()?;
    json["median"]["point_estimate"].as_f64()
}

/// Claim + complete (what a handled delivery asks of its store per key), from the `stores`
/// criterion bench of the runtime crate, each store beside the memory store.
fn stores(env: &Env, table: &mut Table) {
    let x64 = "claim+complete x64";
    let rate = |group: &str| criterion_median(env, group, x64).map(|ns| 64e9 / ns);
    let memory = rate("store_memory");
    for (group, name) in [
        ("store_sqlite", "SQLite (file, WAL)"),
        ("store_redis", "Redis"),
        ("store_postgres", "PostgreSQL"),
    ] {
        let Some(ours) = rate(group) else {
            continue;
        };
        let one = criterion_median(env, group, "claim+complete");
        table.row(
            &format!("dedupe store {name}: claim+complete, 64 at once / memory store"),
            format!("{:.1} k/s ({} one at a time)", ours / 1e3, opt_time(one)),
            memory.map_or("n/a".into(), |m| format!("{:.0} k/s", m / 1e3)),
            memory.map_or("n/a".into(), |m| format!("{:.2}×", ours / m)),
            "(measured)",
            None,
        );
    }
}

fn latency(env: &Env, table: &mut Table) {
    eprintln!("delivery latency");
    let sim = Server::start(
        env,
        &env.bin.join("replicate-webhook"),
        &[
            "simulate",
            "--bind",
            "127.0.0.1:15555",
            "--secret",
            SECRET,
            "--quiet",
        ],
        &[],
        15555,
    );
    let receiver = Server::start(
        env,
        &env.bin.join("receiver"),
        &["127.0.0.1:18086"],
        &[],
        18086,
    );
    let out = Command::new(env.bin.join("latency"))
        .args([
            "--api",
            "http://127.0.0.1:15555/v1",
            "--receiver",
            "http://127.0.0.1:18086",
        ])
        .output()
        .expect("latency");
    drop((sim, receiver));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    eprintln!("  {v}");
    let ms = |k: &str| v[k].as_f64().unwrap_or(f64::NAN) / 1000.0;
    table.row(
        &format!(
            "delivery latency p50 (n = {}) vs polling every 5 s (n = {})",
            v["webhook_n"], v["poll_n"]
        ),
        format!("{:.2} ms", ms("webhook_p50_us")),
        format!("{:.0} ms", ms("poll_p50_us")),
        format!("{:.0}× sooner", ms("poll_p50_us") / ms("webhook_p50_us")),
        "",
        None,
    );
    table.row(
        "delivery latency p99 vs polling every 5 s",
        format!("{:.2} ms", ms("webhook_p99_us")),
        format!("{:.0} ms", ms("poll_p99_us")),
        format!("{:.0}× sooner", ms("poll_p99_us") / ms("webhook_p99_us")),
        "< 10 ms",
        Some(ms("webhook_p99_us") < 10.0),
    );
}

fn command_line(program: &str, args: &[&str]) -> String {
    Command::new(program)
        .args(args)
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default()
}

fn machine() {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|l| l.trim_start_matches([' ', '\t', ':']).to_owned())
        .unwrap_or_default();
    let cpus = std::thread::available_parallelism().map_or(0, std::num::NonZero::get);
    println!(
        "Machine: {model}, {cpus} CPUs, Linux {}, {}, node {}; load average at start {}",
        command_line("uname", &["-r"]),
        command_line("rustc", &["--version"]),
        command_line("node", &["--version"]),
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .split(' ')
            .take(3)
            .collect::<Vec<_>>()
            .join(" "),
    );
    println!("SHA-256 backend: {}", sha256_backend());
}

fn main() {
    let mut argv = std::env::args().skip(1);
    let target = PathBuf::from(argv.next().expect("TARGET_DIR"));
    let repo = PathBuf::from(argv.next().expect("REPO_DIR"));
    let work = std::env::temp_dir().join(format!("replicate-webhook-bench-{}", std::process::id()));
    std::fs::create_dir_all(&work).expect("work directory");
    let env = Env {
        bin: target.join("release"),
        criterion: target.join("criterion"),
        repo,
        pin: std::thread::available_parallelism().is_ok_and(|n| n.get() >= 2)
            && Command::new("taskset").arg("-V").output().is_ok(),
        work: work.clone(),
    };
    let mut table = Table::default();
    // `suite TARGET REPO operator` runs only the journal's figures.
    if argv.next().as_deref() == Some("operator") {
        operator::figures(&env, &mut table);
        let _ = std::fs::remove_dir_all(&work);
        table.print();
        return;
    }
    micro(&env, &mut table);
    let notes = http(&env, &mut table);
    operator::figures(&env, &mut table);
    memory(&env, &mut table);
    stores(&env, &mut table);
    latency(&env, &mut table);
    live::rows(&env, &mut table);
    let _ = std::fs::remove_dir_all(&work);

    println!();
    machine();
    println!();
    table.print();
    println!();
    println!(
        "Load runs (32 connections, 1 s warm-up then 5 s, or 150,000 deliveries against a memory store; server on CPU 0, load generator on CPU 1; server_cpu = cores the server used; a requests-per-second ratio gets a verdict only when both servers used 0.9 core or more):"
    );
    for (what, v) in notes {
        println!("- {what}: {v}");
    }
}
