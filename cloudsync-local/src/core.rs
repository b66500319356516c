//! Filesystem calls shared by the reader, writer, lister and deleter: path mapping, metadata to
//! [`Entry`], modtime conversion, temp names and [`parse_error`].

use std::collections::HashMap;
use std::fs::{File, FileTimes, Metadata};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use cloudsync_core::{Entry, Error, ErrorKind, RemotePath, Result};
use time::OffsetDateTime;

use crate::config::LocalConfig;
use crate::dirsync::PendingDirs;
use crate::lane::Lane;

/// Longest file name (bytes) common filesystems accept.
const NAME_MAX: usize = 255;

/// How long a directory found not to be a symlink is trusted without another `lstat`.
const CHECKED_DIR_TTL: Duration = Duration::from_secs(1);
/// Directories remembered at most (the memory is emptied when full).
const CHECKED_DIR_MAX: usize = 4096;

/// What every filesystem call needs: the root and the options.
#[derive(Debug)]
pub(crate) struct LocalCore {
    /// Absolute root directory.
    pub(crate) root: PathBuf,
    /// What `describe` returns (the root, lossily as UTF-8).
    pub(crate) name: String,
    /// Follow symlinks instead of skipping them.
    pub(crate) follow_symlinks: bool,
    /// `fsync` files before the rename and directories after.
    pub(crate) fsync: bool,
    /// Apply Windows' file-name rules ([`windows_name_problem`]) to every path: `cfg!(windows)`
    /// (tests turn it on elsewhere to check that every operation goes through the check).
    pub(crate) windows_names: bool,
    /// Directories below the root recently found to be real directories (not symlinks), with
    /// when: writes skip their `lstat` (see [`LocalCore::check_no_links_cached`]).
    pub(crate) checked_dirs: Mutex<HashMap<PathBuf, Instant>>,
    /// The threads that run whole-file copies when `fsync` is off (see
    /// [`LocalCore::file_job`]).
    pub(crate) lane: Lane,
    /// Directories whose new names wait for their `fsync` (writes with lazy durability).
    pub(crate) pending_dirs: PendingDirs,
}

impl Drop for LocalCore {
    fn drop(&mut self) {
        self.pending_dirs.flush_all();
    }
}

/// Shared handle passed to blocking tasks.
pub(crate) type CoreRef = Arc<LocalCore>;

impl LocalCore {
    /// The state of a remote rooted at the absolute directory `root`.
    pub(crate) fn new(root: PathBuf, config: &LocalConfig) -> Self {
        LocalCore {
            name: root.display().to_string(),
            root,
            follow_symlinks: config.follow_symlinks,
            fsync: config.fsync,
            windows_names: cfg!(windows),
            checked_dirs: Default::default(),
            lane: Lane::new(
                std::thread::available_parallelism()
                    .map_or(2, |n| n.get())
                    .max(2),
            ),
            pending_dirs: PendingDirs::default(),
        }
    }

    /// The local path of `path` below the root, for an operation `op`.
    ///
    /// A [`RemotePath`] has no `..`, empty or absolute segment and no `/`, so on Unix the
    /// result always lies below the root. On Windows a segment may still be read as a
    /// separator, a drive, a stream or a device (`a\..\..\x`, `C:x`, `NUL`), or be
    /// silently changed (`a.` opens `a`): such a path is refused with
    /// [`ErrorKind::InvalidInput`] (see [`check_local_path`]). This is the only place a
    /// `RemotePath` becomes a local path.
    pub(crate) fn local(&self, path: &RemotePath) -> Result<PathBuf> {
        check_local_path(path, self.windows_names).map_err(|e| self.ctx(e, path))?;
        let mut p = self.root.clone();
        for seg in path.segments() {
            p.push(seg);
        }
        Ok(p)
    }

