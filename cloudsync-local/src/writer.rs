//! Atomic writes: content goes to a file with no name yet (see [`crate::staging`]: unnamed on
//! Linux, `.cloudsync-tmp-<random>.<name>` elsewhere), gets its modtime and an `fsync` (unless
//! turned off), then takes the target's name (and its directory is synced). A failed or
//! abandoned write leaves nothing of ours, so nothing partial is ever visible under the final
//! name.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;

use bytes::Bytes;
use cloudsync_core::{ByteStream, Entry, Error, ErrorKind, RemotePath, Result, WriteMeta};
use futures::StreamExt;
use time::OffsetDateTime;
use tokio::sync::mpsc;

use crate::core::{
    CoreRef, LocalCore, entry_from_meta, parse_error, set_file_modtime, sync_created_dirs, sync_dir,
};
use crate::staging;
#[cfg(test)]
use crate::staging::CrashPoint;

/// Chunks buffered between the body stream and the writing thread.
const AHEAD: usize = 8;

/// A message to the writing thread.
enum Msg {
    Data(Bytes),
    /// The body ended normally; finish the file. A closed channel without `Done` aborts.
    Done,
}

/// What [`install`] knows of the file besides its content.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Install {
    /// The size the content must have.
    pub(crate) expected_size: Option<u64>,
    /// The modtime to give it.
    pub(crate) modtime: Option<OffsetDateTime>,
    /// Its name may become durable after the return (see [`crate::dirsync`]).
    pub(crate) lazy_durability: bool,
}

impl Install {
    /// What a write with `meta` installs.
    pub(crate) fn of(meta: &WriteMeta) -> Self {
        Install {
            expected_size: meta.size,
            modtime: meta.modtime,
            lazy_durability: meta.lazy_durability,
        }
    }
}

/// Writes `path` from `fill` atomically: creates the parents, a file with no name yet next to
/// the target, lets `fill` write the content (returning its size), checks the size, sets the
/// modtime, optionally syncs, and gives it the target's name.
pub(crate) fn install(
    core: &LocalCore,
    op: &'static str,
    path: &RemotePath,
    how: Install,
    fill: impl FnOnce(&mut File) -> Result<u64>,
) -> Result<Entry> {
    let Install {
        expected_size,
        modtime,
        lazy_durability,
    } = how;
    if path.is_root() {
        return Err(core.ctx(
            Error::new(
                ErrorKind::InvalidInput,
                "cannot write to the root directory",
            ),
            path,
        ));
    }
    core.check_no_links_cached(path, op)?;
    // Held to the end: the last write running syncs the directories whose new names wait.
    let _writing = core.fsync.then(|| core.pending_dirs.writing());
    let target = core.local(path)?;
    let parent: &Path = target.parent().unwrap_or(&core.root);
    let create = || staging::open(parent, &target);
    // Parents usually exist: create them only when the first attempt says they don't (one
    // syscall per file instead of three on the common path).
    let (mut file, staged) = match create() {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir_all(parent).map_err(|e| {
                let e = parse_error(e);
                let e = if e.kind() == ErrorKind::AlreadyExists {
                    Error::new(
                        ErrorKind::Conflict,
                        "a parent of the target is not a directory",
                    )
                    .with_source(e)
                } else {
                    e
                };
                core.ctx(e, path)
            })?;
            if core.fsync {
                sync_created_dirs(&core.root, parent)
                    .map_err(|e| core.ctx(parse_error(e), path))?;
            }
            create()
        }
        other => other,
    }
    .map_err(|e| core.ctx(parse_error(e), path))?;
    let written = fill(&mut file)?;
    if let Some(expected) = expected_size {
        if written != expected {
            return Err(core.ctx(
                Error::new(
                    ErrorKind::ConditionNotMatch,
                    format!("expected {expected} bytes, got {written}"),
                ),
                path,
            ));
        }
    }
    if let Some(t) = modtime {
        set_file_modtime(&file, t).map_err(|e| core.ctx(parse_error(e), path))?;
    }
    // The entry is known without a stat when we set the modtime ourselves.
    let entry = match modtime {
        Some(t) => Entry::file(path.clone(), written).with_modtime(Some(t)),
        None => {
            let meta = file
                .metadata()
                .map_err(|e| core.ctx(parse_error(e), path))?;
            entry_from_meta(path.clone(), &meta).ok_or_else(|| {
                core.ctx(
                    Error::new(ErrorKind::Unexpected, "written file is not a regular file"),
                    path,
                )
            })?
        }
    };
    if core.fsync {
        // The data is on disk before the rename is issued, so no crash can leave the final
        // name pointing at missing data (see "Durability" in the crate docs).
        file.sync_all()
            .map_err(|e| core.ctx(parse_error(e), path))?;
    }
    staged
        .commit(file, &target)
        .map_err(|e| core.ctx(parse_error(e), path))?;
    if core.fsync {
        if lazy_durability {
            core.pending_dirs.add(parent);
        } else {
            sync_dir(parent).map_err(|e| core.ctx(parse_error(e), path))?;
        }
    }
    Ok(entry)
}

