//! [`CuttingProxy`]: a TCP proxy whose link goes down after a set number of bytes from the
//! client, for tests of transfers cut in the middle of a request (a chunk, an append).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// What "no limit" is stored as.
const UNLIMITED: u64 = u64::MAX / 2;

/// A TCP proxy on 127.0.0.1 to `target` that forwards a budget of client-to-server bytes over
/// all its connections, then cuts the connection it is on (both directions) and, unless it
/// was started with [`CuttingProxy::start_once`], refuses every later one: the link is down
/// until [`CuttingProxy::restore`]. Server-to-client traffic is never limited.
#[derive(Debug, Clone)]
pub struct CuttingProxy {
    port: u16,
    left: Arc<AtomicU64>,
}

impl CuttingProxy {
    /// A proxy whose link goes down for good after `budget` bytes from the client.
    pub async fn start(target: SocketAddr, budget: u64) -> std::io::Result<CuttingProxy> {
        Self::spawn(target, budget, false).await
    }

    /// A proxy that cuts the one connection on which `budget` bytes from the client are
    /// reached; the link is back for the next connections.
    pub async fn start_once(target: SocketAddr, budget: u64) -> std::io::Result<CuttingProxy> {
        Self::spawn(target, budget, true).await
    }

    /// The proxy's port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Brings the link back up: every later connection is forwarded without a limit.
    pub fn restore(&self) {
        self.left.store(UNLIMITED, Ordering::SeqCst);
    }

    async fn spawn(target: SocketAddr, budget: u64, once: bool) -> std::io::Result<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let port = listener.local_addr()?.port();
        let left = Arc::new(AtomicU64::new(budget));
        let once = Arc::new(AtomicBool::new(once));
        let shared = left.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                tokio::spawn(forward(client, target, shared.clone(), once.clone()));
            }
        });
        Ok(CuttingProxy { port, left })
    }
}

/// Forwards one connection until the budget runs out (then drops both sides).
async fn forward(
    client: tokio::net::TcpStream,
    target: SocketAddr,
    left: Arc<AtomicU64>,
    once: Arc<AtomicBool>,
) {
    if left.load(Ordering::SeqCst) == 0 {
        return;
    }
    let Ok(server) = tokio::net::TcpStream::connect(target).await else {
        return;
    };
    let (mut cr, mut cw) = client.into_split();
    let (mut sr, mut sw) = server.into_split();
    let down = tokio::spawn(async move {
        let _ = tokio::io::copy(&mut sr, &mut cw).await;
    });
    let mut buf = vec![0u8; 64 * 1024];
    let cut = loop {
        let room = left.load(Ordering::SeqCst);
        if room == 0 {
            if once.load(Ordering::SeqCst) {
                // This connection only: the link is back for the next ones.
                left.store(UNLIMITED, Ordering::SeqCst);
            }
            break true;
        }
        let want = buf.len().min(usize::try_from(room).unwrap_or(usize::MAX));
        let n = match cr.read(&mut buf[..want]).await {
            Ok(0) => {
                // The client is done sending: pass that on and let the answer through.
                let _ = sw.shutdown().await;
                break false;
            }
            Ok(n) => n,
            Err(_) => break true,
        };
        if sw.write_all(&buf[..n]).await.is_err() {
            break true;
        }
        left.fetch_sub(n as u64, Ordering::SeqCst);
    };
    if cut {
        down.abort();
    } else {
        let _ = down.await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Echo server: what it reads, it writes back.
    async fn echo() -> SocketAddr {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((s, _)) = l.accept().await {
                tokio::spawn(async move {
                    let (mut r, mut w) = s.into_split();
                    let _ = tokio::io::copy(&mut r, &mut w).await;
                });
            }
        });
        addr
    }

    async fn send(port: u16, n: usize) -> usize {
        let Ok(s) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await else {
            return 0;
        };
        let (mut r, mut w) = s.into_split();
        let _ = w.write_all(&vec![7u8; n]).await;
        let _ = w.shutdown().await;
        let mut got = Vec::new();
        let _ = r.read_to_end(&mut got).await;
        got.len()
    }

    #[tokio::test]
    async fn the_link_goes_down_after_the_budget_until_restored() {
        let p = CuttingProxy::start(echo().await, 1000).await.unwrap();
        let first = send(p.port(), 4000).await;
        assert!(first <= 1000, "{first} bytes went through a budget of 1000");
        assert_eq!(send(p.port(), 10).await, 0, "the link must stay down");
        p.restore();
        assert_eq!(send(p.port(), 4000).await, 4000);
    }

    #[tokio::test]
    async fn once_cuts_one_connection_only() {
        let p = CuttingProxy::start_once(echo().await, 1000).await.unwrap();
        assert!(send(p.port(), 4000).await <= 1000);
        assert_eq!(send(p.port(), 4000).await, 4000);
    }
}
