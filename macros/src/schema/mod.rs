//! Typed `Input`/`Output` from a model's `OpenAPI` schema file, at compile time.
//!
//! `mod.rs` finds and reads the file and reports errors on the `schema = "…"` literal;
//! [`build`] turns the JSON into the type model of [`ty`] (with [`docs`] for the doc text);
//! [`expand`] writes the items.

mod build;
mod docs;
mod expand;
mod json;
mod names;
mod ty;

use std::path::{Path, PathBuf};

use proc_macro2::TokenStream;
use quote::ToTokens;
use syn::LitStr;
use syn::parse::Parser;

/// Items for the schema file named by `lit` (relative to the user crate's
/// `CARGO_MANIFEST_DIR`): `Input`, `Output`, the types they use, and a hidden
/// `include_str!` so the crate rebuilds when the file changes.
pub(crate) fn expand_schema_file(lit: &LitStr, krate: &syn::Path) -> syn::Result<TokenStream> {
    let error = |message: String| syn::Error::new(lit.span(), message);
    let rel = lit.value();
    let path = resolve(&rel).map_err(error)?;
    let text = std::fs::read_to_string(&path).map_err(|e| {
        error(format!(
            "cannot read schema file `{rel}` (paths are relative to the directory of the \
                 crate's Cargo.toml): {e}"
        ))
    })?;
    let doc: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| error(format!("schema file `{rel}` is not valid JSON: {e}")))?;
    let model = build::build(&doc).map_err(|e| {
        if e.path.is_empty() {
            error(format!("schema file `{rel}`: {}", e.message))
        } else {
            error(format!("schema file `{rel}`: {}: {}", e.path, e.message))
        }
    })?;
    let include = path
        .to_str()
        .ok_or_else(|| error(format!("schema path `{}` is not UTF-8", path.display())))?;
    Ok(expand::expand(&model, include, krate))
}

fn resolve(rel: &str) -> Result<PathBuf, String> {
    let rel = Path::new(rel);
    let joined = if rel.is_absolute() {
        rel.to_path_buf()
    } else {
        let dir = std::env::var_os("CARGO_MANIFEST_DIR")
            .ok_or("CARGO_MANIFEST_DIR is not set; build with cargo")?;
        Path::new(&dir).join(rel)
    };
    Ok(std::fs::canonicalize(&joined).unwrap_or(joined))
}

/// `#[replicate_model(schema = "…")] mod name { … }`: the schema's types appended to the module.
/// On error the module is kept as written, next to the error, so that uses of it do not add
/// confusing secondary errors.
pub(crate) fn replicate_model(args: TokenStream, item: TokenStream) -> TokenStream {
    match model_attribute(args, item.clone()) {
        Ok(tokens) => tokens,
        Err(error) => {
            let mut tokens = item;
            tokens.extend(error.into_compile_error());
            tokens
        }
    }
}

