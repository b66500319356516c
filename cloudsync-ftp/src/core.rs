//! Protocol calls: connecting and logging in (plain, explicit or implicit TLS), the server's
//! features, one control connection ([`Conn`]) with a timeout on every step, and the mapping of
//! FTP failures to [`ErrorKind`]s ([`parse_error`]), and [`FtpCore`], the state shared by the
//! role functions (opened by [`FtpCore::connect`]).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cloudsync_core::{Error, ErrorKind, Location, RemotePath, Result};
use suppaftp::tokio::{ImplAsyncFtpStream, TransferStream};
use suppaftp::types::{FileType, Mode};
use suppaftp::{FtpError, Status};
use time::OffsetDateTime;
use tokio::net::TcpStream;

use crate::config::{Settings, Tls};
use crate::parse::{format_timeval, parse_timeval, plausible_time};
use crate::pool::Pool;
use crate::tls::{FtpTlsConnector, FtpTlsStream, TlsConfigs, tls_configs};

/// The suppaftp client type used for every connection (plain ones simply never start TLS).
pub(crate) type Ftp = ImplAsyncFtpStream<FtpTlsStream>;

/// A data connection of [`Ftp`].
pub(crate) type Transfer = TransferStream<FtpTlsStream>;

/// Prefix of the temporary names uploads are written to; hidden from listings.
pub(crate) use cloudsync_core::TEMP_PREFIX;

/// What the server said it supports in its `FEAT` reply (plus what we probed).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Features {
    pub(crate) mlsd: bool,
    pub(crate) mlst: bool,
    pub(crate) mfmt: bool,
    pub(crate) mdtm: bool,
    pub(crate) size: bool,
    pub(crate) epsv: bool,
    pub(crate) utf8: bool,
    /// `MDTM YYYYMMDDhhmmss path` sets the modtime (vsftpd's `mdtm_write`); probed at open.
    pub(crate) mdtm_write: bool,
}

impl Features {
    fn from_feat(feat: &suppaftp::types::Features) -> Self {
        let has = |name: &str| feat.keys().any(|k| k.eq_ignore_ascii_case(name));
        Features {
            mlsd: has("MLSD") || has("MLST"),
            mlst: has("MLST"),
            mfmt: has("MFMT"),
            mdtm: has("MDTM"),
            size: has("SIZE"),
            epsv: has("EPSV"),
            utf8: has("UTF8"),
            mdtm_write: false,
        }
    }
}

/// How to open new control connections: address, credentials, TLS, mode.
pub(crate) struct Connector {
    pub(crate) settings: Settings,
    tls: Option<TlsConfigs>,
    /// Set once a server refused TLS 1.2: use TLS 1.3 from then on.
    tls13: std::sync::atomic::AtomicBool,
    /// Filled in once the first connection has read `FEAT`.
    pub(crate) features: std::sync::OnceLock<Features>,
}

impl std::fmt::Debug for Connector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connector")
            .field("settings", &self.settings)
            .field("features", &self.features.get())
            .finish_non_exhaustive()
    }
}

fn timed_out(what: &str, after: Duration) -> Error {
    Error::new(
        ErrorKind::Transient,
        format!("{what} timed out after {} s", after.as_secs()),
    )
}

impl Connector {
    /// Prepares TLS (reading `ca_file` and the system's roots) for `settings`.
    pub(crate) fn new(settings: Settings) -> Result<Self> {
        let tls = match settings.tls {
            Tls::None => None,
            Tls::Explicit | Tls::Implicit => Some(tls_configs(&settings)?),
        };
        Ok(Connector {
            settings,
            tls,
            tls13: std::sync::atomic::AtomicBool::new(false),
            features: std::sync::OnceLock::new(),
        })
    }

    /// A TLS connector for one control connection and its data connections.
    ///
    /// Each control connection gets its own session cache, so its data connections resume
    /// *its* TLS session (what servers that require session reuse check), never another
    /// connection's. TLS 1.2 comes first: its session can be resumed by any number of data
    /// connections, while TLS 1.3 tickets are single-use and servers do not reliably send new
    /// ones on upload connections, so uploads would eventually fail the reuse check.
    fn rustls(&self, tls13: bool) -> Option<FtpTlsConnector> {
        self.tls.as_ref().map(|configs| {
            let base = if tls13 { &configs.any } else { &configs.tls12 };
            let mut config = rustls::ClientConfig::clone(base);
            config.resumption = rustls::client::Resumption::store(Arc::new(
                rustls::client::ClientSessionMemoryCache::new(16),
            ));
            FtpTlsConnector::new(Arc::new(config))
        })
    }

