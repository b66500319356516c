//! `--bwlimit`, `--bwlimit-file` and `--cutoff-mode`: parsing, and the local time the
//! bandwidth timetable is read in.

use std::sync::Arc;

use cloudsync::deps::time::UtcOffset;
use cloudsync::ops::CutoffMode;
use cloudsync::{BandwidthLimiter, BwTimetable, SystemClock};

use crate::cli::GlobalArgs;

/// The local UTC offset (as `date +%z` prints it: the `time` crate will not read it once
/// threads run, and no other dependency is worth it). UTC if that fails, with a warning.
fn local_offset() -> UtcOffset {
    let offset = std::process::Command::new("date")
        .arg("+%z")
        .output()
        .ok()
        .and_then(|o| parse_offset(String::from_utf8_lossy(&o.stdout).trim()));
    if offset.is_none() {
        tracing::warn!("cannot find the local time zone; --bwlimit timetables are read in UTC");
    }
    offset.unwrap_or(UtcOffset::UTC)
}

/// `+0200` / `-0530`.
fn parse_offset(s: &str) -> Option<UtcOffset> {
    let (sign, digits) = match s.as_bytes().first()? {
        b'+' => (1, &s[1..]),
        b'-' => (-1, &s[1..]),
        _ => return None,
    };
    if digits.len() != 4 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let h: i8 = digits[..2].parse().ok()?;
    let m: i8 = digits[2..].parse().ok()?;
    UtcOffset::from_hms(sign * h, sign * m, 0).ok()
}

/// The limiter of this run, if `--bwlimit` or `--bwlimit-file` limits anything.
pub fn bandwidth(g: &GlobalArgs) -> Option<BandwidthLimiter> {
    let total = g
        .bwlimit
        .clone()
        .unwrap_or_else(|| BwTimetable::constant(Default::default()));
    let per_file = g.bwlimit_file.clone();
    if total.is_off() && per_file.as_ref().is_none_or(BwTimetable::is_off) {
        return None;
    }
    let clock = Arc::new(SystemClock::new(local_offset()));
    Some(BandwidthLimiter::with_clock(total, per_file, clock))
}

pub fn bwlimit(s: &str) -> Result<BwTimetable, String> {
    s.parse()
        .map_err(|e: cloudsync::Error| e.message().to_owned())
}

pub fn cutoff_mode(s: &str) -> Result<CutoffMode, String> {
    s.parse()
        .map_err(|e: cloudsync::Error| e.message().to_owned())
}

#[cfg(test)]
mod tests {
    #[test]
    fn offsets() {
        use super::parse_offset;
        assert_eq!(parse_offset("+0200").map(|o| o.whole_minutes()), Some(120));
        assert_eq!(parse_offset("-0530").map(|o| o.whole_minutes()), Some(-330));
        assert_eq!(parse_offset("CEST"), None);
    }
}
