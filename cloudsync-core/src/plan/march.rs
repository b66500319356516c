//! The march: list the source and destination one directory pair at a time, merge the two
//! listings by name, apply the filters, and stream what was found.
//!
//! Memory depends on the largest directory and the work in flight, not on the size of the
//! tree: each directory pair is listed, merged and forgotten; the stream is bounded, so a slow
//! consumer slows the march down.

use std::cmp::Ordering;
use std::sync::Arc;

use futures::channel::mpsc;
use futures::stream::{FuturesUnordered, StreamExt};
use futures::{SinkExt, Stream};

use crate::entry::Entry;
use crate::error::{Error, ErrorKind, Result};
use crate::filter::FilterSet;
use crate::path::RemotePath;
use crate::remote::Remote;

/// Where the march starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Seed {
    /// A starting directory, walked recursively on both sides (a missing source directory is
    /// an error, not an empty one).
    Dir(RemotePath),
    /// A directory pair to walk again after its listing failed, on the sides it was walked
    /// on the first time.
    Retry {
        path: RemotePath,
        src: bool,
        dst: bool,
    },
    /// A single file (`files_from`, retries, re-runs from a report).
    File(RemotePath),
}

impl Seed {
    /// The path the seed starts at.
    pub(crate) fn path(&self) -> &RemotePath {
        match self {
            Seed::Dir(p) | Seed::File(p) | Seed::Retry { path: p, .. } => p,
        }
    }
}

/// Which side of the march something was found on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Side {
    Src,
    Dst,
}

/// What the march found.
#[derive(Debug)]
pub(crate) enum Item {
    /// A file on one or both sides.
    Pair {
        path: RemotePath,
        src: Option<Entry>,
        dst: Option<Entry>,
        /// The source file passes the filters.
        src_included: bool,
        /// The destination file passes the filters.
        dst_included: bool,
    },
    /// A path that is a file on one side and a directory on the other.
    Conflict { path: RemotePath },
    /// Two entries on one side that the other side can't tell apart.
    Duplicate { path: RemotePath },
    /// An included source directory (visited), and whether the destination has it.
    SrcDir { entry: Entry, dst_exists: bool },
    /// A destination directory with no source counterpart, whose contents were walked.
    DstOnlyDir { path: RemotePath, included: bool },
    /// One of our temporary upload files on the destination, old enough to be a leftover of a
    /// run that died.
    Leftover { entry: Entry },
    /// A listing or stat failed, or an entry could not be described. Paths are relative to
    /// the remotes being marched (never taken from the error, whose path may be a backend's).
    Error {
        path: RemotePath,
        error: Error,
        /// Where to start again to retry it (`None`: retrying cannot help).
        retry: Option<Seed>,
    },
}

/// What the march needs to know.
#[derive(Debug, Clone)]
pub(crate) struct MarchConfig {
    pub(crate) filter: FilterSet,
    pub(crate) checkers: usize,
    /// Walk destination-only directories too (sync and check need them, copy doesn't).
    pub(crate) walk_dst_only: bool,
    /// Walk excluded destination directories (`delete_excluded`).
    pub(crate) walk_dst_excluded: bool,
    /// A destination directory the march never enters (the backup directory).
    pub(crate) skip_dst: Option<RemotePath>,
    /// Report our temporary files on the destination older than this as leftovers (`None`:
    /// never). Temporary files are never paired with anything either way.
    pub(crate) leftover_age: Option<std::time::Duration>,
}

/// Starts the march and returns the stream of what it finds.
pub(crate) fn march(
    src: Arc<dyn Remote>,
    dst: Option<Arc<dyn Remote>>,
    seeds: Vec<Seed>,
    cfg: MarchConfig,
) -> impl Stream<Item = Item> + Send + 'static {
    let (tx, rx) = mpsc::channel(256);
    let mut guard = tx.clone();
    let walker = tokio::spawn(run(src, dst, seeds, cfg, tx));
    tokio::spawn(async move {
        // A walker that died must not look like a walk that ended: the consumer would take
        // the directories it never listed for empty ones.
        if let Err(e) = walker.await {
            let error = Error::new(
                ErrorKind::Unexpected,
                format!("the directory walk failed: {e}"),
            );
            let _ = guard
                .send(Item::Error {
                    path: RemotePath::root(),
                    error,
                    retry: None,
                })
                .await;
        }
    });
    rx
}

type Tx = mpsc::Sender<Item>;

struct Walk {
    src: Arc<dyn Remote>,
    dst: Option<Arc<dyn Remote>>,
    cfg: MarchConfig,
    case_insensitive: bool,
}