/// Writes a stream: a blocking thread owns the file and receives chunks through a channel.
pub(crate) async fn write(
    core: &CoreRef,
    path: &RemotePath,
    body: ByteStream,
    meta: WriteMeta,
) -> Result<Entry> {
    let (tx, mut rx) = mpsc::channel::<Msg>(AHEAD);
    let p = path.clone();
    let job = core.blocking(move |c| {
        install(c, "write", &p, Install::of(&meta), |file| {
            receive(c, &p, file, &mut rx)
        })
    });
    joined(pump(body, tx), job).await
}

/// Writes `body` into the partial file `path` from byte `offset` on (see
/// [`Remote::write_at`](cloudsync_core::Remote::write_at)): created (with its parents) or
/// emptied at offset 0, else cut to `offset` and appended to. Every chunk that arrived is
/// written even when the body fails, so a later attempt can continue after it; the data is
/// synced at the end (unless `fsync` is off), before the engine renames the file into place.
pub(crate) async fn write_at(
    core: &CoreRef,
    path: &RemotePath,
    offset: u64,
    body: ByteStream,
) -> Result<u64> {
    let (tx, mut rx) = mpsc::channel::<Msg>(AHEAD);
    let p = path.clone();
    let job = core.blocking(move |c| {
        let mut file = open_at(c, &p, offset)?;
        let n = receive(c, &p, &mut file, &mut rx)?;
        if c.fsync {
            file.sync_all().map_err(|e| c.ctx(parse_error(e), &p))?;
        }
        Ok(offset + n)
    });
    joined(pump(body, tx), job).await
}

/// The blocking side: writes the chunks [`pump`] sends into `file` until `Done`; returns the
/// bytes written. A closed channel without `Done` (the body failed or the write was dropped)
/// is an error, after every chunk that arrived was written.
fn receive(
    c: &LocalCore,
    path: &RemotePath,
    file: &mut File,
    rx: &mut mpsc::Receiver<Msg>,
) -> Result<u64> {
    let mut n = 0u64;
    loop {
        match rx.blocking_recv() {
            Some(Msg::Data(chunk)) => {
                file.write_all(&chunk)
                    .map_err(|e| c.ctx(parse_error(e), path))?;
                n += chunk.len() as u64;
            }
            Some(Msg::Done) => return Ok(n),
            None => {
                return Err(c.ctx(Error::new(ErrorKind::Cancelled, "write abandoned"), path));
            }
        }
    }
}

/// The async side: sends the body's chunks to [`receive`], then `Done`. On the body's error
/// the sender is dropped, which ends the writer after the chunks already sent.
async fn pump(mut body: ByteStream, tx: mpsc::Sender<Msg>) -> Result<()> {
    while let Some(item) = body.next().await {
        let chunk = item?;
        if chunk.is_empty() {
            continue;
        }
        if tx.send(Msg::Data(chunk)).await.is_err() {
            // The writer stopped; its error is what we report.
            return Ok(());
        }
    }
    let _ = tx.send(Msg::Done).await;
    Ok(())
}

/// Runs both sides; the body's error (the source's read, with its own context) comes first.
async fn joined<T>(
    pumped: impl Future<Output = Result<()>>,
    job: impl Future<Output = Result<T>>,
) -> Result<T> {
    match futures::join!(pumped, job) {
        (Err(e), _) => Err(e),
        (Ok(()), r) => r,
    }
}

