//! The emulator's HTTP side: routing, strict argument checks (as the service does them), and
//! the answers in the documented shapes.

use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue, RANGE};
use hyper::{Request, Response, StatusCode};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::state::{Cursor, State, TokenState, WriteMode, content_hash, name_refusal, union, wrap};
use super::{Fault, Shared};
use crate::auth::code_challenge_s256;
use crate::core::header_safe_json;

pub(crate) type Resp = Response<Full<Bytes>>;

/// Why a request got no regular answer: an HTTP error answer.
pub(crate) struct Refusal(Box<Resp>);

impl From<Resp> for Refusal {
    fn from(r: Resp) -> Self {
        Refusal(Box::new(r))
    }
}

type Handled = Result<Resp, Refusal>;

fn response(status: StatusCode, content_type: &str, body: impl Into<Bytes>) -> Resp {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    if let Ok(v) = HeaderValue::from_str(content_type) {
        r.headers_mut().insert(CONTENT_TYPE, v);
    }
    r
}

fn json_ok(v: &Value) -> Resp {
    response(StatusCode::OK, "application/json", v.to_string())
}

/// 400 with the service's plain-text explanation.
fn bad_request(endpoint: &str, why: impl std::fmt::Display) -> Resp {
    response(
        StatusCode::BAD_REQUEST,
        "text/plain; charset=utf-8",
        format!("Error in call to API function \"{endpoint}\": {why}"),
    )
}

/// The `error_summary` of an error union: its tags joined by `/`, then `/..`.
fn summary(error: &Value) -> String {
    let mut s = String::new();
    for t in crate::core::tag_chain(error) {
        s.push_str(&t);
        s.push('/');
    }
    s.push_str("..");
    s
}

/// 409 with `{"error_summary": .., "error": ..}`.
fn api_error(error: Value) -> Resp {
    let body = json!({ "error_summary": summary(&error), "error": error });
    response(StatusCode::CONFLICT, "application/json", body.to_string())
}

fn rate_limited(reason: &str, retry_after: u64) -> Resp {
    let body = json!({
        "error_summary": format!("{reason}/.."),
        "error": { "reason": { ".tag": reason }, "retry_after": retry_after },
    });
    let mut r = response(
        StatusCode::TOO_MANY_REQUESTS,
        "application/json",
        body.to_string(),
    );
    r.headers_mut()
        .insert("Retry-After", HeaderValue::from(retry_after));
    r
}

fn auth_error(tag: &str) -> Resp {
    let body = json!({ "error_summary": format!("{tag}/.."), "error": { ".tag": tag } });
    response(
        StatusCode::UNAUTHORIZED,
        "application/json",
        body.to_string(),
    )
}

/// Parses arguments strictly (unknown fields and wrong types are 400s, as on the service).
fn parse_args<T: DeserializeOwned>(endpoint: &str, what: &str, text: &[u8]) -> Result<T, Refusal> {
    serde_json::from_slice(text).map_err(|e| {
        Refusal::from(bad_request(
            endpoint,
            format!("{what}: could not decode input as JSON: {e}"),
        ))
    })
}

/// Checks a path argument the way the service does: `""` is the root (only where allowed),
/// `"/"` is refused, paths start with `/`; an empty or dot segment or a trailing `/` is
/// `malformed_path`.
fn check_path(endpoint: &str, p: &str, allow_root: bool) -> Result<(), Refusal> {
    if p.is_empty() {
        if allow_root {
            return Ok(());
        }
        return Err(bad_request(endpoint, "path: The root folder is unsupported.").into());
    }
    if p == "/" {
        return Err(bad_request(
            endpoint,
            "path: Specify the root folder as an empty string rather than as \"/\".",
        )
        .into());
    }
    if !p.starts_with('/') {
        return Err(bad_request(
            endpoint,
            format!(
                "path: '{p}' did not match pattern '(/(.|[\\r\\n])*)?|id:.*|(ns:[0-9]+(/.*)?)'"
            ),
        )
        .into());
    }
    let malformed = p.ends_with('/')
        || p[1..]
            .split('/')
            .any(|s| s.is_empty() || s == "." || s == ".." || s.contains('\0'));
    if malformed {
        return Err(api_error(wrap("path", union(&["malformed_path"]))).into());
    }
    Ok(())
}

fn check_client_modified(endpoint: &str, t: &Option<String>) -> Result<(), Refusal> {
    if let Some(t) = t {
        let fmt =
            time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z");
        if time::PrimitiveDateTime::parse(t, &fmt).is_err() {
            return Err(bad_request(
                endpoint,
                format!("client_modified: '{t}' does not match format '%Y-%m-%dT%H:%M:%SZ'"),
            )
            .into());
        }
    }
    Ok(())
}

