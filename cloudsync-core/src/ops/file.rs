//! [`copy_file`]: one verified file transfer between any two paths of two remotes (the
//! building block of drop-folder ingestion, whose archive names differ from the source names).

use std::sync::Arc;

use crate::entry::Entry;
use crate::error::{Error, ErrorKind, Result};
use crate::exec::Transferer;
use crate::path::RemotePath;
use crate::plan::Action;
use crate::remote::Remote;
use crate::report::Event;

use super::SyncOptions;

/// Copies the file `src_path` of `src` to `dst_path` on `dst` and verifies the result; returns
/// the destination's entry.
///
/// This is the transfer [`sync`](super::sync) makes for each file. The source is stat'ed
/// first. When both remotes are directories of one remote that copies on the server, the file
/// is copied there; otherwise it is streamed (or, from a local directory, handed over as a
/// file) into [`Remote::write`], which is atomic. While streaming, the bytes are counted and
/// hashed (with a hash kind the source listed or the destination reports), so a source that
/// changes fails the write and the destination keeps its previous file. The transfer fails,
/// and the destination file is removed, when the written size, the hash the destination
/// reports for the bytes sent, or a hash the source listed disagrees. The modtime is then set
/// where the destination keeps modtimes. Temporary failures are retried up to
/// [`SyncOptions::low_level_retries`] times. Of `opts`, only `low_level_retries`,
/// `retry_backoff`, `events` (transfer started, progress, retries and done, all under
/// `src_path`) and `compare.modify_window` are used.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> cloudsync_core::Result<()> {
/// use cloudsync_core::{bytes_stream, memory, ops, Remote, RemotePath, WriteMeta};
/// let (a, b) = (memory(), memory());
/// a.write(&RemotePath::new("in.txt")?, bytes_stream("data"), WriteMeta::default()).await?;
/// let e = ops::copy_file(
///     &a, &b, &RemotePath::new("in.txt")?, &RemotePath::new("2026/out.txt")?, &Default::default(),
/// ).await?;
/// assert_eq!(e.size, 4);
/// # Ok(())
/// # }
/// ```
pub async fn copy_file(
    src: &Arc<dyn Remote>,
    dst: &Arc<dyn Remote>,
    src_path: &RemotePath,
    dst_path: &RemotePath,
    opts: &SyncOptions,
) -> Result<Entry> {
    let entry = src.stat(src_path).await?;
    if !entry.is_file() {
        return Err(Error::new(ErrorKind::Conflict, "not a file")
            .with_operation("copy_file")
            .with_path(src_path));
    }
    copy_entry(src, dst, &entry, dst_path, opts).await
}

/// [`copy_file`] for a source entry already at hand (no extra `stat`).
pub(crate) async fn copy_entry(
    src: &Arc<dyn Remote>,
    dst: &Arc<dyn Remote>,
    entry: &Entry,
    dst_path: &RemotePath,
    opts: &SyncOptions,
) -> Result<Entry> {
    let xfer = Transferer::new(src.clone(), dst.clone(), opts, false, None);
    let written = xfer.transfer(entry, dst_path, &entry.path).await?;
    opts.emit(Event::TransferDone {
        path: entry.path.clone(),
        bytes: written.size,
        action: Action::Copy,
    });
    Ok(written)
}
