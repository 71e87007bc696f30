//! Enums of schema values (with `ALL`, `as_str`, `Display` and value-based serde) and untagged
//! unions.

use proc_macro2::{Literal, TokenStream};
use quote::quote;
use serde_json::Value;

use super::{Cx, allows, data_derive, docs, ident, rust_ty};
use crate::schema::ty::{EnumDef, UnionDef};

pub(super) fn enumeration(def: &EnumDef, cx: &Cx<'_>) -> TokenStream {
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

pub(super) fn union(def: &UnionDef, cx: &Cx<'_>) -> TokenStream {
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
