//! rclone's duration, age and size syntax: `--min-age 2h45m`, `--max-age 2024-01-02`,
//! `--min-size 50k`.

use std::time::Duration;

use time::format_description::well_known::Rfc3339;
use time::macros::format_description;
use time::{OffsetDateTime, PrimitiveDateTime, UtcOffset};

use crate::error::{Error, ErrorKind, Result};

/// An age limit: relative to the moment the filter is built, or an absolute instant.
///
/// `--max-age 2d` is `Relative(2 days)`; `--max-age 2024-01-02` is `Absolute(2024-01-02
/// 00:00 UTC)`, i.e. "modified at or after that instant".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AgeLimit {
    /// This long before the filter's `now`.
    Relative(Duration),
    /// This instant.
    Absolute(OffsetDateTime),
}

impl AgeLimit {
    /// The instant this limit stands for, seen from `now`.
    pub fn cutoff(self, now: OffsetDateTime) -> OffsetDateTime {
        match self {
            AgeLimit::Relative(d) => {
                let d = time::Duration::try_from(d).unwrap_or(time::Duration::MAX);
                now.saturating_sub(d)
            }
            AgeLimit::Absolute(t) => t,
        }
    }
}

impl From<Duration> for AgeLimit {
    fn from(d: Duration) -> Self {
        AgeLimit::Relative(d)
    }
}

fn invalid(what: &str, text: &str, why: impl std::fmt::Display) -> Error {
    Error::new(ErrorKind::InvalidInput, format!("{what} {text:?}: {why}"))
}

const SECOND: f64 = 1.0;
const DAY: f64 = 86_400.0;

/// Parses a duration in rclone's syntax; `Ok(None)` for `off`.
///
/// Accepted: Go durations (`300ms`, `1.5h`, `2h45m`, units `ns us µs ms s m h`), one number with
/// a suffix `d` (day), `w` (7 days), `M` (30 days), `y` (365 days), or a bare number of seconds
/// (`90`, `0.5`). Negative durations are refused.
///
/// ```
/// use std::time::Duration;
/// use cloudsync_core::parse_duration;
/// assert_eq!(parse_duration("2h45m")?, Some(Duration::from_secs(2 * 3600 + 45 * 60)));
/// assert_eq!(parse_duration("1.5d")?, Some(Duration::from_secs(36 * 3600)));
/// assert_eq!(parse_duration("1M")?, Some(Duration::from_secs(30 * 86400)));
/// assert_eq!(parse_duration("90")?, Some(Duration::from_secs(90)));
/// assert_eq!(parse_duration("off")?, None);
/// assert!(parse_duration("1d2h").is_err());
/// # Ok::<(), cloudsync_core::Error>(())
/// ```
pub fn parse_duration(text: &str) -> Result<Option<Duration>> {
    if text == "off" {
        return Ok(None);
    }
    if let Some(d) = parse_go_duration(text) {
        return d.map(Some).map_err(|why| invalid("duration", text, why));
    }
    parse_suffixed(text)
        .map(Some)
        .ok_or_else(|| invalid("duration", text, "expected e.g. `300ms`, `2h45m`, `1.5d`, `2w`, `1M`, `1y`, a number of seconds or `off`"))
}

