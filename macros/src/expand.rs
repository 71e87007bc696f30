//! Code generation: the module as written, its `WEBHOOK` spec, and the registration glue.
//!
//! The only file with `quote!`. Every generated path starts with `::replicate_webhook::__private`
//! (or the `crate = "..."` override's, or `::core`), and the glue lives in `const _: () = { .. };`
//! with `__`-prefixed names.

use proc_macro2::{Ident, Span, TokenStream};
use quote::{format_ident, quote, quote_spanned};
use replicate_webhook_core::{Event, HandlerKind};
use syn::spanned::Spanned as _;

use crate::args::{self, Args};
use crate::model::{self, Handler, Module};

/// The attribute: arguments and module in; the module with `WEBHOOK`, the schema types and the
/// registration glue out, or with as much of them as the mistakes leave valid, plus the errors.
pub(crate) fn replicate_webhook(args: TokenStream, item: TokenStream) -> TokenStream {
    let mut parsed = args::parse(args);
    let mut errors = std::mem::take(&mut parsed.errors);
    let all_args = parsed.args.as_ref().filter(|_| errors.is_empty());
    let mut module = match model::analyze(item.clone(), all_args) {
        Ok(module) => module,
        Err(more) => {
            errors.extend(more);
            return with_errors(item, errors);
        }
    };
    errors.append(&mut module.errors);

    // What is valid is still emitted, as thiserror's fallback does, "to minimize spurious
    // secondary errors": a misspelled handler must not also report "cannot find type `Output`".
    let schema = match &parsed.schema {
        Some(schema) => {
            crate::schema::expand_schema_file(schema, &parsed.krate).unwrap_or_else(|e| {
                errors.push(e);
                TokenStream::new()
            })
        }
        None => TokenStream::new(),
    };
    let spec = parsed
        .args
        .as_ref()
        .filter(|_| !module.defines_webhook)
        .map(|args| webhook_const(args, &parsed.krate));
    let glue = match &parsed.args {
        Some(args) if errors.is_empty() => glue(&module, args, &parsed),
        _ => TokenStream::new(),
    };
    with_errors(
        module_with(&module.item, &[schema, spec.unwrap_or_default(), glue]),
        errors,
    )
}

/// The item followed by the errors. When the item is not an inline module it stays untouched:
/// one typo must not also cause "cannot find function" errors, and IDEs keep seeing the module.
fn with_errors(mut item: TokenStream, errors: Vec<syn::Error>) -> TokenStream {
    item.extend(errors.into_iter().map(syn::Error::into_compile_error));
    item
}

/// The module as written, with `extra` appended inside it.
fn module_with(item: &syn::ItemMod, extra: &[TokenStream]) -> TokenStream {
    let syn::ItemMod {
        attrs,
        vis,
        unsafety,
        mod_token,
        ident,
        content,
        ..
    } = item;
    let items = content
        .as_ref()
        .map(|(_, items)| items)
        .into_iter()
        .flatten();
    let (inner, outer): (Vec<_>, Vec<_>) = attrs
        .iter()
        .partition(|a| matches!(a.style, syn::AttrStyle::Inner(_)));
    quote! {
        #(#outer)*
        #vis #unsafety #mod_token #ident {
            #(#inner)*
            #(#items)*

            #(#extra)*
        }
    }
}

/// `pub const WEBHOOK: WebhookSpec`: the subscription, for the registration and for the client.
fn webhook_const(args: &Args, krate: &syn::Path) -> TokenStream {
    let model = &args.model;
    let path = &args.path;
    let events = args.events();
    let doc = format!(
        " The webhook subscription of this module: model `{}`, path `{}`, events {}.\n\n \
         Pass it to the client when creating predictions so the webhook URL and events filter \
         match the handlers.",
        model.value(),
        path.value(),
        events
            .iter()
            .map(|e| format!("`{}`", e.event))
            .collect::<Vec<_>>()
            .join(", "),
    );
    let events = events.iter().map(|e| event_variant(e.event));
    quote! {
        #[doc = #doc]
        pub const WEBHOOK: #krate::__private::WebhookSpec = {
            use #krate::__private as __rw;
            __rw::WebhookSpec {
                model: #model,
                path: #path,
                events: &[#(#events),*],
            }
        };
    }
}