/// Opens the partial file `path` for [`write_at`], positioned at `offset`.
fn open_at(c: &LocalCore, path: &RemotePath, offset: u64) -> Result<File> {
    use std::io::{Seek, SeekFrom};
    if path.is_root() {
        return Err(c.ctx(
            Error::new(
                ErrorKind::InvalidInput,
                "cannot write to the root directory",
            ),
            path,
        ));
    }
    c.check_no_links_cached(path, "write_at")?;
    let target = c.local(path)?;
    let mismatch = |what: &str| {
        c.ctx(
            Error::new(
                ErrorKind::ConditionNotMatch,
                format!("cannot continue the partial file at byte {offset}: {what}"),
            )
            .set_temporary(true),
            path,
        )
    };
    if offset == 0 {
        let create = || {
            OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .open(&target)
        };
        return match create() {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let parent: &Path = target.parent().unwrap_or(&c.root);
                std::fs::create_dir_all(parent).map_err(|e| c.ctx(parse_error(e), path))?;
                create()
            }
            other => other,
        }
        .map_err(|e| c.ctx(parse_error(e), path));
    }
    let mut file = match OpenOptions::new().write(true).open(&target) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(mismatch("it is gone")),
        other => other.map_err(|e| c.ctx(parse_error(e), path))?,
    };
    let len = file
        .metadata()
        .map_err(|e| c.ctx(parse_error(e), path))?
        .len();
    if len < offset {
        return Err(mismatch(&format!("it has only {len} bytes")));
    }
    file.set_len(offset)
        .map_err(|e| c.ctx(parse_error(e), path))?;
    file.seek(SeekFrom::Start(offset))
        .map_err(|e| c.ctx(parse_error(e), path))?;
    Ok(file)
}

/// Writes `path` from the local file `src` with the kernel's copy path (`copy_file_range` on
/// Linux), keeping `modtime` when given.
///
/// The source is not stat'ed: the caller's `expected_size` (from the listing) is checked
/// against the bytes actually copied, so a file that changed size since it was listed fails
/// with `ConditionNotMatch` and leaves the destination as it was. It is opened non-blocking,
/// so a FIFO swapped in since the listing cannot hang the copy; anything but a regular file
/// is refused with `Unsupported`.
pub(crate) fn copy_from_local(
    core: &LocalCore,
    op: &'static str,
    path: &RemotePath,
    src: &Path,
    how: Install,
) -> Result<Entry> {
    let src_err = |e: Error| e.with_path(src.display());
    let mut opts = OpenOptions::new();
    opts.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.custom_flags(libc::O_NONBLOCK);
    }
    let mut from = opts.open(src).map_err(|e| src_err(parse_error(e)))?;
    install(core, op, path, how, |to| {
        copy_contents(&mut from, to, how.expected_size).map_err(|e| match e {
            CopyError::NotAFile => src_err(Error::new(
                ErrorKind::Unsupported,
                "source is not a regular file",
            )),
            CopyError::Io(e) => src_err(parse_error(e)),
        })
    })
}

/// Why [`copy_contents`] failed.
enum CopyError {
    /// The source is a directory, FIFO, device or socket.
    NotAFile,
    /// Reading or writing failed.
    Io(std::io::Error),
}

/// Copies all of `from` (at offset 0) to `to` (a new, empty file); returns the bytes copied.
///
/// On Linux one `copy_file_range` asking for `expected + 1` bytes copies a file of the
/// expected size and sees its end in the same call (a short count at exactly `expected`);
/// more than `expected` stops the copy at once (the caller reports the size mismatch). Where
/// the kernel cannot copy between the two files (another filesystem on old kernels, a
/// filesystem without support) it falls back to `io::copy`.
fn copy_contents(
    from: &mut File,
    to: &mut File,
    expected: Option<u64>,
) -> std::result::Result<u64, CopyError> {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        /// Largest request per call (the kernel caps a call near 2 GiB anyway).
        const CHUNK: u64 = 1 << 30;
        let mut total = 0u64;
        loop {
            let want = match expected {
                Some(n) if total <= n => (n - total).saturating_add(1).min(CHUNK),
                _ => CHUNK,
            } as usize;
            // SAFETY: both descriptors are open for the call (borrowed from live `File`s);
            // null offsets make the kernel use and advance the files' own offsets.
            let n = unsafe {
                libc::copy_file_range(
                    from.as_raw_fd(),
                    std::ptr::null_mut(),
                    to.as_raw_fd(),
                    std::ptr::null_mut(),
                    want,
                    0,
                )
            };
            if n < 0 {
                let e = std::io::Error::last_os_error();
                if e.kind() == std::io::ErrorKind::Interrupted {
                    continue;
                }
                if total == 0 {
                    break; // checked and retried the portable way below
                }
                return Err(CopyError::Io(e));
            }
            if n == 0 {
                return Ok(total);
            }
            total += n as u64;
            match expected {
                // Short at exactly the expected size: the end of the file.
                Some(exp) if total == exp && (n as usize) < want => return Ok(total),
                Some(exp) if total > exp => return Ok(total),
                _ => {}
            }
        }
    }
    let meta = from.metadata().map_err(CopyError::Io)?;
    if !meta.is_file() {
        return Err(CopyError::NotAFile);
    }
    std::io::copy(from, to).map_err(CopyError::Io)
}

