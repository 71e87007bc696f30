//! Model schemas the simulator serves, and the outputs it makes up from them.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// The version id of `replicate/hello-world` used in Replicate's docs.
pub const HELLO_WORLD_VERSION: &str =
    "5c7d5dc6dd8bf75c1acaa8565735e7986bc5b66206b55cca93cb72c9bf15ccaa";
/// The built-in model.
pub const HELLO_WORLD: &str = "replicate/hello-world";

/// The `openapi_schema` of `replicate/hello-world` (as `GET /v1/models/replicate/hello-world`
/// returns it, trimmed to the parts receivers and code generators read).
pub fn hello_world_schema() -> Value {
    json!({
        "openapi": "3.0.2",
        "info": {"title": "Cog", "version": "0.1.0"},
        "paths": {},
        "components": {"schemas": {
            "Input": {
                "type": "object",
                "title": "Input",
                "required": ["text"],
                "properties": {"text": {
                    "type": "string",
                    "title": "Text",
                    "x-order": 0,
                    "description": "Text to prefix with 'hello '"
                }}
            },
            "Output": {"type": "string", "title": "Output"},
            "Status": {
                "enum": ["processing", "succeeded", "failed"],
                "type": "string",
                "title": "Status",
                "description": "An enumeration."
            }
        }}
    })
}

/// A model the simulator knows: its schema and a stable version id.
#[derive(Debug, Clone)]
pub struct KnownModel {
    /// `owner/name`.
    pub slug: String,
    /// 64-hex version id.
    pub version: String,
    /// The `openapi_schema`.
    pub schema: Value,
}

/// Finds schemas: the built-in hello-world, then `DIR/owner/name.json` or `DIR/owner__name.json`.
#[derive(Debug, Clone, Default)]
pub struct Models {
    dir: Option<PathBuf>,
}

impl Models {
    /// Models from `dir` (if any) plus the built-in hello-world.
    pub fn new(dir: Option<PathBuf>) -> Self {
        Self { dir }
    }

    /// The model `owner/name`, if the simulator has a schema for it.
    pub fn find(&self, slug: &str) -> Option<KnownModel> {
        let (owner, name) = replicate_webhook_core::split_model(slug)?;
        if let Some(dir) = &self.dir {
            for path in [
                dir.join(owner).join(format!("{name}.json")),
                dir.join(format!("{owner}__{name}.json")),
            ] {
                if let Some(model) = load(&path, slug) {
                    return Some(model);
                }
            }
        }
        (slug == HELLO_WORLD).then(|| KnownModel {
            slug: HELLO_WORLD.to_owned(),
            version: HELLO_WORLD_VERSION.to_owned(),
            schema: hello_world_schema(),
        })
    }

    /// The model with version id `version`.
    pub fn find_version(&self, version: &str) -> Option<KnownModel> {
        if version == HELLO_WORLD_VERSION {
            return self.find(HELLO_WORLD);
        }
        let dir = self.dir.as_ref()?;
        for slug in slugs_in(dir) {
            if let Some(model) = self.find(&slug)
                && model.version == version
            {
                return Some(model);
            }
        }
        None
    }
}

fn load(path: &Path, slug: &str) -> Option<KnownModel> {
    let bytes = std::fs::read(path).ok()?;
    let schema: Value = serde_json::from_slice(&bytes).ok()?;
    if !schema.is_object() {
        return None;
    }
    let version = hex::encode(Sha256::digest(&bytes));
    Some(KnownModel {
        slug: slug.to_owned(),
        version,
        schema,
    })
}

fn slugs_in(dir: &Path) -> Vec<String> {
    let mut slugs = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return slugs;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let file = entry.file_name().to_string_lossy().into_owned();
        if path.is_dir() {
            if let Ok(inner) = std::fs::read_dir(&path) {
                for model in inner.flatten() {
                    let name = model.file_name().to_string_lossy().into_owned();
                    if let Some(name) = name.strip_suffix(".json") {
                        slugs.push(format!("{file}/{name}"));
                    }
                }
            }
        } else if let Some((owner, name)) =
            file.strip_suffix(".json").and_then(|f| f.split_once("__"))
        {
            slugs.push(format!("{owner}/{name}"));
        }
    }
    slugs
}

