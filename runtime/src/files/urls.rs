//! The files an output names.

use url::Url;

/// Every file URL in `output`, in order: strings anywhere in it (a `Url`, a `Vec<Url>`, an
/// `Option<Url>`, a generated output struct, a `serde_json::Value`) that are absolute `http`,
/// `https` or `data:` URLs.
pub fn urls<T: serde::Serialize + ?Sized>(output: &T) -> Vec<Url> {
    let mut found = Vec::new();
    if let Ok(value) = serde_json::to_value(output) {
        walk(&value, &mut found);
    }
    found
}

fn walk(value: &serde_json::Value, found: &mut Vec<Url>) {
    match value {
        serde_json::Value::String(s) => {
            if let Ok(url) = Url::parse(s)
                && (matches!(url.scheme(), "http" | "https") && url.has_host()
                    || url.scheme() == "data")
            {
                found.push(url);
            }
        }
        serde_json::Value::Array(items) => items.iter().for_each(|v| walk(v, found)),
        serde_json::Value::Object(map) => map.values().for_each(|v| walk(v, found)),
        _ => {}
    }
}