/// Writes `path` from the local file `local` (a copy, installed like any upload).
pub(crate) async fn write_from_file(
    core: &CoreRef,
    path: &RemotePath,
    local: &Path,
    meta: WriteMeta,
) -> Result<Entry> {
    let p = path.clone();
    let src = local.to_owned();
    core.file_job(move |c| copy_from_local(c, "write", &p, &src, Install::of(&meta)))
        .await
}

/// Creates `dir` and its missing parents.
pub(crate) async fn mkdir(core: &CoreRef, dir: &RemotePath) -> Result<()> {
    let p = dir.clone();
    core.blocking(move |c| {
        c.check_no_links(&p, true, "mkdir")?;
        let local = c.local(&p)?;
        std::fs::create_dir_all(&local).map_err(|e| {
            let e = parse_error(e);
            let e = if e.kind() == ErrorKind::AlreadyExists {
                Error::new(ErrorKind::Conflict, "a file is in the way").with_source(e)
            } else {
                e
            };
            c.ctx(e, &p)
        })
    })
    .await
}

/// Sets the modification time of the file `path`.
pub(crate) async fn set_modtime(
    core: &CoreRef,
    path: &RemotePath,
    modtime: OffsetDateTime,
) -> Result<()> {
    let p = path.clone();
    core.blocking(move |c| {
        c.check_no_links(&p, false, "set_modtime")?;
        let local = c.local(&p)?;
        c.metadata(&local).map_err(|e| c.ctx(parse_error(e), &p))?;
        let file = std::fs::File::open(&local).map_err(|e| c.ctx(parse_error(e), &p))?;
        set_file_modtime(&file, modtime).map_err(|e| c.ctx(parse_error(e), &p))
    })
    .await
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use cloudsync_core::{Remote, RemotePath, WriteMeta, bytes_stream};

    use crate::LocalConfig;

    fn meta(size: u64) -> WriteMeta {
        WriteMeta {
            size: Some(size),
            ..Default::default()
        }
    }

    /// The source is not stat'ed again: a file that grew or shrank since the listing is caught
    /// by the byte count, and the destination keeps its old content, with no temp file left.
    /// Both job paths: the copy lane (`fsync` off) and a blocking thread per file.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_source_whose_size_changed_since_the_listing_is_refused() {
        for fsync in [true, false] {
            source_size_changed(fsync).await;
        }
    }

    async fn source_size_changed(fsync: bool) {
        let tmp = tempfile::tempdir().unwrap();
        let remote: Arc<dyn Remote> = Arc::new(
            LocalConfig::new(tmp.path().join("dst"))
                .with_fsync(fsync)
                .build()
                .unwrap(),
        );
        let src = tmp.path().join("src.bin");
        let p = RemotePath::new("d/f.bin").unwrap();
        std::fs::write(&src, vec![7u8; 10_000]).unwrap();
        let e = remote
            .write_from_file(&p, &src, meta(10_000))
            .await
            .unwrap();
        assert_eq!(e.size, 10_000);
        let dst = tmp.path().join("dst/d/f.bin");
        assert_eq!(std::fs::read(&dst).unwrap(), vec![7u8; 10_000]);
        for (len, listed) in [(10_001usize, 10_000u64), (9_999, 10_000), (0, 1), (1, 0)] {
            std::fs::write(&src, vec![8u8; len]).unwrap();
            let e = remote
                .write_from_file(&p, &src, meta(listed))
                .await
                .unwrap_err();
            assert_eq!(
                e.kind(),
                cloudsync_core::ErrorKind::ConditionNotMatch,
                "{e}"
            );
            assert_eq!(std::fs::read(&dst).unwrap(), vec![7u8; 10_000], "{len}");
        }
        let names: Vec<_> = std::fs::read_dir(tmp.path().join("dst/d"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["f.bin"]);
        // An empty file of the listed size 0, and one larger than a single kernel copy step
        // would need to be exact about.
        for len in [0usize, 3 << 20] {
            std::fs::write(&src, vec![9u8; len]).unwrap();
            remote
                .write_from_file(&p, &src, meta(len as u64))
                .await
                .unwrap();
            assert_eq!(std::fs::read(&dst).unwrap().len(), len);
        }
    }

    /// A rename that fails (a directory is in the way of the final name) leaves no temp file
    /// and the directory as it was, on both job paths.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failing_rename_leaves_no_temp_file() {
        for fsync in [true, false] {
            let tmp = tempfile::tempdir().unwrap();
            let root = tmp.path().join("dst");
            let remote: Arc<dyn Remote> =
                Arc::new(LocalConfig::new(&root).with_fsync(fsync).build().unwrap());
            let src = tmp.path().join("src.bin");
            std::fs::write(&src, vec![5u8; 4096]).unwrap();
            std::fs::create_dir_all(root.join("d/f.bin")).unwrap();
            std::fs::write(root.join("d/f.bin/inside"), "keep").unwrap();
            let p = RemotePath::new("d/f.bin").unwrap();
            let e = remote
                .write_from_file(&p, &src, meta(4096))
                .await
                .unwrap_err();
            assert_ne!(e.kind(), cloudsync_core::ErrorKind::Unexpected, "{e}");
            let names: Vec<_> = std::fs::read_dir(root.join("d"))
                .unwrap()
                .map(|e| e.unwrap().file_name())
                .collect();
            assert_eq!(names, ["f.bin"], "fsync {fsync}");
            assert_eq!(
                std::fs::read_to_string(root.join("d/f.bin/inside")).unwrap(),
                "keep"
            );
        }
    }

    /// Many copies in flight at once through the copy lane (`fsync` off, more files than lane
    /// threads) and through blocking threads: every file arrives whole under its name with
    /// the listed modtime, and no temp file is left.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn many_concurrent_copies_arrive_whole() {
        for fsync in [false, true] {
            let tmp = tempfile::tempdir().unwrap();
            let root = tmp.path().join("dst");
            let remote: Arc<dyn Remote> =
                Arc::new(LocalConfig::new(&root).with_fsync(fsync).build().unwrap());
            let srcdir = tmp.path().join("src");
            std::fs::create_dir(&srcdir).unwrap();
            let when =
                time::OffsetDateTime::from_unix_timestamp_nanos(1_600_000_000_123_456_789).unwrap();
            let jobs = (0..64usize).map(|i| {
                let remote = remote.clone();
                let src = srcdir.join(format!("{i}"));
                let data: Vec<u8> = (0..(i * 97 + 1)).map(|b| (b % 251) as u8).collect();
                std::fs::write(&src, &data).unwrap();
                async move {
                    let p = RemotePath::new(&format!("d{}/f{i}", i % 4)).unwrap();
                    let m = WriteMeta {
                        size: Some(data.len() as u64),
                        modtime: Some(when),
                        ..Default::default()
                    };
                    remote.write_from_file(&p, &src, m).await.unwrap();
                    data
                }
            });
            let all = futures::future::join_all(jobs).await;
            for (i, data) in all.iter().enumerate() {
                let dst = root.join(format!("d{}/f{i}", i % 4));
                assert_eq!(&std::fs::read(&dst).unwrap(), data, "fsync {fsync}, {i}");
                let mtime = std::fs::metadata(&dst).unwrap().modified().unwrap();
                assert_eq!(time::OffsetDateTime::from(mtime), when);
            }
            for d in 0..4 {
                let n = std::fs::read_dir(root.join(format!("d{d}")))
                    .unwrap()
                    .count();
                assert_eq!(n, 16, "only the 16 files, no temp file");
            }
        }
    }

    /// A directory or a FIFO where the listing saw a file is refused, and a FIFO never blocks
    /// the copy (it is opened non-blocking, not read).
    #[cfg(unix)]
    #[tokio::test]
    async fn a_source_that_is_no_longer_a_regular_file_is_unsupported() {
        let tmp = tempfile::tempdir().unwrap();
        let remote: Arc<dyn Remote> =
            Arc::new(LocalConfig::new(tmp.path().join("dst")).build().unwrap());
        let p = RemotePath::new("f").unwrap();
        let dir = tmp.path().join("dir");
        std::fs::create_dir(&dir).unwrap();
        let fifo = tmp.path().join("fifo");
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .expect("mkfifo (coreutils) is needed for this test");
        assert!(made.success());
        for src in [&dir, &fifo] {
            let r = tokio::time::timeout(
                std::time::Duration::from_secs(10),
                remote.write_from_file(&p, src, meta(3)),
            )
            .await
            .expect("the copy must not block on a FIFO");
            let e = r.unwrap_err();
            assert_eq!(e.kind(), cloudsync_core::ErrorKind::Unsupported, "{e}");
        }
        assert!(!tmp.path().join("dst/f").exists());
    }

    /// Directories checked for links are remembered only until something is removed or fails:
    /// a directory removed and replaced by a link to outside the root is checked again.
    #[cfg(unix)]
    #[tokio::test]
    async fn a_removed_or_failed_directory_is_checked_for_links_again() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("dst");
        let outside = tmp.path().join("outside");
        std::fs::create_dir(&outside).unwrap();
        let remote: Arc<dyn Remote> = Arc::new(LocalConfig::new(&root).build().unwrap());
        let p = |s: &str| RemotePath::new(s).unwrap();
        let put = |path: RemotePath| {
            let remote = remote.clone();
            async move {
                remote
                    .write(&path, bytes_stream("x"), WriteMeta::default())
                    .await
            }
        };
        // Removed through the remote, then swapped for a link by someone else. (The first
        // write creates `a`; the second finds it and remembers it.)
        put(p("a/x")).await.unwrap();
        put(p("a/x")).await.unwrap();
        remote.remove_file(&p("a/x")).await.unwrap();
        remote.remove_dir(&p("a")).await.unwrap();
        std::os::unix::fs::symlink(&outside, root.join("a")).unwrap();
        let e = put(p("a/y")).await.unwrap_err();
        assert_eq!(e.kind(), cloudsync_core::ErrorKind::PermissionDenied, "{e}");
        // Swapped behind our back: a failing operation makes the next write check again.
        put(p("b/x")).await.unwrap();
        put(p("b/x")).await.unwrap();
        std::fs::remove_file(root.join("b/x")).unwrap();
        std::fs::remove_dir(root.join("b")).unwrap();
        std::os::unix::fs::symlink(&outside, root.join("b")).unwrap();
        assert!(remote.stat(&p("nothing-here")).await.is_err());
        let e = put(p("b/y")).await.unwrap_err();
        assert_eq!(e.kind(), cloudsync_core::ErrorKind::PermissionDenied, "{e}");
        assert_eq!(std::fs::read_dir(&outside).unwrap().count(), 0);
    }
}

