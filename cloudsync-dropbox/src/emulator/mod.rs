//! An in-process emulator of the Dropbox HTTP API v2 on 127.0.0.1 (feature `emulator`), so
//! applications can test their Dropbox code offline.
//!
//! It serves the RPC endpoints (`files/list_folder` and `/continue`, `files/get_metadata`,
//! `files/delete_v2`, `files/create_folder_v2`, `files/copy_v2`, `files/move_v2`), the content
//! endpoints (`files/upload`, `files/upload_session/start`, `append_v2`, `finish`,
//! `files/download` with `Range`), `files/upload_session/finish_batch_v2`,
//! `users/get_space_usage` and the OAuth2 token endpoint (`refresh_token` and
//! `authorization_code` with PKCE) with the documented shapes: arguments in a JSON body or in
//! a header-safe `Dropbox-API-Arg` header (checked strictly: a missing or malformed argument
//! is a 400, as on the service), errors as 409 with `error_summary` and a `.tag` union,
//! `401 expired_access_token` for an expired token. Paths are case-insensitive with their
//! display case preserved; listings page by `limit` with cursors; files carry content hashes;
//! upload sessions check offsets (`incorrect_offset` with `correct_offset`), answer
//! `not_found` once unknown or past their lifetime (7 days, [`EmulatorOptions::with_session_lifetime`],
//! [`Emulator::expire_sessions`]) and `closed` once closed, and refuse a request body above
//! 150 MB (`payload_too_large`). Concurrent sessions (`session_type: concurrent`, whose appends
//! must be multiples of 4194304 bytes and may come in any order) are not emulated and are
//! refused with a 400.
//!
//! Documented behaviours a naive client gets wrong are reproduced too, each citing the
//! sentence of `files.stone` (dropbox/dropbox-api-spec) or the help center it follows: an
//! upload of identical content writes nothing and keeps `client_modified`; a case-only move
//! is refused (`duplicated_or_nested_paths`); names Dropbox will not store are refused
//! (`disallowed_name`, `malformed_path`); files that can only be exported list with
//! `is_downloadable: false` and refuse downloads ([`Emulator::put_non_downloadable`]); a
//! batch commit arriving while another runs is refused ([`EmulatorOptions::with_batch_commit_time`]);
//! cursors can be reset ([`Emulator::invalidate_cursors`]); pages can come empty or short
//! while `has_more` is true ([`EmulatorOptions::with_ragged_pages`]); and a request can be
//! carried out with its answer lost ([`Fault::DropAfter`]).
//!
//! Faults can be injected per endpoint, N times: 429s with `Retry-After`, 5xx answers,
//! dropped connections, expired tokens, canned answers of a misbehaving server and bodies that
//! trickle for ever.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use cloudsync_core::{bytes_stream, Remote, RemotePath, WriteMeta};
//! use cloudsync_dropbox::DropboxRemote;
//! use cloudsync_dropbox::emulator::{Emulator, Fault};
//!
//! let emu = Emulator::start()?;
//! let remote = DropboxRemote::new(emu.config())?;
//! emu.inject("files/upload", Fault::Status(503), 1);
//! let path = RemotePath::new("a/b.txt")?;
//! let err = remote.write(&path, bytes_stream("hi"), WriteMeta::default()).await.unwrap_err();
//! assert!(err.is_retryable());
//! remote.write(&path, bytes_stream("hi"), WriteMeta::default()).await?;
//! assert_eq!(emu.file("/A/B.TXT").as_deref(), Some(&b"hi"[..]));
//! # Ok(())
//! # }
//! ```

mod http;
mod state;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;

use crate::config::DropboxConfig;
use state::State;

/// A failure the emulator produces instead of serving a request.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Fault {
    /// `429` with `too_many_requests` and `Retry-After: retry_after` (seconds).
    TooManyRequests {
        /// Seconds the client is told to wait.
        retry_after: u64,
    },
    /// `429` with `too_many_write_operations` (namespace lock contention) and `Retry-After`.
    TooManyWriteOperations {
        /// Seconds the client is told to wait.
        retry_after: u64,
    },
    /// This HTTP status (500, 503, ...) with a plain-text body.
    Status(u16),
    /// The connection is closed without an answer; the request has no effect.
    Drop,
    /// The request is carried out, then the connection is closed before the answer: the
    /// server did the work and the client sees a lost connection. files.stone,
    /// UploadSessionLookupError.incorrect_offset: "This error may occur when a previous
    /// request was received and processed successfully but the client did not receive the
    /// response, e.g. due to a network error."
    DropAfter,
    /// Every access token issued so far expires before the request is checked.
    ExpireToken,
    /// This exact answer, whatever the request: a misbehaving or hostile server (a listing
    /// page that never advances, absurd sizes, dates or delays, a huge body).
    Answer {
        /// HTTP status.
        status: u16,
        /// Extra headers (`Retry-After`, ...); `Content-Type` is `application/json`.
        headers: Vec<(String, String)>,
        /// The body, sent as is.
        body: Bytes,
    },
    /// `200` headers at once, then a body of one space every 100 ms that never ends: a
    /// server that stalls without ever going idle.
    Trickle,
}

