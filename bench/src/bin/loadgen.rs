//! HTTP load over loopback: a fixed number of keep-alive connections, each sending distinct
//! signed deliveries (a new prediction id and `webhook-id` per request, signed just before it is
//! sent), bounded in count and in time. Prints one JSON line of results.
//!
//! ```text
//! loadgen --addr 127.0.0.1:8080 --conns 32 --size 2048 --secs 5 [--rate 20000]
//! ```
//!
//! With `--rate` the connections send on a fixed schedule (open loop). A request sent late
//! because earlier responses were late counts its latency from its scheduled time, so a stalled
//! server is charged for the requests it delayed; one sent on time counts from when it was sent.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use replicate_webhook::Secret;
use replicate_webhook::signature::sign;
use replicate_webhook_bench::{ID_LEN, MODEL, PATH, SECRET, prediction_body};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

struct Args {
    addr: String,
    conns: usize,
    size: usize,
    secs: f64,
    warmup: f64,
    max_requests: u64,
    rate: Option<f64>,
}

fn args() -> Args {
    let mut args = Args {
        addr: "127.0.0.1:8080".into(),
        conns: 32,
        size: 2048,
        secs: 5.0,
        warmup: 1.0,
        max_requests: 2_000_000,
        rate: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--addr" => args.addr.clone_from(&value),
            "--conns" => args.conns = num(&flag, &value),
            "--size" => args.size = num(&flag, &value),
            "--secs" => args.secs = num(&flag, &value),
            "--warmup" => args.warmup = num(&flag, &value),
            "--max-requests" => args.max_requests = num(&flag, &value),
            "--rate" => args.rate = Some(num(&flag, &value)),
            _ => panic!("unknown flag {flag}"),
        }
    }
    args
}

fn num<T: std::str::FromStr>(flag: &str, value: &str) -> T {
    value
        .parse()
        .unwrap_or_else(|_| panic!("bad value for {flag}: {value}"))
}

/// A body with a placeholder id, and where the id goes: each request writes its own id there.
struct Template {
    body: Vec<u8>,
    id_at: Vec<usize>,
}

impl Template {
    fn new(size: usize) -> Self {
        let placeholder = "q".repeat(ID_LEN);
        let body = prediction_body(&placeholder, MODEL, size);
        let id_at = body
            .windows(ID_LEN)
            .enumerate()
            .filter(|(_, w)| *w == placeholder.as_bytes())
            .map(|(i, _)| i)
            .collect();
        Self { body, id_at }
    }

    /// The full HTTP request for delivery number `n`, into `out`.
    fn request(&self, secret: &Secret, host: &str, n: u64, out: &mut Vec<u8>) {
        const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz234567";
        let mut body = self.body.clone();
        // A distinct id per request; the run's start time keeps runs against one server apart.
        // Spread over the id space (a multiplication by an odd number is a bijection), since
        // Replicate's ids are random: consecutive ids would land side by side in a store's
        // index, which flatters every B-tree store (SQLite, PostgreSQL) several times over.
        let mut id = [b'a'; ID_LEN];
        let spread = n.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        let mut v = (u128::from(spread) << 64) | u128::from(run_salt());
        for slot in id.iter_mut().rev() {
            *slot = ALPHABET[(v % 32) as usize];
            v /= 32;
        }
        for &at in &self.id_at {
            body[at..at + ID_LEN].copy_from_slice(&id);
        }
        let id = std::str::from_utf8(&id).expect("ASCII");
        let headers = sign(
            secret,
            &format!("msg_{id}"),
            replicate_webhook::signature::unix_now(),
            &body,
        );
        out.clear();
        out.extend_from_slice(
            format!(
                "POST {PATH} HTTP/1.1\r\nhost: {host}\r\ncontent-type: application/json\r\n\
                 user-agent: Replicate-Webhooks/1.0\r\ncontent-length: {}\r\n\
                 webhook-id: {}\r\nwebhook-timestamp: {}\r\nwebhook-signature: {}\r\n\r\n",
                body.len(),
                headers.id,
                headers.timestamp,
                headers.signature
            )
            .as_bytes(),
        );
        out.extend_from_slice(&body);
    }
}

fn run_salt() -> u64 {
    static SALT: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *SALT.get_or_init(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
    })
}

/// Reads one response; returns its status code, and whether the server closes the connection
/// after it (`connection: close`, as a receiver without keep-alive answers). Needs
/// `Content-Length` (every server here sends it).
async fn read_response(stream: &mut TcpStream, buf: &mut Vec<u8>) -> std::io::Result<(u16, bool)> {
    buf.clear();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = std::str::from_utf8(&buf[..end]).unwrap_or_default();
            let status: u16 = head
                .split(' ')
                .nth(1)
                .and_then(|s| s.parse().ok())
                .unwrap_or(0);
            let length: usize = head
                .lines()
                .find_map(|l| {
                    let (name, value) = l.split_once(':')?;
                    name.eq_ignore_ascii_case("content-length")
                        .then(|| value.trim().parse().ok())?
                })
                .unwrap_or(0);
            let close = head.lines().any(|l| {
                l.split_once(':').is_some_and(|(name, value)| {
                    name.eq_ignore_ascii_case("connection")
                        && value.trim().eq_ignore_ascii_case("close")
                })
            });
            while buf.len() < end + 4 + length {
                let n = stream.read(&mut chunk).await?;
                if n == 0 {
                    return Err(std::io::ErrorKind::UnexpectedEof.into());
                }
                buf.extend_from_slice(&chunk[..n]);
            }
            return Ok((status, close));
        }
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

