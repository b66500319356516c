//! A small Nextcloud stand-in for the tests: it implements the documented behaviour of the
//! Nextcloud WebDAV endpoints our backend uses, on top of a real WebDAV server's storage.
//!
//! Storage is nginx (dav + dav_ext, with the `X-OC-MTime` lua shim) serving
//! `/remote.php/dav/files/synctest/`. In front of it, this server:
//! - answers `PROPFIND` under `files/USER/` itself, from nginx's directory, in Sabre's format
//!   (`d:`/`oc:`/`nc:` prefixes, `oc:fileid`, `oc:checksums` with the checksum the client sent
//!   as `OC-Checksum`, 404 propstats for properties a resource lacks);
//! - forwards `GET`, `PUT`, `MKCOL`, `COPY`, `MOVE` to nginx, keeping file ids and checksums
//!   with the path, and saving the old content as a version before a file is replaced;
//! - turns `DELETE` into a move to the trash bin (`trashbin/USER/trash`, listed and emptied
//!   with `PROPFIND`/`DELETE`), and serves `versions/USER/versions/FILEID` (list, `DELETE`);
//! - implements chunked upload v2 under `uploads/USER/ID`: `MKCOL`, numbered chunk `PUT`s
//!   (1..=10000, each request carrying `Destination`), and `MOVE .file` that assembles the
//!   chunks in order (all but the last at least 5 MiB, total = `OC-Total-Length`) and stores
//!   the file through nginx with the `X-OC-Mtime` of the `MOVE`; a chunk is stored whole or not
//!   at all (a cut `PUT` leaves nothing); `PROPFIND` of an upload folder lists its chunks and
//!   sizes, `DELETE` removes it (404 once gone), both without `Destination`.

use std::collections::HashMap;
use std::convert::Infallible;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use http_body_util::{BodyExt, StreamBody, combinators::BoxBody};
use hyper::body::{Frame, Incoming};
use hyper::{Request, Response, StatusCode};

use super::{DavServer, PASSWORD, USER, start_nginx};

type Body = BoxBody<Bytes, std::io::Error>;

const FILES: &str = "/remote.php/dav/files/synctest/";
const UPLOADS: &str = "/remote.php/dav/uploads/synctest/";
const TRASH: &str = "/remote.php/dav/trashbin/synctest/trash";
const VERSIONS: &str = "/remote.php/dav/versions/synctest/versions/";
const MIN_CHUNK: u64 = 5 * 1024 * 1024;

/// What the test can inspect.
#[derive(Debug, Default)]
pub struct Recorded {
    /// Chunk sizes of every assembled chunked upload, in order.
    pub assembled: Vec<Vec<u64>>,
    /// `OC-Checksum` values received, by path.
    pub checksums: HashMap<String, String>,
    /// Body bytes received by chunk `PUT`s (cut ones included).
    pub chunk_bytes: u64,
}

#[derive(Default)]
struct State {
    ids: HashMap<String, u64>,
    next_id: u64,
    rec: Recorded,
}

pub struct FakeNextcloud {
    pub nginx: DavServer,
    /// `http://127.0.0.1:PORT` of the stand-in.
    pub base: String,
    /// Where trash, versions and chunks live.
    pub own: tempfile::TempDir,
    state: Arc<Mutex<State>>,
}

impl FakeNextcloud {
    /// A fresh directory `name-<random>` below the user's files, as a Nextcloud remote
    /// chunking above 5 MiB.
    pub async fn remote(&self, name: &str) -> Arc<dyn cloudsync_core::Remote> {
        use cloudsync_core::{Remote, RemotePath};
        use cloudsync_webdav::{MIN_CHUNK_SIZE, Vendor, WebdavConfig, WebdavRemote};
        let sub = format!("{name}-{:08x}", fastrand::u32(..));
        let cfg = |url: String| {
            WebdavConfig::new(url)
                .with_vendor(Vendor::Nextcloud)
                .with_password(USER, PASSWORD)
                .with_chunk_size(MIN_CHUNK_SIZE)
        };
        let top = WebdavRemote::new(cfg(self.files_url())).unwrap();
        top.mkdir(&RemotePath::new(&sub).unwrap()).await.unwrap();
        Arc::new(WebdavRemote::new(cfg(format!("{}{sub}/", self.files_url()))).unwrap())
    }

