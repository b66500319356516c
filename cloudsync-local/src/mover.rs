//! Copies within the remote (installed like any upload, with the source's modtime) and renames
//! (creating the target's directory).

use cloudsync_core::{Entry, Error, ErrorKind, RemotePath, Result};

use crate::core::{CoreRef, entry_from_meta, parse_error, system_to_offset};
use crate::writer::{Install, copy_from_local};

/// Copies `from` to `to` (installed like any upload, with the source's modtime).
pub(crate) async fn copy(core: &CoreRef, from: &RemotePath, to: &RemotePath) -> Result<Entry> {
    let (f, t) = (from.clone(), to.clone());
    core.file_job(move |c| {
        let src = c.local(&f)?;
        let meta = c.metadata(&src).map_err(|e| c.ctx(parse_error(e), &f))?;
        let modtime = meta.modified().ok().map(system_to_offset);
        let how = Install {
            expected_size: Some(meta.len()),
            modtime,
            lazy_durability: false,
        };
        copy_from_local(c, "copy", &t, &src, how)
    })
    .await
}

/// Renames `from` to `to`, creating `to`'s directory if it is missing.
pub(crate) async fn rename(core: &CoreRef, from: &RemotePath, to: &RemotePath) -> Result<Entry> {
    let (f, t) = (from.clone(), to.clone());
    core.blocking(move |c| {
        c.forget_checked_dirs();
        c.check_no_links(&f, false, "rename")?;
        c.check_no_links(&t, false, "rename")?;
        let src = c.local(&f)?;
        let dst = c.local(&t)?;
        let meta = c.metadata(&src).map_err(|e| c.ctx(parse_error(e), &f))?;
        if let Some(parent) = dst.parent() {
            std::fs::create_dir_all(parent).map_err(|e| c.ctx(parse_error(e), &t))?;
        }
        std::fs::rename(&src, &dst).map_err(|e| c.ctx(parse_error(e), &t))?;
        entry_from_meta(t.clone(), &meta).ok_or_else(|| {
            c.ctx(
                Error::new(ErrorKind::Unsupported, "not a regular file or directory"),
                &t,
            )
        })
    })
    .await
}
