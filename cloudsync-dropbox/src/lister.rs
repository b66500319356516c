//! Listings: `files/list_folder` and `files/list_folder/continue`, page by page as a stream.

use std::collections::{HashMap, HashSet, VecDeque};
use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};
use std::sync::Arc;

use cloudsync_core::{Entry, EntryStream, Error, ErrorKind, RemotePath, Result};
use futures::StreamExt;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::core::{DropboxCore, Metadata, cut};

/// The most pages one listing may have: with the largest page (2,000 entries) that is 200
/// million entries, far beyond any real folder, and it stops a server that keeps handing out
/// new cursors without end.
pub(crate) const MAX_PAGES: usize = 100_000;

/// The cursors a listing has been given so far (as 64-bit hashes, so memory stays small): a
/// cursor seen twice means the listing went round in a circle and would never end.
#[derive(Default)]
struct Cursors {
    seen: HashSet<u64>,
}

impl Cursors {
    /// Records `cursor`; an error when it was seen before or the listing has too many pages.
    fn next(&mut self, cursor: &str) -> Result<()> {
        let hash = BuildHasherDefault::<DefaultHasher>::default().hash_one(cursor);
        if !self.seen.insert(hash) {
            return Err(Error::new(
                ErrorKind::Protocol,
                "files/list_folder/continue handed out a cursor it gave before; the listing \
                 would never end",
            )
            .with_operation("files/list_folder/continue"));
        }
        if self.seen.len() > MAX_PAGES {
            return Err(Error::new(
                ErrorKind::Protocol,
                format!("the listing has more than {MAX_PAGES} pages"),
            )
            .with_operation("files/list_folder/continue"));
        }
        Ok(())
    }
}

/// One page of a listing.
#[derive(Deserialize)]
struct Page {
    entries: Vec<Value>,
    cursor: String,
    has_more: bool,
}

/// Times one listing starts again from scratch after `list_folder/continue` answered `reset`.
pub(crate) const MAX_RESETS: usize = 5;

/// Turns listed metadata into entries with paths relative to the remote's root.
struct Namer {
    core: Arc<DropboxCore>,
    dir: RemotePath,
    /// `path_lower` of the listed folder.
    dir_lower: String,
    recursive: bool,
    /// Folders seen so far in a recursive listing: `path_lower` to our path (names come from
    /// each entry's `name`, never from `path_display`, whose parents may have the wrong case).
    folders: HashMap<String, RemotePath>,
}

impl Namer {
    fn entry(&mut self, v: Value) -> Result<Option<Entry>> {
        let m = Metadata::from_value(v, "files/list_folder")?;
        if m.tag == "deleted" {
            return Ok(None);
        }
        let lower = m.path_lower.clone().unwrap_or_default();
        if m.tag == "file" && m.is_downloadable == Some(false) {
            // A Paper doc or cloud doc: files.stone, FileMetadata.is_downloadable: "If true,
            // file can be downloaded directly; else the file must be exported." Its bytes
            // are not the file's, so it is no file to sync: skipped with a notice (once per
            // file per remote), never an error that would come back on every run.
            if self.core.first_notice(&lower) {
                tracing::warn!(
                    remote = %self.core.describe, path = %cut(&lower),
                    "skipping a file Dropbox cannot download (a Paper or cloud doc; it can only \
                     be exported)"
                );
            }
            return Ok(None);
        }
        if self.recursive && lower == self.dir_lower {
            // A recursive listing includes the folder itself.
            return Ok(None);
        }
        let parent = if self.recursive {
            let parent_lower = lower.rsplit_once('/').map(|(p, _)| p).unwrap_or("");
            if parent_lower == self.dir_lower {
                self.dir.clone()
            } else {
                self.folders.get(parent_lower).cloned().ok_or_else(|| {
                    Error::new(
                        ErrorKind::Protocol,
                        format!("listing has {:?} before its folder", cut(&lower)),
                    )
                    .with_operation("files/list_folder")
                })?
            }
        } else {
            self.dir.clone()
        };
        let path = parent
            .join(&m.name)
            .map_err(|e| e.with_operation("files/list_folder"))?;
        if self.recursive && m.is_folder() {
            self.folders.insert(lower, path.clone());
        }
        m.to_entry(path).map(Some)
    }
}

struct State {
    core: Arc<DropboxCore>,
    namer: Namer,
    pending: VecDeque<Value>,
    cursor: Option<String>,
    cursors: Cursors,
    /// The `list_folder` argument, to start again after a `reset`.
    arg: Value,
    /// `path_lower` of every entry yielded so far, so a listing started again after a `reset`
    /// yields nothing twice.
    yielded: HashSet<String>,
    resets: usize,
}

/// Whether `e` is `list_folder/continue`'s `reset`.
fn is_reset(e: &Error) -> bool {
    crate::core::tags_of(e)
        .first()
        .is_some_and(|t| t == "reset")
}