/// The handler wrappers and the registration, submitted to `inventory`.
fn glue(module: &Module, args: &args::Args, parsed: &args::Parsed) -> TokenStream {
    let krate = &parsed.krate;
    let kind = format_ident!(
        "{}",
        if args.training {
            "Training"
        } else {
            "Prediction"
        }
    );
    let cog = args.cog;
    let inbox = parsed.inbox;
    let concurrency = parsed.concurrency;
    let wrappers: Vec<Ident> = module
        .handlers
        .iter()
        .map(|h| format_ident!("__{}", h.ident))
        .collect();
    let wrapper_fns = module
        .handlers
        .iter()
        .zip(&wrappers)
        .map(|(h, name)| handler_wrapper(h, name));
    let entries = module.handlers.iter().zip(&wrappers).map(|(h, name)| {
        let kind = variant(h.kind);
        let cfgs = &h.cfgs;
        quote! {
            #(#cfgs)*
            __rw::HandlerEntry {
                kind: __rw::HandlerKind::#kind,
                call: #name,
            }
        }
    });
    quote! {
        const _: () = {
            use #krate::__private as __rw;

            #(#wrapper_fns)*

            __rw::inventory::submit! {
                __rw::Registration {
                    model: self::WEBHOOK.model,
                    path: self::WEBHOOK.path,
                    events: self::WEBHOOK.events,
                    handlers: &[#(#entries),*],
                    inbox: #inbox,
                    concurrency: #concurrency,
                    module: ::core::module_path!(),
                    file: ::core::file!(),
                    line: ::core::line!(),
                    kind: __rw::BodyKind::#kind,
                    cog: #cog,
                }
            }
        };
    }
}

fn event_variant(event: Event) -> TokenStream {
    let variant = variant(event);
    quote!(__rw::Event::#variant)
}

/// The variant's name as the runtime spells it: the runtime re-exports these very enums, and
/// derived `Debug` of a unit variant is its identifier.
fn variant(value: impl std::fmt::Debug) -> Ident {
    Ident::new(&format!("{value:?}"), Span::call_site())
}

/// `fn(Call) -> HandlerFuture` around one user handler. Each conversion is spanned at the
/// user's own type, so a wrong type is reported there, in the runtime trait's words.
fn handler_wrapper(handler: &Handler, name: &Ident) -> TokenStream {
    let user_fn = &handler.ident;
    let input_ty = &handler.input;
    let input_fn = match handler.kind {
        HandlerKind::DecodeError => quote!(decode_error_input),
        HandlerKind::Dead => quote!(dead_letter_input),
        _ => quote!(input),
    };
    let input = quote_spanned! {input_ty.span()=>
        __rw::#input_fn::<#input_ty>(&__call)?
    };
    let args: Vec<Ident> = (1..=handler.extractors.len())
        .map(|i| format_ident!("__arg{}", i))
        .collect();
    let extracts = handler
        .extractors
        .iter()
        .zip(&args)
        .enumerate()
        .map(|(i, (ty, arg))| {
            let position = i + 1;
            let call = quote_spanned! {ty.span()=>
                __rw::extract::<#ty>(&__call, #position).await?
            };
            quote!(let #arg = #call;)
        });
    let returned = quote_spanned! {handler.output_span=>
        __rw::outcome(__returned)
    };
    let cfgs = &handler.cfgs;
    quote! {
        #(#cfgs)*
        fn #name(__call: __rw::Call) -> __rw::HandlerFuture {
            __rw::handler_future(async move {
                let __input = #input;
                #(#extracts)*
                // Used as a value, not called by name: clippy's `unused_async` then leaves the
                // handler alone (the attribute requires `async`), with no `allow` that a user's
                // `forbid` would reject.
                let __handler = #user_fn;
                let __returned = __handler(__input, #(#args),*).await;
                __rw::Ok(#returned)
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use quote::quote;

    /// With `crate = "..."`, nothing in the expansion may still name `replicate_webhook`, or a
    /// crate that renamed the dependency would not compile.
    #[test]
    fn every_generated_path_goes_through_the_crate_argument() {
        let args = quote!(
            model = "acme/echo",
            events = ["start", "completed"],
            crate = "webhooks"
        );
        let item = quote! {
            mod echo {
                async fn on_start(p: Prediction) -> Result<(), HandlerError> { Ok(()) }
                async fn on_succeeded(p: Prediction, db: web::Data<Db>) -> Result<(), HandlerError> { Ok(()) }
                async fn on_decode_error(e: DecodeError) {}
            }
        };
        let expanded = super::replicate_webhook(args, item).to_string();
        assert!(expanded.contains("webhooks :: __private"), "{expanded}");
        assert!(!expanded.contains("replicate_webhook"), "{expanded}");
        assert!(!expanded.contains("compile_error"), "{expanded}");
    }
}
