//! Shared pieces of the benchmarks: realistic bodies, the SHA-256 backend in use, resident memory.
//!
//! `bench/run` builds and runs everything; see docs/performance.md.

/// The model the benchmark receiver and the load generator agree on.
pub const MODEL: &str = "acme/bench";

/// The path every receiver under test serves.
pub const PATH: &str = "/webhooks/replicate";

/// The secret every receiver under test is given (`REPLICATE_WEBHOOK_SECRET`).
pub const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// A prediction id's length: Replicate's ids are 26 base32 characters.
pub const ID_LEN: usize = 26;

/// A bench's `main`, running `target` with the settings every bench shares: short, so that
/// `bench/run` stays quick, and the same, so that their figures compare.
///
/// A macro, not a function returning the settings, so that only the benches depend on criterion.
#[macro_export]
macro_rules! bench_main {
    ($target:path) => {
        ::criterion::criterion_group! {
            name = benches;
            config = ::criterion::Criterion::default()
                .warm_up_time(::std::time::Duration::from_millis(500))
                .measurement_time(::std::time::Duration::from_secs(2))
                .sample_size(30);
            targets = $target
        }
        ::criterion::criterion_main!(benches);
    };
}

/// A `succeeded` prediction of about `size` bytes: the shape Replicate posts, its `logs` grown
/// to reach the size (long logs are what makes real bodies large).
pub fn prediction_body(id: &str, model: &str, size: usize) -> Vec<u8> {
    let base = shaped(id, model, "").len();
    let mut logs = String::with_capacity(size);
    // In JSON each line costs its text plus two bytes for the escaped newline.
    let mut escaped = 0;
    for step in 0.. {
        let line = format!("step {step}: generating tokens ...");
        if base + escaped + line.len() + 2 > size {
            break;
        }
        escaped += line.len() + 2;
        logs.push_str(&line);
        logs.push('\n');
    }
    shaped(id, model, &logs)
}

fn shaped(id: &str, model: &str, logs: &str) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "id": id,
        "model": model,
        "version": "5c7d5dc6dd8bf75c1acaa8565735e7986bc5b66206b55cca93cb72c9bf15ccaa",
        "input": {"text": "Alice"},
        "logs": logs,
        "output": "hello Alice",
        "error": null,
        "status": "succeeded",
        "created_at": "2026-12-01T10:19:34.765994Z",
        "data_removed": false,
        "started_at": "2026-12-01T10:19:34.779176Z",
        "completed_at": "2026-12-01T10:19:34.791859Z",
        "source": "api",
        "metrics": {"predict_time": 0.012_683, "total_time": 0.025_865},
        "urls": {
            "cancel": format!("https://api.replicate.com/v1/predictions/{id}/cancel"),
            "get": format!("https://api.replicate.com/v1/predictions/{id}"),
            "web": format!("https://replicate.com/p/{id}"),
        },
    }))
    .expect("a JSON value serializes")
}

cpufeatures::new!(sha_ni, "sha", "sse2", "ssse3", "sse4.1");

/// The SHA-256 code path `sha2` picks on this CPU: it detects SHA-NI at run time with the same
/// `cpufeatures` check as this one.
pub fn sha256_backend() -> &'static str {
    if cfg!(any(target_arch = "x86", target_arch = "x86_64")) {
        if sha_ni::get() {
            "SHA-NI (x86 SHA extensions)"
        } else {
            "software (no SHA-NI on this CPU)"
        }
    } else if cfg!(target_arch = "aarch64") {
        "ARMv8 SHA2 if present, else software"
    } else {
        "software"
    }
}

/// Resident memory of process `pid`, in KiB (`VmRSS` in `/proc/<pid>/status`).
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}

/// CPU time (user + system) process `pid` has used, in clock ticks (`/proc/<pid>/stat`).
pub fn cpu_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces: count fields after its closing parenthesis.
    let rest = &stat[stat.rfind(')')? + 2..];
    let mut fields = rest.split(' ');
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

/// One candidate of a paired measurement: its name and one call of the work.
pub type Candidate<'a> = (&'a str, Box<dyn FnMut() + 'a>);

/// Times the candidates side by side: in each of `rounds` rounds, `batch` calls of each in turn
/// (the order rotating), so a burst of load from another process hits every candidate of that
/// round alike. Returns, per candidate, its median time per call and its median ratio to the
/// first candidate within a round, in nanoseconds and as a plain factor.
#[allow(clippy::cast_precision_loss)]
pub fn paired(
    rounds: usize,
    batch: u32,
    candidates: &mut [Candidate<'_>],
) -> Vec<serde_json::Value> {
    let n = candidates.len();
    let mut times = vec![Vec::with_capacity(rounds); n];
    for round in 0..rounds {
        for k in 0..n {
            let i = (round + k) % n;
            let f = &mut candidates[i].1;
            let start = std::time::Instant::now();
            for _ in 0..batch {
                f();
            }
            times[i].push(start.elapsed().as_nanos() as f64 / f64::from(batch));
        }
    }
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    (0..n)
        .map(|i| {
            let ratios = times[i]
                .iter()
                .zip(&times[0])
                .map(|(t, base)| t / base)
                .collect();
            serde_json::json!({
                "name": candidates[i].0,
                "median_ns": median(times[i].clone()),
                "ratio_to_first": median(ratios),
            })
        })
        .collect()
}

/// Where the micro benches leave their paired results for the suite to print.
pub fn paired_path(id: &str) -> std::path::PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(
        || std::path::PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../target")),
        std::path::PathBuf::from,
    );
    target
        .join("criterion")
        .join("paired")
        .join(format!("{id}.json"))
}

/// Writes one paired result (see [`paired`]).
pub fn save_paired(id: &str, results: &[serde_json::Value]) {
    let path = paired_path(id);
    std::fs::create_dir_all(path.parent().expect("a parent")).expect("criterion directory");
    std::fs::write(&path, serde_json::to_vec(results).expect("JSON"))
        .expect("write paired results");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_come_out_near_the_size_asked_and_decode() {
        for size in [2048, 64 * 1024, 1024 * 1024] {
            let body = prediction_body(&"a".repeat(ID_LEN), MODEL, size);
            assert!(
                body.len() <= size && body.len() + 64 >= size,
                "{size}: {}",
                body.len()
            );
            let p: replicate_webhook::Prediction<String> = serde_json::from_slice(&body).unwrap();
            assert_eq!(p.model, MODEL);
        }
    }

    #[test]
    fn this_process_has_a_resident_size_and_cpu_time() {
        assert!(rss_kib(std::process::id()).unwrap() > 0);
        assert!(cpu_ticks(std::process::id()).is_some());
    }
}
