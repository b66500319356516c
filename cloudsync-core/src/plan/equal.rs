//! Whether a destination file needs a transfer: rclone's equality rules (size, then modtime
//! within the coarser precision of the two sides, or hashes), and the options that change them.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::entry::Entry;
use crate::error::Result;
use crate::hash::HashKind;
use crate::plan::{Action, Reason};
use crate::remote::{Capabilities, Remote};

/// How files present on both sides are compared (rclone's equality flags).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CompareOptions {
    /// Compare by size and hash instead of size and modtime (`--checksum`).
    pub checksum: bool,
    /// Compare by size only (`--size-only`).
    pub size_only: bool,
    /// Transfer every file, equal or not (`--ignore-times`).
    pub ignore_times: bool,
    /// Skip every file that exists on the destination (`--ignore-existing`).
    pub ignore_existing: bool,
    /// Skip files that are newer on the destination (`--update`).
    pub update: bool,
    /// Extra tolerance when comparing modtimes (`--modify-window`).
    pub modify_window: Duration,
}

/// Whether a remote keeps the modtimes it is given (reads alone are not enough: a remote whose
/// modtime is the upload time cannot be compared by modtime).
pub(crate) fn keeps_modtime(caps: &Capabilities) -> bool {
    caps.modtime_precision.is_some() && (caps.write_modtime || caps.set_modtime)
}

/// The window within which two modtimes count as equal, or `None` when modtimes can't be
/// compared (then files are compared by size, as rclone does).
pub(crate) fn modtime_window(
    src: &Capabilities,
    dst: &Capabilities,
    modify_window: Duration,
) -> Option<Duration> {
    let s = src.modtime_precision?;
    if !keeps_modtime(dst) {
        return None;
    }
    let d = dst.modtime_precision?;
    Some(s.max(d).max(modify_window))
}

/// The best hash kind both sides have cheaply.
pub(crate) fn common_hash(src: &Capabilities, dst: &Capabilities) -> Option<HashKind> {
    HashKind::ALL
        .into_iter()
        .find(|k| src.hashes.contains(k) && dst.hashes.contains(k))
}

/// Compares pairs of files found on both sides.
#[derive(Debug)]
pub(crate) struct Comparator {
    pub(crate) src: Arc<dyn Remote>,
    pub(crate) dst: Arc<dyn Remote>,
    pub(crate) opts: CompareOptions,
    pub(crate) window: Option<Duration>,
    pub(crate) hash: Option<HashKind>,
    warned_no_hash: AtomicBool,
}

impl Comparator {
    pub(crate) fn new(src: Arc<dyn Remote>, dst: Arc<dyn Remote>, opts: CompareOptions) -> Self {
        let window = modtime_window(src.capabilities(), dst.capabilities(), opts.modify_window);
        let hash = common_hash(src.capabilities(), dst.capabilities());
        Comparator {
            src,
            dst,
            opts,
            window,
            hash,
            warned_no_hash: AtomicBool::new(false),
        }
    }

    /// Returns a notice the first time `checksum` has to fall back to sizes.
    pub(crate) fn no_hash_notice(&self) -> Option<String> {
        if self.opts.checksum
            && self.hash.is_none()
            && !self.warned_no_hash.swap(true, Ordering::Relaxed)
        {
            Some(format!(
                "no hash type in common between {} and {}: comparing by size only",
                self.src.describe(),
                self.dst.describe()
            ))
        } else {
            None
        }
    }

    /// Whether the content of the two files is the same, by the common hash; `None` when there
    /// is no common hash.
    pub(crate) async fn same_hash(&self, src: &Entry, dst: &Entry) -> Result<Option<bool>> {
        let Some(kind) = self.hash else {
            return Ok(None);
        };
        let a = match src.hashes.get(kind) {
            Some(h) => h.to_owned(),
            None => self.src.hash(&src.path, kind).await?,
        };
        let b = match dst.hashes.get(kind) {
            Some(h) => h.to_owned(),
            None => self.dst.hash(&dst.path, kind).await?,
        };
        Ok(Some(a.eq_ignore_ascii_case(&b)))
    }

    /// What to do with a file present on both sides.
    pub(crate) async fn decide(&self, src: &Entry, dst: &Entry) -> Result<(Action, Reason)> {
        match self.decide_now(src, dst) {
            Some(d) => Ok(d),
            None => self.decide_fetching_hash(src, dst).await,
        }
    }

    /// [`Comparator::decide`] for a pair whose rules need a hash the listings did not give:
    /// asks for it once, then decides.
    pub(crate) async fn decide_fetching_hash(
        &self,
        src: &Entry,
        dst: &Entry,
    ) -> Result<(Action, Reason)> {
        let same = self.same_hash(src, dst).await?;
        // With the hash known, the rules always answer.
        self.decide_with(src, dst, |_, _| Some(same))
            .ok_or_else(|| {
                crate::error::Error::new(
                    crate::error::ErrorKind::Unexpected,
                    "the comparison needed a hash it was given",
                )
            })
    }