/// Settings of an [`Emulator`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct EmulatorOptions {
    /// The app key clients must send as `client_id`.
    pub app_key: String,
    /// The app secret, when the emulated app has one (PKCE clients may omit it).
    pub app_secret: Option<String>,
    /// Lifetime of issued access tokens.
    pub token_lifetime: Duration,
    /// Entries per listing page when the request sets no `limit`.
    pub default_list_limit: usize,
    /// Largest body one upload call accepts (150 MiB on the service).
    pub max_upload: u64,
    /// How long an upload session can be used (7 days on the service); after it, the session
    /// answers `not_found`.
    pub session_lifetime: Duration,
    /// Bytes the account may hold (2 GiB, as a Basic account); writes beyond it fail with
    /// `insufficient_space`.
    pub quota: u64,
    /// Listing pages come empty and short while `has_more` is true (off by default).
    pub ragged_pages: bool,
    /// How long a batch commit (`upload_session/finish_batch_v2`) takes; one arriving while
    /// another is under way is refused with `too_many_write_operations`.
    pub batch_commit_time: Duration,
}

impl Default for EmulatorOptions {
    fn default() -> Self {
        EmulatorOptions {
            app_key: "emulator-app-key".to_owned(),
            app_secret: None,
            token_lifetime: Duration::from_secs(4 * 3600),
            default_list_limit: 500,
            max_upload: 150 * 1024 * 1024,
            // files.stone, route upload_session/start: "An upload session can be used for a
            // maximum of 7 days."
            session_lifetime: Duration::from_secs(7 * 24 * 3600),
            quota: 2 * 1024 * 1024 * 1024,
            ragged_pages: false,
            batch_commit_time: Duration::ZERO,
        }
    }
}

impl EmulatorOptions {
    /// Sets how long an upload session can be used.
    pub fn with_session_lifetime(mut self, lifetime: Duration) -> Self {
        self.session_lifetime = lifetime;
        self
    }

    /// Sets the lifetime of issued access tokens.
    pub fn with_token_lifetime(mut self, lifetime: Duration) -> Self {
        self.token_lifetime = lifetime;
        self
    }

    /// Gives the emulated app a secret (clients may still omit it, as PKCE clients do).
    pub fn with_app_secret(mut self, secret: impl Into<String>) -> Self {
        self.app_secret = Some(secret.into());
        self
    }

    /// Sets the account's quota in bytes.
    pub fn with_quota(mut self, bytes: u64) -> Self {
        self.quota = bytes;
        self
    }

    /// Makes listings hand out empty and short pages with `has_more: true`. files.stone,
    /// ListFolderResult.has_more: "If true, then there are more entries available. Pass the
    /// cursor to list_folder/continue to retrieve the rest." and ListFolderArg.limit: "This is
    /// an approximate number and there can be slightly more entries returned in some cases."
    /// Nothing promises a page is full, or not empty, while more follow.
    pub fn with_ragged_pages(mut self, on: bool) -> Self {
        self.ragged_pages = on;
        self
    }

    /// Makes each batch commit take `time`, so overlapping commits can be seen (and refused).
    pub fn with_batch_commit_time(mut self, time: Duration) -> Self {
        self.batch_commit_time = time;
        self
    }

    /// Sets the page size of listings that ask for no `limit`.
    pub fn with_default_list_limit(mut self, limit: usize) -> Self {
        self.default_list_limit = limit.max(1);
        self
    }
}

/// What the server threads share.
pub(crate) struct Shared {
    pub(crate) opts: EmulatorOptions,
    pub(crate) refresh_token: String,
    state: Mutex<State>,
    /// Endpoint, fault, requests to let through first, times.
    faults: Mutex<Vec<(String, Fault, usize, usize)>>,
    counts: Mutex<HashMap<String, usize>>,
    /// Request body bytes received per endpoint.
    bytes: Mutex<HashMap<String, u64>>,
    /// Batch commits under way.
    pub(crate) batches_in_flight: std::sync::atomic::AtomicUsize,
    /// Batch commits that arrived while another was under way.
    pub(crate) overlapping_batches: std::sync::atomic::AtomicUsize,
}

