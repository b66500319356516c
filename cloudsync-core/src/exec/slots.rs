//! The `--transfers` slots the executor's tasks run in, which small files may share.

use crate::plan::{Action, Decision};
use crate::remote::{Remote, SmallFileSlots};

/// How many small files share one of `transfers` slots in transfers that involve every one
/// of `remotes` (see [`SmallFileSlots`]). One transfer means one file at a time, whatever the
/// remotes allow: that is what a user asks for with `--transfers 1`.
pub(crate) fn small_files_per_slot(transfers: usize, remotes: &[&dyn Remote]) -> usize {
    if transfers <= 1 {
        return 1;
    }
    let together = remotes
        .iter()
        .map(|r| r.capabilities().small_file_slots)
        .reduce(SmallFileSlots::and)
        .unwrap_or_default();
    together.per_slot()
}

/// The shares of `transfers` slots of `per_slot` shares each, bounded so that any count a
/// user gives fits a semaphore (`--transfers 18446744073709551615` is no panic).
pub(crate) fn budget(transfers: usize, per_slot: usize) -> usize {
    transfers
        .max(1)
        .saturating_mul(per_slot)
        .min(tokio::sync::Semaphore::MAX_PERMITS)
}

/// The shares of a slot that a transfer of `bytes` takes, with `per_slot` shares to a slot.
pub(crate) fn shares_of(bytes: u64, per_slot: usize) -> usize {
    if bytes <= SmallFileSlots::SMALL_FILE {
        1
    } else {
        per_slot
    }
}

/// Counts the slots in use, in shares: a slot is `per_slot` shares, a small task takes one
/// share and any other task a whole slot.
#[derive(Debug)]
pub(crate) struct Slots {
    per_slot: usize,
    budget: usize,
    used: usize,
}

impl Slots {
    /// `transfers` slots for tasks between `src` and `dst` (see [`small_files_per_slot`]).
    pub(crate) fn new(transfers: usize, src: &dyn Remote, dst: &dyn Remote) -> Self {
        let per_slot = small_files_per_slot(transfers, &[src, dst]);
        Slots {
            per_slot,
            budget: budget(transfers, per_slot),
            used: 0,
        }
    }

    /// The shares the task for `d` takes.
    pub(crate) fn shares(&self, d: &Decision) -> usize {
        match d.action {
            Action::Copy | Action::Update => shares_of(d.bytes(), self.per_slot),
            // A round trip or two, no content.
            Action::Mkdir
            | Action::SetModtime
            | Action::RemoveLeftover
            | Action::Skip
            | Action::Delete
            | Action::Rmdir
            | Action::Error => 1,
        }
    }

    /// Whether another task may be looked for.
    pub(crate) fn has_room(&self) -> bool {
        self.used < self.budget
    }

    /// Whether a task of `shares` may start now. A task larger than what is free waits for
    /// running ones to end, but never for nothing: with nothing running it starts.
    pub(crate) fn fits(&self, shares: usize) -> bool {
        self.used == 0 || self.used.saturating_add(shares) <= self.budget
    }

    /// A task of `shares` started.
    pub(crate) fn take(&mut self, shares: usize) {
        self.used = self.used.saturating_add(shares);
    }

    /// A task of `shares` ended.
    pub(crate) fn give(&mut self, shares: usize) {
        self.used = self.used.saturating_sub(shares);
    }
}

/// A remote for tests of the slots (here and in the ingest's).
#[cfg(test)]
pub(crate) mod gauge {
    use std::ops::Range;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use async_trait::async_trait;

    use crate::entry::{Entry, WriteMeta};
    use crate::error::Result;
    use crate::path::RemotePath;
    use crate::remote::{ByteStream, Capabilities, EntryStream, Remote, SmallFileSlots};
    use crate::testkit::MemFs;

    /// A memory remote that says how it bears small files and counts the writes in flight.
    #[derive(Debug)]
    pub(crate) struct Gauge {
        inner: MemFs,
        caps: Capabilities,
        /// Writes in flight now.
        pub(crate) now: AtomicUsize,
        /// The most writes that were in flight at once.
        pub(crate) peak: AtomicUsize,
    }

    impl Gauge {
        /// An empty store that bears small files as `slots`.
        pub(crate) fn new(slots: SmallFileSlots) -> Arc<Gauge> {
            let inner = MemFs::new("memfs://gauge");
            let caps = Capabilities {
                small_file_slots: slots,
                ..inner.capabilities().clone()
            };
            Arc::new(Gauge {
                inner,
                caps,
                now: AtomicUsize::new(0),
                peak: AtomicUsize::new(0),
            })
        }
    }

