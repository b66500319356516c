//! [`MemFs`]: an in-memory remote with real directories, settable modtimes, MD5 hashes and
//! server-side copy and rename — a fast stand-in for a full-featured backend in engine tests.

use std::collections::BTreeMap;
use std::ops::Range;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use futures::{StreamExt, TryStreamExt};
use time::OffsetDateTime;

use crate::entry::{Entry, WriteMeta};
use crate::error::{Error, ErrorKind, Result};
use crate::hash::{HashKind, Hashes, MultiHasher};
use crate::path::RemotePath;
use crate::remote::{ByteStream, Capabilities, EntryStream, Remote};

#[derive(Debug, Clone)]
enum Node {
    File {
        data: Bytes,
        modtime: OffsetDateTime,
        md5: String,
    },
    Dir,
}

/// An in-memory filesystem remote.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> cloudsync_core::Result<()> {
/// use cloudsync_core::testkit::MemFs;
/// use cloudsync_core::Remote;
/// let fs = MemFs::new("memfs://a");
/// assert!(fs.capabilities().set_modtime);
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct MemFs {
    nodes: Arc<Mutex<BTreeMap<RemotePath, Node>>>,
    sessions: Arc<Mutex<BTreeMap<String, MemSession>>>,
    caps: Capabilities,
    name: String,
}

impl MemFs {
    /// An empty filesystem with millisecond modtimes, MD5, copy, rename, resumable writes and
    /// real directories.
    pub fn new(name: &str) -> Self {
        let mut nodes = BTreeMap::new();
        nodes.insert(RemotePath::root(), Node::Dir);
        MemFs {
            nodes: Arc::new(Mutex::new(nodes)),
            sessions: Arc::default(),
            caps: Capabilities {
                hashes: vec![HashKind::Md5],
                modtime_precision: Some(Duration::from_millis(1)),
                write_modtime: true,
                set_modtime: true,
                copy: true,
                rename: true,
                purge: true,
                dirs: true,
                resume: true,
                ..Default::default()
            },
            name: name.to_owned(),
        }
    }

    /// Replaces the declared capabilities (to imitate a weaker backend).
    pub fn with_capabilities(mut self, caps: Capabilities) -> Self {
        self.caps = caps;
        self
    }

    /// Declares upload sessions ([`Capabilities::resume_sessions`]) instead of partial files:
    /// a stand-in for a cloud backend. A session keeps what it received in whole chunks of
    /// [`MEM_SESSION_CHUNK`] bytes, as a cloud service commits them.
    pub fn with_sessions(mut self) -> Self {
        self.caps.resume_sessions = true;
        self.caps.resume = false;
        self
    }

    /// Forgets every open upload session, as a service does when sessions expire.
    pub fn expire_sessions(&self) {
        self.sessions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
    }

    /// Flips the first byte every open upload session holds, as a server that kept damaged
    /// bytes would: what was committed no longer matches what was sent.
    pub fn damage_sessions(&self) {
        let mut sessions = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
        for s in sessions.values_mut() {
            if let Some(b) = s.data.first_mut() {
                *b ^= 0x5a;
            }
        }
    }

    /// Number of open upload sessions.
    pub fn open_sessions(&self) -> usize {
        self.sessions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .len()
    }

    /// Every file, path to content: a snapshot for tests that compare whole trees.
    pub fn files(&self) -> BTreeMap<String, Bytes> {
        self.lock()
            .iter()
            .filter_map(|(p, n)| match n {
                Node::File { data, .. } => Some((p.to_string(), data.clone())),
                Node::Dir => None,
            })
            .collect()
    }

