//! Parsers for what FTP servers send about files: `MLSD`/`MLST` fact lines (RFC 3659), `LIST`
//! lines in the Unix `ls -l` and DOS/IIS formats, and `MDTM`/`modify` timestamps.
//!
//! They never panic: a line they cannot read is a [`ListParseError`] carrying that line. Names
//! are returned as sent; the lister validates each one before use.
//!
//! ```
//! use cloudsync_ftp::parse::{parse_list_line, ListedKind};
//! use time::macros::datetime;
//!
//! let now = datetime!(2024-06-01 12:00 UTC);
//! let e = parse_list_line("-rw-r--r--   1 ftp ftp  1234 Mar 10 14:22 my file.txt", now)
//!     .unwrap()
//!     .unwrap();
//! assert_eq!((e.name.as_str(), e.kind, e.size), ("my file.txt", ListedKind::File, 1234));
//! assert_eq!(e.modtime, Some(datetime!(2024-03-10 14:22 UTC)));
//! ```

use time::{Date, Month, OffsetDateTime, PrimitiveDateTime, Time};

/// What kind of directory entry a listing line describes.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ListedKind {
    /// A regular file.
    File,
    /// A directory.
    Dir,
    /// A symbolic link; the target when the server tells it.
    Symlink(Option<String>),
    /// Anything else (device, socket, pipe, an unknown `OS.*` type).
    Other,
}

/// One entry of a directory listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedEntry {
    /// The name as the server sent it (not validated).
    pub name: String,
    /// File, directory, link or other.
    pub kind: ListedKind,
    /// Size in bytes (0 when the server did not say).
    pub size: u64,
    /// Modification time, when the line has one.
    pub modtime: Option<OffsetDateTime>,
    /// Whether `modtime` is an exact UTC time to the second (MLSD) rather than a `LIST` time
    /// (server-local clock, minute or day precision, year sometimes guessed).
    pub exact_modtime: bool,
}

/// A listing line that could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot parse listing line {line:?}: {reason}")]
pub struct ListParseError {
    /// The line as received.
    pub line: String,
    /// What was wrong with it.
    pub reason: &'static str,
}

/// Largest size taken from a server: what a signed 64-bit file offset can hold. Larger values
/// are not real sizes, and sums over them would overflow.
pub const MAX_SIZE: u64 = i64::MAX as u64;

/// Earliest year a modtime from a server is taken in (the Windows file time epoch).
const MIN_YEAR: i32 = 1601;
/// Latest year a modtime from a server is taken in (far from `time`'s limit, so arithmetic on
/// it cannot overflow).
const MAX_YEAR: i32 = 9000;

/// `t` when its year is plausible for a file (1601 to 9000), `None` otherwise: a time far out of
/// range is treated as unknown rather than passed on to arithmetic that could overflow.
///
/// ```
/// use cloudsync_ftp::parse::{parse_timeval, plausible_time};
/// assert!(parse_timeval("20240102030405").and_then(plausible_time).is_some());
/// assert!(parse_timeval("99991231235959").and_then(plausible_time).is_none());
/// ```
pub fn plausible_time(t: OffsetDateTime) -> Option<OffsetDateTime> {
    (MIN_YEAR..=MAX_YEAR).contains(&t.year()).then_some(t)
}

/// A size column or fact: a number no larger than [`MAX_SIZE`].
fn parse_size(s: &str) -> Option<u64> {
    s.parse::<u64>().ok().filter(|n| *n <= MAX_SIZE)
}

fn fail(line: &str, reason: &'static str) -> ListParseError {
    ListParseError {
        line: line.to_owned(),
        reason,
    }
}