    /// Opens, secures and logs in one control connection, then sets `TYPE I`, UTF-8 names and
    /// the passive mode. The first connection also reads `FEAT`.
    pub(crate) async fn connect(&self) -> Result<Conn> {
        use std::sync::atomic::Ordering;
        let s = &self.settings;
        let t = s.timeout;
        let tls13 = self.tls13.load(Ordering::Relaxed);
        let (ftp, data_tls) = match self.open_session(tls13).await {
            Ok(ftp) => ftp,
            // The server may speak only TLS 1.3: try once more allowing it.
            Err(Session::Tls(_)) if !tls13 => match self.open_session(true).await {
                Ok(ftp) => {
                    tracing::debug!(host = %s.host, "server refused TLS 1.2; using TLS 1.3");
                    self.tls13.store(true, Ordering::Relaxed);
                    ftp
                }
                Err(Session::Tls(e) | Session::Other(e)) => return Err(e),
            },
            Err(Session::Tls(e) | Session::Other(e)) => return Err(e),
        };
        let mut ftp = ftp.passive_stream_builder(move |addr: SocketAddr| {
            Box::pin(async move {
                match tokio::time::timeout(t, TcpStream::connect(addr)).await {
                    Ok(r) => r.map_err(FtpError::ConnectionError),
                    Err(_) => Err(FtpError::ConnectionError(std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        "data connection timed out",
                    ))),
                }
            })
        });
        tokio::time::timeout(t, ftp.login(s.user.as_str(), s.password.as_str()))
            .await
            .map_err(|_| timed_out("login", t))?
            .map_err(|e| match e {
                // A refused USER or PASS (530 and the like).
                FtpError::UnexpectedResponse(r) if reply_code(&r) >= 500 => Error::new(
                    ErrorKind::Auth,
                    format!("login as {:?} refused: {}", s.user, reply_text(&r)),
                )
                .with_operation("login"),
                e => parse_error(e).with_operation("login"),
            })?;
        let mut conn = Conn {
            ftp,
            broken: false,
            timeout: t,
            last_used: Instant::now(),
            epsv: false,
            data_tls: data_tls.map(|tls| (tls, s.host.clone())),
            moved: false,
        };
        let features = match self.features.get() {
            Some(f) => f.clone(),
            None => {
                let feat = conn.feat().await?;
                let _ = self.features.set(feat.clone());
                feat
            }
        };
        if features.utf8 {
            // Some servers (vsftpd) only accept it when already on; a refusal is harmless.
            let _ = conn.custom("OPTS UTF8 ON", &[200, 202]).await;
            conn.broken_check()?;
        }
        let r = tokio::time::timeout(t, conn.ftp.transfer_type(FileType::Binary)).await;
        conn.check(r, "type", "")?;
        let mode = if features.epsv && !s.disable_epsv {
            Mode::ExtendedPassive
        } else {
            Mode::Passive
        };
        conn.ftp.set_mode(mode);
        conn.epsv = mode == Mode::ExtendedPassive;
        // Always connect to the control connection's address for PASV data connections: a
        // server behind NAT often announces its private address, and a hostile one could
        // point us at a third host (curl does the same by default).
        conn.ftp.set_passive_nat_workaround(true);
        Ok(conn)
    }

    /// Connects, reads the greeting and sets up TLS as configured; also returns the TLS
    /// connector for the session's data connections.
    async fn open_session(
        &self,
        tls13: bool,
    ) -> std::result::Result<(Ftp, Option<FtpTlsConnector>), Session> {
        let s = &self.settings;
        let t = s.timeout;
        let addr = self.resolve().await.map_err(Session::Other)?;
        let tcp = tokio::time::timeout(t, TcpStream::connect(addr))
            .await
            .map_err(|_| Session::Other(timed_out("connect", t)))?
            .map_err(|e| Session::Other(Error::from(e).with_operation("connect")))?;
        let _ = tcp.set_nodelay(true);
        let domain = s.host.as_str();
        match (s.tls, self.rustls(tls13)) {
            (Tls::Implicit, Some(tls)) => {
                drop(tcp);
                let data = tls.clone();
                tokio::time::timeout(t, Ftp::connect_secure_implicit(addr, tls, domain))
                    .await
                    .map_err(|_| Session::Other(timed_out("TLS handshake", t)))?
                    .map_err(|e| connect_error(e, "implicit TLS handshake"))
                    .map(|ftp| (ftp, Some(data)))
            }
            (tls_mode, tls) => {
                let ftp = tokio::time::timeout(t, Ftp::connect_with_stream(tcp))
                    .await
                    .map_err(|_| Session::Other(timed_out("greeting", t)))?
                    .map_err(|e| connect_error(e, "greeting"))?;
                match (tls_mode, tls) {
                    (Tls::Explicit, Some(tls)) => {
                        let data = tls.clone();
                        tokio::time::timeout(t, ftp.into_secure(tls, domain))
                            .await
                            .map_err(|_| Session::Other(timed_out("AUTH TLS", t)))?
                            .map_err(|e| connect_error(e, "AUTH TLS"))
                            .map(|ftp| (ftp, Some(data)))
                    }
                    _ => Ok((ftp, None)),
                }
            }
        }
    }

    async fn resolve(&self) -> Result<SocketAddr> {
        let s = &self.settings;
        let t = s.timeout;
        let mut addrs = tokio::time::timeout(t, tokio::net::lookup_host((s.host.as_str(), s.port)))
            .await
            .map_err(|_| timed_out("name lookup", t))?
            .map_err(|e| {
                Error::new(
                    ErrorKind::Transient,
                    format!("cannot resolve {}: {e}", s.host),
                )
                .with_source(e)
            })?;
        addrs.next().ok_or_else(|| {
            Error::new(
                ErrorKind::ConfigInvalid,
                format!("host {:?} has no address", s.host),
            )
        })
    }
}

