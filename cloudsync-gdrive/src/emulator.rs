//! An in-process Google Drive API v3 emulator for tests (feature `emulator`).
//!
//! It serves, on 127.0.0.1 with an ephemeral port, the subset of the documented API the
//! backend uses, as strictly as the documentation describes it: `files.list` with the `q`
//! subset `'<id>' in parents`, `name = '…'`, `mimeType = '…'`/`!=`, `trashed = true|false`
//! joined by `and` (anything else is a 400), `pageSize` (≤ 1000) and `pageToken`; `files.get`
//! (metadata, or `alt=media` with `Range`); `files.create` and `files.update` (metadata,
//! `uploadType=multipart`, `uploadType=resumable` sessions with 256 KiB chunk rules and `308`
//! answers carrying `Range`); `files.copy`; `files.delete`; `files.emptyTrash`; `about`; the
//! `root` alias; MD5/SHA-1/SHA-256 checksums; duplicate names in a folder; and an OAuth 2.0
//! token endpoint (refresh-token grant) whose access tokens every other request must carry.
//!
//! Faults can be injected: error answers (403 with a reason, 429, 5xx), dropped connections
//! (a resumable chunk is then partly committed before the connection drops), canned answers of
//! a misbehaving server and bodies that trickle for ever.
//!
//! It also does what the real service is documented to do and a naive client gets wrong
//! (each setter cites its source): `files.list` pages are ragged by default, with empty and
//! short pages before the end ([`PageShape`]); shared drives ([`DriveEmulator::add_shared_drive`])
//! whose items are hidden without `includeItemsFromAllDrives=true` / `supportsAllDrives=true`,
//! and `files.emptyTrash` per drive; Google Docs (added with a Google MIME type) that cannot be
//! downloaded; names holding `/`; and, when switched on, a service account without storage
//! ([`DriveEmulator::set_service_account_without_storage`]), downloads that ignore `Range`
//! ([`DriveEmulator::set_ignore_range`]) and resumable sessions that never advance
//! ([`DriveEmulator::set_stall_uploads`]).
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> cloudsync_core::Result<()> {
//! use cloudsync_core::{bytes_stream, Remote, RemotePath, WriteMeta};
//! use cloudsync_gdrive::GdriveBackend;
//! use cloudsync_gdrive::emulator::DriveEmulator;
//!
//! let emu = DriveEmulator::start().await;
//! let drive = GdriveBackend::new(emu.config())?;
//! let path = RemotePath::new("a/b.txt")?;
//! drive.write(&path, bytes_stream("hi"), WriteMeta::default()).await?;
//! assert_eq!(drive.stat(&path).await?.size, 2);
//! # Ok(())
//! # }
//! ```

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::config::GdriveConfig;

/// The OAuth client id the emulator's token endpoint accepts.
pub const CLIENT_ID: &str = "emulator-client.apps.googleusercontent.com";
/// The refresh token the emulator's token endpoint accepts.
pub const REFRESH_TOKEN: &str = "emulator-refresh-token";

const FOLDER: &str = "application/vnd.google-apps.folder";
const QUANTUM: usize = 256 * 1024;

/// A fault to inject into matching requests.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Fault {
    /// Answer with this status and a Drive error body carrying `reason`
    /// (`userRateLimitExceeded`, `rateLimitExceeded`, `backendError`, ...).
    Status {
        /// HTTP status.
        status: u16,
        /// The `errors[0].reason` of the body.
        reason: String,
        /// A `Retry-After` header in seconds.
        retry_after: Option<u64>,
    },
    /// Drop the connection without an answer. A resumable-upload chunk is first committed in
    /// part (half of it), as when a connection breaks mid-transfer.
    Drop,
    /// This exact answer: a misbehaving or hostile server (a `nextPageToken` that never
    /// changes, a `308` with an absurd `Range`, an odd `expires_in`, a huge body, ...).
    Answer {
        /// HTTP status.
        status: u16,
        /// Extra headers (`Range`, `Retry-After`, ...); `Content-Type` is JSON.
        headers: Vec<(String, String)>,
        /// The body, sent as is.
        body: Bytes,
    },
    /// `200` headers at once, then a body of one space every 100 ms that never ends: a
    /// server that stalls without ever going idle.
    Trickle,
}

#[derive(Debug)]
struct Injected {
    method: String,
    path_contains: String,
    fault: Fault,
    times: u32,
    /// Matching requests to let through before the fault applies.
    skip: u32,
}

#[derive(Debug, Clone)]
struct FileRec {
    id: String,
    name: String,
    mime: String,
    parent: Option<String>,
    content: Bytes,
    modified: OffsetDateTime,
    trashed: bool,
}

#[derive(Debug)]
struct Session {
    /// The file whose content is replaced (`files.update`), or `None` to create one.
    target: Option<String>,
    meta: Value,
    data: Vec<u8>,
}

#[derive(Debug, Default)]
struct State {
    files: HashMap<String, FileRec>,
    order: Vec<String>,
    next_id: u64,
    tokens: Vec<String>,
    token_requests: usize,
    sessions: HashMap<String, Session>,
    faults: Vec<Injected>,
    requests: Vec<String>,
    base: String,
    /// Service accounts: email and RSA public key (PKCS#1 DER).
    service_accounts: Vec<(String, Vec<u8>)>,
    /// The ids of the shared drives (each is also the id of the drive's root folder).
    shared_drives: Vec<String>,
    /// How `files.list` cuts its answers into pages.
    pages: PageShape,
    /// The caller is a service account without storage of its own.
    no_storage: bool,
    /// Downloads ignore `Range` and send the whole content with `200`.
    ignore_range: bool,
    /// Resumable sessions commit nothing: every chunk is answered `308` without progress.
    stall_uploads: bool,
    /// The request being answered says `supportsAllDrives=true`.
    all_drives: bool,
}

/// How `files.list` cuts its answers into pages ([`DriveEmulator::set_page_shape`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum PageShape {
    /// Pages are ragged (the default): the first page of every listing is empty, then pages
    /// of one entry and of up to `pageSize` entries follow, each with a `nextPageToken` while
    /// entries remain, and an empty page comes before every third.
    ///
    /// The `files.list` reference says of `pageSize`: "The maximum number of files to return
    /// per page. Partial or empty result pages are possible even before the end of the files
    /// list has been reached." (<https://developers.google.com/drive/api/reference/rest/v3/files/list>);
    /// and of `FileList.files`: "If nextPageToken is populated, then this list may be
    /// incomplete and an additional page of results should be fetched." A client that takes
    /// a short or empty page for the end of the listing fails against this shape.
    #[default]
    Ragged,
    /// Every page but the last holds `pageSize` entries.
    Full,
}

