//! Directory flushes put off for writes whose new names may become durable lazily
//! ([`cloudsync_core::WriteMeta::lazy_durability`]): instead of one `fsync` of the directory per
//! file, each directory is synced once for all the files written into it: when no write is
//! running any more on the remote (so when a run's last write returns, every name it wrote is
//! durable), when the set has been waiting [`MAX_WAIT`] or holds [`MAX_DIRS`] directories,
//! before a deletion, and when the remote is dropped.
//!
//! What a crash can cost in between is a name, never content: a file's data is flushed before it
//! gets its name, so after a power cut the name is absent (the file is copied again by the next
//! run) or points at the complete file.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::core::sync_dir;

/// The longest a directory waits for its flush while writes go on (ext4 commits its journal
/// every 5 s by default, so on it this hardly widens what a crash can lose).
const MAX_WAIT: Duration = Duration::from_secs(5);
/// The most directories waiting at once (memory stays bounded on wide trees).
const MAX_DIRS: usize = 1024;

/// Directories holding new names not yet synced.
#[derive(Debug, Default)]
pub(crate) struct PendingDirs {
    state: Mutex<Pending>,
}

#[derive(Debug, Default)]
struct Pending {
    dirs: HashSet<PathBuf>,
    /// When the oldest waiting directory was added.
    since: Option<Instant>,
    /// Writes running ([`PendingDirs::writing`]).
    writing: usize,
}

/// A write in progress; the last one to end syncs what waits.
pub(crate) struct Writing<'a>(&'a PendingDirs);

impl Drop for Writing<'_> {
    fn drop(&mut self) {
        let due = match self.0.state.lock() {
            Ok(mut p) => {
                p.writing = p.writing.saturating_sub(1);
                if p.writing == 0 { p.take() } else { Vec::new() }
            }
            Err(_) => Vec::new(),
        };
        flush(due);
    }
}

impl Pending {
    /// Every waiting directory, the set starting afresh.
    fn take(&mut self) -> Vec<PathBuf> {
        self.since = None;
        std::mem::take(&mut self.dirs).into_iter().collect()
    }
}

impl PendingDirs {
    /// Marks a write as running until the returned guard is dropped; the guard of the last
    /// running write syncs every waiting directory before it goes.
    pub(crate) fn writing(&self) -> Writing<'_> {
        // A poisoned lock (a panic while holding it, which nothing here does) leaves the count
        // alone: `add` then syncs each directory itself.
        if let Ok(mut p) = self.state.lock() {
            p.writing += 1;
        }
        Writing(self)
    }

    /// Records that `dir` holds a new name; syncs every waiting directory when they have
    /// waited long enough or are too many.
    pub(crate) fn add(&self, dir: &Path) {
        let due = {
            let Ok(mut p) = self.state.lock() else {
                // A panic while holding the lock: sync this one now rather than lose track.
                flush(vec![dir.to_path_buf()]);
                return;
            };
            if !p.dirs.contains(dir) {
                p.dirs.insert(dir.to_path_buf());
            }
            let since = *p.since.get_or_insert_with(Instant::now);
            if p.dirs.len() >= MAX_DIRS || since.elapsed() >= MAX_WAIT {
                p.take()
            } else {
                return;
            }
        };
        flush(due);
    }

    /// Syncs every waiting directory now.
    pub(crate) fn flush_all(&self) {
        let dirs = match self.state.lock() {
            Ok(mut p) => p.take(),
            Err(poisoned) => poisoned.into_inner().take(),
        };
        flush(dirs);
    }

    /// How many directories wait (tests).
    #[cfg(test)]
    pub(crate) fn waiting(&self) -> usize {
        self.state.lock().map_or(0, |p| p.dirs.len())
    }
}

/// Syncs `dirs`; a failure is logged (the writes they hold have returned already, and a name
/// lost to a crash is copied again by the next run).
fn flush(dirs: Vec<PathBuf>) {
    for d in dirs {
        if let Err(e) = sync_dir(&d) {
            tracing::warn!(dir = %d.display(), error = %e, "cannot sync a directory holding new files");
        }
    }
}
