//! [`Chaos`]: a remote wrapper driven by a seeded [`FaultPlan`] that can hit any call at any
//! point — not only at its start — so that tests can see the faults that lose data:
//!
//! - a listing that yields N entries and then fails (temporarily or not);
//! - a read or a write cut after N bytes;
//! - an operation that takes effect and then reports an error (the lost response);
//! - a call that never answers (pair it with [`Timeout`](crate::Timeout));
//! - a wrong error kind (an error reported as "not found", or the other way round);
//! - the world changing under the engine: a file written or removed, a directory removed,
//!   right before a chosen call (a source changing between plan and transfer, a directory
//!   that vanishes between list and act).
//!
//! Every plan is data ([`Rule`]s), printable and reproducible from its seed.

use std::ops::Range;
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;
use time::OffsetDateTime;

use crate::entry::{Entry, WriteMeta};
use crate::error::{Error, ErrorKind, Result};
use crate::hash::HashKind;
use crate::location::Location;
use crate::path::RemotePath;
use crate::remote::{ByteStream, Capabilities, EntryStream, Remote, bytes_stream};

/// A call of [`Remote`] a [`Rule`] can hit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Op {
    /// [`Remote::list`].
    List,
    /// [`Remote::stat`].
    Stat,
    /// [`Remote::read`].
    Read,
    /// [`Remote::write`].
    Write,
    /// [`Remote::mkdir`].
    Mkdir,
    /// [`Remote::remove_file`].
    RemoveFile,
    /// [`Remote::remove_dir`].
    RemoveDir,
    /// [`Remote::copy`].
    Copy,
    /// [`Remote::rename`].
    Rename,
    /// [`Remote::set_modtime`].
    SetModtime,
    /// [`Remote::hash`].
    Hash,
}

impl Op {
    /// Every operation.
    pub const ALL: [Op; 11] = [
        Op::List,
        Op::Stat,
        Op::Read,
        Op::Write,
        Op::Mkdir,
        Op::RemoveFile,
        Op::RemoveDir,
        Op::Copy,
        Op::Rename,
        Op::SetModtime,
        Op::Hash,
    ];

    /// Whether the operation changes the remote (a lost response is possible).
    pub fn mutates(self) -> bool {
        !matches!(self, Op::List | Op::Stat | Op::Read | Op::Hash)
    }
}

/// A change to the wrapped remote, made by someone else.
#[derive(Debug, Clone, PartialEq)]
pub enum Mutation {
    /// A file gets new content and modtime.
    Write {
        /// The file.
        path: RemotePath,
        /// Its new content.
        data: Bytes,
        /// Its new modtime.
        modtime: OffsetDateTime,
    },
    /// A file, or a directory with everything in it, disappears.
    Remove(RemotePath),
}

/// What happens when a [`Rule`] fires.
#[derive(Debug, Clone, PartialEq)]
pub enum Fault {
    /// The call fails before doing anything, with this kind (a "wrong kind" when the truth
    /// is something else, e.g. `NotFound` for a directory that exists).
    Fail(ErrorKind),
    /// A listing yields `after` entries, then this error.
    ListBreaks {
        /// Entries delivered first.
        after: usize,
        /// The error's kind.
        kind: ErrorKind,
    },
    /// A listing yields `after` entries, then an entry that cannot be described (an error of
    /// kind [`ErrorKind::InvalidInput`], as for a name with `..`), then the rest.
    BadEntry {
        /// Entries delivered first.
        after: usize,
    },
    /// A read delivers `after` bytes, then this error.
    ReadCut {
        /// Bytes delivered first.
        after: u64,
        /// The error's kind.
        kind: ErrorKind,
    },
    /// A write's body is cut after `after` bytes with this error (the backend must keep
    /// nothing of it).
    WriteCut {
        /// Bytes sent first.
        after: u64,
        /// The error's kind.
        kind: ErrorKind,
    },
    /// The call takes effect, then reports this error.
    LostResponse(ErrorKind),
    /// The call never answers.
    Hang,
    /// The call fails before doing anything with [`ErrorKind::RateLimited`] asking to wait
    /// `retry_after` (a 429 or 503 with a `Retry-After` header).
    RateLimited {
        /// The wait the server asks for.
        retry_after: std::time::Duration,
    },
    /// The world changes right before the call, which then runs normally.
    Mutate(Mutation),
}