    /// The `files/USER/` URL.
    pub fn files_url(&self) -> String {
        format!("{}{FILES}", self.base)
    }

    pub fn recorded<T>(&self, f: impl FnOnce(&Recorded) -> T) -> T {
        f(&self.state.lock().unwrap().rec)
    }

    pub fn trash_dir(&self) -> PathBuf {
        self.own.path().join("trash")
    }

    pub fn versions_dir(&self) -> PathBuf {
        self.own.path().join("versions")
    }

    pub fn uploads_dir(&self) -> PathBuf {
        self.own.path().join("uploads")
    }
}

struct Ctx {
    nginx_base: String,
    data: PathBuf,
    own: PathBuf,
    client: reqwest::Client,
    state: Arc<Mutex<State>>,
    auth: String,
}

pub fn start() -> FakeNextcloud {
    let nginx = start_nginx(FILES, true);
    // Inside nginx's directory, which goes with nginx when the test binary exits (a static
    // server is never dropped).
    let own = tempfile::Builder::new()
        .prefix("fake-nextcloud-")
        .tempdir_in(nginx.server.dir())
        .unwrap();
    for d in ["trash", "versions", "uploads"] {
        std::fs::create_dir_all(own.path().join(d)).unwrap();
    }
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let state = Arc::new(Mutex::new(State::default()));
    let ctx = Arc::new(Ctx {
        nginx_base: format!("http://127.0.0.1:{}", nginx.server.port()),
        data: nginx.data.clone(),
        own: own.path().to_owned(),
        client: reqwest::Client::new(),
        state: state.clone(),
        auth: format!(
            "Basic {}",
            base64_encode(format!("{USER}:{PASSWORD}").as_bytes())
        ),
    });
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let ctx = ctx.clone();
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(move |req| {
                        let ctx = ctx.clone();
                        async move { Ok::<_, Infallible>(handle(&ctx, req).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
    });
    FakeNextcloud {
        nginx,
        base: format!("http://127.0.0.1:{port}"),
        own,
        state,
    }
}

fn base64_encode(data: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for c in data.chunks(3) {
        let n = (c[0] as u32) << 16
            | (*c.get(1).unwrap_or(&0) as u32) << 8
            | *c.get(2).unwrap_or(&0) as u32;
        for i in 0..4 {
            if i <= c.len() {
                out.push(T[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn full(status: StatusCode, body: impl Into<Bytes>) -> Response<Body> {
    let body: Bytes = body.into();
    let b = http_body_util::Full::new(body)
        .map_err(|never| match never {})
        .boxed();
    let mut r = Response::new(b);
    *r.status_mut() = status;
    r
}

fn empty(status: StatusCode) -> Response<Body> {
    full(status, Bytes::new())
}

fn header<'a>(req: &'a Request<Incoming>, name: &str) -> Option<&'a str> {
    req.headers().get(name).and_then(|v| v.to_str().ok())
}

/// Percent-decodes a URL path into segments.
fn segments(path: &str) -> Option<Vec<String>> {
    path.split('/')
        .filter(|s| !s.is_empty())
        .map(|s| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8()
                .ok()
                .map(|c| c.into_owned())
        })
        .collect()
}

fn encode(seg: &str) -> String {
    const SET: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'.')
        .remove(b'_')
        .remove(b'~');
    percent_encoding::utf8_percent_encode(seg, SET).to_string()
}

/// The storage-relative path (`a/b`) of a `files/USER/...` URL path, refusing `..`.
fn rel_of(url_path: &str) -> Option<String> {
    let rest = url_path.strip_prefix(FILES.trim_end_matches('/'))?;
    let segs = segments(rest)?;
    if segs
        .iter()
        .any(|s| s == ".." || s == "." || s.contains('/'))
    {
        return None;
    }
    Some(segs.join("/"))
}

/// The relative path a `Destination` header names.
fn dest_rel(dest: &str) -> Option<String> {
    let path = match dest.find("://") {
        Some(i) => &dest[i + 3..][dest[i + 3..].find('/')?..],
        None => dest,
    };
    rel_of(path)
}

async fn handle(ctx: &Ctx, req: Request<Incoming>) -> Response<Body> {
    if header(&req, "authorization") != Some(ctx.auth.as_str()) {
        return empty(StatusCode::UNAUTHORIZED);
    }
    let path = req.uri().path().to_owned();
    let method = req.method().as_str().to_owned();
    if path.starts_with(FILES) || path == FILES.trim_end_matches('/') {
        let Some(rel) = rel_of(&path) else {
            return empty(StatusCode::BAD_REQUEST);
        };
        return match method.as_str() {
            "PROPFIND" => propfind_files(ctx, &req, &rel),
            "DELETE" => delete_to_trash(ctx, &rel),
            "PUT" => put_file(ctx, req, &rel).await,
            "COPY" | "MOVE" => copy_move(ctx, req, &rel).await,
            _ => forward(ctx, req, None).await,
        };
    }
    if path.starts_with(UPLOADS) {
        return uploads(ctx, req).await;
    }
    if path.starts_with(TRASH) {
        return trash(ctx, &req, &path);
    }
    if path.starts_with(VERSIONS) {
        return versions(ctx, &req, &path);
    }
    empty(StatusCode::NOT_FOUND)
}

/// Sends the request on to nginx (same path), streaming both bodies.
async fn forward(ctx: &Ctx, req: Request<Incoming>, body: Option<reqwest::Body>) -> Response<Body> {
    let url = format!(
        "{}{}",
        ctx.nginx_base,
        req.uri()
            .path_and_query()
            .map(|p| p.as_str())
            .unwrap_or("/")
    );
    let method = reqwest::Method::from_bytes(req.method().as_str().as_bytes()).unwrap();
    let mut rb = ctx.client.request(method, url);
    for (k, v) in req.headers() {
        let name = k.as_str();
        if matches!(
            name,
            "host" | "connection" | "transfer-encoding" | "oc-checksum"
        ) {
            continue;
        }
        if name == "destination" {
            let Some(rel) = v.to_str().ok().and_then(dest_rel) else {
                return empty(StatusCode::BAD_REQUEST);
            };
            let d: Vec<String> = rel
                .split('/')
                .filter(|s| !s.is_empty())
                .map(encode)
                .collect();
            rb = rb.header(
                "Destination",
                format!("{}{FILES}{}", ctx.nginx_base, d.join("/")),
            );
            continue;
        }
        rb = rb.header(k.as_str(), v.as_bytes());
    }
    let has_body = req.method() == hyper::Method::PUT;
    let body = body.unwrap_or_else(|| {
        if !has_body {
            return reqwest::Body::from(Bytes::new());
        }
        let stream = req
            .into_body()
            .into_data_stream()
            .map_err(std::io::Error::other);
        reqwest::Body::wrap_stream(stream)
    });
    let resp = match rb.body(body).send().await {
        Ok(r) => r,
        Err(_) => return empty(StatusCode::BAD_GATEWAY),
    };
    let mut out = Response::builder().status(resp.status().as_u16());
    for (k, v) in resp.headers() {
        if matches!(k.as_str(), "connection" | "transfer-encoding" | "server") {
            continue;
        }
        out = out.header(k.as_str(), v.as_bytes());
    }
    let stream = resp
        .bytes_stream()
        .map_ok(Frame::data)
        .map_err(std::io::Error::other);
    out.body(BodyExt::boxed(StreamBody::new(stream))).unwrap()
}

fn id_of(state: &mut State, rel: &str) -> u64 {
    if let Some(id) = state.ids.get(rel) {
        return *id;
    }
    state.next_id += 1;
    let id = state.next_id;
    state.ids.insert(rel.to_owned(), id);
    id
}

/// Moves the file/id/checksum records of `from` (and below) to `to`.
fn rename_records(state: &mut State, from: &str, to: Option<&str>, keep: bool) {
    let moved = |p: &str| -> Option<String> {
        if p == from {
            Some(to?.to_owned())
        } else {
            let rest = p.strip_prefix(from)?.strip_prefix('/')?;
            Some(format!("{}/{rest}", to?))
        }
    };
    let below = |p: &str| p == from || p.starts_with(&format!("{from}/"));
    let ids: Vec<(String, u64)> = state
        .ids
        .iter()
        .filter(|(p, _)| below(p))
        .map(|(p, i)| (p.clone(), *i))
        .collect();
    let sums: Vec<(String, String)> = state
        .rec
        .checksums
        .iter()
        .filter(|(p, _)| below(p))
        .map(|(p, s)| (p.clone(), s.clone()))
        .collect();
    for (p, id) in ids {
        if !keep {
            state.ids.remove(&p);
            if let Some(n) = moved(&p) {
                state.ids.insert(n, id);
            }
        }
    }
    for (p, s) in sums {
        if !keep {
            state.rec.checksums.remove(&p);
        }
        if let Some(n) = moved(&p) {
            state.rec.checksums.insert(n, s);
        }
    }
}

fn propfind_files(ctx: &Ctx, req: &Request<Incoming>, rel: &str) -> Response<Body> {
    let depth = header(req, "depth").unwrap_or("1");
    if depth != "0" && depth != "1" {
        return empty(StatusCode::FORBIDDEN);
    }
    let disk = ctx.data.join(rel);
    let Ok(meta) = std::fs::metadata(&disk) else {
        return empty(StatusCode::NOT_FOUND);
    };
    let mut items = vec![(rel.to_owned(), meta.clone())];
    if depth == "1" && meta.is_dir() {
        let Ok(rd) = std::fs::read_dir(&disk) else {
            return empty(StatusCode::INTERNAL_SERVER_ERROR);
        };
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if let Ok(m) = e.metadata() {
                let p = if rel.is_empty() {
                    name
                } else {
                    format!("{rel}/{name}")
                };
                items.push((p, m));
            }
        }
    }
    let mut state = ctx.state.lock().unwrap();
    let mut xml = String::from(
        r#"<?xml version="1.0"?>
<d:multistatus xmlns:d="DAV:" xmlns:s="http://sabredav.org/ns" xmlns:oc="http://owncloud.org/ns" xmlns:nc="http://nextcloud.org/ns">"#,
    );
    for (p, m) in items {
        let mut href = FILES.to_owned();
        href.push_str(
            &p.split('/')
                .filter(|s| !s.is_empty())
                .map(encode)
                .collect::<Vec<_>>()
                .join("/"),
        );
        if m.is_dir() && !p.is_empty() {
            href.push('/');
        }
        let mtime = m.modified().unwrap();
        let id = id_of(&mut state, &p);
        let secs = mtime
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let mut found = format!(
            "<d:getlastmodified>{}</d:getlastmodified><d:getetag>&quot;{:x}{:x}&quot;</d:getetag><oc:fileid>{id}</oc:fileid>",
            httpdate::fmt_http_date(mtime),
            secs,
            m.len()
        );
        let mut missing = String::new();
        if m.is_dir() {
            found.push_str("<d:resourcetype><d:collection/></d:resourcetype>");
            missing.push_str("<d:getcontentlength/><oc:checksums/>");
        } else {
            found.push_str(&format!(
                "<d:resourcetype/><d:getcontentlength>{}</d:getcontentlength>",
                m.len()
            ));
            match state.rec.checksums.get(&p) {
                Some(c) => found.push_str(&format!(
                    "<oc:checksums><oc:checksum>{c}</oc:checksum></oc:checksums>"
                )),
                None => missing.push_str("<oc:checksums/>"),
            }
        }
        xml.push_str(&format!(
            "<d:response><d:href>{href}</d:href><d:propstat><d:prop>{found}</d:prop><d:status>HTTP/1.1 200 OK</d:status></d:propstat>"
        ));
        if !missing.is_empty() {
            xml.push_str(&format!(
                "<d:propstat><d:prop>{missing}</d:prop><d:status>HTTP/1.1 404 Not Found</d:status></d:propstat>"
            ));
        }
        xml.push_str("</d:response>");
    }
    xml.push_str("</d:multistatus>");
    let mut r = full(StatusCode::MULTI_STATUS, xml);
    r.headers_mut().insert(
        "content-type",
        "application/xml; charset=utf-8".parse().unwrap(),
    );
    r
}

/// Saves the current content of `rel` (if a file) as a version of its file id.
fn save_version(ctx: &Ctx, rel: &str) {
    let disk = ctx.data.join(rel);
    let Ok(m) = std::fs::metadata(&disk) else {
        return;
    };
    if !m.is_file() {
        return;
    }
    let id = id_of(&mut ctx.state.lock().unwrap(), rel);
    let secs = m
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let dir = ctx.own.join("versions").join(id.to_string());
    std::fs::create_dir_all(&dir).unwrap();
    let _ = std::fs::copy(&disk, dir.join(secs.to_string()));
}

async fn put_file(ctx: &Ctx, req: Request<Incoming>, rel: &str) -> Response<Body> {
    let checksum = header(&req, "oc-checksum").map(str::to_owned);
    save_version(ctx, rel);
    let resp = forward(ctx, req, None).await;
    if resp.status().is_success() {
        let mut st = ctx.state.lock().unwrap();
        id_of(&mut st, rel);
        match checksum {
            Some(c) => st.rec.checksums.insert(rel.to_owned(), c),
            None => st.rec.checksums.remove(rel),
        };
    }
    resp
}

async fn copy_move(ctx: &Ctx, req: Request<Incoming>, rel: &str) -> Response<Body> {
    let is_move = req.method().as_str() == "MOVE";
    let Some(to) = header(&req, "destination").and_then(dest_rel) else {
        return empty(StatusCode::BAD_REQUEST);
    };
    if ctx.data.join(&to).is_file() && header(&req, "overwrite") != Some("F") {
        save_version(ctx, &to);
    }
    let resp = forward(ctx, req, None).await;
    if resp.status().is_success() {
        let mut st = ctx.state.lock().unwrap();
        rename_records(&mut st, &to, None, false);
        rename_records(&mut st, rel, Some(&to), !is_move);
    }
    resp
}

fn delete_to_trash(ctx: &Ctx, rel: &str) -> Response<Body> {
    if rel.is_empty() {
        return empty(StatusCode::FORBIDDEN);
    }
    let disk = ctx.data.join(rel);
    if std::fs::symlink_metadata(&disk).is_err() {
        return empty(StatusCode::NOT_FOUND);
    }
    let name = rel.rsplit('/').next().unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    let item = format!("{name}.d{}{:09}", now.as_secs(), now.subsec_nanos());
    let target = ctx.own.join("trash").join(&item);
    if std::fs::rename(&disk, &target).is_err() {
        return empty(StatusCode::INTERNAL_SERVER_ERROR);
    }
    std::fs::write(ctx.own.join("trash").join(format!("{item}.origin")), rel).ok();
    rename_records(&mut ctx.state.lock().unwrap(), rel, None, false);
    empty(StatusCode::NO_CONTENT)
}

fn list_dir_xml(base_href: &str, dir: &Path, skip_suffix: &str) -> String {
    let mut xml = String::from(
        r#"<?xml version="1.0"?><d:multistatus xmlns:d="DAV:" xmlns:oc="http://owncloud.org/ns" xmlns:nc="http://nextcloud.org/ns">"#,
    );
    xml.push_str(&format!(
        "<d:response><d:href>{base_href}</d:href><d:propstat><d:prop><d:resourcetype><d:collection/></d:resourcetype></d:prop><d:status>HTTP/1.1 200 OK</d:status></d:propstat></d:response>"
    ));
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if !skip_suffix.is_empty() && name.ends_with(skip_suffix) {
            continue;
        }
        let m = e.metadata().unwrap();
        xml.push_str(&format!(
            "<d:response><d:href>{base_href}{}</d:href><d:propstat><d:prop><d:getcontentlength>{}</d:getcontentlength><d:getlastmodified>{}</d:getlastmodified><d:resourcetype/></d:prop><d:status>HTTP/1.1 200 OK</d:status></d:propstat></d:response>",
            encode(&name),
            m.len(),
            httpdate::fmt_http_date(m.modified().unwrap())
        ));
    }
    xml.push_str("</d:multistatus>");
    xml
}

fn remove_any(p: &Path) -> std::io::Result<()> {
    if p.is_dir() {
        std::fs::remove_dir_all(p)
    } else {
        std::fs::remove_file(p)
    }
}

fn trash(ctx: &Ctx, req: &Request<Incoming>, path: &str) -> Response<Body> {
    let dir = ctx.own.join("trash");
    let rest = path.strip_prefix(TRASH).unwrap_or("").trim_matches('/');
    match (req.method().as_str(), rest) {
        ("PROPFIND", "") => full(
            StatusCode::MULTI_STATUS,
            list_dir_xml(&format!("{TRASH}/"), &dir, ".origin"),
        ),
        ("DELETE", "") => {
            for e in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
                let _ = remove_any(&e.path());
            }
            empty(StatusCode::NO_CONTENT)
        }
        ("DELETE", item) if !item.contains('/') && !item.starts_with('.') => {
            let p = dir.join(item);
            match remove_any(&p) {
                Ok(()) => {
                    let _ = std::fs::remove_file(dir.join(format!("{item}.origin")));
                    empty(StatusCode::NO_CONTENT)
                }
                Err(_) => empty(StatusCode::NOT_FOUND),
            }
        }
        _ => empty(StatusCode::METHOD_NOT_ALLOWED),
    }
}

fn versions(ctx: &Ctx, req: &Request<Incoming>, path: &str) -> Response<Body> {
    let rest = path.strip_prefix(VERSIONS).unwrap_or("");
    let parts: Vec<&str> = rest.split('/').filter(|s| !s.is_empty()).collect();
    let ok = |s: &&str| s.bytes().all(|b| b.is_ascii_digit());
    match (req.method().as_str(), parts.as_slice()) {
        ("PROPFIND", [id]) if ok(id) => {
            let dir = ctx.own.join("versions").join(id);
            if !dir.is_dir() {
                return empty(StatusCode::NOT_FOUND);
            }
            full(
                StatusCode::MULTI_STATUS,
                list_dir_xml(&format!("{VERSIONS}{id}/"), &dir, ""),
            )
        }
        ("DELETE", [id, v]) if ok(id) && ok(v) => {
            match std::fs::remove_file(ctx.own.join("versions").join(id).join(v)) {
                Ok(()) => empty(StatusCode::NO_CONTENT),
                Err(_) => empty(StatusCode::NOT_FOUND),
            }
        }
        _ => empty(StatusCode::METHOD_NOT_ALLOWED),
    }
}

/// `PROPFIND` of an upload folder: the chunks stored so far (whole ones: see the chunk `PUT`),
/// with their sizes; 404 when the folder is gone.
fn list_upload_folder(ctx: &Ctx, req: &Request<Incoming>, id: &str) -> Response<Body> {
    let dir = ctx.own.join("uploads").join(id);
    if !dir.is_dir() {
        return empty(StatusCode::NOT_FOUND);
    }
    if header(req, "depth") == Some("infinity") {
        return empty(StatusCode::FORBIDDEN);
    }
    let href = format!("{UPLOADS}{id}/");
    let mut xml = String::from(
        r#"<?xml version="1.0"?><d:multistatus xmlns:d="DAV:" xmlns:s="http://sabredav.org/ns" xmlns:oc="http://owncloud.org/ns" xmlns:nc="http://nextcloud.org/ns">"#,
    );
    xml.push_str(&format!(
        "<d:response><d:href>{href}</d:href><d:propstat><d:prop><d:resourcetype><d:collection/></d:resourcetype></d:prop><d:status>HTTP/1.1 200 OK</d:status></d:propstat><d:propstat><d:prop><d:getcontentlength/></d:prop><d:status>HTTP/1.1 404 Not Found</d:status></d:propstat></d:response>"
    ));
    if header(req, "depth") != Some("0") {
        for e in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.parse::<u32>().is_err() {
                continue;
            }
            let m = e.metadata().unwrap();
            xml.push_str(&format!(
                "<d:response><d:href>{href}{name}</d:href><d:propstat><d:prop><d:resourcetype/><d:getcontentlength>{}</d:getcontentlength><d:getlastmodified>{}</d:getlastmodified></d:prop><d:status>HTTP/1.1 200 OK</d:status></d:propstat></d:response>",
                m.len(),
                httpdate::fmt_http_date(m.modified().unwrap())
            ));
        }
    }
    xml.push_str("</d:multistatus>");
    full(StatusCode::MULTI_STATUS, xml)
}

