//! [`RemoteLock`]: a lock file on a remote that keeps two scheduled runs from overlapping.
//!
//! The [`Remote`] API has no create-if-absent, so the lock is taken in three steps: read the
//! lock file (a live lock held by someone else is a [`ErrorKind::Conflict`]), write our own
//! (atomic, replacing an absent or stale one), wait `confirm_delay`, and read it back: if
//! another run wrote in between, its token is there instead of ours and we back off. Two runs
//! can only both win if one of them takes longer between its first read and its write than
//! the other's confirm delay (default 500 ms), which a healthy connection never does. While
//! the lock is held, a background task rewrites the time inside it every quarter of `stale`
//! (at most every [`MIN_REFRESH`], unless `stale` is shorter than twice that), however long
//! one transfer takes; it stops when the lock is released or dropped. A lock not refreshed
//! for `stale` (default 1 h) is taken over, so a crashed run blocks the next ones for at most
//! that long; so is a lock dated more than `stale` in the future (a smaller clock skew between
//! two hosts still counts as live). On Linux, a lock left by a process of this host that is no
//! longer running (its pid is gone, or belongs to a process started at another time) is taken
//! over at once, so a run after a crash or a reboot does not wait for the stale timeout.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::entry::WriteMeta;
use crate::error::{Error, ErrorKind, Result};
use crate::path::RemotePath;
use crate::remote::{Remote, bytes_stream, collect_bytes};
use crate::temp::random_id;

/// What a lock file says about its holder.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockInfo {
    /// A random token identifying one run.
    pub token: String,
    /// What holds the lock (`"ingest"`, `"report-queue"`).
    pub purpose: String,
    /// Host name of the holder, when known.
    pub host: String,
    /// Process id of the holder.
    pub pid: u32,
    /// When the lock was taken.
    #[serde(with = "time::serde::rfc3339")]
    pub acquired: OffsetDateTime,
    /// When the holder last confirmed it is alive.
    #[serde(with = "time::serde::rfc3339")]
    pub refreshed: OffsetDateTime,
    /// When the holder process started (Linux: clock ticks after boot, field 22 of
    /// `/proc/<pid>/stat`), to tell the holder from a later process given the same pid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started: Option<u64>,
}

/// The shortest pause between two refreshes of a lock (unless its stale timeout is shorter
/// than twice this): a refresh costs a read and a write on the remote.
const MIN_REFRESH: Duration = Duration::from_secs(5);

/// How often a lock with stale timeout `stale` is refreshed.
fn refresh_every(stale: Duration) -> Duration {
    (stale / 4)
        .max(MIN_REFRESH.min(stale / 2))
        .max(Duration::from_millis(10))
}

/// A held lock, refreshed by a background task. Call [`release`](Self::release) when done; a
/// lock that is dropped without it stops being refreshed and stays until it is stale.
#[derive(Debug)]
pub(crate) struct RemoteLock {
    remote: Arc<dyn Remote>,
    path: RemotePath,
    token: String,
    purpose: String,
    /// Sending or dropping it stops the refresh task.
    stop: oneshot::Sender<()>,
    refresher: JoinHandle<()>,
    /// Why the refresh task gave up (the lock was taken over, or could not be rewritten).
    lost: Arc<Mutex<Option<Error>>>,
}

/// This machine's name: the kernel's on Linux (a `HOSTNAME` variable may be stale or missing
/// under a scheduler), else `HOSTNAME`, else `/etc/hostname`.
fn host_name() -> String {
    let kernel = || std::fs::read_to_string("/proc/sys/kernel/hostname").ok();
    let file = || std::fs::read_to_string("/etc/hostname").ok();
    kernel()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .or_else(file)
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "unknown".to_owned())
}

