//! Small helpers the checks share: paths, whole-file writes and reads, listings, bodies that
//! fail or pause on purpose, and comparisons.

use std::collections::BTreeMap;
use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use time::OffsetDateTime;
use tokio::sync::oneshot;

use crate::entry::{Entry, WriteMeta};
use crate::error::{Error, ErrorKind};
use crate::path::RemotePath;
use crate::remote::{ByteStream, Remote};

/// What a check returns: `Err` carries a message saying what was expected and what happened.
pub(crate) type Check = std::result::Result<(), String>;

/// Fails the check with a formatted message unless `cond` holds.
macro_rules! ensure {
    ($cond:expr, $($fmt:tt)+) => {
        if !$cond {
            return Err(format!($($fmt)+));
        }
    };
}
pub(crate) use ensure;

/// A `RemotePath` from a literal the suite controls.
pub(crate) fn p(s: &str) -> Result<RemotePath, String> {
    RemotePath::new(s).map_err(|e| format!("bad test path {s:?}: {e}"))
}

/// An error with its whole source chain, for messages.
pub(crate) fn show(e: &Error) -> String {
    e.chain()
}

/// Deterministic pseudo-random content of `len` bytes (different for each `seed`).
pub(crate) fn content(len: usize, seed: u64) -> Bytes {
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut v = vec![0u8; len];
    rng.fill(&mut v);
    Bytes::from(v)
}

/// A body yielding `data` in chunks of `chunk` bytes.
pub(crate) fn chunked(data: Bytes, chunk: usize) -> ByteStream {
    let chunk = chunk.max(1);
    let pieces: Vec<crate::Result<Bytes>> = (0..data.len())
        .step_by(chunk)
        .map(|i| Ok(data.slice(i..(i + chunk).min(data.len()))))
        .collect();
    futures::stream::iter(pieces).boxed()
}

/// A body yielding `chunks` chunks of `chunk_size` bytes and then an error.
pub(crate) fn failing_body(chunks: usize, chunk_size: usize) -> ByteStream {
    let mut items: Vec<crate::Result<Bytes>> = (0..chunks)
        .map(|i| Ok(content(chunk_size, 1000 + i as u64)))
        .collect();
    items.push(Err(Error::new(
        ErrorKind::Io,
        "injected failure of the source stream (conformance atomicity check)",
    )));
    futures::stream::iter(items).boxed()
}

/// A body that yields `first`, tells `started` it is waiting, waits for `gate`, then yields
/// `second`: lets a check look at the target while a write is in progress.
pub(crate) fn paused_body(
    first: Bytes,
    second: Bytes,
    started: oneshot::Sender<()>,
    gate: oneshot::Receiver<()>,
) -> ByteStream {
    struct St {
        step: u8,
        first: Bytes,
        second: Bytes,
        started: Option<oneshot::Sender<()>>,
        gate: Option<oneshot::Receiver<()>>,
    }
    let st = St {
        step: 0,
        first,
        second,
        started: Some(started),
        gate: Some(gate),
    };
    futures::stream::unfold(st, |mut st| async move {
        match st.step {
            0 => {
                st.step = 1;
                let b = st.first.clone();
                Some((Ok(b), st))
            }
            1 => {
                if let Some(s) = st.started.take() {
                    let _ = s.send(());
                }
                if let Some(g) = st.gate.take() {
                    let _ = g.await;
                }
                st.step = 2;
                let b = st.second.clone();
                Some((Ok(b), st))
            }
            _ => None,
        }
    })
    .boxed()
}

/// Writes `data` (in 64 KiB chunks) to `path`.
pub(crate) async fn put(
    r: &Arc<dyn Remote>,
    path: &RemotePath,
    data: impl Into<Bytes>,
) -> Result<Entry, String> {
    put_meta(r, path, data.into(), WriteMeta::default()).await
}

/// Writes `data` to `path` with `meta` (its size is filled in) and checks the returned entry.
pub(crate) async fn put_meta(
    r: &Arc<dyn Remote>,
    path: &RemotePath,
    data: Bytes,
    mut meta: WriteMeta,
) -> Result<Entry, String> {
    let len = data.len() as u64;
    meta.size = Some(len);
    let e = r
        .write(path, chunked(data, 64 * 1024), meta)
        .await
        .map_err(|e| format!("write {path}: {}", show(&e)))?;
    ensure!(
        e.path == *path,
        "write {path} returned an entry for {:?}",
        e.path
    );
    ensure!(e.is_file(), "write {path} returned a {:?} entry", e.kind);
    ensure!(
        e.size == len,
        "write {path} of {len} bytes returned size {}",
        e.size
    );
    Ok(e)
}