/// Lists `dir` (one level, or the whole tree when `recursive`). The first page is fetched
/// here, so a missing folder fails the call; later pages are fetched as the stream is read.
pub(crate) async fn list(
    core: Arc<DropboxCore>,
    dir: &RemotePath,
    recursive: bool,
) -> Result<EntryStream> {
    let path = core.dbx_path(dir);
    let arg = json!({
        "path": path,
        "recursive": recursive,
        "include_deleted": false,
        // The default, said out loud: files that can only be exported are listed (with
        // `is_downloadable: false`) so they can be reported, then skipped.
        "include_non_downloadable_files": true,
        "limit": core.list_limit,
    });
    let page: Page = parse_page(
        core.rpc("files/list_folder", &arg)
            .await
            .map_err(|e| e.with_path(dir))?,
    )?;
    let mut cursors = Cursors::default();
    if page.has_more {
        cursors.next(&page.cursor).map_err(|e| e.with_path(dir))?;
    }
    let state = State {
        namer: Namer {
            core: core.clone(),
            dir: dir.clone(),
            dir_lower: path.to_lowercase(),
            recursive,
            folders: HashMap::new(),
        },
        pending: page.entries.into(),
        cursor: page.has_more.then_some(page.cursor),
        cursors,
        core,
        arg,
        yielded: HashSet::new(),
        resets: 0,
    };
    let stream = futures::stream::unfold(Some(state), |state| async move {
        let mut st = state?;
        loop {
            if let Some(v) = st.pending.pop_front() {
                let lower = v
                    .get("path_lower")
                    .and_then(Value::as_str)
                    .map(str::to_owned);
                if let Some(l) = &lower {
                    if st.yielded.contains(l) {
                        continue;
                    }
                }
                match st.namer.entry(v) {
                    Ok(Some(e)) => {
                        if let Some(l) = lower {
                            st.yielded.insert(l);
                        }
                        return Some((Ok(e), Some(st)));
                    }
                    Ok(None) => continue,
                    Err(e) => return Some((Err(e), None)),
                }
            }
            let cursor = st.cursor.take()?;
            let mut next = st
                .core
                .rpc("files/list_folder/continue", &json!({ "cursor": cursor }))
                .await
                .and_then(parse_page);
            if let Err(e) = &next {
                if is_reset(e) {
                    // ListFolderContinueError.reset: "Indicates that the cursor has been
                    // invalidated. Call list_folder to obtain a new cursor." The listing
                    // starts again; entries already yielded are not yielded again.
                    st.resets += 1;
                    if st.resets > MAX_RESETS {
                        let e = Error::new(
                            ErrorKind::Transient,
                            format!(
                                "the listing cursor was reset {} times; the folder keeps \
                                 changing",
                                st.resets - 1
                            ),
                        )
                        .with_operation("files/list_folder/continue")
                        .with_path(&st.namer.dir);
                        return Some((Err(e), None));
                    }
                    tracing::debug!(dir = %st.namer.dir, "listing cursor reset; listing again");
                    st.cursors = Cursors::default();
                    next = st
                        .core
                        .rpc("files/list_folder", &st.arg)
                        .await
                        .map_err(|e| e.with_path(&st.namer.dir))
                        .and_then(parse_page);
                }
            }
            match next {
                Ok(page) => {
                    if page.has_more {
                        if let Err(e) = st.cursors.next(&page.cursor) {
                            return Some((Err(e), None));
                        }
                    }
                    st.pending = page.entries.into();
                    st.cursor = page.has_more.then_some(page.cursor);
                }
                Err(e) => return Some((Err(e), None)),
            }
        }
    });
    Ok(stream.boxed())
}

fn parse_page(v: Value) -> Result<Page> {
    serde_json::from_value(v).map_err(|e| {
        Error::new(
            ErrorKind::Protocol,
            format!("malformed listing page: {}", cut(&e.to_string())),
        )
        .with_operation("files/list_folder")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn namer(recursive: bool) -> Namer {
        let cfg = crate::DropboxConfig::new("k")
            .with_refresh_token("r")
            .validate()
            .unwrap();
        Namer {
            core: Arc::new(DropboxCore::new(cfg).unwrap()),
            dir: RemotePath::new("d").unwrap(),
            dir_lower: "/root/d".into(),
            recursive,
            folders: HashMap::new(),
        }
    }

    fn file(name: &str, lower: &str) -> Value {
        json!({".tag": "file", "name": name, "path_lower": lower, "size": 1,
               "client_modified": "2024-01-02T03:04:05Z", "rev": "015a00000001"})
    }

    #[test]
    fn hostile_names_from_the_server_are_errors() {
        for bad in ["..", ".", "a/b", "", "nul\0"] {
            let e = namer(false).entry(file(bad, "/root/d/x")).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::InvalidInput, "{bad:?}: {e:?}");
        }
        let e = namer(false)
            .entry(file("ok.txt", "/root/d/ok.txt"))
            .unwrap()
            .unwrap();
        assert_eq!(e.path.as_str(), "d/ok.txt");
        assert_eq!(e.etag.as_deref(), Some("015a00000001"));
    }

    #[test]
    fn recursive_names_come_from_each_entry_not_path_display() {
        let mut n = namer(true);
        // The folder itself is skipped; children are named from `name`.
        assert!(
            n.entry(json!({".tag": "folder", "name": "D", "path_lower": "/root/d"}))
                .unwrap()
                .is_none()
        );
        let sub = n
            .entry(
                json!({".tag": "folder", "name": "Sub", "path_lower": "/root/d/sub",
                          "path_display": "/ROOT/D/SUB"}),
            )
            .unwrap()
            .unwrap();
        assert_eq!(sub.path.as_str(), "d/Sub");
        let f = n
            .entry(file("F.txt", "/root/d/sub/f.txt"))
            .unwrap()
            .unwrap();
        assert_eq!(f.path.as_str(), "d/Sub/F.txt");
        // A child whose folder was never listed is a protocol error, not a guess.
        let e = n.entry(file("x", "/root/d/other/x")).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Protocol);
        // Deleted entries are skipped.
        assert!(
            n.entry(json!({".tag": "deleted", "name": "gone", "path_lower": "/root/d/gone"}))
                .unwrap()
                .is_none()
        );
    }
}