    /// Writes a file directly (no stream), creating its parents; for test set-up.
    pub fn put_file(&self, path: &RemotePath, data: Bytes, modtime: OffsetDateTime) -> Result<()> {
        self.put(path, data, modtime).map(|_| ())
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<RemotePath, Node>> {
        self.nodes.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn err(&self, kind: ErrorKind, msg: &str, op: &'static str, path: &RemotePath) -> Error {
        Error::new(kind, msg)
            .with_operation(op)
            .with_remote(&self.name)
            .with_path(path)
    }

    fn entry(&self, path: &RemotePath, node: &Node) -> Entry {
        match node {
            Node::Dir => Entry::dir(path.clone()),
            Node::File { data, modtime, md5 } => {
                let precision = self
                    .caps
                    .modtime_precision
                    .unwrap_or(Duration::from_secs(1));
                Entry::file(path.clone(), data.len() as u64)
                    .with_modtime(Some(truncate(*modtime, precision)))
                    .with_hashes(if self.caps.hashes.contains(&HashKind::Md5) {
                        Hashes::default().with(HashKind::Md5, md5.clone())
                    } else {
                        Hashes::default()
                    })
            }
        }
    }

    fn make_parents(nodes: &mut BTreeMap<RemotePath, Node>, path: &RemotePath) -> Result<()> {
        let mut cur = path.parent();
        let mut chain = Vec::new();
        while let Some(p) = cur {
            match nodes.get(&p) {
                Some(Node::Dir) => break,
                Some(Node::File { .. }) => {
                    return Err(Error::new(ErrorKind::Conflict, "a parent is a file").with_path(&p));
                }
                None => chain.push(p.clone()),
            }
            cur = p.parent();
        }
        for p in chain {
            nodes.insert(p, Node::Dir);
        }
        Ok(())
    }

    fn put(&self, path: &RemotePath, data: Bytes, modtime: OffsetDateTime) -> Result<Entry> {
        let mut h = MultiHasher::new(&[HashKind::Md5]);
        h.update(&data);
        let md5 = h.finish().get(HashKind::Md5).unwrap_or_default().to_owned();
        let mut nodes = self.lock();
        if let Some(Node::Dir) = nodes.get(path) {
            return Err(self.err(ErrorKind::Conflict, "is a directory", "write", path));
        }
        Self::make_parents(&mut nodes, path)?;
        let node = Node::File { data, modtime, md5 };
        let e = self.entry(path, &node);
        nodes.insert(path.clone(), node);
        Ok(e)
    }
}

fn truncate(t: OffsetDateTime, precision: Duration) -> OffsetDateTime {
    let p = precision.as_nanos().max(1) as i128;
    let n = t.unix_timestamp_nanos();
    OffsetDateTime::from_unix_timestamp_nanos(n - n.rem_euclid(p)).unwrap_or(t)
}

/// What an upload session of [`MemFs`] commits at a time.
pub const MEM_SESSION_CHUNK: usize = 256 * 1024;

#[derive(Debug)]
struct MemSession {
    path: RemotePath,
    size: u64,
    modtime: Option<OffsetDateTime>,
    data: BytesMut,
}

impl MemFs {
    fn session_missing(&self, op: &'static str) -> Error {
        Error::new(ErrorKind::NotFound, "no such upload session")
            .with_operation(op)
            .with_remote(&self.name)
    }
}

#[async_trait]
impl Remote for MemFs {
    fn location(&self) -> Option<crate::Location> {
        let space = format!("memfs:{:p}", Arc::as_ptr(&self.nodes).cast::<()>());
        Some(crate::Location::new(space, ""))
    }

    fn describe(&self) -> String {
        self.name.clone()
    }

    fn capabilities(&self) -> &Capabilities {
        &self.caps
    }

    async fn list(&self, dir: &RemotePath) -> Result<EntryStream> {
        let nodes = self.lock();
        match nodes.get(dir) {
            Some(Node::Dir) => {}
            Some(_) => return Err(self.err(ErrorKind::Conflict, "not a directory", "list", dir)),
            None => return Err(self.err(ErrorKind::NotFound, "directory not found", "list", dir)),
        }
        let out: Vec<Result<Entry>> = nodes
            .iter()
            .filter(|(p, _)| !p.is_root() && p.parent().as_ref() == Some(dir))
            .map(|(p, n)| Ok(self.entry(p, n)))
            .collect();
        Ok(futures::stream::iter(out).boxed())
    }

    async fn stat(&self, path: &RemotePath) -> Result<Entry> {
        let nodes = self.lock();
        nodes
            .get(path)
            .map(|n| self.entry(path, n))
            .ok_or_else(|| self.err(ErrorKind::NotFound, "not found", "stat", path))
    }

    async fn read(&self, path: &RemotePath, range: Option<Range<u64>>) -> Result<ByteStream> {
        let data = match self.lock().get(path) {
            Some(Node::File { data, .. }) => data.clone(),
            Some(Node::Dir) => {
                return Err(self.err(ErrorKind::Conflict, "is a directory", "read", path));
            }
            None => return Err(self.err(ErrorKind::NotFound, "not found", "read", path)),
        };
        let len = data.len() as u64;
        let r = range.unwrap_or(0..len);
        let (a, b) = (r.start.min(len) as usize, r.end.min(len) as usize);
        let slice = data.slice(a..b.max(a));
        // Several chunks, like a network stream.
        let chunks: Vec<Result<Bytes>> = (0..slice.len())
            .step_by(64 * 1024)
            .map(|i| Ok(slice.slice(i..(i + 64 * 1024).min(slice.len()))))
            .collect();
        Ok(futures::stream::iter(chunks).boxed())
    }

    async fn write(
        &self,
        path: &RemotePath,
        mut body: ByteStream,
        meta: WriteMeta,
    ) -> Result<Entry> {
        let mut buf = BytesMut::new();
        while let Some(chunk) = body.try_next().await? {
            buf.extend_from_slice(&chunk);
        }
        let modtime = meta
            .modtime
            .filter(|_| self.caps.write_modtime)
            .unwrap_or_else(OffsetDateTime::now_utc);
        self.put(path, buf.freeze(), modtime)
    }

    async fn write_at(
        &self,
        path: &RemotePath,
        offset: u64,
        mut body: ByteStream,
        _total: Option<u64>,
    ) -> Result<u64> {
        let mut buf = {
            let nodes = self.lock();
            match nodes.get(path) {
                Some(Node::File { data, .. }) if (data.len() as u64) >= offset => {
                    let keep = usize::try_from(offset).unwrap_or(usize::MAX);
                    BytesMut::from(&data[..keep])
                }
                None if offset == 0 => BytesMut::new(),
                _ => {
                    return Err(self.err(
                        ErrorKind::ConditionNotMatch,
                        "offset past the end of the partial file",
                        "write_at",
                        path,
                    ));
                }
            }
        };
        // The bytes that arrived land even when the body fails part-way.
        let mut failed = None;
        loop {
            match body.try_next().await {
                Ok(Some(chunk)) => buf.extend_from_slice(&chunk),
                Ok(None) => break,
                Err(e) => {
                    failed = Some(e);
                    break;
                }
            }
        }
        let size = buf.len() as u64;
        self.put(path, buf.freeze(), OffsetDateTime::now_utc())?;
        match failed {
            Some(e) => Err(e),
            None => Ok(size),
        }
    }

    async fn session_start(
        &self,
        path: &RemotePath,
        size: u64,
        meta: &WriteMeta,
    ) -> Result<crate::resume_state::SessionToken> {
        if !self.caps.resume_sessions {
            return Err(self.unsupported("session_start"));
        }
        let id = format!("memfs-session-{:016x}", fastrand::u64(..));
        self.sessions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(
                id.clone(),
                MemSession {
                    path: path.clone(),
                    size,
                    modtime: meta.modtime,
                    data: BytesMut::new(),
                },
            );
        Ok(crate::resume_state::SessionToken::new(id))
    }

    async fn session_offset(&self, token: &crate::resume_state::SessionToken) -> Result<u64> {
        let sessions = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
        match sessions.get(token.expose()) {
            Some(s) => Ok(s.data.len() as u64),
            None => Err(self.session_missing("session_offset")),
        }
    }

    async fn session_write(
        &self,
        token: &crate::resume_state::SessionToken,
        path: &RemotePath,
        offset: u64,
        mut body: ByteStream,
        meta: WriteMeta,
    ) -> Result<Entry> {
        let (held, size) = {
            let sessions = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
            match sessions.get(token.expose()) {
                Some(s) if &s.path == path => (s.data.len() as u64, s.size),
                Some(_) => {
                    return Err(self.err(
                        ErrorKind::InvalidInput,
                        "the session was opened for another path",
                        "session_write",
                        path,
                    ));
                }
                None => return Err(self.session_missing("session_write").with_path(path)),
            }
        };
        if offset != held {
            return Err(self.err(
                ErrorKind::ConditionNotMatch,
                "the offset is not what the session holds",
                "session_write",
                path,
            ));
        }
        let mut got = BytesMut::new();
        let mut failed = None;
        loop {
            match body.try_next().await {
                Ok(Some(c)) => got.extend_from_slice(&c),
                Ok(None) => break,
                Err(e) => {
                    failed = Some(e);
                    break;
                }
            }
        }
        let mut sessions = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
        let Some(s) = sessions.get_mut(token.expose()) else {
            return Err(self.session_missing("session_write").with_path(path));
        };
        if s.data.len() as u64 != offset {
            return Err(self.err(
                ErrorKind::ConditionNotMatch,
                "the session moved while this write ran",
                "session_write",
                path,
            ));
        }
        s.data.extend_from_slice(&got);
        let total = s.data.len() as u64;
        if failed.is_some() || total < size {
            // Only whole chunks are committed; the rest of a broken request is lost.
            let keep = s.data.len() / MEM_SESSION_CHUNK * MEM_SESSION_CHUNK;
            s.data.truncate(keep);
            return Err(failed.unwrap_or_else(|| {
                self.err(
                    ErrorKind::ConditionNotMatch,
                    "the body ended before the announced size",
                    "session_write",
                    path,
                )
            }));
        }
        if total > size {
            s.data.truncate(usize::try_from(offset).unwrap_or(0));
            return Err(self.err(
                ErrorKind::ConditionNotMatch,
                "the body is longer than the announced size",
                "session_write",
                path,
            ));
        }
        let Some(done) = sessions.remove(token.expose()) else {
            return Err(self.session_missing("session_write").with_path(path));
        };
        drop(sessions);
        let modtime = meta
            .modtime
            .or(done.modtime)
            .filter(|_| self.caps.write_modtime)
            .unwrap_or_else(OffsetDateTime::now_utc);
        self.put(path, done.data.freeze(), modtime)
    }

    async fn session_cancel(&self, token: &crate::resume_state::SessionToken) -> Result<()> {
        self.sessions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(token.expose());
        Ok(())
    }

    async fn mkdir(&self, dir: &RemotePath) -> Result<()> {
        let mut nodes = self.lock();
        match nodes.get(dir) {
            Some(Node::Dir) => Ok(()),
            Some(_) => Err(self.err(ErrorKind::Conflict, "is a file", "mkdir", dir)),
            None => {
                Self::make_parents(&mut nodes, dir)?;
                nodes.insert(dir.clone(), Node::Dir);
                Ok(())
            }
        }
    }

    async fn remove_file(&self, path: &RemotePath) -> Result<()> {
        let mut nodes = self.lock();
        match nodes.get(path) {
            Some(Node::File { .. }) => {
                nodes.remove(path);
                Ok(())
            }
            Some(Node::Dir) => {
                Err(self.err(ErrorKind::Conflict, "is a directory", "remove_file", path))
            }
            None => Err(self.err(ErrorKind::NotFound, "not found", "remove_file", path)),
        }
    }

    async fn remove_dir(&self, dir: &RemotePath) -> Result<()> {
        let mut nodes = self.lock();
        match nodes.get(dir) {
            Some(Node::Dir) => {
                if nodes.keys().any(|p| p.parent().as_ref() == Some(dir)) {
                    return Err(self.err(
                        ErrorKind::Conflict,
                        "directory not empty",
                        "remove_dir",
                        dir,
                    ));
                }
                if !dir.is_root() {
                    nodes.remove(dir);
                }
                Ok(())
            }
            Some(_) => Err(self.err(ErrorKind::Conflict, "not a directory", "remove_dir", dir)),
            None => Err(self.err(ErrorKind::NotFound, "not found", "remove_dir", dir)),
        }
    }

    async fn copy(&self, from: &RemotePath, to: &RemotePath) -> Result<Entry> {
        let node = self.lock().get(from).cloned();
        match node {
            Some(Node::File { data, modtime, .. }) => self.put(to, data, modtime),
            _ => Err(self.err(ErrorKind::NotFound, "not found", "copy", from)),
        }
    }

    async fn rename(&self, from: &RemotePath, to: &RemotePath) -> Result<Entry> {
        let e = self.copy(from, to).await?;
        self.lock().remove(from);
        Ok(e)
    }

    async fn set_modtime(&self, path: &RemotePath, t: OffsetDateTime) -> Result<()> {
        match self.lock().get_mut(path) {
            Some(Node::File { modtime, .. }) => {
                *modtime = t;
                Ok(())
            }
            _ => Err(self.err(ErrorKind::NotFound, "not found", "set_modtime", path)),
        }
    }

    async fn purge(&self, dir: &RemotePath) -> Result<()> {
        let mut nodes = self.lock();
        if !nodes.contains_key(dir) {
            return Err(self.err(ErrorKind::NotFound, "not found", "purge", dir));
        }
        nodes.retain(|p, _| !p.starts_with(dir) || (dir.is_root() && p.is_root()));
        Ok(())
    }
}