/// The emulator; it stops when dropped.
#[derive(Debug)]
pub struct DriveEmulator {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for DriveEmulator {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The id of the root folder (also reachable as `root`).
pub const ROOT_ID: &str = "0AEmulatorRootFolderId";

impl DriveEmulator {
    /// Starts an empty drive on 127.0.0.1 with an ephemeral port.
    ///
    /// # Panics
    /// When no port can be bound on 127.0.0.1.
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|e| panic!("emulator: cannot bind 127.0.0.1: {e}"));
        let addr = listener
            .local_addr()
            .unwrap_or_else(|e| panic!("emulator: no local address: {e}"));
        let mut st = State {
            base: format!("http://{addr}"),
            ..Default::default()
        };
        st.files.insert(
            ROOT_ID.into(),
            FileRec {
                id: ROOT_ID.into(),
                name: "My Drive".into(),
                mime: FOLDER.into(),
                parent: None,
                content: Bytes::new(),
                modified: OffsetDateTime::now_utc(),
                trashed: false,
            },
        );
        let state = Arc::new(Mutex::new(st));
        let st2 = state.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let st = st2.clone();
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(move |req| {
                        let st = st.clone();
                        async move { handle(st, req).await }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        DriveEmulator { addr, state, task }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A backend config pointed at the emulator, authenticating with [`REFRESH_TOKEN`]
    /// (written to a token file in the temp directory), rooted at `root`.
    pub fn config(&self) -> GdriveConfig {
        let token_file = std::env::temp_dir().join(format!(
            "cloudsync-gdrive-emulator-{}.json",
            self.addr.port()
        ));
        let _ = std::fs::write(
            &token_file,
            json!({ "refresh_token": REFRESH_TOKEN }).to_string(),
        );
        GdriveConfig {
            client_id: Some(CLIENT_ID.into()),
            token_file: Some(token_file),
            ..Default::default()
        }
        .with_endpoint(&self.url())
    }

    /// Makes the next `times` requests whose method is `method` (or `*`) and whose path and
    /// query contain `path_contains` fail with `fault`.
    pub fn inject(&self, method: &str, path_contains: &str, fault: Fault, times: u32) {
        self.inject_after(method, path_contains, 0, fault, times);
    }

    /// As [`DriveEmulator::inject`], but the first `skip` matching requests are answered
    /// normally (to hit, say, the last chunk of an upload).
    pub fn inject_after(
        &self,
        method: &str,
        path_contains: &str,
        skip: u32,
        fault: Fault,
        times: u32,
    ) {
        self.lock().faults.push(Injected {
            method: method.into(),
            path_contains: path_contains.into(),
            fault,
            times,
            skip,
        });
    }

    /// Lets the service account `email` sign JWT grants with the RSA key whose public half
    /// (PKCS#1 `RSAPublicKey` DER) is `public_key`.
    pub fn add_service_account(&self, email: &str, public_key: &[u8]) {
        self.lock()
            .service_accounts
            .push((email.into(), public_key.to_vec()));
    }

    /// Invalidates every access token handed out so far (as if they expired).
    pub fn expire_tokens(&self) {
        self.lock().tokens.clear();
    }

    /// How many token requests succeeded.
    pub fn token_requests(&self) -> usize {
        self.lock().token_requests
    }

    /// Every request so far, as `METHOD /path?query`, followed by ` [Content-Range]` when the
    /// request had one.
    pub fn requests(&self) -> Vec<String> {
        self.lock().requests.clone()
    }

    /// Adds a file directly (for duplicate names and Google Docs, which the backend never
    /// creates); `parent` may be `root`. Returns its id.
    pub fn add_file(&self, parent: &str, name: &str, mime: &str, content: &[u8]) -> String {
        let mut st = self.lock();
        let parent = st.resolve(parent);
        st.create(
            name.into(),
            mime.into(),
            Some(parent),
            Bytes::copy_from_slice(content),
            None,
        )
    }

    /// Adds a folder directly; returns its id.
    pub fn add_folder(&self, parent: &str, name: &str) -> String {
        self.add_file(parent, name, FOLDER, b"")
    }

    /// Names of the files and folders in the trash (explicitly trashed).
    pub fn trashed(&self) -> Vec<String> {
        let st = self.lock();
        let mut v: Vec<String> = st
            .files
            .values()
            .filter(|f| f.trashed)
            .map(|f| f.name.clone())
            .collect();
        v.sort();
        v
    }

    /// The Drive names of the children of `parent` (may be `root`) that are not trashed,
    /// sorted.
    pub fn names_in(&self, parent: &str) -> Vec<String> {
        let st = self.lock();
        let parent = st.resolve(parent);
        let mut v: Vec<String> = st
            .files
            .values()
            .filter(|f| f.parent.as_deref() == Some(parent.as_str()) && !f.trashed)
            .map(|f| f.name.clone())
            .collect();
        v.sort();
        v
    }

    /// Number of files and folders stored (trashed or not, the roots of My Drive and of the
    /// shared drives excluded).
    pub fn file_count(&self) -> usize {
        let st = self.lock();
        st.files.len() - 1 - st.shared_drives.len()
    }

    /// Number of open resumable-upload sessions.
    pub fn open_sessions(&self) -> usize {
        self.lock().sessions.len()
    }

    /// Adds a shared drive called `name`; returns its id, which is also the id of its root
    /// folder (use it as `parent` of [`DriveEmulator::add_file`]).
    ///
    /// Its items are hidden from `files.list` unless the request says
    /// `includeItemsFromAllDrives=true` ("Whether both My Drive and shared drive items should
    /// be included in results", files.list reference), and every other request on them needs
    /// `supportsAllDrives=true` ("Whether the requesting application supports both My Drives
    /// and shared drives"; without it they answer 404 `notFound`, as items the application
    /// cannot see).
    pub fn add_shared_drive(&self, name: &str) -> String {
        let mut st = self.lock();
        st.next_id += 1;
        let id = format!("0AShared{:06}{:08x}", st.next_id, fastrand::u32(..));
        st.files.insert(
            id.clone(),
            FileRec {
                id: id.clone(),
                name: name.into(),
                mime: FOLDER.into(),
                parent: None,
                content: Bytes::new(),
                modified: ms_now(),
                trashed: false,
            },
        );
        st.shared_drives.push(id.clone());
        id
    }

    /// Sets how `files.list` cuts its answers into pages (default [`PageShape::Ragged`]).
    pub fn set_page_shape(&self, shape: PageShape) {
        self.lock().pages = shape;
    }

    /// Makes the caller a service account without storage of its own: creating a file (not a
    /// folder) outside a shared drive, or copying one there, is refused with the `403` Drive
    /// sends: reason `storageQuotaExceeded`, message "Service Accounts do not have storage
    /// quota. Leverage shared drives (…), or use OAuth delegation (…) instead." (the text of
    /// Drive's answer as users report it, e.g. n8n-io/n8n#26050 and
    /// bskim45/fastlane-plugin-google_drive#44). Files in shared drives are owned by the
    /// drive's organisation and are accepted.
    pub fn set_service_account_without_storage(&self, yes: bool) {
        self.lock().no_storage = yes;
    }

    /// Makes downloads ignore `Range` and answer `200` with the whole content: RFC 9110
    /// §14.2, "A server MAY ignore the Range header field." A client that takes the body of
    /// such an answer for the range it asked for reads the wrong bytes.
    pub fn set_ignore_range(&self, yes: bool) {
        self.lock().ignore_range = yes;
    }

    /// Makes resumable sessions stall: every chunk (and status query) is answered `308`
    /// with the `Range` of what was committed before, never more. The Drive guide says a
    /// `308 Resume Incomplete` answer's `Range` header tells what the server has; a session
    /// that never advances must end in an error, not a loop.
    pub fn set_stall_uploads(&self, yes: bool) {
        self.lock().stall_uploads = yes;
    }
}

/// The message Drive sends to a service account that creates a file in its own My Drive.
const NO_STORAGE_MESSAGE: &str = "Service Accounts do not have storage quota. Leverage shared \
    drives (https://developers.google.com/workspace/drive/api/guides/about-shareddrives), or use \
    OAuth delegation (http://support.google.com/a/answer/7281227) instead.";

type Resp = Response<Full<Bytes>>;

fn resp(status: StatusCode, body: Value) -> Resp {
    let mut r = Response::new(Full::new(Bytes::from(body.to_string())));
    *r.status_mut() = status;
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json; charset=UTF-8"),
    );
    r
}

fn error(status: u16, reason: &str, message: &str) -> Resp {
    let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    resp(
        code,
        json!({ "error": { "code": status, "message": message,
            "errors": [{ "domain": "global", "reason": reason, "message": message }] } }),
    )
}

fn empty(status: StatusCode) -> Resp {
    let mut r = Response::new(Full::new(Bytes::new()));
    *r.status_mut() = status;
    r
}

/// Why the connection is dropped.
#[derive(Debug)]
struct Dropped;

impl std::fmt::Display for Dropped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("injected connection drop")
    }
}

