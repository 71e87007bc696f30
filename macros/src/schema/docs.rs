//! Doc comments for generated items: descriptions cleaned for rustdoc, plus constraint notes.

use serde_json::{Map, Value};

use super::json::{bound, json_text, str_of};

/// The description as doc lines, each trimmed: Python docstrings arrive indented, and four
/// leading spaces would make a Markdown code block.
pub(super) fn doc_of(obj: &Map<String, Value>) -> Vec<String> {
    let Some(text) = str_of(obj, "description") else {
        return Vec::new();
    };
    if text.trim() == "An enumeration." {
        return Vec::new();
    }
    let mut lines: Vec<String> = text.lines().map(|l| l.trim().to_owned()).collect();
    while lines.last().is_some_and(String::is_empty) {
        lines.pop();
    }
    let start = lines
        .iter()
        .position(|l| !l.is_empty())
        .unwrap_or(lines.len());
    let mut lines = lines.split_off(start);
    plain_code_fences(&mut lines);
    lines
}

/// Marks the schema's Markdown code blocks that rustdoc would compile and run as doctests in the
/// user's crate (```` ``` ````, ```` ```rust ````, ...) as `text`.
fn plain_code_fences(lines: &mut [String]) {
    const RUST: &[&str] = &[
        "rust",
        "ignore",
        "should_panic",
        "no_run",
        "compile_fail",
        "test_harness",
        "standalone_crate",
        "edition2015",
        "edition2018",
        "edition2021",
        "edition2024",
    ];
    let mut open: Option<&str> = None;
    for line in lines {
        let Some(fence) = ["```", "~~~"].into_iter().find(|f| line.starts_with(f)) else {
            continue;
        };
        if open == Some(fence) {
            open = None;
            continue;
        }
        if open.is_some() {
            continue;
        }
        open = Some(fence);
        let mark = fence.chars().next().unwrap_or('`');
        let info = line.trim_start_matches(mark);
        let rust = info
            .split(|c: char| c == ',' || c.is_whitespace())
            .all(|t| t.is_empty() || RUST.contains(&t));
        if rust {
            *line = format!("{}text", &line[..line.len() - info.len()]);
        }
    }
}

/// Constraint and default notes appended to a field's docs.
pub(super) fn notes(prop: &Map<String, Value>, default: Option<&Value>, doc: &mut Vec<String>) {
    let mut lines = Vec::new();
    if let Some(d) = default {
        lines.push(format!("Default: `{}`.", json_text(d)));
    }
    let lo = bound(prop, &["minimum", "ge"]);
    let hi = bound(prop, &["maximum", "le"]);
    match (lo, hi) {
        (Some(lo), Some(hi)) => lines.push(format!("Range: `{lo}..={hi}`.")),
        (Some(lo), None) => lines.push(format!("Minimum: `{lo}`.")),
        (None, Some(hi)) => lines.push(format!("Maximum: `{hi}`.")),
        (None, None) => {}
    }
    for (key, label) in [
        ("minLength", "Minimum length"),
        ("maxLength", "Maximum length"),
    ] {
        if let Some(n) = prop.get(key).and_then(Value::as_u64) {
            lines.push(format!("{label}: {n}."));
        }
    }
    if let Some(p) = str_of(prop, "pattern") {
        lines.push(format!("Pattern: `{p}`."));
    }
    if prop.get("deprecated").and_then(Value::as_bool) == Some(true) {
        lines.push("Deprecated.".to_owned());
    }
    if !lines.is_empty() {
        if !doc.is_empty() {
            doc.push(String::new());
        }
        doc.extend(lines);
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn code_blocks_in_descriptions_are_not_doctests() {
        let doc = |text: &str| {
            let obj = json!({ "description": text });
            doc_of(obj.as_object().expect("object"))
        };
        assert_eq!(
            doc("Example:\n```\nlet x = ;\n```\nthen\n```rust,no_run\nboom\n```"),
            [
                "Example:",
                "```text",
                "let x = ;",
                "```",
                "then",
                "```text",
                "boom",
                "```"
            ]
        );
        assert_eq!(
            doc("```json\n{\"a\": 1}\n```\n~~~~\nx\n~~~~"),
            ["```json", "{\"a\": 1}", "```", "~~~~text", "x", "~~~~"]
        );
        // An unclosed fence still opens a text block.
        assert_eq!(doc("    ```\n    code"), ["```text", "code"]);
    }
}
