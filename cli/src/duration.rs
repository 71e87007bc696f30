//! Durations as written on the command line and in `Cancel-After`: `250ms`, `2s`, `5m`,
//! `1h30m45s`, or a bare number of seconds.

use std::time::Duration;

/// Parses `250ms`, `1.5s`, `5m`, `1h30m45s` (any `humantime` duration) or a bare number of
/// seconds.
pub fn parse(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    if text.is_empty() {
        return Err("empty duration".into());
    }
    // `Cancel-After: 30` means seconds; humantime wants a unit.
    if let Ok(seconds) = text.parse::<f64>() {
        return Duration::try_from_secs_f64(seconds)
            .map_err(|_| format!("`{text}` is not a valid duration"));
    }
    humantime::parse_duration(text).map_err(|e| format!("`{text}` is not a duration: {e}"))
}

/// Parses a comma-separated list of durations, e.g. `100ms,200ms,400ms`.
pub fn parse_list(text: &str) -> Result<Vec<Duration>, String> {
    if text.trim().is_empty() || text.trim() == "none" {
        return Ok(Vec::new());
    }
    text.split(',').map(parse).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms() {
        assert_eq!(parse("30").unwrap(), Duration::from_secs(30));
        assert_eq!(parse("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse("5m").unwrap(), Duration::from_mins(5));
        assert_eq!(parse("1h30m45s").unwrap(), Duration::from_secs(5445));
        assert_eq!(parse("1.5s").unwrap(), Duration::from_millis(1500));
        assert!(parse("5x").is_err());
        assert!(parse("").is_err());
        assert!(parse("-1").is_err());
        assert_eq!(
            parse_list("100ms,1s").unwrap(),
            [Duration::from_millis(100), Duration::from_secs(1)]
        );
        assert!(parse_list("none").unwrap().is_empty());
    }
}