impl std::error::Error for Dropped {}

/// The body of an answer: whole, or trickling ([`Fault::Trickle`]).
type AnyBody = http_body_util::combinators::BoxBody<Bytes, std::convert::Infallible>;

/// Marks an answer whose body trickles for ever.
#[derive(Clone, Copy)]
struct Trickle;

/// Serves one request, turning an answer marked [`Trickle`] into a never-ending body.
async fn handle(
    state: Arc<Mutex<State>>,
    req: Request<Incoming>,
) -> Result<Response<AnyBody>, Dropped> {
    let r = answer(state, req).await?;
    if r.extensions().get::<Trickle>().is_none() {
        return Ok(r.map(BodyExt::boxed));
    }
    let spaces = futures::stream::unfold((), |()| async {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        let frame = hyper::body::Frame::data(Bytes::from_static(b" "));
        Some((Ok::<_, std::convert::Infallible>(frame), ()))
    });
    Ok(r.map(|_| BodyExt::boxed(http_body_util::StreamBody::new(spaces))))
}

async fn answer(state: Arc<Mutex<State>>, req: Request<Incoming>) -> Result<Resp, Dropped> {
    let (parts, body) = req.into_parts();
    let body = match body.collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => return Err(Dropped),
    };
    let mut st = state.lock().unwrap_or_else(|p| p.into_inner());
    let target = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_default();
    let mut line = format!("{} {target}", parts.method);
    if let Some(r) = parts
        .headers
        .get(hyper::header::CONTENT_RANGE)
        .and_then(|v| v.to_str().ok())
    {
        line.push_str(&format!(" [{r}]"));
    }
    st.requests.push(line);
    let query: HashMap<String, String> =
        url::form_urlencoded::parse(parts.uri.query().unwrap_or("").as_bytes())
            .into_owned()
            .collect();
    let method = parts.method.as_str().to_owned();
    st.all_drives = query.get("supportsAllDrives").map(String::as_str) == Some("true");
    // Injected faults.
    let matches = |f: &Injected| {
        f.times > 0 && (f.method == "*" || f.method == method) && target.contains(&f.path_contains)
    };
    let hit = st.faults.iter().position(|f| f.skip == 0 && matches(f));
    // Faults still letting requests through count this one.
    for f in st.faults.iter_mut() {
        if f.skip > 0 && matches(f) {
            f.skip -= 1;
        }
    }
    if let Some(i) = hit {
        st.faults[i].times -= 1;
        let fault = st.faults[i].fault.clone();
        st.faults.retain(|f| f.times > 0);
        match fault {
            Fault::Status {
                status,
                reason,
                retry_after,
            } => {
                let mut r = error(status, &reason, "injected fault");
                if let Some(s) = retry_after {
                    if let Ok(v) = hyper::header::HeaderValue::from_str(&s.to_string()) {
                        r.headers_mut().insert(hyper::header::RETRY_AFTER, v);
                    }
                }
                return Ok(r);
            }
            Fault::Drop => {
                if let Some(id) = query.get("upload_id") {
                    if let Some(s) = st.sessions.get_mut(id) {
                        let half = body.len() / 2;
                        if let Some(start) = chunk_start(&parts.headers) {
                            if start == s.data.len() as u64 {
                                s.data.extend_from_slice(&body[..half]);
                            }
                        }
                    }
                }
                return Err(Dropped);
            }
            Fault::Answer {
                status,
                headers,
                body,
            } => {
                let mut r = Response::new(Full::new(body));
                *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
                r.headers_mut().insert(
                    hyper::header::CONTENT_TYPE,
                    hyper::header::HeaderValue::from_static("application/json; charset=UTF-8"),
                );
                for (k, v) in headers {
                    if let (Ok(k), Ok(v)) = (
                        hyper::header::HeaderName::from_bytes(k.as_bytes()),
                        hyper::header::HeaderValue::from_str(&v),
                    ) {
                        r.headers_mut().insert(k, v);
                    }
                }
                return Ok(r);
            }
            Fault::Trickle => {
                let mut r = empty(StatusCode::OK);
                r.extensions_mut().insert(Trickle);
                return Ok(r);
            }
        }
    }
    let path = parts.uri.path().to_owned();
    if path == "/token" {
        return Ok(st.token(&body));
    }
    let authorized = parts
        .headers
        .get(hyper::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .is_some_and(|t| st.tokens.iter().any(|k| k == t));
    if !authorized {
        return Ok(error(401, "authError", "Invalid Credentials"));
    }
    let segs: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let ctype = parts
        .headers
        .get(hyper::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let r = match (method.as_str(), segs.as_slice()) {
        ("GET", ["drive", "v3", "about"]) => resp(
            StatusCode::OK,
            json!({ "storageQuota": { "limit": "16106127360",
                "usage": st.usage(false).to_string(), "usageInDriveTrash": st.usage(true).to_string() } }),
        ),
        ("GET", ["drive", "v3", "files"]) => st.list(&query),
        ("POST", ["drive", "v3", "files"]) => match serde_json::from_slice::<Value>(&body) {
            Ok(meta) => st.create_from(&meta, Bytes::new(), &query),
            Err(_) => error(400, "parseError", "Parse Error"),
        },
        ("DELETE", ["drive", "v3", "files", "trash"]) => st.empty_trash(&query),
        ("GET", ["drive", "v3", "files", id]) => st.get(id, &query, &parts.headers),
        ("PATCH", ["drive", "v3", "files", id]) => match serde_json::from_slice::<Value>(&body) {
            Ok(meta) => st.update(id, &meta, None, &query),
            Err(_) => error(400, "parseError", "Parse Error"),
        },
        ("DELETE", ["drive", "v3", "files", id]) => st.delete(id),
        ("POST", ["drive", "v3", "files", id, "copy"]) => {
            match serde_json::from_slice::<Value>(&body) {
                Ok(meta) => st.copy(id, &meta, &query),
                Err(_) => error(400, "parseError", "Parse Error"),
            }
        }
        ("PUT", ["upload", "drive", "v3", "files"]) if query.contains_key("upload_id") => {
            st.chunk(&query, &parts.headers, body)
        }
        ("DELETE", ["upload", "drive", "v3", "files"]) if query.contains_key("upload_id") => {
            let id = query.get("upload_id").cloned().unwrap_or_default();
            match st.sessions.remove(&id) {
                Some(_) => empty(StatusCode::from_u16(499).unwrap_or(StatusCode::OK)),
                None => error(404, "notFound", "No such upload session"),
            }
        }
        ("POST", ["upload", "drive", "v3", "files"]) => st.upload(None, &query, &ctype, body),
        ("PATCH", ["upload", "drive", "v3", "files", id]) => {
            let id = (*id).to_owned();
            st.upload(Some(id), &query, &ctype, body)
        }
        _ => error(404, "notFound", &format!("no route for {method} {path}")),
    };
    Ok(r)
}

fn chunk_start(headers: &hyper::HeaderMap) -> Option<u64> {
    let v = headers.get(hyper::header::CONTENT_RANGE)?.to_str().ok()?;
    let rest = v.strip_prefix("bytes ")?;
    let (range, _) = rest.split_once('/')?;
    let (a, _) = range.split_once('-')?;
    a.parse().ok()
}

/// A `q` expression: clauses joined by `and`.
#[derive(Debug, PartialEq)]
enum Clause {
    InParents(String),
    Name(String),
    Mime { eq: bool, value: String },
    Trashed(bool),
}

fn parse_q(q: &str) -> Option<Vec<Clause>> {
    #[derive(Debug, PartialEq)]
    enum Tok {
        Str(String),
        Word(String),
        Op(String),
    }
    let mut toks = Vec::new();
    let mut chars = q.chars().peekable();
    while let Some(&c) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
        } else if c == '\'' {
            chars.next();
            let mut s = String::new();
            loop {
                match chars.next()? {
                    '\\' => s.push(chars.next()?),
                    '\'' => break,
                    c => s.push(c),
                }
            }
            toks.push(Tok::Str(s));
        } else if c == '=' {
            chars.next();
            toks.push(Tok::Op("=".into()));
        } else if c == '!' {
            chars.next();
            if chars.next()? != '=' {
                return None;
            }
            toks.push(Tok::Op("!=".into()));
        } else if c.is_ascii_alphanumeric() {
            let mut w = String::new();
            while let Some(&c) = chars.peek() {
                if !c.is_ascii_alphanumeric() {
                    break;
                }
                w.push(c);
                chars.next();
            }
            toks.push(Tok::Word(w));
        } else {
            return None;
        }
    }
    let mut out = Vec::new();
    let mut i = 0;
    loop {
        let clause = match (toks.get(i), toks.get(i + 1), toks.get(i + 2)) {
            (Some(Tok::Str(id)), Some(Tok::Word(w)), Some(Tok::Word(p)))
                if w == "in" && p == "parents" =>
            {
                Clause::InParents(id.clone())
            }
            (Some(Tok::Word(f)), Some(Tok::Op(o)), Some(Tok::Str(v)))
                if f == "name" && o == "=" =>
            {
                Clause::Name(v.clone())
            }
            (Some(Tok::Word(f)), Some(Tok::Op(o)), Some(Tok::Str(v))) if f == "mimeType" => {
                Clause::Mime {
                    eq: o == "=",
                    value: v.clone(),
                }
            }
            (Some(Tok::Word(f)), Some(Tok::Op(o)), Some(Tok::Word(v)))
                if f == "trashed" && o == "=" && (v == "true" || v == "false") =>
            {
                Clause::Trashed(v == "true")
            }
            _ => return None,
        };
        out.push(clause);
        i += 3;
        match toks.get(i) {
            None => return Some(out),
            Some(Tok::Word(w)) if w == "and" => i += 1,
            _ => return None,
        }
    }
}

