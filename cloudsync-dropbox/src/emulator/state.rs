//! The emulated Dropbox: files and folders keyed by lowercased path (display case preserved),
//! upload sessions, listing cursors and tokens. Operations return the service's answers, or
//! its error unions as JSON values.

use std::collections::{BTreeMap, HashMap};
use std::ops::Bound;
use std::time::Instant;

use bytes::Bytes;
use cloudsync_core::{HashKind, MultiHasher};
use serde_json::{Value, json};
use time::OffsetDateTime;

/// `{".tag": a, a: {".tag": b, ...}}` for the tag chain `[a, b, ...]`.
pub(crate) fn union(tags: &[&str]) -> Value {
    match tags.split_first() {
        None => Value::Null,
        Some((first, [])) => json!({ ".tag": first }),
        Some((first, rest)) => {
            let mut m = serde_json::Map::new();
            m.insert(".tag".into(), Value::String((*first).to_owned()));
            m.insert((*first).to_owned(), union(rest));
            Value::Object(m)
        }
    }
}

/// Wraps an inner error union as member `tag` of an outer union.
pub(crate) fn wrap(tag: &str, inner: Value) -> Value {
    let mut m = serde_json::Map::new();
    m.insert(".tag".into(), Value::String(tag.to_owned()));
    m.insert(tag.to_owned(), inner);
    Value::Object(m)
}

/// The Dropbox content hash of `data`.
pub(crate) fn content_hash(data: &[u8]) -> String {
    let mut h = MultiHasher::new(&[HashKind::Dropbox]);
    h.update(data);
    h.finish()
        .get(HashKind::Dropbox)
        .unwrap_or_default()
        .to_owned()
}

fn now_string() -> String {
    let t = OffsetDateTime::now_utc();
    format_time(t)
}

fn format_time(t: OffsetDateTime) -> String {
    let fmt = time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z");
    t.format(&fmt).unwrap_or_default()
}

/// A file or folder.
#[derive(Debug, Clone)]
pub(crate) struct Node {
    /// Full path with the case it was created with (`/Photos/A.jpg`).
    pub(crate) display: String,
    pub(crate) folder: bool,
    pub(crate) data: Bytes,
    pub(crate) client_modified: String,
    pub(crate) server_modified: String,
    pub(crate) rev: String,
    pub(crate) id: String,
    pub(crate) hash: String,
    /// `false` for a file that cannot be downloaded, only exported (a Paper doc, a cloud doc).
    pub(crate) downloadable: bool,
}

impl Node {
    fn name(&self) -> &str {
        self.display.rsplit('/').next().unwrap_or("")
    }

    /// The metadata the service returns for this node.
    pub(crate) fn meta(&self) -> Value {
        let lower = self.display.to_lowercase();
        if self.folder {
            json!({
                ".tag": "folder",
                "name": self.name(),
                "path_lower": lower,
                "path_display": self.display,
                "id": self.id,
            })
        } else {
            let mut m = json!({
                ".tag": "file",
                "name": self.name(),
                "path_lower": lower,
                "path_display": self.display,
                "id": self.id,
                "client_modified": self.client_modified,
                "server_modified": self.server_modified,
                "rev": self.rev,
                "size": self.data.len(),
                "is_downloadable": self.downloadable,
                "content_hash": self.hash,
            });
            if !self.downloadable {
                // files.stone, FileMetadata.export_info: "This filed must be set if
                // is_downloadable is set to false."
                m["export_info"] = json!({ "export_as": "html" });
            }
            m
        }
    }
}

/// An upload session.
#[derive(Debug)]
pub(crate) struct Session {
    pub(crate) data: Vec<u8>,
    pub(crate) closed: bool,
    /// When `upload_session/start` opened it.
    pub(crate) created: Instant,
    /// Aged past its lifetime by [`Emulator::expire_sessions`](super::Emulator::expire_sessions).
    pub(crate) expired: bool,
}

/// Where a listing continues.
#[derive(Debug, Clone)]
pub(crate) struct Cursor {
    /// Lowercased folder path (`""` for the root).
    pub(crate) dir: String,
    pub(crate) recursive: bool,
    pub(crate) limit: usize,
    /// The last key returned.
    pub(crate) after: Option<String>,
    /// Pages handed out so far for this listing.
    pub(crate) page: u64,
    /// The recursive listing's own folder is still to be sent.
    pub(crate) self_pending: bool,
    /// [`State::cursor_epoch`] when the cursor was issued; an older one answers `reset`.
    pub(crate) epoch: u64,
    /// `include_non_downloadable_files` of the listing.
    pub(crate) non_downloadable: bool,
}

