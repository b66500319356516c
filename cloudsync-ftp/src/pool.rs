//! A pool of logged-in control connections.
//!
//! FTP moves one file per data connection and one data connection per control connection at a
//! time, so parallel transfers need parallel sessions. The pool holds at most `connections` of
//! them (busy plus idle), checks an idle one with `NOOP` before reuse when it has rested a while,
//! keeps idle ones alive with `NOOP` in the background, and drops any connection an operation
//! left broken: the next checkout simply logs in again.

use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use cloudsync_core::{Error, ErrorKind, Result};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::core::{Conn, Connector};

/// An idle connection older than this is checked with `NOOP` before it is handed out.
const CHECK_AFTER: Duration = Duration::from_secs(15);
/// Idle connections are sent a `NOOP` this often, so servers do not close them.
const KEEPALIVE_EVERY: Duration = Duration::from_secs(60);

/// The pool; share it as `Arc<Pool>`.
#[derive(Debug)]
pub(crate) struct Pool {
    pub(crate) connector: Connector,
    idle: Mutex<Vec<Conn>>,
    permits: Arc<Semaphore>,
}

impl Pool {
    /// A pool of at most `connector.settings.connections` sessions, with its keepalive task
    /// (which ends when the pool is dropped).
    pub(crate) fn new(connector: Connector) -> Arc<Self> {
        let n = connector.settings.connections;
        let pool = Arc::new(Pool {
            connector,
            idle: Mutex::new(Vec::new()),
            // A config value: zero would hang every call, too many would panic.
            permits: Arc::new(Semaphore::new(n.clamp(1, Semaphore::MAX_PERMITS))),
        });
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            handle.spawn(keepalive(Arc::downgrade(&pool)));
        }
        pool
    }

    /// Adds an already connected session (the one `open` made) to the idle list.
    pub(crate) fn put_idle(&self, conn: Conn) {
        if let Ok(mut idle) = self.idle.lock() {
            idle.push(conn);
        }
    }

    fn pop_idle(&self) -> Option<Conn> {
        self.idle.lock().ok().and_then(|mut v| v.pop())
    }

    /// A connection for one operation; waits while all `connections` are busy.
    pub(crate) async fn get(self: &Arc<Self>) -> Result<Pooled> {
        let permit = self
            .permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| Error::new(ErrorKind::Cancelled, "connection pool closed"))?;
        while let Some(mut conn) = self.pop_idle() {
            if conn.last_used.elapsed() < CHECK_AFTER {
                return Ok(Pooled::new(conn, self.clone(), permit));
            }
            match conn.noop().await {
                Ok(()) => return Ok(Pooled::new(conn, self.clone(), permit)),
                Err(e) => tracing::debug!("dropping a dead idle FTP connection: {e}"),
            }
        }
        let conn = self.connector.connect().await?;
        Ok(Pooled::new(conn, self.clone(), permit))
    }
}

/// Sends `NOOP` on idle connections that rested for [`KEEPALIVE_EVERY`], without taking a
/// connection away from a waiting operation.
async fn keepalive(pool: Weak<Pool>) {
    loop {
        tokio::time::sleep(KEEPALIVE_EVERY).await;
        let Some(pool) = pool.upgrade() else { return };
        let mut rested = Vec::new();
        while let Ok(permit) = pool.permits.clone().try_acquire_owned() {
            let conn = {
                let Ok(mut idle) = pool.idle.lock() else {
                    break;
                };
                let pos = idle
                    .iter()
                    .position(|c| c.last_used.elapsed() >= KEEPALIVE_EVERY);
                pos.map(|i| idle.swap_remove(i))
            };
            let Some(conn) = conn else { break };
            rested.push((conn, permit));
        }
        for (mut conn, permit) in rested {
            if conn.noop().await.is_ok() {
                pool.put_idle(conn);
            }
            drop(permit);
        }
    }
}

