//! The Drive API v3 client: authenticated requests, error classification, file metadata and
//! the path-to-id resolution with its directory-id cache.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cloudsync_core::http::{read_prefix, retry_after, send_authorized, status_error};
use cloudsync_core::{Entry, Error, ErrorKind, HashKind, Hashes, RemotePath, Result, Usage};
use futures::{Stream, TryStreamExt};
use reqwest::{RequestBuilder, Response, StatusCode};
use serde::Deserialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::auth::{GoogleTokens, TokenSource};
use crate::config::{Credentials, Validated};
pub(crate) use crate::google::cut;
use crate::google::{self, ApiError};

/// The MIME type of Drive folders.
pub(crate) const FOLDER_MIME: &str = "application/vnd.google-apps.folder";
/// Prefix of Google Docs, Sheets, Slides, ... (no binary content).
pub(crate) const GOOGLE_APPS_PREFIX: &str = "application/vnd.google-apps.";
/// The largest JSON answer read (file resources, listing pages, tokens); a longer one is an
/// error.
pub(crate) const MAX_JSON_BODY: usize = 64 * 1024 * 1024;
/// The bytes of an error answer that are read; the rest is left unread.
pub(crate) const MAX_ERROR_BODY: usize = 64 * 1024;
/// The characters of server-supplied text (messages, reasons, ids) kept in an error message.
/// The most pages one folder listing may have. Pages may be short or even empty with a
/// `nextPageToken` (as the Drive documentation warns), so this is generous; it stops a server
/// that keeps handing out new tokens without end.
pub(crate) const MAX_PAGES: usize = 100_000;
/// The most names one folder listing remembers (to report duplicates): twice Drive's
/// documented limit of 500,000 items in one folder ("File and folder limits" in the Drive API
/// guide), so a server that never stops sending entries cannot fill the memory.
pub(crate) const MAX_CHILDREN: usize = 1_000_000;

/// The file fields every request asks for.
pub(crate) const FILE_FIELDS: &str =
    "id,name,mimeType,size,modifiedTime,md5Checksum,sha1Checksum,sha256Checksum,parents";

/// One file or folder as the API describes it.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct DriveFile {
    pub(crate) id: String,
    pub(crate) name: String,
    #[serde(default)]
    pub(crate) mime_type: String,
    #[serde(default)]
    pub(crate) size: Option<String>,
    #[serde(default)]
    pub(crate) modified_time: Option<String>,
    #[serde(default)]
    pub(crate) md5_checksum: Option<String>,
    #[serde(default)]
    pub(crate) sha1_checksum: Option<String>,
    #[serde(default)]
    pub(crate) sha256_checksum: Option<String>,
}

impl DriveFile {
    pub(crate) fn is_folder(&self) -> bool {
        self.mime_type == FOLDER_MIME
    }

    /// A Google Doc/Sheet/Slides/... (no downloadable content), but not a folder.
    pub(crate) fn is_google_doc(&self) -> bool {
        !self.is_folder() && self.mime_type.starts_with(GOOGLE_APPS_PREFIX)
    }

    /// The entry for this file at `path`.
    pub(crate) fn entry(&self, path: RemotePath) -> Result<Entry> {
        if self.is_folder() {
            let mut e = Entry::dir(path);
            e.id = Some(self.id.clone());
            return Ok(e);
        }
        // A size the service sent but we cannot read makes the file undescribable: an error,
        // never a 0-byte file (which a sync would "fix" by overwriting, or compare wrongly).
        let size = match self.size.as_deref() {
            None => 0,
            Some(s) => s.parse().map_err(|_| {
                Error::new(
                    ErrorKind::Protocol,
                    format!(
                        "the service gave the size {:?}, which is not a size",
                        cut(s)
                    ),
                )
                .with_path(&path)
            })?,
        };
        let mut hashes = Hashes::default();
        for (kind, v) in [
            (HashKind::Md5, &self.md5_checksum),
            (HashKind::Sha1, &self.sha1_checksum),
            (HashKind::Sha256, &self.sha256_checksum),
        ] {
            if let Some(v) = v {
                hashes.insert(kind, v);
            }
        }
        let mut e = Entry::file(path, size)
            .with_modtime(self.modified_time.as_deref().and_then(parse_time))
            .with_hashes(hashes);
        e.id = Some(self.id.clone());
        Ok(e)
    }
}

