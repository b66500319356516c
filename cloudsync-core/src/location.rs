//! [`Location`]: where a remote's root really is, so that "same place" and "one inside the
//! other" are judged on canonical identities (a resolved local path; the host, port and root
//! of a server) and never on description strings, which `b/../a`, a symlink or a second
//! spelling of a host would fool.

use std::path::{Component, Path, PathBuf};

use crate::path::RemotePath;

/// The canonical identity of a remote's root directory.
///
/// Two locations are comparable when they are in the same *space* (one local filesystem, one
/// server, one cloud account); within a space the root is a normalised list of path segments.
///
/// ```
/// use cloudsync_core::Location;
/// let a = Location::network("sftp", "Example.org", Some(22), "/data/a");
/// let inside = Location::network("sftp", "example.org", Some(22), "/data/a/../a/sub");
/// assert!(a.contains(&inside));
/// assert!(a.overlaps(&inside));
/// assert!(!a.overlaps(&Location::network("sftp", "example.org", Some(2222), "/data/a")));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Location {
    space: String,
    segments: Vec<String>,
}

impl Location {
    /// A location in `space` (any string naming one namespace: `"local"`,
    /// `"sftp://host:22"`, `"dropbox:account"`) at the `/`-separated `path`, normalised
    /// lexically: empty and `.` segments are dropped, `..` removes the segment before it.
    pub fn new(space: impl Into<String>, path: &str) -> Self {
        let mut segments: Vec<String> = Vec::new();
        for seg in path.split('/') {
            match seg {
                "" | "." => {}
                ".." => {
                    segments.pop();
                }
                s => segments.push(s.to_owned()),
            }
        }
        Location {
            space: space.into(),
            segments,
        }
    }

    /// The location of a server's directory: the space is `scheme://host:port` with the host
    /// in lower case (the user is left out on purpose: two accounts may see one directory, and
    /// refusing a false overlap is safer than missing a true one).
    pub fn network(scheme: &str, host: &str, port: Option<u16>, root: &str) -> Self {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        let space = match port {
            Some(p) => format!("{}://{host}:{p}", scheme.to_ascii_lowercase()),
            None => format!("{}://{host}", scheme.to_ascii_lowercase()),
        };
        Location::new(space, root)
    }

    /// The location of a local directory: symlinks and `..` resolved for the longest part of
    /// `path` that exists, the rest (a directory still to be created) normalised lexically.
    pub fn local(path: &Path) -> Self {
        let absolute = if path.is_absolute() {
            path.to_path_buf()
        } else {
            std::env::current_dir()
                .map(|d| d.join(path))
                .unwrap_or_else(|_| path.to_path_buf())
        };
        let resolved = resolve_existing(&absolute);
        let text = resolved.to_string_lossy().replace('\\', "/");
        Location::new("local", &text)
    }

    /// This location's sub-directory `rel`.
    pub fn join(&self, rel: &RemotePath) -> Self {
        let mut out = self.clone();
        out.segments.extend(
            rel.as_str()
                .split('/')
                .filter(|s| !s.is_empty())
                .map(str::to_owned),
        );
        out
    }

    /// Whether `other` is this location or lies below it.
    pub fn contains(&self, other: &Location) -> bool {
        self.space == other.space && other.segments.starts_with(&self.segments)
    }

    /// Where `other` lies below this location, as a path relative to it (the root when they
    /// are equal); `None` when `other` is not inside.
    pub(crate) fn relative(&self, other: &Location) -> Option<RemotePath> {
        if !self.contains(other) {
            return None;
        }
        RemotePath::new(&other.segments[self.segments.len()..].join("/")).ok()
    }

    /// Whether one of the two contains the other (syncing between them would read what it
    /// writes, or delete what it reads).
    pub fn overlaps(&self, other: &Location) -> bool {
        self.contains(other) || other.contains(self)
    }
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.space, self.segments.join("/"))
    }
}

/// Canonicalises the longest existing ancestor of `path` and appends the rest lexically.
fn resolve_existing(path: &Path) -> PathBuf {
    let mut rest: Vec<Component<'_>> = Vec::new();
    let mut cur = Some(path);
    while let Some(p) = cur {
        if let Ok(real) = std::fs::canonicalize(p) {
            let mut out = real;
            for c in rest.iter().rev() {
                match c {
                    Component::ParentDir => {
                        out.pop();
                    }
                    Component::Normal(s) => out.push(s),
                    _ => {}
                }
            }
            return out;
        }
        if let Some(last) = p.components().next_back() {
            rest.push(last);
        }
        cur = p.parent();
    }
    path.to_path_buf()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lexical_normalisation() {
        let a = Location::new("x", "/data/a");
        assert_eq!(a, Location::new("x", "data/b/../a/"));
        assert_eq!(a, Location::new("x", "./data//a/."));
        assert!(!a.contains(&Location::new("x", "/data/ab")));
        assert!(a.contains(&Location::new("x", "/data/a/b")));
        assert!(!a.contains(&Location::new("y", "/data/a/b")));
        let rel = a.relative(&Location::new("x", "data/a/b/../c/d"));
        assert_eq!(rel.as_ref().map(RemotePath::as_str), Some("c/d"));
        assert_eq!(a.relative(&a), Some(RemotePath::root()));
        assert_eq!(a.relative(&Location::new("x", "/data")), None);
    }

    #[test]
    fn local_resolves_symlinks_and_dotdot() {
        let tmp = tempfile::tempdir().unwrap();
        let a = tmp.path().join("a");
        std::fs::create_dir(&a).unwrap();
        std::fs::create_dir(tmp.path().join("b")).unwrap();
        let via_dotdot = tmp.path().join("b/../a");
        assert_eq!(Location::local(&a), Location::local(&via_dotdot));
        #[cfg(unix)]
        {
            let link = tmp.path().join("link-to-a");
            std::os::unix::fs::symlink(&a, &link).unwrap();
            assert_eq!(Location::local(&a), Location::local(&link));
            // A directory still to be created below the link is inside a.
            assert!(Location::local(&a).contains(&Location::local(&link.join("new/x"))));
        }
        // Missing parts are normalised lexically.
        assert_eq!(
            Location::local(&tmp.path().join("nope/../a")),
            Location::local(&a)
        );
    }

    #[test]
    fn network_ignores_host_case_and_user() {
        let a = Location::network("SFTP", "Host.", Some(22), "/srv");
        let b = Location::network("sftp", "host", Some(22), "srv/x");
        assert!(a.contains(&b));
        assert!(!a.overlaps(&Location::network("sftp", "host", None, "/srv")));
    }
}
