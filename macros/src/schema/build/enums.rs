//! Enums from `enum` values: variant names, numeric and string values, duplicates.

use serde_json::{Map, Value};

use super::{Builder, Shape};
use crate::schema::docs::doc_of;
use crate::schema::json::str_of;
use crate::schema::names::{Names, upper_camel};
use crate::schema::ty::{Def, EnumDef, Ty, Variant};

impl Builder<'_> {
    pub(super) fn enumeration(
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
}

/// Enum value equality that tolerates `512` vs `"512"` and `1` vs `1.0`.
pub(super) fn same_constant(a: &Value, b: &Value) -> bool {
    let text = |v: &Value| match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    a == b
        || (a.as_f64().is_some() && b.as_f64().is_some() && a.as_f64() == b.as_f64())
        || text(a) == text(b)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::schema::build::testing::{input_field, model};
    use crate::schema::ty::*;

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
}