pub(crate) fn parse_time(s: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(s, &Rfc3339).ok()
}

/// RFC 3339 in UTC with milliseconds, as Drive stores `modifiedTime`; an error for a time
/// that has no UTC form (`to_offset` would panic: 9999-12-31T23:59 at -01:00 is past the last
/// representable date in UTC).
pub(crate) fn format_time(t: OffsetDateTime) -> Result<String> {
    let t = t.checked_to_offset(time::UtcOffset::UTC).ok_or_else(|| {
        Error::new(
            ErrorKind::InvalidInput,
            format!("modtime {t} is out of range in UTC"),
        )
    })?;
    Ok(format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.millisecond()
    ))
}

/// Parses a JSON answer of at most [`MAX_JSON_BODY`] bytes; `what` names it in errors.
pub(crate) async fn json_capped<T: serde::de::DeserializeOwned>(
    res: Response,
    what: &str,
) -> Result<T> {
    google::json_capped(res, MAX_JSON_BODY, what).await
}

/// Quotes `s` for a `q` string literal (backslash-escapes `\` and `'`).
pub(crate) fn q_escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('\'', "\\'")
}

#[derive(Deserialize)]
pub(crate) struct FileList {
    #[serde(default, rename = "nextPageToken")]
    pub(crate) next_page_token: Option<String>,
    #[serde(default)]
    pub(crate) files: Vec<DriveFile>,
}

/// Classifies an error response from its status and the `reason` of the JSON error body.
pub(crate) fn parse_error(status: StatusCode, retry_after: Option<Duration>, body: &str) -> Error {
    let api = ApiError::parse(body);
    let msg = api.describe("Drive API", status);
    let ApiError { message, reason } = api;
    match (status.as_u16(), reason.as_str()) {
        (403, "userRateLimitExceeded" | "rateLimitExceeded" | "sharingRateLimitExceeded") => {
            Error::rate_limited(msg, retry_after)
        }
        (403, "storageQuotaExceeded") if message.contains(SERVICE_ACCOUNT_NO_QUOTA) => {
            no_storage_error()
        }
        (403, "storageQuotaExceeded" | "quotaExceeded") => {
            Error::new(ErrorKind::QuotaExceeded, msg)
        }
        _ => status_error(status, retry_after, msg),
    }
}

/// What Drive says when a service account creates a file outside a shared drive (its answer
/// reads "Service Accounts do not have storage quota. Leverage shared drives (…), or use OAuth
/// delegation (…) instead.", reason `storageQuotaExceeded`).
const SERVICE_ACCOUNT_NO_QUOTA: &str = "Service Accounts do not have storage quota";

/// The error for a write refused because a service account owns no storage: not a full
/// drive (freeing space will not help) but a refusal, with what to do about it.
fn no_storage_error() -> Error {
    Error::new(
        ErrorKind::PermissionDenied,
        "a service account owns no Drive storage (Drive: storageQuotaExceeded): set `drive_id` \
         to a shared drive the account is a member of, or use OAuth user credentials",
    )
}

/// Turns a non-success response into an error.
pub(crate) async fn error_from(res: Response) -> Error {
    let status = res.status();
    let ra = retry_after(res.headers());
    let body = read_prefix(res, MAX_ERROR_BODY).await;
    parse_error(status, ra, &String::from_utf8_lossy(&body))
}

/// The Drive client shared by every operation of one remote.
#[derive(Debug)]
pub(crate) struct DriveCore {
    pub(crate) http: reqwest::Client,
    pub(crate) cfg: Validated,
    auth: GoogleTokens,
    /// Folder ids by path (the root is not stored).
    dirs: Mutex<HashMap<RemotePath, String>>,
    /// Serialises folder creation, so concurrent writes into a new folder do not create it
    /// twice (Drive would allow two folders of the same name).
    pub(crate) mkdir_lock: tokio::sync::Mutex<()>,
    /// What the remote calls itself in `describe` (`gdrive://…`, no secrets); the
    /// [`ErrorContext`](cloudsync_core::ErrorContext) layer names it in errors.
    pub(crate) name: String,
}

