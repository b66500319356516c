//! Resumable uploads through a backend's upload session (destinations with
//! [`Capabilities::resume_sessions`](crate::Capabilities::resume_sessions): Drive, Cloud
//! Storage, Dropbox), for files of at least [`SyncOptions::resume_above`] bytes.
//!
//! A cloud service cannot hold a partial file under a name; it holds an upload session. The
//! session's token goes into the run's [`SessionStore`](crate::SessionStore), keyed by the
//! destination and path, with the source's fingerprint ([`part_key`]: size, modtime, hashes).
//! The next attempt — a low-level retry, or a later run with the same store file — finds it:
//! with the same fingerprint it asks the server how many bytes it holds
//! ([`Remote::session_offset`](crate::Remote::session_offset)) and sends only the rest;
//! with another fingerprint (the source changed) the old session is cancelled and a new one
//! opened, so no stale byte survives; a session the server no longer knows (expired) is
//! replaced by a new one.
//!
//! What the server kept cannot be read back, so the fingerprint decides whether to trust it,
//! and the whole content is checked once the upload finished: when the source is a local
//! file, its first `offset` bytes are hashed and the hasher goes on over the bytes sent, so
//! the hash covers every byte of the file; else a hash the source lists or computes is used.
//! The source's listed hashes also go to the backend, which passes them to a service that
//! checks them before the file becomes visible (Cloud Storage). A finished file whose hash is
//! not the source's is removed and the transfer fails with a temporary error; its record is
//! gone by then, so the retry uploads it whole through a new session and a rerun converges.
//!
//! [`SyncOptions::resume_above`]: super::options::SyncOptions::resume_above
//! [`part_key`]: crate::part_key

use std::sync::atomic::Ordering;

use futures::TryStreamExt;

use crate::entry::{Entry, WriteMeta};
use crate::error::{Error, ErrorKind, Result};
use crate::hash::{HashKind, Hashes, MultiHasher};
use crate::path::RemotePath;
use crate::report::Event;
use crate::resume_state::SessionToken;
use crate::temp::part_key;

use super::transfer::Transferer;
use super::verify::BodyCheck;

impl Transferer {
    /// Whether `src` goes through an upload session: it is at least `resume_above` bytes and
    /// the destination has sessions.
    pub(super) fn uses_sessions(&self, src: &Entry) -> bool {
        let Some(above) = self.resume_above.filter(|n| *n > 0) else {
            return false;
        };
        src.size >= above && self.dst.capabilities().resume_sessions
    }

    /// One attempt of an upload of `src` to `path` through a session; `None` when the
    /// destination turned out not to support sessions (the caller then writes the plain way).
    pub(super) async fn copy_session(
        &self,
        src: &Entry,
        path: &RemotePath,
        shown: &RemotePath,
    ) -> Result<Option<Entry>> {
        let remote = self.dst.describe();
        let key = part_key(src, path);
        let meta = WriteMeta::from_entry(src);
        let (token, offset) = match self.kept_session(&remote, src, path, &key).await? {
            Some(kept) => kept,
            None => {
                let token = match self.dst.session_start(path, src.size, &meta).await {
                    Err(e) if e.kind() == ErrorKind::Unsupported => return Ok(None),
                    other => other?,
                };
                self.sessions.put(&remote, path, &key, token.clone());
                (token, 0)
            }
        };
        let kind = BodyCheck::shared_kind(src, &self.dst.capabilities().hashes);
        let check = if offset == 0 {
            BodyCheck::new(src, &self.dst.capabilities().hashes)
        } else {
            let prefix = self.hash_source_prefix(src, offset, kind).await?;
            tracing::info!(%path, offset, "resuming an upload session");
            self.emit(Event::Resumed {
                path: shown.clone(),
                offset,
            });
            BodyCheck::resumed(src, offset, prefix)
        };
        let range = (offset > 0).then_some(offset..src.size);
        let body = self.src.read(&src.path, range).await?;
        let body = check.wrap(self.count(body, shown.clone(), src.size, offset));
        let mut written = match self
            .dst
            .session_write(&token, path, offset, body, meta)
            .await
        {
            Ok(w) => w,
            Err(e) => {
                match e.kind() {
                    // The session is gone: the next attempt opens a new one.
                    ErrorKind::NotFound => self.sessions.remove(&remote, path),
                    // The session and what was sent disagree (a source that changed, an
                    // offset the server did not take): start again.
                    ErrorKind::ConditionNotMatch => self.abandon(&remote, path, &token).await,
                    // Anything else keeps the session for the next attempt.
                    _ => {}
                }
                return Err(e);
            }
        };
        self.sessions.remove(&remote, path);
        let (_, sent) = check.finish();
        self.check_whole_upload(src, path, &written, &sent).await?;
        written.path = path.clone();
        written.hashes.merge(&sent);
        let done = self.verify(src, path, written).await?;
        self.resumed.fetch_add(offset, Ordering::Relaxed);
        Ok(Some(done))
    }

