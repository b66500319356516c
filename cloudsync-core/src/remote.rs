//! The [`Remote`] trait every backend implements, and its [`Capabilities`].

use std::fmt::Debug;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use time::OffsetDateTime;

use crate::entry::{Entry, Usage, WriteMeta};
use crate::error::{Error, Result};
use crate::hash::HashKind;
use crate::location::Location;
use crate::path::RemotePath;
use crate::resume_state::SessionToken;

/// File content as a stream of byte chunks.
pub type ByteStream = BoxStream<'static, Result<Bytes>>;

/// A listing as a stream of entries.
pub type EntryStream = BoxStream<'static, Result<Entry>>;

/// What a remote can do, so the engine adapts instead of failing.
///
/// Backends build it as a struct literal ending in `..Default::default()`; the default is a
/// remote that can do nothing optional.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Capabilities {
    /// Hash kinds available cheaply (in listings, or from [`Remote::hash`] without a download).
    pub hashes: Vec<HashKind>,
    /// Granularity of stored modtimes; `None` when the remote keeps no meaningful modtime
    /// (the engine then compares by size, and hashes where it can).
    pub modtime_precision: Option<Duration>,
    /// [`Remote::write`] stores [`WriteMeta::modtime`] as the file's modtime.
    pub write_modtime: bool,
    /// [`Remote::set_modtime`] works on an existing file.
    pub set_modtime: bool,
    /// Uploading content identical to the stored file's changes nothing, not even the
    /// modtime (Dropbox). When hashes prove two files the same and only their modtimes
    /// differ, the engine leaves such a destination file as it is: neither
    /// [`Remote::set_modtime`] nor a new upload could change its modtime, and uploading
    /// again on every run would never converge.
    pub identical_upload_keeps_modtime: bool,
    /// [`Remote::copy`] (server-side copy within this remote) works.
    pub copy: bool,
    /// [`Remote::rename`] (server-side move within this remote) works.
    pub rename: bool,
    /// [`Remote::list_recursive`] works and is cheaper than walking with [`Remote::list`].
    pub list_recursive: bool,
    /// [`Remote::purge`] removes a whole tree faster than file-by-file deletion.
    pub purge: bool,
    /// [`Remote::cleanup`] (empty trash, drop old versions) works.
    pub cleanup: bool,
    /// [`Remote::usage`] works.
    pub usage: bool,
    /// Names that differ only by case are the same file.
    pub case_insensitive: bool,
    /// Directories exist as objects (can be empty, are created by `mkdir`). When false,
    /// directories are implied by the files below them and `mkdir` is a no-op.
    pub dirs: bool,
    /// Largest file the remote accepts, if limited.
    pub max_file_size: Option<u64>,
    /// Longest name (one segment, in bytes) the remote accepts, if limited.
    pub max_name_len: Option<usize>,
    /// Transfers to this remote can be resumed: [`Remote::write_at`] works, and
    /// [`Remote::rename`] makes a finished partial file visible under its final name
    /// atomically.
    pub resume: bool,
    /// Uploads to this remote can be resumed through a server-side upload session (Drive and
    /// Cloud Storage resumable sessions, Dropbox upload sessions): [`Remote::session_start`],
    /// [`Remote::session_offset`], [`Remote::session_write`] and [`Remote::session_cancel`]
    /// work. The engine keeps each unfinished session's token in a
    /// [`SessionStore`](crate::resume_state::SessionStore) so that a retry, or a later run,
    /// continues the upload from the bytes the server holds.
    pub resume_sessions: bool,
    /// Whether small files may share the slots of `--transfers` when this remote is one side
    /// of a transfer (see [`SmallFileSlots`]).
    pub small_file_slots: SmallFileSlots,
}

/// How a remote bears many small transfers at once.
///
/// A file of at most [`SmallFileSlots::SMALL_FILE`] bytes costs a remote like SFTP a few
/// round trips and almost no bandwidth, so one `--transfers` slot can carry several of them
/// without loading the connection more than one large file would. The engine lets small
/// files share slots only when both sides of the transfer agree (see
/// [`SmallFileSlots::between`]) and more than one transfer was asked for; other work (large
/// files) still takes a whole slot.
///
/// ```
/// use cloudsync_core::SmallFileSlots;
///
/// // Local disk to SFTP: the SFTP side decides.
/// let per_slot = SmallFileSlots::between(SmallFileSlots::Any, SmallFileSlots::Shared(4));
/// assert_eq!(per_slot, 4);
/// // A remote that keeps the default takes one file per slot, whatever the other side says.
/// assert_eq!(SmallFileSlots::between(SmallFileSlots::Whole, SmallFileSlots::Shared(4)), 1);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum SmallFileSlots {
    /// Every transfer takes a whole slot (the default: a remote whose server limits
    /// connections or write rates).
    #[default]
    Whole,
    /// Up to this many small files share one slot (at most 64 are used).
    Shared(usize),
    /// No preference: the other side of the transfer decides (local disk).
    Any,
}

