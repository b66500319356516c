//! Listings: one folder level through `files.list`, streamed page by page, with duplicate
//! names reported as errors and Google Docs skipped.

use std::collections::HashSet;
use std::sync::Arc;

use cloudsync_core::{Entry, EntryStream, Error, ErrorKind, RemotePath, Result};
use futures::StreamExt;

use crate::core::{DriveCore, DriveFile, MAX_CHILDREN, duplicate_error, name_from_drive};

/// Lists folder `dir`: entries are yielded as the pages arrive, so only one page of the
/// folder (and the set of names seen, to report duplicates) is ever in memory.
pub(crate) async fn list(core: Arc<DriveCore>, dir: &RemotePath) -> Result<EntryStream> {
    let id = core
        .dir_id(dir)
        .await?
        .ok_or_else(|| Error::new(ErrorKind::NotFound, "directory not found"))?;
    let q = DriveCore::children_query(&id, None);
    // The first item (or error) is awaited here, so a folder that vanished (or a refused
    // request) fails the call itself, not an item of the stream.
    let mut files = Box::pin(DriveCore::files_stream(core.clone(), q).peekable());
    if matches!(files.as_mut().peek().await, Some(Err(_))) {
        if let Some(Err(e)) = files.next().await {
            return Err(e);
        }
    }
    let mut names = Names::default();
    let dir = dir.clone();
    Ok(files
        .filter_map(move |f| {
            let out = match f {
                Err(e) => Some(Err(e)),
                Ok(f) => names.entry(&core, &dir, f),
            };
            futures::future::ready(out)
        })
        .boxed())
}

/// The names of one listing seen so far.
#[derive(Default)]
struct Names {
    /// Names seen once.
    seen: HashSet<String>,
    /// Names already reported as duplicated (reported once).
    reported: HashSet<String>,
}

impl Names {
    /// The entry for one child: `None` for a Google Doc (left out with a notice), an error
    /// entry for an undescribable name, and for the second file of a name (a Conflict, which
    /// voids the listing of the folder: cloudsync never picks one of two files of one name).
    fn entry(&mut self, core: &DriveCore, dir: &RemotePath, f: DriveFile) -> Option<Result<Entry>> {
        if f.is_google_doc() {
            tracing::info!(dir = %dir, name = %crate::core::cut(&f.name), mime = %crate::core::cut(&f.mime_type),
                "skipping a Google document (no binary content)");
            return None;
        }
        let name = name_from_drive(&f.name);
        let path = match dir.join(&name) {
            Ok(p) => p,
            Err(e) => return Some(Err(e.with_path(dir))),
        };
        if self.seen.contains(&name) {
            if !self.reported.insert(name) {
                return None;
            }
            tracing::warn!(path = %path, "duplicate names in a Drive folder");
            return Some(Err(duplicate_error(&path, 2)));
        }
        if self.seen.len() >= MAX_CHILDREN {
            return Some(Err(Error::new(
                ErrorKind::Protocol,
                format!("the folder listing has more than {MAX_CHILDREN} entries"),
            )));
        }
        self.seen.insert(name);
        if f.is_folder() {
            core.cache_dir(path.clone(), f.id.clone());
        }
        Some(f.entry(path))
    }
}