/// The crash test's child process: set by the parent, never in a normal run.
#[cfg(test)]
const CRASH_ENV: &str = "CLOUDSYNC_LOCAL_TEST_CRASH_DIR";
/// Which [`CrashPoint`] the child stops at (`link` or `rename`).
#[cfg(test)]
const CRASH_AT_ENV: &str = "CLOUDSYNC_LOCAL_TEST_CRASH_AT";
/// Set by the child once the files it writes whole are written.
#[cfg(test)]
static CRASH_ARMED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Where a crash test's child stops for good, once its file is complete and flushed, before
/// it gets its final name (a no-op in every other process and at the other point).
#[cfg(test)]
pub(crate) fn crash_point(at: CrashPoint) {
    if !CRASH_ARMED.load(std::sync::atomic::Ordering::SeqCst) {
        return;
    }
    let Some(dir) = std::env::var_os(CRASH_ENV) else {
        return;
    };
    let wanted = match std::env::var(CRASH_AT_ENV).as_deref() {
        Ok("link") => CrashPoint::Link,
        _ => CrashPoint::Rename,
    };
    if at != wanted {
        return;
    }
    std::fs::write(std::path::Path::new(&dir).join("at-crash-point"), "").unwrap();
    loop {
        std::thread::sleep(std::time::Duration::from_secs(60));
    }
}

