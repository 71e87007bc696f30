//! Structs from `properties`, untagged unions from `anyOf`/`oneOf`, primitives, and defaults.

use serde_json::{Map, Value};

use super::enums::same_constant;
use super::refs::unbox;
use super::{Builder, Result, SchemaError, Shape};
use crate::schema::docs::{doc_of, notes};
use crate::schema::json::{bound, json_text, str_of};
use crate::schema::names::{Names, snake, unraw, upper_camel};
use crate::schema::ty::{Def, Field, FieldKind, IntTy, Lit, StructDef, Ty, UnionDef};

impl Builder<'_> {
    /// The type for one JSON Schema `type`.
    pub(super) fn typed(
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

    pub(super) fn secret_ty(&mut self) -> Ty {
        if self.secret.is_none() {
            self.secret = Some(self.names.alloc("Secret"));
        }
        Ty::Secret
    }

    pub(super) fn union(
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

    pub(super) fn struct_def(
        &mut self,
        obj: &Map<String, Value>,
        path: &str,
        name: String,
    ) -> Result<()> {
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

    /// A Rust constant of type `ty` for the JSON default, if it has one.
    pub(super) fn lit(&self, ty: &Ty, value: &Value) -> Option<Lit> {
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

/// The integer type for `obj`'s bounds (`minimum`/`maximum`, pydantic's `ge`/`le`, exclusive
/// bounds), widened to hold the default.
pub(super) fn int_ty(obj: &Map<String, Value>) -> IntTy {
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

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use crate::schema::build::testing::{input_field, model};
    use crate::schema::ty::*;

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
}
