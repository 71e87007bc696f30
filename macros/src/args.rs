//! The attribute's arguments: `model`, `training`, `cog`, `events`, `path`, `schema`, `inbox`,
//! `concurrency`, and
//! `crate` for a renamed dependency.

use proc_macro2::{Span, TokenStream};
use replicate_webhook_core::{ANY_MODEL, DEFAULT_PATH, Event};
use syn::meta::ParseNestedMeta;
use syn::parse::{ParseStream, Parser as _};
use syn::spanned::Spanned as _;
use syn::{LitStr, Token};

const ARGUMENTS: &str =
    "`model`, `training`, `cog`, `events`, `path`, `schema`, `inbox` or `concurrency`";

/// An event named in `events`, with the span of its string literal.
#[derive(Debug, Clone)]
pub(crate) struct EventArg {
    pub(crate) event: Event,
    pub(crate) span: Span,
}

/// What the arguments gave. Each part is kept when its own arguments were valid, so a mistake
/// elsewhere does not also take away `WEBHOOK` or the schema types (and cause errors in code
/// that uses them).
#[derive(Debug)]
pub(crate) struct Parsed {
    /// `model`, `events` and `path`, when each was valid: enough for `WEBHOOK`.
    pub(crate) args: Option<Args>,
    pub(crate) schema: Option<LitStr>,
    /// `inbox = true`: handlers run in workers from a durable queue.
    pub(crate) inbox: bool,
    /// `concurrency = N`: how many of the module's jobs a worker runs at once (0: the default).
    pub(crate) concurrency: u32,
    /// Where the runtime is: `::replicate_webhook` unless `crate = "..."` says otherwise.
    pub(crate) krate: syn::Path,
    /// Every mistake in the arguments.
    pub(crate) errors: Vec<syn::Error>,
}

/// The subscription arguments. Values keep their spans for later errors.
#[derive(Debug)]
pub(crate) struct Args {
    /// The model of `model = `, or the trainer of `training = `.
    pub(crate) model: LitStr,
    /// `training = ` was given: the handlers receive trainings.
    pub(crate) training: bool,
    /// `cog` was given: the handlers receive the webhooks of self-hosted Cog containers.
    pub(crate) cog: bool,
    /// Empty when not given; see [`Args::events`].
    events: Vec<EventArg>,
    /// Where `events` was written, or the attribute when defaulted.
    pub(crate) events_span: Span,
    pub(crate) path: LitStr,
}

impl Args {
    /// The subscribed events; `completed` when `events` was not given.
    pub(crate) fn events(&self) -> Vec<EventArg> {
        if self.events.is_empty() {
            vec![EventArg {
                event: Event::Completed,
                span: self.events_span,
            }]
        } else {
            self.events.clone()
        }
    }

    pub(crate) fn subscribes(&self, event: Event) -> bool {
        self.events().iter().any(|e| e.event == event)
    }
}

#[derive(Default)]
struct Raw {
    model: Option<LitStr>,
    /// Where `training = ` was written; its value is in `model`.
    training: Option<Span>,
    /// Where `cog` was written; the module then has no model.
    cog: Option<Span>,
    events: Option<(Span, Vec<EventArg>)>,
    path: Option<LitStr>,
    schema: Option<LitStr>,
    inbox: Option<bool>,
    concurrency: Option<u32>,
    krate: Option<syn::Path>,
    errors: Vec<syn::Error>,
    /// The arguments did not parse; a missing `model` may be a consequence.
    malformed: bool,
    /// `model`, `events` or `path` had a mistake.
    bad_subscription: bool,
}

/// Parses the arguments, collecting every mistake rather than stopping at the first.
pub(crate) fn parse(tokens: TokenStream) -> Parsed {
    let mut raw = Raw::default();
    let parser = syn::meta::parser(|meta| raw.argument(&meta));
    if let Err(e) = parser.parse2(tokens) {
        raw.errors.push(e);
        raw.malformed = true;
    }
    raw.finish()
}

impl Raw {
    fn argument(&mut self, meta: &ParseNestedMeta<'_>) -> syn::Result<()> {
        let key = meta.path.get_ident().map(ToString::to_string);
        let before = self.errors.len();
        let result = self.value(key.as_deref(), meta);
        if matches!(
            key.as_deref(),
            Some("model" | "training" | "cog" | "events" | "path")
        ) && (result.is_err() || self.errors.len() > before)
        {
            self.bad_subscription = true;
        }
        result
    }