/// The start time of process `pid` (clock ticks after boot, field 22 of `/proc/<pid>/stat`);
/// `None` when it is not running, cannot be read, or on systems without `/proc`.
fn process_start(pid: u32) -> Option<u64> {
    if !cfg!(target_os = "linux") {
        return None;
    }
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // "pid (comm) state ppid ...": the name may hold spaces and `)`, so count from the last
    // `)`; the state is field 3, the start time field 22.
    let rest = stat.get(stat.rfind(')')? + 1..)?;
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// Whether the holder was a process of this host that is no longer running: its pid is gone,
/// or now belongs to a process started at another time. Linux only (it reads `/proc`); a
/// holder on another host, or any doubt, counts as alive. It assumes host names are unique
/// among the machines sharing the lock, and that the holder's processes are visible here
/// (same pid namespace; `/proc` not mounted with `hidepid`).
fn holder_is_dead(info: &LockInfo) -> bool {
    let ours = host_name();
    if !cfg!(target_os = "linux") || info.pid == 0 || ours == "unknown" || info.host != ours {
        return false;
    }
    if !std::path::Path::new("/proc/self/stat").exists() {
        return false;
    }
    match process_start(info.pid) {
        Some(start) => info.started.is_some_and(|s| s != start),
        None => !std::path::Path::new(&format!("/proc/{}", info.pid)).exists(),
    }
}

impl RemoteLock {
    /// Takes the lock at `path` on `remote`, or fails with [`ErrorKind::Conflict`] when another
    /// live run holds it.
    pub(crate) async fn acquire(
        remote: Arc<dyn Remote>,
        path: RemotePath,
        purpose: &str,
        stale: Duration,
        confirm_delay: Duration,
    ) -> Result<Self> {
        if let Some(holder) = read(&remote, &path, stale).await? {
            return Err(held(&remote, &path, purpose, &holder));
        }
        let now = OffsetDateTime::now_utc();
        let info = LockInfo {
            token: random_id(),
            purpose: purpose.to_owned(),
            host: host_name(),
            pid: std::process::id(),
            acquired: now,
            refreshed: now,
            started: process_start(std::process::id()),
        };
        write(&remote, &path, &info).await?;
        tokio::time::sleep(confirm_delay).await;
        match read_info(&remote, &path).await? {
            Some(ref got) if got.token == info.token => {}
            Some(other) => return Err(held(&remote, &path, purpose, &other)),
            None => {
                return Err(Error::new(
                    ErrorKind::Conflict,
                    format!("another {purpose} run removed the lock as we took it"),
                )
                .with_remote(remote.describe())
                .with_path(&path));
            }
        }
        tracing::debug!(%path, token = %info.token, "lock taken");
        let (stop, stopped) = oneshot::channel();
        let lost = Arc::default();
        let (token, purpose) = (info.token.clone(), info.purpose.clone());
        let refresher = tokio::spawn(keep_fresh(
            remote.clone(),
            path.clone(),
            info,
            refresh_every(stale),
            Arc::clone(&lost),
            stopped,
        ));
        Ok(RemoteLock {
            remote,
            path,
            token,
            purpose,
            stop,
            refresher,
            lost,
        })
    }

    /// Why the lock stopped being refreshed (taken over by another run: kind
    /// [`ErrorKind::Conflict`]; or it could not be rewritten), once; `None` while all is well.
    pub(crate) fn lost(&self) -> Option<Error> {
        self.lost.lock().unwrap_or_else(|p| p.into_inner()).take()
    }

    /// Stops the refreshes (waiting for one under way) and removes the lock file if it is
    /// still ours.
    pub(crate) async fn release(self) -> Result<()> {
        let _ = self.stop.send(());
        if let Err(e) = self.refresher.await {
            tracing::warn!(error = %e, "the lock refresh task failed");
        }
        confirm(&self.remote, &self.path, &self.token, &self.purpose).await?;
        match self.remote.remove_file(&self.path).await {
            Err(e) if e.kind() != ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }
}

/// The refresh task: every `every`, checks the lock is still ours and rewrites its time, until
/// `stop` fires (or its sender is dropped) or a refresh fails, which it records in `lost`.
async fn keep_fresh(
    remote: Arc<dyn Remote>,
    path: RemotePath,
    mut info: LockInfo,
    every: Duration,
    lost: Arc<Mutex<Option<Error>>>,
    mut stop: oneshot::Receiver<()>,
) {
    loop {
        tokio::select! {
            biased;
            _ = &mut stop => return,
            () = tokio::time::sleep(every) => {}
        }
        let refreshed = async {
            confirm(&remote, &path, &info.token, &info.purpose).await?;
            info.refreshed = OffsetDateTime::now_utc();
            write(&remote, &path, &info).await
        };
        if let Err(e) = refreshed.await {
            tracing::warn!(%path, error = %e, "could not refresh the lock");
            *lost.lock().unwrap_or_else(|p| p.into_inner()) = Some(e);
            return;
        }
        tracing::trace!(%path, "lock refreshed");
    }
}

/// Checks that the lock at `path` still holds `token` (a [`ErrorKind::Conflict`] error when
/// another run took it over or removed it).
async fn confirm(
    remote: &Arc<dyn Remote>,
    path: &RemotePath,
    token: &str,
    purpose: &str,
) -> Result<()> {
    match read_info(remote, path).await? {
        Some(got) if got.token == token => Ok(()),
        _ => Err(Error::new(
            ErrorKind::Conflict,
            format!("lost the {purpose} lock to another run"),
        )
        .with_remote(remote.describe())
        .with_path(path)),
    }
}

fn held(remote: &Arc<dyn Remote>, path: &RemotePath, purpose: &str, h: &LockInfo) -> Error {
    Error::new(
        ErrorKind::Conflict,
        format!(
            "another {purpose} is running (lock held by pid {} on {} since {})",
            h.pid, h.host, h.acquired
        ),
    )
    .with_remote(remote.describe())
    .with_path(path)
}

async fn write(remote: &Arc<dyn Remote>, path: &RemotePath, info: &LockInfo) -> Result<()> {
    let body = serde_json::to_vec_pretty(info)
        .map_err(|e| Error::new(ErrorKind::Unexpected, "cannot encode lock").with_source(e))?;
    let meta = WriteMeta {
        size: Some(body.len() as u64),
        ..Default::default()
    };
    remote.write(path, bytes_stream(body), meta).await?;
    Ok(())
}

/// The lock's content, `None` when there is no lock file. An unreadable lock file is reported
/// as held by "unknown" since its modtime.
async fn read_info(remote: &Arc<dyn Remote>, path: &RemotePath) -> Result<Option<LockInfo>> {
    let body = match remote.read(path, None).await {
        Ok(s) => collect_bytes(s).await,
        Err(e) => Err(e),
    };
    let body = match body {
        Ok(b) => b,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    match serde_json::from_slice::<LockInfo>(&body) {
        Ok(info) => Ok(Some(info)),
        Err(_) => {
            let since = remote
                .stat(path)
                .await?
                .modtime
                .unwrap_or_else(OffsetDateTime::now_utc);
            Ok(Some(LockInfo {
                token: String::new(),
                purpose: "unknown".to_owned(),
                host: "unknown".to_owned(),
                pid: 0,
                acquired: since,
                refreshed: since,
                started: None,
            }))
        }
    }
}

/// The live holder of the lock, or `None` when it is free or stale.
async fn read(
    remote: &Arc<dyn Remote>,
    path: &RemotePath,
    stale: Duration,
) -> Result<Option<LockInfo>> {
    let Some(info) = read_info(remote, path).await? else {
        return Ok(None);
    };
    let age = OffsetDateTime::now_utc() - info.refreshed;
    if age > stale {
        tracing::warn!(%path, host = %info.host, pid = info.pid, "taking over a stale lock");
        return Ok(None);
    }
    // A time further ahead than `stale` is no clock skew worth waiting for (a bad clock or a
    // hand-edited lock): waiting for it to age would block every run until that date.
    if -age > stale {
        tracing::warn!(
            %path, host = %info.host, pid = info.pid, refreshed = %info.refreshed,
            "taking over a lock dated further in the future than the stale timeout"
        );
        return Ok(None);
    }
    if holder_is_dead(&info) {
        tracing::warn!(
            %path, host = %info.host, pid = info.pid,
            "taking over the lock of a process of this host that is no longer running"
        );
        return Ok(None);
    }
    Ok(Some(info))
}

#[cfg(test)]
mod tests;
