//! `data:` URIs, decoded in place of a download.

use base64::Engine as _;
use url::Url;

use super::FileError;

/// `data:[<media type>][;base64],<data>` (RFC 2397).
pub(super) fn decode_data(url: &Url) -> Result<(Option<String>, Vec<u8>), FileError> {
    let rest = &url.as_str()["data:".len()..];
    let (meta, data) = rest
        .split_once(',')
        .ok_or_else(|| FileError::InvalidData("no comma".to_owned()))?;
    let (media, base64) = meta
        .strip_suffix(";base64")
        .map_or((meta, false), |m| (m, true));
    let raw = percent_decode(data)?;
    let bytes = if base64 {
        let text: Vec<u8> = raw
            .into_iter()
            .filter(|b| !b.is_ascii_whitespace())
            .collect();
        base64::engine::general_purpose::STANDARD
            .decode(&text)
            .map_err(|e| FileError::InvalidData(e.to_string()))?
    } else {
        raw
    };
    let content_type = match String::from_utf8_lossy(&percent_decode(media)?) {
        media if media.is_empty() => "text/plain;charset=US-ASCII".to_owned(),
        media => media.into_owned(),
    };
    Ok((Some(content_type), bytes))
}

fn percent_decode(text: &str) -> Result<Vec<u8>, FileError> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| FileError::InvalidData("bad percent escape".to_owned()))?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    Ok(out)
}
