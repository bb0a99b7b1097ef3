//! Lifetimes as kura writes them: `90d`, `720h`, `30m`, `3600s` or `3600` (seconds). Used by
//! certificate templates, access keys with an expiry and the `kura-access-key` rotation.

use crate::{Error, Result};

/// `90d`, `720h`, `30m`, `3600s` or `3600` (seconds), as seconds; `field` names it in errors.
pub fn parse_duration(field: &str, s: &str) -> Result<i64> {
    let s = s.trim();
    let (num, unit) = match s.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => (&s[..i], c.to_ascii_lowercase()),
        _ => (s, 's'),
    };
    let mult = match unit {
        's' => 1,
        'm' => 60,
        'h' => 3_600,
        'd' => 86_400,
        _ => 0,
    };
    match num.parse::<i64>() {
        Ok(n) if n > 0 && mult > 0 && n <= 100 * 365 * 86_400 / mult => Ok(n * mult),
        _ => Err(Error::invalid_parameter(format!(
            "{field} {s:?} is not a duration: a positive number with a unit, e.g. 90d, 720h, 30m or 3600s (at most 100 years)."
        ))),
    }
}

/// Seconds in the largest unit that divides them (`90d`, `36h`, `90s`).
pub fn show_duration(seconds: i64) -> String {
    if seconds % 86_400 == 0 {
        format!("{}d", seconds / 86_400)
    } else if seconds % 3_600 == 0 {
        format!("{}h", seconds / 3_600)
    } else if seconds % 60 == 0 {
        format!("{}m", seconds / 60)
    } else {
        format!("{seconds}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_in_their_units() {
        assert_eq!(parse_duration("Ttl", "90d").unwrap(), 90 * 86_400);
        assert_eq!(parse_duration("Ttl", "36h").unwrap(), 36 * 3_600);
        assert_eq!(parse_duration("Ttl", "3600").unwrap(), 3_600);
        assert!(parse_duration("Ttl", "-1d").is_err());
        assert!(parse_duration("Ttl", "1y").is_err());
        assert!(parse_duration("Ttl", "").is_err());
        assert_eq!(show_duration(90 * 86_400), "90d");
        assert_eq!(show_duration(36 * 3_600), "36h");
    }
}
