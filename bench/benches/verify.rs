//! Signature verification: ours, the HMAC floor (a keyed `Hmac<Sha256>` cloned per message, no
//! allocation), the `standardwebhooks` crate and the `svix` crate, over the same bytes.

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput};
use hmac::digest::KeyInit;
use hmac::{Hmac, Mac as _};
use replicate_webhook::signature::{Secret, Verifier, sign, unix_now};
use sha2::Sha256;

const SECRET: &str = replicate_webhook_bench::SECRET;

fn headers(id: &str, timestamp: &str, signature: &str) -> http::HeaderMap {
    let mut map = http::HeaderMap::new();
    map.insert("webhook-id", id.parse().expect("header"));
    map.insert("webhook-timestamp", timestamp.parse().expect("header"));
    map.insert("webhook-signature", signature.parse().expect("header"));
    map
}

fn verify(c: &mut Criterion) {
    let secret = Secret::parse(SECRET).expect("secret");
    let verifier = Verifier::new(vec![secret.clone()]);
    let key = {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD
            .decode(SECRET.trim_start_matches("whsec_"))
            .expect("base64")
    };
    let keyed = <Hmac<Sha256> as KeyInit>::new_from_slice(&key).expect("any key length");
    let standard = standardwebhooks::Webhook::new(SECRET).expect("secret");
    let svix = svix::webhooks::Webhook::new(SECRET).expect("secret");

    let mut group = c.benchmark_group("verify");
    for (name, size) in [
        ("1KiB", 1024usize),
        ("64KiB", 64 * 1024),
        ("1MiB", 1024 * 1024),
    ] {
        let body = replicate_webhook_bench::prediction_body(
            "gm3qorzdhgbfurvjtvhg6dckhu",
            "acme/bench",
            size,
        );
        // The peers check the timestamp against the clock: sign now, measure well inside 5 minutes.
        let signed = sign(&secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", unix_now(), &body);
        let tag = {
            use base64::Engine as _;
            base64::engine::general_purpose::STANDARD
                .decode(signed.signature.trim_start_matches("v1,"))
                .expect("base64")
        };
        let map = headers(&signed.id, &signed.timestamp, &signed.signature);
        let mut candidates: Vec<replicate_webhook_bench::Candidate<'_>> = vec![
            (
                "ours",
                Box::new(|| {
                    verifier
                        .verify(
                            black_box(&signed.id),
                            black_box(&signed.timestamp),
                            black_box(&signed.signature),
                            black_box(&body),
                        )
                        .expect("valid");
                }),
            ),
            (
                "hmac-floor",
                Box::new(|| {
                    let mut mac = keyed.clone();
                    mac.update(black_box(signed.id.as_bytes()));
                    mac.update(b".");
                    mac.update(black_box(signed.timestamp.as_bytes()));
                    mac.update(b".");
                    mac.update(black_box(&body));
                    mac.verify_slice(black_box(&tag)).expect("valid");
                }),
            ),
            (
                "standardwebhooks",
                Box::new(|| {
                    standard
                        .verify(black_box(&body), black_box(&map))
                        .expect("valid");
                }),
            ),
            (
                "svix",
                Box::new(|| {
                    svix.verify(black_box(&body), black_box(&map))
                        .expect("valid");
                }),
            ),
        ];
        // About 1 ms of our verification per batch.
        let batch = u32::try_from((1 << 20) / body.len()).unwrap_or(1).max(1);
        let results = replicate_webhook_bench::paired(150, batch, &mut candidates);
        replicate_webhook_bench::save_paired(&format!("verify-{name}"), &results);
        group.throughput(Throughput::Bytes(body.len() as u64));
        for (candidate, f) in &mut candidates {
            group.bench_function(BenchmarkId::new(*candidate, name), |b| b.iter(&mut *f));
        }
    }
    group.finish();
}

replicate_webhook_bench::bench_main!(verify);
