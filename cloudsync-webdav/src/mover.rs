//! Server-side `COPY` and `MOVE` of files (RFC 4918 §9.8, §9.9): an existing file at the
//! target is replaced, an existing directory never is.

use cloudsync_core::{Entry, ErrorKind, RemotePath, Result};
use reqwest::StatusCode;

use crate::core::{WebdavCore, method, overwrite};
use crate::{lister, writer};

/// `MOVE` `from` onto `to`. A new name needs one request; an existing file is replaced,
/// an existing directory is never (that would delete a whole tree).
pub(crate) async fn move_into_place(
    core: &WebdavCore,
    from: &RemotePath,
    to: &RemotePath,
) -> Result<()> {
    move_or_copy(core, "MOVE", from, to).await
}

/// `MOVE` or `COPY` of a file with the replace-only-files rule of [`move_into_place`].
async fn move_or_copy(
    core: &WebdavCore,
    verb: &'static str,
    from: &RemotePath,
    to: &RemotePath,
) -> Result<()> {
    let send = |over: bool| {
        let rb = core
            .request(method(verb), core.url(from, false))
            .header("Destination", core.url(to, false).as_str())
            .header("Overwrite", overwrite(over));
        core.send(rb, to)
    };
    let resp = send(false).await?;
    if resp.status().is_success() {
        return Ok(());
    }
    if resp.status() != StatusCode::PRECONDITION_FAILED {
        return Err(core.status_error(resp, to).await);
    }
    // Something is at `to`: replace it only if it is a file.
    let existing = lister::stat(core, to).await?;
    if existing.is_dir() {
        return Err(core.err(
            ErrorKind::Conflict,
            "a directory is in the way of the file",
            to,
        ));
    }
    let resp = send(true).await?;
    if resp.status().is_success() {
        Ok(())
    } else {
        Err(core.status_error(resp, to).await)
    }
}

/// Server-side copy of the file `from` to `to` (`COPY`), replacing a file at `to`.
pub(crate) async fn copy(core: &WebdavCore, from: &RemotePath, to: &RemotePath) -> Result<Entry> {
    transfer(core, "COPY", from, to).await
}

/// Server-side move of the file `from` to `to` (`MOVE`), replacing a file at `to`.
pub(crate) async fn rename(core: &WebdavCore, from: &RemotePath, to: &RemotePath) -> Result<Entry> {
    transfer(core, "MOVE", from, to).await
}

/// Server-side copy or move of a file, creating `to`'s parents; returns the new entry.
async fn transfer(
    core: &WebdavCore,
    verb: &'static str,
    from: &RemotePath,
    to: &RemotePath,
) -> Result<Entry> {
    let src = lister::stat(core, from).await?;
    if !src.is_file() {
        return Err(core.err(ErrorKind::Conflict, "not a file", from));
    }
    writer::ensure_parent(core, to).await?;
    move_or_copy(core, verb, from, to).await?;
    lister::stat(core, to).await
}