impl SmallFileSlots {
    /// The largest file that counts as small: 128 KiB.
    pub const SMALL_FILE: u64 = 128 * 1024;

    /// How many small files may share one slot in a transfer between `a` and `b` (at least 1).
    pub fn between(a: SmallFileSlots, b: SmallFileSlots) -> usize {
        a.and(b).per_slot()
    }

    /// What two remotes that take part in the same transfers bear together: the stricter of
    /// the two, and no preference only when neither has one.
    pub fn and(self, other: SmallFileSlots) -> SmallFileSlots {
        use SmallFileSlots::{Any, Shared, Whole};
        match (self, other) {
            (Whole, _) | (_, Whole) => Whole,
            (Any, x) | (x, Any) => x,
            (Shared(m), Shared(n)) => Shared(m.min(n)),
        }
    }

    /// Small files per slot: the shared count (1 to 64), else 1.
    pub fn per_slot(self) -> usize {
        match self {
            SmallFileSlots::Shared(n) => n.clamp(1, 64),
            SmallFileSlots::Whole | SmallFileSlots::Any => 1,
        }
    }
}

/// A storage location: local disk, a server, a cloud account.
///
/// Paths are relative to the root the remote was opened at. Implementations are cheap to share
/// as `Arc<dyn Remote>` and are used concurrently from many tasks.
///
/// The required methods are the contract every backend fulfils and the
/// [`testkit`](crate::testkit) checks. Optional methods default to an
/// [`ErrorKind::Unsupported`](crate::ErrorKind::Unsupported) error; a backend that implements one sets the matching
/// [`Capabilities`] flag.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> cloudsync_core::Result<()> {
/// use cloudsync_core::{memory, Remote, RemotePath, WriteMeta};
/// use futures::TryStreamExt;
///
/// let remote = memory();
/// let path = RemotePath::new("docs/hello.txt")?;
/// remote
///     .write(&path, cloudsync_core::bytes_stream("hi"), WriteMeta::default())
///     .await?;
/// let names: Vec<String> = remote
///     .list(&RemotePath::new("docs")?)
///     .await?
///     .map_ok(|e| e.name().to_owned())
///     .try_collect()
///     .await?;
/// assert_eq!(names, ["hello.txt"]);
/// # Ok(())
/// # }
/// ```
#[async_trait]
pub trait Remote: Send + Sync + Debug {
    /// A URL-like description for messages (`sftp://user@host/base`); never contains secrets.
    fn describe(&self) -> String;

    /// What this remote can do.
    fn capabilities(&self) -> &Capabilities;

    /// Lists one directory level. Entry paths are full paths from the root.
    ///
    /// A missing directory is [`ErrorKind::NotFound`](crate::ErrorKind::NotFound) — and only a directory known to be absent:
    /// a folder the server refuses is an error of another kind. Order is unspecified.
    ///
    /// The engine reads the stream strictly: an `Err` item of kind [`ErrorKind::InvalidInput`](crate::ErrorKind::InvalidInput) is
    /// one entry that cannot be represented (a name with `..`, NUL, an encoded `/`), reported,
    /// and the rest of the listing stands; any other `Err` item means the listing is incomplete,
    /// and nothing in the directory is decided (no deletion, no replacement). An entry the
    /// backend cannot describe must be such an error, never skipped in silence. Our temporary
    /// upload files ([`is_temp_name`](crate::is_temp_name)) are listed like any file.
    async fn list(&self, dir: &RemotePath) -> Result<EntryStream>;

    /// Metadata of one file or directory; [`ErrorKind::NotFound`](crate::ErrorKind::NotFound) when absent.
    async fn stat(&self, path: &RemotePath) -> Result<Entry>;

    /// Reads a file, or the byte `range` of it.
    async fn read(&self, path: &RemotePath, range: Option<Range<u64>>) -> Result<ByteStream>;

    /// Writes a file atomically, creating parent directories as needed and replacing any file
    /// already there: the new content becomes visible whole or not at all, and a failed write
    /// leaves nothing behind. Returns the new file's entry.
    async fn write(&self, path: &RemotePath, body: ByteStream, meta: WriteMeta) -> Result<Entry>;

    /// Creates a directory and its parents; succeeds if it already exists.
    async fn mkdir(&self, dir: &RemotePath) -> Result<()>;

