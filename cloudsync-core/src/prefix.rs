//! [`Prefix`]: a wrapper that roots any remote at a sub-directory.
//!
//! `name:photos/2024` on a command line opens remote `name` and wraps it in
//! `Prefix::wrap(remote, "photos/2024")`. Paths going in are joined to the prefix; paths coming
//! back are stripped of it, so the caller never sees the prefix.

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use futures::StreamExt;
use time::OffsetDateTime;

use crate::entry::{Entry, Usage, WriteMeta};
use crate::error::{Error, ErrorKind, Result};
use crate::hash::HashKind;
use crate::location::Location;
use crate::path::RemotePath;
use crate::remote::{ByteStream, Capabilities, EntryStream, Remote};

/// A remote seen from one of its sub-directories.
#[derive(Debug, Clone)]
pub struct Prefix {
    inner: Arc<dyn Remote>,
    prefix: RemotePath,
}

impl Prefix {
    /// Roots `inner` at `prefix`; returns `inner` unchanged when `prefix` is the root.
    pub fn wrap(inner: Arc<dyn Remote>, prefix: RemotePath) -> Arc<dyn Remote> {
        if prefix.is_root() {
            return inner;
        }
        // A view of a view is a view of the innermost remote.
        match inner.prefixed_view() {
            Some((base, outer)) => Arc::new(Prefix {
                inner: base,
                prefix: outer.join_path(&prefix),
            }),
            None => Arc::new(Prefix { inner, prefix }),
        }
    }

    fn full(&self, p: &RemotePath) -> RemotePath {
        self.prefix.join_path(p)
    }

    fn strip(prefix: &RemotePath, mut e: Entry) -> Result<Entry> {
        e.path = e.path.strip_prefix(prefix).ok_or_else(|| {
            Error::new(ErrorKind::Protocol, "entry outside the listed prefix").with_path(&e.path)
        })?;
        Ok(e)
    }

    fn strip_stream(&self, s: EntryStream) -> EntryStream {
        let prefix = self.prefix.clone();
        s.map(move |r| r.and_then(|e| Prefix::strip(&prefix, e)))
            .boxed()
    }
}