#[cfg(test)]
mod lazy {
    use std::sync::Arc;

    use cloudsync_core::{Remote, ops};

    use crate::LocalConfig;
    use crate::core::dir_syncs_under;

    /// Files per folder in [`trees`].
    const FILES: usize = 20;

    /// `src` with [`FILES`] files in each of `a` and `b`, `dst` with both folders empty.
    fn trees(tmp: &std::path::Path) -> (Arc<dyn Remote>, crate::LocalRemote) {
        for d in ["a", "b"] {
            std::fs::create_dir_all(tmp.join("src").join(d)).unwrap();
            std::fs::create_dir_all(tmp.join("dst").join(d)).unwrap();
            for i in 0..FILES {
                std::fs::write(tmp.join(format!("src/{d}/{i}.txt")), format!("{d}{i}")).unwrap();
            }
        }
        let src = LocalConfig::new(tmp.join("src")).build().unwrap();
        let dst = LocalConfig::new(tmp.join("dst")).build().unwrap();
        (Arc::new(src), dst)
    }

    /// Syncs or moves ([`ops::move_files`]) the trees of [`trees`]; returns the destination's
    /// state (kept alive: nothing is flushed by a drop) and the directory syncs the run took.
    async fn run(moving: bool) -> (crate::core::CoreRef, usize) {
        let tmp = tempfile::tempdir().unwrap();
        let (src, dst) = trees(tmp.path());
        let core = Arc::clone(dst.core());
        let dst: Arc<dyn Remote> = Arc::new(dst);
        let before = dir_syncs_under(tmp.path());
        let opts = ops::SyncOptions::default();
        let s = if moving {
            ops::move_files(&src, &dst, &opts).await
        } else {
            ops::sync(&src, &dst, &opts).await
        };
        let s = s.unwrap();
        assert_eq!(s.transferred as usize, 2 * FILES, "{s:?}");
        (core, dir_syncs_under(tmp.path()) - before)
    }

