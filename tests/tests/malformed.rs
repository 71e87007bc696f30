//! Malformed requests, one table: each row is written byte for byte on its own connection (an
//! HTTP client would normalise or refuse many of them), answered with an exact status, and runs
//! no handler. After the table, one valid delivery runs exactly once: the receiver still works.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use replicate_webhook::signature::unix_now;
use replicate_webhook::testkit::{Signed, TestDelivery, new_prediction_id, sample_prediction};
use replicate_webhook::{DecodeError, HandlerError, HandlerKind, Module, Secret};
use replicate_webhook::{Prediction, Status};
use replicate_webhook_tests::raw::{self, RawRequest, sign_text};
use replicate_webhook_tests::{LIFECYCLE, TestServer, counting, only};
use serde_json::{Map, Value, json};

const MODEL: &str = "acme/malformed";
/// The table server's body limit: small, so an oversized chunked body is quick to send.
const LIMIT: usize = 1024 * 1024;
const IDLE: Duration = Duration::from_millis(300);

/// Every handler is typed strictly, so a field of the wrong type fails the typed decode.
type Strict = Prediction<Vec<String>, Map<String, Value>>;

/// What a row must get.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// This status, before any handler.
    Refused(u16),
    /// Verified, but the typed decode fails: `on_decode_error` runs instead of the handler, and
    /// its `Ok` answers 200 "done".
    Decode,
    /// Verified and acknowledged with this text; nothing ran.
    Ack(&'static str),
}

struct Row {
    name: String,
    /// Why the row gets what it gets.
    why: &'static str,
    request: RawRequest,
    /// `Some(n)`: send the head and `n` body bytes, then stall.
    stall: Option<usize>,
    expect: Expect,
}

struct Table {
    secret: Secret,
    rows: Vec<Row>,
}

impl Table {
    fn push(
        &mut self,
        name: impl Into<String>,
        expect: Expect,
        why: &'static str,
        request: RawRequest,
    ) {
        self.rows.push(Row {
            name: name.into(),
            why,
            request,
            stall: None,
            expect,
        });
    }

    /// A valid delivery of a fresh prediction with `status`, signed.
    fn signed(&self, status: &str) -> Signed {
        TestDelivery::new(prediction(status).to_string()).sign(&self.secret)
    }

    /// `body` exactly as given, signed.
    fn signed_body(&self, body: impl Into<Vec<u8>>) -> Signed {
        TestDelivery::new(body).sign(&self.secret)
    }

    /// A fresh prediction with `status` where `field` is set to `value` (`None`: removed), signed.
    fn with_field(&self, status: &str, field: &str, value: Option<Value>) -> RawRequest {
        let mut body = prediction(status);
        match value {
            Some(value) => body[field] = value,
            None => drop(body.as_object_mut().unwrap().remove(field)),
        }
        RawRequest::post(&self.signed_body(body.to_string()))
    }

    /// A valid delivery whose timestamp header is `text`, signed over that text.
    fn timestamp(&self, text: &str) -> RawRequest {
        let signed = self.signed("succeeded");
        let id = header(&signed, "webhook-id");
        RawRequest::post(&signed)
            .replace("webhook-timestamp", text)
            .replace(
                "webhook-signature",
                sign_text(&self.secret, &id, text, signed.body()),
            )
    }
}

fn prediction(status: &str) -> Value {
    sample_prediction(&new_prediction_id(), MODEL, status, json!(["x"]))
}

fn header(signed: &Signed, name: &str) -> String {
    signed
        .headers()
        .into_iter()
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v)
        .expect("a signed header")
}