impl DriveCore {
    pub(crate) fn new(cfg: Validated) -> Result<Self> {
        let name = match (&cfg.drive_id, cfg.root_id.as_str()) {
            (Some(d), root) if root != d => format!("gdrive://{d}/{root}"),
            (Some(d), _) => format!("gdrive://{d}"),
            (None, "root") => "gdrive://".to_owned(),
            (None, root) => format!("gdrive://{root}"),
        };
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(30).min(cfg.timeout))
            .read_timeout(cfg.timeout)
            .build()
            .map_err(|e| Error::new(ErrorKind::Unexpected, format!("HTTP client: {e}")))?;
        let auth = GoogleTokens {
            source: TokenSource::new(cfg.credentials.clone(), cfg.token_url.clone(), cfg.timeout),
            http: http.clone(),
        };
        Ok(DriveCore {
            http,
            cfg,
            auth,
            dirs: Mutex::new(HashMap::new()),
            mkdir_lock: tokio::sync::Mutex::new(()),
            name,
        })
    }

    /// `e` naming `path`; the operation and this remote's name come from the
    /// [`ErrorContext`](cloudsync_core::ErrorContext) layer.
    pub(crate) fn ctx(&self, e: Error, path: &RemotePath) -> Error {
        e.with_path(path)
    }

    /// `about.storageQuota`: the space of the account.
    pub(crate) async fn usage(&self) -> Result<Usage> {
        let url = self.api("about");
        let res = self
            .send("usage", |c| {
                c.get(&url).query(&[("fields", "storageQuota")])
            })
            .await?;
        let about: About = json_capped(res, "about response").await?;
        let q = about.storage_quota;
        let (total, used) = (num(&q.limit), num(&q.usage));
        Ok(Usage {
            total,
            used,
            free: total.zip(used).map(|(t, u)| t.saturating_sub(u)),
            trashed: num(&q.usage_in_drive_trash),
        })
    }

    /// Sends the request `build` makes, with a bearer token; on 401 fetches a new token and
    /// sends it once more. Non-success answers are returned as errors. `op` (the remote's
    /// operation) chooses the timeout; errors name it through the
    /// [`ErrorContext`](cloudsync_core::ErrorContext) layer.
    pub(crate) async fn send(
        &self,
        op: &'static str,
        build: impl Fn(&reqwest::Client) -> RequestBuilder,
    ) -> Result<Response> {
        let res = self.send_raw(op, &build).await?;
        if res.status().is_success() {
            return Ok(res);
        }
        let e = error_from(res).await;
        // A service account writing outside a shared drive may also be told only that the
        // storage quota is exceeded: it has none.
        let service_account = matches!(self.cfg.credentials, Credentials::ServiceAccount { .. });
        if e.kind() == ErrorKind::QuotaExceeded && service_account && self.cfg.drive_id.is_none() {
            return Err(no_storage_error());
        }
        Err(e)
    }

    /// As [`DriveCore::send`] but hands back any answer (for resumable uploads' 308).
    ///
    /// Every call but a transfer (`read`, `write`) must be over, body included, within the
    /// configured timeout, so a server that trickles its answer cannot hold it for ever;
    /// transfers have the client's idle timeout only.
    pub(crate) async fn send_raw(
        &self,
        op: &'static str,
        build: &impl Fn(&reqwest::Client) -> RequestBuilder,
    ) -> Result<Response> {
        let build = |c: &reqwest::Client| match op {
            "read" | "write" => build(c),
            _ => build(c).timeout(self.cfg.timeout),
        };
        send_authorized(&self.http, &self.auth, build).await
    }

    pub(crate) fn api(&self, tail: &str) -> String {
        format!("{}/{tail}", self.cfg.api_url)
    }

    pub(crate) fn upload(&self, tail: &str) -> String {
        format!("{}/{tail}", self.cfg.upload_url)
    }

    /// Query parameters every files request carries.
    pub(crate) fn common(&self) -> Vec<(&'static str, String)> {
        vec![("supportsAllDrives", "true".into())]
    }

    /// One page of `files.list` for query `q`.
    ///
    /// `includeItemsFromAllDrives=true` goes with every listing, not only with `drive_id`: a
    /// `root_folder_id` inside a shared drive (or a folder shared from one) lists nothing
    /// without it, as the `files.list` reference says of the parameter: "Whether both My Drive
    /// and shared drive items should be included in results." (rclone sends it always too.)
    pub(crate) async fn list_page(&self, q: &str, page_token: Option<&str>) -> Result<FileList> {
        let mut query = self.common();
        query.push(("includeItemsFromAllDrives", "true".into()));
        query.push(("q", q.to_owned()));
        query.push(("pageSize", "1000".into()));
        query.push(("fields", format!("nextPageToken,files({FILE_FIELDS})")));
        if let Some(drive) = &self.cfg.drive_id {
            query.push(("corpora", "drive".into()));
            query.push(("driveId", drive.clone()));
        }
        if let Some(t) = page_token {
            query.push(("pageToken", t.to_owned()));
        }
        let url = self.api("files");
        let res = self.send("list", |c| c.get(&url).query(&query)).await?;
        json_capped(res, "files.list response").await
    }

    /// The files matching `q`, page after page, one page in memory at a time.
    ///
    /// Every page is walked until the service sends no `nextPageToken`: the `files.list`
    /// reference says of `pageSize` that "Partial or empty result pages are possible even
    /// before the end of the files list has been reached", so a short or empty page is never
    /// the end. A token handed out twice (the listing goes round in a circle) or more than
    /// [`MAX_PAGES`] pages is an error.
    pub(crate) fn files_stream<C>(
        core: C,
        q: String,
    ) -> impl Stream<Item = Result<DriveFile>> + Send
    where
        C: std::ops::Deref<Target = DriveCore> + Clone + Send + Sync,
    {
        // Hashes of the page tokens seen: one seen twice means the listing goes round in a
        // circle and would never end.
        let seen: Arc<Mutex<HashSet<u64>>> = Arc::default();
        let state = (core, Arc::<str>::from(q), seen);
        cloudsync_core::stream_paginated(state, |(core, q, seen), token| async move {
            let page = core.list_page(&q, token.as_deref()).await?;
            if let Some(t) = page.next_page_token.as_deref().filter(|t| !t.is_empty()) {
                let hasher = std::hash::BuildHasherDefault::<std::hash::DefaultHasher>::default();
                let mut seen = seen.lock().unwrap_or_else(|p| p.into_inner());
                if !seen.insert(std::hash::BuildHasher::hash_one(&hasher, t)) {
                    return Err(Error::new(
                        ErrorKind::Protocol,
                        "files.list handed out a nextPageToken it gave before; the listing \
                         would never end",
                    ));
                }
                if seen.len() > MAX_PAGES {
                    return Err(Error::new(
                        ErrorKind::Protocol,
                        format!("the folder listing has more than {MAX_PAGES} pages"),
                    ));
                }
            }
            Ok((page.files, page.next_page_token))
        })
    }

    /// The `q` of the children of folder `parent` (optionally only those whose Drive name is
    /// `drive_name`).
    pub(crate) fn children_query(parent: &str, drive_name: Option<&str>) -> String {
        let mut q = format!("'{}' in parents and trashed = false", q_escape(parent));
        if let Some(n) = drive_name {
            q.push_str(&format!(" and name = '{}'", q_escape(n)));
        }
        q
    }

    /// The single child of `parent` whose cloudsync name is `name`; `None` when absent,
    /// Conflict when duplicated.
    ///
    /// Google Docs (and every other native Google type but folders) are never a match: they
    /// have no binary content and are left out of listings, so a write, copy or rename onto
    /// their name must not replace (and trash) them. The new file is created beside the Doc.
    pub(crate) async fn child(
        &self,
        parent: &str,
        name: &str,
        path: &RemotePath,
    ) -> Result<Option<DriveFile>> {
        let drive_name = name_to_drive(name);
        let q = Self::children_query(parent, Some(&drive_name));
        let mut pages = std::pin::pin!(Self::files_stream(self, q));
        let mut found = None;
        let mut count = 0usize;
        while let Some(f) = pages.try_next().await? {
            if f.name != drive_name || f.is_google_doc() {
                continue;
            }
            count += 1;
            if found.is_none() {
                found = Some(f);
            }
        }
        match count {
            0 | 1 => Ok(found),
            n => Err(duplicate_error(path, n)),
        }
    }

    /// Whether folder `id` has any child that is not trashed, walking every page (an empty
    /// first page with a `nextPageToken` proves nothing).
    pub(crate) async fn has_children(&self, id: &str) -> Result<bool> {
        let q = Self::children_query(id, None);
        let mut pages = std::pin::pin!(Self::files_stream(self, q));
        Ok(pages.try_next().await?.is_some())
    }

    pub(crate) fn cached_dir(&self, path: &RemotePath) -> Option<String> {
        if path.is_root() {
            return Some(self.cfg.root_id.clone());
        }
        self.lock_dirs().get(path).cloned()
    }

    pub(crate) fn cache_dir(&self, path: RemotePath, id: String) {
        self.lock_dirs().insert(path, id);
    }

    /// Forgets `path` and everything below it.
    pub(crate) fn forget(&self, path: &RemotePath) {
        self.lock_dirs()
            .retain(|p, _| !(p == path || p.starts_with(path)));
    }

    fn lock_dirs(&self) -> std::sync::MutexGuard<'_, HashMap<RemotePath, String>> {
        self.dirs.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The id of folder `path`; `None` when it (or a parent) does not exist. A file where a
    /// folder is expected is a Conflict.
    pub(crate) async fn dir_id(&self, path: &RemotePath) -> Result<Option<String>> {
        if let Some(id) = self.cached_dir(path) {
            return Ok(Some(id));
        }
        let Some(parent) = path.parent() else {
            return Ok(Some(self.cfg.root_id.clone()));
        };
        let Some(pid) = Box::pin(self.dir_id(&parent)).await? else {
            return Ok(None);
        };
        match self.child(&pid, path.name(), path).await? {
            None => Ok(None),
            Some(f) if f.is_folder() => {
                self.cache_dir(path.clone(), f.id.clone());
                Ok(Some(f.id))
            }
            Some(_) => Err(
                Error::new(ErrorKind::Conflict, "a file is in the way of a folder").with_path(path),
            ),
        }
    }

    /// The file or folder at `path`, `None` when absent.
    pub(crate) async fn lookup(&self, path: &RemotePath) -> Result<Option<DriveFile>> {
        let Some(parent) = path.parent() else {
            return Ok(None);
        };
        let Some(pid) = self.dir_id(&parent).await? else {
            return Ok(None);
        };
        let f = self.child(&pid, path.name(), path).await?;
        if let Some(f) = &f {
            if f.is_folder() {
                self.cache_dir(path.clone(), f.id.clone());
            }
        }
        Ok(f)
    }

    /// The entry at `path` (the root is always a folder).
    pub(crate) async fn stat(&self, path: &RemotePath) -> Result<Entry> {
        if path.is_root() {
            return Ok(Entry::dir(RemotePath::root()));
        }
        match self.lookup(path).await {
            Ok(Some(f)) => f.entry(path.clone()),
            Ok(None) => Err(self.ctx(
                Error::new(ErrorKind::NotFound, "no such file or directory"),
                path,
            )),
            Err(e) => Err(self.ctx(e, path)),
        }
    }

    /// The file (never a folder) at `path`.
    pub(crate) async fn file(&self, path: &RemotePath) -> Result<DriveFile> {
        match self.lookup(path).await {
            Ok(Some(f)) if f.is_folder() => Err(self.ctx(
                Error::new(ErrorKind::Conflict, "is a folder, not a file"),
                path,
            )),
            Ok(Some(f)) => Ok(f),
            Ok(None) => Err(self.ctx(Error::new(ErrorKind::NotFound, "no such file"), path)),
            Err(e) => Err(self.ctx(e, path)),
        }
    }

    /// The checksum of `kind` that Drive keeps for the file at `path`.
    pub(crate) async fn hash(&self, path: &RemotePath, kind: HashKind) -> Result<String> {
        let f = self.file(path).await?;
        let known = match kind {
            HashKind::Md5 => f.md5_checksum,
            HashKind::Sha1 => f.sha1_checksum,
            HashKind::Sha256 => f.sha256_checksum,
            _ => None,
        };
        match known {
            Some(h) => Ok(h.to_ascii_lowercase()),
            None => Err(self.ctx(
                Error::new(
                    ErrorKind::Unsupported,
                    format!("Drive keeps no {kind} for this file"),
                ),
                path,
            )),
        }
    }

    /// Creates the folder `dir` and its parents (the root is always there).
    pub(crate) async fn create_dir(&self, dir: &RemotePath) -> Result<()> {
        if dir.is_root() {
            return Ok(());
        }
        self.mkdir_all(dir)
            .await
            .map(|_| ())
            .map_err(|e| self.ctx(e, dir))
    }

    /// Creates folder `path` and its parents; returns its id. Its errors name the `mkdir`
    /// step (unless they name a step of their own, as a token refresh does), also when it
    /// makes the parent of a write, copy or rename.
    pub(crate) async fn mkdir_all(&self, path: &RemotePath) -> Result<String> {
        self.mkdir_all_steps(path)
            .await
            .map_err(|e| e.or_operation("mkdir"))
    }

    async fn mkdir_all_steps(&self, path: &RemotePath) -> Result<String> {
        if let Some(id) = self.dir_id(path).await? {
            return Ok(id);
        }
        let _guard = self.mkdir_lock.lock().await;
        let mut current = RemotePath::root();
        let mut id = self.cfg.root_id.clone();
        for seg in path.segments() {
            current = current.join(seg)?;
            id = match self.child(&id, seg, &current).await? {
                Some(f) if f.is_folder() => f.id,
                Some(_) => {
                    return Err(Error::new(
                        ErrorKind::Conflict,
                        "a file is in the way of a folder",
                    )
                    .with_path(&current));
                }
                None => self.create_folder(&id, seg).await?.id,
            };
            self.cache_dir(current.clone(), id.clone());
        }
        Ok(id)
    }

    async fn create_folder(&self, parent: &str, name: &str) -> Result<DriveFile> {
        let body = serde_json::json!({
            "name": name_to_drive(name),
            "mimeType": FOLDER_MIME,
            "parents": [parent],
        });
        let mut query = self.common();
        query.push(("fields", FILE_FIELDS.into()));
        let url = self.api("files");
        let res = self
            .send("mkdir", |c| c.post(&url).query(&query).json(&body))
            .await?;
        file_json(res).await
    }

    /// `files.update` of metadata (`body`), with optional parent changes.
    pub(crate) async fn update_meta(
        &self,
        op: &'static str,
        id: &str,
        body: serde_json::Value,
        parents: Option<(&str, &str)>,
    ) -> Result<DriveFile> {
        let mut query = self.common();
        query.push(("fields", FILE_FIELDS.into()));
        if let Some((add, remove)) = parents {
            query.push(("addParents", add.to_owned()));
            query.push(("removeParents", remove.to_owned()));
        }
        let url = self.api(&format!("files/{}", enc(id)));
        let res = self
            .send(op, |c| c.patch(&url).query(&query).json(&body))
            .await?;
        file_json(res).await
    }

    /// `files.copy`.
    pub(crate) async fn copy_file(&self, id: &str, body: serde_json::Value) -> Result<DriveFile> {
        let mut query = self.common();
        query.push(("fields", FILE_FIELDS.into()));
        let url = self.api(&format!("files/{}/copy", enc(id)));
        let res = self
            .send("copy", |c| c.post(&url).query(&query).json(&body))
            .await?;
        file_json(res).await
    }
}

