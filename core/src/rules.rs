//! The path and `owner/name` rules, checked by the attribute at compile time and by the runtime,
//! the client, the CLI and the simulator at run time.

use std::fmt;

/// The default path deliveries are posted to.
pub const DEFAULT_PATH: &str = "/webhooks/replicate";

/// The model value that matches any model not claimed by a specific module.
pub const ANY_MODEL: &str = "*";

/// Why a route path is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathError {
    /// It does not start with `/`.
    NotAbsolute,
    /// It holds `{`, `}`, `?`, `#` or whitespace.
    NotPlain,
}

impl fmt::Display for PathError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotAbsolute => write!(f, "`path` must start with `/`, e.g. `\"{DEFAULT_PATH}\"`"),
            Self::NotPlain => f.write_str(
                "`path` must be a plain path: route parameters (`{..}`), query strings, \
                 fragments and spaces are not supported",
            ),
        }
    }
}

/// actix reads `{..}` as a route parameter (and panics on an unbalanced one); `?` and `#` never
/// match a request path.
pub fn path_error(path: &str) -> Option<PathError> {
    if !path.starts_with('/') {
        Some(PathError::NotAbsolute)
    } else if path.contains(|c: char| matches!(c, '{' | '}' | '?' | '#') || c.is_whitespace()) {
        Some(PathError::NotPlain)
    } else {
        None
    }
}

/// A path actix routes as written: see [`path_error`].
pub fn is_plain_path(path: &str) -> bool {
    path_error(path).is_none()
}

/// One part of `owner/name` (or a version or prediction id): safe as a URL path segment and as a
/// file name, so neither `.` nor `..`.
pub fn is_name_part(text: &str) -> bool {
    !text.is_empty()
        && text != "."
        && text != ".."
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// `owner/name` split in two, when both parts are valid.
pub fn split_model(slug: &str) -> Option<(&str, &str)> {
    let (owner, name) = slug.split_once('/')?;
    (is_name_part(owner) && is_name_part(name)).then_some((owner, name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        assert_eq!(path_error(DEFAULT_PATH), None);
        assert_eq!(path_error("webhooks"), Some(PathError::NotAbsolute));
        for bad in ["/a/{id}", "/a?x=1", "/a#b", "/a b"] {
            assert_eq!(path_error(bad), Some(PathError::NotPlain), "{bad}");
        }
    }

    #[test]
    fn models() {
        assert_eq!(
            split_model("black-forest-labs/flux-schnell"),
            Some(("black-forest-labs", "flux-schnell"))
        );
        for bad in [
            "acme", "acme/", "/x", "acme/a/b", "acme/..", "acme/a b", "*",
        ] {
            assert_eq!(split_model(bad), None, "{bad}");
        }
    }
}
