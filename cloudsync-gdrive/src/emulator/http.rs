//! The HTTP side of the Drive emulator: the request router, the `q` and multipart parsers,
//! and the answer helpers.

use super::*;

/// The message Drive sends to a service account that creates a file in its own My Drive.
pub(super) const NO_STORAGE_MESSAGE: &str = "Service Accounts do not have storage quota. Leverage shared \
    drives (https://developers.google.com/workspace/drive/api/guides/about-shareddrives), or use \
    OAuth delegation (http://support.google.com/a/answer/7281227) instead.";

pub(super) type Resp = Response<Full<Bytes>>;

pub(super) fn resp(status: StatusCode, body: Value) -> Resp {
    let mut r = Response::new(Full::new(Bytes::from(body.to_string())));
    *r.status_mut() = status;
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json; charset=UTF-8"),
    );
    r
}

pub(super) fn error(status: u16, reason: &str, message: &str) -> Resp {
    let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    resp(
        code,
        json!({ "error": { "code": status, "message": message,
            "errors": [{ "domain": "global", "reason": reason, "message": message }] } }),
    )
}

pub(super) fn empty(status: StatusCode) -> Resp {
    let mut r = Response::new(Full::new(Bytes::new()));
    *r.status_mut() = status;
    r
}

/// Why the connection is dropped.
#[derive(Debug)]
pub(super) struct Dropped;

impl std::fmt::Display for Dropped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("injected connection drop")
    }
}

impl std::error::Error for Dropped {}

/// The body of an answer: whole, or trickling ([`Fault::Trickle`]).
pub(super) type AnyBody = http_body_util::combinators::BoxBody<Bytes, std::convert::Infallible>;

/// Marks an answer whose body trickles for ever.
#[derive(Clone, Copy)]
pub(super) struct Trickle;

/// Serves one request, turning an answer marked [`Trickle`] into a never-ending body.
pub(super) async fn handle(
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

pub(super) async fn answer(
    state: Arc<Mutex<State>>,
    req: Request<Incoming>,
) -> Result<Resp, Dropped> {
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

pub(super) fn chunk_start(headers: &hyper::HeaderMap) -> Option<u64> {
    let v = headers.get(hyper::header::CONTENT_RANGE)?.to_str().ok()?;
    let rest = v.strip_prefix("bytes ")?;
    let (range, _) = rest.split_once('/')?;
    let (a, _) = range.split_once('-')?;
    a.parse().ok()
}

/// A `q` expression: clauses joined by `and`.
#[derive(Debug, PartialEq)]
pub(super) enum Clause {
    InParents(String),
    Name(String),
    Mime { eq: bool, value: String },
    Trashed(bool),
}

pub(super) fn parse_q(q: &str) -> Option<Vec<Clause>> {
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

pub(super) fn hex_digest<D: md5::Digest>(data: &[u8]) -> String {
    hex::encode(D::digest(data))
}

pub(super) fn parse_multipart(ctype: &str, body: &[u8]) -> Option<(Value, Bytes)> {
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
