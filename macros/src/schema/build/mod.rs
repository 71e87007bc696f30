//! A Cog `openapi_schema` (`OpenAPI` 3.0 flavoured JSON Schema) → the type model.
//!
//! No tokens here: this is the part with the decisions (which Rust type, which name, which
//! default), and it is unit-tested on plain JSON. `mod.rs` walks the top-level schemas;
//! [`types`] builds structs, unions and primitives, [`enums`] the enums, [`refs`] follows
//! `$ref`s and keeps recursion finite.

mod enums;
mod refs;
mod types;

use std::collections::HashMap;

use serde_json::{Map, Value};

use super::docs::doc_of;
use super::json::{json_text, str_of};
use super::names::{Names, upper_camel};
use super::ty::{Def, EnumDef, Model, StructDef, Ty, UnionDef};
use refs::{mentions, through_itself};

/// A problem in the schema, with the JSON path where it was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SchemaError {
    pub(crate) path: String,
    pub(crate) message: String,
}

impl SchemaError {
    fn new(path: &str, message: impl Into<String>) -> Self {
        Self {
            path: path.to_owned(),
            message: message.into(),
        }
    }
}

type Result<T> = std::result::Result<T, SchemaError>;

/// Finds the `OpenAPI` document inside a model response, a version response, a bare
/// `openapi_schema` or a `{"components":{"schemas":…}}` object.
pub(crate) fn locate(doc: &Value) -> Result<(&Value, &'static str)> {
    replicate_webhook_core::schema::locate(doc).ok_or_else(|| {
        SchemaError::new(
            "",
            "no `components.schemas` object found; expected a model response \
             (`latest_version.openapi_schema`), a version response (`openapi_schema`), an \
             `openapi_schema` document or `{\"components\": {\"schemas\": …}}`",
        )
    })
}

/// The shape of one schema: a type plus whether `null` is allowed.
#[derive(Debug, Clone, PartialEq)]
struct Shape {
    ty: Ty,
    nullable: bool,
}

impl Shape {
    fn of(ty: Ty) -> Self {
        Self {
            ty,
            nullable: false,
        }
    }

    /// `Option<T>` when nullable.
    fn into_ty(self) -> Ty {
        if self.nullable {
            Ty::Option(Box::new(self.ty))
        } else {
            self.ty
        }
    }
}

enum RefState {
    InProgress(String),
    Done(Shape),
}

struct Builder<'a> {
    root: &'a Value,
    prefix: &'static str,
    names: Names,
    defs: Vec<Def>,
    refs: HashMap<String, RefState>,
    secret: Option<String>,
}

/// The top-level types: (component, is an input).
const TOP: &[(&str, bool)] = &replicate_webhook_core::schema::COMPONENTS;

/// Names a generated type must not take: they would shadow the prelude (and the `Url`/`Value`
/// users write) for code in the user's module.
const PRELUDE: &[&str] = &[
    "Option",
    "Some",
    "None",
    "Result",
    "Ok",
    "Err",
    "Vec",
    "String",
    "Box",
    "ToString",
    "ToOwned",
    "Default",
    "Clone",
    "Copy",
    "Debug",
    "Send",
    "Sync",
    "Sized",
    "Unpin",
    "Drop",
    "Fn",
    "FnMut",
    "FnOnce",
    "Iterator",
    "IntoIterator",
    "DoubleEndedIterator",
    "ExactSizeIterator",
    "Extend",
    "From",
    "Into",
    "TryFrom",
    "TryInto",
    "PartialEq",
    "Eq",
    "PartialOrd",
    "Ord",
    "AsRef",
    "AsMut",
    "FromIterator",
    "Url",
    "Value",
    "Map",
];

/// Builds the model for a whole schema file.
pub(crate) fn build(doc: &Value) -> Result<Model> {
    let (root, prefix) = locate(doc)?;
    let mut b = Builder {
        root,
        prefix,
        names: Names::default(),
        defs: Vec::new(),
        refs: HashMap::new(),
        secret: None,
    };
    for name in TOP
        .iter()
        .map(|(name, _)| *name)
        .chain(PRELUDE.iter().copied())
    {
        b.names.reserve(name);
    }
    let schemas = &root["components"]["schemas"];
    for &(name, input) in TOP {
        let path = format!("{prefix}components.schemas.{name}");
        let pointer = format!("#/components/schemas/{name}");
        match schemas.get(name) {
            Some(schema) => {
                b.refs
                    .insert(pointer.clone(), RefState::InProgress(name.to_owned()));
                let shape = if input {
                    b.input(schema, &path, name)?
                } else {
                    b.output(schema, &path, name)?
                };
                b.refs.insert(pointer, RefState::Done(shape));
                b.headline(name, input);
            }
            None if name == "Input" => b.defs.push(Def::Struct(StructDef {
                name: name.to_owned(),
                doc: vec!["The model takes no input (the schema has no `Input`).".to_owned()],
                fields: Vec::new(),
            })),
            None if name == "Output" => b.defs.push(Def::Alias {
                name: name.to_owned(),
                doc: vec!["The schema has no `Output`: any JSON value.".to_owned()],
                ty: Ty::Value,
            }),
            None => {}
        }
    }
    Ok(Model {
        defs: b.defs,
        secret: b.secret,
    })
}