/// Reads `path` (or a range) whole.
pub(crate) async fn get(
    r: &Arc<dyn Remote>,
    path: &RemotePath,
    range: Option<Range<u64>>,
) -> crate::Result<Vec<u8>> {
    let mut s = r.read(path, range).await?;
    let mut out = Vec::new();
    while let Some(chunk) = s.try_next().await? {
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

/// Reads `path` whole and compares it with `want`.
pub(crate) async fn expect_content(r: &Arc<dyn Remote>, path: &RemotePath, want: &[u8]) -> Check {
    let got = get(r, path, None)
        .await
        .map_err(|e| format!("read {path}: {}", show(&e)))?;
    ensure!(
        got == want,
        "read {path}: got {} bytes{}, want {} bytes",
        got.len(),
        first_difference(&got, want),
        want.len()
    );
    Ok(())
}

/// " (first difference at byte N)" or "" when one is a prefix of the other.
pub(crate) fn first_difference(a: &[u8], b: &[u8]) -> String {
    a.iter()
        .zip(b)
        .position(|(x, y)| x != y)
        .map(|i| format!(" (first difference at byte {i})"))
        .unwrap_or_default()
}

/// Lists `dir` into a map from full path to entry; fails on an error item or a duplicate.
pub(crate) async fn ls(
    r: &Arc<dyn Remote>,
    dir: &RemotePath,
) -> crate::Result<BTreeMap<String, Entry>> {
    let mut all = ls_raw(r, dir).await?;
    // Our temporary upload files are listed like any file; the engine never pairs them.
    all.retain(|_, e| !crate::temp::is_temp_name(e.name()));
    Ok(all)
}

/// A listing as the remote gives it, our temporary upload files included.
pub(crate) async fn ls_raw(
    r: &Arc<dyn Remote>,
    dir: &RemotePath,
) -> crate::Result<BTreeMap<String, Entry>> {
    let mut s = r.list(dir).await?;
    let mut out = BTreeMap::new();
    while let Some(e) = s.try_next().await? {
        let key = e.path.to_string();
        if out.insert(key.clone(), e).is_some() {
            return Err(Error::new(
                ErrorKind::Protocol,
                format!("listing of {dir:?} returned {key:?} twice"),
            ));
        }
    }
    Ok(out)
}

/// [`ls`] with the error turned into a message.
pub(crate) async fn ls_ok(
    r: &Arc<dyn Remote>,
    dir: &RemotePath,
) -> Result<BTreeMap<String, Entry>, String> {
    ls(r, dir)
        .await
        .map_err(|e| format!("list {dir:?}: {}", show(&e)))
}

/// The keys of a listing, for messages.
pub(crate) fn keys(m: &BTreeMap<String, Entry>) -> Vec<&str> {
    m.keys().map(String::as_str).collect()
}

/// Checks that `res` failed with `kind`.
pub(crate) fn expect_kind<T>(what: &str, res: crate::Result<T>, kind: ErrorKind) -> Check {
    match res {
        Ok(_) => Err(format!("{what}: succeeded, want a {kind:?} error")),
        Err(e) if e.kind() == kind => Ok(()),
        Err(e) => Err(format!(
            "{what}: failed with kind {:?}, want {kind:?}: {}",
            e.kind(),
            show(&e)
        )),
    }
}

/// Whether two modtimes agree within `precision` (strictly less than one unit apart, so both
/// truncating and rounding backends pass; 1 ns means equal).
pub(crate) fn within(a: OffsetDateTime, b: OffsetDateTime, precision: Duration) -> bool {
    let diff = (a - b).unsigned_abs();
    diff < precision || diff.is_zero()
}

/// Runs `fut` with a time limit, for probes that could hang on a broken backend.
pub(crate) async fn limit<T>(
    what: &str,
    secs: u64,
    fut: impl std::future::Future<Output = T>,
) -> Result<T, String> {
    tokio::time::timeout(Duration::from_secs(secs), fut)
        .await
        .map_err(|_| format!("{what}: no answer within {secs} s"))
}