/// Parses an age: a duration as in [`parse_duration`] or an absolute date (`2024-01-02`,
/// `2024-01-02 15:04:05`, `2024-01-02T15:04:05`, RFC 3339 with an offset). Dates without an
/// offset are taken as UTC. `Ok(None)` for `off`.
///
/// ```
/// use std::time::Duration;
/// use cloudsync_core::{parse_age, AgeLimit};
/// use cloudsync_core::deps::time::macros::datetime;
/// assert_eq!(parse_age("2d")?, Some(AgeLimit::Relative(Duration::from_secs(2 * 86400))));
/// assert_eq!(parse_age("2024-01-02")?, Some(AgeLimit::Absolute(datetime!(2024-01-02 0:00 UTC))));
/// assert_eq!(
///     parse_age("2024-01-02T15:04:05+02:00")?,
///     Some(AgeLimit::Absolute(datetime!(2024-01-02 15:04:05 +2)))
/// );
/// # Ok::<(), cloudsync_core::Error>(())
/// ```
pub fn parse_age(text: &str) -> Result<Option<AgeLimit>> {
    if text == "off" {
        return Ok(None);
    }
    if let Some(d) = parse_go_duration(text) {
        return d
            .map(|d| Some(AgeLimit::Relative(d)))
            .map_err(|why| invalid("age", text, why));
    }
    if let Some(d) = parse_suffixed(text) {
        return Ok(Some(AgeLimit::Relative(d)));
    }
    parse_date(text)
        .map(|t| Some(AgeLimit::Absolute(t)))
        .ok_or_else(|| {
            invalid(
                "age",
                text,
                "expected a duration (`2h45m`, `1.5d`, `2w`, `1M`, `1y`, seconds), a date \
                 (`2024-01-02`, `2024-01-02 15:04:05`, RFC 3339) or `off`",
            )
        })
}

fn parse_date(text: &str) -> Option<OffsetDateTime> {
    if let Ok(t) = OffsetDateTime::parse(text, &Rfc3339) {
        return Some(t);
    }
    let formats = [
        format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]"),
        format_description!("[year]-[month]-[day] [hour]:[minute]:[second]"),
    ];
    for f in formats {
        if let Ok(t) = PrimitiveDateTime::parse(text, &f) {
            return Some(t.assume_offset(UtcOffset::UTC));
        }
    }
    let day = format_description!("[year]-[month]-[day]");
    time::Date::parse(text, &day)
        .ok()
        .map(|d| d.midnight().assume_offset(UtcOffset::UTC))
}

/// A number followed by `d`, `w`, `M`, `y` or nothing (seconds).
fn parse_suffixed(text: &str) -> Option<Duration> {
    let (number, unit) = match text.as_bytes().last()? {
        b'd' => (&text[..text.len() - 1], DAY),
        b'w' => (&text[..text.len() - 1], 7.0 * DAY),
        b'M' => (&text[..text.len() - 1], 30.0 * DAY),
        b'y' => (&text[..text.len() - 1], 365.0 * DAY),
        _ => (text, SECOND),
    };
    let value = parse_float(number)?;
    if value < 0.0 {
        return None;
    }
    Duration::try_from_secs_f64(value * unit).ok()
}

/// A finite decimal number as Go's ParseFloat reads it (no `inf`/`nan`).
fn parse_float(s: &str) -> Option<f64> {
    let digits = s.strip_prefix(['+', '-']).unwrap_or(s);
    if digits.is_empty() || !digits.starts_with(|c: char| c.is_ascii_digit() || c == '.') {
        return None;
    }
    s.parse::<f64>().ok().filter(|v| v.is_finite())
}