impl Builder<'_> {
    /// Starts the docs of a top-level type with what it is.
    fn headline(&mut self, name: &str, input: bool) {
        let line = format!(
            "The model's {} (`components.schemas.{name}`).",
            match (input, name.starts_with("Training")) {
                (true, false) => "input",
                (false, false) => "output",
                (true, true) => "training input",
                (false, true) => "training output",
            }
        );
        if let Some(def) = self.defs.iter_mut().find(|d| d.name() == name) {
            let doc = match def {
                Def::Struct(StructDef { doc, .. })
                | Def::Enum(EnumDef { doc, .. })
                | Def::Union(UnionDef { doc, .. })
                | Def::Alias { doc, .. }
                | Def::Newtype { doc, .. }
                | Def::Concat { doc, .. } => doc,
            };
            if !doc.is_empty() {
                doc.insert(0, String::new());
            }
            doc.insert(0, line);
        }
    }

    fn input(&mut self, schema: &Value, path: &str, name: &str) -> Result<Shape> {
        let obj = schema
            .as_object()
            .ok_or_else(|| SchemaError::new(path, "expected an object schema"))?;
        if obj.contains_key("$ref") || obj.contains_key("allOf") {
            let shape = self.shape(schema, path, name)?;
            if !matches!(&shape.ty, Ty::Named(n) if matches!(self.def_of(n), Some(Def::Struct(_))))
            {
                return Err(SchemaError::new(
                    path,
                    "expected an object schema with `properties`",
                ));
            }
            self.defs.push(Def::Alias {
                name: name.to_owned(),
                doc: doc_of(obj),
                ty: shape.ty,
            });
            return Ok(Shape::of(Ty::Named(name.to_owned())));
        }
        match obj.get("type") {
            None => {}
            Some(Value::String(t)) if t == "object" => {}
            Some(other) => {
                return Err(SchemaError::new(
                    path,
                    format!("expected `type: \"object\"`, found {}", json_text(other)),
                ));
            }
        }
        self.struct_def(obj, path, name.to_owned())?;
        Ok(Shape::of(Ty::Named(name.to_owned())))
    }

    fn output(&mut self, schema: &Value, path: &str, name: &str) -> Result<Shape> {
        let obj = schema.as_object();
        let mut doc = obj.map(doc_of).unwrap_or_default();
        if let Some(obj) = obj {
            let concatenate = str_of(obj, "x-cog-array-display") == Some("concatenate");
            let iterator = str_of(obj, "x-cog-array-type") == Some("iterator");
            let items = obj.get("items").and_then(Value::as_object);
            let plain_strings = items.is_some_and(|i| {
                str_of(i, "type") == Some("string")
                    && !["format", "enum", "x-cog-secret", "nullable"]
                        .iter()
                        .any(|k| i.contains_key(*k))
            });
            if concatenate && plain_strings && str_of(obj, "type") == Some("array") {
                doc.push(
                    "Streamed text: the chunks in order; [`Self::text`] joins them.".to_owned(),
                );
                self.defs.push(Def::Concat {
                    name: name.to_owned(),
                    doc,
                });
                return Ok(Shape::of(Ty::Named(name.to_owned())));
            }
            if iterator {
                doc.push("Produced as a stream (`x-cog-array-type: iterator`).".to_owned());
            }
        }
        let shape = self.shape_named(schema, path, name, true)?;
        if shape.nullable {
            doc.push(
                "The schema allows `null`; a prediction's `output` is optional anyway.".into(),
            );
        }
        if shape.ty != Ty::Named(name.to_owned()) {
            let ty = through_itself(shape.ty.clone(), name, path)?;
            self.defs.push(if mentions(&ty, name) {
                Def::Newtype {
                    name: name.to_owned(),
                    doc,
                    ty,
                }
            } else {
                Def::Alias {
                    name: name.to_owned(),
                    doc,
                    ty,
                }
            });
        } else if let Some(def) = self.defs.iter_mut().find(|d| d.name() == name) {
            match def {
                Def::Struct(StructDef { doc: d, .. })
                | Def::Enum(EnumDef { doc: d, .. })
                | Def::Union(UnionDef { doc: d, .. }) => {
                    if d.is_empty() {
                        *d = doc;
                    }
                }
                Def::Alias { .. } | Def::Newtype { .. } | Def::Concat { .. } => {}
            }
        }
        Ok(Shape {
            ty: Ty::Named(name.to_owned()),
            nullable: shape.nullable,
        })
    }

    fn def_of(&self, name: &str) -> Option<&Def> {
        self.defs.iter().find(|d| d.name() == name)
    }

    fn shape(&mut self, schema: &Value, path: &str, hint: &str) -> Result<Shape> {
        self.shape_named(schema, path, hint, false)
    }

    /// The shape of `schema`; new types are named after `hint` (exactly if `exact`, else from
    /// the schema's `title` when it has one).
    /// The shape of `schema`; new types are named after `hint` (exactly if `exact`, else from
    /// the schema's `title` when it has one).
    fn shape_named(
        &mut self,
        schema: &Value,
        path: &str,
        hint: &str,
        exact: bool,
    ) -> Result<Shape> {
        let obj = match schema {
            Value::Object(obj) => obj,
            Value::Bool(true) | Value::Null => return Ok(Shape::of(Ty::Value)),
            other => {
                return Err(SchemaError::new(
                    path,
                    format!("expected a schema object, found {}", json_text(other)),
                ));
            }
        };
        let nullable = obj
            .get("nullable")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let mut shape = self.shape_of_object(obj, path, hint, exact)?;
        shape.nullable |= nullable;
        Ok(shape)
    }

    /// A name for a new type defined by `obj`.
    fn new_name(&mut self, obj: &Map<String, Value>, hint: &str, exact: bool) -> String {
        if exact {
            return hint.to_owned();
        }
        let base = str_of(obj, "title")
            .map(upper_camel)
            .filter(|t| t != "Value")
            .unwrap_or_else(|| hint.to_owned());
        self.names.alloc(&base)
    }

    fn shape_of_object(
        &mut self,
        obj: &Map<String, Value>,
        path: &str,
        hint: &str,
        exact: bool,
    ) -> Result<Shape> {
        if let Some(reference) = obj.get("$ref") {
            let reference = reference
                .as_str()
                .ok_or_else(|| SchemaError::new(path, "`$ref` must be a string"))?;
            return self.reference(reference, &format!("{path}.$ref"));
        }
        if let Some(all) = obj.get("allOf") {
            let all = all
                .as_array()
                .ok_or_else(|| SchemaError::new(path, "`allOf` must be an array"))?;
            if let [only] = all.as_slice() {
                return self.shape_named(only, &format!("{path}.allOf[0]"), hint, exact);
            }
            // Intersections of several schemas have no direct Rust counterpart.
            return Ok(Shape::of(Ty::Value));
        }
        for key in ["anyOf", "oneOf"] {
            if let Some(branches) = obj.get(key) {
                let branches = branches
                    .as_array()
                    .ok_or_else(|| SchemaError::new(path, format!("`{key}` must be an array")))?;
                return self.union(branches, &format!("{path}.{key}"), hint, exact, obj);
            }
        }
        if let Some(values) = obj.get("enum") {
            let values = values
                .as_array()
                .ok_or_else(|| SchemaError::new(path, "`enum` must be an array"))?;
            return Ok(self.enumeration(obj, values, hint, exact));
        }
        let types: Vec<&str> = match obj.get("type") {
            None if obj.contains_key("properties") => vec!["object"],
            None if obj.contains_key("items") => vec!["array"],
            None => return Ok(Shape::of(Ty::Value)),
            Some(Value::String(t)) => vec![t.as_str()],
            Some(Value::Array(ts)) => ts.iter().filter_map(Value::as_str).collect(),
            Some(other) => {
                return Err(SchemaError::new(
                    &format!("{path}.type"),
                    format!("expected a string, found {}", json_text(other)),
                ));
            }
        };
        let nullable = types.contains(&"null");
        let types: Vec<&str> = types.into_iter().filter(|t| *t != "null").collect();
        let ty = match types.as_slice() {
            [ty] => self.typed(obj, ty, path, hint, exact)?,
            _ => Ty::Value,
        };
        Ok(Shape { ty, nullable })
    }
}

