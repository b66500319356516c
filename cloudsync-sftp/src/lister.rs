//! Directory listings: OPENDIR + READDIR batches, streamed as entries.
//!
//! Every name the server returns is validated with [`RemotePath::join`]: `.` and `..` are
//! skipped, any other invalid name (containing `/` or NUL, or not valid UTF-8) becomes an
//! error item in the stream rather than a path. Temporary upload names are hidden. Symlinks
//! are skipped (debug log) unless `follow_symlinks` is set, in which case they are followed
//! with one STAT (a broken link is skipped with a warning); sockets, FIFOs and devices are
//! skipped.

use std::collections::VecDeque;
use std::sync::Arc;

use cloudsync_core::{Entry, EntryStream, Error, ErrorKind, RemotePath, Result};
use futures::StreamExt;
use russh_sftp::protocol::{File, StatusCode};

use crate::core::{Kind, OpenHandle, SftpCore, entry_of, kind_of, status_of};
use crate::ssh::Connection;

/// Lists one directory level.
pub(crate) async fn list(core: Arc<SftpCore>, dir: &RemotePath) -> Result<EntryStream> {
    let conn = core.conn(dir).await?;
    let handle = conn
        .sftp
        .opendir(core.abs(dir))
        .await
        .map_err(|e| core.fail(&conn, e, dir))?;
    let state = State {
        core,
        dir: dir.clone(),
        conn: conn.clone(),
        handle: Some(OpenHandle::new(conn, handle.handle)),
        pending: VecDeque::new(),
    };
    Ok(futures::stream::unfold(state, |mut st| async move {
        let item = st.next().await?;
        Some((item, st))
    })
    .boxed())
}

struct State {
    core: Arc<SftpCore>,
    dir: RemotePath,
    conn: Arc<Connection>,
    /// `None` once the server said end-of-directory (or failed).
    handle: Option<OpenHandle>,
    pending: VecDeque<File>,
}

impl State {
    async fn next(&mut self) -> Option<Result<Entry>> {
        loop {
            if let Some(file) = self.pending.pop_front() {
                match self.entry(file).await {
                    Some(item) => return Some(item),
                    None => continue,
                }
            }
            let handle = self.handle.as_ref()?;
            match handle.conn.sftp.readdir(handle.handle()).await {
                Ok(name) => self.pending.extend(name.files),
                Err(e) => {
                    let h = self.handle.take()?;
                    if status_of(&e) == Some(StatusCode::Eof) {
                        let _ = h.close().await;
                        return None;
                    }
                    return Some(Err(self.core.fail(&h.conn, e, &self.dir)));
                }
            }
        }
    }

    /// The entry for one READDIR name; `None` to skip it.
    async fn entry(&self, file: File) -> Option<Result<Entry>> {
        let name = file.filename.as_str();
        // Our temporary upload files are listed: the engine never pairs them, and removes
        // old ones.
        if name == "." || name == ".." {
            return None;
        }
        if name.contains('\u{FFFD}') {
            // The SFTP library decodes names lossily: this name was not valid UTF-8 on the
            // server, so no path we could build would reach it.
            return Some(Err(self.core.ctx(
                Error::new(
                    ErrorKind::InvalidInput,
                    format!("name {name:?} is not valid UTF-8 on the server"),
                ),
                &self.dir,
            )));
        }
        let path = match self.dir.join(name) {
            Ok(p) => p,
            Err(e) => return Some(Err(self.core.ctx(e, &self.dir))),
        };
        match kind_of(&file.attrs) {
            Kind::File | Kind::Dir => entry_of(path, &file.attrs).map(Ok),
            Kind::Symlink if !self.core.follow_symlinks => {
                // As rclone without `-L`: a link is neither a file to copy nor a directory to
                // walk (walking it could reach, and delete in, a tree outside the root).
                tracing::debug!(path = %path, "skipping symlink (set follow_symlinks to follow it)");
                None
            }
            Kind::Symlink => match self.core.stat_on(&self.conn, &path).await {
                Ok(target) => entry_of(path, &target).map(Ok),
                Err(e) if e.kind() == ErrorKind::NotFound => {
                    tracing::warn!(path = %path, "skipping broken symlink");
                    None
                }
                Err(e) => Some(Err(e)),
            },
            Kind::Other => {
                tracing::debug!(path = %path, "skipping special file");
                None
            }
        }
    }
}

/// Metadata of `path`; a symbolic link is absent unless `follow_symlinks` is set.
pub(crate) async fn stat(core: &SftpCore, path: &RemotePath) -> Result<Entry> {
    let conn = core.conn(path).await?;
    let attrs = if core.follow_symlinks || path.is_root() {
        core.stat_on(&conn, path).await?
    } else {
        let attrs = core.lstat_on(&conn, path).await?;
        if kind_of(&attrs) == Kind::Symlink {
            // Invisible to this remote, as in listings.
            return Err(core.ctx(
                Error::new(
                    ErrorKind::NotFound,
                    "is a symbolic link (skipped; set follow_symlinks to follow it)",
                ),
                path,
            ));
        }
        attrs
    };
    entry_of(path.clone(), &attrs).ok_or_else(|| {
        core.ctx(
            Error::new(ErrorKind::Unsupported, "not a regular file or directory"),
            path,
        )
    })
}