fn hex_digest<D: md5::Digest>(data: &[u8]) -> String {
    hex::encode(D::digest(data))
}

fn parse_multipart(ctype: &str, body: &[u8]) -> Option<(Value, Bytes)> {
    let boundary = ctype
        .strip_prefix("multipart/related")?
        .split(';')
        .find_map(|p| p.trim().strip_prefix("boundary="))?
        .trim_matches('"');
    let delim = format!("--{boundary}");
    let d = delim.as_bytes();
    let find = |hay: &[u8], from: usize| -> Option<usize> {
        hay.get(from..)?
            .windows(d.len())
            .position(|w| w == d)
            .map(|p| p + from)
    };
    let mut parts = Vec::new();
    let mut pos = find(body, 0)? + d.len();
    loop {
        if body.get(pos..pos + 2) == Some(b"--") {
            break;
        }
        let next = find(body, pos)?;
        let part = body.get(pos..next)?;
        let part = part.strip_prefix(b"\r\n")?;
        let part = part.strip_suffix(b"\r\n")?;
        let split = part.windows(4).position(|w| w == b"\r\n\r\n")?;
        parts.push(Bytes::copy_from_slice(&part[split + 4..]));
        pos = next + d.len();
    }
    if parts.len() != 2 {
        return None;
    }
    let meta: Value = serde_json::from_slice(&parts[0]).ok()?;
    Some((meta, parts[1].clone()))
}