    /// Refuses to act on `path` through a symbolic link below the root.
    ///
    /// Unless `follow_symlinks` is set, every directory between the root and `path` (and
    /// `path` itself when `check_self`, as for mkdir) must not be a symlink: listings skip
    /// links, so a write, rename or delete below one would act where the engine never looked,
    /// possibly outside the root. One `lstat` per directory level below the root (none for a
    /// top-level name), so the kernel copy paths stay fast. The first missing level ends the
    /// check: what is created below it is a real directory. The root itself may be a link.
    ///
    /// This is a check before the operation, not a lock: a directory swapped for a link in the
    /// instant between the two is not caught.
    pub(crate) fn check_no_links(
        &self,
        path: &RemotePath,
        check_self: bool,
        op: &'static str,
    ) -> Result<()> {
        // Validates the path before any segment of it reaches the filesystem.
        check_local_path(path, self.windows_names).map_err(|e| self.ctx(e, path))?;
        if self.follow_symlinks {
            return Ok(());
        }
        let segments: Vec<&str> = path.segments().collect();
        let levels = if check_self {
            segments.len()
        } else {
            segments.len().saturating_sub(1)
        };
        let mut local = self.root.clone();
        for (i, seg) in segments.iter().take(levels).enumerate() {
            local.push(seg);
            match std::fs::symlink_metadata(&local) {
                Ok(m) if m.file_type().is_symlink() => {
                    let link = segments[..=i].join("/");
                    return Err(self.ctx(
                        Error::new(
                            ErrorKind::PermissionDenied,
                            format!(
                                "`{link}` is a symbolic link; refusing to {op} through it (it \
                                 may lead outside the root; set follow_symlinks to follow links)"
                            ),
                        ),
                        path,
                    ));
                }
                Ok(_) => {}
                // Missing (created as a real directory later) or unreadable (the operation
                // itself reports it).
                Err(_) => return Ok(()),
            }
        }
        Ok(())
    }

    /// [`LocalCore::check_no_links`] for a write (`check_self` false), skipping the `lstat` of
    /// directories this remote verified in the last [`CHECKED_DIR_TTL`].
    ///
    /// A sync writes many files into each directory; without the memory every file costs one
    /// `lstat` per directory level. What is remembered is forgotten when any operation of this
    /// remote fails ([`LocalCore::blocking`]) and when one removes or renames something (a
    /// directory may have gone), so the check is redone where something was off. It widens
    /// the window in which a directory swapped for a link by another program goes unseen from
    /// an instant to at most [`CHECKED_DIR_TTL`]; the check never was a lock.
    pub(crate) fn check_no_links_cached(&self, path: &RemotePath, op: &'static str) -> Result<()> {
        if self.follow_symlinks {
            return check_local_path(path, self.windows_names).map_err(|e| self.ctx(e, path));
        }
        let Some(parent) = path.parent().filter(|p| !p.is_root()) else {
            // A top-level name: no directory level to check.
            return check_local_path(path, self.windows_names).map_err(|e| self.ctx(e, path));
        };
        let dir = self.local(&parent)?;
        let now = Instant::now();
        let fresh = |m: &HashMap<PathBuf, Instant>| {
            m.get(&dir)
                .is_some_and(|t| now.duration_since(*t) < CHECKED_DIR_TTL)
        };
        if fresh(
            &self
                .checked_dirs
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        ) {
            return check_local_path(path, self.windows_names).map_err(|e| self.ctx(e, path));
        }
        self.check_no_links(path, false, op)?;
        // Remember the parent only when it exists as a real directory now (a missing level
        // ends the check early; it is created as a real directory by the write).
        if std::fs::symlink_metadata(&dir).is_ok_and(|m| m.is_dir()) {
            let mut m = self
                .checked_dirs
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if m.len() >= CHECKED_DIR_MAX {
                m.clear();
            }
            m.insert(dir, now);
        }
        Ok(())
    }

    /// Forgets every directory [`LocalCore::check_no_links_cached`] remembered.
    pub(crate) fn forget_checked_dirs(&self) {
        self.checked_dirs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }

    /// Adds `path` to an error (the operation and the remote are named by the
    /// [`ErrorContext`](cloudsync_core::ErrorContext) layer around every opened remote).
    pub(crate) fn ctx(&self, e: impl Into<Error>, path: &RemotePath) -> Error {
        e.into().with_path(path)
    }