/// How an upload treats an existing file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum WriteMode {
    Add,
    Overwrite,
    Update(String),
}

/// Whether an access token is usable.
pub(crate) enum TokenState {
    Valid,
    Expired,
    Unknown,
}

/// Everything the emulated service holds.
#[derive(Debug, Default)]
pub(crate) struct State {
    pub(crate) nodes: BTreeMap<String, Node>,
    pub(crate) sessions: HashMap<String, Session>,
    pub(crate) cursors: HashMap<String, Cursor>,
    pub(crate) tokens: HashMap<String, Instant>,
    pub(crate) codes: HashMap<String, String>,
    /// Bytes the account may hold (`None`: unlimited).
    pub(crate) quota: Option<u64>,
    /// Raised by [`Emulator::invalidate_cursors`](super::Emulator::invalidate_cursors).
    pub(crate) cursor_epoch: u64,
    counter: u64,
}

/// Names the Dropbox desktop client ignores and the service will not store, compared without
/// case: <https://www.dropbox.com/help/145> ("Ignored files"), as rclone's Dropbox backend
/// lists them (`desktop.ini`, `thumbs.db`, `.ds_store`, `icon\r`, `.dropbox`,
/// `.dropbox.attr`), and the desktop client's own cache folder `.dropbox.cache`.
pub(crate) const IGNORED_NAMES: &[&str] = &[
    "desktop.ini",
    "thumbs.db",
    ".ds_store",
    "icon\r",
    ".dropbox",
    ".dropbox.attr",
    ".dropbox.cache",
];

/// Why the service refuses to store something at `path`, as a WriteError union: a segment
/// with a character Dropbox never allows or a trailing space is `malformed_path`, an ignored
/// file name is `disallowed_name`.
pub(crate) fn name_refusal(path: &str) -> Option<Value> {
    for seg in path.split('/').filter(|s| !s.is_empty()) {
        // help.dropbox.com/organize/file-names: "Always disallowed: / (forward slash),
        // \ (backslash)" and "Don't add a space at the end of a file or folder name";
        // rclone's Dropbox docs: "Testing revealed names with trailing spaces and the DEL
        // character don't work."
        if seg.contains('\\') || seg.contains('\u{7f}') || seg.ends_with(' ') {
            return Some(union(&["malformed_path"]));
        }
        // files.stone, WriteError.disallowed_name: "Dropbox will not save the file or folder
        // because of its name."
        let lower = seg.to_lowercase();
        if IGNORED_NAMES.contains(&lower.as_str()) {
            return Some(union(&["disallowed_name"]));
        }
    }
    None
}

/// Parent paths of `p` (`/a/b/c` gives `/a`, `/a/b`).
fn ancestors(p: &str) -> Vec<&str> {
    p.match_indices('/')
        .map(|(i, _)| &p[..i])
        .filter(|a| !a.is_empty())
        .collect()
}

impl State {
    pub(crate) fn next_id(&mut self) -> u64 {
        self.counter += 1;
        self.counter
    }

    fn new_rev(&mut self) -> String {
        format!("{:015x}", 0x5a0_0000_0000 + self.next_id())
    }

    fn new_id(&mut self) -> String {
        format!("id:emu{:012}", self.next_id())
    }

    /// A new random-looking opaque string.
    pub(crate) fn opaque(&mut self, prefix: &str) -> String {
        format!("{prefix}{:016x}{:08x}", fastrand::u64(..), self.next_id())
    }

    pub(crate) fn issue_token(&mut self, lifetime: std::time::Duration) -> String {
        let t = self.opaque("sl.emu-");
        self.tokens.insert(t.clone(), Instant::now() + lifetime);
        t
    }

    pub(crate) fn token_state(&self, t: &str) -> TokenState {
        match self.tokens.get(t) {
            Some(exp) if Instant::now() < *exp => TokenState::Valid,
            Some(_) => TokenState::Expired,
            None => TokenState::Unknown,
        }
    }

    pub(crate) fn expire_tokens(&mut self) {
        let now = Instant::now();
        for exp in self.tokens.values_mut() {
            *exp = now;
        }
    }

