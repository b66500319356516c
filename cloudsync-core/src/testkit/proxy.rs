//! [`ChaosProxy`]: a TCP proxy on 127.0.0.1 that breaks the connections it forwards, for
//! network-fault tests against real servers (DESIGN.md §5, "connections reset or stalled at
//! random points").
//!
//! A client is pointed at the proxy instead of at its server. For each connection it accepts,
//! the proxy draws from a seeded generator whether the connection gets a fault and which one:
//!
//! - **reset**: after a random number of bytes in one direction, both sides are closed
//!   abruptly (`SO_LINGER` 0, so each peer sees a TCP reset);
//! - **stall**: after a random number of bytes in one direction, that direction stops moving;
//!   the connection is reset once [`ProxyOptions::stall_for`] has passed (so a client without
//!   a timeout is not stuck for ever), or at once if the proxy is made calm meanwhile;
//! - **cut** (only with [`ProxyOptions::cut_share`], default none): after a random number of
//!   bytes in one direction, both sides are closed cleanly (FIN), as a middlebox that gives up
//!   on a connection may do. To a protocol that marks the end of data by closing the
//!   connection (an FTP data connection in stream mode), that is a short but complete
//!   transfer: only the client can tell.
//!
//! The draw of the n-th connection depends only on the seed and n, so a run with the same
//! seed and the same connection order gets the same faults; [`ProxyStats`] counts what fired.
//! [`ChaosProxy::set_calm`] stops every fault, including the ones armed on open connections,
//! so that a rerun after the faults converges.
//!
//! **FTP.** FTP transfers run over separate data connections to the port a `PASV` (`227`) or
//! `EPSV` (`229`) reply names. With [`ProxyOptions::ftp`], the proxy reads the server's
//! replies on the control connection line by line and rewrites those two replies to name a
//! one-shot listener of its own on 127.0.0.1, which forwards to the server's data port: data
//! connections are proxied (and broken) too. This needs clear-text FTP (the proxy cannot read
//! a TLS control connection) and passive mode (active `PORT` is not rewritten), and it relies
//! on the client connecting to the control connection's host for `PASV` (cloudsync-ftp does).
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use cloudsync_core::testkit::{ChaosProxy, ProxyOptions};
//! let server: std::net::SocketAddr = "127.0.0.1:2222".parse().unwrap();
//! let proxy = ChaosProxy::start(server, ProxyOptions::new(42).fault_rate(0.3)).await?;
//! // ... point a client at proxy.addr(), run it, then:
//! proxy.set_calm(true);
//! println!("{:?}", proxy.stats());
//! # Ok(()) }
//! ```

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// How a [`ChaosProxy`] behaves; every knob has a setter.
#[derive(Debug, Clone)]
pub struct ProxyOptions {
    /// Seed of the fault draws.
    pub seed: u64,
    /// Share of new connections that get a fault (0.0 to 1.0).
    pub fault_rate: f64,
    /// Share of the faults that are stalls rather than resets (0.0 to 1.0).
    pub stall_share: f64,
    /// Share of the faults that are clean closes (cuts) rather than resets (0.0 to 1.0, and
    /// at most `1 - stall_share`).
    pub cut_share: f64,
    /// Upper bound of the byte offset at which a fault fires. Offsets are drawn log-uniformly
    /// below it, so early faults (handshakes, requests) are as likely as late ones.
    pub max_offset: u64,
    /// How long a stalled direction waits before the connection is reset.
    pub stall_for: Duration,
    /// Rewrite FTP `PASV`/`EPSV` replies and proxy the data connections (module docs).
    pub ftp: bool,
    /// Bytes per second per direction of each connection; `None`: as fast as it goes.
    pub bandwidth: Option<u64>,
}

impl ProxyOptions {
    /// Calm options (no faults) with `seed`: 30% stalls once a fault rate is set, faults below
    /// 4 MiB, stalls of 5 s, no FTP rewriting, no bandwidth limit.
    pub fn new(seed: u64) -> Self {
        ProxyOptions {
            seed,
            fault_rate: 0.0,
            stall_share: 0.3,
            cut_share: 0.0,
            max_offset: 4 << 20,
            stall_for: Duration::from_secs(5),
            ftp: false,
            bandwidth: None,
        }
    }

    /// Sets [`ProxyOptions::fault_rate`].
    pub fn fault_rate(mut self, rate: f64) -> Self {
        self.fault_rate = rate;
        self
    }

