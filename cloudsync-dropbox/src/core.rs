//! The HTTP side: the client, RPC and content-endpoint calls, Dropbox paths for remote paths,
//! metadata to [`Entry`], and mapping error answers to [`Error`] kinds ([`parse_error`]).

use std::time::Duration;

use bytes::Bytes;
use cloudsync_core::http::{
    delay_secs, read_capped, read_prefix, retry_after, send_authorized, status_error,
};
use cloudsync_core::{
    Entry, EntryKind, Error, ErrorKind, HashKind, Hashes, RemotePath, Result, Usage,
};
use reqwest::header::CONTENT_TYPE;
use reqwest::{RequestBuilder, Response, StatusCode};
use serde::Deserialize;
use serde_json::Value;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::auth::Tokens;
use crate::batcher::Batcher;
use crate::config::Validated;

/// The header carrying a content endpoint's arguments.
pub(crate) const ARG_HEADER: &str = "Dropbox-API-Arg";

/// The largest JSON answer read (metadata, listing pages, tokens); a longer one is an error.
pub(crate) const MAX_JSON_BODY: usize = 64 * 1024 * 1024;
/// The bytes of an error answer that are read; the rest is left unread.
pub(crate) const MAX_ERROR_BODY: usize = 64 * 1024;
/// Files remembered as already reported (see [`DropboxCore::first_notice`]).
pub(crate) const MAX_NOTICES: usize = 10_000;
/// The characters of server-supplied text (names, summaries, bodies) kept in an error message.
pub(crate) const MAX_SERVER_TEXT: usize = 200;

/// Everything the reader, writer, lister and deleter share: one pooled HTTP client, the token
/// source and the remote's root.
#[derive(Debug)]
pub(crate) struct DropboxCore {
    client: reqwest::Client,
    api_url: String,
    content_url: String,
    tokens: Tokens,
    /// `""` for the whole Dropbox, else `/a/b`.
    pub(crate) root: String,
    pub(crate) chunk_size: u64,
    /// Bytes per append of a resumable upload.
    pub(crate) session_chunk_size: u64,
    pub(crate) list_limit: u32,
    /// Commits small files in batches, when configured.
    pub(crate) batcher: Option<Batcher>,
    /// `path_lower` of files already reported once (files that can only be exported), at
    /// most [`MAX_NOTICES`] of them.
    notices: std::sync::Mutex<std::collections::HashSet<String>>,
    pub(crate) describe: String,
    /// The whole time a metadata call (RPC or token request) may take, body included; a
    /// server that stalls or trickles fails with a temporary error after it. Transfers have
    /// only the client's idle (read) timeout, as large bodies may take long.
    deadline: Duration,
}

