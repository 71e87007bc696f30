//! `#[replicate_model]` over every schema in `fixtures/schemas` (see its `SOURCES.md`):
//! the generated types compile (that is `corpus.rs`), every real output decodes into its
//! model's `Output` unless the example came from a version with another output shape, and
//! generated `Input`s serialise to JSON their schema accepts.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value, json};

#[path = "schemas/corpus.rs"]
pub mod corpus;

/// One schema file and what the tests do with its generated types.
#[derive(Debug)]
pub struct Entry {
    /// The file name without `.json`, e.g. `black-forest-labs__flux-schnell`.
    pub name: &'static str,
    pub decode_output: fn(Value) -> Result<(), String>,
    pub round_trip_input: fn(Value) -> Result<Value, String>,
    /// Present when every required input has a default, i.e. `Input: Default`.
    pub default_input: Option<fn() -> Value>,
}

/// A prediction's `output` is optional: `null` (canceled, failed, starting) is `None`.
pub fn decode_output<T: DeserializeOwned>(output: Value) -> Result<(), String> {
    serde_json::from_value::<Option<T>>(output)
        .map(drop)
        .map_err(|e| e.to_string())
}

/// JSON → `Input` → JSON → `Input`: both `Input`s equal; returns the serialised JSON.
pub fn round_trip_input<T: DeserializeOwned + Serialize + PartialEq + std::fmt::Debug>(
    input: Value,
) -> Result<Value, String> {
    let first: T = serde_json::from_value(input).map_err(|e| e.to_string())?;
    let json = serde_json::to_value(&first).map_err(|e| e.to_string())?;
    let second: T = serde_json::from_value(json.clone()).map_err(|e| e.to_string())?;
    assert_eq!(first, second, "Input changed on a JSON round trip");
    Ok(json)
}

pub fn default_input<T: Default + Serialize>() -> Value {
    serde_json::to_value(T::default()).expect("Input serialises")
}

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/schemas")
}

fn read_json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn entry(name: &str) -> &'static Entry {
    corpus::ALL
        .iter()
        .find(|e| e.name == name)
        .unwrap_or_else(|| panic!("no module for {name}; rerun tests/scripts/gen-schema-corpus.py"))
}

/// The `OpenAPI` document inside a schema file.
fn openapi(doc: &Value) -> &Value {
    [
        doc.pointer("/latest_version/openapi_schema"),
        doc.get("openapi_schema"),
        Some(doc),
    ]
    .into_iter()
    .flatten()
    .find(|d| d.pointer("/components/schemas").is_some())
    .expect("components.schemas")
}

#[test]
fn every_schema_file_has_a_module() {
    let files: BTreeSet<String> = std::fs::read_dir(corpus_dir())
        .expect("schema corpus beside the repository")
        .filter_map(|e| {
            let path = e.expect("dir entry").path();
            (path.extension()? == "json").then(|| path.file_stem()?.to_str().map(str::to_owned))?
        })
        .collect();
    let modules: BTreeSet<String> = corpus::ALL.iter().map(|e| e.name.to_owned()).collect();
    assert_eq!(files, modules, "rerun tests/scripts/gen-schema-corpus.py");
    assert!(files.len() >= 50);
}

/// Outputs whose example was produced by a version with another output shape (SOURCES.md,
/// "Things the generator must tolerate" 1, and the version notes of the outputs table):
/// decoding them must fail cleanly. Every other output (including ones from other versions
/// with the same shape) must decode.
const OTHER_SHAPE: &[&str] = &[
    // Schema: one string; example: `[{"text": …}]` from an older version.
    "salesforce__blip",
    // Schema: one URI; example: an array of URIs.
    "philz1337x__crystal-upscaler",
    // Schema: concatenated iterator (array of strings); example: one plain string.
    "openai__o1",
    // Schema (cog 0.6.1): one string; example (version 455d66312a66…): an array of tokens.
    // SOURCES.md records the other version, not this mismatch.
    "replicate__llama-7b",
];

#[test]
fn real_outputs_decode_except_other_shapes() {
    let dir = corpus_dir().join("outputs");
    let mut decoded = Vec::new();
    let mut failed = BTreeSet::new();
    for file in std::fs::read_dir(&dir).expect("outputs directory") {
        let path = file.expect("dir entry").path();
        let stem = path
            .file_stem()
            .and_then(|s| s.to_str())
            .expect("file name")
            .to_owned();
        let model = stem.split("--").next().expect("model name");
        let output = read_json(&path)["output"].clone();
        match (entry(model).decode_output)(output) {
            Ok(()) => decoded.push(stem),
            Err(error) => {
                assert!(!error.is_empty());
                failed.insert(stem);
            }
        }
    }
    let expected: BTreeSet<String> = OTHER_SHAPE.iter().map(|s| (*s).to_owned()).collect();
    assert_eq!(failed, expected, "decoded: {decoded:?}");
    assert!(
        decoded.len() >= 40,
        "only {} outputs decoded",
        decoded.len()
    );
}

