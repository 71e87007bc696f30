//! Unusual but legal schemas (`tests/schemas/torture.json`): names that collide after case
//! conversion, empty and `null` enums, float and mixed enums, `$ref` cycles, `default: null`,
//! bounds beyond `i64`, `OpenAPI` 3.1 type arrays, missing `type`/`items`, deep nesting and
//! non-ASCII names. They must generate code that compiles and round-trips.

use replicate_webhook::replicate_model;
use serde_json::json;

#[replicate_model(schema = "tests/schemas/torture.json")]
mod torture {}

use torture::{A, B, BoolEnum, Collide, FloatEnum, Input, Tree};

#[test]
fn colliding_names_stay_distinct() {
    let mut input = Input::new("camel", Tree(Vec::new()));
    input.foo_bar2 = Some("snake".into());
    input.foo_bar3 = Some(3);
    input.self_ = Some("lower".into());
    input.self_2 = Some("upper".into());
    input.r#type = Some("keyword".into());
    input.type2 = Some("keyword_".into());
    let json = serde_json::to_value(&input).unwrap();
    assert_eq!(json["fooBar"], "camel");
    assert_eq!(json["foo_bar"], "snake");
    assert_eq!(json["foo-bar"], 3);
    assert_eq!(json["self"], "lower");
    assert_eq!(json["Self"], "upper");
    assert_eq!(json["type"], "keyword");
    assert_eq!(json["type_"], "keyword_");
    assert_eq!(serde_json::from_value::<Input>(json).unwrap(), input);

    assert_eq!(
        Collide::ALL.map(Collide::as_str),
        ["a-b", "a_b", "A B", "ab"]
    );
    for value in Collide::ALL {
        let json = serde_json::to_value(value).unwrap();
        assert_eq!(serde_json::from_value::<Collide>(json).unwrap(), value);
    }
}

#[test]
fn defaults_and_nullability() {
    let input = Input::new("x", Tree(Vec::new()));
    assert_eq!(input.nullable_req, None);
    assert_eq!(input.default_null, None);
    assert_eq!(input.t31, None);
    assert_eq!(input.inf_default, None, "\"inf\" is no f64 default");
    assert_eq!(input.float_enum, FloatEnum::V0_25);
    assert_eq!(input.bool_enum, BoolEnum::True);
    assert_eq!(input.default_new, "x");
    assert_eq!(input.nullable_default.as_deref(), Some("d"));
    let json = serde_json::to_value(&input).unwrap();
    assert_eq!(
        json["nullable_req"],
        json!(null),
        "required + nullable: sent"
    );
    assert!(json.get("default_null").is_none());
    assert_eq!(json["float_enum"], 0.25);
    assert_eq!(json["bool_enum"], true);

    // Missing defaulted fields decode to their defaults; `null` enum values are `None`.
    let back: Input = serde_json::from_value(json!({
        "fooBar": "y", "nullable_req": null, "cycle_list": [], "null_enum": null
    }))
    .unwrap();
    assert_eq!(back.float_enum, FloatEnum::V0_25);
    assert_eq!(back.null_enum, None);
}

#[test]
fn float_enums_keep_one_variant_per_number() {
    assert_eq!(FloatEnum::ALL.len(), 5, "1 and 1.0 are one value");
    for value in FloatEnum::ALL {
        let json = serde_json::to_value(value).unwrap();
        assert_eq!(serde_json::from_value::<FloatEnum>(json).unwrap(), value);
    }
    assert_eq!(
        serde_json::from_value::<FloatEnum>(json!(1.0)).unwrap(),
        FloatEnum::V1
    );
    assert_eq!(
        serde_json::from_value::<FloatEnum>(json!(-0.5)).unwrap(),
        FloatEnum::Minus0_5
    );
    assert!(serde_json::from_value::<FloatEnum>(json!(0.3)).is_err());
}

#[test]
fn recursive_types_decode() {
    let tree: Tree = serde_json::from_value(json!([[], [[]]])).unwrap();
    assert_eq!(tree.0.len(), 2);
    assert_eq!(tree.0[1].0[0], Tree(Vec::new()));
    assert_eq!(serde_json::to_value(&tree).unwrap(), json!([[], [[]]]));

    let a: A = serde_json::from_value(json!({ "b": { "a": { "b": { "a": {} } } } })).unwrap();
    let b: &B = a.b.as_ref().unwrap();
    assert!(b.a.b.as_ref().unwrap().a.b.is_none());
}

#[test]
fn nested_untyped_and_non_ascii() {
    let input: Input = serde_json::from_value(json!({
        "fooBar": "x",
        "nullable_req": 1,
        "cycle_list": [],
        "nested": [[{ "v": 1, "w": [{ "z": true }] }]],
        "huge": -9_000_000_000_000_000_000_i64,
        "t31_multi": 5,
        "no_type": { "any": ["thing"] },
        "no_items": [1, "two", null],
        "deep": { "l2": { "l3": { "l4": { "l5": { "l6": { "l7": { "l8": { "leaf": "deep" } } } } } } } },
        "größe": { "ä": "umlaut", "日本": "中国" },
        "bool_schema": [1]
    }))
    .unwrap();
    assert_eq!(
        input.nested.as_ref().unwrap()[0][0].w.as_ref().unwrap()[0].z,
        Some(true)
    );
    let leaf = input
        .deep
        .as_ref()
        .unwrap()
        .l2
        .as_ref()
        .unwrap()
        .l3
        .as_ref()
        .unwrap();
    let leaf = leaf
        .l4
        .as_ref()
        .unwrap()
        .l5
        .as_ref()
        .unwrap()
        .l6
        .as_ref()
        .unwrap();
    let leaf = leaf
        .l7
        .as_ref()
        .unwrap()
        .l8
        .as_ref()
        .unwrap()
        .leaf
        .as_deref();
    assert_eq!(leaf, Some("deep"));
    let size = input.gre.as_ref().unwrap();
    assert_eq!(size.field.as_deref(), Some("umlaut"));
    assert_eq!(size.field2.map(torture::Value2::as_str), Some("中国"));
    let json = serde_json::to_value(&input).unwrap();
    assert_eq!(json["größe"]["日本"], "中国");
    assert_eq!(json["no_items"], json!([1, "two", null]));
    assert_eq!(serde_json::from_value::<Input>(json).unwrap(), input);

    let output: torture::Output = serde_json::from_value(json!([[{ "x": 1.5 }], []])).unwrap();
    assert_eq!(output[0][0].x, Some(1.5));
}