    /// A sync's writes leave their directories to a few shared syncs instead of one per file,
    /// and when the sync returns every folder holding a new file has been synced.
    #[tokio::test]
    async fn a_sync_shares_directory_syncs_and_ends_with_none_waiting() {
        let (core, syncs) = run(false).await;
        assert_eq!(
            core.pending_dirs.waiting(),
            0,
            "all synced by the last write"
        );
        assert!(
            (2..=FILES / 2).contains(&syncs),
            "{syncs} directory syncs for {} files in 2 folders",
            2 * FILES
        );
    }

    /// A deletion first syncs the folders whose new names wait, even while other writes run
    /// (so it never reaches the disk before a name written earlier).
    #[tokio::test]
    async fn a_deletion_syncs_waiting_folders_first() {
        let tmp = tempfile::tempdir().unwrap();
        let (_, dst) = trees(tmp.path());
        std::fs::write(tmp.path().join("dst/a/extra.txt"), "only here").unwrap();
        let core = Arc::clone(dst.core());
        // Another write is running, and folder `b` holds a name that waits for its sync.
        let running = core.pending_dirs.writing();
        core.pending_dirs.add(&tmp.path().join("dst/b"));
        assert_eq!(core.pending_dirs.waiting(), 1);
        let before = dir_syncs_under(tmp.path());
        dst.remove_file(&cloudsync_core::RemotePath::new("a/extra.txt").unwrap())
            .await
            .unwrap();
        assert_eq!(core.pending_dirs.waiting(), 0, "synced before the deletion");
        assert_eq!(dir_syncs_under(tmp.path()) - before, 1);
        drop(running);
    }

    /// A move deletes each source right after its copy: every copy's directory is synced
    /// before the copy returns.
    #[tokio::test]
    async fn a_move_syncs_the_directory_of_every_file_before_its_source_goes() {
        let (core, syncs) = run(true).await;
        assert_eq!(core.pending_dirs.waiting(), 0);
        assert!(syncs >= 2 * FILES, "one sync per moved file");
    }
}

#[cfg(test)]
mod crash {
    use std::path::Path;
    use std::sync::Arc;
    use std::time::Duration;

    use cloudsync_core::{Remote, RemotePath, WriteMeta, ops};

    use super::{CRASH_AT_ENV, CRASH_ENV};
    use crate::LocalConfig;

