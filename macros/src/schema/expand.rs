//! The type model → Rust items. The only file of the schema module that writes tokens.

use proc_macro2::{Literal, TokenStream};
use quote::{format_ident, quote};
use serde_json::Value;

use super::names::unraw;
use super::ty::{Def, EnumDef, Field, FieldKind, IntTy, Lit, Model, StructDef, Ty, UnionDef};

/// What every item needs: the paths into the runtime and the name of the generated secret type.
struct Cx<'a> {
    /// `::replicate_webhook::__private`, or the `crate = "..."` override's `__private`.
    private: TokenStream,
    /// The same path as text, for `#[serde(crate = "...")]`.
    serde_crate: String,
    secret: &'a str,
}

impl<'a> Cx<'a> {
    fn new(krate: &syn::Path, secret: &'a str) -> Self {
        let mut text = if krate.leading_colon.is_some() {
            "::".to_owned()
        } else {
            String::new()
        };
        for segment in &krate.segments {
            text.push_str(&segment.ident.to_string());
            text.push_str("::");
        }
        Self {
            private: quote!(#krate::__private),
            serde_crate: format!("{text}__private::serde"),
            secret,
        }
    }

    fn serde(&self) -> TokenStream {
        let private = &self.private;
        quote!(#private::serde)
    }

    fn json(&self) -> TokenStream {
        let private = &self.private;
        quote!(#private::serde_json)
    }
}

/// The derives of every generated data type that (de)serializes as a whole.
fn data_derive(cx: &Cx<'_>) -> TokenStream {
    let serde = cx.serde();
    quote! {
        #[derive(
            ::core::fmt::Debug,
            ::core::clone::Clone,
            ::core::cmp::PartialEq,
            #serde::Serialize,
            #serde::Deserialize
        )]
    }
}

/// Lints that schema text (docs) and schema shapes (many arguments, float constants) trip in
/// the user's crate; `missing_docs` because most schema properties have no description.
fn allows() -> TokenStream {
    quote! {
        #[allow(
            missing_docs,
            unreachable_pub,
            clippy::all,
            clippy::pedantic,
            clippy::nursery,
            rustdoc::bare_urls,
            rustdoc::broken_intra_doc_links,
            rustdoc::invalid_html_tags
        )]
    }
}

fn ident(name: &str) -> syn::Ident {
    match name.strip_prefix("r#") {
        Some(raw) => syn::Ident::new_raw(raw, proc_macro2::Span::call_site()),
        None => format_ident!("{}", name),
    }
}