impl DropboxCore {
    pub(crate) fn new(cfg: Validated) -> Result<Self> {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(30).min(cfg.timeout))
            .read_timeout(cfg.timeout)
            .pool_idle_timeout(Duration::from_secs(50))
            .pool_max_idle_per_host(32)
            .tcp_nodelay(true)
            .user_agent(concat!("cloudsync/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| {
                Error::new(
                    ErrorKind::ConfigInvalid,
                    format!("dropbox: cannot build the HTTP client: {e}"),
                )
                .with_source(e)
            })?;
        let tokens = Tokens::new(
            client.clone(),
            cfg.timeout,
            cfg.token_url,
            cfg.app_key,
            cfg.app_secret,
            cfg.refresh,
            cfg.access_token,
            cfg.on_token_refresh,
        );
        let describe = format!("dropbox://{}", cfg.root.trim_start_matches('/'));
        Ok(DropboxCore {
            client,
            api_url: cfg.api_url,
            content_url: cfg.content_url,
            tokens,
            root: cfg.root,
            chunk_size: cfg.chunk_size,
            session_chunk_size: cfg.session_chunk_size,
            list_limit: cfg.list_limit,
            batcher: (cfg.batch_size > 0).then(|| Batcher::new(cfg.batch_size, cfg.batch_timeout)),
            notices: Default::default(),
            describe,
            deadline: cfg.timeout,
        })
    }

    /// Whether `key` is reported for the first time (then it is remembered; past
    /// [`MAX_NOTICES`] keys everything counts as reported before, so memory stays bounded).
    pub(crate) fn first_notice(&self, key: &str) -> bool {
        let mut n = self.notices.lock().unwrap_or_else(|p| p.into_inner());
        if n.contains(key) || n.len() >= MAX_NOTICES {
            return false;
        }
        n.insert(key.to_owned());
        true
    }

    /// The Dropbox path of `path`: `""` for the root of the whole Dropbox, else `/a/b`.
    pub(crate) fn dbx_path(&self, path: &RemotePath) -> String {
        if path.is_root() {
            self.root.clone()
        } else {
            format!("{}/{}", self.root, path.as_str())
        }
    }

    /// Sends a request built by `build` with a valid token (core's
    /// [`send_authorized`]: on a `401` the token is refreshed once and the request sent again).
    /// Errors come back classified, naming `endpoint` as their operation (a failed token
    /// refresh names `oauth2/token`, its own step); the remote and the remote's operation come
    /// from the [`ErrorContext`](cloudsync_core::ErrorContext) layer.
    async fn send(
        &self,
        endpoint: &'static str,
        build: impl Fn() -> RequestBuilder,
    ) -> Result<Response> {
        let resp = send_authorized(&self.client, &self.tokens, |_| build())
            .await
            .map_err(|e| e.or_operation(endpoint))?;
        if resp.status().is_success() || resp.status() == StatusCode::RANGE_NOT_SATISFIABLE {
            return Ok(resp);
        }
        Err(parse_error(endpoint, resp).await)
    }

    /// Calls an RPC endpoint (`files/list_folder`) with a JSON body; returns the JSON answer.
    pub(crate) async fn rpc(&self, endpoint: &'static str, arg: &Value) -> Result<Value> {
        let url = format!("{}/2/{endpoint}", self.api_url);
        let body = serde_json::to_vec(arg)
            .map_err(|e| Error::new(ErrorKind::Unexpected, format!("encode arguments: {e}")))?;
        let body = Bytes::from(body);
        let resp = self
            .send(endpoint, || {
                self.client
                    .post(&url)
                    .timeout(self.deadline)
                    .header(CONTENT_TYPE, "application/json")
                    .body(body.clone())
            })
            .await?;
        json_body(endpoint, resp).await
    }

    /// Calls a content-upload endpoint (`files/upload`, `files/upload_session/*`): arguments
    /// in the `Dropbox-API-Arg` header, `body` as the request body; returns the JSON answer.
    pub(crate) async fn upload(
        &self,
        endpoint: &'static str,
        arg: &Value,
        body: Bytes,
    ) -> Result<Value> {
        let url = format!("{}/2/{endpoint}", self.content_url);
        let header = header_safe_json(arg)?;
        let resp = self
            .send(endpoint, || {
                self.client
                    .post(&url)
                    .header(ARG_HEADER, header.as_str())
                    .header(CONTENT_TYPE, "application/octet-stream")
                    .body(body.clone())
            })
            .await?;
        json_body(endpoint, resp).await
    }

    /// Calls `files/download` for `arg`, with an HTTP `Range` when given (`start..end`).
    pub(crate) async fn download(
        &self,
        arg: &Value,
        range: Option<(u64, u64)>,
    ) -> Result<Response> {
        let endpoint = "files/download";
        let url = format!("{}/2/{endpoint}", self.content_url);
        let header = header_safe_json(arg)?;
        self.send(endpoint, || {
            let mut b = self.client.post(&url).header(ARG_HEADER, header.as_str());
            if let Some((start, end)) = range {
                b = b.header(
                    reqwest::header::RANGE,
                    format!("bytes={start}-{}", end.saturating_sub(1)),
                );
            }
            b
        })
        .await
    }

    /// `files/get_metadata` of `path`.
    pub(crate) async fn metadata(&self, path: &RemotePath) -> Result<Metadata> {
        let v = self
            .rpc(
                "files/get_metadata",
                &serde_json::json!({ "path": self.dbx_path(path) }),
            )
            .await
            .map_err(|e| e.with_path(path))?;
        Metadata::from_value(v, "files/get_metadata")
    }

    /// The entry at `path`.
    pub(crate) async fn stat(&self, path: &RemotePath) -> Result<Entry> {
        if path.is_root() && self.root.is_empty() {
            // The root of a Dropbox has no metadata.
            return Ok(Entry::dir(path.clone()));
        }
        self.metadata(path).await?.to_entry(path.clone())
    }

    /// `files/create_folder_v2`; a folder already there is success, a file in the way is a
    /// [`ErrorKind::Conflict`].
    pub(crate) async fn create_folder(&self, dir: &RemotePath) -> Result<()> {
        if dir.is_root() && self.root.is_empty() {
            return Ok(());
        }
        crate::names::check(dir)?;
        let arg = serde_json::json!({ "path": self.dbx_path(dir), "autorename": false });
        match self.rpc("files/create_folder_v2", &arg).await {
            Ok(_) => Ok(()),
            Err(e) => {
                let tags = tags_of(&e);
                let exists_as_folder = tags.iter().any(|t| t == "conflict")
                    && tags.last().is_some_and(|t| t == "folder");
                if exists_as_folder {
                    Ok(())
                } else if tags.iter().any(|t| t == "conflict") {
                    Err(Error::new(ErrorKind::Conflict, "a file is in the way")
                        .with_path(dir)
                        .with_source(e))
                } else {
                    Err(e.with_path(dir))
                }
            }
        }
    }

    /// `users/get_space_usage`.
    pub(crate) async fn usage(&self) -> Result<Usage> {
        let v = self.rpc("users/get_space_usage", &Value::Null).await?;
        let used = v.get("used").and_then(Value::as_u64);
        // Individual accounts: `allocated`; team space: the team's allocation and use.
        let alloc = v.get("allocation");
        let total = alloc
            .and_then(|a| a.get("allocated"))
            .and_then(Value::as_u64);
        let team_used = alloc.and_then(|a| a.get("used")).and_then(Value::as_u64);
        let free = match (total, team_used.or(used)) {
            (Some(t), Some(u)) => Some(t.saturating_sub(u)),
            _ => None,
        };
        Ok(Usage {
            total,
            used,
            free,
            trashed: None,
        })
    }
}

