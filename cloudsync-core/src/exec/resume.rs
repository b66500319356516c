//! Resumable transfers: a large file goes to a partial file with a deterministic name next to
//! its target ([`part_name`](crate::temp::part_name), keyed by the source's fingerprint and the
//! destination path), written with [`Remote::write_at`](crate::Remote::write_at). When a
//! transfer is cut — a broken connection, a killed process — the bytes that arrived stay
//! there, and the next attempt (a low-level retry in the same run, or a later run) finds them,
//! checks them against the source and sends only the rest.
//!
//! What is kept is verified before it is trusted: when the source is a local file and the
//! destination can hash the partial file cheaply, the kept prefix is hashed at both ends (and
//! the hasher goes on over the rest, so the finished file's hash covers every byte); otherwise
//! the last [`WINDOW`] bytes before the resume point are compared with the source's. A
//! mismatch removes the partial file and starts again from byte 0. A source that changed gets
//! another key, so its old partial data is never resumed; the transfer that commits a file
//! removes the partial files of the same name with other keys, and a sync removes any left
//! once they are older than its leftover age, like temporary files.
//!
//! The finished partial file is checked (its size; for a resumed one a whole-content hash
//! where one end can tell it) and only then renamed over the target, so nothing partial is
//! ever visible under a final name.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use futures::TryStreamExt;

use crate::entry::Entry;
use crate::error::{Error, ErrorKind, Result};
use crate::hash::{HashKind, MultiHasher};
use crate::path::RemotePath;
use crate::remote::collect_bytes;
use crate::report::Event;
use crate::temp::{part_key, part_name, part_of};

use super::transfer::Transferer;
use super::verify::BodyCheck;

/// Bytes compared before the resume point when the kept prefix cannot be hashed.
pub(crate) const WINDOW: u64 = 64 * 1024;

/// Longest name assumed when the destination states no limit.
const NAME_MAX: usize = 255;

/// The partial files found in each destination directory, listed once per run.
pub(crate) type PartsSeen = Arc<Mutex<HashMap<RemotePath, Vec<String>>>>;

/// How a transfer continues.
struct Start {
    /// Bytes kept and trusted.
    offset: u64,
    /// A hasher fed the kept bytes (from the source), when they were hashed.
    prefix: Option<MultiHasher>,
}

impl Transferer {
    /// Whether `src` goes through a partial file: it is at least `resume_above` bytes, the
    /// destination can resume, and it is not a local-to-local copy (which keeps the kernel's
    /// copy fast path).
    pub(super) fn resumes(&self, src: &Entry, local_src: bool) -> bool {
        let Some(above) = self.resume_above.filter(|n| *n > 0) else {
            return false;
        };
        let caps = self.dst.capabilities();
        src.size >= above
            && caps.resume
            && caps.rename
            && !(local_src && self.dst.local_path(&src.path).is_some())
    }