/// Why a session could not be opened: TLS failed (worth one more try with other protocol
/// versions), or anything else.
enum Session {
    Tls(Error),
    Other(Error),
}

/// An error while connecting: TLS failures (untrusted certificate, no common protocol) are
/// [`ErrorKind::Auth`] and not retried; everything else maps as usual.
fn connect_error(e: FtpError, step: &'static str) -> Session {
    match e {
        FtpError::SecureError(msg) => Session::Tls(
            Error::new(
                ErrorKind::Auth,
                format!(
                    "TLS with the server failed: {msg} (set `ca_file` to trust a private certificate)"
                ),
            )
            .with_operation(step),
        ),
        e => Session::Other(parse_error(e).with_operation(step)),
    }
}

/// The numeric reply code of a response (suppaftp folds codes it does not know into
/// `Status::Unknown`; the code is still the start of the reply's last line).
pub(crate) fn reply_code(r: &suppaftp::types::Response) -> u32 {
    if r.status != Status::Unknown {
        return r.status.code();
    }
    let last = r
        .body
        .split(|b| *b == b'\n')
        .rfind(|l| l.len() >= 3)
        .unwrap_or(&r.body);
    std::str::from_utf8(last.get(..3).unwrap_or_default())
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

fn reply_text(r: &suppaftp::types::Response) -> String {
    String::from_utf8_lossy(&r.body).trim().to_owned()
}

/// The kind of a negative FTP reply.
///
/// FTP has one code (550) for "no such file" and "permission denied", and servers word it
/// loosely (vsftpd says just "Failed to change directory." for both), so 550 and 551 are
/// [`ErrorKind::PermissionDenied`] here: never [`ErrorKind::NotFound`], which the engine takes
/// as known absence. Callers that need to tell a missing path apart confirm it from the
/// parent's listing ([`Conn::confirm_not_found`]).
pub(crate) fn reply_kind(code: u32) -> ErrorKind {
    match code {
        421 | 425 | 426 | 450 | 451 => ErrorKind::Transient,
        452 => ErrorKind::QuotaExceeded,
        430 | 530 | 532 => ErrorKind::Auth,
        434 => ErrorKind::Transient,
        500 | 502 | 504 => ErrorKind::Unsupported,
        501 | 553 => ErrorKind::InvalidInput,
        503 => ErrorKind::Protocol,
        552 => ErrorKind::QuotaExceeded,
        550 | 551 => ErrorKind::PermissionDenied,
        400..=499 => ErrorKind::Transient,
        _ => ErrorKind::Unexpected,
    }
}

/// Maps a suppaftp error to an [`Error`]: reply codes by [`reply_kind`], socket errors by their
/// I/O kind (dropped connections are temporary), malformed replies as protocol errors.
pub(crate) fn parse_error(e: FtpError) -> Error {
    match e {
        FtpError::UnexpectedResponse(r) => {
            let code = reply_code(&r);
            let text = reply_text(&r);
            let kind = reply_kind(code);
            let temporary = (400..500).contains(&code) && kind != ErrorKind::QuotaExceeded;
            Error::new(kind, format!("server replied {text:?}"))
                .set_temporary(temporary || kind == ErrorKind::Transient)
        }
        FtpError::ConnectionError(io) => {
            let e = Error::from(io);
            // A dropped or reset connection mid-protocol: retrying on a new one may succeed.
            let temporary = matches!(e.kind(), ErrorKind::Transient | ErrorKind::Io);
            e.set_temporary(temporary)
        }
        FtpError::SecureError(msg) => Error::new(
            ErrorKind::Transient,
            format!("TLS on the data connection failed: {msg}"),
        ),
        FtpError::BadResponse => {
            Error::new(ErrorKind::Protocol, "malformed reply from the server").set_temporary(true)
        }
        FtpError::InvalidAddress(a) => Error::new(
            ErrorKind::Protocol,
            format!("server sent an invalid passive address: {a}"),
        )
        .with_source(a),
        FtpError::DataConnectionAlreadyOpen => Error::new(
            ErrorKind::Unexpected,
            "a data connection is already open on this control connection",
        ),
    }
}

/// Whether an error leaves the control connection usable (the server answered with a reply).
fn is_reply(e: &FtpError) -> bool {
    matches!(e, FtpError::UnexpectedResponse(_))
}

/// One logged-in control connection.
///
/// Every call has the per-step timeout. A call that fails without a server reply (timeout,
/// socket error, garbled reply) marks the connection broken, and the pool drops it.
pub(crate) struct Conn {
    pub(crate) ftp: Ftp,
    /// Set when the connection must not be reused.
    pub(crate) broken: bool,
    pub(crate) timeout: Duration,
    pub(crate) last_used: Instant,
    /// Whether data connections are opened with `EPSV` (else `PASV`).
    pub(crate) epsv: bool,
    /// TLS for data connections (this connection's session cache) and the server name.
    pub(crate) data_tls: Option<(FtpTlsConnector, String)>,
    /// The working directory was changed from `/` (by a `CWD` probe or `mkdir_all`), so it
    /// may be a directory another connection has removed since.
    pub(crate) moved: bool,
}

impl std::fmt::Debug for Conn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Conn")
            .field("broken", &self.broken)
            .finish_non_exhaustive()
    }
}

