//! The type model: the Rust types a schema becomes, before any tokens are written.

use serde_json::Value;

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
    pub(crate) fn fitting(lo: Option<f64>, hi: Option<f64>) -> Self {
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

    pub(crate) fn holds(self, n: i128) -> bool {
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
