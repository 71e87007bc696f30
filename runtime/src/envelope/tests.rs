use super::*;
use crate::fixtures::payload as fixture;

/// Real payloads, which take the typed path.
const REAL: [&str; 2] = [
    "hello-world-succeeded.json",
    "flux-kontext-pro-succeeded.json",
];

/// The typed decode of `body`, which must take the typed path.
fn decoded(body: &[u8]) -> Box<Decoded> {
    let Envelope::Decoded(decoded) = Envelope::parse(body).unwrap() else {
        panic!("{} did not decode", String::from_utf8_lossy(body))
    };
    decoded
}

#[test]
fn real_payloads_decode_in_full() {
    for name in REAL {
        let body = fixture(name);
        let envelope = Envelope::parse(&body).unwrap();
        assert!(matches!(envelope, Envelope::Decoded(_)), "{name}");
        let full: Prediction = serde_json::from_slice(&body).unwrap();
        assert_eq!(envelope.id(), full.id);
        assert_eq!(envelope.model(), full.model);
        assert_eq!(*envelope.status(), full.status);
        assert_eq!(envelope.logs_len(), full.logs.map_or(0, |l| l.len()));
    }
}

#[test]
fn a_field_that_does_not_decode_still_routes() {
    let body = br#"{"id":"p1","model":"a/b","status":"succeeded","input":{},
        "created_at":"yesterday","logs":"a\nb","output":[1],"webhook":"https://x/h?k=1"}"#;
    let envelope = Envelope::parse(body).unwrap();
    assert!(matches!(envelope, Envelope::Lenient(_)));
    assert_eq!(
        (envelope.id(), envelope.model(), envelope.status()),
        ("p1", "a/b", &Status::Succeeded)
    );
    assert_eq!(envelope.logs_len(), 3);
    assert_eq!(envelope.output(), Some("[1]"));
    assert_eq!(envelope.webhook(), Some("https://x/h?k=1"));
}

#[test]
fn both_kinds_measure_logs_alike() {
    let decoded = br#"{"id":"p","status":"processing","input":{},"logs":"\u00e9\n"}"#;
    let lenient = br#"{"id":"p","status":"processing","input":{},"logs":"\u00e9\n","metrics":3}"#;
    let a = Envelope::parse(decoded).unwrap();
    let b = Envelope::parse(lenient).unwrap();
    assert!(matches!(a, Envelope::Decoded(_)) && matches!(b, Envelope::Lenient(_)));
    assert_eq!((a.logs_len(), b.logs_len()), (3, 3));
}

#[test]
fn what_cannot_route_is_an_error() {
    for body in [
        &b"{}"[..],
        b"[1]",
        b"{\"id\":\"p\"}",
        b"not json",
        b"{\"id\":\"\xff\"}",
    ] {
        assert!(Envelope::parse(body).is_err(), "{body:?}");
    }
}

#[test]
fn the_typed_prediction_equals_a_decode_of_the_whole_body() {
    for name in REAL {
        let body = fixture(name);
        let typed: Prediction = typed(decoded(&body)).unwrap();
        assert_eq!(
            typed,
            serde_json::from_slice::<Prediction>(&body).unwrap(),
            "{name}"
        );
    }
    // `null` output stays `None`, as it does in a decode of the whole body.
    let body = br#"{"id":"p","status":"starting","input":{"a":1},"output":null}"#;
    let typed: Prediction<String> = typed(decoded(body)).unwrap();
    assert_eq!(
        typed,
        serde_json::from_slice::<Prediction<String>>(body).unwrap()
    );
    assert_eq!(typed.output, None);
}

#[test]
fn taking_the_prediction_keeps_what_routing_still_reads() {
    let body = fixture("hello-world-succeeded.json");
    let mut envelope = Envelope::parse(&body).unwrap();
    let id = envelope.id().to_owned();
    assert!(envelope.take_decoded().is_some());
    assert_eq!(
        (envelope.id(), envelope.status()),
        (&*id, &Status::Succeeded)
    );
    assert!(envelope.take_decoded().is_none());
}

/// The routing envelope of f803b35, before the body was decoded once: routing must read
/// every body as it did, and fail with the same error.
mod old {
    use super::{Deserialize, RawValue, Status};

