//! Transparent newtypes: recursive outputs, concatenated text streams and the redacted secret.

use proc_macro2::TokenStream;
use quote::quote;

use super::{Cx, allows, data_derive, docs, ident, rust_ty};
use crate::schema::ty::Ty;

pub(super) fn newtype(name: &str, doc: &[String], ty: &Ty, cx: &Cx<'_>) -> TokenStream {
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

/// The derives (`std` ones, then serde's) and attributes of a newtype that is, in JSON, the
/// value it wraps.
fn transparent(std_derives: &[TokenStream], cx: &Cx<'_>) -> TokenStream {
    let serde_crate = &cx.serde_crate;
    let serde = cx.serde();
    let allows = allows();
    quote! {
        #[derive(#(#std_derives,)* #serde::Serialize, #serde::Deserialize)]
        #[serde(crate = #serde_crate, transparent)]
        #allows
    }
}

pub(super) fn concat(name: &str, doc: &[String], cx: &Cx<'_>) -> TokenStream {
    let std_derives = [
        quote!(::core::fmt::Debug),
        quote!(::core::clone::Clone),
        quote!(::core::default::Default),
        quote!(::core::cmp::PartialEq),
        quote!(::core::cmp::Eq),
    ];
    let transparent = transparent(&std_derives, cx);
    let allows = allows();
    let name = ident(name);
    let doc = docs(doc);
    quote! {
        #doc
        #transparent
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

pub(super) fn secret_newtype(name: &str, cx: &Cx<'_>) -> TokenStream {
    // No `Debug` derive: the impl below redacts the value.
    let std_derives = [
        quote!(::core::clone::Clone),
        quote!(::core::cmp::PartialEq),
        quote!(::core::cmp::Eq),
    ];
    let transparent = transparent(&std_derives, cx);
    let allows = allows();
    let name = ident(name);
    let debug = format!("{name}(\"**********\")");
    quote! {
        /// A secret input (`format: password` / `x-cog-secret`): serialised as the plain string,
        /// redacted in `Debug`.
        #transparent
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