/// Reads a JSON answer (`null` or an empty body become [`Value::Null`]), at most
/// [`MAX_JSON_BODY`] bytes of it.
async fn json_body(endpoint: &'static str, resp: Response) -> Result<Value> {
    let body = read_capped(resp, MAX_JSON_BODY)
        .await
        .map_err(|e| e.with_operation(endpoint))?;
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Value::Null);
    }
    serde_json::from_slice(&body).map_err(|e| {
        Error::new(
            ErrorKind::Protocol,
            format!("malformed JSON answer: {}", cut(&e.to_string())),
        )
        .with_operation(endpoint)
    })
}

/// `s` cut to [`MAX_SERVER_TEXT`] characters, with `…` when something was cut: server text in
/// an error message stays readable however long the server made it.
pub(crate) fn cut(s: &str) -> String {
    cloudsync_core::cut_text(s, MAX_SERVER_TEXT).into_owned()
}

/// JSON with every character outside printable ASCII escaped as `\uXXXX` (surrogate pairs above
/// U+FFFF), as the service requires for the `Dropbox-API-Arg` header.
pub(crate) fn header_safe_json(v: &Value) -> Result<String> {
    let s = serde_json::to_string(v)
        .map_err(|e| Error::new(ErrorKind::Unexpected, format!("encode arguments: {e}")))?;
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if (' '..='~').contains(&c) {
            out.push(c);
        } else {
            let mut units = [0u16; 2];
            for u in c.encode_utf16(&mut units) {
                out.push_str(&format!("\\u{u:04x}"));
            }
        }
    }
    Ok(out)
}

