//! A small pool of SSH connections, so parallel transfers do not queue behind one channel.
//!
//! Connections are opened lazily, up to `connections`. A caller gets an idle connection if
//! there is one, else opens a new one while the pool is not full, else shares the least busy
//! one (SFTP multiplexes requests, so sharing is correct, just slower). A connection marked
//! broken (or closed by the server) is replaced on the next use.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use cloudsync_core::Result;
use tokio::sync::Mutex;

use crate::config::Settings;
use crate::ssh::Connection;

/// The pool; see the module docs.
pub(crate) struct Pool {
    pub(crate) settings: Settings,
    slots: Vec<Mutex<Option<Arc<Connection>>>>,
    next: AtomicUsize,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("slots", &self.slots.len())
            .finish_non_exhaustive()
    }
}

fn usable(slot: &Option<Arc<Connection>>) -> Option<&Arc<Connection>> {
    slot.as_ref().filter(|c| c.is_usable())
}

impl Pool {
    /// A pool with no connection open yet.
    pub(crate) fn new(settings: Settings) -> Self {
        let slots = (0..settings.connections)
            .map(|_| Mutex::new(None))
            .collect();
        Pool {
            settings,
            slots,
            next: AtomicUsize::new(0),
        }
    }

    /// A connection to run requests on (see the module docs for the choice).
    pub(crate) async fn get(&self) -> Result<Arc<Connection>> {
        let n = self.slots.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed) % n;
        let order = || (0..n).map(move |i| (start + i) % n);
        // 1. An idle connection (only the pool holds it).
        for i in order() {
            if let Ok(guard) = self.slots[i].try_lock()
                && let Some(c) = usable(&guard)
                && Arc::strong_count(c) == 1
            {
                return Ok(c.clone());
            }
        }
        // 2. A free slot: open a new connection in it.
        for i in order() {
            if let Ok(mut guard) = self.slots[i].try_lock()
                && usable(&guard).is_none()
            {
                return self.open_into(&mut guard).await;
            }
        }
        // 3. Share the least busy connection.
        let mut best: Option<Arc<Connection>> = None;
        for i in order() {
            if let Ok(guard) = self.slots[i].try_lock()
                && let Some(c) = usable(&guard)
                && best
                    .as_ref()
                    .is_none_or(|b| Arc::strong_count(c) < Arc::strong_count(b))
            {
                best = Some(c.clone());
            }
        }
        if let Some(c) = best {
            return Ok(c);
        }
        // 4. Every slot is busy connecting: wait for one.
        let mut guard = self.slots[start].lock().await;
        match usable(&guard) {
            Some(c) => Ok(c.clone()),
            None => self.open_into(&mut guard).await,
        }
    }

    async fn open_into(&self, slot: &mut Option<Arc<Connection>>) -> Result<Arc<Connection>> {
        if let Some(old) = slot.take() {
            // Its remaining users finish (or fail) on their own; it closes when they drop it.
            tracing::debug!("replacing a broken SFTP connection");
            drop(old);
        }
        let conn = Arc::new(Connection::open(&self.settings).await?);
        *slot = Some(conn.clone());
        Ok(conn)
    }

    /// Closes every open connection.
    pub(crate) async fn close_all(&self) {
        for slot in &self.slots {
            let conn = slot.lock().await.take();
            if let Some(c) = conn {
                c.close().await;
            }
        }
    }
}