    /// The display path for `path` (case from existing ancestors, the last segment as given).
    fn display_for(&self, path: &str) -> String {
        let (parent, name) = path.rsplit_once('/').unwrap_or(("", path));
        if parent.is_empty() {
            return format!("/{name}");
        }
        match self.nodes.get(&parent.to_lowercase()) {
            Some(n) => format!("{}/{name}", n.display),
            None => format!("{}/{name}", self.display_for(parent)),
        }
    }

    /// A file on the way to `path` (WriteError `conflict/file`)?
    fn check_ancestors(&self, path: &str) -> Result<(), Value> {
        for a in ancestors(path) {
            if let Some(n) = self.nodes.get(&a.to_lowercase()) {
                if !n.folder {
                    return Err(union(&["conflict", "file"]));
                }
            }
        }
        Ok(())
    }

    fn make_parents(&mut self, path: &str) {
        for a in ancestors(path) {
            let lower = a.to_lowercase();
            if !self.nodes.contains_key(&lower) {
                let display = self.display_for(a);
                let id = self.new_id();
                self.nodes.insert(
                    lower,
                    Node {
                        display,
                        folder: true,
                        data: Bytes::new(),
                        client_modified: String::new(),
                        server_modified: String::new(),
                        rev: String::new(),
                        id,
                        hash: String::new(),
                        downloadable: true,
                    },
                );
            }
        }
    }

    /// A node (LookupError `not_found`).
    pub(crate) fn lookup(&self, path: &str) -> Result<&Node, Value> {
        self.nodes
            .get(&path.to_lowercase())
            .ok_or_else(|| union(&["not_found"]))
    }

    /// Commits a file; the error is a WriteError union.
    pub(crate) fn write_file(
        &mut self,
        path: &str,
        data: Bytes,
        mode: &WriteMode,
        client_modified: Option<String>,
    ) -> Result<Value, Value> {
        self.commit_file(path, data, mode, client_modified, false)
    }

    /// Commits a file as `CommitInfo` with `strict_conflict` asks; the error is a WriteError
    /// union.
    pub(crate) fn commit_file(
        &mut self,
        path: &str,
        data: Bytes,
        mode: &WriteMode,
        client_modified: Option<String>,
        strict_conflict: bool,
    ) -> Result<Value, Value> {
        self.check_ancestors(path)?;
        let lower = path.to_lowercase();
        if let Some(quota) = self.quota {
            let replaced = self.nodes.get(&lower).map_or(0, |n| n.data.len() as u64);
            if self.used() - replaced + data.len() as u64 > quota {
                return Err(union(&["insufficient_space"]));
            }
        }
        let mut display = self.display_for(path);
        let mut id = None;
        if let Some(existing) = self.nodes.get(&lower) {
            if existing.folder {
                return Err(union(&["conflict", "folder"]));
            }
            // files.stone, WriteMode: "In some situations, the conflict behavior is
            // identical: [...] (c) If the target path refers to a file with identical
            // contents, nothing gets written; no conflict." The stored file keeps its rev and
            // its client_modified, whatever the request asked for; in every mode, unless
            // CommitInfo.strict_conflict: "This also forces a conflict even when the target
            // path refers to a file with identical contents."
            let identical = existing.downloadable && existing.hash == content_hash(&data);
            let conflict = match mode {
                WriteMode::Add => true,
                WriteMode::Update(rev) => *rev != existing.rev,
                WriteMode::Overwrite => false,
            };
            if identical && !(conflict && strict_conflict) {
                return Ok(existing.meta());
            }
            if conflict {
                return Err(union(&["conflict", "file"]));
            }
            display = existing.display.clone();
            id = Some(existing.id.clone());
        }
        self.make_parents(path);
        let server_modified = now_string();
        let node = Node {
            display,
            folder: false,
            hash: content_hash(&data),
            data,
            client_modified: client_modified.unwrap_or_else(|| server_modified.clone()),
            server_modified,
            rev: self.new_rev(),
            id: match id {
                Some(i) => i,
                None => self.new_id(),
            },
            downloadable: true,
        };
        let meta = node.meta();
        self.nodes.insert(lower, node);
        Ok(meta)
    }