    /// The recorded session of `path`, and the bytes the server holds of it, when it can be
    /// continued: same source fingerprint, known to the server, not longer than the source.
    /// A record that cannot be continued is dropped (and its session cancelled).
    async fn kept_session(
        &self,
        remote: &str,
        src: &Entry,
        path: &RemotePath,
        key: &str,
    ) -> Result<Option<(SessionToken, u64)>> {
        let Some(rec) = self.sessions.get(remote, path) else {
            return Ok(None);
        };
        if rec.key != key {
            tracing::info!(%path, "the source changed since its upload session opened; starting again");
            self.abandon(remote, path, &rec.token).await;
            return Ok(None);
        }
        match self.dst.session_offset(&rec.token).await {
            Ok(n) if n <= src.size => Ok(Some((rec.token, n))),
            Ok(n) => {
                tracing::warn!(%path, held = n, size = src.size, "the upload session holds more than the file; starting again");
                self.abandon(remote, path, &rec.token).await;
                Ok(None)
            }
            Err(e) if e.kind() == ErrorKind::NotFound => {
                tracing::info!(%path, "the upload session expired; starting again");
                self.sessions.remove(remote, path);
                Ok(None)
            }
            Err(e) if e.is_retryable() => Err(e),
            Err(e) => {
                tracing::debug!(%path, error = %e, "cannot ask the upload session; starting again");
                self.abandon(remote, path, &rec.token).await;
                Ok(None)
            }
        }
    }

    /// Cancels a session (best effort) and forgets it.
    async fn abandon(&self, remote: &str, path: &RemotePath, token: &SessionToken) {
        if let Err(e) = self.dst.session_cancel(token).await
            && e.kind() != ErrorKind::NotFound
            && e.kind() != ErrorKind::Unsupported
        {
            tracing::debug!(%path, error = %e, "cannot cancel an upload session");
        }
        self.sessions.remove(remote, path);
    }

    /// A hasher of `kind` fed the first `offset` bytes of a local source, so the hash of the
    /// upload covers the whole file; `None` when the source is not local or no kind is known.
    async fn hash_source_prefix(
        &self,
        src: &Entry,
        offset: u64,
        kind: Option<HashKind>,
    ) -> Result<Option<MultiHasher>> {
        let (Some(kind), Some(_)) = (kind, self.src.local_path(&src.path)) else {
            return Ok(None);
        };
        let mut hasher = MultiHasher::new(&[kind]);
        let mut prefix = self.src.read(&src.path, Some(0..offset)).await?;
        let mut n = 0u64;
        while let Some(c) = prefix.try_next().await? {
            n += c.len() as u64;
            hasher.update(&c);
        }
        if n != offset {
            return Err(Error::new(
                ErrorKind::ConditionNotMatch,
                format!("source changed during transfer: expected {offset} bytes of it, read {n}"),
            ));
        }
        Ok(Some(hasher))
    }