/// The error body the service sends with 401, 409 and 429.
#[derive(Deserialize)]
struct ErrorBody {
    #[serde(default)]
    error_summary: String,
    #[serde(default)]
    error: Value,
}

/// The chain of `.tag`s of a union error value: `{".tag": "path", "path": {".tag":
/// "not_found"}}` gives `["path", "not_found"]`. Struct members named `reason` (as in
/// `UploadWriteFailed`) and `error` are followed too.
pub(crate) fn tag_chain(v: &Value) -> Vec<String> {
    let mut tags = Vec::new();
    let mut cur = v;
    for _ in 0..16 {
        let Some(tag) = cur.get(".tag").and_then(Value::as_str) else {
            match cur.get("reason").or_else(|| cur.get("error")) {
                Some(next) if next.is_object() => {
                    cur = next;
                    continue;
                }
                _ => break,
            }
        };
        tags.push(tag.to_owned());
        match cur.get(tag) {
            Some(next) if next.is_object() => cur = next,
            _ => break,
        }
    }
    tags
}

/// Maps a failed answer to an [`Error`]: 400 `InvalidInput` (the service rejected the
/// request's shape), 401 `Auth`, 403 `PermissionDenied`, 409 by the error's `.tag`s, 429
/// `RateLimited` with `Retry-After`, 5xx `Transient`.
pub(crate) async fn parse_error(endpoint: &'static str, resp: Response) -> Error {
    let status = resp.status();
    let retry_after = retry_after(resp.headers());
    let body = read_prefix(resp, MAX_ERROR_BODY).await;
    let parsed: Option<ErrorBody> = serde_json::from_slice(&body).ok();
    // Rate-limit errors also carry the delay in the body (`RateLimitError.retry_after`).
    let retry_after = retry_after.or_else(|| {
        parsed
            .as_ref()
            .and_then(|b| b.error.get("retry_after"))
            .and_then(Value::as_u64)
            .map(delay_secs)
    });
    let (summary, mut tags) = match &parsed {
        Some(b) => (b.error_summary.clone(), tag_chain(&b.error)),
        None => (String::new(), Vec::new()),
    };
    if tags.is_empty() {
        // The summary is the same chain of tags, joined by `/` and ending in `/...`.
        tags = summary
            .split('/')
            .map(str::trim)
            .filter(|t| !t.is_empty() && !t.starts_with('.'))
            .map(str::to_owned)
            .collect();
    }
    let what = if summary.is_empty() {
        cut(String::from_utf8_lossy(&body[..body.len().min(4 * MAX_SERVER_TEXT)]).trim())
    } else {
        cut(&summary)
    };
    let msg = format!("{endpoint}: {status}: {what}");
    let error = match status.as_u16() {
        401 => Error::new(ErrorKind::Auth, msg),
        409 => classify_409(&tags, msg, retry_after),
        429 => status_error(status, retry_after.or(Some(Duration::from_secs(1))), msg),
        400 | 403 | 500..=599 => status_error(status, retry_after, msg),
        _ => Error::new(ErrorKind::Protocol, msg),
    };
    let error = error.with_operation(endpoint);
    if tags.is_empty() {
        error
    } else {
        let correct_offset = parsed.as_ref().and_then(|b| find_correct_offset(&b.error));
        error.with_source(Tags(tags, correct_offset))
    }
}

