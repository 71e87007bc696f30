//! Schema drift: compare a pinned `openapi_schema` file with the one the API returns now.
//!
//! Only what shapes the generated types is compared: `components.schemas` `Input`, `Output`,
//! `TrainingInput` and `TrainingOutput`, with every `$ref` (such as the enums behind
//! `allOf: [{"$ref": …}]`) replaced by its target. Titles and descriptions are ignored;
//! everything else (types, formats, enum values, defaults, bounds, `required`, `nullable`,
//! `x-order`, `x-cog-*`) is reported.
//!
//! ```
//! use replicate_webhook_cli::schema_check::compare;
//! use serde_json::json;
//!
//! let pinned = json!({"components": {"schemas": {
//!     "Input": {"type": "object", "properties": {"seed": {"type": "integer"}}},
//!     "Output": {"type": "string"}
//! }}});
//! let live = json!({"latest_version": {"openapi_schema": {"components": {"schemas": {
//!     "Input": {"type": "object", "properties": {"seed": {"type": "number"}}},
//!     "Output": {"type": "string"}
//! }}}}});
//! let diffs = compare(&pinned, &live);
//! assert_eq!(diffs.len(), 1);
//! assert_eq!(
//!     diffs[0].to_string(),
//!     "components.schemas.Input.properties.seed.type: changed from \"integer\" to \"number\""
//! );
//! ```

use std::fmt;

use serde_json::{Map, Value};

use replicate_webhook_core::schema::{COMPONENTS, locate};

/// Keys that only document, so changing them does not change generated types.
const IGNORED: &[&str] = &["title", "description"];

/// One difference between the pinned and the live schema.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Difference {
    /// Where, e.g. `components.schemas.Input.properties.seed.type`.
    pub path: String,
    /// What changed.
    pub change: Change,
}

/// The kind of a [`Difference`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// Only the live schema has this (a new property, keyword or schema).
    Added(Value),
    /// Only the pinned schema has this.
    Removed(Value),
    /// Both have it, with different values.
    Changed {
        /// The value in the pinned file.
        pinned: Value,
        /// The value the API returned.
        live: Value,
    },
    /// A value was added to a set-like list (`enum`, `required`, `type`).
    ValueAdded(Value),
    /// A value was removed from a set-like list (`enum`, `required`, `type`).
    ValueRemoved(Value),
    /// A document has no `components.schemas` at all.
    Unreadable {
        /// Which side: `"pinned"` or `"live"`.
        side: &'static str,
    },
}

impl fmt::Display for Difference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: ", self.path)?;
        match &self.change {
            Change::Added(v) => write!(f, "added in the live schema: {}", short(v)),
            Change::Removed(v) => write!(f, "removed from the live schema (was {})", short(v)),
            Change::Changed { pinned, live } => {
                write!(f, "changed from {} to {}", short(pinned), short(live))
            }
            Change::ValueAdded(v) => write!(f, "value {} added", short(v)),
            Change::ValueRemoved(v) => write!(f, "value {} removed", short(v)),
            Change::Unreadable { side } => {
                write!(f, "the {side} document has no `components.schemas` object")
            }
        }
    }
}

/// JSON text with keys sorted (whatever `serde_json`'s `preserve_order` feature says), cut after
/// 120 characters.
fn short(v: &Value) -> String {
    let text = sorted(v).to_string();
    if text.chars().count() > 120 {
        let cut: String = text.chars().take(117).collect();
        format!("{cut}...")
    } else {
        text
    }
}

fn sorted(v: &Value) -> Value {
    match v {
        Value::Object(map) => {
            let mut entries: Vec<_> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            Value::Object(
                entries
                    .into_iter()
                    .map(|(k, v)| (k.clone(), sorted(v)))
                    .collect(),
            )
        }
        Value::Array(items) => Value::Array(items.iter().map(sorted).collect()),
        other => other.clone(),
    }
}