    /// [`Comparator::decide`] without I/O: `None` when the rules need a hash that the
    /// listings did not give.
    pub(crate) fn decide_now(&self, src: &Entry, dst: &Entry) -> Option<(Action, Reason)> {
        self.decide_with(src, dst, |s, d| self.listed_same_hash(s, d))
    }

    /// Whether both listings gave the common hash, and if so whether the two agree (the
    /// inner `None`: no hash in common).
    fn listed_same_hash(&self, src: &Entry, dst: &Entry) -> Option<Option<bool>> {
        let Some(kind) = self.hash else {
            return Some(None);
        };
        let (a, b) = (src.hashes.get(kind)?, dst.hashes.get(kind)?);
        Some(Some(a.eq_ignore_ascii_case(b)))
    }

    /// rclone's rules for a file on both sides; `same_hash` answers whether the contents have
    /// the same hash ([`Comparator::same_hash`]'s answer), or `None` when it cannot say without
    /// I/O, which makes the whole answer `None`.
    fn decide_with(
        &self,
        src: &Entry,
        dst: &Entry,
        same_hash: impl Fn(&Entry, &Entry) -> Option<Option<bool>>,
    ) -> Option<(Action, Reason)> {
        let o = &self.opts;
        if o.ignore_existing {
            return Some((Action::Skip, Reason::Exists));
        }
        // rclone checks --ignore-times before --update: it transfers unconditionally.
        if o.ignore_times {
            return Some((Action::Update, Reason::IgnoreTimes));
        }
        if o.update {
            if let (Some(w), Some(s), Some(d)) = (self.window, src.modtime, dst.modtime) {
                let diff = d - s;
                if diff > w {
                    return Some((Action::Skip, Reason::DestinationNewer));
                }
                if diff.abs() <= w {
                    // rclone: equal modtimes transfer when the sizes differ, and with
                    // --checksum when the hashes differ too.
                    if src.size != dst.size {
                        return Some((Action::Update, Reason::SizeDiffers));
                    }
                    if o.checksum && same_hash(src, dst)? == Some(false) {
                        return Some((Action::Update, Reason::HashDiffers));
                    }
                    return Some((Action::Skip, Reason::Identical));
                }
            }
        }
        if src.size != dst.size {
            return Some((Action::Update, Reason::SizeDiffers));
        }
        if o.size_only {
            return Some((Action::Skip, Reason::Identical));
        }
        if o.checksum {
            return Some(match same_hash(src, dst)? {
                Some(true) | None => (Action::Skip, Reason::Identical),
                Some(false) => (Action::Update, Reason::HashDiffers),
            });
        }
        let Some(w) = self.window else {
            return Some((Action::Skip, Reason::Identical));
        };
        if let (Some(s), Some(d)) = (src.modtime, dst.modtime) {
            if (d - s).abs() <= w {
                return Some((Action::Skip, Reason::Identical));
            }
        }
        Some(match same_hash(src, dst)? {
            Some(true) if self.dst.capabilities().set_modtime => {
                (Action::SetModtime, Reason::ModtimeOnly)
            }
            // The upload would store nothing new, not even the modtime.
            Some(true) if self.dst.capabilities().identical_upload_keeps_modtime => {
                (Action::Skip, Reason::Identical)
            }
            Some(true) => (Action::Update, Reason::ModtimeDiffers),
            Some(false) => (Action::Update, Reason::HashDiffers),
            None => (Action::Update, Reason::ModtimeDiffers),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caps(prec: Option<u64>, keeps: bool, hashes: &[HashKind]) -> Capabilities {
        Capabilities {
            modtime_precision: prec.map(Duration::from_millis),
            write_modtime: keeps,
            set_modtime: keeps,
            hashes: hashes.to_vec(),
            ..Default::default()
        }
    }

    #[test]
    fn window_is_the_coarser_precision() {
        let a = caps(Some(0), true, &[]);
        let b = caps(Some(1000), true, &[]);
        assert_eq!(
            modtime_window(&a, &b, Duration::ZERO),
            Some(Duration::from_secs(1))
        );
        assert_eq!(
            modtime_window(&a, &b, Duration::from_secs(2)),
            Some(Duration::from_secs(2))
        );
        // A destination whose modtime is the upload time can't be compared by modtime.
        assert_eq!(
            modtime_window(&a, &caps(Some(1000), false, &[]), Duration::ZERO),
            None
        );
        assert_eq!(
            modtime_window(&caps(None, false, &[]), &b, Duration::ZERO),
            None
        );
    }

    #[test]
    fn common_hash_prefers_strong_kinds() {
        let a = caps(
            None,
            false,
            &[HashKind::Md5, HashKind::Sha1, HashKind::Sha256],
        );
        let b = caps(None, false, &[HashKind::Sha1, HashKind::Md5]);
        assert_eq!(common_hash(&a, &b), Some(HashKind::Sha1));
        assert_eq!(
            common_hash(&a, &caps(None, false, &[HashKind::Dropbox])),
            None
        );
    }
}
