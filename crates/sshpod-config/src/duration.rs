//! Durations as ContainerSSH writes them.
//!
//! Go's `time.Duration` is a string such as `60s`, `1m0s` or `500ms` in YAML, and an integer count
//! of nanoseconds in JSON. sshpod accepts both forms in both formats and prints humantime strings.

use std::fmt;
use std::time::Duration;

use serde::de::{self, Deserializer, Visitor};
use serde::Serializer;

/// Parses a duration string: Go style (`1m30s`, `500ms`, `1.5h`, `0`) or humantime (`2min 5s`).
pub(crate) fn parse(text: &str) -> Result<Duration, String> {
    let trimmed = text.trim();
    if trimmed.starts_with('-') {
        return Err(format!("invalid duration `{text}`: must not be negative"));
    }
    if trimmed == "0" {
        return Ok(Duration::ZERO);
    }
    humantime::parse_duration(trimmed).map_err(|error| {
        format!("invalid duration `{text}` ({error}); write it like `60s`, `1m30s` or `500ms`")
    })
}

/// Formats a duration so that [`parse`] reads it back unchanged.
pub(crate) fn format(duration: Duration) -> String {
    if duration.is_zero() {
        "0s".to_string()
    } else {
        humantime::format_duration(duration).to_string()
    }
}

struct DurationVisitor;

impl Visitor<'_> for DurationVisitor {
    type Value = Duration;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a duration such as `60s` or an integer number of nanoseconds")
    }

    fn visit_u64<E: de::Error>(self, nanos: u64) -> Result<Duration, E> {
        Ok(Duration::from_nanos(nanos))
    }

    fn visit_i64<E: de::Error>(self, nanos: i64) -> Result<Duration, E> {
        u64::try_from(nanos)
            .map(Duration::from_nanos)
            .map_err(|_| E::custom(format!("invalid duration {nanos}: must not be negative")))
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<Duration, E> {
        parse(text).map_err(E::custom)
    }
}

/// `deserialize_with` for a [`Duration`] field.
pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Duration, D::Error> {
    deserializer.deserialize_any(DurationVisitor)
}

/// `serialize_with` for a [`Duration`] field.
pub(crate) fn serialize<S: Serializer>(
    duration: &Duration,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&format(*duration))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_style_strings() {
        assert_eq!(parse("60s"), Ok(Duration::from_secs(60)));
        assert_eq!(parse("1m0s"), Ok(Duration::from_secs(60)));
        assert_eq!(parse("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse("0"), Ok(Duration::ZERO));
        assert_eq!(parse("2h"), Ok(Duration::from_secs(7200)));
        assert!(parse("-1s").is_err());
        assert!(parse("soon").is_err());
    }

    #[test]
    fn format_round_trips() {
        for duration in [
            Duration::ZERO,
            Duration::from_millis(1500),
            Duration::from_secs(90),
            Duration::from_nanos(1),
        ] {
            assert_eq!(parse(&format(duration)), Ok(duration));
        }
    }
}