/// One directory pair to visit.
#[derive(Debug, Clone)]
struct DirJob {
    path: RemotePath,
    src: bool,
    dst: bool,
    /// A starting point (a missing source seed is an error, not an empty directory).
    seed: bool,
}

async fn run(
    src: Arc<dyn Remote>,
    dst: Option<Arc<dyn Remote>>,
    seeds: Vec<Seed>,
    cfg: MarchConfig,
    mut tx: Tx,
) {
    let case_insensitive = src.capabilities().case_insensitive
        || dst
            .as_ref()
            .is_some_and(|d| d.capabilities().case_insensitive);
    let walk = Arc::new(Walk {
        src,
        dst,
        cfg,
        case_insensitive,
    });
    let mut stack: Vec<DirJob> = Vec::new();
    for seed in seeds {
        match seed {
            Seed::Dir(path) => stack.push(DirJob {
                path,
                src: true,
                dst: walk.dst.is_some(),
                seed: true,
            }),
            Seed::Retry { path, src, dst } => stack.push(DirJob {
                path,
                src,
                dst: dst && walk.dst.is_some(),
                seed: false,
            }),
            Seed::File(path) => {
                if let Some(item) = walk.file_seed(path).await {
                    if tx.send(item).await.is_err() {
                        return;
                    }
                }
            }
        }
    }
    let limit = walk.cfg.checkers.max(1);
    let mut running = FuturesUnordered::new();
    loop {
        while running.len() < limit {
            let Some(job) = stack.pop() else { break };
            let w = walk.clone();
            let tx = tx.clone();
            running.push(async move { w.visit(job, tx).await });
        }
        match running.next().await {
            Some(Some(children)) => stack.extend(children),
            Some(None) => return, // the receiver went away
            None => break,
        }
    }
}

fn key(e: &Entry, ci: bool) -> std::borrow::Cow<'_, str> {
    if ci {
        std::borrow::Cow::Owned(e.name().to_lowercase())
    } else {
        std::borrow::Cow::Borrowed(e.name())
    }
}

impl Walk {
    async fn file_seed(&self, path: RemotePath) -> Option<Item> {
        let src = match self.src.stat(&path).await {
            Ok(e) if e.is_file() => Some(e),
            Ok(_) => return None,
            Err(e) if e.kind() == ErrorKind::NotFound => None,
            Err(error) => return Some(file_error(path, error)),
        };
        let dst = match &self.dst {
            None => None,
            Some(d) => match d.stat(&path).await {
                Ok(e) if e.is_file() => Some(e),
                Ok(_) if src.is_some() => return Some(Item::Conflict { path }),
                Ok(_) => None,
                Err(e) if e.kind() == ErrorKind::NotFound => None,
                Err(error) => return Some(file_error(path, error)),
            },
        };
        if src.is_none() && dst.is_none() {
            return None;
        }
        let f = &self.cfg.filter;
        Some(Item::Pair {
            src_included: src.as_ref().is_some_and(|e| f.include_entry(e)),
            dst_included: dst.as_ref().is_some_and(|e| f.include_entry(e)),
            path,
            src,
            dst,
        })
    }

