//! A scripted WebDAV server for behaviour no real server here shows on demand: a handler
//! picks each answer (status, headers, body, streamed or not) from the method and path, and
//! every request is recorded so a test can say what was (not) sent.

use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures::{Stream, StreamExt};
use http_body_util::{BodyExt, StreamBody, combinators::BoxBody};
use hyper::body::Frame;
use hyper::{Response, StatusCode};

/// An answer body.
pub type Body = BoxBody<Bytes, std::io::Error>;

/// One request the server saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    /// `PROPFIND`, `DELETE`, ...
    pub method: String,
    /// The URL path.
    pub path: String,
    /// The `Depth` header, if any.
    pub depth: Option<String>,
}

/// A running scripted server.
pub struct Scripted {
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    log: Arc<Mutex<Vec<Seen>>>,
}

impl Scripted {
    /// Every request so far, in order.
    pub fn seen(&self) -> Vec<Seen> {
        self.log.lock().unwrap().clone()
    }

    /// Whether a request with `method` reached the server.
    pub fn saw(&self, method: &str) -> bool {
        self.seen().iter().any(|s| s.method == method)
    }
}

/// Starts a server on 127.0.0.1 (its own thread and runtime) answering with `handler`.
pub fn start<F>(handler: F) -> Scripted
where
    F: Fn(&Seen) -> Response<Body> + Send + Sync + 'static,
{
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let log = Arc::new(Mutex::new(Vec::new()));
    let handler = Arc::new(handler);
    let log2 = log.clone();
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
                let (handler, log) = (handler.clone(), log2.clone());
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(
                        move |req: hyper::Request<hyper::body::Incoming>| {
                            let seen = Seen {
                                method: req.method().as_str().to_owned(),
                                path: req.uri().path().to_owned(),
                                depth: req
                                    .headers()
                                    .get("depth")
                                    .and_then(|v| v.to_str().ok())
                                    .map(str::to_owned),
                            };
                            log.lock().unwrap().push(seen.clone());
                            let resp = handler(&seen);
                            async move {
                                // Read the request body to its end (or failure) before answering.
                                let _ = req.into_body().collect().await;
                                Ok::<_, Infallible>(resp)
                            }
                        },
                    );
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
    });
    Scripted {
        base: format!("http://127.0.0.1:{port}"),
        log,
    }
}

/// An answer with a whole body.
pub fn reply(status: u16, body: impl Into<Bytes>) -> Response<Body> {
    let b = http_body_util::Full::new(body.into())
        .map_err(|never| match never {})
        .boxed();
    let mut r = Response::new(b);
    *r.status_mut() = StatusCode::from_u16(status).unwrap();
    r
}

/// An answer whose body is streamed from `chunks` (no `Content-Length`).
pub fn streamed(
    status: u16,
    chunks: impl Stream<Item = Bytes> + Send + Sync + 'static,
) -> Response<Body> {
    let body = StreamBody::new(chunks.map(|b| Ok::<_, std::io::Error>(Frame::data(b))));
    let mut r = Response::new(BodyExt::boxed(body));
    *r.status_mut() = StatusCode::from_u16(status).unwrap();
    r
}

/// A `207` answer from `responses` (each a whole `<d:response>…</d:response>`).
pub fn multistatus(responses: &[String]) -> Response<Body> {
    let mut xml =
        String::from(r#"<?xml version="1.0" encoding="utf-8"?><d:multistatus xmlns:d="DAV:">"#);
    for r in responses {
        xml.push_str(r);
    }
    xml.push_str("</d:multistatus>");
    reply(207, xml)
}

/// A `<d:response>` for a collection.
pub fn dir(href: &str) -> String {
    format!(
        "<d:response><d:href>{href}</d:href><d:propstat><d:prop>\
         <d:resourcetype><d:collection/></d:resourcetype>\
         <d:getlastmodified>Mon, 12 Jan 2026 09:25:56 GMT</d:getlastmodified>\
         </d:prop><d:status>HTTP/1.1 200 OK</d:status></d:propstat></d:response>"
    )
}

/// A `<d:response>` for a file of `size` bytes.
pub fn file(href: &str, size: u64) -> String {
    format!(
        "<d:response><d:href>{href}</d:href><d:propstat><d:prop>\
         <d:resourcetype/><d:getcontentlength>{size}</d:getcontentlength>\
         <d:getlastmodified>Mon, 12 Jan 2026 09:25:56 GMT</d:getlastmodified>\
         </d:prop><d:status>HTTP/1.1 200 OK</d:status></d:propstat></d:response>"
    )
}

/// A `<d:response>` whose resource itself has `status` (`<d:response><d:status>`).
pub fn status_only(href: &str, status: &str) -> String {
    format!(
        "<d:response><d:href>{href}</d:href><d:status>HTTP/1.1 {status}</d:status></d:response>"
    )
}

/// A `<d:response>` whose properties the server failed to read (one propstat with `status`).
pub fn props_failed(href: &str, status: &str) -> String {
    format!(
        "<d:response><d:href>{href}</d:href><d:propstat><d:prop>\
         <d:resourcetype/><d:getcontentlength/><d:getlastmodified/>\
         </d:prop><d:status>HTTP/1.1 {status}</d:status></d:propstat></d:response>"
    )
}
