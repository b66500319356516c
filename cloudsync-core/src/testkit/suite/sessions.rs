//! Resumable uploads through upload sessions (gated by [`Capabilities::resume_sessions`]): an
//! upload cut mid-stream continues from the bytes the server holds, in a low-level retry of
//! the same run and in a later run that reads the same record file; a source changed between
//! the two leaves no stale byte; a session the server no longer knows restarts cleanly.
//!
//! The bound on what the second attempt sends ("the missing bytes plus one chunk") assumes the
//! backend commits chunks of at most [`SESSION_CHUNK_SLACK`] bytes; backend tests configure their
//! chunk size accordingly.
//!
//! [`Capabilities::resume_sessions`]: crate::Capabilities::resume_sessions

use std::sync::Arc;
use std::sync::atomic::Ordering;

use bytes::Bytes;

use super::resume::{SIZE, copy, cut_source, expect_exact, make_root, opts, set_source, source};
use super::support::{Check, content, ensure, p, show};
use crate::error::ErrorKind;
use crate::ops::SyncOptions;
use crate::remote::Remote;
use crate::report::Summary;
use crate::resume_state::{SessionRecord, SessionStore};

/// The largest chunk a backend may lose when an upload is cut (what it had received of the
/// chunk in flight): the second attempt may send this much beyond what the first did not.
pub const SESSION_CHUNK_SLACK: u64 = 1024 * 1024;

/// The most a source read yields in one chunk beyond a cut (it is counted whole).
const READ_CHUNK: u64 = 64 * 1024;

/// Options with a record store.
fn sopts(low_level_retries: u32, store: &SessionStore) -> SyncOptions {
    SyncOptions {
        sessions: store.clone(),
        ..opts(low_level_retries)
    }
}

/// The record of `big.bin`'s session in `store`.
fn record(
    store: &SessionStore,
    remote: &Arc<dyn Remote>,
) -> std::result::Result<Option<SessionRecord>, String> {
    Ok(store.get(&remote.describe(), &p("big.bin")?))
}

/// A cut upload: one temporary error, nothing visible, a session recorded in the store file.
async fn cut_upload(
    what: &str,
    src: &Arc<dyn Remote>,
    remote: &Arc<dyn Remote>,
    after: u64,
    file: &std::path::Path,
) -> std::result::Result<SessionRecord, String> {
    let first = copy(
        what,
        &cut_source(src, after)?,
        remote,
        &sopts(0, &SessionStore::open(file)),
    )
    .await?;
    ensure!(
        first.errors.len() == 1 && first.errors[0].temporary,
        "{what} (cut at byte {after}) reports {:?}, want one temporary error ({} files, {} bytes \
         transferred)",
        first.errors,
        first.transferred,
        first.bytes
    );
    match remote.stat(&p("big.bin")?).await {
        Err(e) if e.kind() == ErrorKind::NotFound => {}
        other => return Err(format!("after {what}, big.bin is visible: {other:?}")),
    }
    record(&SessionStore::open(file), remote)?
        .ok_or_else(|| format!("after {what}, no upload session is recorded in the store file"))
}

fn expect_ok(what: &str, s: &Summary) -> Check {
    ensure!(s.is_ok(), "{what} failed: {:?}", s.errors);
    Ok(())
}

/// An upload cut at a random point continues in a later run (a new store opened on the same
/// file) from the bytes the server holds — which are at least all but one chunk of what was
/// sent — and in a low-level retry of one run; the result is exact and the record is gone.
pub async fn check_session_resume(remote: &Arc<dyn Remote>) -> Check {
    check_session_resume_sized(remote, SESSION_CHUNK_SLACK).await
}