impl Shared {
    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn count(&self, endpoint: &str, body_len: usize) {
        let mut c = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        *c.entry(endpoint.to_owned()).or_default() += 1;
        let mut b = self.bytes.lock().unwrap_or_else(|p| p.into_inner());
        *b.entry(endpoint.to_owned()).or_default() += body_len as u64;
    }

    pub(crate) fn take_fault(&self, endpoint: &str) -> Option<Fault> {
        let mut faults = self.faults.lock().unwrap_or_else(|p| p.into_inner());
        let slot = faults
            .iter_mut()
            .find(|(e, _, _, n)| e == endpoint && *n > 0)?;
        if slot.2 > 0 {
            slot.2 -= 1;
            return None;
        }
        slot.3 -= 1;
        Some(slot.1.clone())
    }
}

/// A running emulator. It serves until dropped.
pub struct Emulator {
    shared: Arc<Shared>,
    addr: SocketAddr,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
}

impl std::fmt::Debug for Emulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Emulator")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

impl Emulator {
    /// Starts an emulator with default options on an ephemeral port of 127.0.0.1, served by
    /// its own thread (so it outlives any one async runtime).
    pub fn start() -> std::io::Result<Self> {
        Self::start_with(EmulatorOptions::default())
    }

    /// Starts an emulator with `opts`.
    pub fn start_with(opts: EmulatorOptions) -> std::io::Result<Self> {
        let std_listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        std_listener.set_nonblocking(true)?;
        let addr = std_listener.local_addr()?;
        let mut st = State::default();
        st.quota = Some(opts.quota);
        let refresh_token = st.opaque("emu-refresh-");
        let shared = Arc::new(Shared {
            opts,
            refresh_token,
            state: Mutex::new(st),
            faults: Mutex::new(Vec::new()),
            counts: Mutex::new(HashMap::new()),
            bytes: Mutex::new(HashMap::new()),
            batches_in_flight: Default::default(),
            overlapping_batches: Default::default(),
        });
        let (tx, mut rx) = tokio::sync::oneshot::channel::<()>();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let served = shared.clone();
        std::thread::Builder::new()
            .name(format!("dropbox-emulator-{}", addr.port()))
            .spawn(move || {
                runtime.block_on(async move {
                    let Ok(listener) = tokio::net::TcpListener::from_std(std_listener) else {
                        return;
                    };
                    loop {
                        tokio::select! {
                            _ = &mut rx => break,
                            accepted = listener.accept() => {
                                let Ok((stream, _)) = accepted else { continue };
                                let shared = served.clone();
                                tokio::spawn(async move {
                                    let svc = service_fn(move |req| http::serve(shared.clone(), req));
                                    let _ = http1::Builder::new()
                                        .serve_connection(TokioIo::new(stream), svc)
                                        .await;
                                });
                            }
                        }
                    }
                });
            })?;
        Ok(Emulator {
            shared,
            addr,
            shutdown: Some(tx),
        })
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Base URL of the RPC endpoints (`api_url`).
    pub fn api_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Base URL of the content endpoints (`content_url`).
    pub fn content_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The token endpoint (`token_url`).
    pub fn token_url(&self) -> String {
        format!("http://{}/oauth2/token", self.addr)
    }

    /// The app key clients must use.
    pub fn app_key(&self) -> &str {
        &self.shared.opts.app_key
    }

    /// The refresh token the emulator accepts.
    pub fn refresh_token(&self) -> &str {
        &self.shared.refresh_token
    }

    /// A client configuration for this emulator: its app key, refresh token and URLs.
    pub fn config(&self) -> DropboxConfig {
        let mut cfg = DropboxConfig::new(self.app_key())
            .with_refresh_token(self.refresh_token())
            .with_urls(self.api_url(), self.content_url(), self.token_url());
        if let Some(s) = &self.shared.opts.app_secret {
            cfg = cfg.with_app_secret(s.clone());
        }
        cfg
    }

    /// Makes the next `times` requests to `endpoint` (`"files/upload"`, `"oauth2/token"`)
    /// fail with `fault`.
    pub fn inject(&self, endpoint: &str, fault: Fault, times: usize) {
        self.inject_later(endpoint, fault, 0, times);
    }

    /// Lets the next `after` requests to `endpoint` through, then makes the `times` after them
    /// fail with `fault`.
    pub fn inject_later(&self, endpoint: &str, fault: Fault, after: usize, times: usize) {
        let mut faults = self.shared.faults.lock().unwrap_or_else(|p| p.into_inner());
        faults.push((endpoint.to_owned(), fault, after, times));
    }

    /// Removes every injected fault not used yet.
    pub fn clear_faults(&self) {
        self.shared
            .faults
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
    }

    /// Expires every access token issued so far (the next request with one gets
    /// `401 expired_access_token`).
    pub fn expire_tokens(&self) {
        self.shared.lock().expire_tokens();
    }

    /// Requests received for `endpoint` so far (including failed ones).
    pub fn requests(&self, endpoint: &str) -> usize {
        self.shared
            .counts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(endpoint)
            .copied()
            .unwrap_or(0)
    }

    /// Request body bytes received for `endpoint` so far (including failed requests).
    pub fn bytes_received(&self, endpoint: &str) -> u64 {
        self.shared
            .bytes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(endpoint)
            .copied()
            .unwrap_or(0)
    }

    /// Batch commits that arrived while another one was under way (each was refused with
    /// `too_many_write_operations`).
    pub fn overlapping_batch_commits(&self) -> usize {
        self.shared
            .overlapping_batches
            .load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Invalidates every listing cursor handed out so far: `list_folder/continue` with one of
    /// them answers `reset`. files.stone, ListFolderContinueError.reset: "Indicates that the
    /// cursor has been invalidated. Call list_folder to obtain a new cursor."
    pub fn invalidate_cursors(&self) {
        self.shared.lock().cursor_epoch += 1;
    }

    /// Puts a file that cannot be downloaded, only exported (as a Paper doc or a cloud doc
    /// is): listed with `is_downloadable: false` and `export_info`; `files/download` answers
    /// `unsupported_file`. files.stone, FileMetadata.is_downloadable: "If true, file can be
    /// downloaded directly; else the file must be exported."
    pub fn put_non_downloadable(&self, path: &str, data: impl Into<Bytes>) {
        let mut st = self.shared.lock();
        let now = st.format_now();
        let _ = st.write_file(path, data.into(), &state::WriteMode::Overwrite, Some(now));
        if let Some(n) = st.nodes.get_mut(&path.to_lowercase()) {
            n.downloadable = false;
        }
    }

    /// Registers an authorization (what the user's approval in the browser does) for a PKCE
    /// `code_challenge`; returns the code the redirect would carry.
    pub fn authorize(&self, code_challenge: &str) -> String {
        let mut st = self.shared.lock();
        let code = st.opaque("emu-code-");
        st.codes.insert(code.clone(), code_challenge.to_owned());
        code
    }

    /// The content of the file at `path` (any case), if there is one.
    pub fn file(&self, path: &str) -> Option<Bytes> {
        let st = self.shared.lock();
        st.nodes
            .get(&path.to_lowercase())
            .filter(|n| !n.folder)
            .map(|n| n.data.clone())
    }

    /// Paths (display case) of every file and folder, in order.
    pub fn paths(&self) -> Vec<String> {
        let st = self.shared.lock();
        st.nodes.values().map(|n| n.display.clone()).collect()
    }

    /// Upload sessions started and not finished.
    pub fn open_sessions(&self) -> usize {
        self.shared.lock().sessions.len()
    }

    /// Bytes each open upload session holds, by session id order.
    pub fn session_offsets(&self) -> Vec<u64> {
        let st = self.shared.lock();
        let mut v: Vec<(&String, u64)> = st
            .sessions
            .iter()
            .map(|(id, s)| (id, s.data.len() as u64))
            .collect();
        v.sort();
        v.into_iter().map(|(_, n)| n).collect()
    }

    /// Ages every open upload session past its lifetime, as if 7 days had passed: each then
    /// answers `not_found`.
    pub fn expire_sessions(&self) {
        for s in self.shared.lock().sessions.values_mut() {
            s.expired = true;
        }
    }

    /// Puts a file directly (bypassing the API), with `client_modified` now. As on the
    /// service, content identical to the stored file's writes nothing (its `client_modified`
    /// stays).
    pub fn put(&self, path: &str, data: impl Into<Bytes>) {
        let mut st = self.shared.lock();
        let now = st.format_now();
        let _ = st.write_file(path, data.into(), &state::WriteMode::Overwrite, Some(now));
    }
}
