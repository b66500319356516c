//! The Drive emulator's state: the files, sessions and faults, and what each API method does
//! to them.

use super::http::*;
use super::*;

// Handlers return early with a ready error answer; its size does not matter in a test server.
#[allow(clippy::result_large_err)]
impl State {
    pub(super) fn resolve(&self, id: &str) -> String {
        if id == "root" {
            ROOT_ID.into()
        } else {
            id.into()
        }
    }

    pub(super) fn token(&mut self, body: &[u8]) -> Resp {
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
    pub(super) fn jwt_ok(&self, assertion: &str) -> bool {
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
    pub(super) fn drive_of(&self, id: &str) -> Option<String> {
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
    pub(super) fn hidden(&self, id: &str) -> bool {
        !self.all_drives && self.drive_of(&self.resolve(id)).is_some()
    }

    pub(super) fn is_trashed(&self, id: &str) -> bool {
        let mut cur = self.files.get(id);
        while let Some(f) = cur {
            if f.trashed {
                return true;
            }
            cur = f.parent.as_ref().and_then(|p| self.files.get(p));
        }
        false
    }

    pub(super) fn usage(&self, trash: bool) -> u64 {
        self.files
            .values()
            .filter(|f| self.is_trashed(&f.id) == trash)
            .map(|f| f.content.len() as u64)
            .sum()
    }

    pub(super) fn json(&self, f: &FileRec, query: &HashMap<String, String>) -> Value {
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

    pub(super) fn create(
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

    pub(super) fn list(&self, query: &HashMap<String, String>) -> Resp {
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

    pub(super) fn get(
        &self,
        id: &str,
        query: &HashMap<String, String>,
        headers: &hyper::HeaderMap,
    ) -> Resp {
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

    pub(super) fn parent_ok(&self, parent: &str) -> Result<String, Resp> {
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
    pub(super) fn refuse_without_storage(&self, parent: &str, mime: &str) -> Option<Resp> {
        (self.no_storage && mime != FOLDER && self.drive_of(parent).is_none())
            .then(|| error(403, "storageQuotaExceeded", NO_STORAGE_MESSAGE))
    }

    pub(super) fn modtime(meta: &Value) -> Result<Option<OffsetDateTime>, Resp> {
        match meta.get("modifiedTime") {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => OffsetDateTime::parse(s, &Rfc3339)
                .map(|t| Some(truncate_ms(t)))
                .map_err(|_| error(400, "invalid", "Invalid value for modifiedTime")),
            Some(_) => Err(error(400, "invalid", "Invalid value for modifiedTime")),
        }
    }

    /// `files.create` with `meta` and `content`.
    pub(super) fn create_from(
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

    pub(super) fn update(
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

    pub(super) fn remove_tree(&mut self, id: &str) {
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

    pub(super) fn delete(&mut self, id: &str) -> Resp {
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
    pub(super) fn empty_trash(&mut self, query: &HashMap<String, String>) -> Resp {
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

    pub(super) fn copy(&mut self, id: &str, meta: &Value, query: &HashMap<String, String>) -> Resp {
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

    pub(super) fn upload(
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

    pub(super) fn chunk(
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

pub(super) fn truncate_ms(t: OffsetDateTime) -> OffsetDateTime {
    let ns = t.nanosecond() / 1_000_000 * 1_000_000;
    t.replace_nanosecond(ns).unwrap_or(t)
}

pub(super) fn ms_now() -> OffsetDateTime {
    truncate_ms(OffsetDateTime::now_utc())
}