    /// Sets [`ProxyOptions::stall_share`].
    pub fn stall_share(mut self, share: f64) -> Self {
        self.stall_share = share;
        self
    }

    /// Sets [`ProxyOptions::cut_share`].
    pub fn cut_share(mut self, share: f64) -> Self {
        self.cut_share = share;
        self
    }

    /// Sets [`ProxyOptions::max_offset`].
    pub fn max_offset(mut self, bytes: u64) -> Self {
        self.max_offset = bytes;
        self
    }

    /// Sets [`ProxyOptions::stall_for`].
    pub fn stall_for(mut self, d: Duration) -> Self {
        self.stall_for = d;
        self
    }

    /// Sets [`ProxyOptions::ftp`].
    pub fn ftp(mut self, yes: bool) -> Self {
        self.ftp = yes;
        self
    }

    /// Sets [`ProxyOptions::bandwidth`].
    pub fn bandwidth(mut self, bytes_per_sec: Option<u64>) -> Self {
        self.bandwidth = bytes_per_sec;
        self
    }
}

/// What a [`ChaosProxy`] did so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProxyStats {
    /// Connections accepted (FTP data connections included).
    pub connections: u64,
    /// FTP data connections among them.
    pub data_connections: u64,
    /// Faults armed at accept time (some never fire: the connection ends first, or the proxy
    /// was made calm).
    pub armed: u64,
    /// Connections reset by a fault.
    pub resets: u64,
    /// Connections stalled by a fault.
    pub stalls: u64,
    /// Connections cut (closed cleanly) by a fault.
    pub cuts: u64,
    /// Bytes forwarded from clients to the server.
    pub bytes_up: u64,
    /// Bytes forwarded from the server to clients.
    pub bytes_down: u64,
}

impl ProxyStats {
    /// Faults that fired: resets, stalls and cuts.
    pub fn fired(&self) -> u64 {
        self.resets + self.stalls + self.cuts
    }
}

/// A chaos TCP proxy; see the module docs. It stops (and drops every connection it forwards)
/// when dropped.
#[derive(Debug)]
pub struct ChaosProxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    accept: tokio::task::JoinHandle<()>,
}

#[derive(Debug)]
struct Shared {
    target: SocketAddr,
    opts: std::sync::Mutex<ProxyOptions>,
    calm: watch::Sender<bool>,
    next_conn: AtomicU64,
    /// Cancelled when the proxy is dropped: every connection ends.
    stop: CancellationToken,
    connections: AtomicU64,
    data_connections: AtomicU64,
    armed: AtomicU64,
    resets: AtomicU64,
    stalls: AtomicU64,
    cuts: AtomicU64,
    bytes_up: AtomicU64,
    bytes_down: AtomicU64,
}

