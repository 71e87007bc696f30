//! The journal's figures: the server's CPU per request with the journal off and on (same run,
//! same load, alternated; the journal with its default bound, as an app gets it), and the
//! dashboard overview's time with 100,000 journal rows.

use std::time::{Duration, Instant};

use serde_json::Value;

use super::table::{Table, time_text};
use super::{Env, Server, load};

const PORT: u16 = 18090;
const TOKEN: &str = "bench-dashboard-token";
/// Rounds of the journal off and on, alternated; the medians are compared.
const ROUNDS: usize = 5;

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(f64::NAN)
}

pub(crate) fn figures(env: &Env, table: &mut Table) {
    let receiver = env.bin.join("receiver");
    let sqlite = format!("sqlite://{}", env.work.join("journal-cpu.db").display());
    for (name, journal) in [("memory", "memory"), ("SQLite", sqlite.as_str())] {
        eprintln!("journal ({name}) off and on, 2 KiB bodies");
        let (mut off, mut on) = (Vec::new(), Vec::new());
        // Alternated, so a drift of the machine's load hits both sides alike; five rounds,
        // since one run's CPU per request moves by several percent on a shared machine and
        // the target is 5 %.
        for _ in 0..ROUNDS {
            for enabled in [false, true] {
                let envs: &[(&str, &str)] = if enabled {
                    &[("BENCH_JOURNAL", journal)]
                } else {
                    &[]
                };
                let server =
                    Server::start(env, &receiver, &[&format!("127.0.0.1:{PORT}")], envs, PORT);
                let v = load(env, &server, PORT, 2048, &["--max-requests", "150000"]);
                let cpu = v["cpu_us_per_req"].as_f64().unwrap_or(f64::NAN);
                if enabled { on.push(cpu) } else { off.push(cpu) }
            }
        }
        let (on, off) = (median(on), median(off));
        let ratio = on / off;
        table.row(
            &format!(
                "Journal ({name}, default bound of 10,000 rows): server CPU per request, on (a) / off (b)"
            ),
            format!("{on:.1} µs"),
            format!("{off:.1} µs"),
            format!("{ratio:.3}×"),
            "< 1.05×",
            Some(ratio < 1.05),
        );
    }
    overview(env, table);
}

/// Fills a SQLite journal with 100,000 deliveries, then times the overview page.
fn overview(env: &Env, table: &mut Table) {
    const ROWS: u64 = 100_000;
    eprintln!("overview page with {ROWS} journal rows (SQLite)");
    let journal = format!("sqlite://{}", env.work.join("journal-page.db").display());
    let server = Server::start(
        env,
        &env.bin.join("receiver"),
        &[&format!("127.0.0.1:{PORT}")],
        &[
            ("BENCH_JOURNAL", &journal),
            // Above the journal's default bound (10,000), or the page would see that many.
            ("BENCH_JOURNAL_ROWS", "200000"),
            ("BENCH_DASHBOARD_TOKEN", TOKEN),
        ],
        PORT,
    );
    let out = std::process::Command::new(env.bin.join("loadgen"))
        .args([
            "--addr",
            &format!("127.0.0.1:{PORT}"),
            "--conns",
            "32",
            "--size",
            "2048",
        ])
        .args([
            "--secs",
            "120",
            "--warmup",
            "0",
            "--max-requests",
            &ROWS.to_string(),
        ])
        .output()
        .expect("loadgen");
    assert!(
        out.status.success(),
        "loadgen: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let times = runtime.block_on(time_page(ROWS));
    drop(server);
    table.row(
        &format!("Dashboard overview page, {ROWS} journal rows in SQLite (median of 11)"),
        time_text(median(times)),
        String::new(),
        String::new(),
        "",
        None,
    );
}

/// Waits until the journal holds `rows` rows, logs in and times the overview page 11 times (ns).
async fn time_page(rows: u64) -> Vec<f64> {
    let base = format!("http://127.0.0.1:{PORT}/replicate/dashboard");
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let deadline = Instant::now() + Duration::from_mins(2);
    loop {
        let overview: Value = http
            .get(format!("{base}/api/overview"))
            .bearer_auth(TOKEN)
            .send()
            .await
            .expect("overview")
            .json()
            .await
            .expect("overview JSON");
        if overview["journal"]["written"].as_u64().unwrap_or(0) >= rows {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "journal never reached {rows} rows: {}",
            overview["journal"]
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let login = http
        .post(format!("{base}/login"))
        .form(&[("token", TOKEN)])
        .send()
        .await
        .expect("login");
    let cookie = login.headers()["set-cookie"]
        .to_str()
        .expect("cookie")
        .to_owned();
    let cookie = cookie.split(';').next().unwrap_or_default().to_owned();
    let mut times = Vec::new();
    for _ in 0..11 {
        let started = Instant::now();
        let page = http
            .get(format!("{base}/"))
            .header("cookie", &cookie)
            .send()
            .await
            .expect("page");
        assert_eq!(page.status().as_u16(), 200);
        let html = page.text().await.expect("page body");
        times.push(started.elapsed().as_secs_f64() * 1e9);
        assert!(html.contains("Overview"));
    }
    times
}