/// When a fault fires: on the calls of `op` (on `path`, or on any path), after letting
/// `skip` matching calls through, for `times` calls.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    /// The operation hit.
    pub op: Op,
    /// The path hit (`None`: any). For copy and rename, the destination path.
    pub path: Option<RemotePath>,
    /// Matching calls let through first.
    pub skip: u32,
    /// Calls the fault fires on (then the rule is spent).
    pub times: u32,
    /// What happens.
    pub fault: Fault,
}

/// A list of [`Rule`]s, usually drawn from a seed with [`FaultPlan::random`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FaultPlan {
    /// The rules, checked in order; the first live match fires.
    pub rules: Vec<Rule>,
}

/// Kinds of errors a random plan uses: temporary and permanent ones, and the lies.
const KINDS: [ErrorKind; 5] = [
    ErrorKind::Transient,
    ErrorKind::Transient,
    ErrorKind::PermissionDenied,
    ErrorKind::Io,
    ErrorKind::NotFound,
];

impl FaultPlan {
    /// No faults.
    pub fn none() -> Self {
        FaultPlan::default()
    }

    /// One to `max_rules` rules drawn from `rng` over the `files` and `dirs` a test knows on
    /// this remote. Mutations write new contents made by `content(path, variant)`.
    pub fn random(
        rng: &mut fastrand::Rng,
        files: &[RemotePath],
        dirs: &[RemotePath],
        max_rules: usize,
        content: &dyn Fn(&RemotePath, u8) -> (Bytes, OffsetDateTime),
    ) -> Self {
        let n = rng.usize(1..=max_rules.max(1));
        let mut rules = Vec::with_capacity(n);
        for _ in 0..n {
            // The calls every run makes come up more often than the rare ones.
            let op = match rng.u8(..10) {
                0..=2 => Op::List,
                3 => Op::Stat,
                4 | 5 => Op::Read,
                6 | 7 => Op::Write,
                8 => Op::RemoveFile,
                _ => Op::ALL[rng.usize(..Op::ALL.len())],
            };
            let on_dirs = matches!(op, Op::List | Op::Mkdir | Op::RemoveDir);
            let pool = if on_dirs { dirs } else { files };
            let path = if pool.is_empty() || rng.u8(..4) == 0 {
                None
            } else {
                Some(pool[rng.usize(..pool.len())].clone())
            };
            let kind = KINDS[rng.usize(..KINDS.len())];
            let fault = match rng.u8(..10) {
                0 | 1 => Fault::Fail(kind),
                2 | 3 if op == Op::List => Fault::ListBreaks {
                    after: rng.usize(0..4),
                    kind,
                },
                9 if op == Op::List => Fault::BadEntry {
                    after: rng.usize(0..4),
                },
                2 | 3 if op == Op::Read => Fault::ReadCut {
                    after: rng.u64(0..70_000),
                    kind,
                },
                2 | 3 if op == Op::Write => Fault::WriteCut {
                    after: rng.u64(0..70_000),
                    kind,
                },
                4 | 5 if op.mutates() => Fault::LostResponse(kind),
                6 => Fault::Hang,
                7 if !files.is_empty() => {
                    let target = files[rng.usize(..files.len())].clone();
                    if rng.bool() {
                        let (data, modtime) = content(&target, rng.u8(..8));
                        Fault::Mutate(Mutation::Write {
                            path: target,
                            data,
                            modtime,
                        })
                    } else {
                        Fault::Mutate(Mutation::Remove(target))
                    }
                }
                8 if dirs.len() > 1 => {
                    let dir = dirs[rng.usize(1..dirs.len())].clone();
                    Fault::Mutate(Mutation::Remove(dir))
                }
                _ => Fault::Fail(ErrorKind::Transient),
            };
            rules.push(Rule {
                op,
                path,
                skip: rng.u32(0..3),
                times: if rng.u8(..4) == 0 { u32::MAX } else { 1 },
                fault,
            });
        }
        FaultPlan { rules }
    }
}

#[derive(Debug, Default)]
struct State {
    rules: Vec<(Rule, u32, u32)>,
    calm: bool,
    fired: Vec<String>,
    mutated: Vec<Mutation>,
}