/// Percent-encodes an id for a URL path segment.
pub(crate) fn enc(id: &str) -> String {
    percent_encoding::utf8_percent_encode(id, percent_encoding::NON_ALPHANUMERIC).to_string()
}

/// Parses a file resource from a response.
pub(crate) async fn file_json(res: Response) -> Result<DriveFile> {
    json_capped(res, "file resource").await
}

/// The error for `n` files of one name in one folder.
pub(crate) fn duplicate_error(path: &RemotePath, n: usize) -> Error {
    Error::new(
        ErrorKind::Conflict,
        format!(
            "{n} files are called {path:?} in one Drive folder; rename or remove all but one \
             (cloudsync never picks one of them)"
        ),
    )
    .with_path(path)
}

/// The quote that keeps a literal replacement character apart from an encoded one (U+201B
/// SINGLE HIGH-REVERSED-9 QUOTATION MARK, rclone's `lib/encoder` `QuoteRune`).
const QUOTE: char = '\u{201B}';
/// What `/` in a Drive name becomes (U+FF0F FULLWIDTH SOLIDUS, as rclone's `Standard`
/// encoding maps it).
const FULLWIDTH_SLASH: char = '\u{FF0F}';
/// What a NUL in a Drive name becomes (U+2400 SYMBOL FOR NULL).
const NUL_SYMBOL: char = '\u{2400}';
/// What the names `.` and `..` are made of (U+FF0E FULLWIDTH FULL STOP).
const FULLWIDTH_DOT: &str = "\u{FF0E}";

