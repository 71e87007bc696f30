//! Durations as written on the command line and in `Cancel-After`: `250ms`, `2s`, `5m`,
//! `1h30m45s`, or a bare number of seconds.

use std::time::Duration;

/// Parses `250ms`, `1.5s`, `5m`, `1h30m45s` or a bare number of seconds.
pub fn parse(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    if text.is_empty() {
        return Err("empty duration".into());
    }
    if let Ok(seconds) = text.parse::<f64>() {
        return from_secs(seconds, text);
    }
    let mut total = Duration::ZERO;
    let mut rest = text;
    while !rest.is_empty() {
        let split = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(|| format!("`{text}`: a number needs a unit (ms, s, m, h)"))?;
        let (number, tail) = rest.split_at(split);
        let unit_len = tail
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(tail.len());
        let (unit, tail) = tail.split_at(unit_len);
        let value: f64 = number
            .parse()
            .map_err(|_| format!("`{text}` is not a duration"))?;
        let factor = match unit {
            "ms" => 0.001,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => {
                return Err(format!(
                    "`{text}`: unknown unit `{unit}` (use ms, s, m or h)"
                ));
            }
        };
        total += from_secs(value * factor, text)?;
        rest = tail;
    }
    Ok(total)
}

fn from_secs(seconds: f64, text: &str) -> Result<Duration, String> {
    Duration::try_from_secs_f64(seconds).map_err(|_| format!("`{text}` is not a valid duration"))
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
        assert_eq!(parse("5m").unwrap(), Duration::from_secs(300));
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
