//! The decision for each path the march finds: copy, update, set the modtime, delete, create
//! or remove a directory, skip, or record an error.

use crate::entry::Entry;
use crate::error::Error;
use crate::path::RemotePath;
use crate::plan::equal::Comparator;
use crate::plan::march::{Item, Seed};
use crate::plan::{Action, Decision, Mode, Reason};

/// The options that change what is decided (besides the comparison, which is the
/// [`Comparator`]'s).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Rules {
    /// The operation.
    pub(crate) mode: Mode,
    /// Delete destination files the filters exclude (sync only).
    pub(crate) delete_excluded: bool,
    /// Create source directories missing on the destination.
    pub(crate) create_empty_src_dirs: bool,
}

/// A decision (`None`: nothing to do), or a path that could not be decided, its error and
/// where to start again to retry it.
pub(crate) type Decided = std::result::Result<Option<Decision>, (RemotePath, Error, Option<Seed>)>;

/// What [`decide`] made of an item.
pub(crate) enum Now {
    /// Decided: an `Err` is an item that could not be decided (listed, read or compared),
    /// with where to start again to retry it.
    Decided(Decided),
    /// A file on both sides whose decision needs a hash the listings did not give.
    NeedsHash(HashNeeded),
}

/// A file on both sides whose decision waits for a hash (see [`HashNeeded::decide`]).
pub(crate) struct HashNeeded {
    path: RemotePath,
    src: Entry,
    dst: Entry,
}

impl HashNeeded {
    /// Fetches the hash the rules need and decides.
    pub(crate) async fn decide(self, cmp: &Comparator) -> Decided {
        let HashNeeded { path, src, dst } = self;
        match cmp.decide_fetching_hash(&src, &dst).await {
            Ok((action, reason)) => Ok(Some(Decision {
                path,
                action,
                reason,
                src: Some(src),
                dst: Some(dst),
            })),
            Err(e) => Err((path.clone(), e, Some(Seed::File(path)))),
        }
    }
}

/// Decides what one march item needs under `rules`, without I/O; the few items whose
/// decision needs a hash the listings did not give come back as [`Now::NeedsHash`].
pub(crate) fn decide(cmp: &Comparator, rules: &Rules, item: Item) -> Now {
    let mode = rules.mode;
    let sync = mode == Mode::Sync;
    let d = |path, action, reason, src, dst| {
        Ok(Some(Decision {
            path,
            action,
            reason,
            src,
            dst,
        }))
    };
    Now::Decided(match item {
        Item::Pair {
            path,
            src,
            dst,
            src_included,
            dst_included,
        } => match (src, dst) {
            (Some(s), Some(t)) if src_included => match cmp.decide_now(&s, &t) {
                Some((action, reason)) => d(path, action, reason, Some(s), Some(t)),
                None => {
                    return Now::NeedsHash(HashNeeded {
                        path,
                        src: s,
                        dst: t,
                    });
                }
            },
            (Some(s), None) if src_included => {
                d(path, Action::Copy, Reason::Missing, Some(s), None)
            }
            // Here the source file is absent or excluded, as rclone sees it.
            (_, Some(t)) if sync => {
                if dst_included {
                    d(path, Action::Delete, Reason::NotOnSource, None, Some(t))
                } else if rules.delete_excluded {
                    d(path, Action::Delete, Reason::Excluded, None, Some(t))
                } else {
                    Ok(None)
                }
            }
            _ => Ok(None),
        },
        Item::Conflict { path } => d(path, Action::Error, Reason::TypeConflict, None, None),
        Item::Duplicate { path } => d(path, Action::Error, Reason::Duplicate, None, None),
        Item::SrcDir {
            entry,
            dst_exists,
            dst_path,
        } => {
            // The decision's path is the destination's; the source entry keeps its own.
            let src = Some(entry);
            if rules.create_empty_src_dirs && !dst_exists {
                d(dst_path, Action::Mkdir, Reason::EmptyDir, src, None)
            } else if mode == Mode::Move {
                // Remembered so that empty source directories can be removed afterwards.
                d(dst_path, Action::Skip, Reason::EmptyDir, src, None)
            } else {
                Ok(None)
            }
        }
        Item::DstOnlyDir { path, included } => {
            if sync && (included || rules.delete_excluded) {
                d(path, Action::Rmdir, Reason::NotOnSource, None, None)
            } else {
                Ok(None)
            }
        }
        Item::Error { path, error, retry } => Err((path, error, retry)),
        Item::Leftover { entry } => d(
            entry.path.clone(),
            Action::RemoveLeftover,
            Reason::Leftover,
            None,
            Some(entry),
        ),
    })
}