/// Wraps a remote and applies a [`FaultPlan`] to its calls.
///
/// ```
/// use std::sync::Arc;
/// use cloudsync_core::testkit::{Chaos, Fault, FaultPlan, MemFs, Op, Rule};
/// use cloudsync_core::{ErrorKind, RemotePath};
/// let plan = FaultPlan {
///     rules: vec![Rule {
///         op: Op::List,
///         path: Some(RemotePath::new("photos")?),
///         skip: 0,
///         times: 1,
///         fault: Fault::ListBreaks { after: 2, kind: ErrorKind::Transient },
///     }],
/// };
/// let chaos = Chaos::new(Arc::new(MemFs::new("memfs://a")), plan);
/// # let _ = chaos;
/// # Ok::<(), cloudsync_core::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct Chaos {
    inner: Arc<dyn Remote>,
    state: Arc<Mutex<State>>,
}

impl Chaos {
    /// Wraps `inner` with `plan`.
    pub fn new(inner: Arc<dyn Remote>, plan: FaultPlan) -> Self {
        let state = State {
            rules: plan.rules.into_iter().map(|r| (r, 0, 0)).collect(),
            ..State::default()
        };
        Chaos {
            inner,
            state: Arc::new(Mutex::new(state)),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Stops every fault: from now on calls go straight through.
    pub fn calm(&self) {
        self.lock().calm = true;
    }

    /// The faults that fired, in order, as text.
    pub fn fired(&self) -> Vec<String> {
        self.lock().fired.clone()
    }

    /// The mutations that were made.
    pub fn mutations(&self) -> Vec<Mutation> {
        self.lock().mutated.clone()
    }

    /// Whether a fault of `op` fired on `path`.
    pub fn fired_on(&self, op: Op, path: &RemotePath) -> bool {
        let prefix = format!("{op:?} {path}:");
        self.lock().fired.iter().any(|f| f.starts_with(&prefix))
    }

    /// The fault for this call, if one fires; mutations are applied here.
    async fn hit(&self, op: Op, path: &RemotePath) -> Result<Option<Fault>> {
        let fault = {
            let mut st = self.lock();
            if st.calm {
                return Ok(None);
            }
            let mut found = None;
            for (rule, seen, fired) in st.rules.iter_mut() {
                if rule.op != op || rule.path.as_ref().is_some_and(|p| p != path) {
                    continue;
                }
                if *fired >= rule.times {
                    continue;
                }
                *seen += 1;
                if *seen <= rule.skip {
                    continue;
                }
                *fired += 1;
                found = Some(rule.fault.clone());
                break;
            }
            if let Some(f) = &found {
                let what = match f {
                    Fault::Mutate(Mutation::Write { path, data, .. }) => {
                        format!("Mutate(Write {path}, {} bytes)", data.len())
                    }
                    other => format!("{other:?}"),
                };
                st.fired.push(format!("{op:?} {path}: {what}"));
            }
            found
        };
        match fault {
            Some(Fault::Mutate(m)) => {
                self.apply(&m).await?;
                self.lock().mutated.push(m);
                Ok(None)
            }
            other => Ok(other),
        }
    }

    async fn apply(&self, m: &Mutation) -> Result<()> {
        match m {
            Mutation::Write {
                path,
                data,
                modtime,
            } => {
                let meta = WriteMeta {
                    size: Some(data.len() as u64),
                    modtime: Some(*modtime),
                    ..Default::default()
                };
                match self
                    .inner
                    .write(path, bytes_stream(data.clone()), meta)
                    .await
                {
                    Ok(_) => Ok(()),
                    // A parent that is not a directory any more: nothing to change.
                    Err(e) if e.kind() == ErrorKind::Conflict => Ok(()),
                    Err(e) => Err(e),
                }
            }
            Mutation::Remove(path) => {
                let r = match self.inner.stat(path).await {
                    Ok(e) if e.is_dir() => self.inner.purge(path).await,
                    Ok(_) => self.inner.remove_file(path).await,
                    Err(e) => Err(e),
                };
                match r {
                    Err(e) if e.kind() != ErrorKind::NotFound => Err(e),
                    _ => Ok(()),
                }
            }
        }
    }

    fn error(kind: ErrorKind, op: Op, path: &RemotePath) -> Error {
        Error::new(kind, format!("injected {op:?} fault")).with_path(path)
    }

    fn slow_down(retry_after: std::time::Duration, op: Op, path: &RemotePath) -> Error {
        Error::rate_limited(format!("injected {op:?} rate limit"), Some(retry_after))
            .with_path(path)
    }
}

/// Passes `after` items, then `err` instead of the rest.
fn break_after<T: Send + 'static>(
    s: futures::stream::BoxStream<'static, Result<T>>,
    after: usize,
    err: Error,
) -> futures::stream::BoxStream<'static, Result<T>> {
    s.take(after)
        .chain(futures::stream::once(async move { Err(err) }))
        .boxed()
}

