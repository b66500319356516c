//! [`BodyCheck`]: verify a transfer *before* the destination commits it.
//!
//! A transfer streams the source into [`Remote::write`](crate::Remote::write), which is atomic:
//! the new content replaces the old one whole, or not at all. So the check must happen inside
//! the stream: the bytes are counted and hashed as they flow, and if the source turns out to
//! have changed (more or fewer bytes than listed, or a hash other than the listed one) the
//! stream ends with an error instead of ending cleanly, and the destination keeps its previous
//! file. Checking after the write would be too late: removing a bad copy then also removes the
//! version it replaced.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use futures::{Stream, StreamExt};

use crate::entry::Entry;
use crate::error::{Error, ErrorKind, Result};
use crate::hash::{HashKind, Hashes, MultiHasher};
use crate::remote::ByteStream;

/// Counts and hashes a transfer's bytes and fails the body when they disagree with the source
/// entry; [`finish`](Self::finish) then gives the hashes of what was sent.
pub(crate) struct BodyCheck {
    state: Arc<Mutex<State>>,
}

struct State {
    expected_size: u64,
    expected: Hashes,
    count: u64,
    hasher: Option<MultiHasher>,
    computed: Hashes,
}

impl BodyCheck {
    /// A check of a body that must be exactly `src`: its size, and one hash — a kind the
    /// source listed that the destination also reports (`dst_kinds`) when there is one, so one
    /// pass checks both ends; else a kind the source listed; else one the destination reports.
    /// One kind only: hashing costs CPU on every byte.
    pub(crate) fn new(src: &Entry, dst_kinds: &[HashKind]) -> Self {
        let listed: Vec<HashKind> = HashKind::ALL
            .into_iter()
            .filter(|k| src.hashes.get(*k).is_some())
            .collect();
        let kind = listed
            .iter()
            .find(|k| dst_kinds.contains(k))
            .or(listed.first())
            .or(dst_kinds.first())
            .copied();
        let hasher = kind.map(|k| MultiHasher::new(&[k]));
        BodyCheck {
            state: Arc::new(Mutex::new(State {
                expected_size: src.size,
                expected: src.hashes.clone(),
                count: 0,
                hasher,
                computed: Hashes::default(),
            })),
        }
    }

    /// A check of the rest of a body from byte `offset` on, whose first `offset` bytes are
    /// already at the destination (a resumed transfer). `prefix`: a hasher already fed those
    /// bytes, so the hash still covers the whole file; without it only the size is checked.
    pub(crate) fn resumed(src: &Entry, offset: u64, prefix: Option<MultiHasher>) -> Self {
        let whole = prefix.is_some();
        BodyCheck {
            state: Arc::new(Mutex::new(State {
                expected_size: src.size,
                expected: if whole {
                    src.hashes.clone()
                } else {
                    Hashes::default()
                },
                count: offset,
                hasher: prefix,
                computed: Hashes::default(),
            })),
        }
    }

    /// The hash kind [`BodyCheck::new`] picks for `src` and a destination reporting
    /// `dst_kinds`, when it is one the destination reports.
    pub(crate) fn shared_kind(src: &Entry, dst_kinds: &[HashKind]) -> Option<HashKind> {
        HashKind::ALL
            .into_iter()
            .find(|k| src.hashes.get(*k).is_some() && dst_kinds.contains(k))
            .or(dst_kinds.first().copied())
    }

    /// Wraps `body`.
    pub(crate) fn wrap(&self, body: ByteStream) -> ByteStream {
        Checked {
            inner: body,
            state: self.state.clone(),
            done: false,
        }
        .boxed()
    }

    /// Bytes seen and the hashes computed over them (complete only after the body ended).
    pub(crate) fn finish(&self) -> (u64, Hashes) {
        let s = lock(&self.state);
        (s.count, s.computed.clone())
    }
}