/// The error kind of a 409 answer (or a failed batch entry) from its `.tag` chain.
pub(crate) fn classify_409(tags: &[String], msg: String, retry_after: Option<Duration>) -> Error {
    let has = |t: &str| tags.iter().any(|x| x == t);
    let kind = if has("too_many_write_operations") || has("too_many_requests") {
        ErrorKind::RateLimited
    } else if has("insufficient_space") || has("insufficient_quota") {
        ErrorKind::QuotaExceeded
    } else if has("not_found") {
        ErrorKind::NotFound
    } else if has("conflict") {
        // A file is in the way: the target exists. A folder (or a file where a folder
        // is needed) is a conflict of kinds.
        if tags.last().is_some_and(|t| t == "file") {
            ErrorKind::AlreadyExists
        } else {
            ErrorKind::Conflict
        }
    } else if has("not_file") || has("not_folder") {
        ErrorKind::Conflict
    } else if has("no_write_permission")
        || has("team_folder")
        || has("restricted_content")
        || has("access_denied")
    {
        ErrorKind::PermissionDenied
    } else if has("malformed_path")
        || has("disallowed_name")
        || has("too_long")
        || has("invalid_path")
    {
        ErrorKind::InvalidInput
    } else if has("content_hash_mismatch") || has("incorrect_offset") {
        ErrorKind::ConditionNotMatch
    } else if has("unsupported_file") {
        // DownloadError.unsupported_file: the file can only be exported.
        ErrorKind::Unsupported
    } else if has("duplicated_or_nested_paths") || has("cant_move_folder_into_itself") {
        ErrorKind::Conflict
    } else {
        ErrorKind::Unexpected
    };
    match kind {
        ErrorKind::RateLimited => Error::rate_limited(msg, retry_after),
        // The upload session was broken by a lost request: a new write may succeed.
        ErrorKind::ConditionNotMatch => Error::new(kind, msg).set_temporary(true),
        _ => Error::new(kind, msg),
    }
}

/// Keeps the tag chain with the error, so callers can tell `to/conflict` from
/// `from_lookup/not_found` without reading the message.
pub(crate) fn attach_tags(e: Error, tags: &[String]) -> Error {
    if tags.is_empty() {
        e
    } else {
        e.with_source(Tags(tags.to_vec(), None))
    }
}

/// `correct_offset` of an `incorrect_offset` error (UploadSessionOffsetError), wherever the
/// union nests it.
fn find_correct_offset(v: &Value) -> Option<u64> {
    let mut cur = v;
    for _ in 0..8 {
        if let Some(n) = cur.get("correct_offset").and_then(Value::as_u64) {
            return Some(n);
        }
        let tag = cur.get(".tag").and_then(Value::as_str)?;
        cur = cur.get(tag)?;
    }
    None
}

/// The `.tag` chain of an API error, as the error's source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Tags(pub(crate) Vec<String>, pub(crate) Option<u64>);

impl std::fmt::Display for Tags {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "error tags {}", cut(&self.0.join("/")))
    }
}

impl std::error::Error for Tags {}

/// The `correct_offset` an `incorrect_offset` error carried: files.stone,
/// UploadSessionOffsetError.correct_offset, "The offset up to which data has been collected."
pub(crate) fn correct_offset_of(e: &Error) -> Option<u64> {
    std::error::Error::source(e)
        .and_then(|s| s.downcast_ref::<Tags>())
        .and_then(|t| t.1)
}

/// The tag chain of an error produced by [`parse_error`].
pub(crate) fn tags_of(e: &Error) -> &[String] {
    std::error::Error::source(e)
        .and_then(|s| s.downcast_ref::<Tags>())
        .map(|t| t.0.as_slice())
        .unwrap_or(&[])
}

/// Metadata of a file or folder as the service returns it.
#[derive(Debug, Deserialize)]
pub(crate) struct Metadata {
    #[serde(rename = ".tag")]
    pub(crate) tag: String,
    pub(crate) name: String,
    #[serde(default)]
    pub(crate) path_lower: Option<String>,
    #[serde(default)]
    pub(crate) id: Option<String>,
    #[serde(default)]
    pub(crate) client_modified: Option<String>,
    #[serde(default)]
    pub(crate) rev: Option<String>,
    #[serde(default)]
    pub(crate) size: Option<u64>,
    #[serde(default)]
    pub(crate) content_hash: Option<String>,
    /// `false` for a file that can only be exported (a Paper doc, a cloud doc).
    #[serde(default)]
    pub(crate) is_downloadable: Option<bool>,
}

