//! The quickstart as users run it, against clients that hold resources without proving they are
//! Replicate: bodies declared large and trickled in, kept-alive connections whose next request
//! head trickles in under a small file-descriptor limit, and the files its database leaves on
//! disk.

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use replicate_webhook::Secret;
use replicate_webhook::testkit::TestDelivery;
use replicate_webhook_tests::process::Process;
use replicate_webhook_tests::raw::RawRequest;
use serde_json::json;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// The quickstart in a fresh working directory (its default SQLite store lands there), started
/// by `sh` with `setup` run first (`ulimit`, `umask`).
fn quickstart(dir: &Path, setup: &str, env: &[(&str, &str)]) -> Process {
    let mut env = env.to_vec();
    env.push(("REPLICATE_WEBHOOK_SECRET", SECRET));
    Process::start_with_args(
        "sh",
        &[
            "-c",
            &format!("{setup} && exec \"$0\""),
            env!("CARGO_BIN_EXE_quickstart"),
        ],
        dir,
        &env,
    )
}

/// Sends one correctly signed `succeeded` delivery; its status, or `None` when no answer came
/// within `wait`.
async fn deliver(url: &str, wait: Duration) -> Option<u16> {
    let secret = Secret::parse(SECRET).unwrap();
    let signed = TestDelivery::succeeded("replicate/hello-world", json!("hello")).sign(&secret);
    let mut request = reqwest::Client::new()
        .post(url)
        .timeout(wait)
        .header("content-type", "application/json")
        .body(signed.body().to_vec());
    for (name, value) in signed.headers() {
        request = request.header(name, value);
    }
    request.send().await.ok().map(|r| r.status().as_u16())
}