/// Compares the typed parts of two schema documents. Each may be a model response
/// (`latest_version.openapi_schema`), a version response (`openapi_schema`), a bare
/// `openapi_schema` or `{"components": {"schemas": …}}`. An empty result means the generated
/// types would be the same.
pub fn compare(pinned: &Value, live: &Value) -> Vec<Difference> {
    let mut out = Vec::new();
    let (Some((pinned_root, _)), Some((live_root, _))) = (locate(pinned), locate(live)) else {
        for (doc, side) in [(pinned, "pinned"), (live, "live")] {
            if locate(doc).is_none() {
                out.push(Difference {
                    path: "components.schemas".to_owned(),
                    change: Change::Unreadable { side },
                });
            }
        }
        return out;
    };
    for (name, _) in COMPONENTS {
        let pointer = format!("/components/schemas/{name}");
        let a = pinned_root
            .pointer(&pointer)
            .map(|s| normalize(s, pinned_root, &mut Vec::new()));
        let b = live_root
            .pointer(&pointer)
            .map(|s| normalize(s, live_root, &mut Vec::new()));
        diff(
            &format!("components.schemas.{name}"),
            a.as_ref(),
            b.as_ref(),
            &mut out,
        );
    }
    out
}

/// Inlines `$ref`s (and single-element `allOf`s around them) and drops documentation keys.
/// `expanding` holds the `$ref`s being inlined: a `$ref` back into one of them (a recursive
/// schema) stays a `$ref`, so each cycle is compared once instead of unrolled.
fn normalize(schema: &Value, root: &Value, expanding: &mut Vec<String>) -> Value {
    match schema {
        Value::Object(obj) => {
            if let Some((reference, target)) = obj
                .get("$ref")
                .and_then(Value::as_str)
                .filter(|r| !expanding.iter().any(|e| e == r))
                .and_then(|r| Some((r, root.pointer(r.strip_prefix('#')?)?)))
            {
                expanding.push(reference.to_owned());
                let mut merged = as_map(normalize(target, root, expanding));
                expanding.pop();
                merge_siblings(&mut merged, obj, "$ref", root, expanding);
                return Value::Object(merged);
            }
            if let Some([only]) = obj
                .get("allOf")
                .and_then(Value::as_array)
                .map(Vec::as_slice)
            {
                let mut merged = as_map(normalize(only, root, expanding));
                merge_siblings(&mut merged, obj, "allOf", root, expanding);
                return Value::Object(merged);
            }
            Value::Object(
                obj.iter()
                    .filter(|(k, _)| !IGNORED.contains(&k.as_str()))
                    .map(|(k, v)| {
                        let v = if k == "properties" {
                            // Property names are data, not keywords: keep every one.
                            match v {
                                Value::Object(props) => Value::Object(
                                    props
                                        .iter()
                                        .map(|(p, s)| (p.clone(), normalize(s, root, expanding)))
                                        .collect(),
                                ),
                                other => other.clone(),
                            }
                        } else if k == "default" || k == "enum" || k == "example" {
                            v.clone()
                        } else {
                            normalize(v, root, expanding)
                        };
                        (k.clone(), v)
                    })
                    .collect(),
            )
        }
        Value::Array(items) => Value::Array(
            items
                .iter()
                .map(|v| normalize(v, root, expanding))
                .collect(),
        ),
        other => other.clone(),
    }
}

fn as_map(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        other => Map::from_iter([("const".to_owned(), other)]),
    }
}

/// Keys next to a `$ref`/`allOf` (default, x-order, nullable) apply on top of the target.
fn merge_siblings(
    merged: &mut Map<String, Value>,
    obj: &Map<String, Value>,
    skip: &str,
    root: &Value,
    expanding: &mut Vec<String>,
) {
    for (k, v) in obj {
        if k != skip && !IGNORED.contains(&k.as_str()) {
            let v = if k == "default" {
                v.clone()
            } else {
                normalize(v, root, expanding)
            };
            merged.insert(k.clone(), v);
        }
    }
}

fn is_set_like(path: &str) -> bool {
    ["enum", "required", "type"]
        .iter()
        .any(|k| path.ends_with(&format!(".{k}")))
}