/// Builds models from inline `components.schemas` for tests across the builder.
#[cfg(test)]
pub(crate) mod testing {
    use serde_json::{Value, json};

    use super::build;
    use crate::schema::ty::{Def, Field, Model};

    pub(crate) fn model(schemas: &Value) -> Model {
        build(&json!({ "components": { "schemas": schemas } })).expect("schema builds")
    }

    pub(crate) fn input_field(model: &Model, json: &str) -> Field {
        let Some(Def::Struct(input)) = model.def("Input") else {
            panic!("no Input struct")
        };
        input
            .fields
            .iter()
            .find(|f| f.json == json)
            .expect("field")
            .clone()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::schema::build::build;
    use crate::schema::build::testing::model;
    use crate::schema::ty::*;

    #[test]
    fn outputs() {
        let concat = model(&json!({ "Output": {
            "type": "array", "items": { "type": "string" },
            "x-cog-array-type": "iterator", "x-cog-array-display": "concatenate"
        }}));
        assert!(matches!(concat.def("Output"), Some(Def::Concat { .. })));

        let urls = model(
            &json!({ "Output": { "type": "array", "items": { "type": "string", "format": "uri" }, "x-cog-array-type": "iterator" }}),
        );
        let Some(Def::Alias { ty, .. }) = urls.def("Output") else {
            panic!()
        };
        assert_eq!(ty, &Ty::Vec(Box::new(Ty::Url)));

        let object = model(
            &json!({ "Output": { "type": "object", "required": ["video"], "properties": {
                "video": { "type": "string", "format": "uri" }, "zip": { "type": "string", "format": "uri" }
            }}}),
        );
        let Some(Def::Struct(out)) = object.def("Output") else {
            panic!()
        };
        assert_eq!(out.fields[0].ty, Ty::Url);
        assert_eq!(out.fields[1].kind, FieldKind::Optional);

        let items = model(
            &json!({ "Output": { "type": "array", "items": { "type": "object", "properties": { "file": { "type": "string", "format": "uri" } } } } }),
        );
        assert!(matches!(items.def("OutputItem"), Some(Def::Struct(_))));

        let any = model(&json!({ "Output": { "title": "Output" } }));
        let Some(Def::Alias { ty, .. }) = any.def("Output") else {
            panic!()
        };
        assert_eq!(ty, &Ty::Value);

        let union = model(&json!({
            "ModelOutput": { "type": "object", "properties": { "n": { "type": "integer" } } },
            "Output": { "anyOf": [{ "$ref": "#/components/schemas/ModelOutput" }, { "type": "string" }], "nullable": true }
        }));
        let Some(Def::Union(u)) = union.def("Output") else {
            panic!("{union:#?}")
        };
        assert_eq!(
            u.variants,
            vec![
                ("ModelOutput".into(), Ty::Named("ModelOutput".into())),
                ("String".into(), Ty::String)
            ]
        );
    }

    #[test]
    fn wrappers_are_found() {
        let inner = json!({ "components": { "schemas": { "Input": { "properties": {} } } } });
        for doc in [
            json!({ "latest_version": { "openapi_schema": inner.clone() } }),
            json!({ "openapi_schema": inner.clone() }),
            inner,
        ] {
            assert!(build(&doc).is_ok());
        }
        let err = build(&json!({ "openapi": "3.0.2" })).unwrap_err();
        assert!(err.message.contains("components.schemas"));
    }

    #[test]
    fn errors_name_the_json_path() {
        let err = build(&json!({ "openapi_schema": { "components": { "schemas": {
            "Input": { "properties": { "foo": { "type": "tuple" } } }
        }}}}))
        .unwrap_err();
        assert_eq!(
            err.path,
            "openapi_schema.components.schemas.Input.properties.foo.type"
        );
        assert_eq!(err.message, "unsupported type \"tuple\"");

        let err = build(&json!({ "components": { "schemas": {
            "Input": { "properties": { "foo": { "$ref": "#/components/schemas/Missing" } } }
        }}}))
        .unwrap_err();
        assert_eq!(err.path, "components.schemas.Input.properties.foo.$ref");

        let err = build(&json!({ "components": { "schemas": { "Input": { "type": "string" } } } }))
            .unwrap_err();
        assert_eq!(err.path, "components.schemas.Input");
    }
}