    /// Lists one side of a directory completely, or reports why it could not and returns
    /// `Err(())`: then nothing in the directory may be decided.
    ///
    /// A missing destination directory is empty. A missing source directory is an error: a
    /// starting point that does not exist is "directory not found", and one its parent listed
    /// a moment ago cannot be told apart from a server that hides it, so it blocks deletions
    /// for this run (the next run lists the parent again). An entry error of kind
    /// [`ErrorKind::InvalidInput`] (a name that cannot be represented) is reported for the
    /// directory and the listing goes on; any other error in the stream voids the listing.
    async fn list(&self, side: Side, job: &DirJob, tx: &mut Tx) -> Result<Vec<Entry>, ()> {
        let dir = &job.path;
        let remote = match side {
            Side::Src => &self.src,
            Side::Dst => match &self.dst {
                Some(d) => d,
                None => return Ok(Vec::new()),
            },
        };
        let retry = Some(Seed::Retry {
            path: dir.clone(),
            src: job.src,
            dst: job.dst,
        });
        let mut stream = match remote.list(dir).await {
            Ok(s) => s,
            Err(e) if e.kind() == ErrorKind::NotFound && side == Side::Dst => {
                return Ok(Vec::new());
            }
            Err(error) => {
                let retry = if job.seed && error.kind() == ErrorKind::NotFound {
                    None
                } else {
                    retry
                };
                let _ = tx
                    .send(Item::Error {
                        path: dir.clone(),
                        error,
                        retry,
                    })
                    .await;
                return Err(());
            }
        };
        let mut out = Vec::new();
        while let Some(r) = stream.next().await {
            match r {
                Ok(e) => {
                    if side == Side::Dst && self.cfg.skip_dst.as_ref() == Some(&e.path) {
                        continue;
                    }
                    if crate::temp::is_temp_name(e.name()) {
                        if side == Side::Dst {
                            if let Some(item) = self.leftover(e) {
                                if tx.send(item).await.is_err() {
                                    return Err(());
                                }
                            }
                        }
                        continue;
                    }
                    if !e.path.is_child_of(dir) {
                        let error = Error::new(
                            ErrorKind::Protocol,
                            format!("listing of {dir:?} returned an entry outside it"),
                        );
                        let _ = tx
                            .send(Item::Error {
                                path: dir.clone(),
                                error,
                                retry: None,
                            })
                            .await;
                        return Err(());
                    }
                    out.push(e);
                }
                Err(error) if error.kind() == ErrorKind::InvalidInput => {
                    // One entry that cannot be represented: the rest of the listing stands.
                    let item = Item::Error {
                        path: dir.clone(),
                        error,
                        retry: None,
                    };
                    if tx.send(item).await.is_err() {
                        return Err(());
                    }
                }
                Err(error) => {
                    tracing::debug!(%dir, error = %error, "listing broke off");
                    let _ = tx
                        .send(Item::Error {
                            path: dir.clone(),
                            error,
                            retry,
                        })
                        .await;
                    return Err(());
                }
            }
        }
        Ok(out)
    }

    /// A destination temporary file old enough to be removed, as an item.
    fn leftover(&self, e: Entry) -> Option<Item> {
        let limit = self.cfg.leftover_age?;
        let now = std::time::SystemTime::now();
        let age = crate::temp::temp_age(e.name(), now).or_else(|| {
            let t = e.modtime?;
            let since = time::OffsetDateTime::from(now) - t;
            std::time::Duration::try_from(since).ok()
        })?;
        (e.is_file() && age >= limit).then_some(Item::Leftover { entry: e })
    }

    /// Visits one directory pair: returns the sub-directories to visit, or `None` when the
    /// consumer has gone.
    async fn visit(&self, job: DirJob, mut tx: Tx) -> Option<Vec<DirJob>> {
        let (src, dst) = futures::join!(
            async {
                if job.src {
                    self.list(Side::Src, &job, &mut tx.clone()).await
                } else {
                    Ok(Vec::new())
                }
            },
            async {
                if job.dst {
                    self.list(Side::Dst, &job, &mut tx.clone()).await
                } else {
                    Ok(Vec::new())
                }
            }
        );
        // If either side failed to list, nothing in this directory is decided: a partial
        // listing must never turn into deletions or overwrites.
        let (Ok(mut src), Ok(mut dst)) = (src, dst) else {
            return Some(Vec::new());
        };
        let ci = self.case_insensitive;
        src.sort_unstable_by(|a, b| key(a, ci).cmp(&key(b, ci)));
        dst.sort_unstable_by(|a, b| key(a, ci).cmp(&key(b, ci)));
        let src_dups = duplicates(&src, ci);
        let dst_dups = duplicates(&dst, ci);

        let mut children = Vec::new();
        let (mut i, mut j) = (0, 0);
        while i < src.len() || j < dst.len() {
            let ord = match (src.get(i), dst.get(j)) {
                (Some(a), Some(b)) => key(a, ci).cmp(&key(b, ci)),
                (Some(_), None) => Ordering::Less,
                (None, _) => Ordering::Greater,
            };
            let (s, d) = match ord {
                Ordering::Less => {
                    i += 1;
                    (Some(&src[i - 1]), None)
                }
                Ordering::Greater => {
                    j += 1;
                    (None, Some(&dst[j - 1]))
                }
                Ordering::Equal => {
                    i += 1;
                    j += 1;
                    (Some(&src[i - 1]), Some(&dst[j - 1]))
                }
            };
            let any = s.or(d).map(|e| e.path.clone()).unwrap_or_default();
            let dup_side = if s.is_some_and(|e| src_dups.contains(&key(e, ci).into_owned())) {
                Some(Side::Src)
            } else if d.is_some_and(|e| dst_dups.contains(&key(e, ci).into_owned())) {
                Some(Side::Dst)
            } else {
                None
            };
            if dup_side.is_some() {
                if tx.send(Item::Duplicate { path: any }).await.is_err() {
                    return None;
                }
                continue;
            }
            // A file on one side and a folder of the same name on the other are two entries,
            // as rclone sees them: each side is decided alone, and only a write that really
            // collides fails.
            let pairs = match (s, d) {
                (Some(a), Some(b)) if a.is_dir() != b.is_dir() => [(s, None), (None, d)],
                _ => [(s, d), (None, None)],
            };
            for (s, d) in pairs {
                if let Some(item) = self.pair(s, d, &mut children) {
                    if tx.send(item).await.is_err() {
                        return None;
                    }
                }
            }
        }
        Some(children)
    }