fn lock(state: &Mutex<State>) -> std::sync::MutexGuard<'_, State> {
    state.lock().unwrap_or_else(|p| p.into_inner())
}

fn changed(message: String) -> Error {
    // Not temporary: the listed entry is stale, so only a fresh listing (the next pass) helps.
    Error::new(ErrorKind::ConditionNotMatch, message).set_temporary(false)
}

impl State {
    fn chunk(&mut self, c: &Bytes) -> Result<()> {
        self.count += c.len() as u64;
        if self.count > self.expected_size {
            return Err(changed(format!(
                "source changed during transfer: more than the {} bytes listed",
                self.expected_size
            )));
        }
        if let Some(h) = self.hasher.as_mut() {
            h.update(c);
        }
        Ok(())
    }

    fn end(&mut self) -> Result<()> {
        if self.count != self.expected_size {
            return Err(changed(format!(
                "source changed during transfer: expected {} bytes, read {}",
                self.expected_size, self.count
            )));
        }
        if let Some(h) = self.hasher.take() {
            self.computed = h.finish();
        }
        if self.computed.matches(&self.expected) == Some(false) {
            return Err(changed(
                "source changed during transfer: its hash is not the listed one".to_owned(),
            ));
        }
        Ok(())
    }
}

struct Checked {
    inner: ByteStream,
    state: Arc<Mutex<State>>,
    done: bool,
}

impl Stream for Checked {
    type Item = Result<Bytes>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.done {
            return Poll::Ready(None);
        }
        let next = match self.inner.poll_next_unpin(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(next) => next,
        };
        let out = match next {
            Some(Ok(c)) => match lock(&self.state).chunk(&c) {
                Ok(()) => Some(Ok(c)),
                Err(e) => Some(Err(e)),
            },
            Some(Err(e)) => Some(Err(e)),
            None => lock(&self.state).end().err().map(Err),
        };
        if !matches!(out, Some(Ok(_))) {
            self.done = true;
        }
        Poll::Ready(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::path::RemotePath;

    async fn run(src: &Entry, chunks: &[&'static str]) -> Result<Vec<Bytes>> {
        let body = futures::stream::iter(
            chunks
                .iter()
                .map(|c| Ok(Bytes::from_static(c.as_bytes())))
                .collect::<Vec<_>>(),
        )
        .boxed();
        BodyCheck::new(src, &[]).wrap(body).try_collect_all().await
    }

    trait CollectAll {
        async fn try_collect_all(self) -> Result<Vec<Bytes>>;
    }
    impl CollectAll for ByteStream {
        async fn try_collect_all(mut self) -> Result<Vec<Bytes>> {
            let mut out = Vec::new();
            while let Some(c) = self.next().await {
                out.push(c?);
            }
            Ok(out)
        }
    }

    fn entry(size: u64, md5: Option<&str>) -> Entry {
        let e = Entry::file(RemotePath::new("f").unwrap(), size);
        match md5 {
            Some(h) => e.with_hashes(Hashes::default().with(HashKind::Md5, h.to_owned())),
            None => e,
        }
    }

    #[tokio::test]
    async fn a_body_that_matches_ends_cleanly() {
        let md5 = "5d41402abc4b2a76b9719d911017c592"; // "hello"
        assert_eq!(
            run(&entry(5, Some(md5)), &["he", "llo"])
                .await
                .unwrap()
                .len(),
            2
        );
    }

    #[tokio::test]
    async fn a_changed_source_fails_the_body_before_it_ends() {
        let short = run(&entry(6, None), &["hello"]).await.unwrap_err();
        assert_eq!(short.kind(), ErrorKind::ConditionNotMatch);
        assert!(run(&entry(4, None), &["hello"]).await.is_err(), "longer");
        let other = "00000000000000000000000000000000";
        assert!(
            run(&entry(5, Some(other)), &["hello"]).await.is_err(),
            "same size, other hash"
        );
    }
}