impl Shared {
    fn opts(&self) -> ProxyOptions {
        match self.opts.lock() {
            Ok(g) => g.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    fn is_calm(&self) -> bool {
        *self.calm.borrow()
    }
}

/// Which way bytes flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dir {
    Up,
    Down,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FaultKind {
    Reset,
    Stall,
    Cut,
}

#[derive(Debug, Clone, Copy)]
struct Fault {
    kind: FaultKind,
    dir: Dir,
    after: u64,
}

/// One forwarded connection's state shared by its two pumps.
#[derive(Debug)]
struct Conn {
    fault: Option<Fault>,
    /// Set when both sides must be closed now.
    end: CancellationToken,
    /// Whether the close is abrupt (a fault, or a reset seen from one side).
    abort: AtomicBool,
}

impl Conn {
    fn abort(&self) {
        self.abort.store(true, Ordering::SeqCst);
        self.end.cancel();
    }
}

impl ChaosProxy {
    /// Starts a proxy on 127.0.0.1 (a port the kernel picks) forwarding to `target`. Must be
    /// called inside a Tokio runtime; the proxy runs on it.
    pub async fn start(target: SocketAddr, opts: ProxyOptions) -> std::io::Result<ChaosProxy> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
        let addr = listener.local_addr()?;
        let (calm, _) = watch::channel(false);
        let shared = Arc::new(Shared {
            target,
            opts: std::sync::Mutex::new(opts),
            calm,
            next_conn: AtomicU64::new(0),
            stop: CancellationToken::new(),
            connections: AtomicU64::new(0),
            data_connections: AtomicU64::new(0),
            armed: AtomicU64::new(0),
            resets: AtomicU64::new(0),
            stalls: AtomicU64::new(0),
            cuts: AtomicU64::new(0),
            bytes_up: AtomicU64::new(0),
            bytes_down: AtomicU64::new(0),
        });
        let accept = tokio::spawn(accept_loop(listener, shared.clone()));
        Ok(ChaosProxy {
            addr,
            shared,
            accept,
        })
    }

    /// The address clients connect to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The port clients connect to (on 127.0.0.1).
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// The address the proxy forwards to.
    pub fn target(&self) -> SocketAddr {
        self.shared.target
    }

    /// The seed of the fault draws.
    pub fn seed(&self) -> u64 {
        self.shared.opts().seed
    }

    /// Calm (`true`): no new faults, armed faults do not fire and stalled connections are reset.
    /// `false`: faults again, at the configured rate.
    pub fn set_calm(&self, calm: bool) {
        self.shared.calm.send_replace(calm);
    }

    /// Whether the proxy is calm.
    pub fn is_calm(&self) -> bool {
        self.shared.is_calm()
    }

    /// Sets the share of new connections that get a fault.
    pub fn set_fault_rate(&self, rate: f64) {
        self.update(|o| o.fault_rate = rate);
    }

    /// Sets the bandwidth limit of new connections (bytes per second per direction).
    pub fn set_bandwidth(&self, bytes_per_sec: Option<u64>) {
        self.update(|o| o.bandwidth = bytes_per_sec);
    }

    fn update(&self, f: impl FnOnce(&mut ProxyOptions)) {
        match self.shared.opts.lock() {
            Ok(mut g) => f(&mut g),
            Err(poisoned) => f(&mut poisoned.into_inner()),
        }
    }

    /// What the proxy did so far.
    pub fn stats(&self) -> ProxyStats {
        let s = &self.shared;
        let get = |a: &AtomicU64| a.load(Ordering::SeqCst);
        ProxyStats {
            connections: get(&s.connections),
            data_connections: get(&s.data_connections),
            armed: get(&s.armed),
            resets: get(&s.resets),
            stalls: get(&s.stalls),
            cuts: get(&s.cuts),
            bytes_up: get(&s.bytes_up),
            bytes_down: get(&s.bytes_down),
        }
    }
}

impl Drop for ChaosProxy {
    fn drop(&mut self) {
        self.accept.abort();
        self.shared.stop.cancel();
    }
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    loop {
        let client = tokio::select! {
            r = listener.accept() => r,
            () = shared.stop.cancelled() => return,
        };
        match client {
            Ok((client, _)) => {
                let target = shared.target;
                tokio::spawn(forward(client, target, shared.clone(), false));
            }
            // Out of file descriptors or the like: pause instead of spinning.
            Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
}

/// The fault of connection number `n`: a pure function of the seed, `n` and the options.
fn draw(opts: &ProxyOptions, n: u64) -> Option<Fault> {
    let mut rng = fastrand::Rng::with_seed(opts.seed ^ n.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    if rng.f64() >= opts.fault_rate {
        return None;
    }
    let roll = rng.f64();
    let kind = if roll < opts.stall_share {
        FaultKind::Stall
    } else if roll < opts.stall_share + opts.cut_share {
        FaultKind::Cut
    } else {
        FaultKind::Reset
    };
    let dir = if rng.bool() { Dir::Up } else { Dir::Down };
    // Log-uniform: a power of two at most max_offset, then uniform below it.
    let bits = 64 - opts.max_offset.max(1).leading_zeros();
    let bound = 1u64 << rng.u32(0..bits.max(1));
    let after = rng.u64(0..=bound.min(opts.max_offset));
    Some(Fault { kind, dir, after })
}

/// Forwards one accepted connection to `target` until either side ends it or a fault does.
async fn forward(client: TcpStream, target: SocketAddr, shared: Arc<Shared>, data: bool) {
    let n = shared.next_conn.fetch_add(1, Ordering::SeqCst);
    shared.connections.fetch_add(1, Ordering::SeqCst);
    if data {
        shared.data_connections.fetch_add(1, Ordering::SeqCst);
    }
    let opts = shared.opts();
    let fault = if shared.is_calm() {
        None
    } else {
        draw(&opts, n)
    };
    if fault.is_some() {
        shared.armed.fetch_add(1, Ordering::SeqCst);
    }
    let server =
        match tokio::time::timeout(Duration::from_secs(10), TcpStream::connect(target)).await {
            Ok(Ok(s)) => s,
            // The server is not there: the client sees its connection closed.
            _ => return,
        };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let conn = Conn {
        fault,
        end: shared.stop.child_token(),
        abort: AtomicBool::new(false),
    };
    let (mut cr, mut cw) = client.into_split();
    let (mut sr, mut sw) = server.into_split();
    let rewrite = opts.ftp && !data;
    tokio::join!(
        pump(&mut cr, &mut sw, Dir::Up, &conn, &shared, &opts, false),
        pump(&mut sr, &mut cw, Dir::Down, &conn, &shared, &opts, rewrite),
    );
    if conn.abort.load(Ordering::SeqCst) {
        // A reset, not a close: no FIN first (dropping a write half would send one, and a
        // FIN mid-stream is a clean end of data to the peer), then RST on close.
        let _ = cr.as_ref().set_zero_linger();
        let _ = sr.as_ref().set_zero_linger();
        cw.forget();
        sw.forget();
    }
}

/// Copies `from` to `to` in direction `dir`, firing the connection's fault when it is due.
/// With `ftp_rewrite`, the bytes are handled line by line and `PASV`/`EPSV` replies are
/// rewritten to point at a data proxy.
async fn pump(
    from: &mut OwnedReadHalf,
    to: &mut OwnedWriteHalf,
    dir: Dir,
    conn: &Conn,
    shared: &Arc<Shared>,
    opts: &ProxyOptions,
    ftp_rewrite: bool,
) {
    let counter = match dir {
        Dir::Up => &shared.bytes_up,
        Dir::Down => &shared.bytes_down,
    };
    let mut fault = conn.fault.filter(|f| f.dir == dir);
    let mut done: u64 = 0;
    let mut buf = vec![0u8; 16 * 1024];
    // FTP: bytes of an incomplete reply line.
    let mut line: Vec<u8> = Vec::new();
    loop {
        let n = tokio::select! {
            r = from.read(&mut buf) => match r {
                Ok(n) => n,
                Err(_) => {
                    conn.abort();
                    return;
                }
            },
            () = conn.end.cancelled() => return,
        };
        if n == 0 {
            if !line.is_empty() && write(to, &line, conn).await.is_err() {
                return;
            }
            // Half-close: the other direction goes on.
            let _ = to.shutdown().await;
            return;
        }
        let mut chunk: Vec<u8> = buf[..n].to_vec();
        if ftp_rewrite {
            line.extend_from_slice(&chunk);
            chunk.clear();
            while let Some(end) = line.iter().position(|b| *b == b'\n') {
                let rest = line.split_off(end + 1);
                let whole = std::mem::replace(&mut line, rest);
                let out = rewrite_reply(&whole, shared).await.unwrap_or(whole);
                chunk.extend_from_slice(&out);
            }
        }
        if let Some(f) = fault {
            let due = f.after.saturating_sub(done);
            if due < chunk.len() as u64 {
                fault = None;
                if !shared.is_calm() {
                    // The bytes before the fault's offset still go through.
                    let cut = due as usize;
                    if write(to, &chunk[..cut], conn).await.is_err() {
                        return;
                    }
                    counter.fetch_add(cut as u64, Ordering::SeqCst);
                    // Every fault ends this direction: nothing after the offset goes through.
                    match f.kind {
                        FaultKind::Reset => {
                            shared.resets.fetch_add(1, Ordering::SeqCst);
                            conn.abort();
                            return;
                        }
                        FaultKind::Cut => {
                            shared.cuts.fetch_add(1, Ordering::SeqCst);
                            // No abort: the write halves are shut down (FIN) when dropped.
                            conn.end.cancel();
                            return;
                        }
                        FaultKind::Stall => {
                            shared.stalls.fetch_add(1, Ordering::SeqCst);
                            let mut calm = shared.calm.subscribe();
                            tokio::select! {
                                () = conn.end.cancelled() => return,
                                () = tokio::time::sleep(opts.stall_for) => {
                                    conn.abort();
                                    return;
                                }
                                // A stalled connection stays broken once calm: resuming it
                                // would let a request of the faulty pass finish on the server
                                // after the calm pass looked (a late upload's temp file).
                                _ = calm.wait_for(|c| *c) => {
                                    conn.abort();
                                    return;
                                }
                            }
                        }
                    }
                }
            }
        }
        let rest = &chunk[..];
        if write(to, rest, conn).await.is_err() {
            return;
        }
        counter.fetch_add(rest.len() as u64, Ordering::SeqCst);
        done += rest.len() as u64;
        if let Some(bw) = opts.bandwidth.filter(|b| *b > 0) {
            let wait = Duration::from_secs_f64(rest.len() as f64 / bw as f64);
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                () = conn.end.cancelled() => return,
            }
        }
    }
}

/// Writes all of `bytes` unless the connection ends first; a write error aborts it.
async fn write(to: &mut OwnedWriteHalf, bytes: &[u8], conn: &Conn) -> Result<(), ()> {
    if bytes.is_empty() {
        return Ok(());
    }
    tokio::select! {
        r = to.write_all(bytes) => r.map_err(|_| conn.abort()),
        () = conn.end.cancelled() => Err(()),
    }
}

/// A `227`/`229` reply line rewritten to name a fresh data proxy; `None` for any other line
/// (or when no listener could be opened: the client then reaches the server directly).
async fn rewrite_reply(line: &[u8], shared: &Arc<Shared>) -> Option<Vec<u8>> {
    let text = std::str::from_utf8(line).ok()?;
    let port = if text.starts_with("227 ") {
        parse_pasv(text)?
    } else if text.starts_with("229 ") {
        parse_epsv(text)?
    } else {
        return None;
    };
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.ok()?;
    let ours = listener.local_addr().ok()?.port();
    let target = SocketAddr::new(shared.target.ip(), port);
    tokio::spawn(data_proxy(listener, target, shared.clone()));
    let reply = if text.starts_with("227 ") {
        format!(
            "227 Entering Passive Mode (127,0,0,1,{},{}).\r\n",
            ours >> 8,
            ours & 0xff
        )
    } else {
        format!("229 Entering Extended Passive Mode (|||{ours}|)\r\n")
    };
    Some(reply.into_bytes())
}

/// Accepts one data connection on `listener` (within 30 s) and forwards it to `target`.
/// Boxed, because it recurses through [`forward`].
fn data_proxy(
    listener: TcpListener,
    target: SocketAddr,
    shared: Arc<Shared>,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> {
    Box::pin(async move {
        let accepted = tokio::select! {
            r = tokio::time::timeout(Duration::from_secs(30), listener.accept()) => r,
            () = shared.stop.cancelled() => return,
        };
        if let Ok(Ok((client, _))) = accepted {
            drop(listener);
            forward(client, target, shared, true).await;
        }
    })
}

/// The port of `227 Entering Passive Mode (h1,h2,h3,h4,p1,p2)`.
fn parse_pasv(text: &str) -> Option<u16> {
    // After the reply code.
    let body = text.get(4..)?;
    let open = body.find(|c: char| c.is_ascii_digit())?;
    let nums: Vec<u16> = body[open..]
        .split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty())
        .take(6)
        .map(|s| s.parse::<u16>().ok())
        .collect::<Option<_>>()?;
    if nums.len() != 6 || nums[4] > 255 || nums[5] > 255 {
        return None;
    }
    Some(nums[4] << 8 | nums[5])
}

/// The port of `229 Entering Extended Passive Mode (|||port|)`.
fn parse_epsv(text: &str) -> Option<u16> {
    let open = text.find('(')?;
    let close = text[open..].find(')')? + open;
    let inner = &text[open + 1..close];
    let delim = inner.chars().next()?;
    let parts: Vec<&str> = inner.split(delim).collect();
    // "" "" "" "port" ""
    parts.get(3)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pasv_and_epsv_replies_parse() {
        assert_eq!(
            parse_pasv("227 Entering Passive Mode (127,0,0,1,195,80).\r\n"),
            Some(195 * 256 + 80)
        );
        assert_eq!(parse_pasv("227 =127,0,0,1,4,1\r\n"), Some(1025));
        assert_eq!(parse_pasv("227 nothing\r\n"), None);
        assert_eq!(
            parse_epsv("229 Entering Extended Passive Mode (|||50123|)\r\n"),
            Some(50123)
        );
        assert_eq!(parse_epsv("229 (|||x|)\r\n"), None);
    }

    #[test]
    fn draws_depend_only_on_seed_and_connection_number() {
        let o = ProxyOptions::new(7).fault_rate(0.5);
        let a: Vec<_> = (0..50).map(|n| format!("{:?}", draw(&o, n))).collect();
        let b: Vec<_> = (0..50).map(|n| format!("{:?}", draw(&o, n))).collect();
        assert_eq!(a, b);
        let faults = (0..1000).filter(|n| draw(&o, *n).is_some()).count();
        assert!((400..600).contains(&faults), "{faults}");
        assert!((0..1000).all(|n| draw(&o, n).is_none_or(|f| f.after <= o.max_offset)));
        assert!((0..1000).all(|n| draw(&ProxyOptions::new(7), n).is_none()));
    }

    async fn echo_server() -> SocketAddr {
        let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = l.accept().await {
                tokio::spawn(async move {
                    let (mut r, mut w) = s.split();
                    let _ = tokio::io::copy(&mut r, &mut w).await;
                });
            }
        });
        addr
    }