impl Conn {
    /// Turns the outcome of one timed step into a `Result`, marking the connection broken when
    /// the failure was not a server reply. `op` names the step in a timeout's message; the
    /// operation and the remote of the error are named by the `ErrorContext` layer.
    pub(crate) fn check<T>(
        &mut self,
        r: std::result::Result<suppaftp::FtpResult<T>, tokio::time::error::Elapsed>,
        op: &'static str,
        path: &str,
    ) -> Result<T> {
        self.last_used = Instant::now();
        let e = match r {
            Ok(Ok(v)) => return Ok(v),
            Err(_) => {
                self.broken = true;
                timed_out(op, self.timeout)
            }
            Ok(Err(e)) => {
                if !is_reply(&e) {
                    self.broken = true;
                }
                parse_error(e)
            }
        };
        Err(if path.is_empty() {
            e
        } else {
            e.with_path(path)
        })
    }

    fn broken_check(&self) -> Result<()> {
        if self.broken {
            return Err(Error::new(ErrorKind::Transient, "control connection lost"));
        }
        Ok(())
    }

    /// `FEAT`; a server without it has no features.
    async fn feat(&mut self) -> Result<Features> {
        let r = tokio::time::timeout(self.timeout, self.ftp.feat()).await;
        match self.check(r, "feat", "") {
            Ok(f) => Ok(Features::from_feat(&f)),
            Err(e) if !self.broken => {
                tracing::debug!("FEAT refused ({e}); assuming no extensions");
                Ok(Features::default())
            }
            Err(e) => Err(e),
        }
    }

