//! Deleting files (`DELE`) and empty directories (`RMD`).

use cloudsync_core::{Error, ErrorKind, RemotePath, Result};
use futures::StreamExt;

use crate::core::FtpCore;
use crate::lister;

/// Removes one file; [`ErrorKind::NotFound`] only when it is confirmed absent.
pub(crate) async fn remove_file(core: &FtpCore, path: &RemotePath) -> Result<()> {
    let abs = core.paths.abs(path)?;
    let mut conn = core.pool.get().await?;
    match conn.dele(&abs).await {
        Ok(()) => Ok(()),
        Err(e) => Err(conn.confirm_not_found(e, &abs, core.features.mlsd).await),
    }
}

/// Removes one empty directory; a refused `RMD` is told apart into not found (the directory is
/// missing) and [`ErrorKind::Conflict`] (it still has entries).
pub(crate) async fn remove_dir(core: &FtpCore, dir: &RemotePath) -> Result<()> {
    let abs = core.paths.abs(dir)?;
    let first = {
        let mut conn = core.pool.get().await?;
        match conn.rmd(&abs).await {
            Ok(()) => return Ok(()),
            Err(e) if conn.broken => return Err(e),
            Err(e) => e,
        }
    };
    let mut entries = match lister::list(core, dir).await {
        Ok(s) => s,
        Err(e) if e.kind() == ErrorKind::NotFound => {
            return Err(Error::new(ErrorKind::NotFound, "no such directory"));
        }
        Err(e) => return Err(e),
    };
    if entries.next().await.is_some() {
        return Err(Error::new(ErrorKind::Conflict, "directory is not empty"));
    }
    Err(first)
}
