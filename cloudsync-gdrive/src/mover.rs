//! Server-side copy (`files.copy`), move and rename (`files.update` with `addParents` and
//! `removeParents`) and modification-time updates, as free functions over [`DriveCore`].

use cloudsync_core::{Entry, Error, ErrorKind, RemotePath, Result};
use serde_json::Value;
use time::OffsetDateTime;

use crate::core::{DriveCore, format_time, name_to_drive};
use crate::deleter;

/// The folder id of `to`'s parent (created if needed) and the id of the file already at
/// `to`, which a copy or move replaces. The old file is removed only after the new one is
/// in place, so a failure never loses it.
async fn target(core: &DriveCore, to: &RemotePath) -> Result<(String, Option<String>)> {
    let parent = to.parent().ok_or_else(|| {
        core.ctx(
            Error::new(ErrorKind::InvalidInput, "cannot replace the root"),
            to,
        )
    })?;
    let pid = core.mkdir_all(&parent).await.map_err(|e| core.ctx(e, to))?;
    match core
        .child(&pid, to.name(), to)
        .await
        .map_err(|e| core.ctx(e, to))?
    {
        Some(old) if old.is_folder() => Err(core.ctx(
            Error::new(ErrorKind::Conflict, "a folder is in the way of a file"),
            to,
        )),
        Some(old) => Ok((pid, Some(old.id))),
        None => Ok((pid, None)),
    }
}

/// Removes the file a copy or move replaced, once the new one is in place.
async fn drop_replaced(
    core: &DriveCore,
    old: Option<String>,
    op: &'static str,
    to: &RemotePath,
) -> Result<()> {
    match old {
        Some(id) => deleter::remove_id(core, &id, op)
            .await
            .map_err(|e| core.ctx(e, to)),
        None => Ok(()),
    }
}

/// Copies the file `from` to `to` on the server, replacing a file already at `to`.
pub(crate) async fn copy(core: &DriveCore, from: &RemotePath, to: &RemotePath) -> Result<Entry> {
    let src = core.file(from).await?;
    let (pid, old) = target(core, to).await?;
    let mut body = serde_json::json!({ "name": name_to_drive(to.name()), "parents": [pid] });
    if let Some(t) = &src.modified_time {
        body["modifiedTime"] = Value::String(t.clone());
    }
    let f = core
        .copy_file(&src.id, body)
        .await
        .map_err(|e| core.ctx(e, from))?;
    drop_replaced(core, old, "copy", to).await?;
    f.entry(to.clone())
}

/// Moves or renames the file `from` to `to`, replacing a file already at `to`.
pub(crate) async fn rename(core: &DriveCore, from: &RemotePath, to: &RemotePath) -> Result<Entry> {
    let src = core.file(from).await?;
    let from_parent = from.parent().unwrap_or_default();
    let old_pid = core
        .dir_id(&from_parent)
        .await
        .map_err(|e| core.ctx(e, from))?
        .ok_or_else(|| core.ctx(Error::new(ErrorKind::NotFound, "no such file"), from))?;
    let (pid, old) = target(core, to).await?;
    if old.as_deref() == Some(src.id.as_str()) {
        return src.entry(to.clone());
    }
    let parents = (pid != old_pid).then_some((pid.as_str(), old_pid.as_str()));
    let f = core
        .update_meta(
            "rename",
            &src.id,
            serde_json::json!({ "name": name_to_drive(to.name()) }),
            parents,
        )
        .await
        .map_err(|e| core.ctx(e, from))?;
    drop_replaced(core, old, "rename", to).await?;
    f.entry(to.clone())
}

/// Sets the modification time of the file at `path`.
pub(crate) async fn set_modtime(
    core: &DriveCore,
    path: &RemotePath,
    modtime: OffsetDateTime,
) -> Result<()> {
    let modtime = format_time(modtime).map_err(|e| core.ctx(e, path))?;
    let f = core.file(path).await?;
    core.update_meta(
        "set_modtime",
        &f.id,
        serde_json::json!({ "modifiedTime": modtime }),
        None,
    )
    .await
    .map_err(|e| core.ctx(e, path))?;
    Ok(())
}
