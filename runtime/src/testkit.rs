//! Signed test deliveries, for `actix_web::test` and for real HTTP clients; feature `testkit`.
//!
//! ```
//! use replicate_webhook::testkit::TestDelivery;
//! use replicate_webhook::Secret;
//!
//! let secret = Secret::generate();
//! let delivery = TestDelivery::succeeded("replicate/hello-world", serde_json::json!("hello Alice"));
//! let request = delivery.sign(&secret).to_request(); // an actix_web::test::TestRequest
//! # let _ = request;
//! ```

use actix_web::test::TestRequest;

use crate::registry::DEFAULT_PATH;
use crate::signature::{
    self, HEADER_ID, HEADER_SIGNATURE, HEADER_TIMESTAMP, Secret, SignedHeaders,
};

/// The dedupe protocol itself, for tests of a store or of the inbox. An app never calls it: the
/// receiver and the inbox do, and [`dedupe`](crate::dedupe) exports only what an app or a
/// custom store uses.
pub mod protocol {
    pub use crate::clock::now_ms;
    pub use crate::dedupe::gate::{Admission, Delivery, Gate, Lease, OutputUndo, Policy, Progress};
}

/// A prediction body to deliver, before signing.
#[derive(Debug, Clone)]
pub struct TestDelivery {
    body: Vec<u8>,
    id: String,
    timestamp: i64,
    path: String,
}

impl TestDelivery {
    /// A delivery of `body` exactly as given (it is signed byte for byte).
    pub fn new(body: impl Into<Vec<u8>>) -> Self {
        Self {
            body: body.into(),
            id: signature::new_message_id(),
            timestamp: signature::unix_now(),
            path: DEFAULT_PATH.to_owned(),
        }
    }

    /// A realistic prediction of `model` with `status` and `output`.
    pub fn prediction(model: &str, status: &str, output: serde_json::Value) -> Self {
        Self::new(sample_prediction(&new_prediction_id(), model, status, output).to_string())
    }

    /// A `succeeded` prediction of `model` with `output`.
    pub fn succeeded(model: &str, output: serde_json::Value) -> Self {
        Self::prediction(model, "succeeded", output)
    }

    /// A `starting` prediction of `model`.
    pub fn starting(model: &str) -> Self {
        Self::prediction(model, "starting", serde_json::Value::Null)
    }

    /// Sets the `webhook-id` (the same id on every retry of one delivery).
    #[must_use]
    pub fn id(mut self, id: impl Into<String>) -> Self {
        self.id = id.into();
        self
    }

    /// Sets the attempt time, in seconds since the epoch.
    #[must_use]
    pub fn timestamp(mut self, timestamp: i64) -> Self {
        self.timestamp = timestamp;
        self
    }

    /// Sets the request path (default `/webhooks/replicate`).
    #[must_use]
    pub fn path(mut self, path: impl Into<String>) -> Self {
        self.path = path.into();
        self
    }

    /// Signed ten minutes ago: refused as stale.
    #[must_use]
    pub fn stale(self) -> Self {
        self.timestamp(signature::unix_now() - 600)
    }

    /// Signed ten minutes in the future: refused.
    #[must_use]
    pub fn future(self) -> Self {
        self.timestamp(signature::unix_now() + 600)
    }

    /// The body bytes.
    pub fn body(&self) -> &[u8] {
        &self.body
    }

    /// Signs the delivery.
    pub fn sign(&self, secret: &Secret) -> Signed {
        let headers = signature::sign(secret, &self.id, self.timestamp, &self.body);
        Signed {
            body: self.body.clone(),
            headers,
            path: self.path.clone(),
            omit: None,
        }
    }

    /// Signs the delivery as a sender signs each retry: the same `webhook-id` and body, the
    /// attempt time now (not the time set at construction or with [`TestDelivery::timestamp`]).
    pub fn sign_now(&self, secret: &Secret) -> Signed {
        self.clone().timestamp(signature::unix_now()).sign(secret)
    }

    /// Signs the delivery with a fresh random key: refused.
    pub fn sign_with_wrong_key(&self) -> Signed {
        self.sign(&Secret::generate())
    }
}

/// A signed delivery, ready to send.
#[derive(Debug, Clone)]
pub struct Signed {
    body: Vec<u8>,
    headers: SignedHeaders,
    path: String,
    omit: Option<&'static str>,
}

