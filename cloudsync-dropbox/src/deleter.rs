//! Deletions: `files/delete_v2`. A Dropbox delete removes a whole folder tree, so
//! `remove_file` and `remove_dir` look first and delete only what the contract allows.

use std::sync::Arc;

use cloudsync_core::{Error, ErrorKind, RemotePath, Result};
use futures::TryStreamExt;
use serde_json::{Value, json};

use crate::core::{DropboxCore, Metadata};
use crate::lister;

async fn metadata(core: &DropboxCore, path: &RemotePath) -> Result<Metadata> {
    let v = core
        .rpc(
            "files/get_metadata",
            &json!({ "path": core.dbx_path(path) }),
        )
        .await
        .map_err(|e| e.with_path(path))?;
    Metadata::from_value(v, "files/get_metadata")
}

async fn delete(core: &DropboxCore, path: &RemotePath, parent_rev: Option<String>) -> Result<()> {
    let mut arg = json!({ "path": core.dbx_path(path) });
    if let Some(rev) = parent_rev {
        arg["parent_rev"] = Value::String(rev);
    }
    core.rpc("files/delete_v2", &arg)
        .await
        .map_err(|e| e.with_path(path))?;
    Ok(())
}

/// Removes one file; a folder is refused (deleting it would delete its whole tree). The
/// delete names the revision that was looked at, so a folder that replaced the file in
/// between is not deleted.
pub(crate) async fn remove_file(core: &DropboxCore, path: &RemotePath) -> Result<()> {
    if path.is_root() {
        return Err(Error::new(ErrorKind::Conflict, "the root is not a file").with_path(path));
    }
    let m = metadata(core, path).await?;
    if m.is_folder() {
        return Err(Error::new(ErrorKind::Conflict, "is a directory").with_path(path));
    }
    delete(core, path, m.rev).await
}

/// Removes one empty folder ([`ErrorKind::Conflict`] when it is not empty or is a file).
pub(crate) async fn remove_dir(core: &Arc<DropboxCore>, dir: &RemotePath) -> Result<()> {
    if dir.is_root() {
        return Err(Error::new(ErrorKind::Conflict, "cannot remove the root"));
    }
    let m = metadata(core, dir).await?;
    if !m.is_folder() {
        return Err(Error::new(ErrorKind::Conflict, "not a directory").with_path(dir));
    }
    let mut listing = lister::list(core.clone(), dir, false).await?;
    if listing.try_next().await?.is_some() {
        return Err(Error::new(ErrorKind::Conflict, "directory not empty").with_path(dir));
    }
    delete(core, dir, None).await
}

/// Removes `dir` and everything below it: one `delete_v2`; the root is emptied child by
/// child (the root folder itself stays).
pub(crate) async fn purge(core: &Arc<DropboxCore>, dir: &RemotePath) -> Result<()> {
    if !dir.is_root() {
        return delete(core, dir, None).await;
    }
    let children: Vec<_> = lister::list(core.clone(), dir, false)
        .await?
        .try_collect()
        .await?;
    for c in children {
        delete(core, &c.path, None).await?;
    }
    Ok(())
}
