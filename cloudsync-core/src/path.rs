//! [`RemotePath`]: a validated path relative to a remote's root.
//!
//! Every path the engine hands to a backend, and every name a backend reads from a server, goes
//! through [`RemotePath::new`] or [`RemotePath::join`]. A hostile server therefore cannot make the
//! engine read or write outside the root: `..`, absolute paths, empty segments and NUL bytes are
//! rejected before they are used.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::{Error, ErrorKind, Result};

/// A relative, `/`-separated path below a remote's root.
///
/// The root itself is the empty path. No segment is empty, `.` or `..`, and no byte is NUL; the
/// only way to build one is through a constructor that checks this.
///
/// ```
/// use cloudsync_core::RemotePath;
///
/// let p = RemotePath::new("photos/2024/cat.jpg")?;
/// assert_eq!(p.name(), "cat.jpg");
/// assert_eq!(p.parent().unwrap().as_str(), "photos/2024");
/// assert!(RemotePath::new("../etc/passwd").is_err());
/// assert!(RemotePath::new("/etc/passwd").is_err());
/// # Ok::<(), cloudsync_core::Error>(())
/// ```
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct RemotePath(String);

/// Why a string is not a valid [`RemotePath`] or path segment.
fn segment_problem(segment: &str) -> Option<&'static str> {
    match segment {
        "" => Some("empty path segment"),
        "." => Some("`.` segment"),
        ".." => Some("`..` segment"),
        s if s.contains('\0') => Some("NUL byte"),
        _ => None,
    }
}

fn invalid(path: &str, why: &str) -> Error {
    Error::new(
        ErrorKind::InvalidInput,
        format!("invalid path {path:?}: {why}"),
    )
}

impl RemotePath {
    /// The root of a remote (the empty path).
    pub fn root() -> Self {
        RemotePath(String::new())
    }

    /// Validates `path` and builds a `RemotePath` from it.
    ///
    /// The empty string is the root. A single trailing `/` is tolerated (directory listings
    /// often end that way); a leading `/`, `//`, `.`/`..` segments and NUL bytes are errors of
    /// kind [`ErrorKind::InvalidInput`].
    pub fn new(path: &str) -> Result<Self> {
        if path.is_empty() {
            return Ok(Self::root());
        }
        if path.starts_with('/') {
            return Err(invalid(path, "absolute path"));
        }
        let trimmed = path.strip_suffix('/').unwrap_or(path);
        for segment in trimmed.split('/') {
            if let Some(why) = segment_problem(segment) {
                return Err(invalid(path, why));
            }
        }
        Ok(RemotePath(trimmed.to_owned()))
    }

    /// Appends one name (a single segment, no `/`) to this path.
    ///
    /// This is the constructor for names read from a server listing.
    ///
    /// ```
    /// use cloudsync_core::RemotePath;
    /// let dir = RemotePath::new("a")?;
    /// assert_eq!(dir.join("b c.txt")?.as_str(), "a/b c.txt");
    /// assert!(dir.join("..").is_err());
    /// assert!(dir.join("x/y").is_err());
    /// # Ok::<(), cloudsync_core::Error>(())
    /// ```
    pub fn join(&self, name: &str) -> Result<Self> {
        if name.contains('/') {
            return Err(invalid(name, "a name may not contain `/`"));
        }
        if let Some(why) = segment_problem(name) {
            return Err(invalid(name, why));
        }
        Ok(self.join_unchecked(name))
    }

    /// Appends a relative path of one or more segments (validated).
    pub fn join_path(&self, rel: &RemotePath) -> Self {
        if rel.is_root() {
            return self.clone();
        }
        self.join_unchecked(&rel.0)
    }

    fn join_unchecked(&self, rel: &str) -> Self {
        if self.0.is_empty() {
            RemotePath(rel.to_owned())
        } else {
            let mut s = String::with_capacity(self.0.len() + 1 + rel.len());
            s.push_str(&self.0);
            s.push('/');
            s.push_str(rel);
            RemotePath(s)
        }
    }

    /// The path as a `/`-separated string; `""` for the root.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether this is the root.
    pub fn is_root(&self) -> bool {
        self.0.is_empty()
    }

    /// The last segment (`""` for the root).
    pub fn name(&self) -> &str {
        self.0.rsplit('/').next().unwrap_or("")
    }

    /// The parent directory, or `None` for the root.
    pub fn parent(&self) -> Option<RemotePath> {
        if self.is_root() {
            return None;
        }
        Some(match self.0.rfind('/') {
            Some(i) => RemotePath(self.0[..i].to_owned()),
            None => RemotePath::root(),
        })
    }

    /// Whether this path is a direct child of `dir` (what a listing of `dir` may return).
    ///
    /// ```
    /// use cloudsync_core::RemotePath;
    /// let p = RemotePath::new("a/b")?;
    /// assert!(p.is_child_of(&RemotePath::new("a")?));
    /// assert!(!p.is_child_of(&RemotePath::root()));
    /// # Ok::<(), cloudsync_core::Error>(())
    /// ```
    pub fn is_child_of(&self, dir: &RemotePath) -> bool {
        let rest = if dir.is_root() {
            Some(self.0.as_str())
        } else {
            self.0
                .strip_prefix(dir.0.as_str())
                .and_then(|r| r.strip_prefix('/'))
        };
        rest.is_some_and(|n| !n.is_empty() && !n.contains('/'))
    }

