//! Where a model's types sit in the documents Replicate serves.

use serde_json::Value;

/// The top-level components that become types, and whether each is an input.
pub const COMPONENTS: [(&str, bool); 4] = [
    ("Input", true),
    ("Output", false),
    ("TrainingInput", true),
    ("TrainingOutput", false),
];

/// Where `components.schemas` may sit, outermost first: the JSON path prefix and the keys.
const WRAPPERS: &[(&str, &[&str])] = &[
    (
        "latest_version.openapi_schema.",
        &["latest_version", "openapi_schema"],
    ),
    ("openapi_schema.", &["openapi_schema"]),
    ("", &[]),
];

/// Finds the `OpenAPI` document (the object holding `components.schemas`) inside a model
/// response, a version response, a bare `openapi_schema` or a `{"components":{"schemas":…}}`
/// object, with the JSON path prefix that leads to it (`"openapi_schema."`, ...).
pub fn locate(doc: &Value) -> Option<(&Value, &'static str)> {
    WRAPPERS.iter().find_map(|(prefix, keys)| {
        let node = keys.iter().try_fold(doc, |node, key| node.get(key))?;
        node.pointer("/components/schemas")
            .is_some_and(Value::is_object)
            .then_some((node, *prefix))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn finds_every_wrapper() {
        let inner = json!({ "components": { "schemas": {} } });
        assert_eq!(locate(&inner).map(|(_, p)| p), Some(""));
        let version = json!({ "openapi_schema": inner });
        assert_eq!(locate(&version).map(|(_, p)| p), Some("openapi_schema."));
        let model = json!({ "latest_version": version });
        assert_eq!(
            locate(&model).map(|(_, p)| p),
            Some("latest_version.openapi_schema.")
        );
        assert_eq!(locate(&json!({ "components": [] })), None);
    }
}