    /// One attempt of a resumable transfer of `src` to `path`; `None` when the destination
    /// turned out not to support it after all (the caller then writes the plain way).
    pub(super) async fn copy_resumable(
        &self,
        src: &Entry,
        path: &RemotePath,
        shown: &RemotePath,
    ) -> Result<Option<Entry>> {
        let Some(parent) = path.parent() else {
            return Ok(None);
        };
        let max = self.dst.capabilities().max_name_len.unwrap_or(NAME_MAX);
        let key = part_key(src, path);
        let part = parent.join(&part_name(&key, path.name(), max))?;
        // Not knowing what is kept only costs a restart from byte 0 (the partial file is
        // ours), so any failure to look counts as nothing kept; a server that lost its
        // connection fails the write that follows anyway.
        let kept = match self.dst.stat(&part).await {
            Ok(e) if e.is_file() => e.size,
            Ok(_) => 0,
            Err(e) => {
                if e.kind() != ErrorKind::NotFound {
                    tracing::debug!(%part, error = %e, "cannot stat the partial file");
                }
                0
            }
        };
        let start = self.trusted_prefix(src, &part, kept).await?;
        if start.offset > 0 {
            tracing::info!(%path, offset = start.offset, "resuming a transfer");
            self.emit(Event::Resumed {
                path: shown.clone(),
                offset: start.offset,
            });
        } else if kept > 0 {
            tracing::info!(%path, kept, "kept partial data does not match the source; starting again");
        }
        let offset = start.offset;
        let check = BodyCheck::resumed(src, offset, start.prefix);
        let range = (offset > 0).then_some(offset..src.size);
        let body = self.src.read(&src.path, range).await?;
        let body = check.wrap(self.count(body, shown.clone(), src.size, offset));
        let size = match self.dst.write_at(&part, offset, body, Some(src.size)).await {
            Err(e) if e.kind() == ErrorKind::Unsupported && kept == 0 => return Ok(None),
            other => other?,
        };
        if size != src.size {
            self.discard(&part).await;
            return Err(corrupt(
                path,
                format!("the partial file has {size} bytes, the source {}", src.size),
            ));
        }
        let (_, sent) = check.finish();
        if offset > 0 {
            self.check_whole(src, &part, path, &sent).await?;
        }
        let mut written = self.dst.rename(&part, path).await?;
        written.path = path.clone();
        written.hashes.merge(&sent);
        self.remove_stale_parts(&parent, path.name(), &key, max)
            .await;
        let done = self.verify(src, path, written).await?;
        self.resumed.fetch_add(offset, Ordering::Relaxed);
        Ok(Some(done))
    }

    /// How much of the partial file `part` (`kept` bytes) can be trusted: all of it when it
    /// matches the source, else nothing (the file is then rewritten from byte 0).
    async fn trusted_prefix(&self, src: &Entry, part: &RemotePath, kept: u64) -> Result<Start> {
        let none = Start {
            offset: 0,
            prefix: None,
        };
        if kept == 0 || kept > src.size {
            return Ok(none);
        }
        let same = match self.hash_prefix(src, part, kept).await {
            Some(Ok((same, hasher))) => {
                return Ok(if same {
                    Start {
                        offset: kept,
                        prefix: Some(hasher),
                    }
                } else {
                    none
                });
            }
            Some(Err(e)) => {
                tracing::debug!(%part, error = %e, "cannot hash the kept prefix; comparing a window");
                self.same_window(src, part, kept).await
            }
            None => self.same_window(src, part, kept).await,
        };
        match same {
            Ok(true) => Ok(Start {
                offset: kept,
                prefix: None,
            }),
            Ok(false) => Ok(none),
            // The partial file vanished or broke: start again.
            Err(e) if !e.is_retryable() => {
                tracing::debug!(%part, error = %e, "cannot read the kept prefix");
                Ok(none)
            }
            Err(e) => Err(e),
        }
    }

    /// Hashes the first `kept` bytes of a local source and compares them with the hash the
    /// destination computes for `part`: `None` when either cannot (not a local source, no
    /// cheap hash at the destination); else whether they match, and the hasher (fed the
    /// prefix) to continue over the rest.
    async fn hash_prefix(
        &self,
        src: &Entry,
        part: &RemotePath,
        kept: u64,
    ) -> Option<Result<(bool, MultiHasher)>> {
        self.src.local_path(&src.path)?;
        let kind = BodyCheck::shared_kind(src, &self.dst.capabilities().hashes)?;
        Some(
            async {
                let mut hasher = MultiHasher::new(&[kind]);
                let mut prefix = self.src.read(&src.path, Some(0..kept)).await?;
                let mut n = 0u64;
                while let Some(c) = prefix.try_next().await? {
                    n += c.len() as u64;
                    hasher.update(&c);
                }
                if n != kept {
                    return Err(source_changed(kept, n));
                }
                let ours = hasher.clone().finish();
                let theirs = self.dst.hash(part, kind).await?;
                let same = ours
                    .get(kind)
                    .is_some_and(|h| h.eq_ignore_ascii_case(theirs.trim()));
                Ok((same, hasher))
            }
            .await,
        )
    }