    /// Sends a raw command and accepts the reply codes in `ok`.
    pub(crate) async fn custom(&mut self, command: &str, ok: &[u32]) -> Result<String> {
        let ok: Vec<Status> = ok.iter().map(|c| Status::from(*c)).collect();
        let r = tokio::time::timeout(self.timeout, self.ftp.custom_command(command, &ok)).await;
        let op = command.split(' ').next().unwrap_or("command");
        let op: &'static str = match op {
            "MFMT" => "set_modtime",
            "MDTM" => "modtime",
            "OPTS" => "opts",
            "MLST" => "stat",
            "SIZE" => "stat",
            _ => "command",
        };
        let resp = self.check(r, op, command.split_once(' ').map(|x| x.1).unwrap_or(""))?;
        Ok(reply_text(&resp))
    }

    /// `NOOP`, to check or keep a connection alive.
    pub(crate) async fn noop(&mut self) -> Result<()> {
        let r = tokio::time::timeout(self.timeout, self.ftp.noop()).await;
        self.check(r, "noop", "")
    }

    /// `PWD`.
    pub(crate) async fn pwd(&mut self) -> Result<String> {
        let r = tokio::time::timeout(self.timeout, self.ftp.pwd()).await;
        self.check(r, "pwd", "")
    }

    /// `CWD path`.
    pub(crate) async fn cwd(&mut self, path: &str) -> Result<()> {
        let r = tokio::time::timeout(self.timeout, self.ftp.cwd(path)).await;
        self.check(r, "cwd", path)?;
        self.moved = path != "/";
        Ok(())
    }

    /// `MKD path`.
    pub(crate) async fn mkd(&mut self, path: &str) -> Result<()> {
        let r = tokio::time::timeout(self.timeout, self.ftp.mkdir(path)).await;
        self.check(r, "mkdir", path)
    }

    /// `DELE path`.
    pub(crate) async fn dele(&mut self, path: &str) -> Result<()> {
        let r = tokio::time::timeout(self.timeout, self.ftp.rm(path)).await;
        self.check(r, "remove_file", path)
    }

    /// `RMD path`.
    pub(crate) async fn rmd(&mut self, path: &str) -> Result<()> {
        let r = tokio::time::timeout(self.timeout, self.ftp.rmdir(path)).await;
        self.check(r, "remove_dir", path)
    }

    /// `RNFR from` + `RNTO to`.
    pub(crate) async fn rename(&mut self, from: &str, to: &str) -> Result<()> {
        let r = tokio::time::timeout(self.timeout, self.ftp.rename(from, to)).await;
        self.check(r, "rename", to)
    }

    /// `SIZE path`.
    pub(crate) async fn size(&mut self, path: &str) -> Result<u64> {
        let text = self.custom(&format!("SIZE {path}"), &[213]).await?;
        text.get(4..)
            .and_then(|s| s.trim().parse::<u64>().ok())
            .filter(|n| *n <= crate::parse::MAX_SIZE)
            .ok_or_else(|| {
                Error::new(
                    ErrorKind::Protocol,
                    format!("malformed SIZE reply {text:?}"),
                )
                .with_path(path)
            })
    }

    /// `MDTM path`: the modtime in UTC.
    pub(crate) async fn mdtm(&mut self, path: &str) -> Result<OffsetDateTime> {
        let text = self.custom(&format!("MDTM {path}"), &[213]).await?;
        let t = text.get(4..).and_then(parse_timeval);
        t.and_then(plausible_time).ok_or_else(|| {
            Error::new(
                ErrorKind::Protocol,
                format!("malformed or out of range MDTM reply {text:?}"),
            )
            .with_path(path)
        })
    }

    /// Sets the modtime with `MFMT`, or with vsftpd's `MDTM time path` when `mdtm_write`.
    pub(crate) async fn set_mtime(
        &mut self,
        path: &str,
        t: OffsetDateTime,
        features: &Features,
    ) -> Result<()> {
        let stamp = format_timeval(t);
        if features.mfmt {
            self.custom(&format!("MFMT {stamp} {path}"), &[213, 200, 250])
                .await?;
        } else if features.mdtm_write {
            self.custom(&format!("MDTM {stamp} {path}"), &[213, 200, 250])
                .await?;
        } else {
            return Err(Error::unsupported("set_modtime", "this FTP server"));
        }
        Ok(())
    }

    /// `MLST path`: the facts line about one path.
    pub(crate) async fn mlst(&mut self, path: &str) -> Result<String> {
        let r = tokio::time::timeout(self.timeout, self.ftp.mlst(Some(path))).await;
        self.check(r, "stat", path)
    }

    /// Starts `RETR path` (after `REST offset` when `offset > 0`).
    pub(crate) async fn retr(&mut self, path: &str, offset: u64) -> Result<Transfer> {
        if offset > 0 {
            let off = usize::try_from(offset).map_err(|_| {
                Error::new(ErrorKind::InvalidInput, "read offset too large").with_path(path)
            })?;
            let r = tokio::time::timeout(self.timeout, self.ftp.resume_transfer(off)).await;
            self.check(r, "read", path)?;
        }
        let r = tokio::time::timeout(self.timeout, self.ftp.retr_as_stream(path)).await;
        self.check(r, "read", path)
    }

    /// Starts `STOR path`.
    pub(crate) async fn stor(&mut self, path: &str) -> Result<Transfer> {
        let r = tokio::time::timeout(self.timeout, self.ftp.put_with_stream(path)).await;
        self.check(r, "write", path)
    }

    /// `APPE path`: a data stream appended to the file (RFC 959; every server we test with
    /// has it).
    pub(crate) async fn appe(&mut self, path: &str) -> Result<Transfer> {
        let r = tokio::time::timeout(self.timeout, self.ftp.append_with_stream(path)).await;
        self.check(r, "write_at", path)
    }
}

