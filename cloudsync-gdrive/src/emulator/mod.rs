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
//! ([`DriveEmulator::set_ignore_range`]), resumable sessions that never advance
//! ([`DriveEmulator::set_stall_uploads`]) and sessions that expire
//! ([`DriveEmulator::expire_sessions`]).
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> cloudsync_core::Result<()> {
//! use cloudsync_core::{bytes_stream, Remote, RemotePath, WriteMeta};
//! use cloudsync_gdrive::DriveRemote;
//! use cloudsync_gdrive::emulator::DriveEmulator;
//!
//! let emu = DriveEmulator::start().await;
//! let drive = DriveRemote::new(emu.config())?;
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

mod http;
mod state;

use http::handle;
use state::ms_now;

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
        // A token file `config` wrote, if any.
        let _ = std::fs::remove_file(self.token_file());
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

    /// The token file [`DriveEmulator::config`] writes (removed with the emulator).
    fn token_file(&self) -> std::path::PathBuf {
        std::env::temp_dir().join(format!(
            "cloudsync-gdrive-emulator-{}.json",
            self.addr.port()
        ))
    }

    /// A backend config pointed at the emulator, authenticating with [`REFRESH_TOKEN`]
    /// (written to a token file in the temp directory, removed when the emulator is dropped),
    /// rooted at `root`.
    pub fn config(&self) -> GdriveConfig {
        let token_file = self.token_file();
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

    /// Ends every open resumable-upload session, as the service does when a session expires:
    /// from then on each request to its URI (a chunk, a status query) is answered `404`.
    ///
    /// Drive's "Upload file data" guide
    /// (<https://developers.google.com/drive/api/guides/manage-uploads>, resumable uploads)
    /// treats a `404 Not Found` from a session URI as an expired session whose upload must be
    /// started again from the beginning with a new session (a paraphrase: the guide's own
    /// sentence could not be retrieved here), which is what a client recording sessions
    /// across runs meets after a long pause. Cancelled sessions (`DELETE`) answer the same.
    pub fn expire_sessions(&self) {
        self.lock().sessions.clear();
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