    #[derive(Debug, Deserialize)]
    pub(super) struct Envelope<'a> {
        pub(super) id: String,
        #[serde(default)]
        pub(super) model: String,
        pub(super) status: Status,
        #[serde(default, borrow)]
        pub(super) output: Option<&'a RawValue>,
        // Read for its place in an array's order; its length is measured differently now.
        #[allow(dead_code)]
        #[serde(default, borrow)]
        pub(super) logs: Option<&'a RawValue>,
        #[serde(default)]
        pub(super) webhook: Option<String>,
        #[serde(default)]
        pub(super) urls: Option<Urls>,
    }

    #[derive(Debug, Deserialize)]
    pub(super) struct Urls {
        #[serde(default)]
        pub(super) get: Option<String>,
    }
}

/// Bodies at the edges of what a prediction is: each must route, or fail to, as before.
const EDGES: &[&str] = &[
    r#"{"id":"p","status":"succeeded","input":{},"output":[1]}"#,
    r#"{"\u0069d":"p","st\u0061tus":"succeeded","\u0069nput":{},"outpu\u0074":"o"}"#,
    r#"{"id":"p\u00e9","model":"a\/b","status":"succ\u0065eded","input":{}}"#,
    r#"{"id":"p","status":"succeeded","status":"failed","input":{}}"#,
    r#"{"id":"p","status":"succeeded","input":{},"output":1,"output":2}"#,
    r#"{"id":"p","status":"succeeded","input":{},"input":{}}"#,
    r#"{"id":"p","status":"succeeded","input":{},"version":"a","version":"b"}"#,
    r#"{"id":"p","status":"succeeded","input":{},"x":1,"x":2}"#,
    r#"{"id":"p","status":"succeeded"}"#,
    r#"{"id":"p","status":"succeeded","input":null,"output":null,"logs":null}"#,
    r#"{"id":"p","status":"processing","input":{},"logs":5,"urls":null,"metrics":null}"#,
    r#"{"id":"p","status":"processing","input":{},"logs":["a"],"metrics":[]}"#,
    r#"{"id":"p","status":"paused","input":{},"webhook":null}"#,
    r#"{"id":"p","status":"succeeded","input":{},"webhook":3}"#,
    r#"{"id":"p","status":"succeeded","input":{},"model":null}"#,
    r#"{"id":1,"status":"succeeded","input":{}}"#,
    r#"{"id":"p","status":"succeeded","input":{},"urls":{"get":"https://api.replicate.com/v1/trainings/t"}}"#,
    r#"{"id":"p","status":"succeeded","input":{},"urls":{"get":"https:\/\/api.replicate.com\/v1\/trainings\/t"}}"#,
    r#"{"id":"p","status":"succeeded","input":{},"urls":{"get":"https://api.replicate.com/v1/trainings/t","cancel":1}}"#,
    r#"{"id":"p","status":"succeeded","input":{},"urls":["https://api.replicate.com/v1/trainings/t"]}"#,
    r#"{"id":"p","status":"succeeded","input":{},"urls":{"get":5}}"#,
    r#"["p","a/b","succeeded"]"#,
    r#"["p","a/b","v","succeeded",{}]"#,
    r#" ["p","a/b","v","succeeded",{},[1],null,"logs"]"#,
    "[]",
    "null",
    r#"{"id":"p","status":"succeeded","input":{}} trailing"#,
];

#[test]
fn every_body_routes_as_the_old_envelope_read_it() {
    for body in EDGES {
        let old = serde_json::from_str::<old::Envelope<'_>>(body);
        let new = Envelope::parse(body.as_bytes());
        let (old, new) = match (old, new) {
            (Ok(old), Ok(new)) => (old, new),
            // The 400's text quotes serde's error: the same one.
            (Err(old), Err(new)) => {
                assert_eq!(old.to_string(), new.to_string(), "{body}");
                continue;
            }
            (old, new) => panic!("{body}: was {old:?}, now {new:?}"),
        };
        assert_eq!(
            (
                new.id(),
                new.model(),
                new.status(),
                new.output(),
                new.webhook()
            ),
            (
                &*old.id,
                &*old.model,
                &old.status,
                old.output.map(RawValue::get),
                old.webhook.as_deref()
            ),
            "{body}"
        );
        let get = old.urls.and_then(|u| u.get);
        assert_eq!(new.kind(), BodyKind::of_get_url(get.as_deref()), "{body}");
    }
}

