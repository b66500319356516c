//! A small in-memory WebDAV server whose answer to a ranged `PUT` (`Content-Range: bytes
//! START-END/*`) is scripted: honoured (as Apache mod_dav does), refused with a status (as
//! nginx and sabre/dav do), or ignored, the body stored as the whole file from byte 0 (as a
//! server that does not know the header may do) — always or after some ranged `PUT`s were
//! honoured (a server that passes a probe and misbehaves later). It speaks just enough of
//! RFC 4918 for the engine: `PROPFIND` (depth 0 and 1), `GET`, `HEAD`, `PUT`, `MKCOL`,
//! `DELETE`, `MOVE`, under `/dav/`. Like Apache, a ranged `PUT` it honours keeps the bytes that
//! arrived when its body breaks off.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::{Request, Response};

use super::scripted::{Body, multistatus, reply};

/// What the server does with a ranged `PUT`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ranges {
    /// Writes the body at START, in place (Apache mod_dav).
    Honour,
    /// Answers this status and stores nothing.
    Refuse(u16),
    /// Answers 204 and stores the body as the whole file.
    Ignore,
    /// Honours the first `n` ranged `PUT`s, then ignores the header.
    HonourFirst(usize),
    /// Honours the first `n` ranged `PUT`s, then writes only the first half of each body at
    /// its range and still answers 204 (a server that loses data it acknowledged).
    ShortAfter(usize),
}

#[derive(Default)]
struct Tree {
    /// URL path (under `/dav/`, no trailing slash) to content.
    files: BTreeMap<String, Vec<u8>>,
    /// URL path of a file to when it was last written.
    times: BTreeMap<String, std::time::SystemTime>,
    /// URL paths of collections, with a trailing slash.
    dirs: std::collections::BTreeSet<String>,
}

/// A running server.
pub struct MemDav {
    /// `http://127.0.0.1:PORT/dav/`.
    pub url: String,
    tree: Arc<Mutex<Tree>>,
    ranged: Arc<AtomicUsize>,
    log: Arc<Mutex<Vec<String>>>,
}

impl MemDav {
    /// The content of the file at `path` (below `/dav/`), if any.
    pub fn file(&self, path: &str) -> Option<Vec<u8>> {
        self.tree
            .lock()
            .unwrap()
            .files
            .get(&format!("/dav/{path}"))
            .cloned()
    }

    /// The names of every file below `/dav/`.
    pub fn files(&self) -> Vec<String> {
        self.tree
            .lock()
            .unwrap()
            .files
            .keys()
            .map(|k| k.trim_start_matches("/dav/").to_owned())
            .collect()
    }

    /// How many ranged `PUT`s the server received.
    pub fn ranged_puts(&self) -> usize {
        self.ranged.load(Ordering::Relaxed)
    }

    /// `METHOD path [content-range]` of every request so far.
    pub fn log(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }
}

/// The bytes of a request body that arrived, and whether it broke off before its end.
async fn read_body(mut body: hyper::body::Incoming) -> (Bytes, bool) {
    let mut out = Vec::new();
    while let Some(frame) = body.frame().await {
        match frame {
            Ok(f) => {
                if let Some(d) = f.data_ref() {
                    out.extend_from_slice(d);
                }
            }
            Err(_) => return (out.into(), true),
        }
    }
    (out.into(), false)
}

/// Starts a server on 127.0.0.1 (its own thread and runtime) with an empty `/dav/`.
pub fn start(ranges: Ranges) -> MemDav {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let tree = Arc::new(Mutex::new(Tree::default()));
    tree.lock().unwrap().dirs.insert("/dav/".to_owned());
    let ranged = Arc::new(AtomicUsize::new(0));
    let log = Arc::new(Mutex::new(Vec::new()));
    let (t2, r2, l2) = (tree.clone(), ranged.clone(), log.clone());
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let (tree, ranged, log) = (t2.clone(), r2.clone(), l2.clone());
                tokio::spawn(async move {
                    let svc =
                        hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                            let (tree, ranged, log) = (tree.clone(), ranged.clone(), log.clone());
                            async move {
                                Ok::<_, Infallible>(handle(req, ranges, &tree, &ranged, &log).await)
                            }
                        });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
    });
    MemDav {
        url: format!("http://127.0.0.1:{port}/dav/"),
        tree,
        ranged,
        log,
    }
}

