//! The lock on its own: refreshed on a timer, stale, future and dead holders.

use std::sync::Arc;
use std::time::Duration;

use super::*;
use crate::testkit::MemFs;

fn fs() -> Arc<dyn Remote> {
    Arc::new(MemFs::new("memfs://locks"))
}

fn lock_path() -> RemotePath {
    RemotePath::new("run.lock").unwrap()
}

async fn take(remote: &Arc<dyn Remote>, stale: Duration) -> Result<RemoteLock> {
    RemoteLock::acquire(remote.clone(), lock_path(), "ingest", stale, Duration::ZERO).await
}

#[test]
fn refresh_interval() {
    assert_eq!(
        refresh_every(Duration::from_secs(3600)),
        Duration::from_secs(900)
    );
    assert_eq!(
        refresh_every(Duration::from_secs(12)),
        Duration::from_secs(5)
    );
    assert_eq!(
        refresh_every(Duration::from_secs(1)),
        Duration::from_millis(500)
    );
    assert_eq!(refresh_every(Duration::ZERO), Duration::from_millis(10));
}

#[tokio::test]
async fn held_lock_stays_live_while_nothing_calls_it() {
    let remote = fs();
    let stale = Duration::from_secs(1);
    let held = take(&remote, stale).await.unwrap();
    // One long transfer: the holder does not touch the lock for 2.5 stale periods.
    tokio::time::sleep(stale * 5 / 2).await;
    let e = take(&remote, stale).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Conflict, "{e}");
    assert!(held.lost().is_none());
    held.release().await.unwrap();
    assert_eq!(
        remote.stat(&lock_path()).await.unwrap_err().kind(),
        ErrorKind::NotFound
    );
    // The timer stopped with the release: nothing writes the lock again.
    tokio::time::sleep(stale).await;
    assert_eq!(
        remote.stat(&lock_path()).await.unwrap_err().kind(),
        ErrorKind::NotFound
    );
}

#[tokio::test]
async fn dropped_lock_is_no_longer_refreshed() {
    let remote = fs();
    let stale = Duration::from_secs(1);
    drop(take(&remote, stale).await.unwrap());
    tokio::time::sleep(stale * 8 / 5).await;
    let next = take(&remote, stale).await.unwrap();
    next.release().await.unwrap();
}

#[tokio::test]
async fn a_taken_over_lock_reports_the_conflict() {
    let remote = fs();
    let stale = Duration::from_secs(1);
    let held = take(&remote, stale).await.unwrap();
    // Another run overwrites it (as if it had judged it stale).
    let mut other = read_info(&remote, &lock_path()).await.unwrap().unwrap();
    other.token = "someone-else".to_owned();
    write(&remote, &lock_path(), &other).await.unwrap();
    tokio::time::sleep(stale).await;
    let e = held.lost().expect("the refresh noticed");
    assert_eq!(e.kind(), ErrorKind::Conflict);
    assert_eq!(
        held.release().await.unwrap_err().kind(),
        ErrorKind::Conflict
    );
    // The other run's lock is left alone.
    let now = read_info(&remote, &lock_path()).await.unwrap().unwrap();
    assert_eq!(now.token, "someone-else");
}

/// Writes a lock as another run would, with its time `ahead` of now (negative: in the past).
async fn plant(remote: &Arc<dyn Remote>, host: &str, pid: u32, ahead: time::Duration) {
    plant_started(remote, host, pid, None, ahead).await;
}

async fn plant_started(
    remote: &Arc<dyn Remote>,
    host: &str,
    pid: u32,
    started: Option<u64>,
    ahead: time::Duration,
) {
    let when = OffsetDateTime::now_utc() + ahead;
    let info = LockInfo {
        token: "planted".to_owned(),
        purpose: "ingest".to_owned(),
        host: host.to_owned(),
        pid,
        acquired: when,
        refreshed: when,
        started,
    };
    write(remote, &lock_path(), &info).await.unwrap();
}

#[tokio::test]
async fn a_lock_dated_far_in_the_future_is_stale() {
    let remote = fs();
    let stale = Duration::from_secs(3600);
    // A small skew between two hosts' clocks: still live.
    plant(&remote, "otherhost", 4242, time::Duration::minutes(10)).await;
    let e = take(&remote, stale).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Conflict, "{e}");
    // More than the stale timeout ahead: taken over at once.
    plant(&remote, "otherhost", 4242, time::Duration::hours(3)).await;
    let held = take(&remote, stale).await.unwrap();
    assert_ne!(
        read_info(&remote, &lock_path())
            .await
            .unwrap()
            .unwrap()
            .token,
        "planted"
    );
    held.release().await.unwrap();
}

#[cfg(target_os = "linux")]
#[tokio::test]
async fn a_lock_of_a_dead_process_of_this_host_is_taken_over_at_once() {
    let remote = fs();
    let stale = Duration::from_secs(3600);
    let host = host_name();
    let now = time::Duration::ZERO;
    // Pids never reach 2^22 (the kernel's upper limit of pid_max).
    let dead = (1u32 << 22..)
        .find(|p| !std::path::Path::new(&format!("/proc/{p}")).exists())
        .unwrap();
    plant(&remote, &host, dead, now).await;
    take(&remote, stale).await.unwrap().release().await.unwrap();

    // The same pid on another host may well be running: live.
    plant(&remote, "otherhost", dead, now).await;
    assert_eq!(
        take(&remote, stale).await.unwrap_err().kind(),
        ErrorKind::Conflict
    );

    // A running process of this host (ours): live, with its start time or without one.
    let me = std::process::id();
    let start = process_start(me).expect("our own start time");
    for started in [None, Some(start)] {
        plant_started(&remote, &host, me, started, now).await;
        assert_eq!(
            take(&remote, stale).await.unwrap_err().kind(),
            ErrorKind::Conflict
        );
    }
    // Its pid, but a process started at another time: the holder died and the pid was reused.
    plant_started(&remote, &host, me, Some(start + 1), now).await;
    take(&remote, stale).await.unwrap().release().await.unwrap();
}

#[cfg(target_os = "linux")]
#[test]
fn start_time_of_a_process() {
    assert!(process_start(std::process::id()).is_some());
    assert_eq!(process_start(u32::MAX), None);
}