/// Parses a `YYYYMMDDHHMMSS[.sss]` timestamp (MLSD `modify` fact, `MDTM` reply), in UTC.
///
/// ```
/// use cloudsync_ftp::parse::parse_timeval;
/// use time::macros::datetime;
/// assert_eq!(parse_timeval("20240102030405.250"), Some(datetime!(2024-01-02 03:04:05.25 UTC)));
/// assert_eq!(parse_timeval("2024010203"), None);
/// ```
pub fn parse_timeval(s: &str) -> Option<OffsetDateTime> {
    let s = s.trim();
    let (whole, frac) = match s.split_once('.') {
        Some((w, f)) => (w, Some(f)),
        None => (s, None),
    };
    if whole.len() != 14 || !whole.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n = |r: std::ops::Range<usize>| whole.get(r).and_then(|x| x.parse::<u32>().ok());
    let year = i32::try_from(n(0..4)?).ok()?;
    let month = Month::try_from(u8::try_from(n(4..6)?).ok()?).ok()?;
    let date = Date::from_calendar_date(year, month, u8::try_from(n(6..8)?).ok()?).ok()?;
    let mut nanos = 0u32;
    if let Some(f) = frac {
        if f.is_empty() || f.len() > 9 || !f.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let digits: u32 = f.parse().ok()?;
        nanos = digits * 10u32.pow(9 - f.len() as u32);
    }
    let time = Time::from_hms_nano(
        u8::try_from(n(8..10)?).ok()?,
        u8::try_from(n(10..12)?).ok()?,
        u8::try_from(n(12..14)?).ok()?,
        nanos,
    )
    .ok()?;
    Some(PrimitiveDateTime::new(date, time).assume_utc())
}

/// Formats a time as `YYYYMMDDHHMMSS` in UTC (for `MFMT` and `MDTM time path`), whole seconds.
///
/// ```
/// use cloudsync_ftp::parse::format_timeval;
/// use time::macros::datetime;
/// assert_eq!(format_timeval(datetime!(2024-01-02 03:04:05.9 UTC)), "20240102030405");
/// ```
pub fn format_timeval(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}{:02}{:02}{:02}{:02}{:02}",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// Parses one `MLSD` line (`fact=value;...; name`, RFC 3659 §7).
///
/// Returns `Ok(None)` for lines that name no entry: the current and parent directory
/// (`type=cdir`/`pdir`) and blank lines.
///
/// ```
/// use cloudsync_ftp::parse::{parse_mlsd_line, ListedKind};
/// let e = parse_mlsd_line("type=file;size=5;modify=20240102030405; a; b.txt").unwrap().unwrap();
/// assert_eq!((e.name.as_str(), e.kind, e.size), ("a; b.txt", ListedKind::File, 5));
/// assert!(parse_mlsd_line("type=cdir;modify=20240102030405; .").unwrap().is_none());
/// ```
pub fn parse_mlsd_line(line: &str) -> Result<Option<ListedEntry>, ListParseError> {
    parse_facts_line(line, false)
}

/// Parses the facts line of an `MLST` reply (`fact=value;...; /full/path`).
///
/// Unlike [`parse_mlsd_line`], the current directory (`type=cdir`) is reported as a directory.
///
/// ```
/// use cloudsync_ftp::parse::{parse_mlst_line, ListedKind};
/// let e = parse_mlst_line("type=cdir;modify=20240102030405; /srv/x").unwrap();
/// assert_eq!(e.kind, ListedKind::Dir);
/// ```
pub fn parse_mlst_line(line: &str) -> Result<ListedEntry, ListParseError> {
    parse_facts_line(line.trim_start(), true)?.ok_or_else(|| fail(line, "no entry"))
}

fn parse_facts_line(line: &str, mlst: bool) -> Result<Option<ListedEntry>, ListParseError> {
    let line = line.trim_end_matches(['\r', '\n']);
    if line.trim().is_empty() {
        return Ok(None);
    }
    // The facts end at the first "; " (each fact ends with ';', and one space separates the
    // facts from the name); a line with no facts starts with the space.
    let (facts, name) = if let Some(rest) = line.strip_prefix(' ') {
        ("", rest)
    } else {
        let i = line
            .find("; ")
            .ok_or_else(|| fail(line, "no `; ` between facts and name"))?;
        (&line[..i], &line[i + 2..])
    };
    if name.is_empty() {
        return Err(fail(line, "empty name"));
    }
    let mut kind = None;
    let mut size = None;
    let mut modtime = None;
    for fact in facts.split(';') {
        let Some((key, value)) = fact.split_once('=') else {
            continue;
        };
        match key.to_ascii_lowercase().as_str() {
            "type" => {
                let v = value.to_ascii_lowercase();
                kind = Some(match v.as_str() {
                    "file" => ListedKind::File,
                    "dir" => ListedKind::Dir,
                    "cdir" | "pdir" if mlst => ListedKind::Dir,
                    "cdir" | "pdir" => return Ok(None),
                    "os.unix=symlink" => ListedKind::Symlink(None),
                    _ if v.starts_with("os.unix=slink") => ListedKind::Symlink(
                        value
                            .split_once(':')
                            .map(|(_, t)| t.to_owned())
                            .filter(|t| !t.is_empty()),
                    ),
                    _ => ListedKind::Other,
                });
            }
            "size" => {
                size = Some(
                    parse_size(value)
                        .ok_or_else(|| fail(line, "`size` is not a number or out of range"))?,
                );
            }
            "modify" => {
                modtime = plausible_time(
                    parse_timeval(value).ok_or_else(|| fail(line, "bad `modify` time"))?,
                );
            }
            _ => {}
        }
    }
    if !mlst && (name == "." || name == "..") {
        return Ok(None);
    }
    let kind = kind.ok_or_else(|| fail(line, "no `type` fact"))?;
    Ok(Some(ListedEntry {
        name: name.to_owned(),
        size: if kind == ListedKind::File {
            size.unwrap_or(0)
        } else {
            0
        },
        kind,
        modtime,
        exact_modtime: modtime.is_some(),
    }))
}

