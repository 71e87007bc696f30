//! The live channel's figures: from the request (the receiver publishes before it answers 200) to
//! the subscriber's event (p50, p99) on one instance and across two instances through Redis and
//! PostgreSQL; one event fanned out to 1,000 subscribers; resident memory and CPU of 10,000 idle
//! subscribers. Prints one JSON line.
//!
//! ```text
//! live_channel [--samples 500] [--fanout 1000] [--idle 10000]     # REDIS_URL, DATABASE_URL: across
//! ```
//!
//! Receivers run as child processes (`live_channel serve BIND [STORE]`), so their memory and CPU are
//! their own and each side has its own file-descriptor limit.
//!
//! The idle figure has a floor beside it: the same 10,000 connections held open by a bare actix
//! endpoint (`live_channel serve-floor BIND`) whose event stream sends one comment and then
//! nothing, so that what the live channel adds is told apart from what every actix-web
//! streaming response costs.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use actix_web::{App, HttpServer};
use replicate_webhook::dedupe::StoreUrl;
use replicate_webhook::live::LiveOptions;
use replicate_webhook::testkit::TestDelivery;
use replicate_webhook::{
    ANY_MODEL, Event, HandlerError, HandlerKind, Module, Prediction, Secret, WebhookConfig,
};
use replicate_webhook_bench::{cpu_ticks, rss_kib};
use tokio::sync::mpsc;

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

fn secret() -> Secret {
    Secret::parse(SECRET).expect("valid secret")
}

fn config(store: Option<&str>) -> WebhookConfig {
    let module = [
        HandlerKind::Start,
        HandlerKind::Output,
        HandlerKind::Logs,
        HandlerKind::Succeeded,
        HandlerKind::Failed,
        HandlerKind::Canceled,
    ]
    .into_iter()
    .fold(Module::new(ANY_MODEL).events(Event::ALL), |m, kind| {
        m.on(kind, |_: Prediction| async { Ok::<(), HandlerError>(()) })
    });
    let mut config = WebhookConfig::new(secret())
        .collect_registered(false)
        .module(module);
    if let Some(store) = store {
        config = config
            .store_url(&StoreUrl::parse(store).expect("store URL"))
            .expect("store opens");
    }
    config
        .live(LiveOptions::new().max_subscribers(50_000))
        .expect("live channel")
}

/// `live_channel serve BIND [STORE]`: a receiver with the live channel, until killed.
fn serve(bind: &str, store: Option<&str>) {
    let config = config(store);
    actix_web::rt::System::new().block_on(async move {
        let server = HttpServer::new(move || {
            App::new().configure(replicate_webhook::configure(config.clone()))
        })
        .backlog(4096)
        .max_connections(50_000)
        .workers(2)
        .bind(bind)
        .expect("bind")
        .run();
        println!("ready");
        server.await.expect("serve");
    });
}

struct Receiver {
    child: Child,
    base: String,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn(store: Option<&str>) -> Receiver {
    spawn_with(&["serve"], store)
}

/// This binary as a child process: `args`, a free loopback address, then `store` if any.
fn spawn_with(args: &[&str], store: Option<&str>) -> Receiver {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let bind = format!("127.0.0.1:{port}");
    let mut cmd = Command::new(std::env::current_exe().expect("own path"));
    cmd.args(args).arg(&bind);
    if let Some(store) = store {
        cmd.arg(store);
    }
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn receiver");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("ready line");
    assert_eq!(line.trim(), "ready");
    Receiver {
        child,
        base: format!("http://{bind}"),
    }
}

fn delivery(id: &str, status: &str, logs: &str) -> TestDelivery {
    TestDelivery::new(
        serde_json::json!({
            "id": id, "model": "bench/live", "version": "v", "status": status,
            "input": {}, "output": null, "logs": logs, "error": null,
            "created_at": "2024-01-01T00:00:00Z",
        })
        .to_string(),
    )
}

async fn post(http: &reqwest::Client, base: &str, delivery: &TestDelivery) {
    let signed = delivery.sign(&secret());
    let mut req = http
        .post(format!("{base}{}", signed.path()))
        .header("content-type", "application/json")
        .body(signed.body().to_vec());
    for (name, value) in signed.headers() {
        req = req.header(name, value);
    }
    let resp = req.send().await.expect("post");
    assert_eq!(resp.status(), 200);
}

/// Subscribes over HTTP; each event's arrival time goes to `events`.
async fn subscribe(http: &reqwest::Client, url: &str, events: mpsc::UnboundedSender<Instant>) {
    let resp = http.get(url).send().await.expect("subscribe");
    assert_eq!(resp.status(), 200);
    let mut body = resp;
    tokio::spawn(async move {
        let mut pending = String::new();
        while let Ok(Some(chunk)) = body.chunk().await {
            pending.push_str(&String::from_utf8_lossy(&chunk));
            while let Some(end) = pending.find("\n\n") {
                let block: String = pending.drain(..end + 2).collect();
                if block.contains("data: ") && events.send(Instant::now()).is_err() {
                    return;
                }
            }
        }
    });
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss
    )]
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

