//! [`copy_file`]: one verified file transfer between any two paths of two remotes (the
//! building block of drop-folder ingestion, whose archive names differ from the source names).

use std::sync::Arc;

use crate::entry::{Entry, WriteMeta};
use crate::error::{Error, ErrorKind, Result};
use crate::exec::verify::BodyCheck;
use crate::path::RemotePath;
use crate::plan::equal::modtime_window;
use crate::remote::Remote;
use crate::report::Event;
use crate::retry::RetryPolicy;

use super::SyncOptions;

/// Copies the file `src_path` of `src` to `dst_path` on `dst` and verifies the result; returns
/// the destination's entry.
///
/// The source is stat'ed first, then streamed (or, from a local directory, handed over as a
/// file) into [`Remote::write`], which is atomic. While streaming, the bytes are counted and
/// hashed with every hash kind the destination declares; the transfer fails (and the
/// destination file is removed) when the byte count, the written size or a hash the written
/// entry reports disagrees with the source. The modtime is then set where the destination
/// keeps modtimes. Temporary failures are retried up to
/// [`SyncOptions::low_level_retries`] times. Only `low_level_retries`, `retry_backoff` and
/// `events` of `opts` are used.
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
    let policy = RetryPolicy {
        max_retries: opts.low_level_retries,
        base: opts.retry_backoff,
        ..Default::default()
    };
    policy
        .run(
            || copy_once(src, dst, entry, dst_path, opts),
            |e, n| {
                opts.emit(Event::Failed {
                    path: entry.path.clone(),
                    error: format!("{} (low-level retry {n})", e.chain()),
                    will_retry: true,
                })
            },
        )
        .await
}

async fn copy_once(
    src: &Arc<dyn Remote>,
    dst: &Arc<dyn Remote>,
    entry: &Entry,
    dst_path: &RemotePath,
    opts: &SyncOptions,
) -> Result<Entry> {
    let meta = WriteMeta::from_entry(entry);
    opts.emit(Event::TransferStarted {
        path: entry.path.clone(),
        size: entry.size,
    });
    let (mut written, computed) = match src.local_path(&entry.path) {
        Some(local) => (dst.write_from_file(dst_path, &local, meta).await?, None),
        None => {
            // Checked in flight: a source that changed fails the body, so the atomic write
            // keeps the destination's previous file.
            let check = BodyCheck::new(entry, &dst.capabilities().hashes);
            let body = src.read(&entry.path, None).await?;
            let written = dst.write(dst_path, check.wrap(body), meta).await?;
            (written, Some(check.finish().1))
        }
    };
    let corrupt = |why: &str| {
        Error::new(ErrorKind::Protocol, format!("corrupted on transfer: {why}"))
            .with_path(dst_path)
            .set_temporary(true)
    };
    if written.size != entry.size {
        discard(dst, dst_path).await;
        return Err(corrupt(&format!(
            "sizes differ (source {}, destination {})",
            entry.size, written.size
        )));
    }
    if let Some(h) = &computed {
        // What was stored must be what we sent.
        if h.matches(&written.hashes) == Some(false) {
            discard(dst, dst_path).await;
            return Err(corrupt("hashes differ"));
        }
    }
    if written.hashes.matches(&entry.hashes) == Some(false) {
        discard(dst, dst_path).await;
        return Err(corrupt("hashes differ"));
    }
    let window = modtime_window(
        src.capabilities(),
        dst.capabilities(),
        std::time::Duration::ZERO,
    );
    if let (Some(window), Some(want)) = (window, entry.modtime) {
        let ok = written
            .modtime
            .is_some_and(|got| (got - want).abs() <= window);
        if !ok && dst.capabilities().set_modtime {
            dst.set_modtime(dst_path, want).await?;
            written.modtime = Some(want);
        }
    }
    opts.emit(Event::TransferDone {
        path: entry.path.clone(),
        bytes: entry.size,
        action: crate::plan::Action::Copy,
    });
    Ok(written)
}

/// Removes a destination file that failed verification (best effort).
async fn discard(dst: &Arc<dyn Remote>, path: &RemotePath) {
    if let Err(e) = dst.remove_file(path).await
        && e.kind() != ErrorKind::NotFound
    {
        tracing::warn!(%path, error = %e, "could not remove a corrupt transfer");
    }
}