    async fn round_trip(addr: SocketAddr, len: usize) -> std::io::Result<Vec<u8>> {
        let mut s = TcpStream::connect(addr).await?;
        let data: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
        let (mut r, mut w) = s.split();
        let send = async {
            w.write_all(&data).await?;
            w.shutdown().await
        };
        let mut back = Vec::new();
        let recv = r.read_to_end(&mut back);
        let (a, b) = tokio::join!(send, recv);
        a?;
        b?;
        Ok(back)
    }

    #[tokio::test]
    async fn calm_proxy_forwards_exactly_and_faulty_one_breaks_connections() {
        let echo = echo_server().await;
        let proxy = ChaosProxy::start(
            echo,
            ProxyOptions::new(1)
                .max_offset(100_000)
                .stall_for(Duration::from_millis(200)),
        )
        .await
        .unwrap();
        let back = round_trip(proxy.addr(), 300_000).await.unwrap();
        assert_eq!(back.len(), 300_000);
        assert_eq!(proxy.stats().fired(), 0);

        proxy.set_fault_rate(1.0);
        let mut broken = 0;
        for _ in 0..10 {
            let r =
                tokio::time::timeout(Duration::from_secs(20), round_trip(proxy.addr(), 300_000))
                    .await
                    .unwrap();
            if r.map(|b| b.len()).unwrap_or(0) != 300_000 {
                broken += 1;
            }
        }
        let s = proxy.stats();
        assert_eq!(s.armed, 11 - 1);
        assert!(broken >= 8 && s.fired() >= 8, "{broken} {s:?}");

        proxy.set_calm(true);
        let back = round_trip(proxy.addr(), 300_000).await.unwrap();
        assert_eq!(back.len(), 300_000);
    }