/// From each request to the subscriber's event, publishing on `to` and subscribed on `from`.
async fn latency(to: &str, from: &str, samples: usize) -> (f64, f64) {
    let http = reqwest::Client::new();
    let live = config(None).live_channel().expect("on");
    let id = format!("lat-{}", std::process::id());
    let (tx, mut rx) = mpsc::unbounded_channel();
    post(&http, to, &delivery(&id, "starting", "")).await;
    subscribe(&http, &format!("{from}{}", live.events_url(&id)), tx).await;
    rx.recv().await.expect("state event");
    let mut logs = String::new();
    let mut took = Vec::with_capacity(samples);
    for n in 0..samples {
        logs.push_str(&n.to_string());
        logs.push('\n');
        // Timed from the request: the receiver publishes before it answers, so the event
        // usually reaches the subscriber before the 200 reaches the sender, and a time taken
        // at the 200 would be zero. From the request it bounds the 200-to-event time.
        let sent = Instant::now();
        post(&http, to, &delivery(&id, "processing", &logs)).await;
        let at = tokio::time::timeout(Duration::from_secs(5), rx.recv())
            .await
            .expect("event within 5 s")
            .expect("stream open");
        took.push(at.saturating_duration_since(sent));
    }
    took.sort_unstable();
    (percentile(&took, 0.5), percentile(&took, 0.99))
}

/// One event to `n` subscribers: (p50, max) from the request to each subscriber's event.
async fn fanout(base: &str, n: usize) -> (f64, f64) {
    let http = reqwest::Client::new();
    let live = config(None).live_channel().expect("on");
    let id = format!("fan-{}", std::process::id());
    post(&http, base, &delivery(&id, "starting", "")).await;
    let mut receivers = Vec::with_capacity(n);
    for _ in 0..n {
        let (tx, mut rx) = mpsc::unbounded_channel();
        subscribe(&http, &format!("{base}{}", live.events_url(&id)), tx).await;
        rx.recv().await.expect("state event");
        receivers.push(rx);
    }
    // Timed from the request, as in `latency`.
    let sent = Instant::now();
    post(&http, base, &delivery(&id, "processing", "go\n")).await;
    let mut took = Vec::with_capacity(n);
    for rx in &mut receivers {
        let at = rx.recv().await.expect("event");
        took.push(at.saturating_duration_since(sent));
    }
    took.sort_unstable();
    (percentile(&took, 0.5), percentile(&took, 1.0))
}