/// Whether `name` is `．` or `．．`, the stand-ins for the Drive names `.` and `..`.
fn is_dot_standin(name: &str) -> bool {
    name == FULLWIDTH_DOT || name.strip_prefix(FULLWIDTH_DOT) == Some(FULLWIDTH_DOT)
}

fn push_quotes(out: &mut String, n: usize) {
    out.extend(std::iter::repeat_n(QUOTE, n));
}

/// The cloudsync name of the Drive name `raw`.
///
/// Drive names may hold `/` (and be `.` or `..`), which no path segment can. As rclone's
/// encoder does, `/` becomes `／` (U+FF0F), a NUL becomes `␀`, the names `.` and `..` become
/// `．` and `．．`; a `／` or `␀` that was in the Drive name already is quoted with `‛`
/// (U+201B), and so is a whole name `．`/`．．`. Quotes before a replacement character are
/// doubled (as backslashes before a quote are in a Windows command line), so the mapping is a
/// bijection between Drive names and path segments: [`name_to_drive`] undoes it exactly, and
/// every segment is the image of exactly one Drive name.
pub(crate) fn name_from_drive(raw: &str) -> String {
    match raw {
        "." => return FULLWIDTH_DOT.to_owned(),
        ".." => return format!("{FULLWIDTH_DOT}{FULLWIDTH_DOT}"),
        _ => {}
    }
    if is_dot_standin(raw.trim_start_matches(QUOTE)) {
        return format!("{QUOTE}{raw}");
    }
    let mut out = String::with_capacity(raw.len() + 8);
    let mut quotes = 0usize;
    for c in raw.chars() {
        match c {
            QUOTE => quotes += 1,
            '/' | '\0' => {
                push_quotes(&mut out, 2 * quotes);
                quotes = 0;
                out.push(if c == '/' {
                    FULLWIDTH_SLASH
                } else {
                    NUL_SYMBOL
                });
            }
            FULLWIDTH_SLASH | NUL_SYMBOL => {
                push_quotes(&mut out, 2 * quotes + 1);
                quotes = 0;
                out.push(c);
            }
            _ => {
                push_quotes(&mut out, quotes);
                quotes = 0;
                out.push(c);
            }
        }
    }
    push_quotes(&mut out, quotes);
    out
}