    fn value(&mut self, key: Option<&str>, meta: &ParseNestedMeta<'_>) -> syn::Result<()> {
        match key {
            Some("model") => {
                let lit: LitStr = meta.value()?.parse()?;
                self.check_model(&lit);
                if self.training.is_some() {
                    self.errors.push(syn::Error::new_spanned(
                        &meta.path,
                        "`model` and `training` cannot be combined: one module handles either \
                         predictions or trainings; write a second module for the other",
                    ));
                    return Ok(());
                }
                set_once(&mut self.model, lit, meta, &mut self.errors);
            }
            Some("training") => {
                let lit: LitStr = meta.value()?.parse()?;
                self.check_model(&lit);
                if self.model.is_some() {
                    self.errors.push(syn::Error::new_spanned(
                        &meta.path,
                        "`training` and `model` cannot be combined: one module handles either \
                         trainings or predictions; write a second module for the other",
                    ));
                } else {
                    self.training = Some(lit.span());
                    self.model = Some(lit);
                }
            }
            Some("cog") => {
                let on = if meta.input.peek(Token![=]) {
                    meta.value()?.parse::<syn::LitBool>()?.value
                } else {
                    true
                };
                if on {
                    set_once(&mut self.cog, meta.path.span(), meta, &mut self.errors);
                }
            }
            Some("events") => {
                let span = meta.path.require_ident()?.span();
                let events = self.parse_events(meta.value()?)?;
                set_once(&mut self.events, (span, events), meta, &mut self.errors);
            }
            Some("path") => {
                let lit: LitStr = meta.value()?.parse()?;
                if let Some(e) = replicate_webhook_core::path_error(&lit.value()) {
                    self.errors.push(syn::Error::new(lit.span(), e));
                }
                set_once(&mut self.path, lit, meta, &mut self.errors);
            }
            Some("schema") => {
                let lit: LitStr = meta.value()?.parse()?;
                set_once(&mut self.schema, lit, meta, &mut self.errors);
            }
            Some("inbox") => {
                let lit: syn::LitBool = meta.value()?.parse()?;
                set_once(&mut self.inbox, lit.value, meta, &mut self.errors);
            }
            Some("concurrency") => {
                let lit: syn::LitInt = meta.value()?.parse()?;
                match lit.base10_parse::<u32>() {
                    Ok(n) if n > 0 => set_once(&mut self.concurrency, n, meta, &mut self.errors),
                    _ => self.errors.push(syn::Error::new(
                        lit.span(),
                        "`concurrency` must be a whole number of jobs, at least 1",
                    )),
                }
            }
            Some("crate") => match crate_path(&meta.value()?.parse()?) {
                Ok(krate) => set_once(&mut self.krate, krate, meta, &mut self.errors),
                Err(e) => self.errors.push(e),
            },
            _ => {
                self.errors.push(meta.error(format_args!(
                    "unknown argument `{}`; expected {ARGUMENTS}",
                    path_text(&meta.path)
                )));
                // Skip the value so the arguments after it are still checked.
                if meta.input.peek(Token![=]) {
                    meta.value()?.parse::<syn::Expr>()?;
                } else if !meta.input.is_empty() && !meta.input.peek(Token![,]) {
                    meta.input.parse::<proc_macro2::TokenTree>()?;
                }
            }
        }
        Ok(())
    }

    fn check_model(&mut self, lit: &LitStr) {
        let model = lit.value();
        if model != ANY_MODEL && replicate_webhook_core::split_model(&model).is_none() {
            self.errors.push(syn::Error::new(
                lit.span(),
                format!(
                    "`model` must be `\"owner/name\"` (e.g. `\"black-forest-labs/flux-schnell\"`) \
                     or `\"*\"` for any model, not `{model:?}`"
                ),
            ));
        }
    }

