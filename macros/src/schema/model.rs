//! A Cog `openapi_schema` (`OpenAPI` 3.0 flavoured JSON Schema) → an intermediate type model.
//!
//! No tokens here: this is the part with the decisions (which Rust type, which name, which
//! default), and it is unit-tested on plain JSON.

use std::collections::HashMap;

use serde_json::{Map, Value};

use super::names::{Names, snake, unraw, upper_camel};

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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum IntTy {
    U8,
    U16,
    U32,
    U64,
    I8,
    I16,
    I32,
    I64,
}

impl IntTy {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::U8 => "u8",
            Self::U16 => "u16",
            Self::U32 => "u32",
            Self::U64 => "u64",
            Self::I8 => "i8",
            Self::I16 => "i16",
            Self::I32 => "i32",
            Self::I64 => "i64",
        }
    }

    /// The smallest type holding `lo..=hi`; `i64` when a bound is missing.
    #[allow(clippy::cast_precision_loss)]
    fn fitting(lo: Option<f64>, hi: Option<f64>) -> Self {
        let (Some(lo), Some(hi)) = (lo, hi) else {
            return Self::I64;
        };
        let unsigned = [
            (Self::U8, f64::from(u8::MAX)),
            (Self::U16, f64::from(u16::MAX)),
            (Self::U32, f64::from(u32::MAX)),
        ];
        let signed = [
            (Self::I8, f64::from(i8::MIN), f64::from(i8::MAX)),
            (Self::I16, f64::from(i16::MIN), f64::from(i16::MAX)),
            (Self::I32, f64::from(i32::MIN), f64::from(i32::MAX)),
        ];
        if lo >= 0.0 {
            unsigned.iter().find(|(_, max)| hi <= *max).map_or(
                if hi <= u64::MAX as f64 {
                    Self::U64
                } else {
                    Self::I64
                },
                |(ty, _)| *ty,
            )
        } else {
            signed
                .iter()
                .find(|(_, min, max)| lo >= *min && hi <= *max)
                .map_or(Self::I64, |s| s.0)
        }
    }

    fn holds(self, n: i128) -> bool {
        let (lo, hi): (i128, i128) = match self {
            Self::U8 => (0, u8::MAX.into()),
            Self::U16 => (0, u16::MAX.into()),
            Self::U32 => (0, u32::MAX.into()),
            Self::U64 => (0, u64::MAX.into()),
            Self::I8 => (i8::MIN.into(), i8::MAX.into()),
            Self::I16 => (i16::MIN.into(), i16::MAX.into()),
            Self::I32 => (i32::MIN.into(), i32::MAX.into()),
            Self::I64 => (i64::MIN.into(), i64::MAX.into()),
        };
        (lo..=hi).contains(&n)
    }
}

/// A Rust type in generated code.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Ty {
    Bool,
    Int(IntTy),
    F64,
    String,
    /// The generated redacting secret newtype.
    Secret,
    Url,
    /// `serde_json::Value`: untyped or unsupported.
    Value,
    /// `serde_json::Map<String, Value>`: a free-form object.
    Map,
    Vec(Box<Ty>),
    Option(Box<Ty>),
    /// `BTreeMap<String, T>`: an object with typed `additionalProperties`.
    StringMap(Box<Ty>),
    /// A generated struct or enum.
    Named(String),
    /// Indirection for recursive types.
    Boxed(Box<Ty>),
}