    /// The segments from the root down.
    pub fn segments(&self) -> impl Iterator<Item = &str> {
        self.0.split('/').filter(|s| !s.is_empty())
    }

    /// Number of segments (0 for the root).
    pub fn depth(&self) -> usize {
        if self.is_root() {
            0
        } else {
            self.0.bytes().filter(|b| *b == b'/').count() + 1
        }
    }

    /// Whether `self` is `base` or lies below it (segment-wise, so `ab` is not below `a`).
    pub fn starts_with(&self, base: &RemotePath) -> bool {
        base.is_root()
            || self.0 == base.0
            || (self.0.starts_with(&base.0) && self.0.as_bytes().get(base.0.len()) == Some(&b'/'))
    }

    /// The part of `self` below `base`, or `None` when `self` is not below `base`.
    pub fn strip_prefix(&self, base: &RemotePath) -> Option<RemotePath> {
        if !self.starts_with(base) {
            return None;
        }
        if base.is_root() {
            return Some(self.clone());
        }
        Some(RemotePath(
            self.0.get(base.0.len() + 1..).unwrap_or("").to_owned(),
        ))
    }
}

impl fmt::Display for RemotePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for RemotePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl AsRef<str> for RemotePath {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl TryFrom<&str> for RemotePath {
    type Error = Error;
    fn try_from(s: &str) -> Result<Self> {
        RemotePath::new(s)
    }
}

impl std::str::FromStr for RemotePath {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        RemotePath::new(s)
    }
}

impl Serialize for RemotePath {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for RemotePath {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        RemotePath::new(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn accepts_ordinary_paths() {
        for p in [
            "a",
            "a/b",
            "a b/c#?%&+.txt",
            "ü/日本",
            ".hidden",
            "a/...",
            "a/",
        ] {
            assert!(RemotePath::new(p).is_ok(), "{p}");
        }
        assert_eq!(RemotePath::new("a/").unwrap().as_str(), "a");
    }

    #[test]
    fn rejects_hostile_paths() {
        for p in [
            "/", "/a", "a//b", "./a", "a/.", "..", "a/../b", "a/..", "a\0b", "//", "a//",
        ] {
            let e = RemotePath::new(p).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::InvalidInput, "{p}");
        }
    }

    #[test]
    fn parent_name_prefix() {
        let p = RemotePath::new("a/b/c").unwrap();
        assert_eq!(p.name(), "c");
        assert_eq!(p.depth(), 3);
        assert_eq!(p.parent().unwrap().parent().unwrap().as_str(), "a");
        assert!(RemotePath::new("a").unwrap().parent().unwrap().is_root());
        assert!(p.starts_with(&RemotePath::new("a/b").unwrap()));
        assert!(
            !RemotePath::new("ab")
                .unwrap()
                .starts_with(&RemotePath::new("a").unwrap())
        );
        assert_eq!(
            p.strip_prefix(&RemotePath::new("a").unwrap())
                .unwrap()
                .as_str(),
            "b/c"
        );
    }

    fn hostile_segment() -> impl Strategy<Value = String> {
        prop_oneof![
            Just(String::new()),
            Just(".".to_owned()),
            Just("..".to_owned()),
            "[a-z]{0,3}\0[a-z]{0,3}",
        ]
    }

    proptest! {
        #[test]
        fn any_hostile_segment_is_rejected(
            pre in proptest::collection::vec("[a-zA-Z0-9 ._-]{1,5}", 0..3),
            bad in hostile_segment(),
            post in proptest::collection::vec("[a-zA-Z0-9 ._-]{1,5}", 0..3),
        ) {
            let mut segs = pre.clone();
            segs.push(bad);
            segs.extend(post.clone());
            let s = segs.join("/");
            // The empty string is the root; a lone trailing empty segment is the tolerated
            // `dir/` form.
            prop_assume!(!s.is_empty());
            prop_assume!(!s.ends_with('/') || s[..s.len()-1].split('/').any(|x| segment_problem(x).is_some()));
            prop_assert!(RemotePath::new(&s).is_err(), "{:?}", s);
            let abs = format!("/{}", s);
            prop_assert!(RemotePath::new(&abs).is_err());
        }

        #[test]
        fn valid_paths_round_trip(segs in proptest::collection::vec("[^/\0]{1,8}", 1..5)) {
            prop_assume!(segs.iter().all(|s| s != "." && s != ".."));
            let s = segs.join("/");
            let p = RemotePath::new(&s).unwrap();
            prop_assert_eq!(p.as_str(), s.as_str());
            prop_assert_eq!(p.depth(), segs.len());
            let rebuilt = segs.iter().try_fold(RemotePath::root(), |acc, s| acc.join(s)).unwrap();
            prop_assert_eq!(rebuilt, p);
        }

        #[test]
        fn arbitrary_strings_never_escape(s in "\\PC{0,24}") {
            if let Ok(p) = RemotePath::new(&s) {
                prop_assert!(!p.as_str().starts_with('/'));
                prop_assert!(p.segments().all(|x| segment_problem(x).is_none()));
            }
        }
    }
}