    #[async_trait]
    impl Remote for Gauge {
        fn describe(&self) -> String {
            self.inner.describe()
        }
        fn capabilities(&self) -> &Capabilities {
            &self.caps
        }
        async fn list(&self, dir: &RemotePath) -> Result<EntryStream> {
            self.inner.list(dir).await
        }
        async fn stat(&self, path: &RemotePath) -> Result<Entry> {
            self.inner.stat(path).await
        }
        async fn read(&self, path: &RemotePath, range: Option<Range<u64>>) -> Result<ByteStream> {
            self.inner.read(path, range).await
        }
        async fn write(
            &self,
            path: &RemotePath,
            body: ByteStream,
            meta: WriteMeta,
        ) -> Result<Entry> {
            let now = self.now.fetch_add(1, Ordering::SeqCst) + 1;
            self.peak.fetch_max(now, Ordering::SeqCst);
            // Long enough for every task the executor allows to be in flight together.
            tokio::time::sleep(Duration::from_millis(20)).await;
            let r = self.inner.write(path, body, meta).await;
            self.now.fetch_sub(1, Ordering::SeqCst);
            r
        }
        async fn mkdir(&self, dir: &RemotePath) -> Result<()> {
            self.inner.mkdir(dir).await
        }
        async fn remove_file(&self, path: &RemotePath) -> Result<()> {
            self.inner.remove_file(path).await
        }
        async fn remove_dir(&self, dir: &RemotePath) -> Result<()> {
            self.inner.remove_dir(dir).await
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::Ordering;

    use super::gauge::Gauge;
    use crate::entry::WriteMeta;
    use crate::exec::options::SyncOptions;
    use crate::path::RemotePath;
    use crate::remote::{Capabilities, Remote, SmallFileSlots};
    use crate::testkit::MemFs;
    use crate::{bytes_stream, ops};

    /// Copies files of the sizes in `files` to a destination that bears small files as
    /// `slots`, with 2 transfers; the most writes that were in flight at once.
    async fn peak_writes(slots: SmallFileSlots, files: &[u64]) -> usize {
        peak_writes_with(2, slots, files).await
    }

    /// As [`peak_writes`], with `transfers` transfers.
    async fn peak_writes_with(transfers: usize, slots: SmallFileSlots, files: &[u64]) -> usize {
        let src = MemFs::new("memfs://src");
        for (i, size) in files.iter().enumerate() {
            let body = vec![b'x'; usize::try_from(*size).unwrap()];
            let path = RemotePath::new(&format!("f{i:02}")).unwrap();
            src.write(&path, bytes_stream(body), WriteMeta::default())
                .await
                .unwrap();
        }
        let src: Arc<dyn Remote> = Arc::new(src.with_capabilities(Capabilities {
            small_file_slots: SmallFileSlots::Any,
            ..MemFs::new("x").capabilities().clone()
        }));
        let gauge = Gauge::new(slots);
        let dst: Arc<dyn Remote> = gauge.clone();
        let opts = SyncOptions {
            transfers,
            ..Default::default()
        };
        let summary = ops::copy(&src, &dst, &opts).await.unwrap();
        assert!(summary.errors.is_empty(), "{:?}", summary.errors);
        assert_eq!(summary.transferred, files.len() as u64);
        assert_eq!(gauge.now.load(Ordering::SeqCst), 0);
        gauge.peak.load(Ordering::SeqCst)
    }

    #[tokio::test]
    async fn small_files_share_slots_only_where_both_sides_allow_it() {
        let small = SmallFileSlots::SMALL_FILE;
        let smalls = [small; 16];
        // 2 slots of 4 shares: 8 small files at once.
        assert_eq!(peak_writes(SmallFileSlots::Shared(4), &smalls).await, 8);
        // The default: one file per slot.
        assert_eq!(peak_writes(SmallFileSlots::Whole, &smalls).await, 2);
        // One transfer is one file at a time.
        assert_eq!(
            peak_writes_with(1, SmallFileSlots::Shared(4), &smalls).await,
            1
        );
        // A file above the bound takes a whole slot.
        let larges = [small + 1; 8];
        assert_eq!(peak_writes(SmallFileSlots::Shared(4), &larges).await, 2);
        // Mixed: one large file and small ones beside it never exceed the 8 shares.
        let mut mixed = vec![small; 12];
        mixed.insert(3, small + 1);
        mixed.insert(9, small + 1);
        let peak = peak_writes(SmallFileSlots::Shared(4), &mixed).await;
        assert!((5..=8).contains(&peak), "peak {peak}");
        // A large file that finds 7 of the 8 shares taken waits for them, then runs: it is
        // neither started beside them nor left out.
        let mut waits = vec![small; 7];
        waits.push(small + 1);
        assert_eq!(peak_writes(SmallFileSlots::Shared(4), &waits).await, 7);
    }

    #[test]
    fn both_sides_decide_how_many_share_a_slot() {
        use SmallFileSlots::{Any, Shared, Whole};
        assert_eq!(SmallFileSlots::between(Any, Any), 1);
        assert_eq!(SmallFileSlots::between(Shared(4), Any), 4);
        assert_eq!(SmallFileSlots::between(Shared(4), Shared(2)), 2);
        assert_eq!(SmallFileSlots::between(Shared(4), Whole), 1);
        assert_eq!(SmallFileSlots::between(Whole, Any), 1);
        assert_eq!(SmallFileSlots::between(Shared(0), Any), 1);
        // A remote that asks for absurdly many gets a bounded count (and no overflow).
        assert_eq!(SmallFileSlots::between(Shared(usize::MAX), Any), 64);
    }
}
