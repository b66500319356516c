//! Hidden temporary names for atomic uploads, and recognising the ones a crash left behind.
//!
//! Backends that make a write atomic by uploading to a temporary name and renaming it over the
//! target all use these names, so a leftover from a crash is recognisable whatever wrote it:
//! `.cloudsync-tmp-<8 hex: creation time, Unix seconds><8 hex: random>.<name>`. The engine
//! never pairs such a name with anything; a sync removes the ones in the destination folders
//! it lists once they are older than [`SyncOptions::leftover_age`](crate::ops::SyncOptions).
//! A user's file that merely starts with the prefix (`.cloudsync-tmp-notes.txt`) does not have
//! this shape and is an ordinary file.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The prefix of every temporary upload name.
pub const TEMP_PREFIX: &str = ".cloudsync-tmp-";

/// Hex digits after the prefix: creation time (8) and random (8).
const STAMP: usize = 16;

/// A fresh temporary name for an upload of `name`, in the same directory:
/// `.cloudsync-tmp-<16 hex digits>.<name>`, with `name` shortened (on a character boundary) so
/// the whole fits in `max_len` bytes.
///
/// ```
/// use cloudsync_core::{is_temp_name, temp_name};
/// let t = temp_name("report.pdf", 255);
/// assert!(is_temp_name(&t) && t.ends_with(".report.pdf"));
/// assert!(temp_name(&"x".repeat(300), 255).len() <= 255);
/// ```
pub fn temp_name(name: &str, max_len: usize) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let secs = u32::try_from(now).unwrap_or(u32::MAX);
    let mut out = format!("{TEMP_PREFIX}{secs:08x}{:08x}.", fastrand::u32(..));
    let mut cut = name.len().min(max_len.saturating_sub(out.len()));
    while !name.is_char_boundary(cut) {
        cut -= 1;
    }
    out.push_str(&name[..cut]);
    out
}

/// Whether `name` (one path segment) is a temporary upload name, which the engine never pairs
/// with a source or destination file.
///
/// ```
/// use cloudsync_core::is_temp_name;
/// assert!(is_temp_name(".cloudsync-tmp-65a1b2c3deadbeef.photo.jpg"));
/// assert!(!is_temp_name(".cloudsync-tmp-notes.txt"), "a user's file");
/// ```
pub fn is_temp_name(name: &str) -> bool {
    is_temp_bytes(name.as_bytes())
}

/// [`is_temp_name`] for a name that may not be UTF-8 (a local directory entry).
pub fn is_temp_bytes(name: &[u8]) -> bool {
    let Some(rest) = name.strip_prefix(TEMP_PREFIX.as_bytes()) else {
        return false;
    };
    rest.len() > STAMP && rest[..STAMP].iter().all(u8::is_ascii_hexdigit) && rest[STAMP] == b'.'
}

/// How long ago a temporary name was made, when its stamp tells (`None` for a stamp in the
/// future, e.g. written by a machine whose clock was ahead).
pub fn temp_age(name: &str, now: SystemTime) -> Option<Duration> {
    if !is_temp_name(name) {
        return None;
    }
    let stamp = name.get(TEMP_PREFIX.len()..TEMP_PREFIX.len() + 8)?;
    let secs = u64::from_str_radix(stamp, 16).ok()?;
    now.duration_since(UNIX_EPOCH + Duration::from_secs(secs))
        .ok()
}

/// A short random identifier (12 hex digits): report and lock ids, temporary file suffixes.
pub(crate) fn random_id() -> String {
    format!("{:012x}", fastrand::u64(..) & 0xffff_ffff_ffff)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_hidden_and_bounded() {
        let a = temp_name("ü.txt", 255);
        let b = temp_name("ü.txt", 255);
        assert_ne!(a, b);
        assert!(is_temp_name(&a) && a.ends_with(".ü.txt"));
        // Cut on a character boundary.
        let long = "é".repeat(200);
        let t = temp_name(&long, 255);
        assert!(t.len() <= 255 && t.is_char_boundary(t.len()));
        assert!(!is_temp_name("cloudsync-tmp-x"));
        assert!(
            !is_temp_name(".cloudsync-tmp-0123456789abcdef"),
            "no name after it"
        );
        assert!(!is_temp_name(".cloudsync-tmp-0123456789abcdeg.x"));
    }

    #[test]
    fn the_age_comes_from_the_name() {
        let t = temp_name("a", 255);
        let later = SystemTime::now() + Duration::from_secs(3600);
        let age = temp_age(&t, later).unwrap();
        assert!(age >= Duration::from_secs(3599) && age <= Duration::from_secs(3601));
        let future = ".cloudsync-tmp-ffffffff00000000.a";
        assert_eq!(temp_age(future, SystemTime::now()), None);
        assert_eq!(temp_age("plain", SystemTime::now()), None);
    }
}
