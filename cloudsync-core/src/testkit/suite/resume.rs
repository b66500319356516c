//! Resumable transfers to the remote (gated by [`Capabilities::resume`]): a transfer cut
//! mid-stream continues from what the remote kept, in the next run and in a low-level retry of
//! the same run; kept data that no longer matches (a changed source, a corrupted byte) is never
//! trusted.
//!
//! Some remotes only find out by trying whether the server can resume (a WebDAV server that
//! may or may not take ranged `PUT`): their [`Remote::write_at`] answers
//! [`ErrorKind::Unsupported`] at offset 0 and the engine writes the plain way. Against those
//! the checks make sure of the fallback: a cut transfer leaves nothing visible and nothing of
//! ours, and the next run is exact.
//!
//! [`Capabilities::resume`]: crate::Capabilities::resume

use std::collections::BTreeMap;
use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;

use super::support::{Check, content, ensure, get, ls_raw, p, show};
use crate::entry::{Entry, WriteMeta};
use crate::error::{ErrorKind, Result};
use crate::ops::{self, SyncOptions};
use crate::path::RemotePath;
use crate::remote::{ByteStream, Capabilities, EntryStream, Remote};
use crate::report::Summary;
use crate::temp::is_temp_name;
use crate::testkit::{Chaos, Fault, FaultPlan, MemFs, Op, Rule};

/// Size of the file the checks transfer (several of every backend's write chunks).
pub(super) const SIZE: usize = 3 * 1024 * 1024 + 4099;

/// What a second attempt may send beyond the missing bytes: the window compared before the
/// resume point and one chunk.
const SLACK: u64 = 64 * 1024 + 1024 * 1024;

/// A source wrapper counting the bytes read from it.
#[derive(Debug)]
struct CountingReads {
    inner: Arc<dyn Remote>,
    bytes: Arc<AtomicU64>,
}

#[async_trait]
impl Remote for CountingReads {
    fn describe(&self) -> String {
        self.inner.describe()
    }
    fn capabilities(&self) -> &Capabilities {
        self.inner.capabilities()
    }
    async fn list(&self, dir: &RemotePath) -> Result<EntryStream> {
        self.inner.list(dir).await
    }
    async fn stat(&self, path: &RemotePath) -> Result<Entry> {
        self.inner.stat(path).await
    }
    async fn read(&self, path: &RemotePath, range: Option<Range<u64>>) -> Result<ByteStream> {
        let bytes = self.bytes.clone();
        Ok(self
            .inner
            .read(path, range)
            .await?
            .inspect(move |c| {
                if let Ok(c) = c {
                    bytes.fetch_add(c.len() as u64, Ordering::Relaxed);
                }
            })
            .boxed())
    }
    async fn write(&self, path: &RemotePath, body: ByteStream, meta: WriteMeta) -> Result<Entry> {
        self.inner.write(path, body, meta).await
    }
    async fn mkdir(&self, dir: &RemotePath) -> Result<()> {
        self.inner.mkdir(dir).await
    }
    async fn remove_file(&self, path: &RemotePath) -> Result<()> {
        self.inner.remove_file(path).await
    }
    async fn remove_dir(&self, dir: &RemotePath) -> Result<()> {
        self.inner.remove_dir(dir).await
    }
}

/// An in-memory source holding `big.bin` = `data` (modtime `secs`), and a counter of the
/// bytes read from it through the returned remote.
pub(super) async fn source(
    data: &Bytes,
    secs: i64,
) -> std::result::Result<(Arc<dyn Remote>, Arc<MemFs>, Arc<AtomicU64>), String> {
    let mem = Arc::new(MemFs::new(&format!(
        "memfs://ck-resume-{:08x}",
        fastrand::u32(..)
    )));
    set_source(&mem, data, secs)?;
    let bytes = Arc::new(AtomicU64::new(0));
    let counted: Arc<dyn Remote> = Arc::new(CountingReads {
        inner: mem.clone(),
        bytes: bytes.clone(),
    });
    Ok((counted, mem, bytes))
}