    /// Turns one merged name into an item and/or a directory to visit.
    fn pair(
        &self,
        s: Option<&Entry>,
        d: Option<&Entry>,
        children: &mut Vec<DirJob>,
    ) -> Option<Item> {
        let f = &self.cfg.filter;
        let descend = |p: &RemotePath| f.max_depth().is_none_or(|m| p.depth() < m);
        match (s, d) {
            (Some(a), d) if a.is_dir() => {
                let included = f.include_dir(&a.path);
                let dst_dir = d.is_some();
                let walk_dst = dst_dir && (included || self.cfg.walk_dst_excluded);
                if descend(&a.path) && (included || walk_dst) {
                    children.push(DirJob {
                        path: a.path.clone(),
                        src: included,
                        dst: walk_dst,
                        seed: false,
                    });
                }
                if included {
                    Some(Item::SrcDir {
                        entry: a.clone(),
                        dst_exists: dst_dir,
                    })
                } else if walk_dst {
                    Some(Item::DstOnlyDir {
                        path: a.path.clone(),
                        included: false,
                    })
                } else {
                    None
                }
            }
            (None, Some(b)) if b.is_dir() => {
                if !self.cfg.walk_dst_only {
                    return None;
                }
                let included = f.include_dir(&b.path);
                if !(included || self.cfg.walk_dst_excluded) {
                    return None;
                }
                if descend(&b.path) {
                    children.push(DirJob {
                        path: b.path.clone(),
                        src: false,
                        dst: true,
                        seed: false,
                    });
                }
                Some(Item::DstOnlyDir {
                    path: b.path.clone(),
                    included,
                })
            }
            (None, Some(b)) if !self.cfg.walk_dst_only => {
                let _ = b;
                None
            }
            (s, d) => {
                let path = s.or(d)?.path.clone();
                Some(Item::Pair {
                    src_included: s.is_some_and(|e| f.include_entry(e)),
                    dst_included: d.is_some_and(|e| f.include_entry(e)),
                    src: s.cloned(),
                    dst: d.cloned(),
                    path,
                })
            }
        }
    }
}

/// The item for a failed `stat` of a single-file seed.
fn file_error(path: RemotePath, error: Error) -> Item {
    let retry = Some(Seed::File(path.clone()));
    Item::Error { path, error, retry }
}

/// Keys that occur more than once in a sorted listing.
fn duplicates(sorted: &[Entry], ci: bool) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for w in sorted.windows(2) {
        let k = key(&w[0], ci);
        if k == key(&w[1], ci) && out.last().map(String::as_str) != Some(&*k) {
            out.push(k.into_owned());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{WriteMeta, bytes_stream, memory};

    async fn put(r: &Arc<dyn Remote>, p: &str, body: &'static str) {
        r.write(
            &RemotePath::new(p).unwrap(),
            bytes_stream(body),
            WriteMeta::default(),
        )
        .await
        .unwrap();
    }

    fn cfg() -> MarchConfig {
        MarchConfig {
            filter: FilterSet::everything(),
            checkers: 4,
            walk_dst_only: true,
            walk_dst_excluded: false,
            skip_dst: None,
            leftover_age: None,
        }
    }

    #[tokio::test]
    async fn pairs_files_across_trees() {
        let (a, b) = (memory(), memory());
        put(&a, "x/1", "a").await;
        put(&a, "x/2", "a").await;
        put(&b, "x/2", "b").await;
        put(&b, "y/3", "b").await;
        let mut found: Vec<String> = march(a, Some(b), vec![Seed::Dir(RemotePath::root())], cfg())
            .filter_map(|i| async move {
                match i {
                    Item::Pair { path, src, dst, .. } => Some(format!(
                        "{path}:{}{}",
                        u8::from(src.is_some()),
                        u8::from(dst.is_some())
                    )),
                    Item::DstOnlyDir { path, .. } => Some(format!("dstdir {path}")),
                    _ => None,
                }
            })
            .collect()
            .await;
        found.sort();
        assert_eq!(found, ["dstdir y", "x/1:10", "x/2:11", "y/3:01"]);
    }
}
