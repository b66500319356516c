//! Server-side copy and move (`files/copy_v2`, `files/move_v2`), including the case-only
//! rename the service refuses, as free functions over [`DropboxCore`].

use cloudsync_core::{Entry, Error, ErrorKind, RemotePath, Result};
use serde_json::{Value, json};

use crate::core::{DropboxCore, Metadata, tags_of};
use crate::names;

/// `files/copy_v2` of `from` to `to`, replacing a file (never a folder) already at `to`.
pub(crate) async fn copy(core: &DropboxCore, from: &RemotePath, to: &RemotePath) -> Result<Entry> {
    relocate(core, "files/copy_v2", from, to).await
}

/// `files/move_v2` of `from` to `to`, replacing a file (never a folder) already at `to`.
pub(crate) async fn rename(
    core: &DropboxCore,
    from: &RemotePath,
    to: &RemotePath,
) -> Result<Entry> {
    relocate(core, "files/move_v2", from, to).await
}

/// One `move_v2`; the moved entry, named `to`.
async fn move_once(core: &DropboxCore, from: &RemotePath, to: &RemotePath) -> Result<Entry> {
    let arg = json!({
        "from_path": core.dbx_path(from),
        "to_path": core.dbx_path(to),
        "autorename": false,
    });
    let v = core
        .rpc("files/move_v2", &arg)
        .await
        .map_err(|e| e.with_path(from))?;
    Metadata::from_value(v.get("metadata").cloned().unwrap_or(v), "files/move_v2")?
        .to_entry(to.clone())
}

/// Whether something is at `path`: `Some(true)`/`Some(false)`, `None` when the look failed.
async fn exists(core: &DropboxCore, path: &RemotePath) -> Option<bool> {
    match core.metadata(path).await {
        Ok(_) => Some(true),
        Err(e) if e.kind() == ErrorKind::NotFound => Some(false),
        Err(_) => None,
    }
}

/// A move that took effect despite an error (a lost answer) is the entry at `to`: the
/// source is gone and the target is there.
async fn moved_anyway(core: &DropboxCore, from: &RemotePath, to: &RemotePath) -> Option<Entry> {
    if exists(core, from).await != Some(false) {
        return None;
    }
    core.metadata(to).await.ok()?.to_entry(to.clone()).ok()
}

/// A rename that changes only the case of the name. The service refuses it (files.stone,
/// route move:2: "Note that we do not currently support case-only renaming."), so it is
/// two moves through a temporary name beside the file. The temporary name is not one of
/// the engine's upload temporaries, so a crash between the two moves leaves an ordinary
/// file (never one a later sync would clean up as a leftover). If the second move fails,
/// the file is moved back; the file is never deleted.
async fn rename_case(core: &DropboxCore, from: &RemotePath, to: &RemotePath) -> Result<Entry> {
    let parent = to.parent().unwrap_or_else(RemotePath::root);
    let name = to.name();
    let mut cut = name.len().min(200);
    while !name.is_char_boundary(cut) {
        cut -= 1;
    }
    let tmp_name = format!("{}.cloudsync-case-{:08x}", &name[..cut], fastrand::u32(..));
    let tmp = parent.join(&tmp_name)?;
    if let Err(e) = move_once(core, from, &tmp).await {
        if moved_anyway(core, from, &tmp).await.is_none() {
            return Err(e.with_operation("rename (case only)"));
        }
    }
    let e = match move_once(core, &tmp, to).await {
        Ok(entry) => return Ok(entry),
        Err(e) => e,
    };
    if let Some(entry) = moved_anyway(core, &tmp, to).await {
        return Ok(entry);
    }
    // Put the file back under its old name.
    let back = match move_once(core, &tmp, from).await {
        Ok(_) => Ok(()),
        Err(b) => match moved_anyway(core, &tmp, from).await {
            Some(_) => Ok(()),
            None => Err(b),
        },
    };
    match back {
        Ok(()) => Err(e.with_operation("rename (case only)")),
        Err(b) => {
            tracing::error!(
                remote = %core.describe, from = %from, tmp = %tmp, error = %b,
                "case-only rename: the file could not be moved back and is under a \
                 temporary name"
            );
            Err(Error::new(
                e.kind(),
                format!(
                    "case-only rename failed half way: the file is now {tmp} ({e}; \
                     moving it back failed: {b})"
                ),
            )
            .with_operation("rename (case only)")
            .with_path(from)
            .set_temporary(e.is_retryable()))
        }
    }
}

/// `copy_v2` / `move_v2`, replacing a file (never a folder) already at `to`.
async fn relocate(
    core: &DropboxCore,
    endpoint: &'static str,
    from: &RemotePath,
    to: &RemotePath,
) -> Result<Entry> {
    names::check(to)?;
    let (src, dst) = (core.dbx_path(from), core.dbx_path(to));
    let same = src.to_lowercase() == dst.to_lowercase();
    if same && endpoint == "files/copy_v2" {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            "source and target are the same file (names differ only by case)",
        )
        .with_path(to));
    }
    if same {
        if src == dst {
            return core.stat(to).await;
        }
        return rename_case(core, from, to).await;
    }
    let arg = json!({ "from_path": src, "to_path": dst, "autorename": false });
    let mut replaced = false;
    loop {
        match core.rpc(endpoint, &arg).await {
            Ok(v) => {
                let m = Metadata::from_value(v.get("metadata").cloned().unwrap_or(v), endpoint)?;
                return m.to_entry(to.clone());
            }
            Err(e) => {
                let tags = tags_of(&e);
                let target_exists =
                    tags.first().is_some_and(|t| t == "to") && tags.iter().any(|t| t == "conflict");
                if !target_exists || replaced || same {
                    return Err(e.with_path(from));
                }
                let m = core.metadata(to).await?;
                if m.is_folder() {
                    return Err(Error::new(ErrorKind::Conflict, "the target is a directory")
                        .with_operation(endpoint)
                        .with_path(to));
                }
                let mut del = json!({ "path": dst });
                if let Some(rev) = m.rev {
                    del["parent_rev"] = Value::String(rev);
                }
                core.rpc("files/delete_v2", &del)
                    .await
                    .map_err(|e| e.with_path(to))?;
                replaced = true;
            }
        }
    }
}