/// Maps [`RemotePath`]s to absolute server paths below the remote's root.
#[derive(Debug, Clone)]
pub(crate) struct Paths {
    /// Absolute root without a trailing slash (`""` for the server's `/`).
    root: String,
}

impl Paths {
    /// `root` as configured, resolved against the login directory `home` when relative.
    pub(crate) fn new(root: &str, home: &str) -> Self {
        let joined = if root.starts_with('/') {
            root.to_owned()
        } else {
            format!("{}/{}", home.trim_end_matches('/'), root)
        };
        let mut parts: Vec<&str> = Vec::new();
        for seg in joined.split('/') {
            match seg {
                "" | "." => {}
                ".." => {
                    parts.pop();
                }
                s => parts.push(s),
            }
        }
        let root = parts.iter().fold(String::new(), |mut acc, p| {
            acc.push('/');
            acc.push_str(p);
            acc
        });
        Paths { root }
    }

    /// The absolute root without a trailing slash (`""` for the server's `/`).
    pub(crate) fn root(&self) -> &str {
        &self.root
    }

    /// The absolute path of `p` (`/` for the root of a remote at the server's `/`).
    ///
    /// Names with CR or LF cannot be sent in an FTP command and are [`ErrorKind::InvalidInput`].
    pub(crate) fn abs(&self, p: &RemotePath) -> Result<String> {
        if p.as_str().contains(['\r', '\n']) {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                "FTP cannot handle names containing line breaks",
            )
            .with_path(p));
        }
        Ok(match (self.root.is_empty(), p.is_root()) {
            (true, true) => "/".to_owned(),
            (false, true) => self.root.clone(),
            (_, false) => format!("{}/{}", self.root, p.as_str()),
        })
    }

    /// The absolute paths of every directory from the server's `/` down to `abs` (excluded `/`).
    pub(crate) fn ancestors_and_self(abs: &str) -> Vec<String> {
        let mut out = Vec::new();
        let mut cur = String::new();
        for seg in abs.split('/').filter(|s| !s.is_empty()) {
            cur.push('/');
            cur.push_str(seg);
            out.push(cur.clone());
        }
        out
    }
}

// ---- The shared state ----

/// Shared state of a remote: the session pool, the root, what the server supports, and how the
/// remote describes itself. Every role function (lister, reader, writer, deleter) works on it.
pub(crate) struct FtpCore {
    pub(crate) pool: Arc<Pool>,
    pub(crate) paths: Paths,
    pub(crate) features: Features,
    pub(crate) describe: String,
    pub(crate) location: Location,
}