// Handlers return early with a ready error answer; its size does not matter in a test server.
#[allow(clippy::result_large_err)]
impl State {
    fn resolve(&self, id: &str) -> String {
        if id == "root" {
            ROOT_ID.into()
        } else {
            id.into()
        }
    }

    fn token(&mut self, body: &[u8]) -> Resp {
        let form: HashMap<String, String> =
            url::form_urlencoded::parse(body).into_owned().collect();
        let ok = match form.get("grant_type").map(String::as_str) {
            Some("refresh_token") => {
                form.get("client_id").map(String::as_str) == Some(CLIENT_ID)
                    && form.get("refresh_token").map(String::as_str) == Some(REFRESH_TOKEN)
            }
            Some("urn:ietf:params:oauth:grant-type:jwt-bearer") => {
                form.get("assertion").is_some_and(|a| self.jwt_ok(a))
            }
            _ => false,
        };
        if !ok {
            return resp(
                StatusCode::BAD_REQUEST,
                json!({ "error": "invalid_grant", "error_description": "Bad Request" }),
            );
        }
        self.token_requests += 1;
        let token = format!(
            "ya29.emulator-{}-{:08x}",
            self.token_requests,
            fastrand::u32(..)
        );
        self.tokens.push(token.clone());
        resp(
            StatusCode::OK,
            json!({ "access_token": token, "expires_in": 3599, "token_type": "Bearer",
                "scope": "https://www.googleapis.com/auth/drive" }),
        )
    }

    /// Checks a service-account JWT: RS256 header, signature by a registered key, `iss`,
    /// `aud` (this token endpoint), a Drive `scope`, and `iat`/`exp`.
    fn jwt_ok(&self, assertion: &str) -> bool {
        use base64::Engine as _;
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let mut parts = assertion.split('.');
        let (Some(h), Some(c), Some(sig), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return false;
        };
        let (Ok(header), Ok(claims), Ok(sig)) = (b64.decode(h), b64.decode(c), b64.decode(sig))
        else {
            return false;
        };
        let (Ok(header), Ok(claims)) = (
            serde_json::from_slice::<Value>(&header),
            serde_json::from_slice::<Value>(&claims),
        ) else {
            return false;
        };
        if header["alg"] != "RS256" {
            return false;
        }
        let Some(iss) = claims["iss"].as_str() else {
            return false;
        };
        let Some((_, key)) = self.service_accounts.iter().find(|(e, _)| e == iss) else {
            return false;
        };
        let key = aws_lc_rs::signature::UnparsedPublicKey::new(
            &aws_lc_rs::signature::RSA_PKCS1_2048_8192_SHA256,
            key,
        );
        if key.verify(format!("{h}.{c}").as_bytes(), &sig).is_err() {
            return false;
        }
        let now = OffsetDateTime::now_utc().unix_timestamp();
        claims["aud"] == format!("{}/token", self.base).as_str()
            && claims["scope"].as_str().is_some_and(|s| {
                s.split(' ')
                    .any(|x| x.starts_with("https://www.googleapis.com/auth/drive"))
            })
            && claims["iat"].as_i64().is_some_and(|t| t <= now + 60)
            && claims["exp"]
                .as_i64()
                .is_some_and(|t| t > now && t <= now + 3660)
    }

    /// The shared drive `id` lies in, `None` for My Drive.
    fn drive_of(&self, id: &str) -> Option<String> {
        let mut cur = self.files.get(id)?;
        let mut steps = 0;
        while let Some(p) = cur.parent.as_ref().and_then(|p| self.files.get(p)) {
            cur = p;
            steps += 1;
            if steps > 10_000 {
                return None;
            }
        }
        self.shared_drives.contains(&cur.id).then(|| cur.id.clone())
    }

    /// Whether `id` is in a shared drive and the request does not say
    /// `supportsAllDrives=true`: such an item answers 404, as one the caller cannot see.
    fn hidden(&self, id: &str) -> bool {
        !self.all_drives && self.drive_of(&self.resolve(id)).is_some()
    }

    fn is_trashed(&self, id: &str) -> bool {
        let mut cur = self.files.get(id);
        while let Some(f) = cur {
            if f.trashed {
                return true;
            }
            cur = f.parent.as_ref().and_then(|p| self.files.get(p));
        }
        false
    }

    fn usage(&self, trash: bool) -> u64 {
        self.files
            .values()
            .filter(|f| self.is_trashed(&f.id) == trash)
            .map(|f| f.content.len() as u64)
            .sum()
    }

    fn json(&self, f: &FileRec, query: &HashMap<String, String>) -> Value {
        let full = query.get("fields").is_some_and(|s| !s.is_empty());
        let mut v = json!({ "kind": "drive#file", "id": f.id, "name": f.name, "mimeType": f.mime });
        if !full {
            return v;
        }
        v["parents"] = json!(f.parent.iter().collect::<Vec<_>>());
        v["trashed"] = json!(self.is_trashed(&f.id));
        v["modifiedTime"] = json!(f.modified.format(&Rfc3339).unwrap_or_default());
        if f.mime != FOLDER && !f.mime.starts_with("application/vnd.google-apps.") {
            v["size"] = json!(f.content.len().to_string());
            v["md5Checksum"] = json!(hex_digest::<md5::Md5>(&f.content));
            v["sha1Checksum"] = json!(hex_digest::<sha1::Sha1>(&f.content));
            v["sha256Checksum"] = json!(hex_digest::<sha2::Sha256>(&f.content));
        }
        v
    }

    fn create(
        &mut self,
        name: String,
        mime: String,
        parent: Option<String>,
        content: Bytes,
        modified: Option<OffsetDateTime>,
    ) -> String {
        self.next_id += 1;
        let id = format!("1emu{:06}{:08x}", self.next_id, fastrand::u32(..));
        self.files.insert(
            id.clone(),
            FileRec {
                id: id.clone(),
                name,
                mime,
                parent,
                content,
                modified: modified.unwrap_or_else(ms_now),
                trashed: false,
            },
        );
        self.order.push(id.clone());
        id
    }