    /// Removes one file.
    async fn remove_file(&self, path: &RemotePath) -> Result<()>;

    /// Removes one empty directory ([`ErrorKind::Conflict`](crate::ErrorKind::Conflict) when it is not empty).
    async fn remove_dir(&self, dir: &RemotePath) -> Result<()>;

    /// Writes `body` into the partial file `path` of a resumable transfer from byte `offset`
    /// on (see [`Capabilities::resume`]) and returns the file's size afterwards.
    ///
    /// At `offset` 0 the file is created (with its parents) or emptied; otherwise `offset` is
    /// at most the file's current size, the file is cut to `offset` and the body appended.
    /// A larger `offset` (or a missing file) is
    /// [`ErrorKind::ConditionNotMatch`](crate::ErrorKind::ConditionNotMatch). The write is not
    /// atomic, on purpose: when the body or the connection fails, the bytes that reached the
    /// file stay there, contiguous from the start, for the next attempt. The engine only uses
    /// it on our partial names ([`part_name`](crate::part_name)) and makes the finished file
    /// visible with [`Remote::rename`].
    ///
    /// `total` is the size the complete file will have, when the caller knows it. A backend
    /// that must announce the length of each request may then stream the body in fewer,
    /// larger requests instead of buffering it. A body that ends short of `total` may fail
    /// the write (the bytes that arrived stay, as with any broken body); a longer one is
    /// still written whole. Backends that write as the body streams in ignore it.
    async fn write_at(
        &self,
        path: &RemotePath,
        offset: u64,
        body: ByteStream,
        total: Option<u64>,
    ) -> Result<u64> {
        let _ = (path, offset, body, total);
        Err(self.unsupported("write_at"))
    }

    /// Opens an upload session for a file of `size` bytes to be stored at `path` (see
    /// [`Capabilities::resume_sessions`]) and returns its token.
    ///
    /// The token is opaque to the engine and is kept in a state file between runs, so it must
    /// let this backend find the session again in another process (a session URI, an upload
    /// id) and must never hold a credential such as an access token. Nothing is visible at
    /// `path` until [`Remote::session_write`] finishes the session. `meta` holds the source's
    /// known facts (modtime, hashes) where the backend sets them when the session opens.
    async fn session_start(
        &self,
        path: &RemotePath,
        size: u64,
        meta: &WriteMeta,
    ) -> Result<SessionToken> {
        let _ = (path, size, meta);
        Err(self.unsupported("session_start"))
    }

    /// How many bytes of the upload session `token` the server holds, contiguous from byte 0:
    /// the offset [`Remote::session_write`] continues from.
    ///
    /// [`ErrorKind::NotFound`](crate::ErrorKind::NotFound) when the session is unknown, has
    /// expired, was cancelled or has already finished (the engine then opens a new one); any
    /// other error means the state could not be learnt (retryable ones are retried later).
    async fn session_offset(&self, token: &SessionToken) -> Result<u64> {
        let _ = token;
        Err(self.unsupported("session_offset"))
    }

    /// Sends `body` — the file's bytes from `offset` to its end, `meta.size` bytes in all —
    /// into the session `token` opened for `path`, and finishes it; returns the new file's
    /// entry.
    ///
    /// `offset` is 0 for a new session, else what [`Remote::session_offset`] just reported
    /// (another one is [`ErrorKind::ConditionNotMatch`](crate::ErrorKind::ConditionNotMatch)).
    /// The file becomes visible at `path` whole or not at all, replacing any file there.
    /// When the body or the connection fails, the chunks the server acknowledged stay in the
    /// session for the next attempt (the session is not cancelled); the error is then
    /// returned as is. `meta.hashes` may hold hashes of the whole content; a backend whose
    /// API can check them before the file becomes visible passes them on. A session the
    /// server no longer knows is [`ErrorKind::NotFound`](crate::ErrorKind::NotFound).
    async fn session_write(
        &self,
        token: &SessionToken,
        path: &RemotePath,
        offset: u64,
        body: ByteStream,
        meta: WriteMeta,
    ) -> Result<Entry> {
        let _ = (token, path, offset, body, meta);
        Err(self.unsupported("session_write"))
    }

    /// Abandons the upload session `token` so the server frees what it holds. Best effort:
    /// an unknown or expired session is `Ok`; unfinished sessions also expire on their own.
    async fn session_cancel(&self, token: &SessionToken) -> Result<()> {
        let _ = token;
        Err(self.unsupported("session_cancel"))
    }