#[test]
fn an_array_is_never_read_by_the_predictions_field_order() {
    // As a `Prediction` this would be version "v" and status succeeded; the old envelope
    // read its third element as the status.
    let envelope = Envelope::parse(br#"["p","a/b","v","succeeded",{}]"#).unwrap();
    assert!(matches!(envelope, Envelope::Lenient(_)));
    assert_eq!(*envelope.status(), Status::Unknown("v".into()));
}

/// What the handler is given for `body`: the typed decode from the envelope, else a decode
/// of the whole body, as `HandlerInput for Prediction` does.
fn handed<O: DeserializeOwned, I: DeserializeOwned>(
    body: &str,
) -> Result<Prediction<O, I>, String> {
    if let Ok(Envelope::Decoded(decoded)) = Envelope::parse(body.as_bytes())
        && let Ok(typed) = typed(decoded)
    {
        return Ok(typed);
    }
    serde_json::from_str(body).map_err(|e| e.to_string())
}

fn same_as_whole_body<O, I>(body: &str)
where
    O: DeserializeOwned + PartialEq + std::fmt::Debug,
    I: DeserializeOwned + PartialEq + std::fmt::Debug,
{
    let whole = serde_json::from_str::<Prediction<O, I>>(body).map_err(|e| e.to_string());
    assert_eq!(
        handed::<O, I>(body),
        whole,
        "{body:.80} as {}",
        std::any::type_name::<O>()
    );
}

#[derive(Debug, PartialEq, Deserialize)]
enum Shape {
    Url(String),
    Many(Vec<String>),
    Empty,
}

#[derive(Debug, PartialEq, Deserialize)]
#[serde(untagged)]
enum Either {
    One(String),
    Many(Vec<String>),
}

#[derive(Debug, PartialEq, Deserialize)]
struct Newtype(Vec<u8>);

#[derive(Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
struct Strict {
    a: u8,
}

#[test]
fn the_handler_gets_the_whole_body_decode_for_any_output_type() {
    let outputs = [
        "absent",
        "null",
        r#""s""#,
        "[1,2]",
        r#"["a","b"]"#,
        r#"{"a":1}"#,
        r#"{"a":1,"b":2}"#,
        r#"{"Url":"u"}"#,
        r#"{"Many":["x"]}"#,
        r#""Empty""#,
        r#"{"a":300}"#,
        "1e400",
        "-0",
        r#""\ud83d\ude00""#,
        r#"{"a":1,"a":2}"#,
    ];
    let inputs = ["{}", "null", r#"{"a":1}"#, "[1]", r#""\u0000""#];
    for output in outputs {
        for input in inputs {
            let output = if output == "absent" {
                String::new()
            } else {
                format!(r#","output":{output}"#)
            };
            let body =
                format!(r#"{{"id":"p","status":"succeeded","input":{input}{output},"logs":"l"}}"#);
            same_as_whole_body::<serde_json::Value, serde_json::Value>(&body);
            same_as_whole_body::<String, Option<serde_json::Value>>(&body);
            same_as_whole_body::<Option<String>, serde_json::Map<String, serde_json::Value>>(&body);
            same_as_whole_body::<Vec<u8>, ()>(&body);
            same_as_whole_body::<Shape, serde_json::Value>(&body);
            same_as_whole_body::<Either, serde_json::Value>(&body);
            same_as_whole_body::<Newtype, serde_json::Value>(&body);
            same_as_whole_body::<Strict, Option<Strict>>(&body);
            same_as_whole_body::<std::collections::BTreeMap<String, u8>, serde_json::Value>(&body);
            // Raw values have no `PartialEq`: compare their texts.
            let texts = |p: Decoded| {
                (
                    p.input.get().to_owned(),
                    p.output.map(|o| o.get().to_owned()),
                )
            };
            let whole = serde_json::from_str(&body).map_err(|e| e.to_string());
            assert_eq!(handed(&body).map(texts), whole.map(texts), "{body}");
        }
    }
}

#[test]
fn nesting_at_the_recursion_limit_is_decided_by_the_whole_body() {
    // The body's object takes one of serde_json's 128 levels: an output 127 deep fails a
    // decode of the whole body but not a decode of the output's text alone.
    for depth in 120..=135 {
        let deep = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
        let output = format!(r#"{{"id":"p","status":"succeeded","input":{{}},"output":{deep}}}"#);
        let input = format!(r#"{{"id":"p","status":"succeeded","input":{deep}}}"#);
        let in_string =
            format!(r#"{{"id":"p","status":"succeeded","input":{{}},"output":"{deep}"}}"#);
        for body in [&output, &input, &in_string] {
            same_as_whole_body::<serde_json::Value, serde_json::Value>(body);
        }
        same_as_whole_body::<String, serde_json::Value>(&in_string);
    }
    let deep = format!("{}{}", "[".repeat(127), "]".repeat(127));
    let body = format!(r#"{{"id":"p","status":"succeeded","input":{{}},"output":{deep}}}"#);
    assert!(serde_json::from_str::<Prediction>(&body).is_err());
}
