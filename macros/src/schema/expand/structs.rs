//! Structs: fields with their serde attributes, `new(required…)`, schema defaults, `Default`.

use proc_macro2::TokenStream;
use quote::{format_ident, quote};

use super::{Cx, allows, data_derive, docs, ident, lit, rust_ty};
use crate::schema::names::unraw;
use crate::schema::ty::{Field, FieldKind, StructDef, Ty};

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

pub(super) fn strukt(def: &StructDef, cx: &Cx<'_>) -> TokenStream {
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
