//! Options of the single-remote operations and of `check`, with rclone's defaults (those of
//! copy, sync and move belong to the executor and the planner, and are re-exported here).

use std::fmt;

use crate::filter::FilterSet;
use crate::report::EventSink;

/// Options of [`check`](super::check).
#[derive(Clone, Default)]
pub struct CheckOptions {
    /// Which files are compared.
    pub filter: FilterSet,
    /// Compare sizes only (`--size-only`).
    pub size_only: bool,
    /// Compare the bytes of both sides (`--download`): exact, but reads everything.
    pub download: bool,
    /// Only look for source files missing or different on the destination (`--one-way`).
    pub one_way: bool,
    /// Directories listed and files compared concurrently (default 8).
    pub checkers: usize,
    /// Where progress events go.
    pub events: Option<EventSink>,
    /// Match names byte for byte (`--no-unicode-normalization`); by default a name in NFD
    /// on one side and NFC on the other is one file, as in rclone.
    pub no_unicode_normalization: bool,
}

impl fmt::Debug for CheckOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CheckOptions")
            .field("filter", &self.filter)
            .field("size_only", &self.size_only)
            .field("download", &self.download)
            .field("one_way", &self.one_way)
            .field("checkers", &self.checkers)
            .field("no_unicode_normalization", &self.no_unicode_normalization)
            .finish_non_exhaustive()
    }
}

/// Options of [`list`](super::list), [`delete`](super::delete) and the other single-remote
/// operations.
#[derive(Clone)]
pub struct ListOptions {
    /// Which entries are listed (or deleted).
    pub filter: FilterSet,
    /// Walk the whole tree instead of one level.
    pub recursive: bool,
    /// Directories listed concurrently (default 8).
    pub checkers: usize,
}

impl Default for ListOptions {
    fn default() -> Self {
        ListOptions {
            filter: FilterSet::everything(),
            recursive: false,
            checkers: 8,
        }
    }
}

impl fmt::Debug for ListOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ListOptions")
            .field("filter", &self.filter)
            .field("recursive", &self.recursive)
            .field("checkers", &self.checkers)
            .finish()
    }
}

/// Options of [`delete`](super::delete).
#[derive(Clone)]
pub struct DeleteOptions {
    /// Which files are deleted.
    pub filter: FilterSet,
    /// Also remove directories left empty (`--rmdirs`).
    pub rmdirs: bool,
    /// Report what would be deleted, delete nothing.
    pub dry_run: bool,
    /// Deletions and listings run concurrently (default 8).
    pub checkers: usize,
    /// Where progress events go.
    pub events: Option<EventSink>,
}

impl Default for DeleteOptions {
    fn default() -> Self {
        DeleteOptions {
            filter: FilterSet::everything(),
            rmdirs: false,
            dry_run: false,
            checkers: 8,
            events: None,
        }
    }
}

impl fmt::Debug for DeleteOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeleteOptions")
            .field("filter", &self.filter)
            .field("rmdirs", &self.rmdirs)
            .field("dry_run", &self.dry_run)
            .field("checkers", &self.checkers)
            .finish_non_exhaustive()
    }
}
