//! Rust identifiers from JSON names: fields, type names, enum variants.

use std::collections::HashSet;

/// Words that are keywords in some edition; `r#` works for all but these.
const NON_RAW: &[&str] = &["self", "Self", "super", "crate", "_"];

const KEYWORDS: &[&str] = &[
    "as", "break", "const", "continue", "crate", "else", "enum", "extern", "false", "fn", "for",
    "if", "impl", "in", "let", "loop", "match", "mod", "move", "mut", "pub", "ref", "return",
    "self", "Self", "static", "struct", "super", "trait", "true", "type", "unsafe", "use", "where",
    "while", "async", "await", "dyn", "abstract", "become", "box", "do", "final", "macro",
    "override", "priv", "typeof", "unsized", "virtual", "yield", "try", "gen",
];

/// Splits a JSON name into lowercase-able words: on non-alphanumerics, lower→upper changes and
/// acronym ends (`fileSize` → `file`, `Size`; `ViTB32` → `Vi`, `TB32`; `RN50x4` stays).
///
/// Not `heck`, not even for the case of each word: heck splits after the last *cased*
/// character, so it would split `clip2Vec`, which stays one word here (a digit precedes `V`),
/// and every heck conversion splits first: `clip2vec` / `Clip2vec` would become `clip2_vec` /
/// `Clip2Vec` in users' code.
fn words(name: &str) -> Vec<String> {
    let mut out = Vec::new();
    for chunk in name.split(|c: char| !c.is_alphanumeric()) {
        let chars: Vec<char> = chunk.chars().collect();
        let mut current = String::new();
        for (i, &c) in chars.iter().enumerate() {
            let prev = i.checked_sub(1).map(|p| chars[p]);
            let next = chars.get(i + 1).copied();
            let boundary = c.is_uppercase()
                && prev.is_some_and(|p| {
                    p.is_lowercase() || (p.is_uppercase() && next.is_some_and(char::is_lowercase))
                });
            if boundary && !current.is_empty() {
                out.push(std::mem::take(&mut current));
            }
            current.push(c);
        }
        if !current.is_empty() {
            out.push(current);
        }
    }
    out
}

/// `aspect_ratio` → `AspectRatio`; digits between words keep an underscore (`16:9` → `16_9`).
pub(crate) fn upper_camel(name: &str) -> String {
    let mut out = String::new();
    for word in words(name) {
        let ends_digit = out.chars().last().is_some_and(|c: char| c.is_ascii_digit());
        let starts_digit = word.chars().next().is_some_and(|c| c.is_ascii_digit());
        if ends_digit && starts_digit {
            out.push('_');
        }
        let mut chars = word.chars();
        if let Some(first) = chars.next() {
            out.extend(first.to_uppercase());
            out.extend(chars.flat_map(char::to_lowercase));
        }
    }
    let out: String = out
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect();
    if out.is_empty() {
        "Value".to_owned()
    } else if out == "Self" {
        "SelfValue".to_owned()
    } else if out.starts_with(|c: char| c.is_ascii_digit()) {
        format!("V{out}")
    } else {
        out
    }
}

/// `fileSize` → `file_size`; keywords become raw identifiers (`type` → `r#type`).
pub(crate) fn snake(name: &str) -> String {
    let joined = words(name)
        .iter()
        .map(|w| w.to_lowercase())
        .collect::<Vec<_>>()
        .join("_");
    let joined: String = joined
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect();
    if joined.is_empty() {
        "field".to_owned()
    } else if joined.starts_with(|c: char| c.is_ascii_digit()) {
        format!("field_{joined}")
    } else if NON_RAW.contains(&joined.as_str()) {
        format!("{joined}_")
    } else if KEYWORDS.contains(&joined.as_str()) {
        format!("r#{joined}")
    } else {
        joined
    }
}

/// The identifier without a `r#` prefix, e.g. for naming `default_type`.
pub(crate) fn unraw(ident: &str) -> &str {
    ident.strip_prefix("r#").unwrap_or(ident)
}

/// Hands out unique names, appending 2, 3, … on collision.
#[derive(Debug, Default)]
pub(crate) struct Names {
    used: HashSet<String>,
}

impl Names {
    pub(crate) fn reserve(&mut self, name: &str) {
        self.used.insert(name.to_owned());
    }

    pub(crate) fn release(&mut self, name: &str) {
        self.used.remove(name);
    }

    pub(crate) fn alloc(&mut self, base: &str) -> String {
        let sep = if base.ends_with(|c: char| c.is_ascii_digit()) {
            "_"
        } else {
            ""
        };
        let mut candidate = base.to_owned();
        let mut n = 2;
        while !self.used.insert(candidate.clone()) {
            candidate = format!("{base}{sep}{n}");
            n += 1;
        }
        candidate
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn camel_case_names() {
        assert_eq!(upper_camel("aspect_ratio"), "AspectRatio");
        assert_eq!(upper_camel("Go Fast"), "GoFast");
        assert_eq!(upper_camel("16:9"), "V16_9");
        assert_eq!(upper_camel("0.25"), "V0_25");
        assert_eq!(upper_camel("match_input_image"), "MatchInputImage");
        assert_eq!(upper_camel("DPM++ 2M Karras"), "Dpm2mKarras");
        assert_eq!(upper_camel("***"), "Value");
        assert_eq!(upper_camel("self"), "SelfValue");
    }

    #[test]
    fn snake_case_fields() {
        assert_eq!(snake("fileSize"), "file_size");
        assert_eq!(snake("forwardUponWideH"), "forward_upon_wide_h");
        assert_eq!(snake("RN50x4"), "rn50x4");
        assert_eq!(snake("ViTB32"), "vi_tb32");
        assert_eq!(snake("type"), "r#type");
        assert_eq!(snake("self"), "self_");
        assert_eq!(snake("max-tokens"), "max_tokens");
        assert_eq!(snake("top p"), "top_p");
        assert_eq!(snake("1st"), "field_1st");
        assert_eq!(snake("format"), "format");
    }

    #[test]
    fn a_digit_before_a_capital_is_no_word_boundary() {
        assert_eq!(snake("clip2Vec"), "clip2vec");
        assert_eq!(upper_camel("clip2Vec"), "Clip2vec");
    }

    #[test]
    fn names_avoid_collisions() {
        let mut names = Names::default();
        names.reserve("Input");
        assert_eq!(names.alloc("Input"), "Input2");
        assert_eq!(names.alloc("Input"), "Input3");
        assert_eq!(names.alloc("V16"), "V16");
        assert_eq!(names.alloc("V16"), "V16_2");
    }
}