/// Parses one `LIST` line in the Unix `ls -l` format or the DOS/IIS format.
///
/// `now` resolves the year of recent Unix entries, which show `Mon DD HH:MM` without one: the
/// year is the latest one that does not put the time more than a day in the future. Times are
/// taken as UTC (the server's clock zone is unknown); the lister corrects them with `MDTM` when
/// the server has it. Returns `Ok(None)` for `total N` lines, blank lines, `.` and `..`.
///
/// ```
/// use cloudsync_ftp::parse::{parse_list_line, ListedKind};
/// use time::macros::datetime;
/// let now = datetime!(2024-06-01 12:00 UTC);
/// let e = parse_list_line("02-14-23  03:04PM       <DIR>          Old Stuff", now)
///     .unwrap()
///     .unwrap();
/// assert_eq!((e.name.as_str(), e.kind), ("Old Stuff", ListedKind::Dir));
/// assert_eq!(e.modtime, Some(datetime!(2023-02-14 15:04 UTC)));
/// assert!(parse_list_line("total 42", now).unwrap().is_none());
/// ```
pub fn parse_list_line(
    line: &str,
    now: OffsetDateTime,
) -> Result<Option<ListedEntry>, ListParseError> {
    let line = line.trim_end_matches(['\r', '\n']);
    let trimmed = line.trim();
    if trimmed.is_empty() {
        return Ok(None);
    }
    if let Some(rest) = trimmed.strip_prefix("total ") {
        if rest.trim().bytes().all(|b| b.is_ascii_digit() || b == b'.')
            || rest.trim().ends_with(['K', 'M', 'G'])
        {
            return Ok(None);
        }
    }
    let first = trimmed.as_bytes()[0];
    let entry = if first.is_ascii_digit() {
        parse_dos(line)?
    } else {
        parse_unix(line, now)?
    };
    if entry.name == "." || entry.name == ".." {
        return Ok(None);
    }
    Ok(Some(entry))
}

/// Whitespace-separated tokens of `line` with their byte ranges.
fn tokens(line: &str) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut start = None;
    for (i, c) in line.char_indices() {
        if c == ' ' || c == '\t' {
            if let Some(s) = start.take() {
                out.push((s, i));
            }
        } else if start.is_none() {
            start = Some(i);
        }
    }
    if let Some(s) = start {
        out.push((s, line.len()));
    }
    out
}

fn month(s: &str) -> Option<Month> {
    const NAMES: [&str; 12] = [
        "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
    ];
    if s.len() != 3 {
        return None;
    }
    let lower = s.to_ascii_lowercase();
    let i = NAMES.iter().position(|n| *n == lower)?;
    Month::try_from(u8::try_from(i + 1).ok()?).ok()
}

fn digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

/// `HH:MM` or `HH:MM:SS`.
fn clock(s: &str) -> Option<Time> {
    let mut parts = s.split(':');
    let h: u8 = parts.next()?.parse().ok()?;
    let m: u8 = parts.next()?.parse().ok()?;
    let sec: u8 = match parts.next() {
        Some(x) => x.parse().ok()?,
        None => 0,
    };
    if parts.next().is_some() {
        return None;
    }
    Time::from_hms(h, m, sec).ok()
}