fn check_hash(endpoint: &str, hash: &Option<String>, data: &[u8]) -> Result<(), Refusal> {
    if let Some(h) = hash {
        if h.len() != 64 || !h.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(bad_request(endpoint, "content_hash: must be 64 hex characters").into());
        }
        if !h.eq_ignore_ascii_case(&content_hash(data)) {
            return Err(api_error(union(&["content_hash_mismatch"])).into());
        }
    }
    Ok(())
}

/// The parts of a request the handlers look at.
pub(crate) struct Req {
    pub(crate) endpoint: String,
    pub(crate) headers: hyper::HeaderMap,
    pub(crate) body: Bytes,
}

impl Req {
    fn header(&self, name: impl hyper::header::AsHeaderName) -> Option<&HeaderValue> {
        self.headers.get(name)
    }

    /// RPC arguments: a JSON body with a JSON content type.
    fn rpc_args<T: DeserializeOwned>(&self) -> Result<T, Refusal> {
        let ct = self
            .header(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let ok = matches!(
            ct.to_ascii_lowercase().as_str(),
            "application/json"
                | "application/json; charset=utf-8"
                | "text/plain; charset=dropbox-cors-hack"
        );
        if !ok {
            return Err(bad_request(
                &self.endpoint,
                format!(
                    "Bad HTTP \"Content-Type\" header: \"{ct}\".  Expecting one of \"application/json\", \"application/json; charset=utf-8\", \"text/plain; charset=dropbox-cors-hack\"."
                ),
            )
            .into());
        }
        parse_args(&self.endpoint, "request body", &self.body)
    }

    /// Content-endpoint arguments: JSON in the `Dropbox-API-Arg` header, which must be
    /// header-safe (printable ASCII only).
    fn header_args<T: DeserializeOwned>(&self, upload: bool) -> Result<T, Refusal> {
        let Some(raw) = self.header("Dropbox-API-Arg") else {
            return Err(bad_request(
                &self.endpoint,
                "Must provide HTTP header \"Dropbox-API-Arg\" or URL parameter \"arg\".",
            )
            .into());
        };
        if !raw.as_bytes().iter().all(|b| (0x20..0x7f).contains(b)) {
            return Err(bad_request(
                &self.endpoint,
                "HTTP header \"Dropbox-API-Arg\": characters outside printable ASCII must be escaped as \\uXXXX",
            )
            .into());
        }
        if upload {
            let ct = self
                .header(CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            if !matches!(
                ct,
                "application/octet-stream" | "text/plain; charset=dropbox-cors-hack"
            ) {
                return Err(bad_request(
                    &self.endpoint,
                    format!(
                        "Bad HTTP \"Content-Type\" header: \"{ct}\".  Expecting one of \"application/octet-stream\", \"text/plain; charset=dropbox-cors-hack\"."
                    ),
                )
                .into());
            }
        } else if !self.body.is_empty() {
            return Err(bad_request(&self.endpoint, "this function takes no request body").into());
        }
        parse_args(
            &self.endpoint,
            "HTTP header \"Dropbox-API-Arg\"",
            raw.as_bytes(),
        )
    }
}

/// The body of an answer: whole, or trickling ([`Fault::Trickle`]).
pub(crate) type AnyBody = http_body_util::combinators::BoxBody<Bytes, std::convert::Infallible>;

/// Marks an answer whose body trickles for ever.
#[derive(Clone, Copy)]
struct Trickle;

/// Serves one request, turning an answer marked [`Trickle`] into a never-ending body.
pub(crate) async fn serve(
    shared: Arc<Shared>,
    req: Request<Incoming>,
) -> Result<Response<AnyBody>, std::io::Error> {
    let r = handle(shared, req).await?;
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

/// Serves one request.
async fn handle(shared: Arc<Shared>, req: Request<Incoming>) -> Result<Resp, std::io::Error> {
    let (parts, body) = req.into_parts();
    let Some(endpoint) = parts
        .uri
        .path()
        .strip_prefix("/2/")
        .or_else(|| parts.uri.path().strip_prefix("/"))
        .map(str::to_owned)
    else {
        return Ok(response(StatusCode::NOT_FOUND, "text/plain", "not found"));
    };
    let body = body
        .collect()
        .await
        .map_err(std::io::Error::other)?
        .to_bytes();
    shared.count(&endpoint, body.len());
    let req = Req {
        endpoint,
        headers: parts.headers,
        body,
    };
    let fault = shared.take_fault(&req.endpoint);
    let drop_after = fault == Some(Fault::DropAfter);
    match fault {
        Some(Fault::TooManyRequests { retry_after }) => {
            return Ok(rate_limited("too_many_requests", retry_after));
        }
        Some(Fault::TooManyWriteOperations { retry_after }) => {
            return Ok(rate_limited("too_many_write_operations", retry_after));
        }
        Some(Fault::Status(code)) => {
            let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            return Ok(response(status, "text/plain", "emulated failure"));
        }
        Some(Fault::Drop) => return Err(std::io::Error::other("emulated dropped connection")),
        Some(Fault::ExpireToken) => shared.lock().expire_tokens(),
        Some(Fault::Answer {
            status,
            headers,
            body,
        }) => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let mut r = response(status, "application/json", body);
            for (k, v) in headers {
                if let (Ok(k), Ok(v)) = (
                    hyper::header::HeaderName::from_bytes(k.as_bytes()),
                    HeaderValue::from_str(&v),
                ) {
                    r.headers_mut().insert(k, v);
                }
            }
            return Ok(r);
        }
        Some(Fault::Trickle) => {
            let mut r = response(StatusCode::OK, "application/json", Bytes::new());
            r.extensions_mut().insert(Trickle);
            return Ok(r);
        }
        Some(Fault::DropAfter) | None => {}
    }
    if parts.method != hyper::Method::POST {
        return Ok(bad_request(&req.endpoint, "expected a POST request"));
    }
    let _batch = if req
        .endpoint
        .starts_with("files/upload_session/finish_batch")
    {
        match BatchCommit::begin(&shared) {
            Some(b) => {
                if !shared.opts.batch_commit_time.is_zero() {
                    tokio::time::sleep(shared.opts.batch_commit_time).await;
                }
                Some(b)
            }
            // files.stone, route upload_session/finish_batch: "For the same account, this
            // route should be executed serially. That means you should not start the next
            // job before current job finishes." A second commit meets the first one's
            // namespace lock: WriteError.too_many_write_operations, "There are too many write
            // operations in user's Dropbox. Please retry this request."
            None => return Ok(rate_limited("too_many_write_operations", 1)),
        }
    } else {
        None
    };
    let result = if req.endpoint == "oauth2/token" {
        token(&shared, &req)
    } else {
        match authorize(&shared, &req) {
            Ok(()) => route(&shared, &req),
            Err(r) => Err(r),
        }
    };
    if drop_after {
        // The work is done (and kept); the answer is lost with the connection.
        return Err(std::io::Error::other(
            "emulated connection lost after processing",
        ));
    }
    match result {
        Ok(r) => Ok(r),
        Err(Refusal(r)) => Ok(*r),
    }
}

/// A batch commit under way; [`BatchCommit::begin`] refuses a second one.
struct BatchCommit<'a>(&'a Shared);

impl<'a> BatchCommit<'a> {
    fn begin(shared: &'a Shared) -> Option<Self> {
        use std::sync::atomic::Ordering;
        if shared.batches_in_flight.fetch_add(1, Ordering::SeqCst) > 0 {
            shared.batches_in_flight.fetch_sub(1, Ordering::SeqCst);
            shared.overlapping_batches.fetch_add(1, Ordering::SeqCst);
            return None;
        }
        Some(BatchCommit(shared))
    }
}

impl Drop for BatchCommit<'_> {
    fn drop(&mut self) {
        self.0
            .batches_in_flight
            .fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }
}