    /// Whether the last [`WINDOW`] bytes before `kept` are the same in the source and in the
    /// partial file `part`.
    async fn same_window(&self, src: &Entry, part: &RemotePath, kept: u64) -> Result<bool> {
        let range = kept.saturating_sub(WINDOW)..kept;
        let theirs = collect_bytes(self.dst.read(part, Some(range.clone())).await?).await?;
        let ours = collect_bytes(self.src.read(&src.path, Some(range.clone())).await?).await?;
        if ours.len() as u64 != range.end - range.start {
            return Err(source_changed(range.end - range.start, ours.len() as u64));
        }
        Ok(ours == theirs)
    }

    /// Checks the whole content of a resumed partial file before it is committed: its hash
    /// at the destination against the hash of every byte of the source (the kept prefix
    /// hashed when it was verified plus the bytes sent), a hash the source listed, or one the
    /// source computes. With none of them (no hash at either end) only the size and the
    /// window vouch for it. A mismatch removes the partial file.
    async fn check_whole(
        &self,
        src: &Entry,
        part: &RemotePath,
        path: &RemotePath,
        sent: &crate::hash::Hashes,
    ) -> Result<()> {
        let dst_kinds = self.dst.capabilities().hashes.clone();
        let known = |h: &crate::hash::Hashes| {
            dst_kinds
                .iter()
                .find_map(|k| h.get(*k).map(|v| (*k, v.to_owned())))
        };
        let want: Option<(HashKind, String)> = match known(sent).or_else(|| known(&src.hashes)) {
            Some(w) => Some(w),
            None => {
                let src_kinds = &self.src.capabilities().hashes;
                match dst_kinds.iter().find(|k| src_kinds.contains(k)) {
                    Some(k) => Some((*k, self.src.hash(&src.path, *k).await?)),
                    None => None,
                }
            }
        };
        let Some((kind, want)) = want else {
            return Ok(());
        };
        let got = self.dst.hash(part, kind).await?;
        if !got.trim().eq_ignore_ascii_case(want.trim()) {
            self.discard(part).await;
            return Err(corrupt(
                path,
                format!("the resumed file's {} is not the source's", kind.as_str()),
            ));
        }
        Ok(())
    }

    /// Removes the partial files of `name` in `dir` with a key other than `key` (the data of
    /// a source that has changed since). Best effort; each directory is listed once per run.
    async fn remove_stale_parts(&self, dir: &RemotePath, name: &str, key: &str, max: usize) {
        let found = self
            .parts_seen
            .lock()
            .ok()
            .and_then(|m| m.get(dir).cloned());
        let found = match found {
            Some(f) => f,
            None => {
                let listed: Result<Vec<String>> = async {
                    self.dst
                        .list(dir)
                        .await?
                        .try_filter_map(|e| async move {
                            Ok(e.name()
                                .starts_with(crate::temp::PART_PREFIX)
                                .then(|| e.name().to_owned()))
                        })
                        .try_collect()
                        .await
                }
                .await;
                let Ok(listed) = listed else {
                    return;
                };
                if let Ok(mut m) = self.parts_seen.lock() {
                    m.insert(dir.clone(), listed.clone());
                }
                listed
            }
        };
        for stale in found
            .iter()
            .filter(|n| part_of(n, name, max).is_some_and(|k| k != key))
        {
            let Ok(p) = dir.join(stale) else { continue };
            match self.dst.remove_file(&p).await {
                Ok(()) => tracing::debug!(path = %p, "removed a stale partial file"),
                Err(e) if e.kind() == ErrorKind::NotFound => {}
                Err(e) => {
                    tracing::warn!(path = %p, error = %e, "cannot remove a stale partial file")
                }
            }
        }
    }
}

fn corrupt(path: &RemotePath, what: String) -> Error {
    Error::new(
        ErrorKind::Protocol,
        format!("corrupted on transfer: {what}"),
    )
    .with_path(path)
    .set_temporary(true)
}

fn source_changed(want: u64, got: u64) -> Error {
    Error::new(
        ErrorKind::ConditionNotMatch,
        format!("source changed during transfer: expected {want} bytes of it, read {got}"),
    )
}