/// The body of a fresh prediction with `field`'s value spliced in as raw text.
fn spliced(status: &str, field: &str, raw_value: &[u8]) -> Vec<u8> {
    let mut body = prediction(status);
    body[field] = json!("@@SPLICE@@");
    let text = body.to_string();
    let (before, after) = text.split_once(r#""@@SPLICE@@""#).unwrap();
    [before.as_bytes(), raw_value, after.as_bytes()].concat()
}

#[allow(clippy::too_many_lines)] // one row a line: the table is the test
fn table(secret: &Secret) -> Table {
    use Expect::{Ack, Decode, Refused};
    let mut t = Table {
        secret: secret.clone(),
        rows: Vec::new(),
    };
    let names = ["webhook-id", "webhook-timestamp", "webhook-signature"];

    // The three signed headers: checked before the body is read.
    for name in names {
        let s = t.signed("succeeded");
        t.push(
            format!("missing {name}"),
            Refused(401),
            "each header is required",
            RawRequest::post(&s).without(name),
        );
        let value = header(&s, name);
        t.push(
            format!("duplicate {name}"),
            Refused(401),
            "two lines of one header are ambiguous",
            RawRequest::post(&s).header(name, &value),
        );
        t.push(
            format!("empty {name}"),
            Refused(401),
            "an empty header counts as missing",
            RawRequest::post(&s).replace(name, ""),
        );
        t.push(
            format!("\\xff in {name}"),
            Refused(401),
            "header values must be visible ASCII",
            RawRequest::post(&s).replace(name, [value.as_bytes(), b"\xff"].concat()),
        );
    }
    let s = t.signed("succeeded");
    let mut none = RawRequest::post(&s);
    for name in names {
        none = none.without(name);
    }
    t.push(
        "no webhook-* header at all",
        Refused(401),
        "an unsigned request",
        none,
    );
    t.push(
        "UTF-8 in webhook-id",
        Refused(401),
        "visible ASCII only, even valid UTF-8",
        RawRequest::post(&s).replace("webhook-id", "msg_caf\u{e9}"),
    );

    // Timestamps, each signed over its own text: the MAC is right, the timestamp is not.
    let now = unix_now();
    for (text, why) in [
        ("abc".to_owned(), "not a number"),
        ("1e9".to_owned(), "decimal digits only"),
        ("-5".to_owned(), "no sign"),
        (format!("+{now}"), "no sign, even signed over the sign"),
        (format!("{now}.0"), "no fraction, even signed over it"),
        (format!("0x{now:x}"), "no hex"),
        (
            "99999999999999999999".to_owned(),
            "20 digits: longer than any timestamp",
        ),
        (i64::MAX.to_string(), "19 digits: refused before parsing"),
        (
            "999999999999999999".to_owned(),
            "18 digits: parses, far in the future",
        ),
        ("0".to_owned(), "the epoch: far in the past"),
        ((now - 1_000_000).to_string(), "11 days ago"),
        ((now + 1_000_000).to_string(), "11 days ahead"),
        ((now - 330).to_string(), "just past the 300 s tolerance"),
        ((now + 330).to_string(), "just ahead of the 300 s tolerance"),
    ] {
        t.push(
            format!("timestamp {text:?}"),
            Refused(401),
            why,
            t.timestamp(&text),
        );
    }

    // Signatures.
    let s = t.signed("succeeded");
    let good = header(&s, "webhook-signature");
    let tag = good.trim_start_matches("v1,").to_owned();
    for (value, why) in [
        ("v1,!!!not-base64!!!".to_owned(), "bad base64"),
        ("v1,AAAA".to_owned(), "base64 of the wrong length"),
        (
            format!("v2,{tag}"),
            "the right MAC under an unknown version tag",
        ),
        (format!("v1a,{tag}"), "the right MAC under the Ed25519 tag"),
        (tag.clone(), "the right MAC without a version tag"),
        (
            format!("v1,{}", &tag[..tag.len() - 2]),
            "the right MAC, truncated",
        ),
        (format!("v1,{tag}").replace(',', ";"), "the wrong separator"),
        (
            format!("{}{good}", "a ".repeat(2000)),
            "2,001 entries, under 4096 bytes",
        ),
        (
            format!(
                "{}{good}",
                "v1,AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA= ".repeat(300)
            ),
            "300 entries, over 4096 bytes",
        ),
        (
            format!("v1,{}", "A".repeat(5000)),
            "one entry over 4096 bytes",
        ),
    ] {
        t.push(
            format!("signature {}", &value[..value.len().min(24)]),
            Refused(401),
            why,
            RawRequest::post(&s).replace("webhook-signature", value),
        );
    }
    let d = TestDelivery::new(prediction("succeeded").to_string());
    t.push(
        "signed with another secret",
        Refused(401),
        "no MAC matches",
        RawRequest::post(&d.sign_with_wrong_key()),
    );
    t.push(
        "body changed after signing",
        Refused(401),
        "the MAC covers the body",
        RawRequest::post(&t.signed("succeeded").tampered()),
    );
    t.push(
        "webhook-id changed after signing",
        Refused(401),
        "the MAC covers the id",
        RawRequest::post(&s).replace("webhook-id", "msg_other"),
    );
    let ts = header(&s, "webhook-timestamp").parse::<i64>().unwrap();
    t.push(
        "timestamp changed after signing",
        Refused(401),
        "the MAC covers the timestamp",
        RawRequest::post(&s).replace("webhook-timestamp", (ts + 1).to_string()),
    );

    // Sizes and framing.
    let s = t.signed("succeeded");
    t.push(
        "Content-Length over the limit",
        Refused(413),
        "refused on the header, before the body",
        RawRequest::post(&s).content_length((LIMIT + 1).to_string()),
    );
    t.push(
        "Content-Length of a petabyte",
        Refused(413),
        "refused on the header, nothing buffered",
        RawRequest::post(&s).content_length((1u64 << 50).to_string()),
    );
    t.push(
        "Content-Length abc",
        Refused(400),
        "not a number",
        RawRequest::post(&s).content_length("abc"),
    );
    t.push(
        "Content-Length -1",
        Refused(400),
        "not a length",
        RawRequest::post(&s).content_length("-1"),
    );
    let big = [b"{\"pad\":\"".as_slice(), &vec![b'a'; LIMIT], b"\"}"].concat();
    t.push(
        "chunked body over the limit",
        Refused(413),
        "counted as it streams, no Content-Length",
        RawRequest::post(&t.signed_body(big)).chunked(64 * 1024),
    );
    t.rows.push(Row {
        name: "stalled body".into(),
        why: "one byte, then silence past the idle timeout",
        request: RawRequest::post(&s),
        stall: Some(1),
        expect: Refused(408),
    });

    // Signed bodies that are not predictions: the envelope fails, 400.
    for (body, why) in [
        (b"".as_slice(), "empty"),
        (b"\xff\xfe{}", "not UTF-8"),
        (br#"{"id":"x","status":"succeeded""#, "truncated"),
        (
            br#"{"id":"x","status":"succeeded","input":{}} trailing"#,
            "trailing bytes",
        ),
        (b"[]", "an array"),
        (b"{}", "no id, no status"),
        (b"null", "null"),
    ] {
        t.push(
            format!("body {:?}", String::from_utf8_lossy(body)),
            Refused(400),
            why,
            RawRequest::post(&t.signed_body(body)),
        );
    }
    // serde decodes a struct from an array by field order; the envelope's order is id, model,
    // status, so these route on their third element, whatever a `Prediction` reads there.
    let by_order = format!(
        r#"["{}","{MODEL}","v","succeeded",{{}}]"#,
        new_prediction_id()
    );
    t.push(
        "array read as a prediction by field order",
        Ack("not subscribed"),
        "the status is the third element, \"v\": unknown, though as a Prediction it is complete",
        RawRequest::post(&t.signed_body(by_order)),
    );
    let short = format!(r#"["{}","{MODEL}","succeeded"]"#, new_prediction_id());
    t.push(
        "array with the envelope's three fields",
        Decode,
        "routes as succeeded; as a Prediction the third element is version, status is missing",
        RawRequest::post(&t.signed_body(short)),
    );
    let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    t.push(
        "10,000 nested arrays",
        Refused(400),
        "serde_json's depth limit, no stack overflow",
        RawRequest::post(&t.signed_body(deep.clone())),
    );
    let id_not_utf8 = spliced("succeeded", "id", b"\"ab\xffcd\"");
    t.push(
        "non-UTF-8 in id",
        Refused(400),
        "the envelope reads id",
        RawRequest::post(&t.signed_body(id_not_utf8)),
    );
    let version_not_utf8 = spliced("succeeded", "version", b"\"ab\xffcd\"");
    t.push(
        "non-UTF-8 in version",
        Decode,
        "the envelope skips version unchecked; the typed decode refuses it",
        RawRequest::post(&t.signed_body(version_not_utf8)),
    );
    let dup = |status: &str, key: &str, value: &str| {
        let text = prediction(status).to_string();
        format!("{{\"{key}\":{value},{}", &text[1..])
    };
    t.push(
        "duplicate key id",
        Refused(400),
        "the envelope refuses a duplicate field it reads",
        RawRequest::post(&t.signed_body(dup("succeeded", "id", "\"other\""))),
    );
    t.push(
        "duplicate key status",
        Refused(400),
        "two statuses: which one?",
        RawRequest::post(&t.signed_body(dup("succeeded", "status", "\"failed\""))),
    );
    t.push(
        "duplicate key version",
        Decode,
        "the envelope skips version; the typed decode refuses the duplicate",
        RawRequest::post(&t.signed_body(dup("succeeded", "version", "\"v\""))),
    );

    // Wrong types, field by field. The envelope reads id, model, status, output and logs (as
    // raw JSON) and webhook: a wrong type there is 400. Every other field is read only by the
    // handler's typed decode: on_decode_error, 200.
    for (field, value, expect, why) in [
        (
            "id",
            Some(json!(5)),
            Refused(400),
            "envelope: id is a string",
        ),
        (
            "id",
            Some(Value::Null),
            Refused(400),
            "envelope: id is required",
        ),
        ("id", None, Refused(400), "envelope: id is required"),
        (
            "model",
            Some(json!(5)),
            Refused(400),
            "envelope: model is a string",
        ),
        (
            "model",
            Some(Value::Null),
            Refused(400),
            "envelope: model may be absent, not null",
        ),
        (
            "status",
            Some(json!(5)),
            Refused(400),
            "envelope: status is a string",
        ),
        (
            "status",
            Some(Value::Null),
            Refused(400),
            "envelope: status is a string",
        ),
        ("status", None, Refused(400), "envelope: status is required"),
        (
            "webhook",
            Some(json!(5)),
            Refused(400),
            "envelope: webhook is a string",
        ),
        (
            "webhook",
            Some(json!("not a url")),
            Refused(401),
            "an unparsable signed URL authenticates no query",
        ),
        (
            "version",
            Some(json!(5)),
            Decode,
            "typed: version is a string",
        ),
        (
            "input",
            Some(json!("x")),
            Decode,
            "typed: input is the handler's Map",
        ),
        ("input", None, Decode, "typed: input is required"),
        (
            "output",
            Some(json!(5)),
            Decode,
            "typed: output is the handler's Vec<String>",
        ),
        (
            "output",
            Some(json!({"a": 1})),
            Decode,
            "typed: output is the handler's Vec<String>",
        ),
        (
            "logs",
            Some(json!(5)),
            Decode,
            "envelope takes any logs; typed: a string",
        ),
        (
            "logs",
            Some(json!(["a"])),
            Decode,
            "envelope takes any logs; typed: a string",
        ),
        (
            "metrics",
            Some(json!("fast")),
            Decode,
            "typed: metrics is an object",
        ),
        (
            "metrics",
            Some(json!({"predict_time": "1s"})),
            Decode,
            "typed: predict_time is a number",
        ),
        // `urls.get` tells a training from a prediction, so the envelope reads it.
        (
            "urls",
            Some(json!("x")),
            Refused(400),
            "envelope: urls is an object",
        ),
        (
            "urls",
            Some(json!({"get": 5})),
            Refused(400),
            "envelope: urls.get is a string",
        ),
        ("created_at", Some(json!(5)), Decode, "typed: RFC 3339 text"),
        (
            "created_at",
            Some(json!("yesterday")),
            Decode,
            "typed: RFC 3339 text",
        ),
        (
            "started_at",
            Some(json!(true)),
            Decode,
            "typed: RFC 3339 text",
        ),
        (
            "completed_at",
            Some(json!("2024-13-45T00:00:00Z")),
            Decode,
            "typed: a real date",
        ),
        (
            "webhook_events_filter",
            Some(json!("completed")),
            Decode,
            "typed: a list",
        ),
        (
            "webhook_events_filter",
            Some(json!(["sometimes"])),
            Decode,
            "typed: known event names",
        ),
        ("data_removed", Some(json!("no")), Decode, "typed: a bool"),
        ("source", Some(json!(5)), Decode, "typed: a string"),
    ] {
        let shown = value.as_ref().map_or("absent".to_owned(), Value::to_string);
        t.push(
            format!("{field}: {shown}"),
            expect,
            why,
            t.with_field("succeeded", field, value),
        );
    }
    let processing_logs = t.with_field("processing", "logs", Some(json!(5)));
    t.push(
        "processing, logs: 5",
        Decode,
        "logs length is read raw; typed: a string",
        processing_logs,
    );
    let mut deep_input = prediction("succeeded");
    deep_input["input"] = json!({"a": "@@DEEP@@"});
    let deep_input = deep_input.to_string().replace(r#""@@DEEP@@""#, &deep);
    t.push(
        "10,000 nested arrays in input",
        Decode,
        "the envelope skips input; the typed decode hits the depth limit",
        RawRequest::post(&t.signed_body(deep_input)),
    );

    // Unknown statuses decode as Status::Unknown: acknowledged, no handler for them.
    for status in ["paused", "", "SUCCEEDED"] {
        assert!(matches!(Status::parse(status), Status::Unknown(_)));
        t.push(
            format!("status {status:?}"),
            Ack("not subscribed"),
            "Status::Unknown has no handler",
            RawRequest::post(&t.signed(status)),
        );
    }

    // Methods and paths actix answers itself.
    let s = t.signed("succeeded");
    for method in ["GET", "PUT", "DELETE", "PATCH"] {
        t.push(
            format!("{method} on the webhook path"),
            Refused(405),
            "the resource has a POST route only",
            RawRequest::post(&s).method(method),
        );
    }
    let other = TestDelivery::new(prediction("succeeded").to_string())
        .path("/webhooks/other")
        .sign(secret);
    t.push(
        "POST to another path",
        Refused(404),
        "no resource there",
        RawRequest::post(&other),
    );
    t
}

#[actix_web::test]
async fn malformed_requests_get_their_exact_status_and_run_nothing() {
    let secret = Secret::generate();
    let runs = Arc::new(AtomicUsize::new(0));
    let decode_errors = Arc::new(AtomicUsize::new(0));
    let hook = decode_errors.clone();
    let module: Module = counting::<Strict>(MODEL, &LIFECYCLE, &runs).on(
        HandlerKind::DecodeError,
        move |_: DecodeError| {
            hook.fetch_add(1, Ordering::SeqCst);
            async { Ok::<(), HandlerError>(()) }
        },
    );
    let config = only(&secret, module)
        .body_limit(LIMIT)
        .idle_timeout(IDLE)
        .read_timeout(Duration::from_secs(2));
    let srv = TestServer::serve(config);

    let table = table(&secret);
    let mut failures = Vec::new();
    let mut by_status = std::collections::BTreeMap::<u16, usize>::new();
    for row in &table.rows {
        let (runs_before, decodes_before) = (
            runs.load(Ordering::SeqCst),
            decode_errors.load(Ordering::SeqCst),
        );
        let started = std::time::Instant::now();
        let answer = match row.stall {
            Some(sent) => raw::stall(&srv.base, &row.request, sent, IDLE * 10).await,
            None => raw::exchange(&srv.base, &row.request.to_bytes(), false).await,
        };
        let early = row.stall.is_some() && started.elapsed() < IDLE;
        let ran = runs.load(Ordering::SeqCst) - runs_before;
        let decoded = decode_errors.load(Ordering::SeqCst) - decodes_before;
        let (status, text, hook_runs) = match row.expect {
            Expect::Refused(status) => (status, None, 0),
            Expect::Decode => (200, Some("done"), 1),
            Expect::Ack(text) => (200, Some(text), 0),
        };
        let got = answer.status.unwrap_or(0);
        *by_status.entry(got).or_default() += 1;
        if got != status
            || text.is_some_and(|t| answer.body() != t)
            || ran != 0
            || decoded != hook_runs
            || early
        {
            failures.push(format!(
                "{} ({}): expected {status} {text:?}, got {got} {:?}; handler runs {ran}, on_decode_error runs {decoded}, cut off before the idle timeout: {early}",
                row.name,
                row.why,
                answer.body().chars().take(120).collect::<String>()
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} rows failed:\n{}",
        failures.len(),
        table.rows.len(),
        failures.join("\n")
    );
    assert!(table.rows.len() >= 60, "only {} rows", table.rows.len());

    // The receiver still works: one valid delivery runs exactly once.
    let ok = table.signed("succeeded");
    assert_eq!(srv.deliver(&ok).await, (200, "done".to_owned()));
    assert_eq!(srv.deliver(&ok).await.0, 200);
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    eprintln!(
        "malformed table: {} rows, every one as expected (answers by status: {by_status:?}); \
         handler runs 0, on_decode_error runs {}; then 1 valid delivery ran exactly once",
        table.rows.len(),
        decode_errors.load(Ordering::SeqCst)
    );
}

/// Not malformed, though they look it: accepted and handled.
#[actix_web::test]
async fn lenient_fields_and_any_content_type_are_accepted() {
    let secret = Secret::generate();
    let runs = Arc::new(AtomicUsize::new(0));
    let module = counting::<Prediction>(MODEL, &[HandlerKind::Succeeded], &runs);
    let srv = TestServer::serve(only(&secret, module));
    let cases: Vec<(&str, RawRequest)> = vec![
        (
            "error as an object (the JS SDK types it unknown)",
            with(&secret, "error", json!({"code": 1})),
        ),
        ("error as a number", with(&secret, "error", json!(5))),
        ("metrics null", with(&secret, "metrics", Value::Null)),
        ("urls null", with(&secret, "urls", Value::Null)),
        (
            "an unknown field",
            with(&secret, "brand_new", json!([1, 2])),
        ),
        (
            "content-type text/plain: the signature authenticates, not the type",
            RawRequest::post(&signed(&secret)).replace("content-type", "text/plain"),
        ),
        (
            "no content-type",
            RawRequest::post(&signed(&secret)).without("content-type"),
        ),
        (
            "chunked, under the limit",
            RawRequest::post(&signed(&secret)).chunked(100),
        ),
    ];
    for (n, (name, request)) in cases.iter().enumerate() {
        let answer = raw::exchange(&srv.base, &request.to_bytes(), false).await;
        assert_eq!(
            (answer.status, answer.body()),
            (Some(200), "done"),
            "{name}"
        );
        assert_eq!(runs.load(Ordering::SeqCst), n + 1, "{name}");
    }
}

fn signed(secret: &Secret) -> Signed {
    TestDelivery::new(prediction("succeeded").to_string()).sign(secret)
}

fn with(secret: &Secret, field: &str, value: Value) -> RawRequest {
    let mut body = prediction("succeeded");
    body[field] = value;
    RawRequest::post(&TestDelivery::new(body.to_string()).sign(secret))
}