pub(super) fn set_source(mem: &MemFs, data: &Bytes, secs: i64) -> Check {
    let t = time::OffsetDateTime::from_unix_timestamp(secs).map_err(|e| e.to_string())?;
    mem.put_file(&p("big.bin")?, data.clone(), t)
        .map_err(|e| format!("source: {}", show(&e)))
}

/// Options: resume above 1 MiB, quick retries, `low_level_retries` as given.
pub(super) fn opts(low_level_retries: u32) -> SyncOptions {
    SyncOptions {
        resume_above: Some(1024 * 1024),
        retries: 1,
        low_level_retries,
        retry_backoff: Duration::from_millis(20),
        ..Default::default()
    }
}

/// A source whose read of `big.bin` is cut after `after` bytes, once.
pub(super) fn cut_source(
    src: &Arc<dyn Remote>,
    after: u64,
) -> std::result::Result<Arc<dyn Remote>, String> {
    cut_source_times(src, after, 1)
}

/// A source whose reads of `big.bin` are cut after `after` bytes, `times` times.
fn cut_source_times(
    src: &Arc<dyn Remote>,
    after: u64,
    times: u32,
) -> std::result::Result<Arc<dyn Remote>, String> {
    Ok(Arc::new(Chaos::new(
        src.clone(),
        FaultPlan {
            rules: vec![Rule {
                op: Op::Read,
                path: Some(p("big.bin")?),
                skip: 0,
                times,
                fault: Fault::ReadCut {
                    after,
                    kind: ErrorKind::Transient,
                },
            }],
        },
    )))
}

/// Creates the check's directory, so that it can be listed whatever the cut run did.
pub(super) async fn make_root(r: &Arc<dyn Remote>) -> Check {
    r.mkdir(&RemotePath::root())
        .await
        .map_err(|e| format!("mkdir: {}", show(&e)))
}

/// Our temporary and partial files at the root of `r`, name to size.
pub(super) async fn parts(
    r: &Arc<dyn Remote>,
) -> std::result::Result<BTreeMap<String, u64>, String> {
    Ok(ls_raw(r, &RemotePath::root())
        .await
        .map_err(|e| format!("list: {}", show(&e)))?
        .into_values()
        .filter(|e| is_temp_name(e.name()))
        .map(|e| (e.name().to_owned(), e.size))
        .collect())
}

pub(super) async fn copy(
    what: &str,
    src: &Arc<dyn Remote>,
    dst: &Arc<dyn Remote>,
    o: &SyncOptions,
) -> std::result::Result<Summary, String> {
    ops::copy(src, dst, o)
        .await
        .map_err(|e| format!("{what}: {}", show(&e)))
}

pub(super) async fn expect_exact(what: &str, r: &Arc<dyn Remote>, want: &Bytes) -> Check {
    let got = get(r, &p("big.bin")?, None)
        .await
        .map_err(|e| format!("{what}: read big.bin: {}", show(&e)))?;
    ensure!(
        got.len() == want.len() && got[..] == want[..],
        "{what}: big.bin has {} bytes{}, want {} bytes",
        got.len(),
        super::support::first_difference(&got, want),
        want.len()
    );
    let left = parts(r).await?;
    ensure!(
        left.is_empty(),
        "{what}: temporary or partial files left: {left:?}"
    );
    Ok(())
}

/// Whether `write_at` works on `remote` (tried on a partial-file name at its root, removed
/// after); `false` when it answers [`ErrorKind::Unsupported`].
async fn takes_write_at(remote: &Arc<dyn Remote>) -> std::result::Result<bool, String> {
    let probe = p(&crate::temp::part_name(
        "00000000000000ff",
        "write-at-probe.bin",
        255,
    ))?;
    match remote
        .write_at(&probe, 0, crate::remote::bytes_stream("probe"), Some(5))
        .await
    {
        Ok(n) => {
            remote
                .remove_file(&probe)
                .await
                .map_err(|e| format!("remove the write_at probe: {}", show(&e)))?;
            ensure!(n == 5, "write_at of 5 bytes at offset 0 reports {n} bytes");
            Ok(true)
        }
        Err(e) if e.kind() == ErrorKind::Unsupported => Ok(false),
        Err(e) => Err(format!("write_at at offset 0: {}", show(&e))),
    }
}

