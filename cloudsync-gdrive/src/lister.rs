//! Listings: one folder level through `files.list`, with duplicate names reported as errors
//! and Google Docs skipped.

use std::collections::BTreeMap;

use cloudsync_core::{Entry, EntryStream, Error, ErrorKind, RemotePath, Result};
use futures::StreamExt;

use crate::core::{DriveCore, DriveFile, duplicate_error};

/// Lists folder `dir`.
pub(crate) async fn list(core: &DriveCore, dir: &RemotePath) -> Result<EntryStream> {
    let id = core
        .dir_id(dir)
        .await?
        .ok_or_else(|| Error::new(ErrorKind::NotFound, "directory not found"))?;
    let children = core.children(&id, None).await?;
    Ok(futures::stream::iter(entries(core, dir, children)).boxed())
}

/// Turns a folder's children into entries: one error entry per duplicated name (never a silent
/// pick), Google Docs left out with a notice, every server-provided name validated.
pub(crate) fn entries(
    core: &DriveCore,
    dir: &RemotePath,
    children: Vec<DriveFile>,
) -> Vec<Result<Entry>> {
    let mut by_name: BTreeMap<String, Vec<DriveFile>> = BTreeMap::new();
    for f in children {
        by_name.entry(f.name.clone()).or_default().push(f);
    }
    let mut out = Vec::with_capacity(by_name.len());
    for (name, mut files) in by_name {
        let path = match dir.join(&name) {
            Ok(p) => p,
            Err(e) => {
                out.push(Err(e.with_operation("list").with_path(dir)));
                continue;
            }
        };
        if files.len() > 1 {
            tracing::warn!(path = %path, count = files.len(), "duplicate names in a Drive folder");
            out.push(Err(
                duplicate_error(&path, files.len()).with_operation("list")
            ));
            continue;
        }
        let Some(f) = files.pop() else { continue };
        if f.is_google_doc() {
            tracing::info!(path = %path, mime = %f.mime_type, "skipping a Google document (no binary content)");
            continue;
        }
        if f.is_folder() {
            core.cache_dir(path.clone(), f.id.clone());
        }
        out.push(f.entry(path));
    }
    out
}