    /// The child of the crash tests: writes `dst/d/warm.bin` whole (the first file a process
    /// writes is the one that finds out how to link unnamed files), then `dst/d/f.bin` from
    /// `src/d/f.bin`, and stops for good at the crash point the parent chose (after the
    /// data's `fsync`, before the file is named), where the parent kills it.
    #[test]
    #[ignore = "run by the crash test as its child process"]
    fn crash_child() {
        let dir =
            std::path::PathBuf::from(std::env::var_os(CRASH_ENV).expect("run by the crash test"));
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let dst = LocalConfig::new(dir.join("dst")).build().unwrap();
            let warm = dir.join("src/d/warm.bin");
            let meta = |p: &Path| WriteMeta {
                size: Some(std::fs::metadata(p).unwrap().len()),
                ..Default::default()
            };
            dst.write_from_file(&RemotePath::new("d/warm.bin").unwrap(), &warm, meta(&warm))
                .await
                .unwrap();
            super::CRASH_ARMED.store(true, std::sync::atomic::Ordering::SeqCst);
            let src = dir.join("src/d/f.bin");
            let r = dst
                .write_from_file(&RemotePath::new("d/f.bin").unwrap(), &src, meta(&src))
                .await;
            panic!("the crash point was not reached: {r:?}");
        });
    }

    /// Runs the child until it stops at `at` (`link` or `rename`) and kills it; `old` is what
    /// `dst/d/f.bin` holds before (`None`: absent). Returns the new content and the
    /// destination directory.
    fn kill_at(tmp: &Path, at: &str, old: Option<&[u8]>) -> (Vec<u8>, std::path::PathBuf) {
        let data: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        std::fs::create_dir_all(tmp.join("src/d")).unwrap();
        std::fs::create_dir_all(tmp.join("dst/d")).unwrap();
        std::fs::write(tmp.join("src/d/f.bin"), &data).unwrap();
        std::fs::write(tmp.join("src/d/warm.bin"), "warm").unwrap();
        if let Some(old) = old {
            std::fs::write(tmp.join("dst/d/f.bin"), old).unwrap();
        }
        let marker = tmp.join("at-crash-point");
        let mut child = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "writer::crash::crash_child",
                "--exact",
                "--ignored",
                "--nocapture",
            ])
            .env(CRASH_ENV, tmp)
            .env(CRASH_AT_ENV, at)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let start = std::time::Instant::now();
        while !marker.exists() {
            if let Some(status) = child.try_wait().unwrap() {
                panic!("the child ended before the crash point: {status}");
            }
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "no crash point in 60 s"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        child.kill().unwrap();
        child.wait().unwrap();
        (data, tmp.join("dst/d"))
    }

    /// Our temp files in `dir`.
    fn temps(dir: &Path) -> Vec<std::path::PathBuf> {
        std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(cloudsync_core::is_temp_name)
            })
            .collect()
    }

    /// The next sync: no errors, the new content in place, nothing of ours left.
    async fn resync(tmp: &Path, d: &Path, data: &[u8]) {
        let src: Arc<dyn Remote> = Arc::new(LocalConfig::new(tmp.join("src")).build().unwrap());
        let dst: Arc<dyn Remote> = Arc::new(LocalConfig::new(tmp.join("dst")).build().unwrap());
        let opts = ops::SyncOptions {
            leftover_age: Some(Duration::ZERO),
            ..Default::default()
        };
        let summary = ops::sync(&src, &dst, &opts).await.unwrap();
        assert!(summary.errors.is_empty(), "{:?}", summary.errors);
        assert!(
            std::fs::read(d.join("f.bin")).unwrap() == data,
            "f.bin is the new content"
        );
        let mut names: Vec<_> = std::fs::read_dir(d)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        names.sort();
        assert_eq!(
            names,
            ["f.bin", "warm.bin"],
            "the leftover temp file is gone"
        );
    }

    /// SIGKILL after a replacement's data is flushed and before its rename: the final name
    /// keeps the old content, the new content is complete in one of our temp files, and the
    /// next sync removes that temp file and puts the new content in place.
    #[cfg(unix)]
    #[tokio::test]
    async fn a_kill_between_the_flush_and_the_rename_leaves_a_temp_file_the_next_sync_removes() {
        let tmp = tempfile::tempdir().unwrap();
        let (data, d) = kill_at(tmp.path(), "rename", Some(b"old"));
        assert_eq!(std::fs::read(d.join("f.bin")).unwrap(), b"old");
        let temps = temps(&d);
        assert_eq!(temps.len(), 1, "{temps:?}");
        assert!(
            std::fs::read(&temps[0]).unwrap() == data,
            "the temp file holds all the data"
        );
        resync(tmp.path(), &d, &data).await;
    }

    /// SIGKILL after a new file's data is flushed into an unnamed file (Linux `O_TMPFILE`),
    /// before it is linked: nothing at all is left, not even a temp file, and the next sync
    /// copies the file.
    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn a_kill_before_an_unnamed_file_is_linked_leaves_nothing() {
        let tmp = tempfile::tempdir().unwrap();
        let (data, d) = kill_at(tmp.path(), "link", None);
        let mut names: Vec<_> = std::fs::read_dir(&d)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        names.sort();
        assert_eq!(names, ["warm.bin"], "no name for the unfinished file");
        resync(tmp.path(), &d, &data).await;
    }
}