    /// Creates a folder and its parents; the error is a WriteError union.
    pub(crate) fn create_folder(&mut self, path: &str) -> Result<Value, Value> {
        self.check_ancestors(path)?;
        if let Some(n) = self.nodes.get(&path.to_lowercase()) {
            return Err(union(&[
                "conflict",
                if n.folder { "folder" } else { "file" },
            ]));
        }
        self.make_parents(&format!("{path}/x"));
        self.lookup(path).map(Node::meta)
    }

    /// Removes a node and everything below it; the error is a DeleteError union.
    pub(crate) fn delete(&mut self, path: &str, parent_rev: Option<&str>) -> Result<Value, Value> {
        let lower = path.to_lowercase();
        let node = self
            .nodes
            .get(&lower)
            .ok_or_else(|| wrap("path_lookup", union(&["not_found"])))?;
        if let Some(rev) = parent_rev {
            if node.folder || node.rev != rev {
                return Err(wrap("path_write", union(&["conflict", "file"])));
            }
        }
        let meta = node.meta();
        let below: Vec<String> = self.below(&lower, true).into_iter().collect();
        for k in below {
            self.nodes.remove(&k);
        }
        self.nodes.remove(&lower);
        Ok(meta)
    }

    /// Keys strictly below `dir` (all depths when `recursive`), in order.
    pub(crate) fn below(&self, dir: &str, recursive: bool) -> Vec<String> {
        self.page(dir, recursive, None, usize::MAX).0
    }

    /// Up to `limit` keys below `dir` after `after`, and whether more follow.
    pub(crate) fn page(
        &self,
        dir: &str,
        recursive: bool,
        after: Option<&str>,
        limit: usize,
    ) -> (Vec<String>, bool) {
        let prefix = format!("{dir}/");
        let start = match after {
            Some(a) => Bound::Excluded(a.to_owned()),
            None => Bound::Excluded(dir.to_owned()),
        };
        let mut out = Vec::new();
        for (k, _) in self.nodes.range((start, Bound::Unbounded)) {
            if !k.starts_with(&prefix) {
                if k.as_str() > prefix.as_str() {
                    break;
                }
                continue;
            }
            if !recursive && k[prefix.len()..].contains('/') {
                continue;
            }
            if out.len() == limit {
                return (out, true);
            }
            out.push(k.clone());
        }
        (out, false)
    }

    /// Copies or moves a node (and its tree); the error is a RelocationError union.
    pub(crate) fn relocate(&mut self, from: &str, to: &str, is_move: bool) -> Result<Value, Value> {
        let (fl, tl) = (from.to_lowercase(), to.to_lowercase());
        let src = self
            .nodes
            .get(&fl)
            .cloned()
            .ok_or_else(|| wrap("from_lookup", union(&["not_found"])))?;
        let case_only = is_move && fl == tl;
        if !case_only {
            if tl.starts_with(&format!("{fl}/")) {
                return Err(union(&["cant_move_folder_into_itself"]));
            }
            if let Some(n) = self.nodes.get(&tl) {
                let what = if n.folder { "folder" } else { "file" };
                return Err(wrap("to", union(&["conflict", what])));
            }
            self.check_ancestors(to).map_err(|e| wrap("to", e))?;
        } else if from == to {
            return Err(wrap(
                "to",
                union(&["conflict", if src.folder { "folder" } else { "file" }]),
            ));
        } else {
            // files.stone, route move:2: "Note that we do not currently support case-only
            // renaming." The paths are the same path to the service (RelocationError
            // duplicated_or_nested_paths: "There are duplicated/nested paths among
            // RelocationArg.from_path and RelocationArg.to_path.").
            return Err(union(&["duplicated_or_nested_paths"]));
        }
        let mut keys = vec![fl.clone()];
        keys.extend(self.below(&fl, true));
        let moved: Vec<(String, Node)> = keys
            .iter()
            .filter_map(|k| self.nodes.get(k).map(|n| (k.clone(), n.clone())))
            .collect();
        if is_move {
            for (k, _) in &moved {
                self.nodes.remove(k);
            }
        }
        self.make_parents(to);
        let new_root = self.display_for(to);
        for (k, mut n) in moved {
            let rest = &n.display[src.display.len().min(n.display.len())..];
            n.display = format!("{new_root}{rest}");
            if !is_move {
                n.id = self.new_id();
                if !n.folder {
                    n.rev = self.new_rev();
                }
            }
            let _ = k;
            self.nodes.insert(n.display.to_lowercase(), n);
        }
        self.lookup(to).map(Node::meta).map_err(|e| wrap("to", e))
    }