#[async_trait]
impl Remote for Prefix {
    fn describe(&self) -> String {
        let base = self.inner.describe();
        format!("{}/{}", base.trim_end_matches('/'), self.prefix)
    }
    fn capabilities(&self) -> &Capabilities {
        self.inner.capabilities()
    }
    async fn list(&self, dir: &RemotePath) -> Result<EntryStream> {
        Ok(self.strip_stream(self.inner.list(&self.full(dir)).await?))
    }
    async fn list_recursive(&self, dir: &RemotePath) -> Result<EntryStream> {
        Ok(self.strip_stream(self.inner.list_recursive(&self.full(dir)).await?))
    }
    async fn stat(&self, path: &RemotePath) -> Result<Entry> {
        Prefix::strip(&self.prefix, self.inner.stat(&self.full(path)).await?)
    }
    async fn read(&self, path: &RemotePath, range: Option<Range<u64>>) -> Result<ByteStream> {
        self.inner.read(&self.full(path), range).await
    }
    async fn write(&self, path: &RemotePath, body: ByteStream, meta: WriteMeta) -> Result<Entry> {
        Prefix::strip(
            &self.prefix,
            self.inner.write(&self.full(path), body, meta).await?,
        )
    }
    async fn write_at(
        &self,
        path: &RemotePath,
        offset: u64,
        body: ByteStream,
        total: Option<u64>,
    ) -> Result<u64> {
        self.inner
            .write_at(&self.full(path), offset, body, total)
            .await
    }
    async fn session_start(
        &self,
        path: &RemotePath,
        size: u64,
        meta: &WriteMeta,
    ) -> Result<crate::resume_state::SessionToken> {
        self.inner.session_start(&self.full(path), size, meta).await
    }
    async fn session_offset(&self, token: &crate::resume_state::SessionToken) -> Result<u64> {
        self.inner.session_offset(token).await
    }
    async fn session_write(
        &self,
        token: &crate::resume_state::SessionToken,
        path: &RemotePath,
        offset: u64,
        body: ByteStream,
        meta: WriteMeta,
    ) -> Result<Entry> {
        Prefix::strip(
            &self.prefix,
            self.inner
                .session_write(token, &self.full(path), offset, body, meta)
                .await?,
        )
    }
    async fn session_cancel(&self, token: &crate::resume_state::SessionToken) -> Result<()> {
        self.inner.session_cancel(token).await
    }
    async fn write_from_file(
        &self,
        path: &RemotePath,
        local: &Path,
        meta: WriteMeta,
    ) -> Result<Entry> {
        Prefix::strip(
            &self.prefix,
            self.inner
                .write_from_file(&self.full(path), local, meta)
                .await?,
        )
    }
    async fn mkdir(&self, dir: &RemotePath) -> Result<()> {
        self.inner.mkdir(&self.full(dir)).await
    }
    async fn remove_file(&self, path: &RemotePath) -> Result<()> {
        self.inner.remove_file(&self.full(path)).await
    }
    async fn remove_dir(&self, dir: &RemotePath) -> Result<()> {
        self.inner.remove_dir(&self.full(dir)).await
    }
    async fn copy(&self, from: &RemotePath, to: &RemotePath) -> Result<Entry> {
        Prefix::strip(
            &self.prefix,
            self.inner.copy(&self.full(from), &self.full(to)).await?,
        )
    }
    async fn rename(&self, from: &RemotePath, to: &RemotePath) -> Result<Entry> {
        Prefix::strip(
            &self.prefix,
            self.inner.rename(&self.full(from), &self.full(to)).await?,
        )
    }
    async fn set_modtime(&self, path: &RemotePath, modtime: OffsetDateTime) -> Result<()> {
        self.inner.set_modtime(&self.full(path), modtime).await
    }
    async fn hash(&self, path: &RemotePath, kind: HashKind) -> Result<String> {
        self.inner.hash(&self.full(path), kind).await
    }
    async fn purge(&self, dir: &RemotePath) -> Result<()> {
        self.inner.purge(&self.full(dir)).await
    }
    async fn cleanup(&self) -> Result<()> {
        self.inner.cleanup().await
    }
    async fn usage(&self) -> Result<Usage> {
        self.inner.usage().await
    }
    fn local_path(&self, path: &RemotePath) -> Option<PathBuf> {
        self.inner.local_path(&self.full(path))
    }
    fn prefixed_view(&self) -> Option<(Arc<dyn Remote>, RemotePath)> {
        Some((self.inner.clone(), self.prefix.clone()))
    }
    fn location(&self) -> Option<Location> {
        let base = self.inner.location()?;
        // On a remote that ignores case (Dropbox), `Photos` and `photos` are one folder: join
        // the case-folded directory, as such a backend folds its own root.
        if self.inner.capabilities().case_insensitive {
            if let Ok(folded) = RemotePath::new(&self.prefix.as_str().to_lowercase()) {
                return Some(base.join(&folded));
            }
        }
        Some(base.join(&self.prefix))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{bytes_stream, memory};
    use futures::TryStreamExt;

    #[test]
    fn views_of_a_case_insensitive_remote_fold_case_in_their_location() {
        let store: Arc<dyn object_store::ObjectStore> =
            Arc::new(object_store::memory::InMemory::new());
        let remote = |case_insensitive: bool| -> Arc<dyn Remote> {
            Arc::new(
                crate::ObjectStoreRemote::new(store.clone(), "mem").with_capabilities(
                    Capabilities {
                        case_insensitive,
                        ..Default::default()
                    },
                ),
            )
        };
        let view =
            |r: Arc<dyn Remote>, d: &str| Prefix::wrap(r, RemotePath::new(d).unwrap()).location();
        let folding = remote(true);
        assert_eq!(
            view(folding.clone(), "Photos/2024"),
            view(folding, "photos/2024")
        );
        let exact = remote(false);
        assert_ne!(view(exact.clone(), "Photos"), view(exact, "photos"));
    }

    #[tokio::test]
    async fn paths_are_rooted_and_stripped() {
        let inner = memory();
        let sub = RemotePath::new("a/b").unwrap();
        let wrapped = Prefix::wrap(inner.clone(), sub);
        let p = RemotePath::new("c.txt").unwrap();
        let e = wrapped
            .write(&p, bytes_stream("xyz"), WriteMeta::default())
            .await
            .unwrap();
        assert_eq!(e.path, p);
        assert_eq!(
            inner
                .stat(&RemotePath::new("a/b/c.txt").unwrap())
                .await
                .unwrap()
                .size,
            3
        );
        let names: Vec<_> = wrapped
            .list(&RemotePath::root())
            .await
            .unwrap()
            .map_ok(|e| e.path.to_string())
            .try_collect()
            .await
            .unwrap();
        assert_eq!(names, ["c.txt"]);
    }
}