    fn list(&self, query: &HashMap<String, String>) -> Resp {
        let clauses = match query.get("q").map(|q| parse_q(q)) {
            Some(Some(c)) => c,
            Some(None) => return error(400, "invalid", "Invalid Value"),
            None => Vec::new(),
        };
        let page_size: usize = match query.get("pageSize").map(|s| s.parse::<usize>()) {
            None => 100,
            Some(Ok(n)) if (1..=1000).contains(&n) => n,
            Some(_) => return error(400, "invalid", "Invalid value for pageSize"),
        };
        // Tokens are `OFFSET.PAGE`: where the next page starts and how many pages came before.
        let (start, page_no): (usize, usize) = match query.get("pageToken").map(|t| {
            let (a, b) = t.split_once('.')?;
            Some((a.parse().ok()?, b.parse().ok()?))
        }) {
            None => (0, 0),
            Some(Some(t)) => t,
            Some(None) => return error(400, "invalid", "Invalid pageToken"),
        };
        // "includeItemsFromAllDrives: Whether both My Drive and shared drive items should be
        // included in results." (files.list reference): without it, shared-drive items are
        // not listed, even the children of a shared-drive folder asked for by id.
        let all_drives = query.get("includeItemsFromAllDrives").map(String::as_str) == Some("true");
        // "corpora: ... 'drive' ..." with "driveId: ID of the shared drive to search."
        let drive = match query.get("corpora").map(String::as_str) {
            None | Some("user") => None,
            Some("drive") => match query.get("driveId") {
                Some(d) if all_drives => Some(d.clone()),
                _ => {
                    return error(
                        400,
                        "invalid",
                        "corpora=drive needs driveId and includeItemsFromAllDrives=true",
                    );
                }
            },
            Some(_) => return error(400, "invalid", "Invalid value for corpora"),
        };
        for c in &clauses {
            if let Clause::InParents(p) = c {
                if !self.files.contains_key(&self.resolve(p)) {
                    return error(404, "notFound", &format!("File not found: {p}."));
                }
            }
        }
        let matching: Vec<&FileRec> = self
            .order
            .iter()
            .filter_map(|id| self.files.get(id))
            .filter(|f| {
                clauses.iter().all(|c| match c {
                    Clause::InParents(p) => f.parent.as_deref() == Some(&self.resolve(p)),
                    Clause::Name(n) => &f.name == n,
                    Clause::Mime { eq, value } => (&f.mime == value) == *eq,
                    Clause::Trashed(t) => self.is_trashed(&f.id) == *t,
                })
            })
            .filter(|f| {
                let d = self.drive_of(&f.id);
                match &drive {
                    Some(want) => d.as_ref() == Some(want),
                    None => all_drives || d.is_none(),
                }
            })
            .collect();
        // How many entries this page holds ([`PageShape`]).
        let take = match self.pages {
            PageShape::Full => page_size,
            PageShape::Ragged => match page_no % 3 {
                0 => 0,
                1 => 1,
                _ => page_size,
            },
        };
        let page: Vec<Value> = matching
            .iter()
            .skip(start)
            .take(take)
            .map(|f| self.json(f, &HashMap::from([("fields".into(), "*".into())])))
            .collect();
        let next = start + take;
        let mut v = json!({ "kind": "drive#fileList", "files": page });
        // Ragged: the first page is empty and still carries a token, even for an empty folder.
        if next < matching.len() || (self.pages == PageShape::Ragged && page_no == 0) {
            v["nextPageToken"] = json!(format!("{next}.{}", page_no + 1));
        }
        resp(StatusCode::OK, v)
    }

    fn get(&self, id: &str, query: &HashMap<String, String>, headers: &hyper::HeaderMap) -> Resp {
        let id = self.resolve(id);
        let Some(f) = self.files.get(&id).filter(|_| !self.hidden(&id)) else {
            return error(404, "notFound", &format!("File not found: {id}."));
        };
        if query.get("alt").map(String::as_str) != Some("media") {
            return resp(StatusCode::OK, self.json(f, query));
        }
        if f.mime.starts_with("application/vnd.google-apps.") {
            return error(
                403,
                "fileNotDownloadable",
                "Only files with binary content can be downloaded. Use Export with Docs Editors files.",
            );
        }
        let len = f.content.len();
        // With `ignore_range`, RFC 9110 §14.2: "A server MAY ignore the Range header field."
        if let Some(r) = headers
            .get(hyper::header::RANGE)
            .and_then(|v| v.to_str().ok())
            .filter(|_| !self.ignore_range)
        {
            let parsed = r
                .strip_prefix("bytes=")
                .and_then(|s| s.split_once('-'))
                .and_then(|(a, b)| {
                    let a: usize = a.parse().ok()?;
                    let b: usize = if b.is_empty() {
                        len.checked_sub(1)?
                    } else {
                        b.parse().ok()?
                    };
                    Some((a, b.min(len.saturating_sub(1))))
                });
            return match parsed {
                Some((a, b)) if a < len && a <= b => {
                    let mut r = empty(StatusCode::PARTIAL_CONTENT);
                    *r.body_mut() = Full::new(f.content.slice(a..=b));
                    if let Ok(v) =
                        hyper::header::HeaderValue::from_str(&format!("bytes {a}-{b}/{len}"))
                    {
                        r.headers_mut().insert(hyper::header::CONTENT_RANGE, v);
                    }
                    r
                }
                _ => error(
                    416,
                    "requestedRangeNotSatisfiable",
                    "Request range not satisfiable",
                ),
            };
        }
        let mut r = empty(StatusCode::OK);
        *r.body_mut() = Full::new(f.content.clone());
        r
    }

    fn parent_ok(&self, parent: &str) -> Result<String, Resp> {
        let p = self.resolve(parent);
        match self.files.get(&p).filter(|_| !self.hidden(&p)) {
            Some(f) if f.mime == FOLDER => Ok(p),
            Some(_) => Err(error(400, "invalid", "The parent is not a folder")),
            None => Err(error(
                404,
                "notFound",
                &format!("File not found: {parent}."),
            )),
        }
    }

    /// The `403` a service account without storage gets for a new file in `parent` outside
    /// a shared drive ([`DriveEmulator::set_service_account_without_storage`]).
    fn refuse_without_storage(&self, parent: &str, mime: &str) -> Option<Resp> {
        (self.no_storage && mime != FOLDER && self.drive_of(parent).is_none())
            .then(|| error(403, "storageQuotaExceeded", NO_STORAGE_MESSAGE))
    }