    /// Checks the finished upload's content against the source: the hash of every byte
    /// (`sent`, when it covers the whole file), else a hash the source lists or computes, in
    /// a kind the destination reports. Without one, only the size vouches for it. A mismatch
    /// removes the file.
    async fn check_whole_upload(
        &self,
        src: &Entry,
        path: &RemotePath,
        written: &Entry,
        sent: &Hashes,
    ) -> Result<()> {
        let dst_kinds = self.dst.capabilities().hashes.clone();
        let theirs = |k: HashKind| written.hashes.get(k).map(str::to_owned);
        let mut want: Option<(HashKind, String)> = dst_kinds
            .iter()
            .chain(HashKind::ALL.iter())
            .find_map(|k| sent.get(*k).map(|v| (*k, v.to_owned())))
            .or_else(|| {
                HashKind::ALL
                    .iter()
                    .find(|k| theirs(**k).is_some() || dst_kinds.contains(k))
                    .and_then(|k| src.hashes.get(*k).map(|v| (*k, v.to_owned())))
            });
        if want.is_none() {
            let src_kinds = self.src.capabilities().hashes.clone();
            if let Some(k) = dst_kinds.iter().find(|k| src_kinds.contains(k)) {
                want = Some((*k, self.src.hash(&src.path, *k).await?));
            }
        }
        let Some((kind, want)) = want else {
            return Ok(());
        };
        let got = match theirs(kind) {
            Some(g) => g,
            None if dst_kinds.contains(&kind) => self.dst.hash(path, kind).await?,
            None => return Ok(()),
        };
        if got.trim().eq_ignore_ascii_case(want.trim()) {
            return Ok(());
        }
        self.discard(path).await;
        Err(Error::new(
            ErrorKind::Protocol,
            format!(
                "corrupted on transfer: the uploaded file's {} is not the source's",
                kind.as_str()
            ),
        )
        .with_path(path)
        .set_temporary(true))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use bytes::Bytes;

    use crate::ops::{self, SyncOptions};
    use crate::path::RemotePath;
    use crate::remote::Remote;
    use crate::testkit::{Chaos, Fault, FaultPlan, MemFs, Op, Rule};
    use crate::{ErrorKind, SessionStore};

    const SIZE: usize = 2 * 1024 * 1024 + 17;

    fn data() -> Bytes {
        Bytes::from((0..SIZE).map(|i| (i * 7 % 251) as u8).collect::<Vec<u8>>())
    }

    fn opts(store: &SessionStore, low_level_retries: u32) -> SyncOptions {
        SyncOptions {
            resume_above: Some(1024 * 1024),
            retries: 1,
            low_level_retries,
            retry_backoff: Duration::from_millis(5),
            sessions: store.clone(),
            ..Default::default()
        }
    }

    fn cut(src: &Arc<MemFs>, after: u64) -> Arc<dyn Remote> {
        Arc::new(Chaos::new(
            src.clone(),
            FaultPlan {
                rules: vec![Rule {
                    op: Op::Read,
                    path: Some(RemotePath::new("big.bin").expect("path")),
                    skip: 0,
                    times: 1,
                    fault: Fault::ReadCut {
                        after,
                        kind: ErrorKind::Transient,
                    },
                }],
            },
        ))
    }

    async fn setup() -> (Arc<MemFs>, Arc<MemFs>) {
        let src = Arc::new(MemFs::new("memfs://session-src"));
        let t = time::OffsetDateTime::from_unix_timestamp(1_600_000_000).expect("time");
        src.put_file(&RemotePath::new("big.bin").expect("path"), data(), t)
            .expect("put");
        let dst = Arc::new(MemFs::new("memfs://session-dst").with_sessions());
        (src, dst)
    }

    /// Bytes the server kept that were damaged are caught by the whole-content check after
    /// the resumed upload finished: the file is sent again whole through a new session and
    /// the result is exact.
    #[tokio::test]
    async fn a_damaged_session_is_detected_and_the_file_sent_again() {
        let (src, dst) = setup().await;
        let store = SessionStore::memory();
        let dst_r: Arc<dyn Remote> = dst.clone();
        let first = ops::copy(&cut(&src, 1_500_000), &dst_r, &opts(&store, 0))
            .await
            .expect("copy");
        assert_eq!(first.errors.len(), 1, "{:?}", first.errors);
        assert_eq!(dst.open_sessions(), 1);
        dst.damage_sessions();
        let src_r: Arc<dyn Remote> = src.clone();
        let second = ops::copy(&src_r, &dst_r, &opts(&store, 2))
            .await
            .expect("copy");
        assert!(second.is_ok(), "{:?}", second.errors);
        assert_eq!(second.bytes_resumed, 0);
        assert_eq!(dst.files().get("big.bin"), Some(&data()));
        assert!(store.is_empty());
        assert_eq!(dst.open_sessions(), 0);
    }

    /// Without a low-level retry the damaged upload fails with a temporary error and leaves
    /// no record, so the next run uploads it whole and converges.
    #[tokio::test]
    async fn a_damaged_session_fails_temporarily_and_the_rerun_converges() {
        let (src, dst) = setup().await;
        let store = SessionStore::memory();
        let dst_r: Arc<dyn Remote> = dst.clone();
        ops::copy(&cut(&src, 1_500_000), &dst_r, &opts(&store, 0))
            .await
            .expect("copy");
        dst.damage_sessions();
        let src_r: Arc<dyn Remote> = src.clone();
        let second = ops::copy(&src_r, &dst_r, &opts(&store, 0))
            .await
            .expect("copy");
        assert_eq!(second.errors.len(), 1, "{:?}", second.errors);
        assert!(second.errors[0].temporary);
        assert!(
            !dst.files().contains_key("big.bin"),
            "a damaged file stays visible"
        );
        assert!(store.is_empty());
        let third = ops::copy(&src_r, &dst_r, &opts(&store, 0))
            .await
            .expect("copy");
        assert!(third.is_ok(), "{:?}", third.errors);
        assert_eq!(dst.files().get("big.bin"), Some(&data()));
    }

    /// Files below `resume_above` are written the plain way (no session, no record), and a
    /// destination without sessions records nothing.
    #[tokio::test]
    async fn small_files_and_destinations_without_sessions_do_not_use_them() {
        let (src, dst) = setup().await;
        let store = SessionStore::memory();
        let dst_r: Arc<dyn Remote> = dst.clone();
        let src_r: Arc<dyn Remote> = src.clone();
        let o = SyncOptions {
            resume_above: Some(SIZE as u64 + 1),
            ..opts(&store, 0)
        };
        ops::copy(&cut(&src, 1_500_000), &dst_r, &o)
            .await
            .expect("copy");
        assert_eq!(dst.open_sessions(), 0);
        assert!(store.is_empty());
        let plain = Arc::new(MemFs::new("memfs://plain"));
        let plain_r: Arc<dyn Remote> = plain.clone();
        let s = ops::copy(&src_r, &plain_r, &opts(&store, 0))
            .await
            .expect("copy");
        assert!(s.is_ok(), "{:?}", s.errors);
        assert!(store.is_empty());
    }
}