/// A checked-out connection; goes back to the pool when dropped, unless broken.
pub(crate) struct Pooled {
    conn: Option<Conn>,
    pool: Arc<Pool>,
    _permit: OwnedSemaphorePermit,
}

impl std::fmt::Debug for Pooled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pooled").field("conn", &self.conn).finish()
    }
}

impl Pooled {
    fn new(conn: Conn, pool: Arc<Pool>, permit: OwnedSemaphorePermit) -> Self {
        Pooled {
            conn: Some(conn),
            pool,
            _permit: permit,
        }
    }

    /// The pool this connection belongs to.
    pub(crate) fn pool(&self) -> &Arc<Pool> {
        &self.pool
    }

    /// `e` (from an operation on `abs`) as [`ErrorKind::NotFound`] when it is a refusal and an
    /// ancestor's listing confirms the path is absent; otherwise `e` unchanged.
    pub(crate) async fn confirm_not_found(&mut self, e: Error, abs: &str, mlsd: bool) -> Error {
        if e.kind() != ErrorKind::PermissionDenied {
            return e;
        }
        match self.absent(abs, mlsd).await {
            Ok(true) => Error::new(
                ErrorKind::NotFound,
                format!("no such file or directory ({})", e.message()),
            ),
            Ok(false) => e,
            Err(probe) => {
                tracing::debug!(path = %abs, "cannot check whether the path exists: {probe}");
                e
            }
        }
    }

    /// Whether the absence of `abs` is confirmed: some ancestor's listing succeeds and lacks the
    /// next name down. `Ok(false)` when that cannot be told.
    ///
    /// Some servers spoil the session after refusing a listing (Pure-FTPd answers a listing of
    /// a missing folder with 550, and a later listing with 421): a step that fails with
    /// anything but a refusal is tried once more on a fresh session, under the same permit.
    /// A session that kept working saves a login per step (each one costs tens of
    /// milliseconds, and ProFTPD's mod_delay can stretch it to hundreds). Nothing here can
    /// turn an error into absence: a refusal only moves the question up one level, and only
    /// a listing that succeeds and lacks the name says absent. This only runs when something
    /// was refused.
    pub(crate) async fn absent(&mut self, abs: &str, mlsd: bool) -> Result<bool> {
        let mut cur = abs.trim_end_matches('/').to_owned();
        loop {
            let Some((parent, name)) = cur.rsplit_once('/') else {
                return Ok(false);
            };
            if name.is_empty() {
                return Ok(false);
            }
            let parent = if parent.is_empty() { "/" } else { parent };
            let listed = match self.list_lines(parent, mlsd).await {
                Err(e) if e.kind() != ErrorKind::PermissionDenied => {
                    tracing::debug!(path = %parent, "listing again on a fresh session: {e}");
                    let fresh = self.pool.connector.connect().await?;
                    if let Some(mut old) = self.conn.replace(fresh) {
                        old.broken = true;
                    }
                    self.list_lines(parent, mlsd).await
                }
                other => other,
            };
            match listed {
                Ok(lines) => return Ok(!crate::listing::may_list(&lines, name, mlsd)),
                // The parent cannot be listed either: absent if the parent is.
                Err(e) if e.kind() == ErrorKind::PermissionDenied => cur = parent.to_owned(),
                Err(_) => return Ok(false),
            }
        }
    }
}

impl std::ops::Deref for Pooled {
    type Target = Conn;
    fn deref(&self) -> &Conn {
        // Invariant: `conn` is only taken in `drop`.
        self.conn.as_ref().unwrap_or_else(|| unreachable!())
    }
}

impl std::ops::DerefMut for Pooled {
    fn deref_mut(&mut self) -> &mut Conn {
        self.conn.as_mut().unwrap_or_else(|| unreachable!())
    }
}

impl Drop for Pooled {
    fn drop(&mut self) {
        if let Some(mut conn) = self.conn.take() {
            if !conn.broken {
                conn.last_used = Instant::now();
                self.pool.put_idle(conn);
            }
        }
    }
}
