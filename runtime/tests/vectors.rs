//! Every vector of `fixtures/signature-vectors.json`, checked with the clock fixed at the
//! vector's own timestamp (the tolerance is tested separately in `signature.rs`).

use replicate_webhook::signature::{Secret, Verifier, VerifyError, sign};
use serde_json::Value;

fn vectors() -> Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../fixtures/signature-vectors.json"
    );
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap()
}

fn body(v: &Value) -> Vec<u8> {
    if let Some(body) = v["body"].as_str() {
        return body.as_bytes().to_vec();
    }
    let repeat = &v["body_repeat"];
    let times = usize::try_from(repeat["times"].as_u64().unwrap()).unwrap();
    repeat["text"].as_str().unwrap().repeat(times).into_bytes()
}

fn check(v: &Value) -> Result<(), VerifyError> {
    let secret = Secret::parse(v["secret"].as_str().unwrap()).unwrap();
    let timestamp = v["timestamp"].as_str().unwrap();
    let now = timestamp.parse().unwrap();
    Verifier::new(vec![secret]).verify_at(
        v["id"].as_str().unwrap(),
        timestamp,
        v["signature"].as_str().unwrap(),
        &body(v),
        now,
    )
}

#[test]
fn valid_vectors_are_accepted() {
    let all = vectors();
    let valid = all["valid"].as_array().unwrap();
    assert!(valid.len() >= 5);
    for v in valid {
        assert_eq!(check(v), Ok(()), "{}", v["name"]);
    }
}

#[test]
fn valid_single_signature_vectors_are_reproduced_by_sign() {
    for v in vectors()["valid"].as_array().unwrap() {
        let expected = v["signature"].as_str().unwrap();
        if expected.contains(' ') {
            continue;
        }
        let secret = Secret::parse(v["secret"].as_str().unwrap()).unwrap();
        let ts = v["timestamp"].as_str().unwrap().parse().unwrap();
        let headers = sign(&secret, v["id"].as_str().unwrap(), ts, &body(v));
        assert_eq!(headers.signature, expected, "{}", v["name"]);
    }
}

#[test]
fn invalid_vectors_are_rejected_for_the_stated_reason() {
    let all = vectors();
    let invalid = all["invalid"].as_array().unwrap();
    assert!(!invalid.is_empty());
    for v in invalid {
        let err = check(v).expect_err(v["name"].as_str().unwrap());
        assert_eq!(err.reason(), v["reason"].as_str().unwrap(), "{}", v["name"]);
    }
}

#[test]
fn refused_secrets_are_refused() {
    for s in vectors()["secrets_must_be_refused"].as_array().unwrap() {
        let text = s.as_str().unwrap();
        assert!(Secret::parse(text).is_err(), "{text:?} must be refused");
    }
}
