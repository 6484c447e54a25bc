//! Durations as people write them in workflow inputs: `90s`, `10m`, `1h30m`, `0`.

use std::time::Duration;

use crate::error::{Field, InputError};

/// Parses `0`, `500ms`, `90s`, `10m`, `2h`, or a sum such as `1h30m`. A bare number is
/// seconds.
pub fn parse_duration(input: &str, field: impl Into<Field>) -> Result<Duration, InputError> {
    let field = field.into();
    let text = input.trim();
    let invalid = || {
        InputError::new(
            field.clone(),
            format!("{input:?} is not a duration; write e.g. `90s`, `10m`, `1h30m` or `0`"),
        )
    };
    if text.is_empty() {
        return Err(invalid());
    }
    if let Ok(seconds) = text.parse::<u64>() {
        return Ok(Duration::from_secs(seconds));
    }
    let mut total = Duration::ZERO;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits == 0 {
            return Err(invalid());
        }
        let number: u64 = rest[..digits].parse().map_err(|_| invalid())?;
        rest = &rest[digits..];
        let unit = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let step = match &rest[..unit] {
            "ms" => Duration::from_millis(number),
            "s" => Duration::from_secs(number),
            "m" => Duration::from_secs(number.saturating_mul(60)),
            "h" => Duration::from_secs(number.saturating_mul(3600)),
            _ => return Err(invalid()),
        };
        total = total.saturating_add(step);
        rest = &rest[unit..];
    }
    Ok(total)
}

/// Writes a duration the way [`parse_duration`] reads it, e.g. `1h30m`, `90s` → `1m30s`.
pub fn format_duration(duration: Duration) -> String {
    let total = duration.as_secs();
    if total == 0 {
        return if duration.is_zero() {
            "0".to_owned()
        } else {
            format!("{}ms", duration.as_millis())
        };
    }
    let (hours, minutes, seconds) = (total / 3600, total % 3600 / 60, total % 60);
    let mut text = String::new();
    // Milliseconds too, so that what is written reads back the same.
    let millis = u64::from(duration.subsec_millis());
    for (value, unit) in [(hours, "h"), (minutes, "m"), (seconds, "s"), (millis, "ms")] {
        if value > 0 {
            text.push_str(&value.to_string());
            text.push_str(unit);
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn common_forms_parse() {
        for (text, seconds) in [
            ("0", 0),
            ("90", 90),
            ("90s", 90),
            ("10m", 600),
            ("2h", 7200),
            ("1h30m", 5400),
            (" 5m ", 300),
        ] {
            assert_eq!(
                parse_duration(text, "f").unwrap(),
                Duration::from_secs(seconds),
                "{text}"
            );
        }
        assert_eq!(
            parse_duration("250ms", "f").unwrap(),
            Duration::from_millis(250)
        );
    }

    #[test]
    fn mistakes_name_the_field_and_the_fix() {
        for bad in ["", "m", "10 minutes", "1.5h", "-5m", "5x"] {
            let error = parse_duration(bad, "capacity_wait")
                .unwrap_err()
                .to_string();
            assert!(
                error.contains("capacity_wait") && error.contains("`10m`"),
                "{bad}: {error}"
            );
        }
    }

    #[test]
    fn formatting_round_trips() {
        for seconds in [0, 1, 59, 60, 90, 3600, 5400, 86_399] {
            let duration = Duration::from_secs(seconds);
            assert_eq!(
                parse_duration(&format_duration(duration), "f").unwrap(),
                duration
            );
        }
    }
}