/// A value the schema accepts, for every property (required or not).
#[allow(clippy::cast_possible_truncation)]
fn sample(schema: &Value, root: &Value, depth: usize) -> Value {
    let resolve = |s: &Value| -> Value {
        let mut s = s.clone();
        for _ in 0..8 {
            let next = if let Some(r) = s.get("$ref").and_then(Value::as_str) {
                root.pointer(r.trim_start_matches('#')).cloned()
            } else {
                s.get("allOf").and_then(|a| a.get(0)).cloned()
            };
            match next {
                Some(n) => s = n,
                None => break,
            }
        }
        s
    };
    let schema = resolve(schema);
    if let Some(first) = schema.get("enum").and_then(|e| e.get(0)) {
        return first.clone();
    }
    if let Some(branch) = schema.get("anyOf").and_then(|a| a.get(0)) {
        return sample(branch, root, depth);
    }
    let number = |fallback: f64| {
        schema
            .get("minimum")
            .or_else(|| schema.get("ge"))
            .and_then(Value::as_f64)
            .unwrap_or(fallback)
    };
    match schema.get("type").and_then(Value::as_str) {
        Some("string") => match schema.get("format").and_then(Value::as_str) {
            Some("uri") => json!("https://replicate.delivery/example/input.png"),
            _ if schema.get("pattern").is_some() => matching_string(&schema),
            _ => {
                let min = schema.get("minLength").and_then(Value::as_u64).unwrap_or(0);
                let len = usize::try_from(min.max(3)).expect("small");
                json!("a".repeat(len))
            }
        },
        Some("integer") => json!(number(0.0).ceil() as i64),
        Some("number") => json!(number(0.5)),
        Some("boolean") => json!(true),
        Some("array") if depth < 4 => {
            json!([sample(
                schema.get("items").unwrap_or(&json!({})),
                root,
                depth + 1
            )])
        }
        Some("object") | None if depth < 4 && schema.get("properties").is_some() => {
            let props = schema["properties"].as_object().expect("properties object");
            let map: Map<String, Value> = props
                .iter()
                .map(|(k, v)| (k.clone(), sample(v, root, depth + 1)))
                .collect();
            Value::Object(map)
        }
        Some("object") => json!({}),
        _ => json!("any"),
    }
}

/// A string for a `pattern`: the default if there is one, else the first candidate that fits.
fn matching_string(schema: &Value) -> Value {
    let check = json!({ "type": "string", "pattern": schema["pattern"] });
    let validator = jsonschema::validator_for(&check).expect("pattern compiles");
    let candidates = [
        "https://example.com/a",
        "aaa",
        "AAA",
        "123",
        "a@example.com",
        "2024-01-01",
        "a",
    ];
    schema
        .get("default")
        .into_iter()
        .cloned()
        .chain(candidates.iter().map(|c| json!(c)))
        .find(|c| validator.is_valid(c))
        .unwrap_or_else(|| panic!("no sample string matches {}", schema["pattern"]))
}

/// `OpenAPI` 3.0 → JSON Schema 2020-12: `nullable: true` becomes "or null".
fn to_json_schema(schema: &Value) -> Value {
    match schema {
        Value::Object(obj) => {
            let inner: Map<String, Value> = obj
                .iter()
                .filter(|(k, _)| *k != "nullable")
                .map(|(k, v)| (k.clone(), to_json_schema(v)))
                .collect();
            if obj.get("nullable") == Some(&json!(true)) {
                json!({ "anyOf": [Value::Object(inner), { "type": "null" }] })
            } else {
                Value::Object(inner)
            }
        }
        Value::Array(items) => Value::Array(items.iter().map(to_json_schema).collect()),
        other => other.clone(),
    }
}

/// Validation errors of `input` against `components.schemas.Input`, as "path: message".
fn input_errors(root: &Value, input: &Value) -> Vec<String> {
    let mut schema = to_json_schema(root);
    let schema_obj = schema.as_object_mut().expect("document object");
    schema_obj.retain(|k, _| k == "components");
    schema_obj.insert("$ref".into(), json!("#/components/schemas/Input"));
    let validator = jsonschema::validator_for(&schema).expect("schema compiles");
    validator
        .iter_errors(input)
        .map(|e| format!("{}: {e}", e.instance_path))
        .collect()
}

/// The corpus file whose schema no value satisfies: `model_size` is `type: integer` with
/// string enum values (`["512", "256"]`). The generated enum sends the integer.
const UNSATISFIABLE: &[(&str, &str)] = &[("gnobitab__fusedream", "/model_size")];

#[test]
fn generated_inputs_satisfy_their_schema() {
    let mut checked = 0;
    let mut defaults = 0;
    let mut rejected = BTreeSet::new();
    for entry in corpus::ALL {
        let doc = read_json(&corpus_dir().join(format!("{}.json", entry.name)));
        let root = openapi(&doc);
        let Some(input_schema) = root.pointer("/components/schemas/Input") else {
            continue;
        };
        let sample = sample(input_schema, root, 0);
        let json = (entry.round_trip_input)(sample.clone())
            .unwrap_or_else(|e| panic!("{}: sample {sample} does not decode: {e}", entry.name));
        let mut candidates = vec![("sample", json)];
        if let Some(default_input) = entry.default_input {
            candidates.push(("default", default_input()));
            defaults += 1;
        }
        for (kind, json) in candidates {
            checked += 1;
            for error in input_errors(root, &json) {
                let path = error.split(':').next().unwrap_or_default().to_owned();
                assert!(
                    UNSATISFIABLE.contains(&(entry.name, path.as_str())),
                    "{} ({kind} input {json}): {error}",
                    entry.name
                );
                rejected.insert((entry.name, path));
            }
        }
    }
    let expected: BTreeSet<(&str, String)> = UNSATISFIABLE
        .iter()
        .map(|(n, p)| (*n, (*p).to_owned()))
        .collect();
    assert_eq!(rejected, expected);
    assert!(
        checked >= 70 && defaults >= 15,
        "checked {checked}, defaults {defaults}"
    );
}