/// Passes `after` bytes of a byte stream, then `err`.
fn cut_bytes(s: ByteStream, after: u64, err: Error) -> ByteStream {
    let mut left = after;
    let mut err = Some(err);
    s.flat_map(move |chunk| {
        let out: Vec<Result<Bytes>> = match chunk {
            _ if err.is_none() => vec![],
            Ok(c) if (c.len() as u64) <= left => {
                left -= c.len() as u64;
                vec![Ok(c)]
            }
            Ok(c) => {
                let keep = usize::try_from(left).unwrap_or(0).min(c.len());
                left = 0;
                let mut v = vec![Ok(c.slice(..keep))];
                v.extend(err.take().map(Err));
                v
            }
            Err(e) => {
                err = None;
                vec![Err(e)]
            }
        };
        futures::stream::iter(out)
    })
    .boxed()
}

macro_rules! plain {
    ($self:ident, $op:expr, $path:expr, $call:expr) => {{
        match $self.hit($op, $path).await? {
            None => $call.await,
            Some(Fault::Hang) => futures::future::pending().await,
            Some(Fault::RateLimited { retry_after }) => {
                Err(Chaos::slow_down(retry_after, $op, $path))
            }
            Some(Fault::LostResponse(kind)) => {
                let _ = $call.await;
                Err(Chaos::error(kind, $op, $path))
            }
            Some(Fault::Fail(kind))
            | Some(Fault::ListBreaks { kind, .. })
            | Some(Fault::ReadCut { kind, .. })
            | Some(Fault::WriteCut { kind, .. }) => Err(Chaos::error(kind, $op, $path)),
            Some(Fault::Mutate(_)) | Some(Fault::BadEntry { .. }) => $call.await,
        }
    }};
}

