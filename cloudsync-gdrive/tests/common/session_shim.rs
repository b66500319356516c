//! A small HTTP front for fake-gcs-server that adds the two resumable-session requests it
//! does not implement as Cloud Storage documents them, and forwards everything else as is.
//!
//! What fake-gcs-server (1.54) does instead (checked in `gcs.rs`,
//! `fake_gcs_server_session_deviations`):
//! - a status query (`PUT` with `Content-Range: bytes */SIZE` or `bytes */*` and no body)
//!   *finishes* the upload with the bytes it holds (200 and a truncated object), where the
//!   guide ("Check the status of a resumable upload") answers `308 Resume Incomplete` with a
//!   `Range` header and leaves the session open;
//! - `DELETE` on the session URI answers 499 but keeps the session open, where the guide
//!   ("Cancel an upload") ends it, so later requests to it fail (404 here);
//! - it appends every chunk whole without looking at its start offset (the service takes
//!   only the bytes after what it holds).
//!
//! The front answers status queries itself from what fake-gcs-server acknowledged (the
//! `Range` of its last `308`, or the object once it answered 200/201), answers `DELETE` with
//! 499 and then 404 for that session, and rewrites the `Location` of a new session to point
//! at itself. Bytes are still stored by fake-gcs-server.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};

#[derive(Debug, Clone)]
enum Upload {
    /// Bytes fake-gcs-server acknowledged.
    Open(u64),
    /// Finished: the object resource it answered with.
    Done(Bytes),
    /// Cancelled.
    Cancelled,
}

#[derive(Debug, Default)]
struct State {
    uploads: HashMap<String, Upload>,
    status_queries: usize,
}

/// The front; it stops with the test's runtime.
#[derive(Debug, Clone)]
pub struct SessionShim {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
}

