//! The annotated module → the handlers it defines, with every mistake collected.

use proc_macro2::{Span, TokenStream};
use syn::spanned::Spanned as _;
use syn::{FnArg, Ident, Item, ItemFn, ItemMod, ReturnType, Type};

use replicate_webhook_core::{Event, HandlerKind as Kind};

use crate::args::Args;

/// One `on_*` function of the module.
#[derive(Debug)]
pub(crate) struct Handler {
    pub(crate) kind: Kind,
    pub(crate) ident: Ident,
    /// The prediction (or `DecodeError`) argument.
    pub(crate) input: Type,
    /// The further arguments: actix extractors.
    pub(crate) extractors: Vec<Type>,
    /// Where a wrong return type is reported: the type, or the name for `()`.
    pub(crate) output_span: Span,
    /// The function's `#[cfg]`s: the glue that calls it must vanish with it.
    pub(crate) cfgs: Vec<syn::Attribute>,
}

/// An inline module, its well-formed handlers and the mistakes in it.
#[derive(Debug)]
pub(crate) struct Module {
    pub(crate) item: ItemMod,
    pub(crate) handlers: Vec<Handler>,
    /// The module already defines `WEBHOOK`: emitting ours would add a second error.
    pub(crate) defines_webhook: bool,
    pub(crate) errors: Vec<syn::Error>,
}

/// Reads the annotated item. Checks against `args` only when they all parsed.
///
/// `Err` when the item is not an inline module: the caller can only emit it as written.
pub(crate) fn analyze(item: TokenStream, args: Option<&Args>) -> Result<Module, Vec<syn::Error>> {
    let item_mod = match syn::parse2::<Item>(item) {
        Ok(Item::Mod(item_mod)) => item_mod,
        Ok(other) => return Err(vec![not_a_module(&other)]),
        Err(e) => return Err(vec![e]),
    };
    let Some((_, items)) = &item_mod.content else {
        return Err(vec![syn::Error::new(
            item_mod.ident.span(),
            "#[replicate_webhook] needs an inline module: write `mod name { ... }` with the \
             handlers inside, not `mod name;`",
        )]);
    };

    let mut errors = Vec::new();
    let mut handlers = Vec::new();
    // Every known handler, well-formed or not, so one mistake does not also report
    // "no terminal handler".
    let mut defined = Vec::new();
    let mut defines_webhook = false;
    for item in items {
        if let Some(ident) = item_ident(item)
            && ident == "WEBHOOK"
        {
            defines_webhook = true;
            errors.push(syn::Error::new(
                ident.span(),
                "#[replicate_webhook] defines `WEBHOOK` in this module (the module's \
                 `WebhookSpec`); rename this item",
            ));
        }
        let Item::Fn(f) = item else { continue };
        let name = f.sig.ident.to_string();
        if !name.starts_with("on_") {
            continue;
        }
        let Some(kind) = Kind::from_fn_name(&name) else {
            errors.push(unknown_handler(&f.sig.ident, &name));
            continue;
        };
        defined.push((kind, f.sig.ident.clone()));
        if let Some(handler) = handler(kind, f, &mut errors) {
            handlers.push(handler);
        }
    }
    if let Some(args) = args {
        check_subscriptions(args, &defined, &mut errors);
    }

    Ok(Module {
        item: item_mod,
        handlers,
        defines_webhook,
        errors,
    })
}

/// The name an item defines in the value namespace, where `WEBHOOK` would collide.
fn item_ident(item: &Item) -> Option<&Ident> {
    match item {
        Item::Const(i) => Some(&i.ident),
        Item::Static(i) => Some(&i.ident),
        Item::Fn(i) => Some(&i.sig.ident),
        Item::Struct(i) if !matches!(i.fields, syn::Fields::Named(_)) => Some(&i.ident),
        _ => None,
    }
}