/// A constant of some [`Ty`], used for defaults.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Lit {
    Bool(bool),
    Int(i128, IntTy),
    F64(f64),
    Str(String),
    Secret(String),
    /// `Type::Variant`.
    Variant(String, String),
    Vec(Vec<Lit>),
    /// Parsed from this JSON text at run time (`Value`, maps); cannot fail.
    Json(String),
    Some(Box<Lit>),
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum FieldKind {
    /// `T`; a `new` argument.
    Required,
    /// `Option<T>`, required but `nullable`; serialised as `null` when `None`.
    RequiredNullable,
    /// `Option<T>`, left out when `None`.
    Optional,
    /// `T` (or `Option<T>` if nullable) filled from the schema default when missing.
    Defaulted(Lit),
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Field {
    /// The JSON property name.
    pub(crate) json: String,
    /// The Rust field name, possibly `r#…`.
    pub(crate) ident: String,
    /// The declared type, `Option` included.
    pub(crate) ty: Ty,
    pub(crate) kind: FieldKind,
    pub(crate) doc: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct StructDef {
    pub(crate) name: String,
    pub(crate) doc: Vec<String>,
    pub(crate) fields: Vec<Field>,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Variant {
    pub(crate) ident: String,
    pub(crate) value: Value,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct EnumDef {
    pub(crate) name: String,
    pub(crate) doc: Vec<String>,
    pub(crate) variants: Vec<Variant>,
}

impl EnumDef {
    pub(crate) fn all_strings(&self) -> bool {
        self.variants.iter().all(|v| v.value.is_string())
    }
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct UnionDef {
    pub(crate) name: String,
    pub(crate) doc: Vec<String>,
    pub(crate) variants: Vec<(String, Ty)>,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Def {
    Struct(StructDef),
    Enum(EnumDef),
    /// An untagged enum for `anyOf`/`oneOf`.
    Union(UnionDef),
    /// `pub type Name = Ty;`
    Alias {
        name: String,
        doc: Vec<String>,
        ty: Ty,
    },
    /// `pub struct Name(pub Ty)`, transparent: a recursive schema that is not an object, enum or
    /// union (`{"type": "array", "items": {"$ref": <itself>}}`), which a `type` alias cannot be.
    Newtype {
        name: String,
        doc: Vec<String>,
        ty: Ty,
    },
    /// `pub struct Name(pub Vec<String>)` for `x-cog-array-display: concatenate`.
    Concat {
        name: String,
        doc: Vec<String>,
    },
}

impl Def {
    pub(crate) fn name(&self) -> &str {
        match self {
            Def::Struct(s) => &s.name,
            Def::Enum(e) => &e.name,
            Def::Union(u) => &u.name,
            Def::Alias { name, .. } | Def::Newtype { name, .. } | Def::Concat { name, .. } => name,
        }
    }
}

/// Everything generated for one schema file.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Model {
    pub(crate) defs: Vec<Def>,
    /// Name of the redacting secret newtype, if any field needs it.
    pub(crate) secret: Option<String>,
}

impl Model {
    #[cfg(test)]
    pub(crate) fn def(&self, name: &str) -> Option<&Def> {
        self.defs.iter().find(|d| d.name() == name)
    }
}

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

fn str_of<'v>(obj: &'v Map<String, Value>, key: &str) -> Option<&'v str> {
    obj.get(key).and_then(Value::as_str)
}

/// The description as doc lines, each trimmed: Python docstrings arrive indented, and four
/// leading spaces would make a Markdown code block.
fn doc_of(obj: &Map<String, Value>) -> Vec<String> {
    let Some(text) = str_of(obj, "description") else {
        return Vec::new();
    };
    if text.trim() == "An enumeration." {
        return Vec::new();
    }
    let mut lines: Vec<String> = text.lines().map(|l| l.trim().to_owned()).collect();
    while lines.last().is_some_and(String::is_empty) {
        lines.pop();
    }
    let start = lines
        .iter()
        .position(|l| !l.is_empty())
        .unwrap_or(lines.len());
    let mut lines = lines.split_off(start);
    plain_code_fences(&mut lines);
    lines
}

/// Marks the schema's Markdown code blocks that rustdoc would compile and run as doctests in the
/// user's crate (```` ``` ````, ```` ```rust ````, ...) as `text`.
fn plain_code_fences(lines: &mut [String]) {
    const RUST: &[&str] = &[
        "rust",
        "ignore",
        "should_panic",
        "no_run",
        "compile_fail",
        "test_harness",
        "standalone_crate",
        "edition2015",
        "edition2018",
        "edition2021",
        "edition2024",
    ];
    let mut open: Option<&str> = None;
    for line in lines {
        let Some(fence) = ["```", "~~~"].into_iter().find(|f| line.starts_with(f)) else {
            continue;
        };
        if open == Some(fence) {
            open = None;
            continue;
        }
        if open.is_some() {
            continue;
        }
        open = Some(fence);
        let mark = fence.chars().next().unwrap_or('`');
        let info = line.trim_start_matches(mark);
        let rust = info
            .split(|c: char| c == ',' || c.is_whitespace())
            .all(|t| t.is_empty() || RUST.contains(&t));
        if rust {
            *line = format!("{}text", &line[..line.len() - info.len()]);
        }
    }
}

fn bound(obj: &Map<String, Value>, keys: &[&str]) -> Option<f64> {
    keys.iter()
        .find_map(|k| obj.get(*k).and_then(Value::as_f64))
}

fn json_text(v: &Value) -> String {
    serde_json::to_string(v).unwrap_or_default()
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

    fn enumeration(
        &mut self,
        obj: &Map<String, Value>,
        values: &[Value],
        hint: &str,
        exact: bool,
    ) -> Shape {
        let declared = str_of(obj, "type");
        let mut nullable = false;
        let mut clean = Vec::new();
        for value in values {
            let value = match value {
                Value::Null => {
                    nullable = true;
                    continue;
                }
                // `type: integer` with string values (shimmed Cog 0.1): numbers really.
                Value::String(s) if matches!(declared, Some("integer" | "number")) => s
                    .parse::<i64>()
                    .map(Value::from)
                    .ok()
                    .or_else(|| {
                        s.parse::<f64>()
                            .ok()
                            .and_then(serde_json::Number::from_f64)
                            .map(Value::Number)
                    })
                    .unwrap_or_else(|| value.clone()),
                Value::String(_) | Value::Number(_) | Value::Bool(_) => value.clone(),
                // Array/object constants: no sensible enum.
                _ => {
                    return Shape {
                        ty: Ty::Value,
                        nullable,
                    };
                }
            };
            // `1` and `1.0` are the same JSON Schema value: one variant.
            let numeric = |a: &Value, b: &Value| a.is_number() && a.as_f64() == b.as_f64();
            if !clean.iter().any(|c| *c == value || numeric(c, &value)) {
                clean.push(value);
            }
        }
        if clean.is_empty() {
            return Shape {
                ty: Ty::Value,
                nullable,
            };
        }
        let name = self.new_name(obj, hint, exact);
        let mut idents = Names::default();
        let variants = clean
            .into_iter()
            .map(|value| {
                let text = match &value {
                    Value::String(s) => s.clone(),
                    Value::Number(n) if n.as_f64().is_some_and(|f| f < 0.0) => {
                        format!("minus {}", n.to_string().trim_start_matches('-'))
                    }
                    other => other.to_string(),
                };
                Variant {
                    ident: idents.alloc(&upper_camel(&text)),
                    value,
                }
            })
            .collect();
        let mut doc = doc_of(obj);
        if doc.is_empty() {
            doc.push(format!(
                "The values of `{}`.",
                str_of(obj, "title").unwrap_or(&name)
            ));
        }
        self.defs.push(Def::Enum(EnumDef {
            name: name.clone(),
            doc,
            variants,
        }));
        Shape {
            ty: Ty::Named(name),
            nullable,
        }
    }

    /// The type for one JSON Schema `type`.
    fn typed(
        &mut self,
        obj: &Map<String, Value>,
        ty: &str,
        path: &str,
        hint: &str,
        exact: bool,
    ) -> Result<Ty> {
        Ok(match ty {
            "string" => {
                let secret = obj.get("x-cog-secret").and_then(Value::as_bool) == Some(true);
                match str_of(obj, "format") {
                    Some("uri") => Ty::Url,
                    Some("password") => self.secret_ty(),
                    _ if secret => self.secret_ty(),
                    _ => Ty::String,
                }
            }
            "integer" => Ty::Int(int_ty(obj)),
            "number" => Ty::F64,
            "boolean" => Ty::Bool,
            "array" => {
                let item = match obj.get("items") {
                    Some(items) => {
                        let item_hint = format!("{}Item", hint.trim_end_matches("Item"));
                        self.shape(items, &format!("{path}.items"), &item_hint)?
                            .into_ty()
                    }
                    None => Ty::Value,
                };
                Ty::Vec(Box::new(unbox(item)))
            }
            "object" => match obj.get("properties") {
                Some(Value::Object(props)) if !props.is_empty() => {
                    let name = self.new_name(obj, hint, exact);
                    self.struct_def(obj, path, name.clone())?;
                    Ty::Named(name)
                }
                _ => match obj.get("additionalProperties") {
                    Some(extra @ Value::Object(o)) if !o.is_empty() => {
                        let value_path = format!("{path}.additionalProperties");
                        let value = self.shape(extra, &value_path, &format!("{hint}Value"))?;
                        Ty::StringMap(Box::new(unbox(value.into_ty())))
                    }
                    _ => Ty::Map,
                },
            },
            other => {
                return Err(SchemaError::new(
                    &format!("{path}.type"),
                    format!("unsupported type \"{other}\""),
                ));
            }
        })
    }

    fn secret_ty(&mut self) -> Ty {
        if self.secret.is_none() {
            self.secret = Some(self.names.alloc("Secret"));
        }
        Ty::Secret
    }

    fn reference(&mut self, reference: &str, path: &str) -> Result<Shape> {
        match self.refs.get(reference) {
            Some(RefState::Done(shape)) => return Ok(shape.clone()),
            Some(RefState::InProgress(name)) => {
                return Ok(Shape::of(Ty::Boxed(Box::new(Ty::Named(name.clone())))));
            }
            None => {}
        }
        let pointer = reference.strip_prefix('#').ok_or_else(|| {
            SchemaError::new(
                path,
                format!("only local `$ref`s (`#/…`) are supported, found `{reference}`"),
            )
        })?;
        let target = self.root.pointer(pointer).ok_or_else(|| {
            SchemaError::new(
                path,
                format!("`{reference}` does not resolve in this document"),
            )
        })?;
        let last = pointer
            .rsplit('/')
            .next()
            .unwrap_or_default()
            .replace("~1", "/")
            .replace("~0", "~");
        let base = upper_camel(&last);
        // Reserve the name now so that a self-reference inside can point at it.
        let name = self.names.alloc(&base);
        self.refs
            .insert(reference.to_owned(), RefState::InProgress(name.clone()));
        let target_path = format!(
            "{}{}",
            self.prefix,
            pointer.trim_start_matches('/').replace('/', ".")
        );
        let mut shape = self.shape_named(target, &target_path, &name, true)?;
        if matches!(&shape.ty, Ty::Named(n) if *n == name) {
            // A struct, enum or union of that name.
        } else if mentions(&shape.ty, &name) {
            // Recursive but not a struct, enum or union (an array of itself): a newtype.
            let ty = through_itself(shape.ty, &name, &target_path)?;
            self.defs.push(Def::Newtype {
                name: name.clone(),
                doc: doc_of(target.as_object().unwrap_or(&Map::new())),
                ty,
            });
            shape.ty = Ty::Named(name);
        } else {
            // Not a new type (e.g. a plain string): use the type directly, free the name.
            self.names.release(&name);
        }
        self.refs
            .insert(reference.to_owned(), RefState::Done(shape.clone()));
        Ok(shape)
    }

    fn union(
        &mut self,
        branches: &[Value],
        path: &str,
        hint: &str,
        exact: bool,
        obj: &Map<String, Value>,
    ) -> Result<Shape> {
        let mut nullable = false;
        let mut tys: Vec<Ty> = Vec::new();
        for (i, branch) in branches.iter().enumerate() {
            if branch.get("type").and_then(Value::as_str) == Some("null") {
                nullable = true;
                continue;
            }
            let shape = self.shape(branch, &format!("{path}[{i}]"), &format!("{hint}Variant"))?;
            nullable |= shape.nullable;
            if !tys.contains(&shape.ty) {
                tys.push(shape.ty);
            }
        }
        match tys.len() {
            0 => {
                return Ok(Shape {
                    ty: Ty::Value,
                    nullable,
                });
            }
            1 => {
                return Ok(Shape {
                    ty: tys.remove(0),
                    nullable,
                });
            }
            _ => {}
        }
        // An untyped branch matches everything: try it last.
        tys.sort_by_key(|t| matches!(t, Ty::Value));
        let name = if exact {
            hint.to_owned()
        } else {
            let base = str_of(obj, "title").map_or_else(|| hint.to_owned(), upper_camel);
            self.names.alloc(&base)
        };
        let mut idents = Names::default();
        let variants = tys
            .into_iter()
            .map(|ty| (idents.alloc(&variant_name(&ty)), ty))
            .collect();
        self.defs.push(Def::Union(UnionDef {
            name: name.clone(),
            doc: doc_of(obj),
            variants,
        }));
        Ok(Shape {
            ty: Ty::Named(name),
            nullable,
        })
    }

    fn struct_def(&mut self, obj: &Map<String, Value>, path: &str, name: String) -> Result<()> {
        let empty = Map::new();
        let props = match obj.get("properties") {
            Some(Value::Object(props)) => props,
            None => &empty,
            Some(_) => return Err(SchemaError::new(path, "`properties` must be an object")),
        };
        let required: Vec<&str> = obj
            .get("required")
            .and_then(Value::as_array)
            .map(|r| r.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let mut ordered: Vec<(usize, &String, &Value)> = props
            .iter()
            .enumerate()
            .map(|(i, (k, v))| (i, k, v))
            .collect();
        ordered.sort_by(|a, b| {
            let key = |x: &(usize, &String, &Value)| x.2.get("x-order").and_then(Value::as_f64);
            match (key(a), key(b)) {
                (Some(x), Some(y)) => x.total_cmp(&y).then(a.0.cmp(&b.0)),
                (Some(_), None) => std::cmp::Ordering::Less,
                (None, Some(_)) => std::cmp::Ordering::Greater,
                (None, None) => a.0.cmp(&b.0),
            }
        });
        let mut idents = Names::default();
        let mut fields = Vec::new();
        for (_, json, schema) in ordered {
            let field_path = format!("{path}.properties.{json}");
            let ident = {
                let base = snake(json);
                let raw = base.starts_with("r#");
                let unique = idents.alloc(unraw(&base));
                if raw && unique == unraw(&base) {
                    base
                } else {
                    unique
                }
            };
            let shape = self.shape(schema, &field_path, &upper_camel(json))?;
            let prop = schema.as_object().unwrap_or(&empty);
            let mut doc = doc_of(prop);
            if doc.is_empty() {
                doc = self.ref_doc(prop);
            }
            let default = prop.get("default").filter(|d| !d.is_null());
            notes(prop, default, &mut doc);
            let is_required = required.contains(&json.as_str());
            let lit = default.and_then(|d| self.lit(&shape.ty, d));
            let (ty, kind) = match (lit, is_required, shape.nullable) {
                (Some(lit), _, false) => (shape.ty, FieldKind::Defaulted(lit)),
                (Some(lit), _, true) => (
                    Ty::Option(Box::new(shape.ty)),
                    FieldKind::Defaulted(Lit::Some(Box::new(lit))),
                ),
                (None, true, false) if default.is_none() => (shape.ty, FieldKind::Required),
                (None, true, true) => (Ty::Option(Box::new(shape.ty)), FieldKind::RequiredNullable),
                (None, _, _) => (Ty::Option(Box::new(shape.ty)), FieldKind::Optional),
            };
            fields.push(Field {
                json: json.clone(),
                ident,
                ty,
                kind,
                doc,
            });
        }
        let doc = doc_of(obj);
        self.defs.push(Def::Struct(StructDef { name, doc, fields }));
        Ok(())
    }

    /// The description of a `$ref`/`allOf` target, for properties without their own.
    fn ref_doc(&self, prop: &Map<String, Value>) -> Vec<String> {
        let reference = prop
            .get("$ref")
            .or_else(|| {
                prop.get("allOf")
                    .and_then(|a| a.get(0))
                    .and_then(|a| a.get("$ref"))
            })
            .and_then(Value::as_str);
        reference
            .and_then(|r| r.strip_prefix('#'))
            .and_then(|p| self.root.pointer(p))
            .and_then(Value::as_object)
            .map(doc_of)
            .unwrap_or_default()
    }

    /// A Rust constant of type `ty` for the JSON default, if it has one.
    fn lit(&self, ty: &Ty, value: &Value) -> Option<Lit> {
        match (ty, value) {
            (Ty::Bool, Value::Bool(b)) => Some(Lit::Bool(*b)),
            (Ty::Int(int), _) => {
                let n = match value {
                    Value::Number(n) => n.as_i64().map(i128::from).or_else(|| {
                        n.as_u64().map(i128::from).or_else(|| {
                            #[allow(clippy::cast_possible_truncation)]
                            n.as_f64().filter(|f| f.fract() == 0.0).map(|f| f as i128)
                        })
                    }),
                    Value::String(s) => s.trim().parse::<i128>().ok(),
                    _ => None,
                }?;
                int.holds(n).then_some(Lit::Int(n, *int))
            }
            (Ty::F64, Value::Number(n)) => n.as_f64().map(Lit::F64),
            // `"inf"`/`"NaN"` parse as floats but have no Rust literal.
            (Ty::F64, Value::String(s)) => s
                .trim()
                .parse()
                .ok()
                .filter(|f: &f64| f.is_finite())
                .map(Lit::F64),
            (Ty::String, Value::String(s)) => Some(Lit::Str(s.clone())),
            (Ty::Secret, Value::String(s)) => Some(Lit::Secret(s.clone())),
            (Ty::Named(name), _) => match self.def_of(name)? {
                Def::Enum(e) => e
                    .variants
                    .iter()
                    .find(|v| same_constant(&v.value, value))
                    .map(|v| Lit::Variant(name.clone(), v.ident.clone())),
                _ => None,
            },
            (Ty::Vec(item), Value::Array(items)) => items
                .iter()
                .map(|i| self.lit(item, i))
                .collect::<Option<Vec<_>>>()
                .map(Lit::Vec),
            (Ty::Option(inner), v) => self.lit(inner, v).map(|l| Lit::Some(Box::new(l))),
            (Ty::Value, v) | (Ty::Map, v @ Value::Object(_)) => Some(Lit::Json(json_text(v))),
            _ => None,
        }
    }
}

/// `ty` as the body of the type `name`, unless it is nothing but `name` again
/// (`{"$ref": <itself>}`), which defines no type at all.
fn through_itself(ty: Ty, name: &str, path: &str) -> Result<Ty> {
    let mut bare = &ty;
    while let Ty::Option(inner) | Ty::Boxed(inner) = bare {
        bare = inner;
    }
    if matches!(bare, Ty::Named(n) if n == name) {
        return Err(SchemaError::new(
            path,
            "this schema is only a reference to itself (a `$ref` cycle that defines no type)",
        ));
    }
    Ok(ty)
}

/// Whether the type `name` appears in `ty`.
fn mentions(ty: &Ty, name: &str) -> bool {
    match ty {
        Ty::Named(n) => n == name,
        Ty::Vec(inner) | Ty::Option(inner) | Ty::StringMap(inner) | Ty::Boxed(inner) => {
            mentions(inner, name)
        }
        _ => false,
    }
}

/// Drops a recursion `Box` where a `Vec` or map already gives indirection.
fn unbox(ty: Ty) -> Ty {
    match ty {
        Ty::Boxed(inner) => *inner,
        Ty::Option(inner) => Ty::Option(Box::new(unbox(*inner))),
        other => other,
    }
}

/// The integer type for `obj`'s bounds (`minimum`/`maximum`, pydantic's `ge`/`le`, exclusive
/// bounds), widened to hold the default.
fn int_ty(obj: &Map<String, Value>) -> IntTy {
    let lo = bound(obj, &["minimum", "ge"])
        .or_else(|| bound(obj, &["exclusiveMinimum", "gt"]).map(|b| b + 1.0))
        .map(f64::ceil);
    let hi = bound(obj, &["maximum", "le"])
        .or_else(|| bound(obj, &["exclusiveMaximum", "lt"]).map(|b| b - 1.0))
        .map(f64::floor);
    let (lo, hi) = match obj.get("default").and_then(Value::as_f64) {
        Some(d) => (lo.map(|l| l.min(d)), hi.map(|h| h.max(d))),
        None => (lo, hi),
    };
    IntTy::fitting(lo, hi)
}

/// Enum value equality that tolerates `512` vs `"512"` and `1` vs `1.0`.
fn same_constant(a: &Value, b: &Value) -> bool {
    let text = |v: &Value| match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    a == b
        || (a.as_f64().is_some() && b.as_f64().is_some() && a.as_f64() == b.as_f64())
        || text(a) == text(b)
}

fn variant_name(ty: &Ty) -> String {
    match ty {
        Ty::Bool => "Bool".into(),
        Ty::Int(_) => "Integer".into(),
        Ty::F64 => "Number".into(),
        Ty::String => "String".into(),
        Ty::Secret => "Secret".into(),
        Ty::Url => "Url".into(),
        Ty::Value => "Any".into(),
        Ty::Map | Ty::StringMap(_) => "Object".into(),
        Ty::Vec(_) => "List".into(),
        Ty::Option(inner) | Ty::Boxed(inner) => variant_name(inner),
        Ty::Named(name) => name.clone(),
    }
}

/// Constraint and default notes appended to a field's docs.
fn notes(prop: &Map<String, Value>, default: Option<&Value>, doc: &mut Vec<String>) {
    let mut lines = Vec::new();
    if let Some(d) = default {
        lines.push(format!("Default: `{}`.", json_text(d)));
    }
    let lo = bound(prop, &["minimum", "ge"]);
    let hi = bound(prop, &["maximum", "le"]);
    match (lo, hi) {
        (Some(lo), Some(hi)) => lines.push(format!("Range: `{lo}..={hi}`.")),
        (Some(lo), None) => lines.push(format!("Minimum: `{lo}`.")),
        (None, Some(hi)) => lines.push(format!("Maximum: `{hi}`.")),
        (None, None) => {}
    }
    for (key, label) in [
        ("minLength", "Minimum length"),
        ("maxLength", "Maximum length"),
    ] {
        if let Some(n) = prop.get(key).and_then(Value::as_u64) {
            lines.push(format!("{label}: {n}."));
        }
    }
    if let Some(p) = str_of(prop, "pattern") {
        lines.push(format!("Pattern: `{p}`."));
    }
    if prop.get("deprecated").and_then(Value::as_bool) == Some(true) {
        lines.push("Deprecated.".to_owned());
    }
    if !lines.is_empty() {
        if !doc.is_empty() {
            doc.push(String::new());
        }
        doc.extend(lines);
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn model(schemas: &Value) -> Model {
        build(&json!({ "components": { "schemas": schemas } })).expect("schema builds")
    }

    fn input_field(model: &Model, json: &str) -> Field {
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

    #[test]
    fn integers_take_the_fitting_type() {
        assert_eq!(IntTy::fitting(Some(0.0), Some(100.0)), IntTy::U8);
        assert_eq!(IntTy::fitting(Some(1.0), Some(1000.0)), IntTy::U16);
        assert_eq!(IntTy::fitting(Some(0.0), Some(4_294_967_295.0)), IntTy::U32);
        assert_eq!(IntTy::fitting(Some(-1.0), Some(100.0)), IntTy::I8);
        assert_eq!(IntTy::fitting(Some(-1.0), Some(1000.0)), IntTy::I16);
        assert_eq!(IntTy::fitting(Some(0.0), None), IntTy::I64);
        assert_eq!(IntTy::fitting(None, None), IntTy::I64);
    }

    #[test]
    fn primitive_fields() {
        let m = model(&json!({
            "Input": { "type": "object", "required": ["prompt"], "properties": {
                "prompt": { "type": "string", "x-order": 0, "description": "What to draw" },
                "steps": { "type": "integer", "minimum": 1, "maximum": 4, "default": 4, "x-order": 1 },
                "quality": { "type": "integer", "minimum": 0.0, "le": 100, "x-order": 2 },
                "seed": { "type": "integer", "x-order": 3 },
                "guidance": { "type": "number", "default": 3, "x-order": 4 },
                "image": { "type": "string", "format": "uri", "x-order": 5 },
                "fast": { "type": "boolean", "default": true, "x-order": 6 }
            }},
            "Output": { "type": "string" }
        }));
        let prompt = input_field(&m, "prompt");
        assert_eq!((prompt.ty, prompt.kind), (Ty::String, FieldKind::Required));
        assert_eq!(prompt.doc, vec!["What to draw"]);
        let steps = input_field(&m, "steps");
        assert_eq!(steps.ty, Ty::Int(IntTy::U8));
        assert_eq!(steps.kind, FieldKind::Defaulted(Lit::Int(4, IntTy::U8)));
        assert_eq!(
            input_field(&m, "quality").ty,
            Ty::Option(Box::new(Ty::Int(IntTy::U8)))
        );
        let seed = input_field(&m, "seed");
        assert_eq!(
            (seed.ty, seed.kind),
            (
                Ty::Option(Box::new(Ty::Int(IntTy::I64))),
                FieldKind::Optional
            )
        );
        assert_eq!(
            input_field(&m, "guidance").kind,
            FieldKind::Defaulted(Lit::F64(3.0))
        );
        assert_eq!(input_field(&m, "image").ty, Ty::Option(Box::new(Ty::Url)));
        assert_eq!(
            input_field(&m, "fast").kind,
            FieldKind::Defaulted(Lit::Bool(true))
        );
        assert_eq!(
            m.def("Output"),
            Some(&Def::Alias {
                name: "Output".into(),
                doc: vec!["The model's output (`components.schemas.Output`).".into()],
                ty: Ty::String
            })
        );
    }

    #[test]
    fn fields_follow_x_order_then_document_order() {
        let m = model(&json!({
            "Input": { "properties": {
                "b": { "type": "string", "x-order": 1 },
                "z": { "type": "string" },
                "a": { "type": "string", "x-order": 0 }
            }}
        }));
        let Some(Def::Struct(input)) = m.def("Input") else {
            panic!()
        };
        let order: Vec<&str> = input.fields.iter().map(|f| f.json.as_str()).collect();
        assert_eq!(order, ["a", "b", "z"]);
    }

    #[test]
    fn enums_behind_all_of_refs() {
        let m = model(&json!({
            "aspect_ratio": { "type": "string", "enum": ["1:1", "16:9"], "title": "aspect_ratio", "description": "An enumeration." },
            "megapixels": { "type": "string", "enum": ["1", "0.25"] },
            "top_k": { "type": "integer", "enum": [1, 2, 4] },
            "Input": { "properties": {
                "aspect_ratio": { "allOf": [{ "$ref": "#/components/schemas/aspect_ratio" }], "default": "1:1", "description": "Shape" },
                "megapixels": { "allOf": [{ "$ref": "#/components/schemas/megapixels" }], "default": "1" },
                "top_k": { "allOf": [{ "$ref": "#/components/schemas/top_k" }], "default": 4 }
            }}
        }));
        let Some(Def::Enum(ratio)) = m.def("AspectRatio") else {
            panic!("{m:#?}")
        };
        assert_eq!(
            ratio.doc,
            ["The values of `aspect_ratio`."],
            "not \"An enumeration.\""
        );
        let idents: Vec<&str> = ratio.variants.iter().map(|v| v.ident.as_str()).collect();
        assert_eq!(idents, ["V1_1", "V16_9"]);
        let field = input_field(&m, "aspect_ratio");
        assert_eq!(field.ty, Ty::Named("AspectRatio".into()));
        assert_eq!(
            field.kind,
            FieldKind::Defaulted(Lit::Variant("AspectRatio".into(), "V1_1".into()))
        );
        assert_eq!(field.doc[0], "Shape");
        let Some(Def::Enum(mp)) = m.def("Megapixels") else {
            panic!()
        };
        assert_eq!(mp.variants[1].ident, "V0_25");
        let Some(Def::Enum(top_k)) = m.def("TopK") else {
            panic!()
        };
        assert!(!top_k.all_strings());
        assert_eq!(
            input_field(&m, "top_k").kind,
            FieldKind::Defaulted(Lit::Variant("TopK".into(), "V4".into()))
        );
    }

    #[test]
    fn integer_enum_with_string_values_is_numeric() {
        let m = model(&json!({
            "Input": { "properties": {
                "model_size": { "enum": ["512", "256"], "type": "integer", "default": 512 }
            }}
        }));
        let Some(Def::Enum(size)) = m.def("ModelSize") else {
            panic!()
        };
        assert_eq!(size.variants[0].value, json!(512));
        assert_eq!(
            input_field(&m, "model_size").kind,
            FieldKind::Defaulted(Lit::Variant("ModelSize".into(), "V512".into()))
        );
    }

    #[test]
    fn nullable_required_and_optional() {
        let m = model(&json!({
            "Input": { "required": ["a"], "properties": {
                "a": { "type": "string", "nullable": true },
                "b": { "type": "integer", "nullable": true },
                "c": { "type": "integer", "nullable": true, "default": 3 },
                "d": { "anyOf": [{ "type": "string" }, { "type": "null" }] }
            }}
        }));
        assert_eq!(input_field(&m, "a").kind, FieldKind::RequiredNullable);
        assert_eq!(input_field(&m, "b").kind, FieldKind::Optional);
        let c = input_field(&m, "c");
        assert_eq!(c.ty, Ty::Option(Box::new(Ty::Int(IntTy::I64))));
        assert_eq!(
            c.kind,
            FieldKind::Defaulted(Lit::Some(Box::new(Lit::Int(3, IntTy::I64))))
        );
        assert_eq!(input_field(&m, "d").ty, Ty::Option(Box::new(Ty::String)));
    }

    #[test]
    fn awkward_field_names() {
        let m = model(&json!({
            "Input": { "properties": {
                "type": { "type": "string" }, "format": { "type": "string" },
                "fileSize": { "type": "integer" }, "file_size": { "type": "integer" },
                "RN50x4": { "type": "boolean" }, "max tokens": { "type": "integer" }, "self": { "type": "string" }
            }}
        }));
        let idents: Vec<String> = [
            "type",
            "format",
            "fileSize",
            "file_size",
            "RN50x4",
            "max tokens",
            "self",
        ]
        .iter()
        .map(|j| input_field(&m, j).ident)
        .collect();
        assert_eq!(
            idents,
            [
                "r#type",
                "format",
                "file_size",
                "file_size2",
                "rn50x4",
                "max_tokens",
                "self_"
            ]
        );
    }

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
    fn secrets_and_free_form_objects() {
        let m = model(&json!({
            "Input": { "properties": {
                "token": { "type": "string", "format": "password", "x-cog-secret": true },
                "messages": { "type": "array", "items": { "type": "object" }, "default": [] },
                "extra": { "type": "object", "additionalProperties": { "type": "number" } },
                "any": { "default": { "a": 1 } }
            }}
        }));
        assert_eq!(m.secret.as_deref(), Some("Secret"));
        assert_eq!(
            input_field(&m, "token").ty,
            Ty::Option(Box::new(Ty::Secret))
        );
        let messages = input_field(&m, "messages");
        assert_eq!(messages.ty, Ty::Vec(Box::new(Ty::Map)));
        assert_eq!(messages.kind, FieldKind::Defaulted(Lit::Vec(vec![])));
        assert_eq!(
            input_field(&m, "extra").ty,
            Ty::Option(Box::new(Ty::StringMap(Box::new(Ty::F64))))
        );
        assert_eq!(
            input_field(&m, "any").kind,
            FieldKind::Defaulted(Lit::Json("{\"a\":1}".into()))
        );
    }

    #[test]
    fn name_collisions_get_suffixes() {
        let m = model(&json!({
            "input": { "type": "string", "enum": ["a"] },
            "Input": { "properties": {
                "input": { "allOf": [{ "$ref": "#/components/schemas/input" }] },
                "output": { "type": "string", "enum": ["x"], "title": "Output" },
                "string": { "type": "string", "enum": ["y"] },
                "new": { "type": "string" }
            }}
        }));
        assert!(matches!(m.def("Input2"), Some(Def::Enum(_))));
        assert!(matches!(m.def("Output2"), Some(Def::Enum(_))));
        assert!(
            matches!(m.def("String2"), Some(Def::Enum(_))),
            "no shadowing of the prelude"
        );
        assert_eq!(
            input_field(&m, "new").ident,
            "new",
            "fields and methods do not clash"
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

    #[test]
    fn code_blocks_in_descriptions_are_not_doctests() {
        let doc = |text: &str| {
            let obj = json!({ "description": text });
            doc_of(obj.as_object().expect("object"))
        };
        assert_eq!(
            doc("Example:\n```\nlet x = ;\n```\nthen\n```rust,no_run\nboom\n```"),
            [
                "Example:",
                "```text",
                "let x = ;",
                "```",
                "then",
                "```text",
                "boom",
                "```"
            ]
        );
        assert_eq!(
            doc("```json\n{\"a\": 1}\n```\n~~~~\nx\n~~~~"),
            ["```json", "{\"a\": 1}", "```", "~~~~text", "x", "~~~~"]
        );
        // An unclosed fence still opens a text block.
        assert_eq!(doc("    ```\n    code"), ["```text", "code"]);
    }

    #[test]
    fn unusual_numbers_never_reach_a_literal() {
        let m = model(&json!({
            "Input": { "type": "object", "properties": {
                "inf": { "type": "number", "default": "inf", "x-order": 0 },
                "nan": { "type": "number", "default": "NaN", "x-order": 1 },
                "parsed": { "type": "number", "default": " 2.5 ", "x-order": 2 },
                "same": { "type": "number", "enum": [1, 1.0, 2], "x-order": 3 },
                "texts": { "type": "number", "enum": ["NaN", "inf", "1.5"], "x-order": 4 }
            } }
        }));
        assert_eq!(input_field(&m, "inf").kind, FieldKind::Optional);
        assert_eq!(input_field(&m, "nan").kind, FieldKind::Optional);
        assert_eq!(
            input_field(&m, "parsed").kind,
            FieldKind::Defaulted(Lit::F64(2.5))
        );
        let Some(Def::Enum(same)) = m.def("Same") else {
            panic!("no Same enum")
        };
        assert_eq!(same.variants.len(), 2, "{same:?}");
        let Some(Def::Enum(texts)) = m.def("Texts") else {
            panic!("no Texts enum")
        };
        let values: Vec<&Value> = texts.variants.iter().map(|v| &v.value).collect();
        assert_eq!(values, [&json!("NaN"), &json!("inf"), &json!(1.5)]);
    }

    #[test]
    fn ref_cycles_define_a_type_or_fail_cleanly() {
        // An array of itself: a transparent newtype (a `type` alias cannot recurse).
        let m = model(&json!({
            "Input": { "type": "object", "properties": {
                "tree": { "$ref": "#/components/schemas/Tree" }
            } },
            "Tree": { "type": "array", "items": { "$ref": "#/components/schemas/Tree" } },
            "Output": { "type": "object", "additionalProperties": { "$ref": "#/components/schemas/Output" } }
        }));
        assert_eq!(
            input_field(&m, "tree").ty,
            Ty::Option(Box::new(Ty::Named("Tree".into())))
        );
        assert!(
            matches!(m.def("Tree"), Some(Def::Newtype { ty, .. })
                if *ty == Ty::Vec(Box::new(Ty::Named("Tree".into())))),
            "{:?}",
            m.def("Tree")
        );
        assert!(
            matches!(m.def("Output"), Some(Def::Newtype { .. })),
            "{:?}",
            m.def("Output")
        );
        // Only references, no type anywhere: an error naming the place, not unknown types.
        for (schemas, path) in [
            (
                json!({
                    "Input": { "type": "object", "properties": { "a": { "$ref": "#/components/schemas/A" } } },
                    "A": { "$ref": "#/components/schemas/B" },
                    "B": { "allOf": [{ "$ref": "#/components/schemas/A" }] }
                }),
                "components.schemas.A",
            ),
            (
                json!({ "Output": { "anyOf": [{ "$ref": "#/components/schemas/Output" }, { "type": "null" }] } }),
                "components.schemas.Output",
            ),
        ] {
            let error = build(&json!({ "components": { "schemas": schemas } })).unwrap_err();
            assert_eq!(error.path, path, "{error:?}");
            assert!(error.message.contains("`$ref` cycle"), "{error:?}");
        }
    }

    #[test]
    fn recursive_refs_are_boxed() {
        let m = model(&json!({
            "Node": { "type": "object", "properties": {
                "child": { "$ref": "#/components/schemas/Node" },
                "children": { "type": "array", "items": { "$ref": "#/components/schemas/Node" } }
            }},
            "Output": { "$ref": "#/components/schemas/Node" }
        }));
        let Some(Def::Struct(node)) = m.def("Node") else {
            panic!("{m:#?}")
        };
        assert_eq!(
            node.fields[0].ty,
            Ty::Option(Box::new(Ty::Boxed(Box::new(Ty::Named("Node".into())))))
        );
        let vec = Ty::Vec(Box::new(Ty::Named("Node".into())));
        assert_eq!(
            node.fields[1].ty,
            Ty::Option(Box::new(vec)),
            "a Vec needs no Box"
        );
    }
}