impl SessionShim {
    /// Starts a front for the fake-gcs-server at `upstream` (`http://127.0.0.1:PORT`).
    pub async fn start(upstream: String) -> SessionShim {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(Mutex::new(State::default()));
        let shim = SessionShim {
            addr,
            state: state.clone(),
        };
        let client = reqwest::Client::new();
        let me = format!("http://{addr}");
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let (state, client, upstream, me) =
                    (state.clone(), client.clone(), upstream.clone(), me.clone());
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(move |req| {
                        let (state, client, upstream, me) =
                            (state.clone(), client.clone(), upstream.clone(), me.clone());
                        async move {
                            Ok::<_, std::convert::Infallible>(
                                handle(state, client, upstream, me, req).await,
                            )
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        shim
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Status queries answered so far.
    pub fn status_queries(&self) -> usize {
        self.state.lock().unwrap().status_queries
    }

    /// Open (unfinished, not cancelled) sessions.
    pub fn open_sessions(&self) -> usize {
        self.state
            .lock()
            .unwrap()
            .uploads
            .values()
            .filter(|u| matches!(u, Upload::Open(_)))
            .count()
    }
}

fn reply<K: AsRef<str>>(
    status: u16,
    headers: &[(K, String)],
    body: Bytes,
) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(body));
    *r.status_mut() = StatusCode::from_u16(status).unwrap();
    for (k, v) in headers {
        r.headers_mut().append(
            hyper::header::HeaderName::from_bytes(k.as_ref().as_bytes()).unwrap(),
            hyper::header::HeaderValue::from_str(v).unwrap(),
        );
    }
    r
}

fn not_found() -> Response<Full<Bytes>> {
    reply(
        404,
        &[("content-type", "application/json".to_owned())],
        Bytes::from_static(br#"{"error":{"code":404,"message":"No such upload session"}}"#),
    )
}

async fn handle(
    state: Arc<Mutex<State>>,
    client: reqwest::Client,
    upstream: String,
    me: String,
    req: Request<Incoming>,
) -> Response<Full<Bytes>> {
    let (parts, body) = req.into_parts();
    // A body that did not arrive whole is not forwarded (the client's connection broke).
    let Ok(body) = body.collect().await.map(|b| b.to_bytes()) else {
        return reply::<&str>(400, &[], Bytes::new());
    };
    let path_q = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_default();
    let upload_id = url::Url::parse(&format!("http://x{path_q}"))
        .ok()
        .and_then(|u| {
            u.query_pairs()
                .find(|(k, _)| k == "upload_id")
                .map(|(_, v)| v.into_owned())
        });
    let range = parts
        .headers
        .get("content-range")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    if let Some(id) = &upload_id {
        let known = state.lock().unwrap().uploads.get(id).cloned();
        match (parts.method.as_str(), known) {
            ("DELETE", _) => {
                state
                    .lock()
                    .unwrap()
                    .uploads
                    .insert(id.clone(), Upload::Cancelled);
                return reply::<&str>(499, &[], Bytes::new());
            }
            (_, Some(Upload::Cancelled)) => return not_found(),
            ("PUT", known) if body.is_empty() && range.starts_with("bytes */") => {
                state.lock().unwrap().status_queries += 1;
                return match known {
                    Some(Upload::Done(obj)) => {
                        reply(200, &[("content-type", "application/json".into())], obj)
                    }
                    Some(Upload::Open(n)) if n > 0 => reply(
                        308,
                        &[("range", format!("bytes=0-{}", n - 1))],
                        Bytes::new(),
                    ),
                    // Not seen yet: fake-gcs-server knows whether it exists, but asking
                    // would finish it. Sessions are recorded when they are created, so an
                    // unknown one is not ours.
                    None => not_found(),
                    _ => reply::<&str>(308, &[], Bytes::new()),
                };
            }
            _ => {}
        }
    }
    let mut fwd = client.request(parts.method.clone(), format!("{upstream}{path_q}"));
    for (k, v) in &parts.headers {
        if k != hyper::header::HOST && k != hyper::header::CONTENT_LENGTH {
            fwd = fwd.header(k.as_str(), v.as_bytes());
        }
    }
    let res = match fwd.body(body).send().await {
        Ok(r) => r,
        Err(_) => return reply::<&str>(502, &[], Bytes::new()),
    };
    let status = res.status().as_u16();
    let mut headers: Vec<(String, String)> = Vec::new();
    for (name, v) in res.headers() {
        let skip = [
            "content-length",
            "transfer-encoding",
            "connection",
            "keep-alive",
        ];
        if let (false, Ok(v)) = (skip.contains(&name.as_str()), v.to_str()) {
            headers.push((name.as_str().to_owned(), v.replace(&upstream, &me)));
        }
    }
    let out = res.bytes().await.unwrap_or_default();
    let mut st = state.lock().unwrap();
    match &upload_id {
        Some(id) if status == 308 => {
            let held = headers
                .iter()
                .find(|(k, _)| k == "range")
                .and_then(|(_, v)| v.strip_prefix("bytes=0-"))
                .and_then(|n| n.parse::<u64>().ok())
                .map_or(0, |n| n + 1);
            st.uploads.insert(id.clone(), Upload::Open(held));
        }
        Some(id) if status == 200 || status == 201 => {
            st.uploads.insert(id.clone(), Upload::Done(out.clone()));
        }
        None if parts.method == hyper::Method::POST && path_q.contains("uploadType=resumable") => {
            // A new session: remember it, holding nothing yet.
            if let Some((_, loc)) = headers.iter().find(|(k, _)| k == "location") {
                if let Some(id) = url::Url::parse(loc).ok().and_then(|u| {
                    u.query_pairs()
                        .find(|(k, _)| k == "upload_id")
                        .map(|(_, v)| v.into_owned())
                }) {
                    st.uploads.insert(id, Upload::Open(0));
                }
            }
        }
        _ => {}
    }
    reply(status, &headers, out)
}
