//! Deletions: one file, one empty directory, or a whole tree.
//!
//! Each first syncs the directories whose new names still wait for it (see [`crate::dirsync`]),
//! so that no deletion reaches the disk before a file written earlier: a sync whose source
//! moved a file from one folder to another never leaves the destination with neither copy
//! after a crash.

use cloudsync_core::{Error, ErrorKind, RemotePath, Result};

use crate::core::{CoreRef, parse_error};

/// Removes one file (a directory there is a `Conflict`).
pub(crate) async fn remove_file(core: &CoreRef, path: &RemotePath) -> Result<()> {
    let p = path.clone();
    core.blocking(move |c| {
        c.pending_dirs.flush_all();
        c.check_no_links(&p, false, "remove_file")?;
        let local = c.local(&p)?;
        std::fs::remove_file(&local).map_err(|e| {
            let is_dir = std::fs::symlink_metadata(&local).is_ok_and(|m| m.is_dir());
            let e = parse_error(e);
            let e = if is_dir {
                Error::new(ErrorKind::Conflict, "is a directory").with_source(e)
            } else {
                e
            };
            c.ctx(e, &p)
        })
    })
    .await
}

/// Removes one empty directory (`Conflict` when it is not empty).
pub(crate) async fn remove_dir(core: &CoreRef, dir: &RemotePath) -> Result<()> {
    let p = dir.clone();
    core.blocking(move |c| {
        c.pending_dirs.flush_all();
        c.forget_checked_dirs();
        c.check_no_links(&p, false, "remove_dir")?;
        std::fs::remove_dir(c.local(&p)?).map_err(|e| c.ctx(parse_error(e), &p))
    })
    .await
}

/// Removes `dir` and everything below it. Links inside are removed, not followed
/// (`remove_dir_all`), and a `dir` that is itself a link is removed as a link.
pub(crate) async fn purge(core: &CoreRef, dir: &RemotePath) -> Result<()> {
    let p = dir.clone();
    core.blocking(move |c| {
        c.pending_dirs.flush_all();
        c.forget_checked_dirs();
        c.check_no_links(&p, false, "purge")?;
        std::fs::remove_dir_all(c.local(&p)?).map_err(|e| c.ctx(parse_error(e), &p))
    })
    .await
}