#[async_trait]
impl Remote for Chaos {
    fn describe(&self) -> String {
        self.inner.describe()
    }
    fn capabilities(&self) -> &Capabilities {
        self.inner.capabilities()
    }
    fn location(&self) -> Option<Location> {
        self.inner.location()
    }
    async fn list(&self, dir: &RemotePath) -> Result<EntryStream> {
        match self.hit(Op::List, dir).await? {
            Some(Fault::ListBreaks { after, kind }) => {
                let s = self.inner.list(dir).await?;
                Ok(break_after(s, after, Chaos::error(kind, Op::List, dir)))
            }
            Some(Fault::BadEntry { after }) => {
                let s = self.inner.list(dir).await?;
                let bad = Error::new(
                    ErrorKind::InvalidInput,
                    "injected entry with an invalid name",
                )
                .with_path(dir);
                let (head, tail) = (s.take(after).collect::<Vec<_>>().await, after);
                let rest = self.inner.list(dir).await?.skip(tail);
                Ok(futures::stream::iter(head)
                    .chain(futures::stream::once(async move { Err(bad) }))
                    .chain(rest)
                    .boxed())
            }
            Some(Fault::Hang) => futures::future::pending().await,
            Some(Fault::RateLimited { retry_after }) => {
                Err(Chaos::slow_down(retry_after, Op::List, dir))
            }
            Some(Fault::Fail(kind)) | Some(Fault::LostResponse(kind)) => {
                Err(Chaos::error(kind, Op::List, dir))
            }
            _ => self.inner.list(dir).await,
        }
    }
    async fn stat(&self, path: &RemotePath) -> Result<Entry> {
        plain!(self, Op::Stat, path, self.inner.stat(path))
    }
    async fn read(&self, path: &RemotePath, range: Option<Range<u64>>) -> Result<ByteStream> {
        match self.hit(Op::Read, path).await? {
            Some(Fault::ReadCut { after, kind }) => {
                let s = self.inner.read(path, range).await?;
                Ok(cut_bytes(s, after, Chaos::error(kind, Op::Read, path)))
            }
            Some(Fault::Hang) => futures::future::pending().await,
            Some(Fault::RateLimited { retry_after }) => {
                Err(Chaos::slow_down(retry_after, Op::Read, path))
            }
            Some(Fault::Fail(kind)) | Some(Fault::LostResponse(kind)) => {
                Err(Chaos::error(kind, Op::Read, path))
            }
            _ => self.inner.read(path, range).await,
        }
    }
    async fn write(&self, path: &RemotePath, body: ByteStream, meta: WriteMeta) -> Result<Entry> {
        match self.hit(Op::Write, path).await? {
            Some(Fault::WriteCut { after, kind }) => {
                let cut = cut_bytes(body, after, Chaos::error(kind, Op::Write, path));
                self.inner.write(path, cut, meta).await
            }
            Some(Fault::Hang) => futures::future::pending().await,
            Some(Fault::LostResponse(kind)) => {
                self.inner.write(path, body, meta).await?;
                Err(Chaos::error(kind, Op::Write, path))
            }
            Some(Fault::Fail(kind)) => Err(Chaos::error(kind, Op::Write, path)),
            Some(Fault::RateLimited { retry_after }) => {
                Err(Chaos::slow_down(retry_after, Op::Write, path))
            }
            _ => self.inner.write(path, body, meta).await,
        }
    }
    async fn write_at(
        &self,
        path: &RemotePath,
        offset: u64,
        body: ByteStream,
        total: Option<u64>,
    ) -> Result<u64> {
        // Rules on `Op::Write` hit the partial writes of resumable transfers too.
        match self.hit(Op::Write, path).await? {
            Some(Fault::WriteCut { after, kind }) => {
                let cut = cut_bytes(body, after, Chaos::error(kind, Op::Write, path));
                self.inner.write_at(path, offset, cut, total).await
            }
            Some(Fault::Hang) => futures::future::pending().await,
            Some(Fault::LostResponse(kind)) => {
                self.inner.write_at(path, offset, body, total).await?;
                Err(Chaos::error(kind, Op::Write, path))
            }
            Some(Fault::Fail(kind)) => Err(Chaos::error(kind, Op::Write, path)),
            Some(Fault::RateLimited { retry_after }) => {
                Err(Chaos::slow_down(retry_after, Op::Write, path))
            }
            _ => self.inner.write_at(path, offset, body, total).await,
        }
    }
    async fn session_start(
        &self,
        path: &RemotePath,
        size: u64,
        meta: &WriteMeta,
    ) -> Result<crate::resume_state::SessionToken> {
        self.inner.session_start(path, size, meta).await
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
        // Rules on `Op::Write` hit session uploads too.
        match self.hit(Op::Write, path).await? {
            Some(Fault::WriteCut { after, kind }) => {
                let cut = cut_bytes(body, after, Chaos::error(kind, Op::Write, path));
                self.inner
                    .session_write(token, path, offset, cut, meta)
                    .await
            }
            Some(Fault::Hang) => futures::future::pending().await,
            Some(Fault::LostResponse(kind)) => {
                self.inner
                    .session_write(token, path, offset, body, meta)
                    .await?;
                Err(Chaos::error(kind, Op::Write, path))
            }
            Some(Fault::Fail(kind)) => Err(Chaos::error(kind, Op::Write, path)),
            Some(Fault::RateLimited { retry_after }) => {
                Err(Chaos::slow_down(retry_after, Op::Write, path))
            }
            _ => {
                self.inner
                    .session_write(token, path, offset, body, meta)
                    .await
            }
        }
    }
    async fn session_cancel(&self, token: &crate::resume_state::SessionToken) -> Result<()> {
        self.inner.session_cancel(token).await
    }
    async fn mkdir(&self, dir: &RemotePath) -> Result<()> {
        plain!(self, Op::Mkdir, dir, self.inner.mkdir(dir))
    }
    async fn remove_file(&self, path: &RemotePath) -> Result<()> {
        plain!(self, Op::RemoveFile, path, self.inner.remove_file(path))
    }
    async fn remove_dir(&self, dir: &RemotePath) -> Result<()> {
        plain!(self, Op::RemoveDir, dir, self.inner.remove_dir(dir))
    }
    async fn copy(&self, from: &RemotePath, to: &RemotePath) -> Result<Entry> {
        plain!(self, Op::Copy, to, self.inner.copy(from, to))
    }
    async fn rename(&self, from: &RemotePath, to: &RemotePath) -> Result<Entry> {
        plain!(self, Op::Rename, to, self.inner.rename(from, to))
    }
    async fn set_modtime(&self, path: &RemotePath, t: OffsetDateTime) -> Result<()> {
        plain!(self, Op::SetModtime, path, self.inner.set_modtime(path, t))
    }
    async fn hash(&self, path: &RemotePath, kind: HashKind) -> Result<String> {
        plain!(self, Op::Hash, path, self.inner.hash(path, kind))
    }
    async fn purge(&self, dir: &RemotePath) -> Result<()> {
        self.inner.purge(dir).await
    }
}
