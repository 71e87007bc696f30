//! A hand-made schema full of hazards (keywords, dashes, recursion, unions, float and negative
//! enums, `OpenAPI` 3.1 type arrays, secrets) wrapped in a model response: it must generate,
//! compile and round-trip.

use replicate_webhook::{Url, replicate_model};
use serde_json::json;

#[replicate_model(schema = "tests/schemas/edge-cases.json")]
mod edge {}

#[test]
fn hazards_compile_and_round_trip() {
    let mut input = edge::Input::new("kind", 3_i8, edge::Mode::SlowAndSteady);
    assert_eq!(input.r#type, "kind");
    assert_eq!(input.self_, 3);
    assert_eq!(input.nullable_required, None);
    assert_eq!(input.max_tokens, 512_u32);
    assert!((input.top_p - 0.9).abs() < f64::EPSILON);
    assert!(!input.new);
    assert_eq!(input.string, edge::String2::B);
    assert_eq!(input.ratio, edge::Ratio::V1);
    assert_eq!(input.signed, edge::Signed::Minus1);
    assert_eq!(input.tags, ["a", "b"]);
    assert_eq!(input.extra, json!({ "k": [1, 2] }));
    assert_eq!(
        input.url_default, None,
        "URL defaults are documented, not built"
    );
    input.tree = Some(edge::Node {
        name: Some("root".into()),
        children: Some(vec![edge::Node {
            name: None,
            children: None,
            parent: None,
        }]),
        parent: None,
    });
    input.either = Some(edge::Either::Integer(7));
    input.token = Some(edge::Secret::new("s3cret"));
    input.big = Some(10_000_000_000_000_u64);
    input.files = Some(vec![Url::parse("data:text/plain,hi").unwrap()]);

    let json = serde_json::to_value(&input).unwrap();
    assert_eq!(json["type"], "kind");
    assert_eq!(json["self"], 3);
    assert_eq!(json["mode"], "slow-and-steady");
    assert_eq!(
        json["nullable_required"],
        json!(null),
        "required + nullable: sent as null"
    );
    assert_eq!(json["max-tokens"], 512);
    assert_eq!(json["Top P"], 0.9);
    assert_eq!(json["ratio"], 1.0);
    assert_eq!(json["signed"], -1);
    assert_eq!(json["token"], "s3cret");
    assert!(json.get("types31").is_none());
    let back: edge::Input = serde_json::from_value(json).unwrap();
    assert_eq!(back, input);

    assert_eq!(
        edge::Mode::ALL.map(edge::Mode::as_str),
        ["fast", "slow-and-steady", "16:9", "Self"]
    );
    assert_eq!(edge::Mode::SelfValue.to_string(), "Self");
    assert_eq!(edge::Mode::V16_9.as_str(), "16:9");
    let ratio: edge::Ratio = serde_json::from_value(json!(1.5)).unwrap();
    assert_eq!(ratio, edge::Ratio::V1_5);
}

#[test]
fn output_struct_with_keyword_fields() {
    let output: edge::Output = serde_json::from_value(json!({
        "format": "png",
        "pattern": true,
        "images": ["https://a.test/1.png", null]
    }))
    .unwrap();
    assert_eq!(output.format, edge::Format::Png);
    assert_eq!(output.pattern, Some(true));
    assert_eq!(output.images.as_ref().map(Vec::len), Some(2));
    assert!(serde_json::from_value::<edge::Output>(json!({ "format": "gif" })).is_err());
}
