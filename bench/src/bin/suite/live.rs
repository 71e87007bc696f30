//! The live channel's rows: the `live_channel` binary's JSON line as table rows with targets.

use std::process::Command;

use serde_json::Value;

use super::Env;
use super::table::Table;

pub(crate) fn rows(env: &Env, table: &mut Table) {
    eprintln!("live channel");
    // Inherits REDIS_URL and DATABASE_URL: the across-instance rows need them.
    let out = Command::new(env.bin.join("live_channel"))
        .output()
        .expect("live_channel");
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    eprintln!("  {v}");
    let ms = |row: &str, key: &str| v[row][key].as_f64().unwrap_or(f64::NAN);
    for (row, what, target) in [
        (
            "same_instance_ms",
            "live channel: request to subscriber's event, one instance",
            5.0,
        ),
        (
            "across_redis_ms",
            "live channel: request to event across instances, Redis",
            20.0,
        ),
        (
            "across_postgres_ms",
            "live channel: request to event across instances, PostgreSQL",
            20.0,
        ),
    ] {
        if v[row].is_null() {
            continue;
        }
        table.row(
            &format!("{what} (p50 / p99)"),
            format!("{:.2} / {:.2} ms", ms(row, "p50"), ms(row, "p99")),
            String::new(),
            String::new(),
            &format!("p99 < {target:.0} ms"),
            Some(ms(row, "p99") < target),
        );
    }
    table.row(
        &format!(
            "live channel: one event to {} subscribers (p50 / last)",
            v["fanout_ms"]["subscribers"]
        ),
        format!(
            "{:.2} / {:.2} ms",
            ms("fanout_ms", "p50"),
            ms("fanout_ms", "max")
        ),
        String::new(),
        String::new(),
        "",
        None,
    );
    // The same connections held by a bare actix-web event stream: what any streaming response
    // costs on actix-web, below which the live channel cannot go.
    table.row(
        &format!(
            "bare actix-web event streams: {} idle, resident memory added / CPU ticks in 10 s",
            v["idle"]["subscribers"]
        ),
        format!(
            "{:.1} MB / {}",
            ms("idle", "floor_rss_mb"),
            v["idle"]["floor_cpu_ticks_10s"]
        ),
        String::new(),
        String::new(),
        "",
        None,
    );
    table.row(
        &format!(
            "live channel: {} idle subscribers, resident memory added / CPU ticks in 10 s",
            v["idle"]["subscribers"]
        ),
        format!(
            "{:.1} MB / {}",
            ms("idle", "rss_mb"),
            v["idle"]["cpu_ticks_10s"]
        ),
        String::new(),
        String::new(),
        "< 100 MB",
        Some(ms("idle", "rss_mb") < 100.0),
    );
}