/// `n` idle subscribers, the `i`th on the stream at `path(i)`: the receiver's resident memory
/// added (MB) and its CPU ticks over 10 idle seconds.
async fn idle(receiver: &Receiver, n: usize, path: impl Fn(usize) -> String) -> (f64, u64) {
    let pid = receiver.child.id();
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .expect("client");
    let before = rss_kib(pid).unwrap_or_default();
    let (tx, _rx) = mpsc::unbounded_channel();
    for i in 0..n {
        subscribe(&http, &format!("{}{}", receiver.base, path(i)), tx.clone()).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after = rss_kib(pid).unwrap_or_default();
    let ticks = cpu_ticks(pid).unwrap_or_default();
    tokio::time::sleep(Duration::from_secs(10)).await;
    let idle_ticks = cpu_ticks(pid).unwrap_or_default() - ticks;
    #[allow(clippy::cast_precision_loss)]
    let mb = after.saturating_sub(before) as f64 / 1024.0;
    (mb, idle_ticks)
}

fn flag(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1)?.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("serve") {
        serve(&args[2], args.get(3).map(String::as_str));
        return;
    }
    if args.get(1).map(String::as_str) == Some("serve-floor") {
        floor::serve(&args[2]);
        return;
    }
    let samples = flag("--samples", 500);
    let fan = flag("--fanout", 1000);
    let idle_n = flag("--idle", 10_000);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let mut out = serde_json::Map::new();
    runtime.block_on(async {
        let one = spawn(None);
        let (p50, p99) = latency(&one.base, &one.base, samples).await;
        out.insert(
            "same_instance_ms".into(),
            serde_json::json!({"p50": p50, "p99": p99}),
        );
        for (name, var) in [("redis", "REDIS_URL"), ("postgres", "DATABASE_URL")] {
            let Ok(url) = std::env::var(var) else {
                continue;
            };
            let store = if name == "redis" {
                let sep = if url.contains('?') { '&' } else { '?' };
                format!("{url}{sep}prefix=bench-live-{}:", std::process::id())
            } else {
                url
            };
            let a = spawn(Some(&store));
            let b = spawn(Some(&store));
            let (p50, p99) = latency(&a.base, &b.base, samples).await;
            out.insert(
                format!("across_{name}_ms"),
                serde_json::json!({"p50": p50, "p99": p99}),
            );
        }
        let (p50, max) = fanout(&one.base, fan).await;
        out.insert(
            "fanout_ms".into(),
            serde_json::json!({"subscribers": fan, "p50": p50, "max": max}),
        );
        let quiet = spawn(None);
        let live = config(None).live_channel().expect("on");
        let (mb, ticks) = idle(&quiet, idle_n, |i| live.events_url(&format!("idle-{i}"))).await;
        drop(quiet);
        let bare = spawn_with(&["serve-floor"], None);
        let (floor_mb, floor_ticks) = idle(&bare, idle_n, |i| format!("/floor/{i}")).await;
        out.insert(
            "idle".into(),
            serde_json::json!({
                "subscribers": idle_n,
                "rss_mb": mb,
                "cpu_ticks_10s": ticks,
                "floor_rss_mb": floor_mb,
                "floor_cpu_ticks_10s": floor_ticks,
            }),
        );
    });
    println!("{}", serde_json::Value::Object(out));
}

/// The floor under the idle figure: a bare actix-web server holding event streams open.
mod floor {
    use std::pin::Pin;
    use std::task::{Context, Poll};

    use actix_web::body::{BodySize, MessageBody};
    use actix_web::web::Bytes;
    use actix_web::{App, HttpResponse, HttpServer, web};

    /// One comment, then nothing until the client leaves: the least an open event stream is.
    struct Idle {
        first: Option<Bytes>,
    }

    impl MessageBody for Idle {
        type Error = std::convert::Infallible;

        fn size(&self) -> BodySize {
            BodySize::Stream
        }

        fn poll_next(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<Bytes, Self::Error>>> {
            // Never woken again: an idle stream has nothing to send.
            self.first
                .take()
                .map_or(Poll::Pending, |b| Poll::Ready(Some(Ok(b))))
        }
    }

    async fn events() -> HttpResponse {
        HttpResponse::Ok()
            .content_type("text/event-stream")
            .body(Idle {
                first: Some(Bytes::from_static(b": open\n\n")),
            })
    }

    /// `live_channel serve-floor BIND`: the same server settings as `serve`, one route.
    pub(super) fn serve(bind: &str) {
        actix_web::rt::System::new().block_on(async move {
            let server = HttpServer::new(|| App::new().route("/floor/{id}", web::get().to(events)))
                .backlog(4096)
                .max_connections(50_000)
                .workers(2)
                .bind(bind)
                .expect("bind")
                .run();
            println!("ready");
            server.await.expect("serve");
        });
    }
}