/// How a prediction's output grows step by step.
#[derive(Debug, Clone, PartialEq)]
pub enum OutputPlan {
    /// A string revealed progressively; the last step shows all of it.
    Text(String),
    /// An array gaining one item per step.
    Items(Vec<Value>),
    /// Nothing until the end, then this value.
    Final(Value),
}

impl OutputPlan {
    /// The plan for a prediction of a model with `schema` (if known), `input` and `steps` steps.
    pub fn new(schema: Option<&Value>, input: &Value, id: &str, steps: u32) -> Self {
        let output = schema.and_then(|s| s.pointer("/components/schemas/Output"));
        let text_input = ["text", "prompt"]
            .iter()
            .find_map(|k| input.get(*k).and_then(Value::as_str))
            .unwrap_or("world");
        let kind = output.and_then(|o| o.get("type")).and_then(Value::as_str);
        let steps = steps.max(1);
        match kind {
            None if output.is_some() => {
                Self::Final(json!({"result": format!("hello {text_input}")}))
            }
            Some("string") | None => Self::Text(format!("hello {text_input}")),
            Some("array") => {
                let uri = output
                    .and_then(|o| o.pointer("/items/format"))
                    .and_then(Value::as_str)
                    == Some("uri");
                let items = (0..steps)
                    .map(|i| {
                        if uri {
                            json!(format!(
                                "https://replicate.delivery/simulator/{id}/out-{i}.webp"
                            ))
                        } else if i == 0 {
                            json!(format!("hello {text_input}"))
                        } else {
                            json!(format!(" #{i}"))
                        }
                    })
                    .collect();
                Self::Items(items)
            }
            Some("integer") => Self::Final(json!(42)),
            Some("number") => Self::Final(json!(0.5)),
            Some("boolean") => Self::Final(json!(true)),
            Some(_) => Self::Final(json!({})),
        }
    }

    /// The output after step `step` (0-based) of `steps`.
    pub fn at(&self, step: u32, steps: u32) -> Value {
        let steps = steps.max(1);
        let done = step.min(steps - 1) + 1;
        match self {
            Self::Text(text) => {
                let chars: Vec<char> = text.chars().collect();
                let shown = (chars.len() * done as usize).div_ceil(steps as usize);
                Value::String(chars[..shown.min(chars.len())].iter().collect())
            }
            Self::Items(items) => Value::Array(items[..(done as usize).min(items.len())].to_vec()),
            Self::Final(value) => {
                if done == steps {
                    value.clone()
                } else {
                    Value::Null
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hello_world_text_grows_to_the_full_greeting() {
        let schema = hello_world_schema();
        let plan = OutputPlan::new(Some(&schema), &json!({"text": "Alice"}), "p", 3);
        assert_eq!(plan.at(2, 3), json!("hello Alice"));
        let first = plan.at(0, 3);
        assert!(first.as_str().unwrap().len() < "hello Alice".len());
    }

    #[test]
    fn uri_arrays_gain_one_item_per_step() {
        let schema = json!({"components": {"schemas": {"Output": {
            "type": "array", "items": {"type": "string", "format": "uri"}
        }}}});
        let plan = OutputPlan::new(Some(&schema), &json!({"prompt": "x"}), "p", 2);
        assert_eq!(plan.at(0, 2).as_array().unwrap().len(), 1);
        assert_eq!(plan.at(1, 2).as_array().unwrap().len(), 2);
    }

    #[test]
    fn built_in_model_and_version() {
        let models = Models::new(None);
        assert_eq!(
            models.find(HELLO_WORLD).unwrap().version,
            HELLO_WORLD_VERSION
        );
        assert_eq!(
            models.find_version(HELLO_WORLD_VERSION).unwrap().slug,
            HELLO_WORLD
        );
        assert!(models.find("acme/nope").is_none());
        assert!(models.find("../etc").is_none());
    }
}
