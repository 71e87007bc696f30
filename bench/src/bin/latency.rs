//! Delivery latency: how long after a prediction turns terminal its handler starts, with
//! webhooks from the simulator, beside a client polling `GET /v1/predictions/{id}` every 5 s.
//! Prints one JSON line.
//!
//! ```text
//! latency --api http://127.0.0.1:5555/v1 --receiver http://127.0.0.1:8082 [--n 1000]
//! ```

use std::time::Duration;

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

struct Args {
    api: String,
    receiver: String,
    n: usize,
    poll: Duration,
}

fn args() -> Args {
    let mut args = Args {
        api: "http://127.0.0.1:5555/v1".into(),
        receiver: "http://127.0.0.1:8082".into(),
        n: 1000,
        poll: Duration::from_secs(5),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--api" => args.api = value,
            "--receiver" => args.receiver = value,
            "--n" => args.n = value.parse().expect("--n"),
            "--poll-secs" => {
                args.poll = Duration::from_secs_f64(value.parse().expect("--poll-secs"));
            }
            _ => panic!("unknown flag {flag}"),
        }
    }
    args
}

/// Spreads start delays evenly but out of order (a multiplicative walk over `0..n`).
fn spread(i: usize, n: usize, max_ms: u64) -> u64 {
    let slot = (i * 7919) % n.max(1);
    max_ms * slot as u64 / n.max(1) as u64
}

async fn create(
    client: &reqwest::Client,
    api: &str,
    webhook: Option<&str>,
    start_ms: u64,
) -> reqwest::Result<String> {
    let mut body = serde_json::json!({"input": {"text": "Alice"}});
    if let Some(url) = webhook {
        body["webhook"] = url.into();
        body["webhook_events_filter"] = serde_json::json!(["completed"]);
    }
    let created: serde_json::Value = client
        .post(format!("{api}/models/replicate/hello-world/predictions"))
        .bearer_auth("bench")
        .header("x-simulator-steps", "1")
        .header("x-simulator-step-ms", "10")
        .header("x-simulator-start-ms", start_ms.to_string())
        .json(&body)
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    Ok(created["id"].as_str().unwrap_or_default().to_owned())
}

async fn poll_until_done(
    client: reqwest::Client,
    api: String,
    id: String,
    every: Duration,
) -> Option<i64> {
    for _ in 0..10 {
        tokio::time::sleep(every).await;
        let p: serde_json::Value = client
            .get(format!("{api}/predictions/{id}"))
            .bearer_auth("bench")
            .send()
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        if let Some(completed) = p["completed_at"].as_str() {
            let seen = OffsetDateTime::now_utc();
            let completed = OffsetDateTime::parse(completed, &Rfc3339).ok()?;
            return i64::try_from((seen - completed).whole_microseconds()).ok();
        }
    }
    None
}

async fn delays(client: &reqwest::Client, receiver: &str) -> Vec<i64> {
    client
        .get(format!("{receiver}/_bench/latency"))
        .send()
        .await
        .expect("receiver")
        .json()
        .await
        .expect("delays")
}

#[allow(
    clippy::cast_precision_loss,
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss
)]
fn percentile(sorted: &[i64], p: f64) -> i64 {
    sorted
        .get(((sorted.len() as f64 - 1.0) * p).round() as usize)
        .copied()
        .unwrap_or(-1)
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args = args();
    let client = reqwest::Client::new();
    let webhook = format!("{}{}", args.receiver, replicate_webhook_bench::PATH);
    let already = delays(&client, &args.receiver).await.len();

    // Webhooks: predictions created at ~200/s, finishing at spread times.
    for i in 0..args.n {
        create(&client, &args.api, Some(&webhook), spread(i, args.n, 1000))
            .await
            .expect("create a prediction");
        if i % 10 == 9 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let mut pushed = Vec::new();
    for _ in 0..60 {
        pushed = delays(&client, &args.receiver).await.split_off(already);
        if pushed.len() >= args.n {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    // Polling: each client polls its prediction every `poll` from creation, as `--follow` does.
    let mut pollers = Vec::new();
    for i in 0..args.n {
        let id = create(
            &client,
            &args.api,
            None,
            spread(
                i,
                args.n,
                u64::try_from(args.poll.as_millis()).unwrap_or(u64::MAX),
            ),
        )
        .await
        .expect("create a prediction");
        pollers.push(tokio::spawn(poll_until_done(
            client.clone(),
            args.api.clone(),
            id,
            args.poll,
        )));
        if i % 10 == 9 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let mut polled = Vec::new();
    for poller in pollers {
        if let Ok(Some(delay)) = poller.await {
            polled.push(delay);
        }
    }

    pushed.sort_unstable();
    polled.sort_unstable();
    println!(
        "{}",
        serde_json::json!({
            "webhook_n": pushed.len(),
            "webhook_p50_us": percentile(&pushed, 0.5),
            "webhook_p99_us": percentile(&pushed, 0.99),
            "poll_n": polled.len(),
            "poll_p50_us": percentile(&polled, 0.5),
            "poll_p99_us": percentile(&polled, 0.99),
        })
    );
}