/// [`check_session_resume`] for a backend that may lose up to `chunk` bytes of a cut upload
/// (its chunk size): the file is large enough that every cut point leaves whole chunks.
pub async fn check_session_resume_sized(remote: &Arc<dyn Remote>, chunk: u64) -> Check {
    if !remote.capabilities().resume_sessions {
        return Ok(());
    }
    // Cuts fall between a quarter and three quarters of the file: at least one whole chunk
    // lies before each.
    let len = SIZE.max(usize::try_from(chunk * 4 + 4099).map_err(|e| e.to_string())?);
    let data = content(len, 81);
    let size = len as u64;
    let (src, _mem, read) = source(&data, 1_600_000_000).await?;
    make_root(remote).await?;
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let file = dir.path().join("uploads.json");

    // Across runs, through the record file.
    let after = fastrand::u64(size / 4..size * 3 / 4);
    let rec = cut_upload("the cut upload", &src, remote, after, &file).await?;
    let kept = remote
        .session_offset(&rec.token)
        .await
        .map_err(|e| format!("session_offset after the cut: {}", show(&e)))?;
    ensure!(
        kept <= after && kept + chunk >= after && kept > 0,
        "the session of an upload cut at byte {after} holds {kept} bytes"
    );
    read.store(0, Ordering::Relaxed);
    let store = SessionStore::open(&file);
    let second = copy("the upload after the cut", &src, remote, &sopts(0, &store)).await?;
    expect_ok("the upload after the cut", &second)?;
    expect_exact("after the resumed upload", remote, &data).await?;
    let sent = read.load(Ordering::Relaxed);
    ensure!(
        sent <= size - after + chunk && sent == size - kept,
        "the resumed upload read {sent} bytes from the source; the cut one had sent {after} \
         of {size}, and the session held {kept}"
    );
    ensure!(
        second.bytes_resumed == kept && second.bytes == size,
        "the resumed upload reports {} bytes, {} resumed; want {size} and {kept}",
        second.bytes,
        second.bytes_resumed
    );
    ensure!(
        record(&SessionStore::open(&file), remote)?.is_none(),
        "the finished upload's session is still recorded"
    );

    // In one run: a low-level retry continues (the default in-memory store).
    remote
        .remove_file(&p("big.bin")?)
        .await
        .map_err(|e| format!("remove big.bin: {}", show(&e)))?;
    read.store(0, Ordering::Relaxed);
    let after = fastrand::u64(size / 4..size * 3 / 4);
    let o = opts(3);
    let one = copy(
        "an upload with a retried cut",
        &cut_source(&src, after)?,
        remote,
        &o,
    )
    .await?;
    expect_ok("the upload with a retried cut", &one)?;
    expect_exact("after a retried cut", remote, &data).await?;
    let total = read.load(Ordering::Relaxed);
    ensure!(
        one.bytes_resumed > 0
            && one.bytes_resumed <= after
            && one.bytes_resumed + chunk >= after
            // The cut source counts the whole read chunk holding the cut point.
            && total <= after + READ_CHUNK + size - one.bytes_resumed,
        "a retry after a cut at {after} resumed {} bytes and read {total} in all",
        one.bytes_resumed
    );
    ensure!(
        o.sessions.is_empty(),
        "a finished upload's session is still recorded"
    );
    Ok(())
}

/// A source changed between a cut upload and the next run gets the new content whole (no
/// stale byte of the old session), and an expired session (here: cancelled, which the
/// server then reports as unknown) is replaced by a new one; both leave no record behind.
pub async fn check_session_stale(remote: &Arc<dyn Remote>) -> Check {
    if !remote.capabilities().resume_sessions {
        return Ok(());
    }
    let data = content(SIZE, 82);
    let size = SIZE as u64;
    let (src, mem, _) = source(&data, 1_600_000_000).await?;
    make_root(remote).await?;
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let file = dir.path().join("uploads.json");

    // A source changed between runs.
    cut_upload("the cut upload", &src, remote, size / 2, &file).await?;
    let mut newer = data.to_vec();
    newer[10] ^= 1;
    newer[SIZE - 10] ^= 1;
    let newer = Bytes::from(newer);
    set_source(&mem, &newer, 1_600_000_100)?;
    let store = SessionStore::open(&file);
    let s = copy(
        "the upload of a changed source",
        &src,
        remote,
        &sopts(0, &store),
    )
    .await?;
    expect_ok("the upload of a changed source", &s)?;
    ensure!(
        s.bytes_resumed == 0,
        "the old session of a changed source was resumed ({} bytes)",
        s.bytes_resumed
    );
    expect_exact("after a changed source", remote, &newer).await?;
    ensure!(
        SessionStore::open(&file).is_empty(),
        "records are left after the upload of a changed source"
    );

    // An expired session.
    remote
        .remove_file(&p("big.bin")?)
        .await
        .map_err(|e| format!("remove big.bin: {}", show(&e)))?;
    let rec = cut_upload("the second cut upload", &src, remote, size / 2, &file).await?;
    remote
        .session_cancel(&rec.token)
        .await
        .map_err(|e| format!("session_cancel: {}", show(&e)))?;
    match remote.session_offset(&rec.token).await {
        Err(e) if e.kind() == ErrorKind::NotFound => {}
        other => {
            return Err(format!(
                "a cancelled session is not reported as NotFound: {:?}",
                other.map_err(|e| show(&e))
            ));
        }
    }
    let store = SessionStore::open(&file);
    let s = copy(
        "the upload after an expired session",
        &src,
        remote,
        &sopts(0, &store),
    )
    .await?;
    expect_ok("the upload after an expired session", &s)?;
    ensure!(
        s.bytes_resumed == 0,
        "an expired session was resumed ({} bytes)",
        s.bytes_resumed
    );
    expect_exact("after an expired session", remote, &newer).await?;
    ensure!(
        SessionStore::open(&file).is_empty(),
        "records are left after the upload that replaced an expired session"
    );
    Ok(())
}