    fn modtime(meta: &Value) -> Result<Option<OffsetDateTime>, Resp> {
        match meta.get("modifiedTime") {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => OffsetDateTime::parse(s, &Rfc3339)
                .map(|t| Some(truncate_ms(t)))
                .map_err(|_| error(400, "invalid", "Invalid value for modifiedTime")),
            Some(_) => Err(error(400, "invalid", "Invalid value for modifiedTime")),
        }
    }

    /// `files.create` with `meta` and `content`.
    fn create_from(
        &mut self,
        meta: &Value,
        content: Bytes,
        query: &HashMap<String, String>,
    ) -> Resp {
        let Some(name) = meta.get("name").and_then(Value::as_str) else {
            return error(400, "required", "A file name is required");
        };
        let parent = match meta.get("parents") {
            None => ROOT_ID.to_owned(),
            Some(Value::Array(a)) if a.len() == 1 => match a[0].as_str().map(|p| self.parent_ok(p))
            {
                Some(Ok(p)) => p,
                Some(Err(r)) => return r,
                None => return error(400, "invalid", "Invalid parents"),
            },
            Some(_) => return error(400, "invalid", "A file must have exactly one parent"),
        };
        let modified = match Self::modtime(meta) {
            Ok(m) => m,
            Err(r) => return r,
        };
        let mime = meta
            .get("mimeType")
            .and_then(Value::as_str)
            .unwrap_or("application/octet-stream")
            .to_owned();
        if let Some(r) = self.refuse_without_storage(&parent, &mime) {
            return r;
        }
        let id = self.create(name.into(), mime, Some(parent), content, modified);
        let f = self.files[&id].clone();
        resp(StatusCode::OK, self.json(&f, query))
    }

    fn update(
        &mut self,
        id: &str,
        meta: &Value,
        content: Option<Bytes>,
        query: &HashMap<String, String>,
    ) -> Resp {
        let id = self.resolve(id);
        if !self.files.contains_key(&id) || id == ROOT_ID || self.hidden(&id) {
            return error(404, "notFound", &format!("File not found: {id}."));
        }
        let modified = match Self::modtime(meta) {
            Ok(m) => m,
            Err(r) => return r,
        };
        let add = query.get("addParents").cloned();
        let remove = query.get("removeParents").cloned();
        let new_parent = match (&add, &remove) {
            (None, None) => None,
            (Some(a), Some(r)) => {
                let cur = self.files[&id].parent.clone();
                if cur.as_deref() != Some(&self.resolve(r)) {
                    return error(400, "invalid", "removeParents does not name the parent");
                }
                match self.parent_ok(a) {
                    Ok(p) => Some(p),
                    Err(r) => return r,
                }
            }
            _ => {
                return error(
                    400,
                    "invalid",
                    "A file must keep exactly one parent (use addParents with removeParents)",
                );
            }
        };
        let Some(f) = self.files.get_mut(&id) else {
            return error(404, "notFound", "File not found");
        };
        if let Some(n) = meta.get("name").and_then(Value::as_str) {
            f.name = n.to_owned();
        }
        if let Some(t) = meta.get("trashed").and_then(Value::as_bool) {
            f.trashed = t;
        }
        if let Some(p) = new_parent {
            f.parent = Some(p);
        }
        let changed = content.is_some();
        if let Some(c) = content {
            f.content = c;
        }
        if let Some(m) = modified {
            f.modified = m;
        } else if changed {
            f.modified = ms_now();
        }
        let f = f.clone();
        resp(StatusCode::OK, self.json(&f, query))
    }

    fn remove_tree(&mut self, id: &str) {
        let children: Vec<String> = self
            .files
            .values()
            .filter(|f| f.parent.as_deref() == Some(id))
            .map(|f| f.id.clone())
            .collect();
        for c in children {
            self.remove_tree(&c);
        }
        self.files.remove(id);
        self.order.retain(|x| x != id);
    }

    fn delete(&mut self, id: &str) -> Resp {
        let id = self.resolve(id);
        if !self.files.contains_key(&id) || id == ROOT_ID || self.hidden(&id) {
            return error(404, "notFound", &format!("File not found: {id}."));
        }
        self.remove_tree(&id);
        empty(StatusCode::NO_CONTENT)
    }

    /// `files.emptyTrash`: of My Drive, or with `driveId` of that shared drive (reference:
    /// "driveId: If set, empties the trash of the provided shared drive."). Everything in the
    /// trash goes, wherever it was: the trash has no folders of its own.
    fn empty_trash(&mut self, query: &HashMap<String, String>) -> Resp {
        let drive = query.get("driveId").cloned();
        if let Some(d) = &drive {
            if !self.shared_drives.contains(d) {
                return error(404, "notFound", &format!("Shared drive not found: {d}"));
            }
        }
        let trashed: Vec<String> = self
            .files
            .values()
            .filter(|f| f.trashed && self.drive_of(&f.id) == drive)
            .map(|f| f.id.clone())
            .collect();
        for id in trashed {
            self.remove_tree(&id);
        }
        empty(StatusCode::NO_CONTENT)
    }

    fn copy(&mut self, id: &str, meta: &Value, query: &HashMap<String, String>) -> Resp {
        let id = self.resolve(id);
        let Some(src) = self.files.get(&id).filter(|_| !self.hidden(&id)).cloned() else {
            return error(404, "notFound", &format!("File not found: {id}."));
        };
        if src.mime == FOLDER {
            return error(403, "cannotCopyFile", "Folders cannot be copied");
        }
        let mut m = meta.clone();
        if m.get("name").is_none() {
            m["name"] = json!(format!("Copy of {}", src.name));
        }
        if m.get("parents").is_none() {
            m["parents"] = json!(src.parent.iter().collect::<Vec<_>>());
        }
        m["mimeType"] = json!(src.mime);
        self.create_from(&m, src.content.clone(), query)
    }

