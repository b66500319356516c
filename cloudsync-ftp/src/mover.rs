//! Server-side rename (`RNFR`/`RNTO`), replacing the target and creating its parents.

use cloudsync_core::{Entry, RemotePath, Result};

use crate::core::FtpCore;
use crate::lister;
use crate::writer::{mkdir_all, parent_abs, rename_over};

/// Moves `from` to `to` on the server, replacing `to` and creating its parents.
pub(crate) async fn rename(core: &FtpCore, from: &RemotePath, to: &RemotePath) -> Result<Entry> {
    let from_abs = core.paths.abs(from)?;
    let to_abs = core.paths.abs(to)?;
    let failed = {
        let mut conn = core.pool.get().await?;
        match rename_over(&mut conn, &from_abs, &to_abs).await {
            Ok(()) => false,
            Err(e) if conn.broken => return Err(e),
            Err(_) => true,
        }
    };
    if failed {
        // The source must exist (NotFound otherwise); then the target's parent may be missing.
        lister::stat(core, from).await?;
        let mut conn = core.pool.get().await?;
        mkdir_all(&mut conn, &parent_abs(core, to)?).await?;
        rename_over(&mut conn, &from_abs, &to_abs).await?;
    }
    lister::stat(core, to).await
}
