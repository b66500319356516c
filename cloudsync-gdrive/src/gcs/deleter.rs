//! Removals: objects one by one (`objects.delete`); directories are implicit, so removing one
//! only checks that it is empty.

use cloudsync_core::{Error, ErrorKind, RemotePath, Result};

use super::core::GcsCore;

/// Removes the object at `path`. One that is not there (404) is already gone: a delete whose
/// answer was lost and is sent again must not fail.
pub(crate) async fn remove_file(core: &GcsCore, path: &RemotePath) -> Result<()> {
    let removed = core.delete_object(&core.object_name(path), None).await?;
    if !removed {
        tracing::debug!(%path, "delete of an object that was already gone");
    }
    Ok(())
}

/// "Removes" the implicit directory `dir`: `Conflict` while anything lies below it, else
/// nothing to do (its marker object, if the console made one, is removed too).
pub(crate) async fn remove_dir(core: &GcsCore, dir: &RemotePath) -> Result<()> {
    if dir.is_root() && core.cfg.prefix.is_root() {
        return Ok(());
    }
    let prefix = core.dir_prefix(dir);
    let page = core.list_page(&prefix, true, 2, None).await?;
    let others = page.prefixes.len() + page.items.iter().filter(|o| o.name != prefix).count();
    if others > 0 {
        return Err(Error::new(ErrorKind::Conflict, "directory not empty"));
    }
    if page.items.iter().any(|o| o.name == prefix) {
        core.delete_object(&prefix, None).await?;
    }
    Ok(())
}