fn not_a_module(item: &Item) -> syn::Error {
    let what = match item {
        Item::Fn(_) => "a function",
        Item::Struct(_) => "a struct",
        Item::Enum(_) => "an enum",
        Item::Impl(_) => "an impl block",
        _ => "this item",
    };
    let span = match item {
        Item::Fn(f) => f.sig.ident.span(),
        Item::Struct(s) => s.ident.span(),
        Item::Enum(e) => e.ident.span(),
        other => other.span(),
    };
    syn::Error::new(
        span,
        format!(
            "#[replicate_webhook] goes on an inline module of handlers, not on {what}: \
             write `mod name {{ pub async fn on_succeeded(p: Prediction) -> Result<(), HandlerError> {{ .. }} }}`"
        ),
    )
}

fn unknown_handler(ident: &Ident, name: &str) -> syn::Error {
    let valid = Kind::ALL
        .iter()
        .map(|k| format!("`{}`", k.fn_name()))
        .collect::<Vec<_>>()
        .join(", ");
    let message = match suggestion(name) {
        Some(suggestion) => format!(
            "unknown handler `{name}`; did you mean `{suggestion}`?\n\
             functions named `on_*` are webhook handlers: {valid}"
        ),
        None => format!(
            "unknown handler `{name}`; functions named `on_*` are webhook handlers: {valid}"
        ),
    };
    syn::Error::new(ident.span(), message)
}

/// Words people reach for, then near-misses by spelling.
fn suggestion(name: &str) -> Option<&'static str> {
    let word = name.trim_start_matches("on_");
    let alias = match word {
        "success" | "succeed" | "complete" | "completed" | "done" | "finish" | "finished"
        | "result" => Some("on_succeeded"),
        "fail" | "failure" | "error" | "errored" => Some("on_failed"),
        "cancel" | "cancelled" | "cancellation" => Some("on_canceled"),
        "abort" => Some("on_aborted"),
        "dead_letter" | "dead_lettered" | "exhausted" | "give_up" => Some("on_dead"),
        "decode_failure" | "decode_failed" | "parse_error" | "decode" => Some("on_decode_error"),
        _ => None,
    };
    if alias.is_some() {
        return alias;
    }
    let (distance, closest) = Kind::ALL
        .iter()
        .map(|k| (strsim::levenshtein(name, k.fn_name()), k.fn_name()))
        .min()?;
    let shared_prefix = |candidate: &str| {
        word.chars()
            .zip(candidate.trim_start_matches("on_").chars())
            .take_while(|(a, b)| a == b)
            .count()
    };
    if distance <= name.len() / 2 {
        return Some(closest);
    }
    Kind::ALL
        .iter()
        .map(|k| (shared_prefix(k.fn_name()), k.fn_name()))
        .filter(|(shared, _)| *shared >= 3)
        .max()
        .map(|(_, name)| name)
}