impl Metadata {
    /// Parses metadata from a JSON value.
    pub(crate) fn from_value(v: Value, op: &'static str) -> Result<Self> {
        serde_json::from_value(v).map_err(|e| {
            Error::new(
                ErrorKind::Protocol,
                format!("malformed metadata: {}", cut(&e.to_string())),
            )
            .with_operation(op)
        })
    }

    pub(crate) fn is_folder(&self) -> bool {
        self.tag == "folder"
    }

    /// The entry at `path` this metadata describes.
    pub(crate) fn to_entry(&self, path: RemotePath) -> Result<Entry> {
        let kind = match self.tag.as_str() {
            "file" => EntryKind::File,
            "folder" => EntryKind::Dir,
            other => {
                return Err(Error::new(
                    ErrorKind::NotFound,
                    format!("{path} is {}", cut(other)),
                ));
            }
        };
        let mut entry = match kind {
            EntryKind::File => Entry::file(path, self.size.unwrap_or(0)),
            EntryKind::Dir => Entry::dir(path),
        };
        if kind == EntryKind::File {
            entry.modtime = match &self.client_modified {
                Some(t) => Some(OffsetDateTime::parse(t, &Rfc3339).map_err(|e| {
                    Error::new(
                        ErrorKind::Protocol,
                        format!("bad client_modified {:?}: {e}", cut(t)),
                    )
                })?),
                None => None,
            };
            if let Some(h) = &self.content_hash {
                if h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()) {
                    entry.hashes = Hashes::default().with(HashKind::Dropbox, h.as_str());
                }
            }
            entry.etag = self.rev.clone();
        }
        entry.id = self.id.clone();
        Ok(entry)
    }
}

/// `client_modified` for a modtime: whole seconds, UTC, `%Y-%m-%dT%H:%M:%SZ`.
pub(crate) fn client_modified(t: OffsetDateTime) -> Result<String> {
    // `to_offset` panics when UTC is past the last representable date (9999-12-31T23:59
    // at -01:00): such a modtime is refused instead.
    let t = t.checked_to_offset(time::UtcOffset::UTC).ok_or_else(|| {
        Error::new(
            ErrorKind::InvalidInput,
            format!("modtime {t} is out of range in UTC"),
        )
    })?;
    let t = t.replace_nanosecond(0).unwrap_or(t);
    let fmt = time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z");
    t.format(&fmt)
        .map_err(|e| Error::new(ErrorKind::InvalidInput, format!("modtime {t}: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn header_json_escapes_non_ascii() {
        let s = header_safe_json(&json!({"path": "/ü/日本/😀\u{7f}"})).unwrap();
        assert_eq!(s, r#"{"path":"/\u00fc/\u65e5\u672c/\ud83d\ude00\u007f"}"#);
        assert!(s.bytes().all(|b| (0x20..0x7f).contains(&b)));
        // It is still the same JSON.
        let back: Value = serde_json::from_str(&s).unwrap();
        assert_eq!(back["path"], "/ü/日本/😀\u{7f}");
    }

    #[test]
    fn tag_chains() {
        assert_eq!(
            tag_chain(&json!({".tag": "path", "path": {".tag": "not_found"}})),
            ["path", "not_found"]
        );
        assert_eq!(
            tag_chain(
                &json!({".tag": "path", "path": {"reason": {".tag": "conflict",
                "conflict": {".tag": "folder"}}, "upload_session_id": "x"}})
            ),
            ["path", "conflict", "folder"]
        );
        assert_eq!(
            tag_chain(&json!({"reason": {".tag": "too_many_write_operations"}, "retry_after": 1})),
            ["too_many_write_operations"]
        );
    }

    #[test]
    fn client_modified_is_whole_utc_seconds() {
        let t = OffsetDateTime::from_unix_timestamp_nanos(1_700_000_000_987_654_321)
            .unwrap()
            .to_offset(time::UtcOffset::from_hms(2, 0, 0).unwrap());
        assert_eq!(client_modified(t).unwrap(), "2023-11-14T22:13:20Z");
    }
}