fn parse_unix(line: &str, now: OffsetDateTime) -> Result<ListedEntry, ListParseError> {
    let toks = tokens(line);
    let tok = |i: usize| toks.get(i).map(|&(s, e)| &line[s..e]);
    let perms = tok(0).ok_or_else(|| fail(line, "empty line"))?;
    if perms.len() < 10 {
        return Err(fail(line, "not a Unix listing line (permissions column)"));
    }
    let kind = match perms.as_bytes()[0] {
        b'-' | b'f' => ListedKind::File,
        b'd' => ListedKind::Dir,
        b'l' => ListedKind::Symlink(None),
        b'b' | b'c' | b'p' | b's' | b'D' => ListedKind::Other,
        _ => return Err(fail(line, "unknown file type in permissions column")),
    };
    // Find the date: `Mon DD HH:MM|YYYY` or `YYYY-MM-DD HH:MM`, preceded by the size. Owner and
    // group columns vary (missing group, numeric ids, names with spaces are not supported).
    let mut found = None;
    for m in 2..toks.len().saturating_sub(1) {
        let (Some(size_tok), Some(t0), Some(t1)) = (tok(m - 1), tok(m), tok(m + 1)) else {
            break;
        };
        if !digits(size_tok) {
            continue;
        }
        if let (Some(mon), Some(t2)) = (month(t0), tok(m + 2)) {
            let Ok(day) = t1.parse::<u8>() else { continue };
            if !digits(t1) || !(1..=31).contains(&day) {
                continue;
            }
            if let Some(time) = clock(t2) {
                found = Some((size_tok, m + 2, Stamp::Recent(mon, day, time)));
                break;
            }
            if t2.len() == 4 && digits(t2) {
                let year: i32 = t2.parse().map_err(|_| fail(line, "bad year"))?;
                found = Some((size_tok, m + 2, Stamp::Old(year, mon, day)));
                break;
            }
        } else if t0.len() == 10 && t0.as_bytes()[4] == b'-' && t0.as_bytes()[7] == b'-' {
            // ls --time-style=long-iso: 2024-03-10 14:22
            let part = |r: std::ops::Range<usize>| t0.get(r).unwrap_or("");
            let (Ok(y), Ok(mo), Ok(d)) = (
                part(0..4).parse::<i32>(),
                part(5..7).parse::<u8>(),
                part(8..10).parse::<u8>(),
            ) else {
                continue;
            };
            if let (Ok(mo), Some(time)) = (Month::try_from(mo), clock(t1)) {
                let date =
                    Date::from_calendar_date(y, mo, d).map_err(|_| fail(line, "invalid date"))?;
                found = Some((
                    size_tok,
                    m + 1,
                    Stamp::Exact(PrimitiveDateTime::new(date, time)),
                ));
                break;
            }
        }
    }
    let (size_tok, last, stamp) = found.ok_or_else(|| fail(line, "no size and date columns"))?;
    let size = parse_size(size_tok).ok_or_else(|| fail(line, "size is too large"))?;
    let modtime = match stamp {
        Stamp::Recent(mon, day, time) => {
            Some(recent_year(mon, day, time, now).ok_or_else(|| fail(line, "invalid date"))?)
        }
        Stamp::Old(year, mon, day) => Some(
            Date::from_calendar_date(year, mon, day)
                .map_err(|_| fail(line, "invalid date"))?
                .midnight()
                .assume_utc(),
        ),
        Stamp::Exact(dt) => Some(dt.assume_utc()),
    }
    .and_then(plausible_time);
    // The name starts one space after the time column (more spaces belong to the name).
    let (_, end) = toks[last];
    let rest = line.get(end + 1..).unwrap_or("");
    if rest.is_empty() {
        return Err(fail(line, "no name"));
    }
    let (name, kind) = match kind {
        ListedKind::Symlink(_) => match rest.split_once(" -> ") {
            Some((n, target)) => (n, ListedKind::Symlink(Some(target.to_owned()))),
            None => (rest, ListedKind::Symlink(None)),
        },
        k => (rest, k),
    };
    if name.is_empty() {
        return Err(fail(line, "no name"));
    }
    Ok(ListedEntry {
        name: name.to_owned(),
        size: if kind == ListedKind::File { size } else { 0 },
        kind,
        modtime,
        exact_modtime: false,
    })
}

enum Stamp {
    Recent(Month, u8, Time),
    Old(i32, Month, u8),
    Exact(PrimitiveDateTime),
}