    /// `"completed"` or `["start", "completed"]`.
    fn parse_events(&mut self, input: ParseStream<'_>) -> syn::Result<Vec<EventArg>> {
        let lits: Vec<LitStr> = if input.peek(syn::token::Bracket) {
            let content;
            let bracket = syn::bracketed!(content in input);
            let lits = content.parse_terminated(<LitStr as syn::parse::Parse>::parse, Token![,])?;
            if lits.is_empty() {
                self.errors.push(syn::Error::new(
                    bracket.span.join(),
                    format!("`events` must name at least one of {}", event_list()),
                ));
            }
            lits.into_iter().collect()
        } else if input.peek(LitStr) {
            vec![input.parse()?]
        } else {
            return Err(input.error(
                "expected an event string such as `\"completed\"` or an array such as \
                 `[\"start\", \"completed\"]`",
            ));
        };
        let mut events: Vec<EventArg> = Vec::new();
        for lit in lits {
            let text = lit.value();
            let Some(event) = Event::parse(&text) else {
                self.errors.push(syn::Error::new(
                    lit.span(),
                    format!("unknown event `{text}`; expected one of {}", event_list()),
                ));
                continue;
            };
            if events.iter().any(|e| e.event == event) {
                self.errors.push(syn::Error::new(
                    lit.span(),
                    format!("event `{event}` is listed twice"),
                ));
                continue;
            }
            events.push(EventArg {
                event,
                span: lit.span(),
            });
        }
        Ok(events)
    }

    fn finish(mut self) -> Parsed {
        if let Some(cog) = self.cog {
            if let Some(model) = &self.model {
                let key = if self.training.is_some() {
                    "training"
                } else {
                    "model"
                };
                self.errors.push(syn::Error::new(
                    model.span(),
                    format!(
                        "`cog` and `{key}` cannot be combined: a Cog container's webhooks name no \
                         model, so a Cog module takes every Cog delivery to its `path`"
                    ),
                ));
                self.bad_subscription = true;
            } else {
                self.model = Some(LitStr::new(ANY_MODEL, cog));
            }
        }
        if self.model.is_none() && !self.malformed {
            self.errors.push(syn::Error::new(
                Span::call_site(),
                "missing `model`; write `#[replicate_webhook(model = \"owner/name\")]`, \
                 `model = \"*\"` for any model, or `cog` for self-hosted Cog containers",
            ));
        }
        let args = match self.model {
            // Arguments after a parse error were never read: they may hold another `events`.
            Some(model) if !self.malformed && !self.bad_subscription => {
                let (events_span, events) = self
                    .events
                    .unwrap_or_else(|| (Span::call_site(), Vec::new()));
                Some(Args {
                    model,
                    training: self.training.is_some(),
                    cog: self.cog.is_some(),
                    events,
                    events_span,
                    path: self
                        .path
                        .unwrap_or_else(|| LitStr::new(DEFAULT_PATH, Span::call_site())),
                })
            }
            _ => None,
        };
        Parsed {
            args,
            schema: self.schema,
            inbox: self.inbox.unwrap_or(false),
            concurrency: self.concurrency.unwrap_or(0),
            krate: self.krate.unwrap_or_else(default_crate),
            errors: self.errors,
        }
    }
}

/// `::replicate_webhook`: the path generated code starts from.
pub(crate) fn default_crate() -> syn::Path {
    syn::parse_quote!(::replicate_webhook)
}

/// The value of `crate = "..."`, the name a user gave the `replicate-webhook` dependency.
pub(crate) fn crate_path(lit: &LitStr) -> syn::Result<syn::Path> {
    lit.parse_with(syn::Path::parse_mod_style).map_err(|_| {
        syn::Error::new(
            lit.span(),
            "`crate` must be a path to the `replicate-webhook` crate, e.g. `\"::replicate_webhook\"`",
        )
    })
}

/// Stores an argument's value, or reports the repetition at its key.
fn set_once<T>(
    slot: &mut Option<T>,
    value: T,
    meta: &ParseNestedMeta<'_>,
    errors: &mut Vec<syn::Error>,
) {
    if slot.is_some() {
        errors.push(syn::Error::new_spanned(
            &meta.path,
            format!("duplicate argument `{}`", path_text(&meta.path)),
        ));
    } else {
        *slot = Some(value);
    }
}

/// `` `start`, `output`, `logs`, `completed` ``.
fn event_list() -> String {
    Event::ALL
        .iter()
        .map(|e| format!("`{e}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn path_text(path: &syn::Path) -> String {
    path.segments
        .iter()
        .map(|s| s.ident.to_string())
        .collect::<Vec<_>>()
        .join("::")
}
