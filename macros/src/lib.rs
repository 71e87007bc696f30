//! Implementation detail of `replicate-webhook`: the `#[replicate_webhook]` attribute.
//!
//! User documentation lives on the re-export in the `replicate-webhook` crate.

mod args;
mod expand;
mod model;
mod schema;

use proc_macro::TokenStream;

/// See `replicate_webhook::replicate_webhook`.
#[proc_macro_attribute]
pub fn replicate_webhook(args: TokenStream, item: TokenStream) -> TokenStream {
    expand::replicate_webhook(args.into(), item.into()).into()
}

/// See `replicate_webhook::replicate_model`.
#[proc_macro_attribute]
pub fn replicate_model(args: TokenStream, item: TokenStream) -> TokenStream {
    schema::replicate_model(args.into(), item.into()).into()
}
