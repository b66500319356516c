//! Hidden temporary names for atomic uploads, and recognising the ones a crash left behind.
//!
//! Backends that make a write atomic by uploading to a temporary name and renaming it over the
//! target all use these names, so a leftover from a crash is recognisable whatever wrote it:
//! `.cloudsync-tmp-<8 hex: creation time, Unix seconds><8 hex: random>.<name>`. The engine
//! never pairs such a name with anything; a sync removes the ones in the destination folders
//! it lists once they are older than [`SyncOptions::leftover_age`](crate::ops::SyncOptions).
//! A user's file that merely starts with the prefix (`.cloudsync-tmp-notes.txt`) does not have
//! this shape and is an ordinary file.
//!
//! Resumable transfers keep the bytes of an unfinished transfer under a *deterministic* name in
//! the target directory, [`part_name`]: `.cloudsync-part-<16 hex: key>.<name>`, where the key
//! ([`part_key`]) is derived from the source's fingerprint (size, modtime, a hash when listed)
//! and the destination path, so the next attempt finds them and a changed source does not.
//! [`is_temp_name`] recognises both shapes, so partial files are never paired or listed as user
//! files either; having no creation stamp, they count as leftovers by their modtime.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The prefix of every temporary upload name.
pub const TEMP_PREFIX: &str = ".cloudsync-tmp-";

/// The prefix of every partial file of a resumable transfer (see [`part_name`]).
pub const PART_PREFIX: &str = ".cloudsync-part-";

/// Hex digits after the prefix: creation time (8) and random (8); for a partial file, its key.
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
    let out = format!("{TEMP_PREFIX}{secs:08x}{:08x}.", fastrand::u32(..));
    with_name(out, name, max_len)
}

/// `head` followed by `name`, shortened on a character boundary to fit `max_len` bytes.
fn with_name(mut head: String, name: &str, max_len: usize) -> String {
    let mut cut = name.len().min(max_len.saturating_sub(head.len()));
    while !name.is_char_boundary(cut) {
        cut -= 1;
    }
    head.push_str(&name[..cut]);
    head
}

/// The key of a resumable transfer (16 hex digits): a digest of the destination path and the
/// source's fingerprint: its size, its modtime (to the second) and the hashes it listed. The same source going to the same place gets
/// the same key in every run; a source that changed in any of these gets another one, so its
/// old partial data is never resumed.
///
/// ```
/// use cloudsync_core::{Entry, RemotePath, part_key};
/// let src = Entry::file(RemotePath::new("a.bin")?, 10);
/// let to = RemotePath::new("b/a.bin")?;
/// assert_eq!(part_key(&src, &to), part_key(&src, &to));
/// let grown = Entry::file(RemotePath::new("a.bin")?, 11);
/// assert_ne!(part_key(&src, &to), part_key(&grown, &to));
/// # Ok::<(), cloudsync_core::Error>(())
/// ```
pub fn part_key(src: &crate::entry::Entry, to: &crate::path::RemotePath) -> String {
    use sha2::Digest;
    let mut h = sha2::Sha256::new();
    h.update(b"cloudsync-part-v1\0");
    h.update(to.as_str().as_bytes());
    h.update(b"\0");
    h.update(src.size.to_le_bytes());
    if let Some(t) = src.modtime {
        h.update(t.unix_timestamp().to_le_bytes());
    }
    for (kind, value) in src.hashes.iter() {
        h.update(kind.as_str().as_bytes());
        h.update(b"=");
        h.update(value.to_ascii_lowercase().as_bytes());
        h.update(b"\0");
    }
    let digest = h.finalize();
    digest[..8].iter().map(|b| format!("{b:02x}")).collect()
}

/// The partial file of a resumable transfer of `name` with the key `key` (see [`part_key`]), in
/// the same directory: `.cloudsync-part-<key>.<name>`, with `name` shortened (on a character
/// boundary) so the whole fits in `max_len` bytes.
///
/// ```
/// use cloudsync_core::{is_temp_name, part_name};
/// let p = part_name("0123456789abcdef", "video.mkv", 255);
/// assert_eq!(p, ".cloudsync-part-0123456789abcdef.video.mkv");
/// assert!(is_temp_name(&p));
/// ```
pub fn part_name(key: &str, name: &str, max_len: usize) -> String {
    with_name(format!("{PART_PREFIX}{key}."), name, max_len)
}