    /// The metadata of `local`, following a final symlink only when configured to.
    ///
    /// A symlink that is not followed is reported as `NotFound` (it is invisible to this
    /// remote, as in listings). The root is always followed.
    pub(crate) fn metadata(&self, local: &Path) -> std::io::Result<Metadata> {
        if local == self.root {
            // The root itself may be a link (`/data -> /mnt/disk`): always followed.
            return std::fs::metadata(local);
        }
        let meta = std::fs::symlink_metadata(local)?;
        if meta.file_type().is_symlink() {
            if self.follow_symlinks {
                return std::fs::metadata(local);
            }
            return Err(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "is a symbolic link (skipped; set follow_symlinks to follow it)",
            ));
        }
        Ok(meta)
    }

    /// Runs `f` on a blocking thread with this core.
    pub(crate) async fn blocking<T, F>(self: &Arc<Self>, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&CoreRef) -> Result<T> + Send + 'static,
    {
        let core = self.clone();
        tokio::task::spawn_blocking(move || {
            let r = f(&core);
            if r.is_err() {
                core.forget_checked_dirs();
            }
            r
        })
        .await
        .map_err(|e| Error::new(ErrorKind::Unexpected, format!("blocking task failed: {e}")))?
    }
}

impl LocalCore {
    /// Runs one file's whole blocking sequence (a local copy: open, copy, set times, rename)
    /// as one job, on the copy lane when `fsync` is off, else on a blocking thread.
    ///
    /// Without flushes a small file's job is a few dozen microseconds of CPU in the kernel,
    /// and handing work to a thread costs about as much: the lane's threads (as many as CPUs)
    /// take the next queued file without sleeping, so a file costs one wake-up across
    /// threads (its result) instead of two (see [`crate::lane`]). With `fsync` a job waits
    /// milliseconds on the disk, and many flushes in flight are what make a durable sync
    /// fast (the journal merges them): those jobs keep one blocking thread each, as many as
    /// the engine runs at once. Either way a failing job forgets the checked directories, as
    /// [`LocalCore::blocking`] does.
    pub(crate) async fn file_job<T, F>(self: &Arc<Self>, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&CoreRef) -> Result<T> + Send + 'static,
    {
        if self.fsync {
            return self.blocking(f).await;
        }
        let core = self.clone();
        self.lane
            .run(move || {
                let r = f(&core);
                if r.is_err() {
                    core.forget_checked_dirs();
                }
                r
            })
            .await
    }
}

/// Names Windows reserves for devices, whatever the extension or case (`nul.txt` opens `NUL`).
const WINDOWS_DEVICES: [&str; 6] = ["CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$"];

/// Why `name` (one path segment) cannot be a file name on Windows, or `None` when it can.
///
/// Refused: the characters `\ : * ? " < > |` (`\` separates paths, `:` names a drive or an
/// NTFS stream) and control characters; a trailing `.` or space (Windows drops them, so `a.`
/// would open `a`); device names (`CON`, `PRN`, `AUX`, `NUL`, `COM0`–`COM9`, `LPT0`–`LPT9`,
/// also with superscript digits, `CONIN$`, `CONOUT$`), in any case and with any extension.
/// With `windows == false` every name is fine (Unix takes any byte but `/` and NUL, which a
/// [`RemotePath`] already excludes).
///
/// Pure, so the Windows rules are tested on every platform.
pub(crate) fn windows_name_problem(name: &str, windows: bool) -> Option<&'static str> {
    if !windows {
        return None;
    }
    if let Some(c) = name
        .chars()
        .find(|c| matches!(c, '\\' | ':' | '*' | '?' | '"' | '<' | '>' | '|') || *c < '\u{20}')
    {
        return Some(match c {
            '\\' => "`\\` is a path separator on Windows",
            ':' => "`:` names a drive or a stream on Windows",
            _ => {
                "Windows does not allow this character (\\ : * ? \" < > | or a control character) in a file name"
            }
        });
    }
    if name.ends_with(['.', ' ']) {
        return Some("Windows drops a trailing dot or space, so the name would open another file");
    }
    // `NUL.txt`, `nul .tar.gz`: the part before the first dot, trailing spaces ignored.
    let stem = name.split('.').next().unwrap_or(name).trim_end_matches(' ');
    let upper = stem.to_uppercase();
    let is_device = WINDOWS_DEVICES.contains(&upper.as_str())
        || ["COM", "LPT"].iter().any(|prefix| {
            upper.strip_prefix(prefix).is_some_and(|n| {
                let mut chars = n.chars();
                matches!(
                    (chars.next(), chars.next()),
                    (Some('0'..='9' | '¹' | '²' | '³'), None)
                )
            })
        });
    if is_device {
        return Some("the name is a device on Windows (CON, PRN, AUX, NUL, COM1, LPT1, ...)");
    }
    None
}

