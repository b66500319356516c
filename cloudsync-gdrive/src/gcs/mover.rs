//! Server-side copy (`objects.rewrite`), rename (a rewrite, then the source is deleted: the
//! API has no move) and modification-time updates (`objects.patch` of the metadata), as free
//! functions over [`GcsCore`].

use cloudsync_core::{Entry, RemotePath, Result};
use time::OffsetDateTime;

use super::core::{GcsCore, mtime_metadata};

/// Copies the object `from` to `to`, replacing an object already at `to`.
pub(crate) async fn copy(core: &GcsCore, from: &RemotePath, to: &RemotePath) -> Result<Entry> {
    let obj = core
        .rewrite(&core.object_name(from), &core.object_name(to))
        .await
        .map_err(|e| core.ctx(e, from))?;
    obj.entry(to.clone()).map_err(|e| core.ctx(e, to))
}

/// Renames the object `from` to `to`, replacing an object already at `to`.
pub(crate) async fn rename(core: &GcsCore, from: &RemotePath, to: &RemotePath) -> Result<Entry> {
    if from == to {
        // A rewrite and a delete of one name would delete the file.
        return core.stat(from).await;
    }
    // No move in the API: a rewrite, then the source goes.
    let obj = core
        .rewrite(&core.object_name(from), &core.object_name(to))
        .await
        .map_err(|e| core.ctx(e, from))?;
    core.delete_object(&core.object_name(from), None)
        .await
        .map_err(|e| core.ctx(e, from))?;
    obj.entry(to.clone()).map_err(|e| core.ctx(e, to))
}

/// Sets the modification time of the object at `path` (its `mtime` metadata).
pub(crate) async fn set_modtime(
    core: &GcsCore,
    path: &RemotePath,
    modtime: OffsetDateTime,
) -> Result<()> {
    let meta = mtime_metadata(modtime).map_err(|e| core.ctx(e, path))?;
    core.patch_metadata(&core.object_name(path), meta)
        .await
        .map_err(|e| core.ctx(e, path))?;
    Ok(())
}
