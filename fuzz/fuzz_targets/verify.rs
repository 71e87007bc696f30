//! Any headers, body, secret and clock: verification never panics, and what `sign` produced
//! verifies whenever the headers are valid and the clock is within the tolerance.
#![no_main]

use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;
use replicate_webhook::signature::{DEFAULT_TOLERANCE, Secret, Verifier, sign};

#[derive(Debug, Arbitrary)]
struct Input {
    secret_text: String,
    key: Vec<u8>,
    id: String,
    timestamp: String,
    signature: String,
    body: Vec<u8>,
    sent: u32,
    skew: i16,
}

fuzz_target!(|input: Input| {
    // Parsing any text as a secret never panics.
    let parsed = Secret::parse(&input.secret_text);
    let Ok(secret) = Secret::from_bytes(input.key.clone()) else {
        assert!(input.key.is_empty());
        return;
    };
    let mut secrets = vec![secret.clone()];
    secrets.extend(parsed);
    let verifier = Verifier::new(secrets);
    let now = i64::from(input.sent) + i64::from(input.skew);

    // Arbitrary headers: any answer, no panic.
    let _ = verifier.verify_at(
        &input.id,
        &input.timestamp,
        &input.signature,
        &input.body,
        now,
    );

    // A real signature over arbitrary content.
    let headers = sign(&secret, &input.id, i64::from(input.sent), &input.body);
    let result = verifier.verify_at(
        &headers.id,
        &headers.timestamp,
        &headers.signature,
        &input.body,
        now,
    );
    let id_ok = !input.id.is_empty() && input.id.bytes().all(|b| b.is_ascii_graphic() || b == b' ');
    let in_time = u64::from(input.skew.unsigned_abs()) <= DEFAULT_TOLERANCE.as_secs();
    if id_ok && in_time {
        assert_eq!(result, Ok(()), "{headers:?}");
    } else {
        assert!(result.is_err(), "{headers:?}");
    }

    // Another body with the same headers never verifies (unless it is the same body).
    let mut other = input.body.clone();
    other.push(b' ');
    assert!(
        verifier
            .verify_at(
                &headers.id,
                &headers.timestamp,
                &headers.signature,
                &other,
                now
            )
            .is_err()
    );
});