/// `host:port` of `http://host:port`.
fn addr(base: &str) -> &str {
    base.trim_start_matches("http://")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_deliveries_get_200_while_eight_connections_trickle_8_mib_declared_bodies() {
    let dir = tempfile::tempdir().unwrap();
    let q = quickstart(dir.path(), "true", &[]);
    let stop = Arc::new(AtomicBool::new(false));

    // Eight connections declare 8 MiB bodies (the whole 64 MiB budget for unverified bodies,
    // were declarations charged) with plausible signature headers, and send a byte every 4 s:
    // under the 5 s idle timeout, so they are never cut off while the test runs.
    let mut trickling = Vec::new();
    for _ in 0..8 {
        let signed =
            TestDelivery::succeeded("replicate/hello-world", json!("x")).sign_with_wrong_key();
        let head = RawRequest::post(&signed)
            .content_length((8 * 1024 * 1024).to_string())
            .head();
        let (base, stop) = (q.base.clone(), stop.clone());
        trickling.push(tokio::spawn(async move {
            let mut stream = TcpStream::connect(addr(&base)).await.unwrap();
            stream.write_all(&head).await.unwrap();
            let mut sent = 0;
            while !stop.load(Ordering::SeqCst) {
                if stream.write_all(b"{").await.is_err() {
                    break;
                }
                sent += 1;
                tokio::time::sleep(Duration::from_secs(4)).await;
            }
            sent
        }));
    }
    // Every head is read well within this; a receiver that charged declarations would now have
    // no budget left.
    tokio::time::sleep(Duration::from_secs(1)).await;
    for n in 0..10 {
        assert_eq!(
            deliver(&q.url, Duration::from_secs(5)).await,
            Some(200),
            "signed delivery #{n} while 8 declared bodies trickle"
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    stop.store(true, Ordering::SeqCst);
    for connection in trickling {
        // Each kept sending through the deliveries above (a byte every 4 s for about 11 s).
        assert!(connection.await.unwrap() >= 3);
    }
}

/// Reads one whole `404` answer to a `GET /` (no body beyond its `Content-Length`), or gives up
/// at `deadline`.
async fn read_answer(stream: &mut TcpStream, deadline: Instant) -> bool {
    let mut seen = Vec::new();
    let mut buf = [0u8; 1024];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, stream.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => {
                seen.extend_from_slice(&buf[..n]);
                let text = String::from_utf8_lossy(&seen);
                if let Some((head, body)) = text.split_once("\r\n\r\n") {
                    let length = head
                        .lines()
                        .find_map(|l| {
                            let (name, value) = l.split_once(':')?;
                            name.eq_ignore_ascii_case("content-length")
                                .then(|| value.trim().parse::<usize>().ok())?
                        })
                        .unwrap_or(0);
                    if body.len() >= length {
                        return true;
                    }
                }
            }
            _ => return false,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_ulimit_256_signed_deliveries_get_200_while_300_connections_trickle_a_second_head() {
    let dir = tempfile::tempdir().unwrap();
    let q = quickstart(dir.path(), "ulimit -n 256", &[]);
    let stop = Arc::new(AtomicBool::new(false));
    let closed = Arc::new(AtomicUsize::new(0));

    // 300 connections complete one request (`GET /`, answered 404), then trickle the head of
    // a second one a byte every 2 s. A server that keeps them open past the first answer holds
    // a file descriptor for each, as long as the client likes: more than the 256 it may open.
    let started = Instant::now();
    let mut attackers = Vec::new();
    for _ in 0..300 {
        let (base, stop, closed) = (q.base.clone(), stop.clone(), closed.clone());
        attackers.push(tokio::spawn(async move {
            let Ok(mut stream) = TcpStream::connect(addr(&base)).await else {
                return;
            };
            let first = b"GET / HTTP/1.1\r\nhost: receiver\r\n\r\n";
            if stream.write_all(first).await.is_err() {
                closed.fetch_add(1, Ordering::SeqCst);
                return;
            }
            // A connection the server could not accept yet is not answered: it keeps trying.
            read_answer(&mut stream, Instant::now() + Duration::from_secs(10)).await;
            let second = b"GET / HTTP/1.1\r\nhost: receiver\r\nx-padding: aaaaaaaaaaaaaaaaaaaa";
            let mut probe = [0u8; 64];
            for byte in second {
                if stop.load(Ordering::SeqCst) {
                    return;
                }
                // The server closing the connection shows as end of stream (or a reset).
                let ended =
                    match tokio::time::timeout(Duration::ZERO, stream.read(&mut probe)).await {
                        Ok(Ok(0) | Err(_)) => true,
                        Ok(Ok(_)) | Err(_) => false,
                    };
                if ended || stream.write_all(&[*byte]).await.is_err() {
                    closed.fetch_add(1, Ordering::SeqCst);
                    return;
                }
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
        }));
    }
    tokio::time::sleep(Duration::from_secs(20).saturating_sub(started.elapsed())).await;

    for n in 0..5 {
        assert_eq!(
            deliver(&q.url, Duration::from_secs(5)).await,
            Some(200),
            "signed delivery #{n}, 20 s into the trickle"
        );
    }
    stop.store(true, Ordering::SeqCst);
    for attacker in attackers {
        attacker.await.unwrap();
    }
    // Every trickling connection was closed by the server after its first answer.
    assert_eq!(closed.load(Ordering::SeqCst), 300);
}

/// The mode bits of `dir/name`.
fn mode(dir: &Path, name: &str) -> u32 {
    std::fs::metadata(dir.join(name))
        .unwrap_or_else(|e| panic!("{name}: {e}"))
        .permissions()
        .mode()
        & 0o777
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn database_files_are_owner_only_under_umask_022() {
    // The default store; and inbox mode, whose database holds whole request bodies (the
    // quickstart keeps the dedupe keys in it too).
    for (env, db) in [
        (&[][..], "replicate-webhook.db"),
        (
            &[("REPLICATE_WEBHOOK_INBOX", "sqlite://inbox.db")][..],
            "inbox.db",
        ),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let q = quickstart(dir.path(), "umask 022", env);
        // A delivery makes SQLite write, so its -wal and -shm files exist.
        assert_eq!(deliver(&q.url, Duration::from_secs(10)).await, Some(200));
        for name in [db.to_owned(), format!("{db}-wal"), format!("{db}-shm")] {
            assert_eq!(format!("{:o}", mode(dir.path(), &name)), "600", "{name}");
        }
        drop(q);
    }
}