fn diff(path: &str, pinned: Option<&Value>, live: Option<&Value>, out: &mut Vec<Difference>) {
    let push = |out: &mut Vec<Difference>, change| {
        out.push(Difference {
            path: path.to_owned(),
            change,
        });
    };
    match (pinned, live) {
        (None, None) => {}
        (Some(a), None) => push(out, Change::Removed(a.clone())),
        (None, Some(b)) => push(out, Change::Added(b.clone())),
        (Some(Value::Object(a)), Some(Value::Object(b))) => {
            for (k, va) in a {
                diff(&format!("{path}.{k}"), Some(va), b.get(k), out);
            }
            for (k, vb) in b {
                if !a.contains_key(k) {
                    diff(&format!("{path}.{k}"), None, Some(vb), out);
                }
            }
        }
        (Some(Value::Array(a)), Some(Value::Array(b))) if is_set_like(path) => {
            for v in a.iter().filter(|v| !b.contains(v)) {
                push(out, Change::ValueRemoved(v.clone()));
            }
            for v in b.iter().filter(|v| !a.contains(v)) {
                push(out, Change::ValueAdded(v.clone()));
            }
        }
        (Some(Value::Array(a)), Some(Value::Array(b))) if a.len() == b.len() => {
            for (i, (va, vb)) in a.iter().zip(b).enumerate() {
                diff(&format!("{path}[{i}]"), Some(va), Some(vb), out);
            }
        }
        (Some(a), Some(b)) => {
            if !same(a, b) {
                push(
                    out,
                    Change::Changed {
                        pinned: a.clone(),
                        live: b.clone(),
                    },
                );
            }
        }
    }
}