async fn uploads(ctx: &Ctx, req: Request<Incoming>) -> Response<Body> {
    let path = req.uri().path().to_owned();
    let rest = path.strip_prefix(UPLOADS).unwrap_or("");
    let parts: Vec<&str> = rest.split('/').filter(|s| !s.is_empty()).collect();
    let valid_id =
        |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
    // Developer manual, "Chunked file upload": "The ``MKCOL``, chunk ``PUT``, and final
    // ``MOVE`` requests need to have a ``Destination`` header present"; listing the folder
    // ("You can list the current available folder") and deleting it do not.
    match (req.method().as_str(), parts.as_slice()) {
        ("PROPFIND", [id]) if valid_id(id) => {
            return list_upload_folder(ctx, &req, id);
        }
        // "If the upload has to be aborted, delete the upload folder" ... "No
        // ``Destination`` header is needed for this request." A folder that is gone (finished,
        // aborted or expired) is not found.
        ("DELETE", [id]) if valid_id(id) => {
            return match std::fs::remove_dir_all(ctx.own.join("uploads").join(id)) {
                Ok(()) => empty(StatusCode::NO_CONTENT),
                Err(_) => empty(StatusCode::NOT_FOUND),
            };
        }
        ("DELETE", [id, n]) if valid_id(id) && n.parse::<u32>().is_ok() => {
            return match std::fs::remove_file(ctx.own.join("uploads").join(id).join(n)) {
                Ok(()) => empty(StatusCode::NO_CONTENT),
                Err(_) => empty(StatusCode::NOT_FOUND),
            };
        }
        _ => {}
    }
    let Some(dest) = header(&req, "destination").and_then(dest_rel) else {
        return empty(StatusCode::BAD_REQUEST);
    };
    let total: Option<u64> = header(&req, "oc-total-length").and_then(|v| v.parse().ok());
    match (req.method().as_str(), parts.as_slice()) {
        ("MKCOL", [id]) if valid_id(id) => {
            let dir = ctx.own.join("uploads").join(id);
            if dir.exists() {
                return empty(StatusCode::METHOD_NOT_ALLOWED);
            }
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join(".destination"), &dest).unwrap();
            empty(StatusCode::CREATED)
        }
        ("PUT", [id, n]) if valid_id(id) => {
            let Ok(num) = n.parse::<u32>() else {
                return empty(StatusCode::BAD_REQUEST);
            };
            if !(1..=10000).contains(&num) || total.is_none() {
                return empty(StatusCode::BAD_REQUEST);
            }
            let dir = ctx.own.join("uploads").join(id);
            if std::fs::read_to_string(dir.join(".destination"))
                .ok()
                .as_deref()
                != Some(dest.as_str())
            {
                return empty(StatusCode::BAD_REQUEST);
            }
            // Like Sabre's part files: the body goes to a temporary name, which becomes the
            // chunk only once the whole body came, so a request cut mid-body leaves no chunk.
            let part = dir.join(format!(".{num:05}.part-{:08x}", fastrand::u32(..)));
            let mut file = tokio::fs::File::create(&part).await.unwrap();
            let mut body = req.into_body().into_data_stream();
            while let Some(chunk) = body.next().await {
                let Ok(chunk) = chunk else {
                    drop(file);
                    let _ = std::fs::remove_file(&part);
                    return empty(StatusCode::BAD_REQUEST);
                };
                tokio::io::AsyncWriteExt::write_all(&mut file, &chunk)
                    .await
                    .unwrap();
                ctx.state.lock().unwrap().rec.chunk_bytes += chunk.len() as u64;
            }
            // tokio's File finishes its last write in the background: wait for it, or the
            // final MOVE may see a short chunk.
            tokio::io::AsyncWriteExt::flush(&mut file).await.unwrap();
            drop(file);
            std::fs::rename(&part, dir.join(format!("{num:05}"))).unwrap();
            empty(StatusCode::CREATED)
        }
        ("MOVE", [id, ".file"]) if valid_id(id) => {
            let dir = ctx.own.join("uploads").join(id);
            let mut chunks: Vec<(u32, PathBuf, u64)> = std::fs::read_dir(&dir)
                .into_iter()
                .flatten()
                .flatten()
                .filter_map(|e| {
                    let n = e.file_name().to_string_lossy().parse::<u32>().ok()?;
                    Some((n, e.path(), e.metadata().ok()?.len()))
                })
                .collect();
            chunks.sort_by_key(|c| c.0);
            let sizes: Vec<u64> = chunks.iter().map(|c| c.2).collect();
            let sum: u64 = sizes.iter().sum();
            let small_middle = sizes.iter().rev().skip(1).any(|s| *s < MIN_CHUNK);
            if Some(sum) != total || small_middle {
                return empty(StatusCode::BAD_REQUEST);
            }
            // Store through the WebDAV server, with the mtime of this MOVE.
            let paths: Vec<PathBuf> = chunks.into_iter().map(|c| c.1).collect();
            let stream = futures::stream::iter(paths)
                .then(|p| async move { tokio::fs::read(p).await.map(Bytes::from) });
            let d: Vec<String> = dest.split('/').map(encode).collect();
            let mut rb = ctx
                .client
                .put(format!("{}{FILES}{}", ctx.nginx_base, d.join("/")))
                .header("authorization", &ctx.auth)
                .header("content-length", sum)
                .body(reqwest::Body::wrap_stream(stream));
            if let Some(m) = header(&req, "x-oc-mtime") {
                rb = rb.header("X-OC-Mtime", m);
            }
            let checksum = header(&req, "oc-checksum").map(str::to_owned);
            save_version(ctx, &dest);
            let resp = match rb.send().await {
                Ok(r) => r,
                Err(_) => return empty(StatusCode::BAD_GATEWAY),
            };
            if !resp.status().is_success() {
                return empty(StatusCode::from_u16(resp.status().as_u16()).unwrap());
            }
            let accepted = resp.headers().get("x-oc-mtime").cloned();
            let _ = std::fs::remove_dir_all(&dir);
            {
                let mut st = ctx.state.lock().unwrap();
                id_of(&mut st, &dest);
                st.rec.assembled.push(sizes);
                match checksum {
                    Some(c) => st.rec.checksums.insert(dest.clone(), c),
                    None => st.rec.checksums.remove(&dest),
                };
            }
            let mut r = empty(StatusCode::CREATED);
            if let Some(a) = accepted {
                r.headers_mut().insert("x-oc-mtime", a);
            }
            r
        }
        _ => empty(StatusCode::BAD_REQUEST),
    }
}