/// Checks that every segment of `path` can be a local file name ([`windows_name_problem`]);
/// the error, of kind [`ErrorKind::InvalidInput`], names the segment and the reason.
pub(crate) fn check_local_path(path: &RemotePath, windows: bool) -> Result<()> {
    path.segments()
        .try_for_each(|seg| check_local_name(seg, windows))
}

/// [`check_local_path`] for one name.
pub(crate) fn check_local_name(name: &str, windows: bool) -> Result<()> {
    match windows_name_problem(name, windows) {
        Some(why) => Err(Error::new(
            ErrorKind::InvalidInput,
            format!("cannot store the name {name:?} on this system: {why}"),
        )),
        None => Ok(()),
    }
}

/// Converts an I/O error into the crate's error (kinds from the typed `io::ErrorKind`).
pub(crate) fn parse_error(e: std::io::Error) -> Error {
    Error::from(e)
}

/// An entry for `path` from its metadata: a file, a directory, or `None` for anything else
/// (FIFO, socket, device, an unfollowed symlink).
pub(crate) fn entry_from_meta(path: RemotePath, meta: &Metadata) -> Option<Entry> {
    let modtime = meta.modified().ok().map(system_to_offset);
    if meta.is_dir() {
        Some(Entry::dir(path).with_modtime(modtime))
    } else if meta.is_file() {
        Some(Entry::file(path, meta.len()).with_modtime(modtime))
    } else {
        None
    }
}