/// Equality that treats `1` and `1.0` as the same number.
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x == y || x.as_f64() == y.as_f64(),
        _ => a == b,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn doc(input: &Value, output: &Value, extra: &[(&str, Value)]) -> Value {
        let mut schemas = Map::new();
        schemas.insert("Input".into(), input.clone());
        schemas.insert("Output".into(), output.clone());
        for (k, v) in extra {
            schemas.insert((*k).to_owned(), v.clone());
        }
        json!({ "openapi": "3.0.2", "components": { "schemas": schemas } })
    }

    /// The messages, sorted: the order of keys in a JSON object is not part of the contract.
    fn messages(diffs: &[Difference]) -> Vec<String> {
        let mut out: Vec<String> = diffs.iter().map(ToString::to_string).collect();
        out.sort();
        out
    }

    fn sorted<const N: usize>(expected: [&str; N]) -> Vec<String> {
        let mut out: Vec<String> = expected.iter().map(|s| (*s).to_owned()).collect();
        out.sort();
        out
    }

    fn flux_input() -> Value {
        json!({
            "type": "object", "title": "Input", "required": ["prompt"],
            "properties": {
                "prompt": { "type": "string", "title": "Prompt", "x-order": 0, "description": "Prompt" },
                "aspect_ratio": { "allOf": [{ "$ref": "#/components/schemas/aspect_ratio" }], "default": "1:1", "x-order": 1 },
                "num_outputs": { "type": "integer", "default": 1, "minimum": 1, "maximum": 4, "x-order": 2 }
            }
        })
    }

    fn ratio(values: &[&str]) -> (&'static str, Value) {
        (
            "aspect_ratio",
            json!({ "type": "string", "enum": values, "title": "aspect_ratio", "description": "An enumeration." }),
        )
    }

    #[test]
    fn identical_documents_have_no_differences() {
        let a = doc(
            &flux_input(),
            &json!({ "type": "string", "format": "uri" }),
            &[ratio(&["1:1", "16:9"])],
        );
        assert!(compare(&a, &a).is_empty());
        // The same schema inside a model response, with other titles and descriptions.
        let mut b = a.clone();
        b["components"]["schemas"]["Input"]["properties"]["prompt"]["description"] =
            json!("Changed");
        b["components"]["schemas"]["Input"]["title"] = json!("Other");
        let wrapped = json!({ "latest_version": { "openapi_schema": b } });
        assert!(
            compare(&a, &wrapped).is_empty(),
            "{:?}",
            compare(&a, &wrapped)
        );
    }

    #[test]
    fn property_and_required_changes() {
        let a = doc(
            &flux_input(),
            &json!({ "type": "string" }),
            &[ratio(&["1:1"])],
        );
        let mut input = flux_input();
        input["properties"]
            .as_object_mut()
            .unwrap()
            .remove("num_outputs");
        input["properties"]["seed"] = json!({ "type": "integer", "x-order": 3 });
        input["required"] = json!(["prompt", "seed"]);
        let b = doc(&input, &json!({ "type": "string" }), &[ratio(&["1:1"])]);
        assert_eq!(
            messages(&compare(&a, &b)),
            sorted([
                "components.schemas.Input.required: value \"seed\" added",
                "components.schemas.Input.properties.num_outputs: removed from the live schema (was {\"default\":1,\"maximum\":4,\"minimum\":1,\"type\":\"integer\",\"x-order\":2})",
                "components.schemas.Input.properties.seed: added in the live schema: {\"type\":\"integer\",\"x-order\":3}",
            ])
        );
    }

    #[test]
    fn enum_values_behind_refs_are_compared() {
        let a = doc(
            &flux_input(),
            &json!({ "type": "string" }),
            &[ratio(&["1:1", "16:9"])],
        );
        let b = doc(
            &flux_input(),
            &json!({ "type": "string" }),
            &[ratio(&["1:1", "21:9"])],
        );
        assert_eq!(
            messages(&compare(&a, &b)),
            sorted([
                "components.schemas.Input.properties.aspect_ratio.enum: value \"16:9\" removed",
                "components.schemas.Input.properties.aspect_ratio.enum: value \"21:9\" added",
            ])
        );
    }

    #[test]
    fn output_shape_and_defaults() {
        let mut input = flux_input();
        let a = doc(
            &input,
            &json!({ "type": "array", "items": { "type": "string", "format": "uri" } }),
            &[ratio(&["1:1"])],
        );
        input["properties"]["num_outputs"]["default"] = json!(2);
        input["properties"]["num_outputs"]["maximum"] = json!(4.0);
        let b = doc(
            &input,
            &json!({ "type": "string", "format": "uri" }),
            &[ratio(&["1:1"])],
        );
        assert_eq!(
            messages(&compare(&a, &b)),
            sorted([
                "components.schemas.Input.properties.num_outputs.default: changed from 1 to 2",
                "components.schemas.Output.type: changed from \"array\" to \"string\"",
                "components.schemas.Output.items: removed from the live schema (was {\"format\":\"uri\",\"type\":\"string\"})",
                "components.schemas.Output.format: added in the live schema: \"uri\"",
            ])
        );
    }

    #[test]
    fn training_schemas_and_unreadable_documents() {
        let a = doc(&flux_input(), &json!({}), &[]);
        let b = doc(
            &flux_input(),
            &json!({}),
            &[("TrainingInput", json!({ "type": "object" }))],
        );
        assert_eq!(
            messages(&compare(&a, &b)),
            sorted([
                "components.schemas.TrainingInput: added in the live schema: {\"type\":\"object\"}"
            ])
        );
        let diffs = compare(&json!({ "detail": "Not found." }), &a);
        assert_eq!(diffs.len(), 1);
        assert_eq!(diffs[0].change, Change::Unreadable { side: "pinned" });
    }

    #[test]
    fn self_referencing_schemas_terminate() {
        let node = json!({ "type": "object", "properties": { "child": { "$ref": "#/components/schemas/Output" } } });
        let a = doc(&json!({ "type": "object" }), &node, &[]);
        assert!(compare(&a, &a).is_empty());
    }

    /// A tree whose nodes point at themselves several times: each cycle is compared once, not
    /// unrolled (16 levels of 4 references each never finished).
    #[test]
    fn many_self_references_are_not_unrolled() {
        let node = |extra: &str| {
            let r = json!({ "$ref": "#/components/schemas/Node" });
            json!({ "type": "object", "properties": {
                "a": r, "b": r, "c": { "type": "array", "items": r }, "d": { "allOf": [r] },
                extra: { "type": "string" }
            } })
        };
        let input = json!({ "type": "object", "properties": { "tree": { "$ref": "#/components/schemas/Node" } } });
        let pinned = doc(
            &input,
            &json!({ "type": "string" }),
            &[("Node", node("name"))],
        );
        let live = doc(
            &input,
            &json!({ "type": "string" }),
            &[("Node", node("label"))],
        );
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            tx.send((compare(&pinned, &pinned), compare(&pinned, &live)))
                .ok();
        });
        let (same, changed) = rx
            .recv_timeout(std::time::Duration::from_secs(10))
            .expect("compare finishes");
        assert!(same.is_empty(), "{same:?}");
        let paths: Vec<String> = changed.iter().map(ToString::to_string).collect();
        assert_eq!(
            paths,
            [
                "components.schemas.Input.properties.tree.properties.name: removed from the live \
                 schema (was {\"type\":\"string\"})",
                "components.schemas.Input.properties.tree.properties.label: added in the live \
                 schema: {\"type\":\"string\"}",
            ]
        );
    }
}