/// The Drive name of the cloudsync name `name` (the inverse of [`name_from_drive`]).
pub(crate) fn name_to_drive(name: &str) -> String {
    if name == FULLWIDTH_DOT {
        return ".".to_owned();
    }
    if is_dot_standin(name) {
        return "..".to_owned();
    }
    let rest = name.trim_start_matches(QUOTE);
    if rest.len() < name.len() && is_dot_standin(rest) {
        // One quote less: `‛．` is the Drive name `．`.
        return name[QUOTE.len_utf8()..].to_owned();
    }
    let mut out = String::with_capacity(name.len());
    let mut quotes = 0usize;
    for c in name.chars() {
        match c {
            QUOTE => quotes += 1,
            FULLWIDTH_SLASH | NUL_SYMBOL => {
                push_quotes(&mut out, quotes / 2);
                out.push(match (quotes % 2, c) {
                    (1, c) => c,
                    (_, FULLWIDTH_SLASH) => '/',
                    _ => '\0',
                });
                quotes = 0;
            }
            _ => {
                push_quotes(&mut out, quotes);
                quotes = 0;
                out.push(c);
            }
        }
    }
    push_quotes(&mut out, quotes);
    out
}

/// The part of `about` that `usage` reads.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct About {
    storage_quota: Quota,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Quota {
    #[serde(default)]
    limit: Option<String>,
    #[serde(default)]
    usage: Option<String>,
    #[serde(default)]
    usage_in_drive_trash: Option<String>,
}

