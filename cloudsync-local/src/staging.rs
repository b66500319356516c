//! Where a file's content waits before it gets its final name.
//!
//! On Linux the content goes to an unnamed file in the target's directory (`O_TMPFILE`) and
//! `linkat` gives it the final name once it is complete: nothing is visible before, a crash
//! leaves nothing behind, and the directory is changed once instead of three times (create
//! the temp name, add the final name, drop the temp name), which is most of what a small
//! file costs the kernel beyond its data. When the final name exists (an update), the file
//! is linked under one of our temp names and renamed over it, as elsewhere: `linkat` never
//! replaces. Filesystems without `O_TMPFILE`, systems that cannot link such a file by its
//! descriptor, and other platforms use a named temp file renamed into place.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};

use crate::core::temp_name;

/// Removes the temp file unless it was renamed into place.
pub(crate) struct TempGuard(Option<PathBuf>);

impl Drop for TempGuard {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            if let Err(e) = std::fs::remove_file(&p) {
                tracing::warn!(path = %p.display(), error = %e, "cannot remove temp file");
            }
        }
    }
}

/// How a file being written is held until [`Staged::commit`].
pub(crate) enum Staged {
    /// An unnamed file (Linux `O_TMPFILE`); `linkat` names it.
    #[cfg(target_os = "linux")]
    Unnamed,
    /// One of our temp files in the target's directory.
    Named(TempGuard),
}

/// Opens the file that will become `target` (in `parent`, which must exist: `NotFound`
/// otherwise, as for any create).
pub(crate) fn open(parent: &Path, target: &Path) -> std::io::Result<(File, Staged)> {
    #[cfg(target_os = "linux")]
    if let Some(opened) = unnamed::open(parent, target)? {
        return Ok(opened);
    }
    let tmp = temp_beside(target);
    let file = OpenOptions::new().write(true).create_new(true).open(&tmp)?;
    Ok((file, Staged::Named(TempGuard(Some(tmp)))))
}

/// A new temp name for `target`, in its directory.
fn temp_beside(target: &Path) -> PathBuf {
    let name = target.file_name().and_then(|n| n.to_str()).unwrap_or("");
    let dir = target.parent().unwrap_or(Path::new("/"));
    dir.join(temp_name(name))
}

impl Staged {
    /// Gives the complete `file` the name `target`, replacing what is there. On error nothing
    /// of ours stays behind and the target is as it was.
    pub(crate) fn commit(self, file: File, target: &Path) -> std::io::Result<()> {
        match self {
            #[cfg(target_os = "linux")]
            Staged::Unnamed => unnamed::commit(file, target),
            Staged::Named(mut guard) => {
                drop(file);
                let Some(tmp) = guard.0.as_deref() else {
                    return Err(std::io::Error::other("temp file already committed"));
                };
                crash_point(CrashPoint::Rename);
                std::fs::rename(tmp, target)?;
                guard.0 = None;
                Ok(())
            }
        }
    }
}

/// The steps the crash tests stop at (see `writer::crash`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CrashPoint {
    /// An unnamed file is complete, before it is linked.
    Link,
    /// A named temp file is complete, before it is renamed.
    Rename,
}

/// Where a crash test's child stops for good (a no-op outside the crash tests).
#[cfg(test)]
fn crash_point(at: CrashPoint) {
    crate::writer::crash_point(at);
}

#[cfg(not(test))]
fn crash_point(_: CrashPoint) {}

#[cfg(target_os = "linux")]
mod unnamed {
    use std::ffi::CString;
    use std::fs::{File, OpenOptions};
    use std::os::fd::AsRawFd;
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::fs::OpenOptionsExt;
    use std::path::Path;
    use std::sync::OnceLock;

    use super::{CrashPoint, Staged, TempGuard, crash_point, temp_beside};

    /// How this process can give an unnamed file a name.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum Link {
        /// `linkat(fd, "", …, AT_EMPTY_PATH)`: kernels from 6.10 for a file this process
        /// opened, older ones with `CAP_DAC_READ_SEARCH`.
        EmptyPath,
        /// `linkat` of `/proc/self/fd/N` following the link (needs `/proc`).
        Proc,
    }

    /// Learnt from the first unnamed file (`None`: neither works, use named temp files).
    static LINK: OnceLock<Option<Link>> = OnceLock::new();

    /// An unnamed file in `parent`, or `None` where this filesystem or process can't have one.
    pub(super) fn open(parent: &Path, target: &Path) -> std::io::Result<Option<(File, Staged)>> {
        if LINK.get() == Some(&None) {
            return Ok(None);
        }
        let file = match OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_TMPFILE)
            .open(parent)
        {
            Ok(f) => f,
            // The filesystem has no unnamed files (`EOPNOTSUPP`; `EISDIR` or `EINVAL` from
            // kernels or libraries that don't know the flag).
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(libc::EOPNOTSUPP | libc::EISDIR | libc::EINVAL)
                ) =>
            {
                return Ok(None);
            }
            Err(e) => return Err(e),
        };
        if LINK.get().is_some() {
            return Ok(Some((file, Staged::Unnamed)));
        }
        // The first one: find out how to name it by naming it, under a temp name that then
        // serves as this file's own (nothing written yet, so nothing is lost if neither way
        // works).
        let tmp = temp_beside(target);
        for how in [Link::EmptyPath, Link::Proc] {
            match link(&file, &tmp, how) {
                Ok(()) => {
                    let _ = LINK.set(Some(how));
                    return Ok(Some((file, Staged::Named(TempGuard(Some(tmp))))));
                }
                Err(e) => {
                    tracing::debug!(?how, error = %e, "cannot link an unnamed file this way");
                }
            }
        }
        let _ = LINK.set(None);
        Ok(None)
    }

    /// Links `file` as `target`; an existing target gets the file through a temp name and a
    /// rename instead.
    pub(super) fn commit(file: File, target: &Path) -> std::io::Result<()> {
        let how = LINK.get().copied().flatten().unwrap_or(Link::Proc);
        crash_point(CrashPoint::Link);
        match link(&file, target, how) {
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            other => return other,
        }
        let tmp = temp_beside(target);
        link(&file, &tmp, how)?;
        Staged::Named(TempGuard(Some(tmp))).commit(file, target)
    }

    fn link(file: &File, to: &Path, how: Link) -> std::io::Result<()> {
        let to = CString::new(to.as_os_str().as_bytes())?;
        let fd = file.as_raw_fd();
        let rc = match how {
            // SAFETY: `fd` is open for the call and both strings are NUL-terminated.
            Link::EmptyPath => unsafe {
                libc::linkat(
                    fd,
                    c"".as_ptr(),
                    libc::AT_FDCWD,
                    to.as_ptr(),
                    libc::AT_EMPTY_PATH,
                )
            },
            Link::Proc => {
                let from = CString::new(format!("/proc/self/fd/{fd}"))?;
                // SAFETY: both strings are NUL-terminated and live for the call.
                unsafe {
                    libc::linkat(
                        libc::AT_FDCWD,
                        from.as_ptr(),
                        libc::AT_FDCWD,
                        to.as_ptr(),
                        libc::AT_SYMLINK_FOLLOW,
                    )
                }
            }
        };
        if rc == 0 {
            Ok(())
        } else {
            Err(std::io::Error::last_os_error())
        }
    }
}