/// The latest year in which `mon day time` is a valid date no more than a day after `now`.
fn recent_year(mon: Month, day: u8, time: Time, now: OffsetDateTime) -> Option<OffsetDateTime> {
    let limit = now + time::Duration::days(1);
    (0..8).find_map(|back| {
        let date = Date::from_calendar_date(now.year() - back, mon, day).ok()?;
        let t = PrimitiveDateTime::new(date, time).assume_utc();
        (t <= limit).then_some(t)
    })
}

fn parse_dos(line: &str) -> Result<ListedEntry, ListParseError> {
    let toks = tokens(line);
    if toks.len() < 4 {
        return Err(fail(line, "not a DOS listing line (too few columns)"));
    }
    let tok = |i: usize| &line[toks[i].0..toks[i].1];
    let date = {
        let d = tok(0);
        let parts: Vec<&str> = d.split(['-', '/', '.']).collect();
        let [m, dd, y] = parts.as_slice() else {
            return Err(fail(line, "bad DOS date"));
        };
        let (Ok(m), Ok(dd), Ok(y)) = (m.parse::<u8>(), dd.parse::<u8>(), y.parse::<i32>()) else {
            return Err(fail(line, "bad DOS date"));
        };
        let y = match (y, parts[2].len()) {
            (y, 2) if y < 70 => 2000 + y,
            (y, 2) => 1900 + y,
            (y, 4) => y,
            _ => return Err(fail(line, "bad DOS year")),
        };
        let m = Month::try_from(m).map_err(|_| fail(line, "bad DOS month"))?;
        Date::from_calendar_date(y, m, dd).map_err(|_| fail(line, "invalid date"))?
    };
    let time = {
        let t = tok(1).to_ascii_uppercase();
        let (clock_part, pm) = if let Some(c) = t.strip_suffix("PM") {
            (c, Some(true))
        } else if let Some(c) = t.strip_suffix("AM") {
            (c, Some(false))
        } else {
            (t.as_str(), None)
        };
        let base = clock(clock_part).ok_or_else(|| fail(line, "bad DOS time"))?;
        let mut h = base.hour();
        match pm {
            Some(true) if h < 12 => h += 12,
            Some(false) if h == 12 => h = 0,
            Some(_) if h > 12 => return Err(fail(line, "bad DOS time")),
            _ => {}
        }
        Time::from_hms(h, base.minute(), base.second()).map_err(|_| fail(line, "bad DOS time"))?
    };
    let what = tok(2);
    let (kind, size) = if what.eq_ignore_ascii_case("<DIR>") {
        (ListedKind::Dir, 0)
    } else if what.eq_ignore_ascii_case("<JUNCTION>") || what.eq_ignore_ascii_case("<SYMLINK>") {
        (ListedKind::Symlink(None), 0)
    } else {
        let digits_only: String = what.chars().filter(|c| *c != ',').collect();
        let size = parse_size(&digits_only).ok_or_else(|| fail(line, "bad DOS size"))?;
        (ListedKind::File, size)
    };
    // The name starts after the spaces following the size or <DIR> column.
    let name = line[toks[3].0..].to_owned();
    Ok(ListedEntry {
        name,
        kind,
        size,
        modtime: plausible_time(PrimitiveDateTime::new(date, time).assume_utc()),
        exact_modtime: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    const NOW: OffsetDateTime = datetime!(2024-06-01 12:00 UTC);

    fn one(line: &str) -> ListedEntry {
        parse_list_line(line, NOW)
            .unwrap_or_else(|e| panic!("{e}"))
            .unwrap_or_else(|| panic!("no entry for {line:?}"))
    }

    #[test]
    fn unix_samples() {
        // vsftpd
        let e = one("-rw-r--r--    1 1001     1001         5120 Mar 10 14:22 report.pdf");
        assert_eq!(e.name, "report.pdf");
        assert_eq!(e.size, 5120);
        assert_eq!(e.modtime, Some(datetime!(2024-03-10 14:22 UTC)));
        assert!(!e.exact_modtime);
        // proftpd / pure-ftpd style, old file with a year
        let e = one("drwxr-xr-x   2 ftp      ftp          4096 Nov  3  2019 Old Photos");
        assert_eq!(
            (e.name.as_str(), e.kind.clone()),
            ("Old Photos", ListedKind::Dir)
        );
        assert_eq!(e.modtime, Some(datetime!(2019-11-03 0:00 UTC)));
        // names with leading/trailing/multiple spaces survive
        let e = one("-rw-r--r--   1 u g 3 Jan  5 09:00  two  spaces ");
        assert_eq!(e.name, " two  spaces ");
        // symlink
        let e = one("lrwxrwxrwx   1 root root   11 May 30 10:00 latest -> releases/v2");
        assert_eq!(e.name, "latest");
        assert_eq!(e.kind, ListedKind::Symlink(Some("releases/v2".into())));
        // missing group column, ACL marker, numeric owner
        let e = one("-rw-r--r--+ 1 1000 42 Feb  2 2021 acl.txt");
        assert_eq!((e.name.as_str(), e.size), ("acl.txt", 42));
        // long-iso times
        let e = one("-rw-r--r-- 1 user group 7 2023-12-31 23:59 iso.txt");
        assert_eq!(e.modtime, Some(datetime!(2023-12-31 23:59 UTC)));
        // a name that looks like a date
        let e = one("-rw-r--r-- 1 u g 1 Apr  1 10:00 Jan 1 2020");
        assert_eq!(e.name, "Jan 1 2020");
        // unicode
        let e = one("-rw-r--r-- 1 u g 9 Apr  1 10:00 données été.txt");
        assert_eq!(e.name, "données été.txt");
        // devices are "other"
        let e = one("crw-rw-rw- 1 root root 1, 3 Apr  1 10:00 null");
        assert_eq!(e.kind, ListedKind::Other);
    }

    #[test]
    fn year_ambiguity() {
        // December seen in June: last year would be 6 months ago, this year is the future.
        let e = one("-rw-r--r-- 1 u g 1 Dec 24 18:00 xmas.txt");
        assert_eq!(e.modtime, Some(datetime!(2023-12-24 18:00 UTC)));
        // Tomorrow (clock skew) stays this year.
        let e = one("-rw-r--r-- 1 u g 1 Jun  2 08:00 skew.txt");
        assert_eq!(e.modtime, Some(datetime!(2024-06-02 08:00 UTC)));
        // Feb 29 without a year: the latest leap year not in the future.
        let now = datetime!(2025-03-01 0:00 UTC);
        let e = parse_list_line("-rw-r--r-- 1 u g 1 Feb 29 12:00 leap", now)
            .unwrap()
            .unwrap();
        assert_eq!(e.modtime, Some(datetime!(2024-02-29 12:00 UTC)));
    }

    #[test]
    fn dos_samples() {
        let e = one("02-14-23  03:04PM       <DIR>          Program Files");
        assert_eq!(
            (e.name.as_str(), e.kind.clone()),
            ("Program Files", ListedKind::Dir)
        );
        let e = one("10-01-2019  12:15AM             1,234,567 setup.exe");
        assert_eq!(e.size, 1_234_567);
        assert_eq!(e.modtime, Some(datetime!(2019-10-01 0:15 UTC)));
        let e = one("01-05-99  12:00PM                 10 old.txt");
        assert_eq!(e.modtime, Some(datetime!(1999-01-05 12:00 UTC)));
        let e = one("06-01-24  17:30                   10 24h.txt");
        assert_eq!(e.modtime, Some(datetime!(2024-06-01 17:30 UTC)));
    }

    #[test]
    fn skipped_and_bad_lines() {
        assert!(parse_list_line("total 12", NOW).unwrap().is_none());
        assert!(parse_list_line("", NOW).unwrap().is_none());
        assert!(
            parse_list_line("drwxr-xr-x 2 u g 4096 Jun  1 10:00 .", NOW)
                .unwrap()
                .is_none()
        );
        assert!(
            parse_list_line("drwxr-xr-x 2 u g 4096 Jun  1 10:00 ..", NOW)
                .unwrap()
                .is_none()
        );
        for bad in [
            "hello world",
            "-rw-r--r-- 1 u g x Jun 1 10:00 f",
            "-rw-r--r-- 1 u g 5 Jun 1 10:00",
            "-rw-r--r-- 1 u g 5 Jun 31 10:00 f",
            "-rw-r--r-- 1 u g 5 Foo 1 10:00 f",
            "13-45-22  03:04PM  <DIR> x",
            "02-14-23  25:04PM  <DIR> x",
            "02-14-23",
            "?rw-r--r-- 1 u g 5 Jun 1 10:00 f",
        ] {
            let e = parse_list_line(bad, NOW).unwrap_err();
            assert_eq!(e.line, bad);
        }
    }

    #[test]
    fn mlsd_samples() {
        let e = parse_mlsd_line(
            "modify=20240102030405;perm=adfrw;size=7;type=file;unique=FD01U1; x y.txt",
        )
        .unwrap()
        .unwrap();
        assert_eq!(e.name, "x y.txt");
        assert_eq!(e.size, 7);
        assert_eq!(e.modtime, Some(datetime!(2024-01-02 03:04:05 UTC)));
        assert!(e.exact_modtime);
        let e = parse_mlsd_line("Type=dir;Modify=20240102030405.123;  lead")
            .unwrap()
            .unwrap();
        assert_eq!((e.name.as_str(), e.kind), (" lead", ListedKind::Dir));
        let e = parse_mlsd_line("type=OS.unix=slink:/etc/x;modify=20240102030405; link")
            .unwrap()
            .unwrap();
        assert_eq!(e.kind, ListedKind::Symlink(Some("/etc/x".into())));
        let e = parse_mlsd_line("type=OS.unix=symlink;size=3; l2")
            .unwrap()
            .unwrap();
        assert_eq!(e.kind, ListedKind::Symlink(None));
        assert!(
            parse_mlsd_line("type=pdir;modify=20240102030405; ..")
                .unwrap()
                .is_none()
        );
        assert!(parse_mlsd_line("type=file;size=x; f").is_err());
        assert!(parse_mlsd_line("type=file;modify=2024; f").is_err());
        assert!(parse_mlsd_line("type=file;size=1;").is_err());
        assert!(parse_mlsd_line("size=1; f").is_err());
    }

    #[test]
    fn timevals() {
        assert_eq!(
            parse_timeval("19700101000000"),
            Some(OffsetDateTime::UNIX_EPOCH)
        );
        assert_eq!(parse_timeval("20241301000000"), None);
        assert_eq!(parse_timeval("2024010100000a"), None);
        assert_eq!(parse_timeval("20240101000000."), None);
        assert_eq!(
            format_timeval(datetime!(1999-12-31 23:59:59 UTC)),
            "19991231235959"
        );
    }

    #[test]
    fn sizes_and_times_out_of_range() {
        let max = u64::MAX;
        assert!(parse_mlsd_line(&format!("type=file;size={max}; f")).is_err());
        assert!(parse_list_line(&format!("-rw-r--r-- 1 u g {max} Jun  1 10:00 f"), NOW).is_err());
        assert!(parse_list_line(&format!("06-01-24  17:30  {max} f"), NOW).is_err());
        let e = parse_mlsd_line(&format!("type=file;size={MAX_SIZE}; f"))
            .unwrap()
            .unwrap();
        assert_eq!(e.size, MAX_SIZE);
        // Times far out of range are unknown, not errors.
        for t in ["99991231235959", "00000101000000", "10000101000000"] {
            let e = parse_mlsd_line(&format!("type=file;size=1;modify={t}; f"))
                .unwrap()
                .unwrap();
            assert_eq!((e.modtime, e.exact_modtime), (None, false), "{t}");
        }
        assert_eq!(one("-rw-r--r-- 1 u g 1 Nov  3  9999 f").modtime, None);
        assert_eq!(one("-rw-r--r-- 1 u g 1 Nov  3  0001 f").modtime, None);
        assert_eq!(one("-rw-r--r-- 1 u g 1 9999-12-31 23:59 f").modtime, None);
        // A 1 MiB line is an error, quickly.
        let long = format!(
            "-rw-r--r-- 1 u g 1 Jun  1 10:00 {}",
            "x ".repeat(512 * 1024)
        );
        assert!(parse_list_line(&long, NOW).is_ok());
        assert!(parse_list_line(&"1".repeat(1024 * 1024), NOW).is_err());
        assert!(parse_mlsd_line(&"a=b;".repeat(256 * 1024)).is_err());
    }

    #[test]
    fn never_panics_on_prefixes_of_samples() {
        let samples = [
            "-rw-r--r--    1 1001     1001         5120 Mar 10 14:22 report.pdf",
            "02-14-23  03:04PM       <DIR>          Program Files",
            "lrwxrwxrwx   1 root root   11 May 30 10:00 latest -> releases/v2",
            "-rw-r--r-- 1 user group 7 2023-12-31 23:59 iso.txt",
            "type=file;size=5;modify=20240102030405.5; é.txt",
        ];
        for s in samples {
            for (i, _) in s.char_indices() {
                let _ = parse_list_line(&s[..i], NOW);
                let _ = parse_mlsd_line(&s[..i]);
            }
        }
    }
}