/// For a remote whose `write_at` turned out unsupported: a copy cut at a random point reports
/// a temporary error and leaves neither the file nor any temporary or partial file; the next
/// run is exact and resumes nothing.
async fn check_fallback(remote: &Arc<dyn Remote>, seed: u64) -> Check {
    let data = content(SIZE, seed);
    let size = SIZE as u64;
    let (src, _mem, _) = source(&data, 1_600_000_000).await?;
    let after = fastrand::u64(size / 4..size * 3 / 4);
    // Every read is cut: the engine may open the source for the resumable path before the
    // remote says it cannot take it, and then read it again for the plain write.
    let cut = cut_source_times(&src, after, u32::MAX)?;
    let first = copy("cut copy", &cut, remote, &opts(0)).await?;
    ensure!(
        first.errors.len() == 1 && first.errors[0].temporary,
        "the cut copy (at byte {after}) reports {:?}, want one temporary error",
        first.errors
    );
    match remote.stat(&p("big.bin")?).await {
        Err(e) if e.kind() == ErrorKind::NotFound => {}
        other => return Err(format!("after the cut, big.bin is visible: {other:?}")),
    }
    let left = parts(remote).await?;
    ensure!(left.is_empty(), "a cut copy without write_at left {left:?}");
    let second = copy("the copy after the cut", &src, remote, &opts(0)).await?;
    ensure!(
        second.is_ok() && second.bytes_resumed == 0,
        "the copy after the cut: errors {:?}, {} bytes resumed",
        second.errors,
        second.bytes_resumed
    );
    expect_exact("after the copy that followed a cut", remote, &data).await
}

/// A copy whose source is cut at a random point leaves nothing under the final name and
/// keeps a partial file; the next run is exact, reports the kept bytes as resumed, and reads
/// at most the missing bytes plus a window and one chunk from the source. In one run, a
/// low-level retry after a cut continues the same way. (Where `write_at` turns out
/// unsupported, the fallback is checked instead.)
pub async fn check_resume(remote: &Arc<dyn Remote>) -> Check {
    if !remote.capabilities().resume {
        return Ok(());
    }
    make_root(remote).await?;
    if !takes_write_at(remote).await? {
        return check_fallback(remote, 71).await;
    }
    let data = content(SIZE, 71);
    let size = SIZE as u64;
    let (src, _mem, read) = source(&data, 1_600_000_000).await?;

    // Across runs.
    let after = fastrand::u64(size / 4..size * 3 / 4);
    let first = copy("cut copy", &cut_source(&src, after)?, remote, &opts(0)).await?;
    ensure!(
        first.errors.len() == 1 && first.errors[0].temporary,
        "the cut copy (at byte {after}) reports {:?}, want one temporary error",
        first.errors
    );
    match remote.stat(&p("big.bin")?).await {
        Err(e) if e.kind() == ErrorKind::NotFound => {}
        other => return Err(format!("after the cut, big.bin is visible: {other:?}")),
    }
    let kept_parts = parts(remote).await?;
    ensure!(
        kept_parts.len() == 1,
        "after a cut at byte {after}, the partial files are {kept_parts:?}, want one"
    );
    let kept = kept_parts.values().copied().next().unwrap_or(0);
    ensure!(
        kept > 0 && kept <= after,
        "the partial file keeps {kept} bytes of a transfer cut at {after}"
    );
    read.store(0, Ordering::Relaxed);
    let second = copy("the copy after the cut", &src, remote, &opts(0)).await?;
    ensure!(
        second.is_ok(),
        "the copy after the cut failed: {:?}",
        second.errors
    );
    expect_exact("after the resumed copy", remote, &data).await?;
    let sent = read.load(Ordering::Relaxed);
    ensure!(
        sent <= size - kept + SLACK,
        "the resumed copy read {sent} bytes from the source; {} were missing (kept {kept})",
        size - kept
    );
    ensure!(
        second.bytes_resumed == kept && second.bytes == size,
        "the resumed copy reports {} bytes, {} resumed; want {size} and {kept}",
        second.bytes,
        second.bytes_resumed
    );

    // In one run: a low-level retry continues.
    remote
        .remove_file(&p("big.bin")?)
        .await
        .map_err(|e| format!("remove big.bin: {}", show(&e)))?;
    read.store(0, Ordering::Relaxed);
    let after = fastrand::u64(size / 4..size * 3 / 4);
    let one = copy(
        "copy with a retried cut",
        &cut_source(&src, after)?,
        remote,
        &opts(3),
    )
    .await?;
    ensure!(
        one.is_ok(),
        "the copy with a retried cut failed: {:?}",
        one.errors
    );
    expect_exact("after a retried cut", remote, &data).await?;
    let total = read.load(Ordering::Relaxed);
    ensure!(
        one.bytes_resumed > 0 && total <= after + size - one.bytes_resumed + SLACK,
        "a retry after a cut at {after} resumed {} bytes and read {total} in all",
        one.bytes_resumed
    );
    Ok(())
}