/// Go's `time.ParseDuration`: `None` when `text` is not in that syntax at all, `Some(Err)` when
/// it is but the value is unusable (negative, too large).
fn parse_go_duration(text: &str) -> Option<std::result::Result<Duration, &'static str>> {
    let (negative, mut s) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    if s == "0" {
        return Some(Ok(Duration::ZERO));
    }
    if s.is_empty() {
        return None;
    }
    let mut total_ns: f64 = 0.0;
    let mut exact_ns: u128 = 0;
    while !s.is_empty() {
        let int_len = s.bytes().take_while(u8::is_ascii_digit).count();
        let int_part = &s[..int_len];
        s = &s[int_len..];
        let mut frac_part = "";
        if let Some(rest) = s.strip_prefix('.') {
            let frac_len = rest.bytes().take_while(u8::is_ascii_digit).count();
            frac_part = &rest[..frac_len];
            s = &rest[frac_len..];
        }
        if int_part.is_empty() && frac_part.is_empty() {
            return None;
        }
        let unit_len = s
            .char_indices()
            .find(|(_, c)| *c == '.' || c.is_ascii_digit())
            .map_or(s.len(), |(i, _)| i);
        let unit: u128 = match &s[..unit_len] {
            "ns" => 1,
            "us" | "µs" | "μs" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            _ => return None,
        };
        s = &s[unit_len..];
        let int: u128 = if int_part.is_empty() {
            0
        } else {
            match int_part.parse::<u128>() {
                Ok(v) => v,
                Err(_) => return Some(Err("too large")),
            }
        };
        exact_ns = match int.checked_mul(unit).and_then(|v| exact_ns.checked_add(v)) {
            Some(v) => v,
            None => return Some(Err("too large")),
        };
        if !frac_part.is_empty() {
            let frac: f64 = format!("0.{frac_part}").parse().unwrap_or(0.0);
            total_ns += frac * unit as f64;
        }
    }
    let ns = exact_ns + total_ns as u128;
    if ns > i64::MAX as u128 {
        return Some(Err("too large"));
    }
    if negative && ns > 0 {
        return Some(Err("negative durations are not supported"));
    }
    Some(Ok(Duration::from_nanos(ns as u64)))
}