    /// Lists the whole tree below `dir` in one pass (see [`Capabilities::list_recursive`]).
    async fn list_recursive(&self, dir: &RemotePath) -> Result<EntryStream> {
        let _ = dir;
        Err(self.unsupported("list_recursive"))
    }

    /// Copies a file within this remote on the server side (see [`Capabilities::copy`]).
    async fn copy(&self, from: &RemotePath, to: &RemotePath) -> Result<Entry> {
        let _ = (from, to);
        Err(self.unsupported("copy"))
    }

    /// Moves a file within this remote on the server side, replacing `to` (see
    /// [`Capabilities::rename`]).
    async fn rename(&self, from: &RemotePath, to: &RemotePath) -> Result<Entry> {
        let _ = (from, to);
        Err(self.unsupported("rename"))
    }

    /// Sets a file's modtime (see [`Capabilities::set_modtime`]).
    async fn set_modtime(&self, path: &RemotePath, modtime: OffsetDateTime) -> Result<()> {
        let _ = (path, modtime);
        Err(self.unsupported("set_modtime"))
    }

    /// Computes or fetches one hash of a file.
    ///
    /// The default reads the file and hashes it, which works everywhere but costs a download;
    /// backends with server-side hashes override it.
    async fn hash(&self, path: &RemotePath, kind: HashKind) -> Result<String> {
        crate::hash::hash_stream(self.read(path, None).await?, kind).await
    }

    /// Removes `dir` and everything below it (see [`Capabilities::purge`]).
    async fn purge(&self, dir: &RemotePath) -> Result<()> {
        let _ = dir;
        Err(self.unsupported("purge"))
    }

    /// Frees space: empties the trash, removes old versions (see [`Capabilities::cleanup`]).
    async fn cleanup(&self) -> Result<()> {
        Err(self.unsupported("cleanup"))
    }

    /// Space used and free (see [`Capabilities::usage`]).
    async fn usage(&self) -> Result<Usage> {
        Err(self.unsupported("usage"))
    }

    /// For a view of another remote rooted at one of its directories ([`Prefix`](crate::Prefix)):
    /// that remote and the directory. The executor uses it to copy and move server-side between
    /// two directories of the same remote.
    fn prefixed_view(&self) -> Option<(Arc<dyn Remote>, RemotePath)> {
        None
    }

    /// Where this remote's root really is (see [`Location`]), so that the engine can refuse a
    /// source and destination that are one place or overlap however they were spelled
    /// (`a` and `b/../a`, a symlink, a second name of a host). `None` when unknown; the engine
    /// then falls back to comparing [`describe`](Self::describe) strings.
    fn location(&self) -> Option<Location> {
        None
    }

    /// The local filesystem path that holds `path`, for remotes that are local directories.
    ///
    /// The executor uses it to hand a destination a local file ([`Remote::write_from_file`])
    /// instead of a stream, which lets local→local copies use the kernel's copy fast path.
    fn local_path(&self, path: &RemotePath) -> Option<PathBuf> {
        let _ = path;
        None
    }

    /// Writes `path` from a local file; same contract as [`Remote::write`].
    ///
    /// The default streams the file into [`Remote::write`]; the local backend overrides it with
    /// a kernel-side copy.
    async fn write_from_file(
        &self,
        path: &RemotePath,
        local: &Path,
        meta: WriteMeta,
    ) -> Result<Entry> {
        let file = tokio::fs::File::open(local)
            .await
            .map_err(|e| Error::from(e).with_path(local.display()))?;
        let stream = tokio_util::io::ReaderStream::with_capacity(file, 256 * 1024)
            .map(|r| r.map_err(Error::from))
            .boxed();
        self.write(path, stream, meta).await
    }

    /// An [`ErrorKind::Unsupported`](crate::ErrorKind::Unsupported) error naming `operation` and this remote.
    fn unsupported(&self, operation: &'static str) -> Error {
        Error::unsupported(operation, &self.describe()).with_remote(self.describe())
    }
}

/// A [`ByteStream`] holding `data` in one chunk (handy for small writes and tests).
///
/// ```
/// let s = cloudsync_core::bytes_stream("hello");
/// # let _ = s;
/// ```
pub fn bytes_stream(data: impl Into<Bytes>) -> ByteStream {
    let data: Bytes = data.into();
    futures::stream::once(async move { Ok(data) }).boxed()
}

/// Reads a whole stream into memory. Only for small content (tests, reports, lock files).
pub async fn collect_bytes(mut stream: ByteStream) -> Result<Bytes> {
    let mut buf = bytes::BytesMut::new();
    while let Some(chunk) = stream.try_next().await? {
        buf.extend_from_slice(&chunk);
    }
    Ok(buf.freeze())
}
