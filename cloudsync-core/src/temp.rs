//! Hidden temporary names for atomic uploads.
//!
//! Backends that make a write atomic by uploading to a temporary name and renaming it over the
//! target all use these names, so every backend hides the same files from listings and a
//! leftover from a crash is recognisable whatever wrote it.

/// The prefix of every temporary upload name.
pub const TEMP_PREFIX: &str = ".cloudsync-tmp-";

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
    let mut out = format!("{TEMP_PREFIX}{:016x}.", fastrand::u64(..));
    let mut cut = name.len().min(max_len.saturating_sub(out.len()));
    while !name.is_char_boundary(cut) {
        cut -= 1;
    }
    out.push_str(&name[..cut]);
    out
}

/// Whether `name` (one path segment) is a temporary upload name, which listings hide.
pub fn is_temp_name(name: &str) -> bool {
    name.starts_with(TEMP_PREFIX)
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
    }
}
