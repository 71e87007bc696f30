//! Inbox intake rows: acknowledgements per second of the quickstart storing every delivery in
//! its inbox (`quickstart receive`: no worker, so the run measures intake alone), on `SQLite` and,
//! when `DATABASE_URL` is set, on PostgreSQL; then, on a fresh receiver, the p99 of one
//! acknowledgement at half that rate.

use std::process::Command;

use serde_json::Value;

use super::table::Table;
use super::{Env, Server, load};

/// Deliveries per run: well under the inbox's default backlog bound (100,000 stored jobs), so no
/// row mixes 503s into a rate.
const MAX: &str = "40000";

pub(crate) fn rows(env: &Env, table: &mut Table) -> Vec<(String, Value)> {
    eprintln!("inbox intake");
    let mut notes = Vec::new();
    let mut engines = vec![(
        "SQLite",
        format!("sqlite://{}", env.work.join("inbox.db").display()),
    )];
    if let Ok(url) = std::env::var("DATABASE_URL") {
        engines.push(("PostgreSQL", url));
    }
    for (n, (engine, url)) in engines.into_iter().enumerate() {
        let port = 18090 + u16::try_from(n).unwrap_or(0) * 2;
        let Some(peak) = run(env, engine, &url, port, &[]) else {
            continue;
        };
        let rps = peak["rps"].as_f64().unwrap_or(0.0);
        let half = format!("{:.0}", rps / 2.0);
        let Some(paced) = run(env, engine, &url, port + 1, &["--rate", &half]) else {
            continue;
        };
        let p99 = paced["p99_us"].as_f64().unwrap_or(f64::MAX);
        table.row(
            &format!("inbox intake on {engine}: acknowledgements/s (32 connections)"),
            format!("{rps:.0} ack/s"),
            format!(
                "{:.1} µs CPU each",
                peak["cpu_us_per_req"].as_f64().unwrap_or(f64::NAN)
            ),
            String::new(),
            "(measured)",
            None,
        );
        table.row(
            &format!("inbox intake on {engine}: p99 acknowledgement at half that rate"),
            format!("{:.2} ms", p99 / 1000.0),
            format!("{half} req/s offered"),
            String::new(),
            "< 10 ms",
            Some(p99 < 10_000.0),
        );
        notes.push((format!("inbox intake on {engine}"), peak));
        notes.push((format!("inbox intake on {engine}, half rate"), paced));
    }
    notes
}

/// One load run against a fresh inbox: the quickstart in `receive` mode on an emptied inbox.
fn run(env: &Env, engine: &str, url: &str, port: u16, extra: &[&str]) -> Option<Value> {
    if !empty(engine, url, env) {
        eprintln!("  {engine}: could not empty the inbox; not measured");
        return None;
    }
    let bind = format!("127.0.0.1:{port}");
    let server = Server::start(
        env,
        &env.bin.join("quickstart"),
        &["receive"],
        &[
            // The dedupe store defaults to the inbox's database: claims beside the jobs.
            ("REPLICATE_WEBHOOK_INBOX", url),
            ("BIND", &bind),
        ],
        port,
    );
    let mut args = vec!["--max-requests", MAX];
    args.extend_from_slice(extra);
    Some(load(env, &server, port, 2048, &args))
}

/// Starts each run on an empty inbox: the backlog bound counts the jobs earlier runs left.
fn empty(engine: &str, url: &str, env: &Env) -> bool {
    if engine == "SQLite" {
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(env.work.join(format!("inbox.db{suffix}")));
        }
        return true;
    }
    Command::new("psql")
        .args([
            url,
            "-q",
            "-c",
            "DO $$ BEGIN IF to_regclass('replicate_webhook_jobs') IS NOT NULL THEN \
             TRUNCATE replicate_webhook_jobs; END IF; \
             IF to_regclass('replicate_webhook_keys') IS NOT NULL THEN \
             TRUNCATE replicate_webhook_keys; END IF; END $$",
        ])
        .status()
        .is_ok_and(|s| s.success())
}