    fn upload(
        &mut self,
        target: Option<String>,
        query: &HashMap<String, String>,
        ctype: &str,
        body: Bytes,
    ) -> Resp {
        if let Some(t) = &target {
            let t = self.resolve(t);
            if !self.files.contains_key(&t) || self.hidden(&t) {
                return error(404, "notFound", &format!("File not found: {t}."));
            }
        }
        match query.get("uploadType").map(String::as_str) {
            Some("multipart") => {
                let Some((meta, content)) = parse_multipart(ctype, &body) else {
                    return error(400, "badContent", "Malformed multipart body");
                };
                match target {
                    None => self.create_from(&meta, content, query),
                    Some(t) => self.update(&t, &meta, Some(content), query),
                }
            }
            Some("media") => match target {
                None => self.create_from(&json!({ "name": "Untitled" }), body, query),
                Some(t) => self.update(&t, &json!({}), Some(body), query),
            },
            Some("resumable") => {
                let meta = if body.is_empty() {
                    json!({})
                } else {
                    match serde_json::from_slice::<Value>(&body) {
                        Ok(m) => m,
                        Err(_) => return error(400, "parseError", "Parse Error"),
                    }
                };
                if target.is_none() {
                    if meta.get("name").and_then(Value::as_str).is_none() {
                        return error(400, "required", "A file name is required");
                    }
                    let parent = match meta.get("parents") {
                        Some(Value::Array(a)) => a.first().and_then(Value::as_str),
                        _ => None,
                    }
                    .unwrap_or(ROOT_ID);
                    match self.parent_ok(parent) {
                        Err(r) => return r,
                        Ok(p) => {
                            let mime = meta
                                .get("mimeType")
                                .and_then(Value::as_str)
                                .unwrap_or("application/octet-stream");
                            if let Some(r) = self.refuse_without_storage(&p, mime) {
                                return r;
                            }
                        }
                    }
                }
                let sid = format!("emu-session-{:016x}", fastrand::u64(..));
                self.sessions.insert(
                    sid.clone(),
                    Session {
                        target: target.map(|t| self.resolve(&t)),
                        meta,
                        data: Vec::new(),
                    },
                );
                let mut r = empty(StatusCode::OK);
                let mut loc = format!(
                    "{}/upload/drive/v3/files?uploadType=resumable&upload_id={sid}",
                    self.base
                );
                if let Some(f) = query.get("fields") {
                    loc.push_str("&fields=");
                    loc.push_str(
                        &url::form_urlencoded::byte_serialize(f.as_bytes()).collect::<String>(),
                    );
                }
                loc.push_str("&supportsAllDrives=true");
                if let Ok(v) = hyper::header::HeaderValue::from_str(&loc) {
                    r.headers_mut().insert(hyper::header::LOCATION, v);
                }
                r
            }
            _ => error(400, "invalid", "Invalid uploadType"),
        }
    }

    fn chunk(
        &mut self,
        query: &HashMap<String, String>,
        headers: &hyper::HeaderMap,
        body: Bytes,
    ) -> Resp {
        let sid = query.get("upload_id").cloned().unwrap_or_default();
        let Some(session) = self.sessions.get_mut(&sid) else {
            return error(404, "notFound", "No such upload session");
        };
        let Some(range) = headers
            .get(hyper::header::CONTENT_RANGE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("bytes "))
            .map(str::to_owned)
        else {
            return error(400, "badRequest", "Content-Range is required");
        };
        let Some((span, total)) = range.split_once('/') else {
            return error(400, "badRequest", "Malformed Content-Range");
        };
        let total: Option<usize> = match total {
            "*" => None,
            t => match t.parse() {
                Ok(n) => Some(n),
                Err(_) => return error(400, "badRequest", "Malformed Content-Range"),
            },
        };
        if span != "*" {
            let Some((a, b)) = span
                .split_once('-')
                .and_then(|(a, b)| Some((a.parse::<usize>().ok()?, b.parse::<usize>().ok()?)))
            else {
                return error(400, "badRequest", "Malformed Content-Range");
            };
            if b < a || b - a + 1 != body.len() {
                return error(400, "badRequest", "Content-Range does not match the body");
            }
            if a > session.data.len() {
                return error(400, "badRequest", "Chunk starts after the committed bytes");
            }
            let last = total.is_some_and(|t| b + 1 == t);
            if !last && body.len() % QUANTUM != 0 {
                return error(
                    400,
                    "badRequest",
                    "Chunk size must be a multiple of 256 KiB except for the last chunk",
                );
            }
            if total.is_some_and(|t| b + 1 > t) {
                return error(400, "badRequest", "Chunk ends after the total size");
            }
            // A stalled session keeps nothing ([`DriveEmulator::set_stall_uploads`]).
            if !self.stall_uploads {
                let skip = session.data.len() - a;
                session.data.extend_from_slice(&body[skip..]);
            }
        } else if !body.is_empty() {
            return error(400, "badRequest", "A status query has no body");
        }
        if total.is_some_and(|t| t == session.data.len()) {
            let Some(s) = self.sessions.remove(&sid) else {
                return error(404, "notFound", "No such upload session");
            };
            let content = Bytes::from(s.data);
            let mut q = query.clone();
            q.insert("fields".into(), "*".into());
            return match s.target {
                None => self.create_from(&s.meta, content, &q),
                Some(t) => self.update(&t, &s.meta, Some(content), &q),
            };
        }
        let mut r = empty(StatusCode::PERMANENT_REDIRECT);
        if !session.data.is_empty() {
            if let Ok(v) =
                hyper::header::HeaderValue::from_str(&format!("bytes=0-{}", session.data.len() - 1))
            {
                r.headers_mut().insert(hyper::header::RANGE, v);
            }
        }
        r
    }
}

fn truncate_ms(t: OffsetDateTime) -> OffsetDateTime {
    let ns = t.nanosecond() / 1_000_000 * 1_000_000;
    t.replace_nanosecond(ns).unwrap_or(t)
}

fn ms_now() -> OffsetDateTime {
    truncate_ms(OffsetDateTime::now_utc())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn q_subset() {
        assert_eq!(
            parse_q("'abc' in parents and trashed = false and name = 'it\\'s'"),
            Some(vec![
                Clause::InParents("abc".into()),
                Clause::Trashed(false),
                Clause::Name("it's".into())
            ])
        );
        assert_eq!(parse_q("name contains 'x'"), None);
        assert_eq!(parse_q("'a' in parents or trashed = true"), None);
        assert_eq!(
            parse_q("name = 'a and b'"),
            Some(vec![Clause::Name("a and b".into())])
        );
    }

    #[test]
    fn multipart_parts() {
        let body = b"--xx\r\nContent-Type: application/json\r\n\r\n{\"name\":\"a\"}\r\n--xx\r\nContent-Type: application/octet-stream\r\n\r\nhello\r\n--xx--\r\n";
        let (meta, content) = parse_multipart("multipart/related; boundary=xx", body).unwrap();
        assert_eq!(meta["name"], "a");
        assert_eq!(&content[..], b"hello");
    }
}