/// A decimal count as Drive sends it (a string).
fn num(s: &Option<String>) -> Option<u64> {
    s.as_deref().and_then(|v| v.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A random string over the characters the encoding treats specially, and a plain one.
    fn random_name(max: usize) -> String {
        const ALPHABET: [char; 8] = [
            'a',
            '/',
            '\0',
            '.',
            QUOTE,
            FULLWIDTH_SLASH,
            NUL_SYMBOL,
            '\u{FF0E}',
        ];
        let len = fastrand::usize(1..=max);
        (0..len)
            .map(|_| ALPHABET[fastrand::usize(..ALPHABET.len())])
            .collect()
    }

    #[test]
    fn a_service_account_without_storage_is_permission_denied() {
        let body = r#"{"error":{"code":403,"message":"Service Accounts do not have storage quota. Leverage shared drives (https://developers.google.com/workspace/drive/api/guides/about-shareddrives), or use OAuth delegation (http://support.google.com/a/answer/7281227) instead.","errors":[{"reason":"storageQuotaExceeded"}]}}"#;
        let e = parse_error(StatusCode::FORBIDDEN, None, body);
        assert_eq!(e.kind(), ErrorKind::PermissionDenied, "{e}");
        assert!(e.message().contains("drive_id"), "{e}");
        // A full drive of a user is still a full drive.
        let body = r#"{"error":{"code":403,"message":"The user's Drive storage quota has been exceeded.","errors":[{"reason":"storageQuotaExceeded"}]}}"#;
        let e = parse_error(StatusCode::FORBIDDEN, None, body);
        assert_eq!(e.kind(), ErrorKind::QuotaExceeded, "{e}");
    }

    #[test]
    fn slash_names_map_as_rclone_maps_them() {
        assert_eq!(name_from_drive("a/b"), "a\u{FF0F}b");
        assert_eq!(name_to_drive("a\u{FF0F}b"), "a/b");
        // A fullwidth solidus already in the Drive name is quoted, as rclone quotes it.
        assert_eq!(name_from_drive("a\u{FF0F}b"), "a\u{201B}\u{FF0F}b");
        assert_eq!(name_from_drive("."), "\u{FF0E}");
        assert_eq!(name_from_drive(".."), "\u{FF0E}\u{FF0E}");
        assert_eq!(name_from_drive("\u{FF0E}"), "\u{201B}\u{FF0E}");
        assert_eq!(name_from_drive("plain name.txt"), "plain name.txt");
        assert_eq!(name_from_drive("it\u{201B}s"), "it\u{201B}s");
    }

    #[test]
    fn the_name_mapping_is_a_bijection() {
        fastrand::seed(0x5eed_d1e5);
        for _ in 0..20_000 {
            // Drive name -> segment -> the same Drive name; and the segment is a valid one.
            let raw = random_name(10);
            let local = name_from_drive(&raw);
            assert_eq!(name_to_drive(&local), raw, "raw {raw:?} local {local:?}");
            assert!(
                RemotePath::new(&local).is_ok(),
                "{raw:?} maps to {local:?}, which is no path segment"
            );
            // Any valid segment -> Drive name -> the same segment (nothing a sync writes is
            // listed back under another name).
            let seg = random_name(10);
            if RemotePath::new(&seg).is_ok() && !seg.contains('/') {
                let drive = name_to_drive(&seg);
                assert_eq!(name_from_drive(&drive), seg, "seg {seg:?} drive {drive:?}");
            }
        }
    }
}