/// Checks one handler's shape; `None` (with errors pushed) if it cannot be called.
fn handler(kind: Kind, f: &ItemFn, errors: &mut Vec<syn::Error>) -> Option<Handler> {
    let sig = &f.sig;
    let before = errors.len();
    if sig.asyncness.is_none() {
        errors.push(syn::Error::new(
            sig.fn_token.span,
            format!(
                "webhook handlers must be `async fn`: write `async fn {}`",
                kind.fn_name()
            ),
        ));
    }
    if let Some(unsafety) = sig.unsafety {
        errors.push(syn::Error::new(
            unsafety.span,
            "webhook handlers cannot be `unsafe fn`",
        ));
    }
    if let Some(param) = sig.generics.params.first() {
        errors.push(syn::Error::new(
            param.span(),
            "webhook handlers cannot be generic: name the prediction's types, e.g. \
             `Prediction<Vec<String>>`",
        ));
    }
    if let Some(variadic) = &sig.variadic {
        errors.push(syn::Error::new(
            variadic.span(),
            "webhook handlers cannot be variadic",
        ));
    }
    let mut types = Vec::new();
    for arg in &sig.inputs {
        match arg {
            FnArg::Typed(t) if matches!(*t.ty, Type::ImplTrait(_)) => {
                errors.push(syn::Error::new_spanned(
                    &t.ty,
                    "webhook handler arguments cannot be `impl Trait`: name the type, e.g. \
                     `Prediction<Vec<String>>` or `web::Data<Db>`",
                ));
            }
            FnArg::Typed(t) => types.push((*t.ty).clone()),
            FnArg::Receiver(r) => errors.push(syn::Error::new(
                r.span(),
                "webhook handlers are free functions; remove `self`",
            )),
        }
    }
    if sig.inputs.is_empty() {
        let expected = match kind {
            Kind::DecodeError => "error: DecodeError",
            Kind::Dead => "dead: DeadLetter",
            _ => "p: Prediction",
        };
        errors.push(syn::Error::new(
            sig.paren_token.span.join(),
            format!(
                "a webhook handler takes the delivery as its first argument: \
                 write `{}({expected})`",
                kind.fn_name()
            ),
        ));
    }
    if errors.len() > before {
        return None;
    }
    let mut types = types.into_iter();
    let input = types.next()?;
    Some(Handler {
        kind,
        ident: sig.ident.clone(),
        input,
        extractors: types.collect(),
        output_span: match &sig.output {
            ReturnType::Type(_, ty) => ty.span(),
            ReturnType::Default => sig.ident.span(),
        },
        cfgs: f
            .attrs
            .iter()
            .filter(|a| a.path().is_ident("cfg"))
            .cloned()
            .collect(),
    })
}

/// Handlers need their event subscribed; `completed` needs a terminal handler.
fn check_subscriptions(args: &Args, defined: &[(Kind, Ident)], errors: &mut Vec<syn::Error>) {
    for (kind, ident) in defined {
        let Some(event) = kind.event() else {
            continue;
        };
        if !args.subscribes(event) {
            let subscribed = args
                .events()
                .iter()
                .map(|e| format!("\"{}\"", e.event))
                .collect::<Vec<_>>()
                .join(", ");
            errors.push(syn::Error::new(
                ident.span(),
                format!(
                    "`{}` handles the `{event}` event, which this module does not subscribe to; \
                     add it: `events = [{subscribed}, \"{event}\"]`",
                    kind.fn_name()
                ),
            ));
        }
    }
    let completed = args
        .events()
        .into_iter()
        .find(|e| e.event == Event::Completed);
    if let Some(completed) = completed
        && !defined.iter().any(|(kind, _)| kind.is_terminal())
    {
        errors.push(syn::Error::new(
            completed.span,
            "this module subscribes to `completed` but has no terminal handler: define \
             `on_succeeded`, `on_failed`, `on_canceled` or `on_aborted`, or remove \
             \"completed\" from `events`",
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::suggestion;
    use strsim::levenshtein as edit_distance;

    /// The distances "did you mean" relies on.
    #[test]
    fn edit_distance_counts_edits() {
        assert_eq!(edit_distance("on_success", "on_succeeded"), 4);
        assert_eq!(edit_distance("on_start", "on_start"), 0);
        assert_eq!(edit_distance("on_fail", "on_failed"), 2);
    }

    #[test]
    fn suggestions_cover_synonyms_and_typos() {
        assert_eq!(suggestion("on_success"), Some("on_succeeded"));
        assert_eq!(suggestion("on_sucess"), Some("on_succeeded"));
        assert_eq!(suggestion("on_cancelled"), Some("on_canceled"));
        assert_eq!(suggestion("on_error"), Some("on_failed"));
        assert_eq!(suggestion("on_strat"), Some("on_start"));
        assert_eq!(suggestion("on_log"), Some("on_logs"));
        assert_eq!(suggestion("on_request"), None);
    }
}
