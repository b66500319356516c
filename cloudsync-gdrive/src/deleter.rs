//! Deletes: to the trash (`use_trash`, the default) or for good, and emptying the trash.

use cloudsync_core::{Error, ErrorKind, RemotePath, Result};

use crate::core::{DriveCore, enc};

/// Trashes or deletes the file or folder `id`.
pub(crate) async fn remove_id(core: &DriveCore, id: &str, op: &'static str) -> Result<()> {
    if core.cfg.use_trash {
        core.update_meta(op, id, serde_json::json!({ "trashed": true }), None)
            .await?;
    } else {
        let query = core.common();
        let url = core.api(&format!("files/{}", enc(id)));
        core.send(op, |c| c.delete(&url).query(&query)).await?;
    }
    Ok(())
}

/// Removes one file.
pub(crate) async fn remove_file(core: &DriveCore, path: &RemotePath) -> Result<()> {
    let f = core
        .lookup(path)
        .await?
        .ok_or_else(|| Error::new(ErrorKind::NotFound, "no such file"))?;
    if f.is_folder() {
        return Err(Error::new(ErrorKind::Conflict, "is a folder, not a file"));
    }
    remove_id(core, &f.id, "remove_file").await
}

/// Removes an empty folder.
pub(crate) async fn remove_dir(core: &DriveCore, dir: &RemotePath) -> Result<()> {
    if dir.is_root() {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            "cannot remove the root",
        ));
    }
    let f = core
        .lookup(dir)
        .await?
        .ok_or_else(|| Error::new(ErrorKind::NotFound, "no such directory"))?;
    if !f.is_folder() {
        return Err(Error::new(ErrorKind::Conflict, "is a file, not a folder"));
    }
    if core.has_children(&f.id).await? {
        return Err(Error::new(ErrorKind::Conflict, "directory not empty"));
    }
    remove_id(core, &f.id, "remove_dir").await?;
    core.forget(dir);
    Ok(())
}

/// Removes `dir` and everything below it in one request (Drive removes a folder's content
/// with it).
pub(crate) async fn purge(core: &DriveCore, dir: &RemotePath) -> Result<()> {
    if dir.is_root() {
        return Err(Error::new(ErrorKind::InvalidInput, "cannot purge the root"));
    }
    let f = core
        .lookup(dir)
        .await?
        .ok_or_else(|| Error::new(ErrorKind::NotFound, "no such directory"))?;
    if !f.is_folder() {
        return Err(Error::new(ErrorKind::Conflict, "is a file, not a folder"));
    }
    remove_id(core, &f.id, "purge").await?;
    core.forget(dir);
    Ok(())
}

/// Empties the trash (of the shared drive when `drive_id` is set).
///
/// Drive's trash is the drive's, not a folder's (`files.emptyTrash`: "Permanently deletes all
/// of the user's trashed files", or with `driveId` those of a shared drive), so a remote
/// rooted at a folder below the drive's root refuses unless `cleanup_whole_trash` is set:
/// it would delete for good what was trashed anywhere in the drive.
pub(crate) async fn cleanup(core: &DriveCore) -> Result<()> {
    let at_drive_root =
        core.cfg.root_id == "root" || core.cfg.drive_id.as_deref() == Some(&core.cfg.root_id);
    if !at_drive_root && !core.cfg.cleanup_whole_trash {
        return Err(Error::new(
            ErrorKind::ConfigInvalid,
            "cleanup would empty the trash of the whole drive, not only of this remote's \
             folder (Drive's trash has no folders); set `cleanup_whole_trash = true` to allow it",
        ));
    }
    let mut query: Vec<(&str, String)> = Vec::new();
    if let Some(d) = &core.cfg.drive_id {
        query.push(("driveId", d.clone()));
    }
    let url = core.api("files/trash");
    core.send("cleanup", |c| c.delete(&url).query(&query))
        .await?;
    Ok(())
}