impl FtpCore {
    /// Connects once (to read `FEAT`, the login directory and, on servers without `MFMT`,
    /// whether `MDTM` can set times), then keeps that session in the pool.
    pub(crate) async fn connect(settings: Settings) -> Result<Self> {
        let describe = describe(&settings);
        let (settings_host, settings_port) = (settings.host.clone(), settings.port);
        let root = settings.root.clone();
        let disable_mlsd = settings.disable_mlsd;
        let connector = Connector::new(settings).map_err(|e| e.with_remote(describe.clone()))?;
        let pool = Pool::new(connector);
        let mut conn = pool
            .connector
            .connect()
            .await
            .map_err(|e| e.with_remote(describe.clone()))?;
        // The login directory decides where a relative root is: never guess it (a `PWD` lost to
        // a reset would put the root under `/`). One fresh session is tried, then the open fails.
        let home = match conn.pwd().await {
            Ok(home) => home,
            Err(_) if root.starts_with('/') => "/".to_owned(),
            Err(first) => {
                let mut again = pool
                    .connector
                    .connect()
                    .await
                    .map_err(|e| e.with_remote(describe.clone()))?;
                match again.pwd().await {
                    Ok(home) => home,
                    Err(_) => return Err(first.with_remote(describe.clone())),
                }
            }
        };
        let paths = Paths::new(&root, &home);
        let location = location(&settings_host, settings_port, &paths);
        let mut features = pool.connector.features.get().cloned().unwrap_or_default();
        if disable_mlsd {
            features.mlsd = false;
            features.mlst = false;
        }
        if !features.mfmt && features.mdtm {
            features.mdtm_write = probe_mdtm_write(&mut conn, &paths).await;
        }
        tracing::debug!(remote = %describe, ?features, "FTP server features");
        if !conn.broken {
            pool.put_idle(conn);
        }
        Ok(FtpCore {
            pool,
            paths,
            features,
            describe,
            location,
        })
    }
}

fn describe(s: &Settings) -> String {
    let scheme = match s.tls {
        Tls::None => "ftp",
        _ => "ftps",
    };
    let host = if s.host.contains(':') {
        format!("[{}]", s.host)
    } else {
        s.host.clone()
    };
    let root = if s.root.is_empty() || s.root.starts_with('/') {
        s.root.clone()
    } else {
        format!("/{}", s.root)
    };
    format!("{scheme}://{}@{host}:{}{root}", s.user, s.port)
}

/// The canonical place of the remote's root: `ftp://host:port` plus the absolute root. `ftp`
/// and `ftps` (explicit or implicit TLS) share the space: they are two ways into one server
/// and its one file tree, so only the host and port tell servers apart. The user is left out
/// too (two logins may see one directory; refusing a false overlap is safer than missing a
/// true one).
fn location(host: &str, port: u16, paths: &Paths) -> Location {
    Location::network("ftp", host, Some(port), paths.root())
}