/// Parses a size in rclone's syntax; `Ok(None)` for `off`.
///
/// A number (fractions allowed) with an optional binary suffix: none or `K` = KiB, `B` = bytes,
/// `M`, `G`, `T`, `P`, `E` (also `Ki`, `KiB`, ..., any case).
///
/// ```
/// use cloudsync_core::parse_size;
/// assert_eq!(parse_size("50k")?, Some(50 * 1024));
/// assert_eq!(parse_size("10")?, Some(10 * 1024));
/// assert_eq!(parse_size("100B")?, Some(100));
/// assert_eq!(parse_size("1.5M")?, Some(1536 * 1024));
/// assert_eq!(parse_size("1GiB")?, Some(1 << 30));
/// assert_eq!(parse_size("off")?, None);
/// assert!(parse_size("-1k").is_err());
/// # Ok::<(), cloudsync_core::Error>(())
/// ```
pub fn parse_size(text: &str) -> Result<Option<u64>> {
    if text.eq_ignore_ascii_case("off") {
        return Ok(None);
    }
    let bytes = text.as_bytes();
    let Some(&last) = bytes.last() else {
        return Err(invalid("size", text, "empty"));
    };
    let symbol = |b: u8| -> Option<f64> {
        let exp = match b.to_ascii_lowercase() {
            b'k' => 1,
            b'm' => 2,
            b'g' => 3,
            b't' => 4,
            b'p' => 5,
            b'e' => 6,
            _ => return None,
        };
        Some(1024f64.powi(exp))
    };
    let bad_suffix = || invalid("size", text, "unknown suffix (use B, K, M, G, T, P or E)");
    let (suffix_len, multiplier) = match last {
        b'0'..=b'9' | b'.' => (0, 1024.0),
        b'b' | b'B' => {
            if bytes.len() > 2 && bytes[bytes.len() - 2] == b'i' {
                (3, symbol(bytes[bytes.len() - 3]).ok_or_else(bad_suffix)?)
            } else {
                (1, 1.0)
            }
        }
        b'i' | b'I' => {
            let m = if bytes.len() > 1 {
                symbol(bytes[bytes.len() - 2])
            } else {
                None
            };
            (2, m.ok_or_else(bad_suffix)?)
        }
        other => (1, symbol(other).ok_or_else(bad_suffix)?),
    };
    let number = &text[..text.len() - suffix_len];
    let value = parse_float(number).ok_or_else(|| invalid("size", text, "not a number"))?;
    if value < 0.0 {
        return Err(invalid("size", text, "a size can't be negative"));
    }
    let bytes = value * multiplier;
    if bytes >= u64::MAX as f64 {
        return Err(invalid("size", text, "too large"));
    }
    Ok(Some(bytes as u64))
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    const H: u64 = 3600;
    const D: u64 = 86_400;

    #[test]
    fn durations() {
        for (text, secs) in [
            ("0", 0.0),
            ("300ms", 0.3),
            ("1.5h", 1.5 * H as f64),
            ("2h45m", (2 * H + 45 * 60) as f64),
            ("1h30m15s", (H + 30 * 60 + 15) as f64),
            ("1d", D as f64),
            ("1.5d", 1.5 * D as f64),
            ("2w", (14 * D) as f64),
            ("1M", (30 * D) as f64),
            ("1y", (365 * D) as f64),
            ("90", 90.0),
            ("0.5", 0.5),
            ("5m", 300.0),
            ("1us", 0.000_001),
            (".5s", 0.5),
        ] {
            let got = parse_duration(text).unwrap().unwrap();
            assert!(
                (got.as_secs_f64() - secs).abs() < 1e-9,
                "{text}: {got:?} != {secs}"
            );
        }
        assert_eq!(parse_duration("off").unwrap(), None);
        for bad in [
            "",
            "1d2h",
            "x",
            "h",
            "-1h",
            "-5",
            "1.2.3",
            "inf",
            "nan",
            "1e400",
            "1q",
            "d",
            ".",
            "9999999999999999999999h",
            "1 d",
        ] {
            let e = parse_duration(bad).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::InvalidInput, "{bad}");
            assert!(e.message().contains(&format!("{bad:?}")), "{bad}: {e}");
        }
    }

    #[test]
    fn ages() {
        assert_eq!(
            parse_age("1h").unwrap(),
            Some(AgeLimit::Relative(Duration::from_secs(H)))
        );
        for (text, want) in [
            ("2024-01-02", datetime!(2024-01-02 0:00 UTC)),
            ("2024-01-02 15:04:05", datetime!(2024-01-02 15:04:05 UTC)),
            ("2024-01-02T15:04:05", datetime!(2024-01-02 15:04:05 UTC)),
            ("2024-01-02T15:04:05Z", datetime!(2024-01-02 15:04:05 UTC)),
            (
                "2024-01-02T15:04:05-07:00",
                datetime!(2024-01-02 15:04:05 -7),
            ),
        ] {
            assert_eq!(
                parse_age(text).unwrap(),
                Some(AgeLimit::Absolute(want)),
                "{text}"
            );
        }
        assert_eq!(parse_age("off").unwrap(), None);
        assert!(parse_age("2024-13-01").is_err());
        assert!(parse_age("yesterday").is_err());
        let now = datetime!(2024-01-10 0:00 UTC);
        assert_eq!(
            AgeLimit::Relative(Duration::from_secs(D)).cutoff(now),
            datetime!(2024-01-09 0:00 UTC)
        );
        assert_eq!(
            AgeLimit::Relative(Duration::MAX).cutoff(now),
            time::PrimitiveDateTime::MIN.assume_utc()
        );
    }

    #[test]
    fn sizes() {
        for (text, want) in [
            ("0", 0),
            ("1", 1024),
            ("1.5", 1536),
            ("100B", 100),
            ("100b", 100),
            ("1k", 1024),
            ("1K", 1024),
            ("1Ki", 1024),
            ("1KiB", 1024),
            ("1M", 1 << 20),
            ("1G", 1 << 30),
            ("1T", 1 << 40),
            ("1P", 1 << 50),
            ("2E", 2 << 60),
            ("0.5k", 512),
            ("50k", 50 * 1024),
        ] {
            assert_eq!(parse_size(text).unwrap(), Some(want), "{text}");
        }
        assert_eq!(parse_size("off").unwrap(), None);
        assert_eq!(parse_size("OFF").unwrap(), None);
        for bad in [
            "", "-1", "k", "1x", "1.2.3k", "1Xi", "1XiB", "i", "B", "é", "1éb", "1éib", "inf",
            "20E",
        ] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
    }
}
