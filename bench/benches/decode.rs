//! Decoding a delivery: the envelope the receiver routes on, and the envelope plus the handler's
//! typed decode (which starts from the envelope), against `serde_json::from_slice::<Value>` of
//! the same bytes; and a typed decode of the whole body by `from_slice` against `from_str` after
//! one UTF-8 check, and against `sonic-rs`, a SIMD parser, decoding the same types.

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput};
use replicate_webhook::__private::{Envelope, typed};
use replicate_webhook::Prediction;
use serde::de::DeserializeOwned;

/// The receiver's own routing decode (`runtime/src/envelope.rs`).
fn envelope(body: &[u8]) -> serde_json::Result<Envelope<'_>> {
    Envelope::parse(body)
}

/// What a handler taking `Prediction<O>` gets, decoded as the receiver decodes it: the envelope,
/// then only `input` and `output` into their types.
fn routed_and_typed<O: DeserializeOwned>(body: &[u8]) -> Prediction<O> {
    let mut envelope = envelope(body).expect("JSON");
    let decoded = envelope.take_decoded().expect("a prediction in full");
    typed(decoded).expect("typed")
}

fn fixture(name: &str) -> Vec<u8> {
    let path = format!("{}/../fixtures/payloads/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// A 1 MiB LLM prediction: long `logs`, output streamed as token strings.
fn llm() -> Vec<u8> {
    let mut p: serde_json::Value =
        serde_json::from_slice(&replicate_webhook_bench::prediction_body(
            "gm3qorzdhgbfurvjtvhg6dckhu",
            "meta/meta-llama-3-70b-instruct",
            1024 * 1024 - 16 * 1024,
        ))
        .expect("JSON");
    p["output"] = (0..2000)
        .map(|i| format!(" token{i}"))
        .collect::<Vec<_>>()
        .into();
    serde_json::to_vec(&p).expect("JSON")
}

fn group<O: DeserializeOwned + 'static>(c: &mut Criterion, name: &str, body: &[u8]) {
    let mut candidates: Vec<replicate_webhook_bench::Candidate<'_>> = vec![
        (
            "value",
            Box::new(|| {
                drop(black_box(
                    serde_json::from_slice::<serde_json::Value>(black_box(body)).expect("JSON"),
                ));
            }),
        ),
        (
            "envelope",
            Box::new(|| drop(black_box(envelope(black_box(body)).expect("JSON")))),
        ),
        (
            "typed",
            Box::new(|| drop(black_box(routed_and_typed::<O>(black_box(body))))),
        ),
        (
            "from_slice",
            Box::new(|| {
                drop(black_box(
                    serde_json::from_slice::<Prediction<O>>(black_box(body)).expect("JSON"),
                ));
            }),
        ),
        (
            "sonic-rs",
            Box::new(|| {
                drop(black_box(
                    sonic_rs::from_slice::<Prediction<O>>(black_box(body)).expect("JSON"),
                ));
            }),
        ),
        (
            "from_str",
            Box::new(|| {
                let text = std::str::from_utf8(black_box(body)).expect("UTF-8");
                drop(black_box(
                    serde_json::from_str::<Prediction<O>>(text).expect("JSON"),
                ));
            }),
        ),
    ];
    let batch = u32::try_from((256 << 10) / body.len()).unwrap_or(1).max(1);
    let results = replicate_webhook_bench::paired(100, batch, &mut candidates);
    replicate_webhook_bench::save_paired(&format!("decode-{name}"), &results);
    let mut group = c.benchmark_group("decode");
    group.throughput(Throughput::Bytes(body.len() as u64));
    for (candidate, f) in &mut candidates {
        group.bench_function(BenchmarkId::new(*candidate, name), |b| b.iter(&mut *f));
    }
    group.finish();
}

fn decode(c: &mut Criterion) {
    group::<String>(c, "hello-world", &fixture("hello-world-succeeded.json"));
    group::<String>(
        c,
        "flux-kontext-pro",
        &fixture("flux-kontext-pro-succeeded.json"),
    );
    group::<Vec<String>>(c, "llm-1MiB", &llm());
}

replicate_webhook_bench::bench_main!(decode);