fn header(req: &Request<hyper::body::Incoming>, name: &str) -> Option<String> {
    req.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

fn parent(path: &str) -> String {
    let t = path.trim_end_matches('/');
    match t.rfind('/') {
        Some(i) => t[..=i].to_owned(),
        None => "/".to_owned(),
    }
}

/// `bytes START-END/*` → START.
fn range_start(v: &str) -> Option<u64> {
    let rest = v.strip_prefix("bytes ")?;
    let (start, rest) = rest.split_once('-')?;
    let (end, _) = rest.split_once('/')?;
    let (start, end) = (start.parse::<u64>().ok()?, end.parse::<u64>().ok()?);
    (end >= start).then_some(start)
}

/// A `<d:response>` for a collection.
fn dir(href: &str) -> String {
    format!(
        "<d:response><d:href>{href}</d:href><d:propstat><d:prop>\
         <d:resourcetype><d:collection/></d:resourcetype>\
         </d:prop><d:status>HTTP/1.1 200 OK</d:status></d:propstat></d:response>"
    )
}

/// A `<d:response>` for a file of `size` bytes last written at `when`.
fn file(href: &str, size: u64, when: Option<&std::time::SystemTime>) -> String {
    let when = httpdate::fmt_http_date(when.copied().unwrap_or_else(std::time::SystemTime::now));
    format!(
        "<d:response><d:href>{href}</d:href><d:propstat><d:prop>\
         <d:resourcetype/><d:getcontentlength>{size}</d:getcontentlength>\
         <d:getlastmodified>{when}</d:getlastmodified>\
         </d:prop><d:status>HTTP/1.1 200 OK</d:status></d:propstat></d:response>"
    )
}

async fn handle(
    req: Request<hyper::body::Incoming>,
    ranges: Ranges,
    tree: &Mutex<Tree>,
    ranged: &AtomicUsize,
    log: &Mutex<Vec<String>>,
) -> Response<Body> {
    let method = req.method().as_str().to_owned();
    let path = req.uri().path().to_owned();
    let range = header(&req, "content-range");
    log.lock().unwrap().push(format!(
        "{method} {path}{}",
        range
            .as_deref()
            .map(|r| format!(" [{r}]"))
            .unwrap_or_default()
    ));
    if !path.starts_with("/dav/") {
        return reply(404, "");
    }
    let depth = header(&req, "depth");
    let dest = header(&req, "destination");
    let overwrite = header(&req, "overwrite").is_none_or(|o| o != "F");
    let (body, broken) = read_body(req.into_body()).await;
    if broken && !(method == "PUT" && range.is_some()) {
        return reply(400, "");
    }
    let mut t = tree.lock().unwrap();
    let key = path.trim_end_matches('/').to_owned();
    match method.as_str() {
        "PROPFIND" => {
            let mut out = Vec::new();
            if let Some(f) = t.files.get(&key) {
                out.push(file(&key, f.len() as u64, t.times.get(&key)));
            } else if t.dirs.contains(&format!("{key}/")) {
                let d = format!("{key}/");
                out.push(dir(&d));
                if depth.as_deref() == Some("1") {
                    for (k, v) in &t.files {
                        if parent(k) == d {
                            out.push(file(k, v.len() as u64, t.times.get(k)));
                        }
                    }
                    for k in &t.dirs {
                        if k != &d && parent(k) == d {
                            out.push(dir(k));
                        }
                    }
                }
            } else {
                return reply(404, "");
            }
            multistatus(&out)
        }
        "GET" | "HEAD" => match t.files.get(&key) {
            Some(f) if method == "GET" => reply(200, Bytes::from(f.clone())),
            Some(_) => reply(200, ""),
            None => reply(404, ""),
        },
        "MKCOL" => {
            let d = format!("{key}/");
            if t.dirs.contains(&d) || t.files.contains_key(&key) {
                return reply(405, "");
            }
            if !t.dirs.contains(&parent(&d)) {
                return reply(409, "");
            }
            t.dirs.insert(d);
            reply(201, "")
        }
        "PUT" => {
            if !t.dirs.contains(&parent(&key)) {
                return reply(409, "");
            }
            t.times.insert(key.clone(), std::time::SystemTime::now());
            let Some(range) = range else {
                t.files.insert(key, body.to_vec());
                return reply(201, "");
            };
            let n = ranged.fetch_add(1, Ordering::Relaxed);
            let mut body = body;
            let honour = match ranges {
                Ranges::Honour => true,
                Ranges::Refuse(status) => return reply(status, "no ranged PUT here"),
                Ranges::Ignore => false,
                Ranges::HonourFirst(k) => n < k,
                Ranges::ShortAfter(k) => {
                    if n >= k {
                        body = body.slice(..body.len() / 2);
                    }
                    true
                }
            };
            if !honour {
                if broken {
                    return reply(400, "");
                }
                t.files.insert(key, body.to_vec());
                return reply(204, "");
            }
            let Some(start) = range_start(&range) else {
                return reply(400, "malformed Content-Range");
            };
            let f = t.files.entry(key).or_default();
            let start = usize::try_from(start).unwrap();
            if f.len() < start {
                f.resize(start, 0);
            }
            let end = start + body.len();
            if f.len() < end {
                f.resize(end, 0);
            }
            f[start..end].copy_from_slice(&body);
            if broken {
                // Like Apache's mod_dav: the bytes that arrived stay where they were written.
                return reply(400, "");
            }
            reply(204, "")
        }
        "DELETE" => {
            if t.files.remove(&key).is_some() {
                return reply(204, "");
            }
            let d = format!("{key}/");
            if t.dirs.remove(&d) {
                t.files.retain(|k, _| !k.starts_with(&d));
                t.dirs.retain(|k| !k.starts_with(&d));
                return reply(204, "");
            }
            reply(404, "")
        }
        "MOVE" => {
            let Some(dest) = dest.and_then(|d| url::Url::parse(&d).ok()) else {
                return reply(400, "");
            };
            let to = dest.path().trim_end_matches('/').to_owned();
            let Some(content) = t.files.get(&key).cloned() else {
                return reply(404, "");
            };
            if !t.dirs.contains(&parent(&to)) {
                return reply(409, "");
            }
            if t.dirs.contains(&format!("{to}/")) {
                return reply(412, "");
            }
            let existed = t.files.contains_key(&to);
            if existed && !overwrite {
                return reply(412, "");
            }
            t.files.remove(&key);
            if let Some(when) = t.times.remove(&key) {
                t.times.insert(to.clone(), when);
            }
            t.files.insert(to, content);
            reply(if existed { 204 } else { 201 }, "")
        }
        _ => reply(405, ""),
    }
}