impl Signed {
    /// Changes one byte of the body after signing: refused.
    #[must_use]
    pub fn tampered(mut self) -> Self {
        if let Some(last) = self
            .body
            .iter_mut()
            .rev()
            .find(|b| b.is_ascii_digit() || b.is_ascii_alphabetic())
        {
            *last = if *last == b'0' { b'1' } else { b'0' };
        } else {
            self.body.push(b' ');
        }
        self
    }

    /// Leaves out one of the `webhook-*` headers: refused.
    #[must_use]
    pub fn without_header(mut self, name: &'static str) -> Self {
        self.omit = Some(name);
        self
    }

    /// The headers to send, as `(name, value)` pairs.
    pub fn headers(&self) -> Vec<(&'static str, String)> {
        self.headers
            .pairs()
            .into_iter()
            .filter(|(name, _)| Some(*name) != self.omit)
            .map(|(name, value)| (name, value.to_owned()))
            .collect()
    }

    /// The signed header values.
    pub fn signed_headers(&self) -> &SignedHeaders {
        &self.headers
    }

    /// The body bytes.
    pub fn body(&self) -> &[u8] {
        &self.body
    }

    /// The request path.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// An `actix_web::test` POST request carrying the delivery.
    pub fn to_request(&self) -> TestRequest {
        let mut req = TestRequest::post()
            .uri(&self.path)
            .insert_header(("content-type", "application/json"))
            .set_payload(self.body.clone());
        for (name, value) in self.headers() {
            req = req.insert_header((name, value));
        }
        req
    }
}

/// The three header names, for tests that build requests by hand.
pub const HEADERS: [&str; 3] = [HEADER_ID, HEADER_TIMESTAMP, HEADER_SIGNATURE];

/// A fresh Replicate-style prediction id (26 lowercase base32 characters).
pub fn new_prediction_id() -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz234567";
    let mut raw = [0u8; 26];
    getrandom::fill(&mut raw).expect("the operating system's random source is unavailable");
    raw.iter()
        .map(|b| ALPHABET[usize::from(*b) % 32] as char)
        .collect()
}

/// A realistic training object, as Replicate posts it for a fine-tuning job of `model` (the
/// trainer): `urls` under `/v1/trainings/`, and for `succeeded` an `output` with the new
/// `version` and its `weights`.
pub fn sample_training(id: &str, model: &str, status: &str) -> serde_json::Value {
    let mut training = sample_prediction(id, model, status, serde_json::Value::Null);
    training["input"] =
        serde_json::json!({"input_images": "https://example.com/images.zip", "steps": 1000});
    training["urls"] = serde_json::json!({
        "get": format!("https://api.replicate.com/v1/trainings/{id}"),
        "cancel": format!("https://api.replicate.com/v1/trainings/{id}/cancel"),
        "web": format!("https://replicate.com/p/{id}"),
    });
    if status == "succeeded" {
        training["output"] = serde_json::json!({
            "version": format!("acme/fine-tuned:{}", "0".repeat(64)),
            "weights": format!("https://replicate.delivery/xezq/{id}/trained_model.tar"),
        });
    }
    training
}

/// A realistic prediction object, as Replicate would post it.
pub fn sample_prediction(
    id: &str,
    model: &str,
    status: &str,
    output: serde_json::Value,
) -> serde_json::Value {
    let now = time::OffsetDateTime::now_utc();
    let fmt = |t: time::OffsetDateTime| {
        t.format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default()
    };
    let terminal = crate::Status::parse(status).is_terminal();
    let mut prediction = serde_json::json!({
        "id": id,
        "model": model,
        "version": "hidden",
        "input": {"prompt": "an astronaut riding a horse"},
        "logs": if status == "starting" { serde_json::Value::Null } else { "Generating...\n".into() },
        "error": if status == "failed" { "CUDA out of memory".into() } else { serde_json::Value::Null },
        "status": status,
        "created_at": fmt(now - time::Duration::seconds(3)),
        "started_at": if status == "starting" { serde_json::Value::Null } else { fmt(now - time::Duration::seconds(2)).into() },
        "completed_at": if terminal { fmt(now).into() } else { serde_json::Value::Null },
        "data_removed": false,
        "source": "api",
        "metrics": if status == "succeeded" { serde_json::json!({"predict_time": 1.5, "total_time": 3.0}) } else { serde_json::json!({}) },
        "urls": {
            "get": format!("https://api.replicate.com/v1/predictions/{id}"),
            "cancel": format!("https://api.replicate.com/v1/predictions/{id}/cancel"),
            "web": format!("https://replicate.com/p/{id}"),
        },
    });
    prediction["output"] = output;
    prediction
}