/// Kept data that does not match is never used: a partial file with a corrupted byte before
/// the resume point is detected and the file sent again whole; a source changed between two
/// runs gets the new content, and the old partial file is gone. (Where `write_at` turns out
/// unsupported, the fallback is checked instead.)
pub async fn check_resume_mismatch(remote: &Arc<dyn Remote>) -> Check {
    if !remote.capabilities().resume {
        return Ok(());
    }
    make_root(remote).await?;
    if !takes_write_at(remote).await? {
        return check_fallback(remote, 72).await;
    }
    let data = content(SIZE, 72);
    let size = SIZE as u64;
    let (src, mem, _) = source(&data, 1_600_000_000).await?;

    // A corrupted byte in the kept prefix.
    let after = fastrand::u64(size / 4..size * 3 / 4);
    let cut = copy("cut copy", &cut_source(&src, after)?, remote, &opts(0)).await?;
    let kept_parts = parts(remote)
        .await
        .map_err(|e| format!("{e} (after a cut copy that reported {:?})", cut.errors))?;
    let Some((name, kept)) = kept_parts.into_iter().next() else {
        return Err("no partial file after a cut".to_owned());
    };
    ensure!(kept > 2, "the partial file keeps {kept} bytes");
    let part = p(&name)?;
    let mut bad = get(remote, &part, None)
        .await
        .map_err(|e| format!("read the partial file: {}", show(&e)))?;
    let at = usize::try_from(kept - 1 - fastrand::u64(..kept.min(64 * 1024) - 1)).unwrap_or(0);
    bad[at] ^= 0x5a;
    let total = bad.len() as u64;
    remote
        .write_at(
            &part,
            0,
            super::support::chunked(Bytes::from(bad), 64 * 1024),
            Some(total),
        )
        .await
        .map_err(|e| format!("corrupt the partial file: {}", show(&e)))?;
    let s = copy("copy over a corrupted partial file", &src, remote, &opts(0)).await?;
    ensure!(
        s.is_ok(),
        "the copy over a corrupted partial failed: {:?}",
        s.errors
    );
    ensure!(
        s.bytes_resumed == 0,
        "a partial file corrupted at byte {at} was resumed ({} bytes)",
        s.bytes_resumed
    );
    expect_exact("after a corrupted partial file", remote, &data).await?;

    // A source changed between runs.
    remote
        .remove_file(&p("big.bin")?)
        .await
        .map_err(|e| format!("remove big.bin: {}", show(&e)))?;
    copy("cut copy", &cut_source(&src, size / 2)?, remote, &opts(0)).await?;
    ensure!(
        parts(remote).await?.len() == 1,
        "no partial file after a cut"
    );
    let mut newer = data.to_vec();
    newer[10] ^= 1;
    newer[SIZE - 10] ^= 1;
    let newer = Bytes::from(newer);
    set_source(&mem, &newer, 1_600_000_100)?;
    let s = copy("copy of a changed source", &src, remote, &opts(0)).await?;
    ensure!(
        s.is_ok(),
        "the copy of a changed source failed: {:?}",
        s.errors
    );
    ensure!(
        s.bytes_resumed == 0,
        "the old partial data of a changed source was resumed ({} bytes)",
        s.bytes_resumed
    );
    expect_exact("after a changed source", remote, &newer).await
}