fn model_attribute(args: TokenStream, item: TokenStream) -> syn::Result<TokenStream> {
    let mut schema: Option<LitStr> = None;
    let mut krate: Option<syn::Path> = None;
    let parser = syn::meta::parser(|meta| {
        if meta.path.is_ident("schema") {
            if schema.is_some() {
                return Err(meta.error("duplicate `schema` argument"));
            }
            schema = Some(meta.value()?.parse()?);
            Ok(())
        } else if meta.path.is_ident("crate") {
            if krate.is_some() {
                return Err(meta.error("duplicate `crate` argument"));
            }
            krate = Some(crate::args::crate_path(&meta.value()?.parse()?)?);
            Ok(())
        } else {
            Err(meta.error("unknown argument; expected `schema = \"path/to/schema.json\"`"))
        }
    });
    parser.parse2(args)?;
    let mut module: syn::ItemMod = syn::parse2(item).map_err(|e| {
        syn::Error::new(
            e.span(),
            "#[replicate_model] goes on an inline module: `mod name { … }`",
        )
    })?;
    let Some(schema) = schema else {
        return Err(syn::Error::new(
            module.ident.span(),
            "missing `schema = \"path/to/schema.json\"` (relative to Cargo.toml)",
        ));
    };
    let Some((_, items)) = &mut module.content else {
        return Err(syn::Error::new(
            module.ident.span(),
            "#[replicate_model] needs an inline module: `mod name {}`, not `mod name;`",
        ));
    };
    let krate = krate.unwrap_or_else(crate::args::default_crate);
    let generated: syn::File = syn::parse2(expand_schema_file(&schema, &krate)?)?;
    items.extend(generated.items);
    Ok(module.into_token_stream())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn corpus(file: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../fixtures/schemas")
            .join(file)
    }

    /// Every schema in the corpus builds a model (the tests crate compiles the code).
    #[test]
    fn whole_corpus_builds() {
        let dir = corpus("");
        let mut count = 0;
        for entry in std::fs::read_dir(&dir).expect("corpus directory") {
            let path = entry.expect("entry").path();
            if path.extension().is_some_and(|e| e == "json") {
                let doc = serde_json::from_str(&std::fs::read_to_string(&path).expect("read"))
                    .expect("valid JSON");
                if let Err(e) = build::build(&doc) {
                    panic!("{}: {}: {}", path.display(), e.path, e.message);
                }
                count += 1;
            }
        }
        assert!(
            count >= 50,
            "only {count} schema files found in {}",
            dir.display()
        );
    }

    /// `macros/tests/snapshots/flux-schnell.rs` is the expansion for flux-schnell, pretty-printed.
    /// `UPDATE_EXPECT=1 cargo test -p replicate-webhook-macros` rewrites it.
    #[test]
    fn flux_schnell_snapshot() {
        let rel = "../fixtures/schemas/black-forest-labs__flux-schnell.json";
        let text = std::fs::read_to_string(corpus("black-forest-labs__flux-schnell.json"))
            .expect("flux-schnell schema");
        let doc = serde_json::from_str(&text).expect("valid JSON");
        let model = build::build(&doc).expect("builds");
        let tokens = expand::expand(&model, rel, &crate::args::default_crate());
        let file: syn::File = syn::parse2(tokens).expect("generated code parses");
        let pretty = format!(
            "// Generated by `#[replicate_model(schema = \"{rel}\")]`.\n\
             // Snapshot checked by macros/src/schema/mod.rs `flux_schnell_snapshot`;\n\
             // regenerate with `UPDATE_EXPECT=1 cargo test -p replicate-webhook-macros`.\n\n{}",
            prettyplease::unparse(&file)
        );
        expect_test::expect_file!["../../tests/snapshots/flux-schnell.rs"].assert_eq(&pretty);
    }

    /// With `crate = "..."`, the schema types name only the given crate.
    #[test]
    fn crate_argument_reaches_every_path() {
        let text = std::fs::read_to_string(corpus("black-forest-labs__flux-schnell.json"))
            .expect("flux-schnell schema");
        let model =
            build::build(&serde_json::from_str(&text).expect("valid JSON")).expect("builds");
        let expanded = expand::expand(&model, "x.json", &syn::parse_quote!(webhooks)).to_string();
        assert!(
            expanded.contains("webhooks :: __private :: Url"),
            "{expanded}"
        );
        assert!(
            expanded.contains("\"webhooks::__private::serde\""),
            "{expanded}"
        );
        assert!(!expanded.contains("replicate_webhook"), "{expanded}");
    }

    /// Prints the expansion of one corpus file:
    /// `SCHEMA=openai__whisper cargo test -p replicate-webhook-macros -- --ignored --nocapture print_expansion`
    #[test]
    #[ignore = "a tool, not a check"]
    fn print_expansion() {
        let name =
            std::env::var("SCHEMA").unwrap_or_else(|_| "black-forest-labs__flux-schnell".into());
        let text = std::fs::read_to_string(corpus(&format!("{name}.json"))).expect("schema file");
        let model = build::build(&serde_json::from_str(&text).expect("JSON")).expect("builds");
        let file: syn::File =
            syn::parse2(expand::expand(&model, &name, &crate::args::default_crate()))
                .expect("parses");
        println!("{}", prettyplease::unparse(&file));
    }

    #[test]
    fn file_errors_name_file_and_path() {
        let dir = std::env::temp_dir().join(format!("replicate-model-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let cases = [
            (
                "broken.json",
                "{\"components\": ",
                "is not valid JSON: EOF while parsing",
            ),
            (
                "nothing.json",
                "{\"openapi\": \"3.0.2\"}",
                "no `components.schemas` object found",
            ),
            (
                "tuple.json",
                r#"{"components":{"schemas":{"Input":{"properties":{"foo":{"type":"tuple"}}}}}}"#,
                "components.schemas.Input.properties.foo.type: unsupported type \"tuple\"",
            ),
        ];
        for (file, text, expected) in cases {
            let path = dir.join(file);
            std::fs::write(&path, text).expect("write");
            let lit = LitStr::new(
                path.to_str().expect("UTF-8"),
                proc_macro2::Span::call_site(),
            );
            let error = expand_schema_file(&lit, &crate::args::default_crate())
                .expect_err(file)
                .to_string();
            assert!(error.contains(expected), "{file}: {error}");
        }
        std::fs::remove_dir_all(&dir).ok();
    }

    /// Malformed or odd schemas give an error with a JSON path, or code that parses: never a
    /// panic (which users would see as "custom attribute panicked").
    #[test]
    fn odd_schemas_never_panic() {
        let cases = [
            r#"{"Input": {"properties": []}}"#,
            r#"{"Input": {"properties": {"a": false}}}"#,
            r#"{"Input": {"properties": {"a": 5}}}"#,
            r#"{"Input": {"properties": {"a": {"enum": {}}}}}"#,
            r#"{"Input": {"properties": {"a": {"enum": [[1], {"x": 1}]}}}}"#,
            r#"{"Input": {"properties": {"a": {"$ref": 5}}}}"#,
            r##"{"Input": {"properties": {"a": {"$ref": "#/nope"}}}}"##,
            r#"{"Input": {"properties": {"a": {"$ref": "other.json#/x"}}}}"#,
            r##"{"Input": {"properties": {"a": {"$ref": "#"}}}}"##,
            r##"{"Input": {"properties": {"a": {"$ref": "#/components/schemas/"}}}}"##,
            r#"{"Input": {"properties": {"a": {"type": "array", "items": 5}}}}"#,
            r#"{"Input": {"properties": {"a": {"type": "array", "items": [{"type": "string"}]}}}}"#,
            r#"{"Input": {"properties": {"a": {"allOf": {}}}}}"#,
            r#"{"Input": {"properties": {"a": {"allOf": []}}}}"#,
            r#"{"Input": {"properties": {"a": {"anyOf": []}}}}"#,
            r#"{"Input": {"properties": {"a": {"oneOf": [5, true]}}}}"#,
            r#"{"Input": {"properties": {"a": {"type": 5}}}}"#,
            r#"{"Input": {"properties": {"a": {"type": []}}}}"#,
            r#"{"Input": {"properties": {"a": {"type": ["null"]}}}}"#,
            r#"{"Input": {"properties": {"a": {"type": "integer", "minimum": "x", "default": "y"}}}}"#,
            r#"{"Input": {"properties": {"a": {"type": "integer", "minimum": 5, "maximum": 1}}}}"#,
            r#"{"Input": {"properties": {"a": {"type": "integer", "default": 1e300}}}}"#,
            r#"{"Input": {"properties": {"a": {"type": "integer", "default": -1e300, "minimum": -1e300}}}}"#,
            r#"{"Input": {"properties": {"a": {"type": "number", "default": "-inf"}}}}"#,
            r#"{"Input": {"properties": {"a": {"type": "string", "default": 5}}}}"#,
            r#"{"Input": {"properties": {"a": {"type": "string", "x-cog-secret": true, "default": "s"}}}}"#,
            r#"{"Input": {"properties": {"a": {"type": "object", "additionalProperties": 5}}}}"#,
            r#"{"Input": {"properties": {"a": {"type": "object", "additionalProperties": true}}}}"#,
            r#"{"Input": {"properties": {"": {"type": "string"}, "_": {"type": "string"}, "__": {"type": "string"}}}}"#,
            r#"{"Input": {"properties": {"crate": {}, "super": {}, "Self": {}, "gen": {}, "r#type": {}}}}"#,
            r#"{"Input": {"properties": {"a": {"x-order": "first"}}, "required": "a"}}"#,
            r#"{"Input": {"type": ["object", "null"], "properties": {"a": {}}}}"#,
            r#"{"Input": {"type": "array"}}"#,
            r#"{"Input": 5}"#,
            r##"{"Input": {"$ref": "#/components/schemas/E"}, "E": {"enum": ["a"]}}"##,
            r##"{"Input": {"$ref": "#/components/schemas/Input"}}"##,
            r#"{"Output": false}"#,
            r#"{"Output": null}"#,
            r#"{"Output": {"type": "string", "x-cog-array-display": "concatenate"}}"#,
            r#"{"Output": {"type": "array", "x-cog-array-type": "iterator", "x-cog-array-display": "concatenate"}}"#,
            r#"{"Output": {"type": "array", "items": {"type": "integer"}, "x-cog-array-display": "concatenate"}}"#,
            r#"{"Output": {"enum": []}}"#,
            r#"{"Output": {"enum": [null]}}"#,
            r#"{"Output": {"title": "Input", "type": "object", "properties": {"a": {}}}}"#,
            r##"{"Output": {"type": "array", "items": {"$ref": "#/components/schemas/Output"}}}"##,
            r##"{"TrainingOutput": {"$ref": "#/components/schemas/Output"}, "Output": {"type": "string"}}"##,
        ];
        for case in cases {
            let schemas: serde_json::Value = serde_json::from_str(case).expect(case);
            let doc = serde_json::json!({ "components": { "schemas": schemas } });
            match build::build(&doc) {
                Ok(model) => {
                    let tokens = expand::expand(&model, "x.json", &crate::args::default_crate());
                    if let Err(e) = syn::parse2::<syn::File>(tokens) {
                        panic!("{case}: generated code does not parse: {e}");
                    }
                }
                Err(e) => assert!(
                    e.path.starts_with("components.schemas.") && !e.message.is_empty(),
                    "{case}: {e:?}"
                ),
            }
        }
    }

    #[test]
    fn attribute_errors() {
        let ok = model_attribute(
            quote::quote!(schema = "x.json"),
            quote::quote!(
                mod m;
            ),
        );
        assert!(ok.unwrap_err().to_string().contains("inline module"));
        let bad = model_attribute(
            quote::quote!(scheme = "x.json"),
            quote::quote!(
                mod m {}
            ),
        );
        assert!(bad.unwrap_err().to_string().contains("unknown argument"));
        let missing = model_attribute(
            quote::quote!(schema = "does/not/exist.json"),
            quote::quote!(
                mod m {}
            ),
        );
        assert!(
            missing
                .unwrap_err()
                .to_string()
                .contains("cannot read schema file")
        );
    }
}
