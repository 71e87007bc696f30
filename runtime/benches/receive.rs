//! What one delivery costs: signature verification alone, and the whole pipeline (size limit,
//! verification, envelope decode, dedupe claim, typed decode, dispatch, completion) through the
//! actix service, in process.
//!
//! ```text
//! cargo bench -p replicate-webhook --features testkit --bench receive
//! ```

use std::hint::black_box;

use actix_web::{App, test};
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use replicate_webhook::signature::{Secret, Verifier, sign};
use replicate_webhook::testkit::{TestDelivery, new_prediction_id, sample_prediction};
use replicate_webhook::{HandlerError, HandlerKind, Module, Prediction, WebhookConfig, configure};

const MODEL: &str = "acme/bench";

fn verify(c: &mut Criterion) {
    let secret = Secret::generate();
    let verifier = Verifier::new(vec![secret.clone()]);
    let mut group = c.benchmark_group("verify");
    for size in [1024usize, 64 * 1024, 1024 * 1024] {
        let body = vec![b'a'; size];
        let headers = sign(&secret, "msg_bench", 1_700_000_000, &body);
        group.throughput(Throughput::Bytes(size as u64));
        group.bench_function(format!("{}KiB", size / 1024), |b| {
            b.iter(|| {
                verifier
                    .verify_at(
                        black_box(&headers.id),
                        black_box(&headers.timestamp),
                        black_box(&headers.signature),
                        black_box(&body),
                        1_700_000_000,
                    )
                    .expect("valid");
            });
        });
    }
    group.finish();
}

fn receive(c: &mut Criterion) {
    let system = actix_web::rt::System::new();
    let secret = Secret::generate();
    let module =
        Module::new(MODEL).on(HandlerKind::Succeeded, |p: Prediction<String>| async move {
            black_box(p.output);
            Ok::<(), HandlerError>(())
        });
    // Criterion builds requests in batches ahead of the timed calls; a wide tolerance keeps the
    // early ones valid however long a batch takes.
    let config = WebhookConfig::new(secret.clone())
        .tolerance(std::time::Duration::from_hours(24))
        .collect_registered(false)
        .module(module);
    let app = system.block_on(test::init_service(App::new().configure(configure(config))));

    let mut group = c.benchmark_group("receive");
    group.bench_function("succeeded", |b| {
        b.iter_batched(
            || {
                let body = sample_prediction(
                    &new_prediction_id(),
                    MODEL,
                    "succeeded",
                    "hello Alice".into(),
                );
                TestDelivery::new(body.to_string())
                    .sign(&secret)
                    .to_request()
                    .to_request()
            },
            |req| {
                let resp = system.block_on(test::call_service(&app, req));
                let status = resp.status();
                let body = system.block_on(test::read_body(resp));
                assert!(
                    status.is_success(),
                    "{status} {}",
                    String::from_utf8_lossy(&body)
                );
            },
            BatchSize::SmallInput,
        );
    });
    let duplicate = TestDelivery::succeeded(MODEL, "hello Alice".into()).sign(&secret);
    system.block_on(test::call_service(
        &app,
        duplicate.to_request().to_request(),
    ));
    group.bench_function("duplicate", |b| {
        b.iter_batched(
            || duplicate.to_request().to_request(),
            |req| {
                let resp = system.block_on(test::call_service(&app, req));
                assert!(resp.status().is_success(), "{}", resp.status());
            },
            BatchSize::SmallInput,
        );
    });
    group.bench_function("bad_signature", |b| {
        let forged = TestDelivery::succeeded(MODEL, "hello Alice".into()).sign_with_wrong_key();
        b.iter_batched(
            || forged.to_request().to_request(),
            |req| {
                let resp = system.block_on(test::call_service(&app, req));
                assert_eq!(resp.status().as_u16(), 401);
            },
            BatchSize::SmallInput,
        );
    });
    group.finish();
}

criterion_group!(benches, verify, receive);
criterion_main!(benches);