fn authorize(shared: &Shared, req: &Req) -> Result<(), Refusal> {
    let value = req
        .header(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let Some(token) = value.strip_prefix("Bearer ") else {
        return Err(bad_request(
            &req.endpoint,
            "Invalid authorization value in HTTP header \"Authorization\": \"\".  Expecting \"Bearer <oauth2-access-token>\".",
        )
        .into());
    };
    match shared.lock().token_state(token.trim()) {
        TokenState::Valid => Ok(()),
        TokenState::Expired => Err(auth_error("expired_access_token").into()),
        TokenState::Unknown => Err(auth_error("invalid_access_token").into()),
    }
}

fn route(shared: &Shared, req: &Req) -> Handled {
    match req.endpoint.as_str() {
        "files/list_folder" => list_folder(shared, req),
        "files/list_folder/continue" => list_continue(shared, req),
        "files/get_metadata" => get_metadata(shared, req),
        "files/delete_v2" => delete(shared, req),
        "files/create_folder_v2" => create_folder(shared, req),
        "files/copy_v2" => relocate(shared, req, false),
        "files/move_v2" => relocate(shared, req, true),
        "files/upload" => upload(shared, req),
        "files/upload_session/start" => session_start(shared, req),
        "files/upload_session/append_v2" => session_append(shared, req),
        "files/upload_session/finish" => session_finish(shared, req),
        "files/upload_session/finish_batch_v2" => finish_batch(shared, req),
        "files/download" => download(shared, req),
        "users/get_space_usage" => space_usage(shared, req),
        other => Ok(bad_request(other, "Unknown API function")),
    }
}

// ---- listing and metadata ----

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListFolderArg {
    path: String,
    #[serde(default)]
    recursive: bool,
    #[serde(default)]
    include_media_info: bool,
    #[serde(default)]
    include_deleted: bool,
    #[serde(default)]
    include_has_explicit_shared_members: bool,
    #[serde(default)]
    include_mounted_folders: Option<bool>,
    #[serde(default)]
    limit: Option<u32>,
    #[serde(default)]
    include_non_downloadable_files: Option<bool>,
}

/// Whether `n` is listed: files.stone, ListFolderArg.include_non_downloadable_files: "If
/// true, include files that are not downloadable, i.e. Google Docs." (default true).
fn listed(n: &super::state::Node, cursor: &Cursor) -> bool {
    n.folder || n.downloadable || cursor.non_downloadable
}

fn list_page(state: &mut State, mut cursor: Cursor, ragged: bool) -> Value {
    let mut entries = Vec::new();
    let page = cursor.page;
    cursor.page += 1;
    let more_left = cursor.self_pending
        || !state
            .page(&cursor.dir, cursor.recursive, cursor.after.as_deref(), 1)
            .0
            .is_empty();
    if ragged && page % 2 == 0 && more_left {
        // An empty page that still says `has_more` (see EmulatorOptions::with_ragged_pages).
        let id = state.opaque("AAemu-cursor-");
        state.cursors.insert(id.clone(), cursor);
        return json!({ "entries": entries, "cursor": id, "has_more": true });
    }
    if cursor.self_pending {
        cursor.self_pending = false;
        if let Some(n) = state.nodes.get(&cursor.dir) {
            entries.push(n.meta());
        }
    }
    let limit = if ragged {
        cursor.limit.div_ceil(2)
    } else {
        cursor.limit
    };
    let room = limit.saturating_sub(entries.len()).max(1);
    let (keys, has_more) = state.page(&cursor.dir, cursor.recursive, cursor.after.as_deref(), room);
    for k in &keys {
        if let Some(n) = state.nodes.get(k).filter(|n| listed(n, &cursor)) {
            entries.push(n.meta());
        }
    }
    if let Some(last) = keys.last() {
        cursor.after = Some(last.clone());
    }
    let id = state.opaque("AAemu-cursor-");
    state.cursors.insert(id.clone(), cursor);
    json!({ "entries": entries, "cursor": id, "has_more": has_more })
}

fn list_folder(shared: &Shared, req: &Req) -> Handled {
    let arg: ListFolderArg = req.rpc_args()?;
    let _ = (
        arg.include_media_info,
        arg.include_deleted,
        arg.include_has_explicit_shared_members,
        arg.include_mounted_folders,
    );
    check_path(&req.endpoint, &arg.path, true)?;
    let limit = match arg.limit {
        None => shared.opts.default_list_limit,
        Some(l) if (1..=2000).contains(&l) => l as usize,
        Some(l) => {
            return Ok(bad_request(
                &req.endpoint,
                format!("request body: limit: {l} is not within range [1, 2000]"),
            ));
        }
    };
    let mut st = shared.lock();
    let dir = arg.path.to_lowercase();
    if !dir.is_empty() {
        match st.nodes.get(&dir) {
            None => return Ok(api_error(wrap("path", union(&["not_found"])))),
            Some(n) if !n.folder => return Ok(api_error(wrap("path", union(&["not_folder"])))),
            _ => {}
        }
    }
    let cursor = Cursor {
        self_pending: arg.recursive && !dir.is_empty(),
        dir,
        recursive: arg.recursive,
        limit,
        after: None,
        page: 0,
        epoch: st.cursor_epoch,
        non_downloadable: arg.include_non_downloadable_files.unwrap_or(true),
    };
    Ok(json_ok(&list_page(
        &mut st,
        cursor,
        shared.opts.ragged_pages,
    )))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ContinueArg {
    cursor: String,
}

fn list_continue(shared: &Shared, req: &Req) -> Handled {
    let arg: ContinueArg = req.rpc_args()?;
    let mut st = shared.lock();
    let Some(cursor) = st.cursors.get(&arg.cursor).cloned() else {
        return Ok(bad_request(&req.endpoint, "cursor: invalid cursor"));
    };
    if cursor.epoch != st.cursor_epoch {
        // files.stone, ListFolderContinueError.reset: "Indicates that the cursor has been
        // invalidated. Call list_folder to obtain a new cursor."
        return Ok(api_error(union(&["reset"])));
    }
    if !cursor.dir.is_empty() && !st.nodes.contains_key(&cursor.dir) {
        return Ok(api_error(wrap("path", union(&["not_found"]))));
    }
    Ok(json_ok(&list_page(
        &mut st,
        cursor,
        shared.opts.ragged_pages,
    )))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GetMetadataArg {
    path: String,
    #[serde(default)]
    include_media_info: bool,
    #[serde(default)]
    include_deleted: bool,
    #[serde(default)]
    include_has_explicit_shared_members: bool,
}

fn get_metadata(shared: &Shared, req: &Req) -> Handled {
    let arg: GetMetadataArg = req.rpc_args()?;
    let _ = (
        arg.include_media_info,
        arg.include_deleted,
        arg.include_has_explicit_shared_members,
    );
    check_path(&req.endpoint, &arg.path, false)?;
    let st = shared.lock();
    match st.lookup(&arg.path) {
        Ok(n) => Ok(json_ok(&n.meta())),
        Err(e) => Ok(api_error(wrap("path", e))),
    }
}

// ---- changes ----

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DeleteArg {
    path: String,
    #[serde(default)]
    parent_rev: Option<String>,
}

fn delete(shared: &Shared, req: &Req) -> Handled {
    let arg: DeleteArg = req.rpc_args()?;
    check_path(&req.endpoint, &arg.path, false)?;
    match shared.lock().delete(&arg.path, arg.parent_rev.as_deref()) {
        Ok(meta) => Ok(json_ok(&json!({ "metadata": meta }))),
        Err(e) => Ok(api_error(e)),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateFolderArg {
    path: String,
    #[serde(default)]
    autorename: bool,
}

fn create_folder(shared: &Shared, req: &Req) -> Handled {
    let arg: CreateFolderArg = req.rpc_args()?;
    check_path(&req.endpoint, &arg.path, false)?;
    if arg.autorename {
        return Ok(bad_request(&req.endpoint, "autorename is not emulated"));
    }
    if let Some(e) = name_refusal(&arg.path) {
        return Ok(api_error(wrap("path", e)));
    }
    match shared.lock().create_folder(&arg.path) {
        Ok(meta) => Ok(json_ok(&json!({ "metadata": meta }))),
        Err(e) => Ok(api_error(wrap("path", e))),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RelocationArg {
    from_path: String,
    to_path: String,
    #[serde(default)]
    allow_shared_folder: bool,
    #[serde(default)]
    autorename: bool,
    #[serde(default)]
    allow_ownership_transfer: bool,
}

fn relocate(shared: &Shared, req: &Req, is_move: bool) -> Handled {
    let arg: RelocationArg = req.rpc_args()?;
    let _ = (arg.allow_shared_folder, arg.allow_ownership_transfer);
    check_path(&req.endpoint, &arg.from_path, false)?;
    check_path(&req.endpoint, &arg.to_path, false)?;
    if arg.autorename {
        return Ok(bad_request(&req.endpoint, "autorename is not emulated"));
    }
    if let Some(e) = name_refusal(&arg.to_path) {
        return Ok(api_error(wrap("to", e)));
    }
    match shared
        .lock()
        .relocate(&arg.from_path, &arg.to_path, is_move)
    {
        Ok(meta) => Ok(json_ok(&json!({ "metadata": meta }))),
        Err(e) => Ok(api_error(e)),
    }
}

// ---- uploads ----

/// `WriteMode`: `"add"`, `"overwrite"` or `{".tag": "update", "update": rev}`.
fn write_mode(endpoint: &str, v: &Option<Value>) -> Result<WriteMode, Refusal> {
    let tag = match v {
        None => return Ok(WriteMode::Add),
        Some(Value::String(s)) => s.as_str(),
        Some(Value::Object(m)) => m.get(".tag").and_then(Value::as_str).unwrap_or(""),
        Some(_) => "",
    };
    match (tag, v) {
        ("add", _) => Ok(WriteMode::Add),
        ("overwrite", _) => Ok(WriteMode::Overwrite),
        ("update", Some(Value::Object(m))) => match m.get("update").and_then(Value::as_str) {
            Some(rev) => Ok(WriteMode::Update(rev.to_owned())),
            None => Err(bad_request(endpoint, "mode: update needs a rev").into()),
        },
        _ => Err(bad_request(endpoint, format!("mode: unknown tag {tag:?}")).into()),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CommitInfo {
    path: String,
    #[serde(default)]
    mode: Option<Value>,
    #[serde(default)]
    autorename: bool,
    #[serde(default)]
    client_modified: Option<String>,
    #[serde(default)]
    mute: bool,
    #[serde(default)]
    strict_conflict: bool,
    #[serde(default)]
    content_hash: Option<String>,
}

impl CommitInfo {
    fn check(&self, endpoint: &str) -> Result<WriteMode, Refusal> {
        let _ = self.mute;
        check_path(endpoint, &self.path, false)?;
        check_client_modified(endpoint, &self.client_modified)?;
        if self.autorename {
            return Err(bad_request(endpoint, "autorename is not emulated").into());
        }
        write_mode(endpoint, &self.mode)
    }
}

fn upload(shared: &Shared, req: &Req) -> Handled {
    let arg: CommitInfo = req.header_args(true)?;
    let mode = arg.check(&req.endpoint)?;
    if req.body.len() as u64 > shared.opts.max_upload {
        return Ok(api_error(wrap("payload_too_large", Value::Null)));
    }
    check_hash(&req.endpoint, &arg.content_hash, &req.body)?;
    if let Some(e) = name_refusal(&arg.path) {
        return Ok(api_error(wrap(
            "path",
            json!({ "reason": e, "upload_session_id": "" }),
        )));
    }
    let result = shared.lock().commit_file(
        &arg.path,
        req.body.clone(),
        &mode,
        arg.client_modified.clone(),
        arg.strict_conflict,
    );
    match result {
        Ok(meta) => Ok(json_ok(&meta)),
        Err(e) => Ok(api_error(wrap(
            "path",
            json!({ "reason": e, "upload_session_id": "" }),
        ))),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StartArg {
    #[serde(default)]
    close: bool,
    #[serde(default)]
    session_type: Option<Value>,
    #[serde(default)]
    content_hash: Option<String>,
}

fn session_start(shared: &Shared, req: &Req) -> Handled {
    let arg: StartArg = req.header_args(true)?;
    match arg
        .session_type
        .as_ref()
        .and_then(|t| t.get(".tag").or(Some(t)))
    {
        None => {}
        Some(t) if t == "sequential" => {}
        // Concurrent sessions take appends in any order, each a multiple of 4194304 bytes
        // (UploadSessionAppendError.concurrent_session_invalid_data_size: "For concurrent
        // upload sessions, only chunks with size multiple of 4194304 bytes can be
        // uploaded."); that is not emulated, so they are refused rather than imitated loosely.
        Some(_) => {
            return Ok(bad_request(
                &req.endpoint,
                "session_type: only sequential sessions are emulated",
            ));
        }
    }
    // UploadSessionStartError.payload_too_large: "The request payload must be at most 150 MB."
    if req.body.len() as u64 > shared.opts.max_upload {
        return Ok(api_error(union(&["payload_too_large"])));
    }
    check_hash(&req.endpoint, &arg.content_hash, &req.body)?;
    let mut st = shared.lock();
    let id = st.opaque("emu-session-");
    st.sessions.insert(
        id.clone(),
        super::state::Session {
            data: req.body.to_vec(),
            closed: arg.close,
            created: std::time::Instant::now(),
            expired: false,
        },
    );
    Ok(json_ok(&json!({ "session_id": id })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SessionCursor {
    session_id: String,
    offset: u64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AppendArg {
    cursor: SessionCursor,
    #[serde(default)]
    close: bool,
    #[serde(default)]
    content_hash: Option<String>,
}

/// Checks a session cursor; the error is an UploadSessionLookupError union.
fn lookup_session(
    st: &State,
    c: &SessionCursor,
    lifetime: std::time::Duration,
) -> Result<(), Value> {
    // UploadSessionLookupError.not_found: "The upload session ID was not found or has
    // expired. Upload sessions are valid for 7 days." Route upload_session/start:
    // "Attempting to use an UploadSessionStartResult.session_id with upload_session/append_v2
    // or upload_session/finish more than 7 days after its creation will return a
    // UploadSessionLookupError.not_found."
    let Some(s) = st
        .sessions
        .get(&c.session_id)
        .filter(|s| !s.expired && s.created.elapsed() < lifetime)
    else {
        return Err(union(&["not_found"]));
    };
    // UploadSessionLookupError.incorrect_offset: "The specified offset was incorrect. See the
    // value for the correct offset. This error may occur when a previous request was received
    // and processed successfully but the client did not receive the response, e.g. due to a
    // network error." UploadSessionOffsetError.correct_offset: "The offset up to which data
    // has been collected."
    if s.data.len() as u64 != c.offset {
        return Err(json!({ ".tag": "incorrect_offset", "correct_offset": s.data.len() }));
    }
    // UploadSessionLookupError.closed: "You are attempting to append data to an upload
    // session that has already been closed (i.e. committed)."
    if s.closed {
        return Err(union(&["closed"]));
    }
    Ok(())
}

fn session_append(shared: &Shared, req: &Req) -> Handled {
    let arg: AppendArg = req.header_args(true)?;
    // UploadSessionAppendError.payload_too_large: "The request payload must be at most 150 MB."
    if req.body.len() as u64 > shared.opts.max_upload {
        return Ok(api_error(union(&["payload_too_large"])));
    }
    check_hash(&req.endpoint, &arg.content_hash, &req.body)?;
    let mut st = shared.lock();
    if let Err(e) = lookup_session(&st, &arg.cursor, shared.opts.session_lifetime) {
        return Ok(api_error(e));
    }
    if let Some(s) = st.sessions.get_mut(&arg.cursor.session_id) {
        s.data.extend_from_slice(&req.body);
        s.closed = arg.close;
    }
    Ok(response(StatusCode::OK, "application/json", "null"))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FinishArg {
    cursor: SessionCursor,
    commit: CommitInfo,
    #[serde(default)]
    content_hash: Option<String>,
}

fn session_finish(shared: &Shared, req: &Req) -> Handled {
    let arg: FinishArg = req.header_args(true)?;
    let mode = arg.commit.check(&req.endpoint)?;
    if arg.commit.content_hash.is_some() {
        return Ok(bad_request(
            &req.endpoint,
            "commit: content_hash: unknown field",
        ));
    }
    check_hash(&req.endpoint, &arg.content_hash, &req.body)?;
    if let Some(e) = name_refusal(&arg.commit.path) {
        // UploadSessionFinishError.path: "Unable to save the uploaded contents to a file.
        // Data has already been appended to the upload session." The session stays.
        return Ok(api_error(wrap("path", e)));
    }
    let mut st = shared.lock();
    if let Err(e) = lookup_session(&st, &arg.cursor, shared.opts.session_lifetime) {
        return Ok(api_error(wrap("lookup_failed", e)));
    }
    let Some(mut session) = st.sessions.remove(&arg.cursor.session_id) else {
        return Ok(api_error(wrap("lookup_failed", union(&["not_found"]))));
    };
    session.data.extend_from_slice(&req.body);
    let data = Bytes::from(session.data);
    match st.commit_file(
        &arg.commit.path,
        data,
        &mode,
        arg.commit.client_modified.clone(),
        arg.commit.strict_conflict,
    ) {
        Ok(meta) => Ok(json_ok(&meta)),
        Err(e) => Ok(api_error(wrap("path", e))),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FinishBatchArg {
    entries: Vec<FinishArg>,
}

/// Commits closed sessions; an RPC endpoint (the data is already in the sessions). Each entry
/// gets `{".tag": "success", ...metadata}` or `{".tag": "failure", "failure": ..}`.
fn finish_batch(shared: &Shared, req: &Req) -> Handled {
    let arg: FinishBatchArg = req.rpc_args()?;
    if arg.entries.len() > 1000 {
        return Ok(bad_request(
            &req.endpoint,
            "entries: a batch holds at most 1000 entries",
        ));
    }
    let mut modes = Vec::new();
    for e in &arg.entries {
        modes.push(e.commit.check(&req.endpoint)?);
        if e.content_hash.is_some() || e.commit.content_hash.is_some() {
            return Ok(bad_request(
                &req.endpoint,
                "content_hash: this call uploads no data",
            ));
        }
    }
    let mut st = shared.lock();
    let mut results = Vec::new();
    for (e, mode) in arg.entries.iter().zip(modes) {
        let failure = |inner: Value| json!({ ".tag": "failure", "failure": inner });
        let looked = lookup_session(&st, &e.cursor, shared.opts.session_lifetime).and_then(|()| {
            match st.sessions.get(&e.cursor.session_id) {
                Some(s) if s.closed => Ok(()),
                _ => Err(union(&["not_closed"])),
            }
        });
        let looked = match looked {
            // A closed session is what this call needs.
            Err(v) if v.get(".tag").and_then(Value::as_str) == Some("closed") => Ok(()),
            other => other,
        };
        if let Err(v) = looked {
            results.push(failure(wrap("lookup_failed", v)));
            continue;
        }
        let Some(session) = st.sessions.remove(&e.cursor.session_id) else {
            results.push(failure(wrap("lookup_failed", union(&["not_found"]))));
            continue;
        };
        if let Some(v) = name_refusal(&e.commit.path) {
            results.push(failure(wrap("path", v)));
            continue;
        }
        let data = Bytes::from(session.data);
        match st.commit_file(
            &e.commit.path,
            data,
            &mode,
            e.commit.client_modified.clone(),
            e.commit.strict_conflict,
        ) {
            Ok(mut meta) => {
                meta[".tag"] = Value::String("success".to_owned());
                results.push(meta);
            }
            Err(v) => results.push(failure(wrap("path", v))),
        }
    }
    Ok(json_ok(&json!({ "entries": results })))
}

/// `users/get_space_usage`: takes no argument (a `null` body).
fn space_usage(shared: &Shared, req: &Req) -> Handled {
    let arg: Value = req.rpc_args()?;
    if !arg.is_null() {
        return Ok(bad_request(&req.endpoint, "request body: expected null"));
    }
    let used = shared.lock().used();
    Ok(json_ok(&json!({
        "used": used,
        "allocation": { ".tag": "individual", "allocated": shared.opts.quota },
    })))
}

// ---- downloads ----

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DownloadArg {
    path: String,
    #[serde(default)]
    rev: Option<String>,
}

/// Parses `bytes=a-b`, `bytes=a-` and `bytes=-n` against `len`; `Err` when unsatisfiable.
fn parse_range(v: &str, len: u64) -> Option<Result<(u64, u64), ()>> {
    let spec = v.trim().strip_prefix("bytes=")?;
    let (a, b) = spec.split_once('-')?;
    let range = match (a.trim(), b.trim()) {
        ("", n) => {
            let n: u64 = n.parse().ok()?;
            (len.saturating_sub(n), len)
        }
        (a, "") => (a.parse().ok()?, len),
        (a, b) => {
            let (a, b): (u64, u64) = (a.parse().ok()?, b.parse().ok()?);
            if b < a {
                return None;
            }
            (a, (b + 1).min(len))
        }
    };
    if range.0 >= len {
        return Some(Err(()));
    }
    Some(Ok(range))
}

fn download(shared: &Shared, req: &Req) -> Handled {
    let arg: DownloadArg = req.header_args(false)?;
    check_path(&req.endpoint, &arg.path, false)?;
    let st = shared.lock();
    let node = match st.lookup(&arg.path) {
        Ok(n) => n,
        Err(e) => return Ok(api_error(wrap("path", e))),
    };
    if node.folder {
        return Ok(api_error(wrap("path", union(&["not_file"]))));
    }
    if !node.downloadable {
        // files.stone, DownloadError.unsupported_file: "This file type cannot be downloaded
        // directly; use export instead."
        return Ok(api_error(union(&["unsupported_file"])));
    }
    if arg.rev.as_ref().is_some_and(|r| *r != node.rev) {
        return Ok(api_error(wrap("path", union(&["not_found"]))));
    }
    let len = node.data.len() as u64;
    let meta = header_safe_json(&node.meta()).unwrap_or_default();
    let range = req
        .header(RANGE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| parse_range(v, len));
    let (status, body, content_range) = match range {
        Some(Err(())) => {
            let mut r = response(StatusCode::RANGE_NOT_SATISFIABLE, "text/plain", "");
            if let Ok(v) = HeaderValue::from_str(&format!("bytes */{len}")) {
                r.headers_mut().insert("Content-Range", v);
            }
            return Ok(r);
        }
        Some(Ok((a, b))) => (
            StatusCode::PARTIAL_CONTENT,
            node.data.slice(a as usize..b as usize),
            Some(format!("bytes {a}-{}/{len}", b.saturating_sub(1))),
        ),
        None => (StatusCode::OK, node.data.clone(), None),
    };
    let mut r = response(status, "application/octet-stream", body);
    if let Ok(v) = HeaderValue::from_str(&meta) {
        r.headers_mut().insert("Dropbox-API-Result", v);
    }
    if let Some(cr) = content_range.and_then(|c| HeaderValue::from_str(&c).ok()) {
        r.headers_mut().insert("Content-Range", cr);
    }
    Ok(r)
}

// ---- OAuth2 ----

fn token_error(error: &str, description: &str) -> Resp {
    let body = json!({ "error": error, "error_description": description });
    response(
        StatusCode::BAD_REQUEST,
        "application/json",
        body.to_string(),
    )
}

fn token(shared: &Shared, req: &Req) -> Handled {
    let ct = req
        .header(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !ct.starts_with("application/x-www-form-urlencoded") {
        return Ok(token_error("invalid_request", "expected a form body"));
    }
    let form: std::collections::HashMap<String, String> = url::form_urlencoded::parse(&req.body)
        .into_owned()
        .collect();
    let get = |k: &str| form.get(k).map(String::as_str).unwrap_or("");
    if get("client_id") != shared.opts.app_key {
        return Ok(token_error("invalid_client", "unknown client_id"));
    }
    if let (Some(secret), Some(given)) = (&shared.opts.app_secret, form.get("client_secret")) {
        if secret != given {
            return Ok(token_error("invalid_client", "invalid client_secret"));
        }
    }
    let lifetime = shared.opts.token_lifetime;
    let mut st = shared.lock();
    match get("grant_type") {
        "refresh_token" => {
            if get("refresh_token") != shared.refresh_token {
                return Ok(token_error(
                    "invalid_grant",
                    "refresh token is invalid or revoked",
                ));
            }
            if shared.opts.app_secret.is_some() && !form.contains_key("client_secret") {
                return Ok(token_error("invalid_client", "client_secret is required"));
            }
            let access = st.issue_token(lifetime);
            Ok(json_ok(&json!({
                "access_token": access,
                "token_type": "bearer",
                "expires_in": lifetime.as_secs(),
            })))
        }
        "authorization_code" => {
            let Some(challenge) = st.codes.remove(get("code")) else {
                return Ok(token_error(
                    "invalid_grant",
                    "code doesn't exist or has expired",
                ));
            };
            if code_challenge_s256(get("code_verifier")) != challenge {
                return Ok(token_error("invalid_grant", "invalid code verifier"));
            }
            let access = st.issue_token(lifetime);
            Ok(json_ok(&json!({
                "access_token": access,
                "token_type": "bearer",
                "expires_in": lifetime.as_secs(),
                "refresh_token": shared.refresh_token,
                "scope": "files.content.read files.content.write files.metadata.read",
                "uid": "12345",
                "account_id": "dbid:emulated-account",
            })))
        }
        other => Ok(token_error(
            "unsupported_grant_type",
            &format!("grant_type {other:?} is not supported"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        assert_eq!(parse_range("bytes=0-9", 5), Some(Ok((0, 5))));
        assert_eq!(parse_range("bytes=2-3", 5), Some(Ok((2, 4))));
        assert_eq!(parse_range("bytes=3-", 5), Some(Ok((3, 5))));
        assert_eq!(parse_range("bytes=-2", 5), Some(Ok((3, 5))));
        assert_eq!(parse_range("bytes=5-9", 5), Some(Err(())));
        assert_eq!(parse_range("items=1-2", 5), None);
    }

    #[test]
    fn summaries() {
        assert_eq!(
            summary(&wrap("path", union(&["not_found"]))),
            "path/not_found/.."
        );
    }
}