    /// Bytes in files.
    pub(crate) fn used(&self) -> u64 {
        self.nodes.values().map(|n| n.data.len() as u64).sum()
    }

    pub(crate) fn format_now(&self) -> String {
        now_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unions_nest() {
        assert_eq!(
            union(&["path", "not_found"]),
            json!({".tag": "path", "path": {".tag": "not_found"}})
        );
    }

    #[test]
    fn paging_stays_below_the_folder() {
        let mut s = State::default();
        for p in ["/a/x", "/a b", "/a/y/z", "/ab", "/a/w"] {
            s.write_file(p, Bytes::from_static(b"1"), &WriteMode::Add, None)
                .unwrap();
        }
        assert_eq!(s.below("/a", false), ["/a/w", "/a/x", "/a/y"]);
        assert_eq!(s.below("/a", true), ["/a/w", "/a/x", "/a/y", "/a/y/z"]);
        let (p, more) = s.page("/a", false, None, 2);
        assert_eq!(
            (p.as_slice(), more),
            (["/a/w".to_owned(), "/a/x".to_owned()].as_slice(), true)
        );
        let (p, more) = s.page("/a", false, Some("/a/x"), 2);
        assert_eq!((p, more), (vec!["/a/y".to_owned()], false));
        assert_eq!(s.below("", false), ["/a", "/a b", "/ab"]);
    }

    #[test]
    fn identical_content_writes_nothing_in_any_mode_unless_strict() {
        let mut s = State::default();
        let first = s
            .write_file(
                "/f",
                Bytes::from_static(b"same"),
                &WriteMode::Add,
                Some("2020-01-01T00:00:00Z".into()),
            )
            .unwrap();
        let rev = first["rev"].as_str().unwrap().to_owned();
        for mode in [
            WriteMode::Add,
            WriteMode::Overwrite,
            WriteMode::Update("0123456789abcdef".into()),
            WriteMode::Update(rev.clone()),
        ] {
            let m = s
                .write_file(
                    "/F",
                    Bytes::from_static(b"same"),
                    &mode,
                    Some("2030-01-01T00:00:00Z".into()),
                )
                .unwrap();
            assert_eq!(m["client_modified"], "2020-01-01T00:00:00Z", "{mode:?}");
            assert_eq!(m["rev"], rev.as_str(), "{mode:?}");
        }
        // strict_conflict: identical content still conflicts where the mode would.
        let e = s
            .commit_file(
                "/f",
                Bytes::from_static(b"same"),
                &WriteMode::Add,
                None,
                true,
            )
            .unwrap_err();
        assert_eq!(e, union(&["conflict", "file"]));
        // Other content is written, and gets the new client_modified.
        let m = s
            .write_file(
                "/f",
                Bytes::from_static(b"new"),
                &WriteMode::Overwrite,
                Some("2030-01-01T00:00:00Z".into()),
            )
            .unwrap();
        assert_eq!(m["client_modified"], "2030-01-01T00:00:00Z");
        assert_ne!(m["rev"], rev.as_str());
    }

    #[test]
    fn refused_names() {
        for bad in ["/a/Desktop.ini", "/x/ICON\r", "/.dropbox/x"] {
            assert_eq!(
                name_refusal(bad),
                Some(union(&["disallowed_name"])),
                "{bad}"
            );
        }
        for bad in ["/a\\b", "/a /b", "/d\u{7f}"] {
            assert_eq!(name_refusal(bad), Some(union(&["malformed_path"])), "{bad}");
        }
        assert_eq!(name_refusal("/a b/desktop.ini.txt"), None);
    }

    #[test]
    fn case_is_preserved_and_ignored() {
        let mut s = State::default();
        s.write_file("/Dir/File.TXT", Bytes::new(), &WriteMode::Add, None)
            .unwrap();
        let m = s
            .write_file(
                "/dir/file.txt",
                Bytes::from_static(b"x"),
                &WriteMode::Overwrite,
                None,
            )
            .unwrap();
        assert_eq!(m["path_display"], "/Dir/File.TXT");
        assert_eq!(m["path_lower"], "/dir/file.txt");
        assert_eq!(s.nodes.len(), 2);
        let m = s
            .write_file("/DIR/new", Bytes::new(), &WriteMode::Add, None)
            .unwrap();
        assert_eq!(m["path_display"], "/Dir/new");
    }
}