fn docs(lines: &[String]) -> TokenStream {
    let lines = lines.iter().map(|l| format!(" {l}"));
    quote!(#(#[doc = #lines])*)
}

/// All items for one schema, plus the rebuild-on-change `include_str!`.
pub(crate) fn expand(model: &Model, include_path: &str, krate: &syn::Path) -> TokenStream {
    let cx = &Cx::new(krate, model.secret.as_deref().unwrap_or("Secret"));
    let items = model.defs.iter().map(|def| match def {
        Def::Struct(s) => strukt(s, cx),
        Def::Enum(e) => enumeration(e, cx),
        Def::Union(u) => union(u, cx),
        Def::Alias { name, doc, ty } => {
            let name = ident(name);
            let doc = docs(doc);
            let ty = rust_ty(ty, cx);
            let allows = allows();
            quote!(#doc #allows pub type #name = #ty;)
        }
        Def::Newtype { name, doc, ty } => newtype(name, doc, ty, cx),
        Def::Concat { name, doc } => concat(name, doc, cx),
    });
    let secret_def = model.secret.as_deref().map(|name| secret_newtype(name, cx));
    quote! {
        #(#items)*
        #secret_def
        const _: &str = ::core::include_str!(#include_path);
    }
}

fn rust_ty(ty: &Ty, cx: &Cx<'_>) -> TokenStream {
    let json = cx.json();
    match ty {
        Ty::Bool => quote!(bool),
        Ty::Int(int) => {
            let int = format_ident!("{}", int.name());
            quote!(#int)
        }
        Ty::F64 => quote!(f64),
        Ty::String => quote!(::std::string::String),
        Ty::Secret => {
            let secret = ident(cx.secret);
            quote!(#secret)
        }
        Ty::Url => {
            let private = &cx.private;
            quote!(#private::Url)
        }
        Ty::Value => quote!(#json::Value),
        Ty::Map => quote!(#json::Map<::std::string::String, #json::Value>),
        Ty::Vec(item) => {
            let item = rust_ty(item, cx);
            quote!(::std::vec::Vec<#item>)
        }
        Ty::Option(inner) => {
            let inner = rust_ty(inner, cx);
            quote!(::core::option::Option<#inner>)
        }
        Ty::StringMap(value) => {
            let value = rust_ty(value, cx);
            quote!(::std::collections::BTreeMap<::std::string::String, #value>)
        }
        Ty::Named(name) => {
            let name = ident(name);
            quote!(#name)
        }
        Ty::Boxed(inner) => {
            let inner = rust_ty(inner, cx);
            quote!(::std::boxed::Box<#inner>)
        }
    }
}

fn lit(value: &Lit, cx: &Cx<'_>) -> TokenStream {
    match value {
        Lit::Bool(b) => quote!(#b),
        Lit::Int(n, int) => {
            // The model only builds `Lit::Int` for values the type holds.
            let lit = match int {
                IntTy::U8 => u8::try_from(*n).map(Literal::u8_suffixed).ok(),
                IntTy::U16 => u16::try_from(*n).map(Literal::u16_suffixed).ok(),
                IntTy::U32 => u32::try_from(*n).map(Literal::u32_suffixed).ok(),
                IntTy::U64 => u64::try_from(*n).map(Literal::u64_suffixed).ok(),
                IntTy::I8 => i8::try_from(*n).map(Literal::i8_suffixed).ok(),
                IntTy::I16 => i16::try_from(*n).map(Literal::i16_suffixed).ok(),
                IntTy::I32 => i32::try_from(*n).map(Literal::i32_suffixed).ok(),
                IntTy::I64 => i64::try_from(*n).map(Literal::i64_suffixed).ok(),
            };
            let lit = lit.unwrap_or_else(|| Literal::i64_suffixed(0));
            quote!(#lit)
        }
        Lit::F64(f) => {
            let lit = Literal::f64_suffixed(*f);
            quote!(#lit)
        }
        Lit::Str(s) => quote!(::std::string::String::from(#s)),
        Lit::Secret(s) => {
            let secret = ident(cx.secret);
            quote!(#secret::new(#s))
        }
        Lit::Variant(ty, variant) => {
            let (ty, variant) = (ident(ty), ident(variant));
            quote!(#ty::#variant)
        }
        Lit::Vec(items) => {
            let items = items.iter().map(|i| lit(i, cx));
            quote!(::std::vec![#(#items),*])
        }
        Lit::Json(text) => {
            let json = cx.json();
            quote!(#json::from_str(#text).unwrap_or_default())
        }
        Lit::Some(inner) => {
            let inner = lit(inner, cx);
            quote!(::core::option::Option::Some(#inner))
        }
    }
}

fn default_fn(field: &Field) -> syn::Ident {
    format_ident!("default_{}", unraw(&field.ident))
}

fn field(def: &StructDef, f: &Field, cx: &Cx<'_>) -> TokenStream {
    let field = ident(&f.ident);
    let ty = rust_ty(&f.ty, cx);
    let doc = docs(&f.doc);
    let mut attrs = Vec::new();
    if unraw(&f.ident) != f.json {
        let json = &f.json;
        attrs.push(quote!(rename = #json));
    }
    match &f.kind {
        FieldKind::Required | FieldKind::RequiredNullable => {}
        FieldKind::Optional => {
            attrs.push(quote!(
                default,
                skip_serializing_if = "::core::option::Option::is_none"
            ));
        }
        FieldKind::Defaulted(_) => {
            let path = format!("{}::{}", def.name, default_fn(f));
            attrs.push(quote!(default = #path));
        }
    }
    let serde_attr = (!attrs.is_empty()).then(|| quote!(#[serde(#(#attrs),*)]));
    quote!(#doc #serde_attr pub #field: #ty)
}

fn strukt(def: &StructDef, cx: &Cx<'_>) -> TokenStream {
    let serde_crate = &cx.serde_crate;
    let derive = data_derive(cx);
    let allows = allows();
    let name = ident(&def.name);
    let doc = docs(&def.doc);
    let fields = def.fields.iter().map(|f| field(def, f, cx));
    let constructors = constructors(def, cx);
    quote! {
        #doc
        #derive
        #[serde(crate = #serde_crate)]
        #allows
        pub struct #name {
            #(#fields,)*
        }

        #constructors
    }
}

/// `new(required…)`, one `default_<field>()` per schema default, and `Default` when nothing
/// is required.
fn constructors(def: &StructDef, cx: &Cx<'_>) -> TokenStream {
    let allows = allows();
    let name = ident(&def.name);
    let defaults = def.fields.iter().filter_map(|f| match &f.kind {
        FieldKind::Defaulted(value) => {
            let fn_name = default_fn(f);
            let ty = rust_ty(&f.ty, cx);
            let value = lit(value, cx);
            let doc = format!(" The schema default of `{}`.", f.json);
            Some(quote!(#[doc = #doc] pub fn #fn_name() -> #ty { #value }))
        }
        _ => None,
    });
    let required: Vec<&Field> = def
        .fields
        .iter()
        .filter(|f| f.kind == FieldKind::Required)
        .collect();
    let params = required.iter().map(|f| {
        let field = ident(&f.ident);
        match &f.ty {
            Ty::String => quote!(#field: impl ::core::convert::Into<::std::string::String>),
            ty => {
                let ty = rust_ty(ty, cx);
                quote!(#field: #ty)
            }
        }
    });
    let inits = def.fields.iter().map(|f| {
        let field = ident(&f.ident);
        let value = match &f.kind {
            FieldKind::Required if f.ty == Ty::String => {
                quote!(::core::convert::Into::into(#field))
            }
            FieldKind::Required => quote!(#field),
            FieldKind::RequiredNullable | FieldKind::Optional => {
                quote!(::core::option::Option::None)
            }
            FieldKind::Defaulted(_) => {
                let fn_name = default_fn(f);
                quote!(Self::#fn_name())
            }
        };
        quote!(#field: #value)
    });
    let new_doc = if required.is_empty() {
        " Every field at its schema default (or `None`).".to_owned()
    } else {
        let names: Vec<String> = required.iter().map(|f| format!("`{}`", f.json)).collect();
        format!(
            " The required {}; every other field at its schema default (or `None`).",
            names.join(", ")
        )
    };
    let default_impl = required.is_empty().then(|| {
        quote! {
            #allows
            impl ::core::default::Default for #name {
                fn default() -> Self {
                    Self::new()
                }
            }
        }
    });
    quote! {
        #allows
        impl #name {
            #[doc = #new_doc]
            pub fn new(#(#params),*) -> Self {
                Self { #(#inits,)* }
            }

            #(#defaults)*
        }

        #default_impl
    }
}

fn enumeration(def: &EnumDef, cx: &Cx<'_>) -> TokenStream {
    let allows = allows();
    let name = ident(&def.name);
    let doc = docs(&def.doc);
    let idents: Vec<syn::Ident> = def.variants.iter().map(|v| ident(&v.ident)).collect();
    let texts: Vec<String> = def
        .variants
        .iter()
        .map(|v| match &v.value {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        })
        .collect();
    let count = def.variants.len();
    let variant_docs = texts.iter().map(|t| format!(" `{t}`"));

    let serde_impls = enum_serde(def, &idents, &texts, cx);

    quote! {
        #doc
        #[derive(
            ::core::fmt::Debug,
            ::core::clone::Clone,
            ::core::marker::Copy,
            ::core::cmp::PartialEq,
            ::core::cmp::Eq,
            ::core::hash::Hash
        )]
        #allows
        pub enum #name {
            #(#[doc = #variant_docs] #idents,)*
        }

        #allows
        impl #name {
            /// Every value the schema allows, in schema order.
            pub const ALL: [Self; #count] = [#(Self::#idents),*];

            /// The value as written in the schema (numbers in decimal).
            pub const fn as_str(self) -> &'static str {
                match self { #(Self::#idents => #texts,)* }
            }
        }

        #allows
        impl ::core::fmt::Display for #name {
            fn fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        #serde_impls
    }
}

/// `Serialize`/`Deserialize` by value: strings by text; numbers and booleans through a JSON
/// value, so `512` and `"512"` both decode.
fn enum_serde(def: &EnumDef, idents: &[syn::Ident], texts: &[String], cx: &Cx<'_>) -> TokenStream {
    let serde = cx.serde();
    let json = cx.json();
    let allows = allows();
    let name = ident(&def.name);
    let name_str = def.name.as_str();
    if def.all_strings() {
        quote! {
            #allows
            impl #serde::Serialize for #name {
                fn serialize<S: #serde::Serializer>(&self, serializer: S) -> ::core::result::Result<S::Ok, S::Error> {
                    serializer.serialize_str(self.as_str())
                }
            }

            #allows
            impl<'de> #serde::Deserialize<'de> for #name {
                fn deserialize<D: #serde::Deserializer<'de>>(deserializer: D) -> ::core::result::Result<Self, D::Error> {
                    let value = <::std::borrow::Cow<'de, str> as #serde::Deserialize>::deserialize(deserializer)?;
                    match &*value {
                        #(#texts => ::core::result::Result::Ok(Self::#idents),)*
                        other => ::core::result::Result::Err(<D::Error as #serde::de::Error>::unknown_variant(
                            other,
                            &[#(#texts),*],
                        )),
                    }
                }
            }
        }
    } else {
        let ser_arms = def.variants.iter().zip(idents).map(|(v, id)| {
            let call = match &v.value {
                Value::Bool(b) => quote!(serializer.serialize_bool(#b)),
                Value::Number(n) if n.as_i64().is_some() => {
                    let n = n.as_i64().unwrap_or_default();
                    quote!(serializer.serialize_i64(#n))
                }
                Value::Number(n) if n.as_u64().is_some() => {
                    let n = n.as_u64().unwrap_or_default();
                    quote!(serializer.serialize_u64(#n))
                }
                Value::Number(n) => {
                    let f = Literal::f64_suffixed(n.as_f64().unwrap_or_default());
                    quote!(serializer.serialize_f64(#f))
                }
                other => {
                    let s = match other {
                        Value::String(s) => s.clone(),
                        o => o.to_string(),
                    };
                    quote!(serializer.serialize_str(#s))
                }
            };
            quote!(Self::#id => #call)
        });
        // Numbers also match their decimal text (`"512"` for `512`): shimmed Cog 0.1 schemas
        // declare numeric enums with string values.
        let checks = def.variants.iter().zip(idents).zip(texts).map(|((v, id), text)| {
            let test = match &v.value {
                Value::Bool(b) => quote!(value.as_bool() == ::core::option::Option::Some(#b)),
                Value::Number(n) => {
                    let f = Literal::f64_suffixed(n.as_f64().unwrap_or_default());
                    quote!(value.as_f64() == ::core::option::Option::Some(#f) || value.as_str() == ::core::option::Option::Some(#text))
                }
                _ => quote!(value.as_str() == ::core::option::Option::Some(#text)),
            };
            quote!(if #test { return ::core::result::Result::Ok(Self::#id); })
        });
        let expected = format!("one of {} for {name_str}", texts.join(", "));
        quote! {
            #allows
            impl #serde::Serialize for #name {
                fn serialize<S: #serde::Serializer>(&self, serializer: S) -> ::core::result::Result<S::Ok, S::Error> {
                    match self { #(#ser_arms,)* }
                }
            }

            #allows
            impl<'de> #serde::Deserialize<'de> for #name {
                fn deserialize<D: #serde::Deserializer<'de>>(deserializer: D) -> ::core::result::Result<Self, D::Error> {
                    let value = <#json::Value as #serde::Deserialize>::deserialize(deserializer)?;
                    #(#checks)*
                    ::core::result::Result::Err(<D::Error as #serde::de::Error>::invalid_value(
                        #serde::de::Unexpected::Other(&value.to_string()),
                        &#expected,
                    ))
                }
            }
        }
    }
}

fn union(def: &UnionDef, cx: &Cx<'_>) -> TokenStream {
    let serde_crate = &cx.serde_crate;
    let derive = data_derive(cx);
    let allows = allows();
    let name = ident(&def.name);
    let doc = docs(&def.doc);
    let variants = def.variants.iter().map(|(v, ty)| {
        let v = ident(v);
        let ty = rust_ty(ty, cx);
        quote!(#v(#ty))
    });
    quote! {
        #doc
        #derive
        #[serde(crate = #serde_crate, untagged)]
        #allows
        pub enum #name {
            #(#variants,)*
        }
    }
}

fn newtype(name: &str, doc: &[String], ty: &Ty, cx: &Cx<'_>) -> TokenStream {
    let serde_crate = &cx.serde_crate;
    let derive = data_derive(cx);
    let allows = allows();
    let name = ident(name);
    let doc = docs(doc);
    let ty = rust_ty(ty, cx);
    quote! {
        #doc
        #derive
        #[serde(crate = #serde_crate, transparent)]
        #allows
        pub struct #name(pub #ty);
    }
}

fn concat(name: &str, doc: &[String], cx: &Cx<'_>) -> TokenStream {
    let serde_crate = &cx.serde_crate;
    let serde = cx.serde();
    let allows = allows();
    let name = ident(name);
    let doc = docs(doc);
    quote! {
        #doc
        #[derive(
            ::core::fmt::Debug,
            ::core::clone::Clone,
            ::core::default::Default,
            ::core::cmp::PartialEq,
            ::core::cmp::Eq,
            #serde::Serialize,
            #serde::Deserialize
        )]
        #[serde(crate = #serde_crate, transparent)]
        #allows
        pub struct #name(pub ::std::vec::Vec<::std::string::String>);

        #allows
        impl #name {
            /// The chunks joined into one string (`x-cog-array-display: concatenate`).
            pub fn text(&self) -> ::std::string::String {
                self.0.concat()
            }
        }

        #allows
        impl ::core::ops::Deref for #name {
            type Target = ::std::vec::Vec<::std::string::String>;

            fn deref(&self) -> &Self::Target {
                &self.0
            }
        }

        #allows
        impl ::core::convert::From<::std::vec::Vec<::std::string::String>> for #name {
            fn from(chunks: ::std::vec::Vec<::std::string::String>) -> Self {
                Self(chunks)
            }
        }

        #allows
        impl ::core::fmt::Display for #name {
            fn fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
                self.0.iter().try_for_each(|chunk| f.write_str(chunk))
            }
        }
    }
}

fn secret_newtype(name: &str, cx: &Cx<'_>) -> TokenStream {
    let serde_crate = &cx.serde_crate;
    let serde = cx.serde();
    let allows = allows();
    let name = ident(name);
    let debug = format!("{name}(\"**********\")");
    quote! {
        /// A secret input (`format: password` / `x-cog-secret`): serialised as the plain string,
        /// redacted in `Debug`.
        #[derive(
            ::core::clone::Clone,
            ::core::cmp::PartialEq,
            ::core::cmp::Eq,
            #serde::Serialize,
            #serde::Deserialize
        )]
        #[serde(crate = #serde_crate, transparent)]
        #allows
        pub struct #name(::std::string::String);

        #allows
        impl #name {
            /// Wraps a secret value.
            pub fn new(value: impl ::core::convert::Into<::std::string::String>) -> Self {
                Self(value.into())
            }

            /// The secret value itself.
            pub fn expose(&self) -> &str {
                &self.0
            }
        }

        #allows
        impl ::core::fmt::Debug for #name {
            fn fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
                f.write_str(#debug)
            }
        }

        #allows
        impl ::core::convert::From<::std::string::String> for #name {
            fn from(value: ::std::string::String) -> Self {
                Self(value)
            }
        }

        #allows
        impl ::core::convert::From<&str> for #name {
            fn from(value: &str) -> Self {
                Self(value.into())
            }
        }
    }
}