#[derive(Default)]
struct Tally {
    latencies_us: Vec<u32>,
    ok: u64,
    not_ok: u64,
    errors: u64,
}

#[allow(
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    clippy::cast_precision_loss
)]
async fn connection(
    args: Arc<Args>,
    template: Arc<Template>,
    counter: Arc<AtomicU64>,
    start: Instant,
    index: usize,
) -> Tally {
    let secret = Secret::parse(SECRET).expect("secret");
    let mut tally = Tally::default();
    let Ok(mut stream) = TcpStream::connect(&args.addr).await else {
        tally.errors += 1;
        return tally;
    };
    stream.set_nodelay(true).ok();
    let (mut req, mut resp) = (Vec::new(), Vec::new());
    let measure_from = start + Duration::from_secs_f64(args.warmup);
    let end = measure_from + Duration::from_secs_f64(args.secs);
    let interval = args
        .rate
        .map(|r| Duration::from_secs_f64(args.conns as f64 / r));
    // Spread the connections' schedules over one interval.
    let mut next =
        start + interval.map_or(Duration::ZERO, |i| i * index as u32 / args.conns as u32);
    loop {
        let n = counter.fetch_add(1, Ordering::Relaxed);
        if n >= args.max_requests {
            break;
        }
        let sent = if interval.is_none() {
            Instant::now()
        } else if next > Instant::now() {
            // On schedule. The timer wakes up to a millisecond late (tokio's resolution): that
            // delay is the generator's, not the server's, so the clock starts at the wake-up.
            tokio::time::sleep_until(next.into()).await;
            Instant::now()
        } else {
            // Behind schedule because earlier responses came late: charged from when this
            // request was due, so a stalled server pays for every request it delayed.
            next
        };
        if sent >= end {
            break;
        }
        template.request(&secret, &args.addr, n, &mut req);
        let result = async {
            stream.write_all(&req).await?;
            let (status, close) = read_response(&mut stream, &mut resp).await?;
            // A server that closes each connection is sent the next delivery on a new one,
            // the connect counted in that delivery's time.
            if close {
                stream = TcpStream::connect(&args.addr).await?;
                stream.set_nodelay(true).ok();
            }
            Ok::<_, std::io::Error>(status)
        }
        .await;
        let done = Instant::now();
        if sent >= measure_from {
            match result {
                Ok(200) => {
                    tally.ok += 1;
                    tally.latencies_us.push(
                        done.duration_since(sent)
                            .as_micros()
                            .min(u128::from(u32::MAX)) as u32,
                    );
                }
                Ok(_) => tally.not_ok += 1,
                Err(_) => tally.errors += 1,
            }
        }
        if result.is_err() {
            break;
        }
        if let Some(interval) = interval {
            next += interval;
        }
    }
    tally
}

#[allow(
    clippy::cast_precision_loss,
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss
)]
fn main() {
    let args = Arc::new(args());
    let template = Arc::new(Template::new(args.size));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let counter = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let tallies = runtime.block_on(async {
        let tasks: Vec<_> = (0..args.conns)
            .map(|i| {
                tokio::spawn(connection(
                    args.clone(),
                    template.clone(),
                    counter.clone(),
                    start,
                    i,
                ))
            })
            .collect();
        let mut tallies = Vec::new();
        for task in tasks {
            tallies.push(task.await.expect("connection task"));
        }
        tallies
    });
    let measured = (start.elapsed().as_secs_f64() - args.warmup).clamp(0.001, args.secs);
    let mut all = Tally::default();
    for t in tallies {
        all.latencies_us.extend(t.latencies_us);
        all.ok += t.ok;
        all.not_ok += t.not_ok;
        all.errors += t.errors;
    }
    all.latencies_us.sort_unstable();
    let pct = |p: f64| {
        all.latencies_us
            .get(((all.latencies_us.len() as f64 - 1.0) * p).round() as usize)
            .copied()
            .unwrap_or(0)
    };
    println!(
        "{}",
        serde_json::json!({
            "rps": all.ok as f64 / measured,
            "ok": all.ok,
            "not_ok": all.not_ok,
            "errors": all.errors,
            "p50_us": pct(0.50),
            "p99_us": pct(0.99),
            "body_bytes": template.body.len(),
            "sent": counter.load(Ordering::Relaxed).min(args.max_requests),
            "secs": measured,
        })
    );
}