/// Whether `name` is a partial file ([`part_name`]) of the file `target` (with any key); its
/// key when it is.
pub fn part_of<'a>(name: &'a str, target: &str, max_len: usize) -> Option<&'a str> {
    if !has_stamp(name.as_bytes(), PART_PREFIX) {
        return None;
    }
    let key = &name[PART_PREFIX.len()..PART_PREFIX.len() + STAMP];
    (part_name(key, target, max_len) == name).then_some(key)
}

/// Whether `name` (one path segment) is a temporary upload name or the partial file of a
/// resumable transfer ([`part_name`]), which the engine never pairs with a source or
/// destination file.
///
/// ```
/// use cloudsync_core::is_temp_name;
/// assert!(is_temp_name(".cloudsync-tmp-65a1b2c3deadbeef.photo.jpg"));
/// assert!(is_temp_name(".cloudsync-part-65a1b2c3deadbeef.photo.jpg"));
/// assert!(!is_temp_name(".cloudsync-tmp-notes.txt"), "a user's file");
/// assert!(!is_temp_name(".cloudsync-part-notes.txt"), "a user's file");
/// ```
pub fn is_temp_name(name: &str) -> bool {
    is_temp_bytes(name.as_bytes())
}

/// [`is_temp_name`] for a name that may not be UTF-8 (a local directory entry).
pub fn is_temp_bytes(name: &[u8]) -> bool {
    has_stamp(name, TEMP_PREFIX) || has_stamp(name, PART_PREFIX)
}

/// Whether `name` is `prefix`, 16 hex digits, a dot and at least one more byte.
fn has_stamp(name: &[u8], prefix: &str) -> bool {
    let Some(rest) = name.strip_prefix(prefix.as_bytes()) else {
        return false;
    };
    rest.len() > STAMP && rest[..STAMP].iter().all(u8::is_ascii_hexdigit) && rest[STAMP] == b'.'
}

/// How long ago a temporary name was made, when its stamp tells (`None` for a stamp in the
/// future, e.g. written by a machine whose clock was ahead, and for a partial file, whose age
/// is its modtime's).
pub fn temp_age(name: &str, now: SystemTime) -> Option<Duration> {
    if !has_stamp(name.as_bytes(), TEMP_PREFIX) {
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
    fn part_names_are_deterministic_recognised_and_bounded() {
        use crate::entry::Entry;
        use crate::hash::{HashKind, Hashes};
        use crate::path::RemotePath;
        let to = RemotePath::new("d/video.mkv").unwrap();
        let t = time::OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap();
        let src = Entry::file(RemotePath::new("video.mkv").unwrap(), 1 << 30).with_modtime(Some(t));
        let key = part_key(&src, &to);
        assert_eq!(key.len(), 16);
        assert!(key.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_eq!(key, part_key(&src.clone(), &to), "deterministic");
        // Every part of the fingerprint, and the destination, changes the key.
        let later = src
            .clone()
            .with_modtime(Some(t + time::Duration::seconds(1)));
        let hashed = src
            .clone()
            .with_hashes(Hashes::default().with(HashKind::Md5, "00112233445566778899aabbccddeeff"));
        let elsewhere = RemotePath::new("e/video.mkv").unwrap();
        for other in [
            part_key(&Entry::file(src.path.clone(), 1).with_modtime(Some(t)), &to),
            part_key(&later, &to),
            part_key(&hashed, &to),
            part_key(&src, &elsewhere),
        ] {
            assert_ne!(other, key);
        }

        let name = part_name(&key, "video.mkv", 255);
        assert!(
            is_temp_name(&name) && name.ends_with(".video.mkv"),
            "{name}"
        );
        assert_eq!(part_of(&name, "video.mkv", 255), Some(key.as_str()));
        assert_eq!(part_of(&name, "other.mkv", 255), None);
        assert_eq!(part_of("video.mkv", "video.mkv", 255), None);
        assert_eq!(
            temp_age(&name, SystemTime::now()),
            None,
            "aged by its modtime"
        );
        let long = "é".repeat(200);
        let n = part_name(&key, &long, 255);
        assert!(n.len() <= 255 && is_temp_name(&n));
        assert_eq!(part_of(&n, &long, 255), Some(key.as_str()));
        assert!(!is_temp_name(".cloudsync-part-notes.txt"));
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