/// Whether `MDTM YYYYMMDDhhmmss path` sets a file's time (vsftpd with `mdtm_write`): writes an
/// empty hidden file in the root, sets and reads back its time, removes it. Any failure (a
/// read-only or missing root included) means no.
async fn probe_mdtm_write(conn: &mut Conn, paths: &Paths) -> bool {
    let name = format!("{TEMP_PREFIX}{:016x}.probe", fastrand::u64(..));
    let Ok(abs) = paths.abs(&RemotePath::root()).map(|r| {
        if r == "/" {
            format!("/{name}")
        } else {
            format!("{r}/{name}")
        }
    }) else {
        return false;
    };
    let Ok(transfer) = conn.stor(&abs).await else {
        return false;
    };
    conn.broken = true;
    let finished = tokio::time::timeout(conn.timeout, transfer.finish()).await;
    if conn.check(finished, "write", &abs).is_err() {
        return false;
    }
    conn.broken = false;
    let want =
        OffsetDateTime::from_unix_timestamp(946_782_245).unwrap_or(OffsetDateTime::UNIX_EPOCH);
    let set = conn
        .custom(
            &format!("MDTM {} {abs}", format_timeval(want)),
            &[213, 200, 250],
        )
        .await
        .is_ok();
    let works = set && matches!(conn.mdtm(&abs).await, Ok(t) if t == want);
    if !conn.broken {
        let _ = conn.dele(&abs).await;
    }
    works
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reply_kinds() {
        // 550 never means "known absent" on its own.
        assert_eq!(reply_kind(550), ErrorKind::PermissionDenied);
        assert_eq!(reply_kind(551), ErrorKind::PermissionDenied);
        assert_eq!(reply_kind(421), ErrorKind::Transient);
        assert_eq!(reply_kind(425), ErrorKind::Transient);
        assert_eq!(reply_kind(426), ErrorKind::Transient);
        assert_eq!(reply_kind(530), ErrorKind::Auth);
        assert_eq!(reply_kind(552), ErrorKind::QuotaExceeded);
        assert_eq!(reply_kind(502), ErrorKind::Unsupported);
    }

    #[test]
    fn temporary_replies() {
        let resp = |code: u32, text: &str| {
            FtpError::UnexpectedResponse(suppaftp::types::Response::new(
                Status::from(code),
                format!("{code} {text}\r\n").into_bytes(),
            ))
        };
        let e = parse_error(resp(426, "Connection closed; transfer aborted."));
        assert!(e.is_retryable());
        assert_eq!(e.kind(), ErrorKind::Transient);
        let e = parse_error(resp(550, "nope"));
        assert!(!e.is_retryable());
        // A code suppaftp does not know keeps its number.
        let e = parse_error(resp(522, "SSL connection failed"));
        assert_eq!(e.kind(), ErrorKind::Unexpected);
        let e = parse_error(resp(431, "Need some unavailable resource"));
        assert!(e.is_retryable());
    }

    #[test]
    fn paths() {
        let p = Paths::new("", "/home/u");
        assert_eq!(p.abs(&RemotePath::root()).unwrap(), "/home/u");
        assert_eq!(
            p.abs(&RemotePath::new("a b/c").unwrap()).unwrap(),
            "/home/u/a b/c"
        );
        let p = Paths::new("/", "/home/u");
        assert_eq!(p.abs(&RemotePath::root()).unwrap(), "/");
        assert_eq!(p.abs(&RemotePath::new("x").unwrap()).unwrap(), "/x");
        let p = Paths::new("sub/../data/", "/");
        assert_eq!(p.abs(&RemotePath::root()).unwrap(), "/data");
        assert!(p.abs(&RemotePath::new("a\nb").unwrap()).is_err());
        assert_eq!(Paths::ancestors_and_self("/a/b"), ["/a", "/a/b"]);
    }

    /// The location of a URL's remote, with `home` as the login directory.
    fn loc(url: &str, home: &str) -> Location {
        let cfg = crate::FtpConfig::from_url(&url::Url::parse(url).unwrap()).unwrap();
        let s = cfg.validate().unwrap();
        location(&s.host, s.port, &Paths::new(&s.root, home))
    }

    #[test]
    fn location_is_server_port_and_absolute_root() {
        let a = loc("ftp://nas/backup", "/home/me");
        // Same server and port: the scheme, the user, the host's case and the spelling of
        // the root do not matter.
        assert_eq!(a, loc("ftps://someone@NAS:21//home/me/backup/", "/"));
        assert_eq!(a, loc("ftp://nas:21/x/../backup", "/home/me"));
        assert_eq!(
            loc("ftps://nas/x?tls=implicit", "/"),
            loc("ftp://nas:990/x", "/")
        );
        assert!(a.contains(&loc("ftp://nas/backup/2024", "/home/me")));
        // Another port or host is another place.
        assert_ne!(a, loc("ftp://nas:2121/backup", "/home/me"));
        assert_ne!(a, loc("ftp://nas2/backup", "/home/me"));
        // A password (from the config: URLs cannot carry one) is not part of the place.
        let s = crate::FtpConfig::new("nas")
            .with_user("u")
            .with_password("hunter2")
            .with_root("backup")
            .validate()
            .unwrap();
        let with_password = location(&s.host, s.port, &Paths::new(&s.root, "/"));
        assert_eq!(with_password, loc("ftp://u@nas/backup", "/"));
        assert!(!with_password.to_string().contains("hunter2"));
    }
}
