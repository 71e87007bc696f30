//! `$ref`s: resolved once each, with cycles either boxed, defined through a newtype, or refused.

use serde_json::{Map, Value};

use super::{Builder, RefState, Result, SchemaError, Shape};
use crate::schema::docs::doc_of;
use crate::schema::names::upper_camel;
use crate::schema::ty::{Def, Ty};

impl Builder<'_> {
    pub(super) fn reference(&mut self, reference: &str, path: &str) -> Result<Shape> {
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

    /// The description of a `$ref`/`allOf` target, for properties without their own.
    pub(super) fn ref_doc(&self, prop: &Map<String, Value>) -> Vec<String> {
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
}

/// `ty` as the body of the type `name`, unless it is nothing but `name` again
/// (`{"$ref": <itself>}`), which defines no type at all.
pub(super) fn through_itself(ty: Ty, name: &str, path: &str) -> Result<Ty> {
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
pub(super) fn mentions(ty: &Ty, name: &str) -> bool {
    match ty {
        Ty::Named(n) => n == name,
        Ty::Vec(inner) | Ty::Option(inner) | Ty::StringMap(inner) | Ty::Boxed(inner) => {
            mentions(inner, name)
        }
        _ => false,
    }
}

/// Drops a recursion `Box` where a `Vec` or map already gives indirection.
pub(super) fn unbox(ty: Ty) -> Ty {
    match ty {
        Ty::Boxed(inner) => *inner,
        Ty::Option(inner) => Ty::Option(Box::new(unbox(*inner))),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::schema::build::build;
    use crate::schema::build::testing::{input_field, model};
    use crate::schema::ty::*;

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