/// A `SystemTime` as an `OffsetDateTime` (UTC), keeping nanoseconds.
pub(crate) fn system_to_offset(t: SystemTime) -> OffsetDateTime {
    // Seconds and nanoseconds apart: one i128 division per listed entry showed in profiles.
    let after = |d: Duration| {
        let secs = i64::try_from(d.as_secs()).ok()?;
        OffsetDateTime::from_unix_timestamp(secs)
            .ok()?
            .replace_nanosecond(d.subsec_nanos())
            .ok()
    };
    let offset = match t.duration_since(UNIX_EPOCH) {
        Ok(d) => after(d),
        Err(e) => {
            let nanos = i128::try_from(e.duration().as_nanos()).ok();
            nanos.and_then(|n| OffsetDateTime::from_unix_timestamp_nanos(-n).ok())
        }
    };
    offset.unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

/// An `OffsetDateTime` as a `SystemTime`, keeping nanoseconds.
pub(crate) fn offset_to_system(t: OffsetDateTime) -> SystemTime {
    let nanos = t.unix_timestamp_nanos();
    let abs = nanos.unsigned_abs();
    let d = Duration::new(
        u64::try_from(abs / 1_000_000_000).unwrap_or(u64::MAX),
        (abs % 1_000_000_000) as u32,
    );
    if nanos >= 0 {
        UNIX_EPOCH.checked_add(d).unwrap_or(UNIX_EPOCH)
    } else {
        UNIX_EPOCH.checked_sub(d).unwrap_or(UNIX_EPOCH)
    }
}

/// Sets the modtime of an open file (nanosecond precision where the filesystem keeps it).
pub(crate) fn set_file_modtime(file: &File, modtime: OffsetDateTime) -> std::io::Result<()> {
    file.set_times(FileTimes::new().set_modified(offset_to_system(modtime)))
}

/// A fresh temp name for a write to `name` (see [`cloudsync_core::temp_name`]).
pub(crate) fn temp_name(name: &str) -> String {
    cloudsync_core::temp_name(name, NAME_MAX)
}

/// Every directory synced so far, in order (tests count those under their own temp
/// directory, so tests running at the same time do not disturb each other's counts).
#[cfg(test)]
static DIR_SYNCS: std::sync::Mutex<Vec<PathBuf>> = std::sync::Mutex::new(Vec::new());

/// How many directory syncs so far were of `root` or a directory below it.
#[cfg(test)]
pub(crate) fn dir_syncs_under(root: &Path) -> usize {
    let synced = DIR_SYNCS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    synced.iter().filter(|d| d.starts_with(root)).count()
}

/// `fsync`s a directory so a rename in it is durable (errors are ignored where the platform
/// cannot open directories).
pub(crate) fn sync_dir(dir: &Path) -> std::io::Result<()> {
    #[cfg(test)]
    DIR_SYNCS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .push(dir.to_path_buf());
    match File::open(dir) {
        Ok(d) => d.sync_all(),
        Err(_) => Ok(()),
    }
}

/// `fsync`s the directories holding `created` and its new parents, up to the root's parent, so
/// that directories a write had to create survive a power cut along with the file.
pub(crate) fn sync_created_dirs(root: &Path, created: &Path) -> std::io::Result<()> {
    let stop = root.parent().unwrap_or(root);
    for dir in created.ancestors().skip(1) {
        sync_dir(dir)?;
        if dir == stop || !dir.starts_with(stop) {
            break;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temp_names_fit_and_are_hidden() {
        let long = "é".repeat(200);
        let t = temp_name(&long);
        assert!(t.len() <= NAME_MAX, "{}", t.len());
        assert!(cloudsync_core::is_temp_name(&t));
        assert_ne!(temp_name("a"), temp_name("a"));
    }

    #[test]
    fn windows_names_that_would_leave_the_root_or_change_meaning_are_refused() {
        for bad in [
            "a\\..\\..\\x",
            "..\\x",
            "C:x",
            "c:\\windows",
            "a:b",
            "file.txt:stream",
            "CON",
            "con",
            "NUL.txt",
            "nul .tar.gz",
            "Aux",
            "PRN.log",
            "COM1",
            "com9.txt",
            "LPT1",
            "COM¹",
            "CONIN$",
            "conout$.x",
            "trailing.",
            "trailing ",
            "...",
            "a*b",
            "a?b",
            "a\"b",
            "a<b>",
            "a|b",
            "tab\there",
        ] {
            assert!(windows_name_problem(bad, true).is_some(), "{bad:?}");
            // Linux, macOS: any of these is a legitimate name.
            assert_eq!(windows_name_problem(bad, false), None, "{bad:?}");
        }
        for good in [
            "a",
            "file.txt",
            ".hidden",
            "CONSOLE",
            "NULL.txt",
            "COM10",
            "LPT",
            "com",
            "x.CON",
            "a b",
            "été.txt",
            "a..b",
        ] {
            assert_eq!(windows_name_problem(good, true), None, "{good:?}");
        }
        let bad = RemotePath::new("ok/sub/a\\..\\..\\x").unwrap();
        let e = check_local_path(&bad, true).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput);
        assert!(e.message().contains("a\\\\..\\\\..\\\\x"), "{e}");
        assert!(check_local_path(&bad, false).is_ok());
        assert!(check_local_path(&RemotePath::root(), true).is_ok());
    }

    #[test]
    fn time_round_trip_keeps_nanos() {
        for nanos in [0i128, 1, 1_700_000_000_123_456_789, -1_500_000_001] {
            let t = OffsetDateTime::from_unix_timestamp_nanos(nanos).unwrap();
            assert_eq!(system_to_offset(offset_to_system(t)), t);
        }
    }
}
