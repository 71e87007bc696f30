//! The type model → Rust items: the only part of the schema module that writes tokens.
//! `mod.rs` holds the shared paths, types and literals; [`structs`], [`enums`] and [`newtypes`]
//! write one kind of item each.

mod enums;
mod newtypes;
mod structs;

use proc_macro2::{Literal, TokenStream};
use quote::{format_ident, quote};

use crate::schema::ty::{Def, IntTy, Lit, Model, Ty};
use enums::{enumeration, union};
use newtypes::{concat, newtype, secret_newtype};
use structs::strukt;

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