    #[tokio::test]
    async fn ftp_passive_replies_point_at_a_data_proxy() {
        // A "server" that sends a PASV reply naming an echo port.
        let echo = echo_server().await;
        let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
        let ctl = l.local_addr().unwrap();
        let port = echo.port();
        tokio::spawn(async move {
            if let Ok((mut s, _)) = l.accept().await {
                let reply = format!(
                    "220 hi\r\n227 Entering Passive Mode (127,0,0,1,{},{}).\r\n229 Entering Extended Passive Mode (|||{port}|)\r\n",
                    port >> 8,
                    port & 0xff
                );
                let _ = s.write_all(reply.as_bytes()).await;
                let _ = s.shutdown().await;
            }
        });
        let proxy = ChaosProxy::start(ctl, ProxyOptions::new(1).ftp(true))
            .await
            .unwrap();
        let mut s = TcpStream::connect(proxy.addr()).await.unwrap();
        let mut text = String::new();
        s.read_to_string(&mut text).await.unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "220 hi");
        let pasv = parse_pasv(lines[1]).unwrap();
        let epsv = parse_epsv(lines[2]).unwrap();
        assert!(pasv != port && epsv != port && pasv != epsv, "{text}");
        for p in [pasv, epsv] {
            let back = round_trip(SocketAddr::from((Ipv4Addr::LOCALHOST, p)), 70_000)
                .await
                .unwrap();
            assert_eq!(back.len(), 70_000);
        }
        assert_eq!(proxy.stats().data_connections, 2);
    }
}
