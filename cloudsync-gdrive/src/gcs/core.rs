//! The Cloud Storage JSON API client: authorized requests, the one `parse_error`, the object
//! resource and its conversion to an [`Entry`], and the wire calls that are not transfers.

use std::collections::BTreeMap;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use cloudsync_core::http::{
    read_prefix, retry_after, send_authorized, status_error, transport_error,
};
use cloudsync_core::{Entry, Error, ErrorKind, HashKind, Hashes, RemotePath, Result};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use reqwest::{Client, RequestBuilder, Response, StatusCode};
use serde::Deserialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::config::{Auth, Validated};
use crate::auth::GoogleTokens;
use crate::google::ApiError;
pub(crate) use crate::google::cut;

/// Custom metadata key of the modtime as rclone writes it (RFC 3339 with nanoseconds).
pub(crate) const META_MTIME: &str = "mtime";
/// Custom metadata key of the modtime as gsutil writes it (whole seconds since the epoch).
pub(crate) const META_MTIME_GSUTIL: &str = "goog-reserved-file-mtime";

/// The object fields every request asks for.
pub(crate) const OBJECT_FIELDS: &str = "name,size,md5Hash,crc32c,updated,metadata,generation";

/// The largest JSON answer read (object resources, listing pages, tokens).
pub(crate) const MAX_JSON_BODY: usize = 16 * 1024 * 1024;
/// The bytes of an error answer that are read.
pub(crate) const MAX_ERROR_BODY: usize = 64 * 1024;
/// Objects per listing page (the API's maximum is 1000).
pub(crate) const PAGE_SIZE: u32 = 1000;

/// What a path segment of a URL may hold unencoded: the unreserved characters of RFC 3986.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// Percent-encodes an object or bucket name for one URL path segment (`/` included, as the
/// JSON API wants: "object names ... must be URL-encoded").
pub(crate) fn enc(name: &str) -> String {
    utf8_percent_encode(name, SEGMENT).to_string()
}

/// One object as the JSON API describes it (the fields of [`OBJECT_FIELDS`]). Numbers are
/// JSON strings in this API (`"size": "11"`).
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Object {
    #[serde(default)]
    pub(crate) name: String,
    #[serde(default)]
    pub(crate) size: Option<String>,
    #[serde(default)]
    pub(crate) md5_hash: Option<String>,
    #[serde(default)]
    pub(crate) crc32c: Option<String>,
    #[serde(default)]
    pub(crate) updated: Option<String>,
    #[serde(default)]
    pub(crate) metadata: Option<BTreeMap<String, String>>,
    #[serde(default)]
    pub(crate) generation: Option<String>,
}

/// A page of `objects.list`.
#[derive(Debug, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ObjectList {
    #[serde(default)]
    pub(crate) items: Vec<Object>,
    #[serde(default)]
    pub(crate) prefixes: Vec<String>,
    #[serde(default)]
    pub(crate) next_page_token: Option<String>,
}

/// The answer of `objects.rewrite`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct RewriteResponse {
    #[serde(default)]
    pub(crate) done: bool,
    #[serde(default)]
    pub(crate) rewrite_token: Option<String>,
    #[serde(default)]
    pub(crate) resource: Option<Object>,
}

/// Hex of a base64 hash as the API gives them (`md5Hash`, and `crc32c` big-endian), when it
/// decodes to `len` bytes.
fn b64_to_hex(v: &str, len: usize) -> Option<String> {
    B64.decode(v)
        .ok()
        .filter(|b| b.len() == len)
        .map(hex::encode)
}

/// Base64 of a hex hash, for `md5Hash` in upload metadata.
pub(crate) fn hex_to_b64(v: &str) -> Option<String> {
    hex::decode(v).ok().map(|b| B64.encode(b))
}

impl Object {
    /// The size, or an error (kind `InvalidInput`: one object that cannot be described).
    pub(crate) fn size(&self) -> Result<u64> {
        match self.size.as_deref() {
            None => Ok(0),
            Some(s) => s.parse().map_err(|_| {
                Error::new(
                    ErrorKind::InvalidInput,
                    format!(
                        "the service gave the size {:?}, which is not a size",
                        cut(s)
                    ),
                )
                .with_path(cut(&self.name))
            }),
        }
    }

    /// MD5 and CRC-32C as hex (a composite object has no MD5).
    pub(crate) fn hashes(&self) -> Hashes {
        let mut h = Hashes::default();
        if let Some(v) = self.md5_hash.as_deref().and_then(|v| b64_to_hex(v, 16)) {
            h.insert(HashKind::Md5, v);
        }
        if let Some(v) = self.crc32c.as_deref().and_then(|v| b64_to_hex(v, 4)) {
            h.insert(HashKind::Crc32c, v);
        }
        h
    }

    /// The modtime: the custom metadata `mtime` (rclone), else `goog-reserved-file-mtime`
    /// (gsutil), else `updated` (the upload time). A value that does not parse is passed over
    /// as rclone does.
    pub(crate) fn modtime(&self) -> Option<OffsetDateTime> {
        let meta = self.metadata.as_ref();
        if let Some(t) = meta
            .and_then(|m| m.get(META_MTIME))
            .and_then(|s| OffsetDateTime::parse(s, &Rfc3339).ok())
        {
            return Some(t);
        }
        if let Some(t) = meta
            .and_then(|m| m.get(META_MTIME_GSUTIL))
            .and_then(|s| s.trim().parse::<i64>().ok())
            .and_then(|s| OffsetDateTime::from_unix_timestamp(s).ok())
        {
            return Some(t);
        }
        self.updated
            .as_deref()
            .and_then(|s| OffsetDateTime::parse(s, &Rfc3339).ok())
    }

    /// The file entry at `path`.
    pub(crate) fn entry(&self, path: RemotePath) -> Result<Entry> {
        let size = self.size()?;
        let mut e = Entry::file(path, size)
            .with_modtime(self.modtime())
            .with_hashes(self.hashes());
        e.etag = self.generation.clone();
        Ok(e)
    }
}

/// RFC 3339 in UTC with nanoseconds, as rclone writes `mtime` (Go's `time.RFC3339Nano`:
/// trailing zeros of the fraction dropped). An error for a time with no UTC form.
pub(crate) fn format_mtime(t: OffsetDateTime) -> Result<String> {
    let t = t.checked_to_offset(time::UtcOffset::UTC).ok_or_else(|| {
        Error::new(
            ErrorKind::InvalidInput,
            format!("modtime {t} is out of range in UTC"),
        )
    })?;
    let mut s = format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    );
    if t.nanosecond() != 0 {
        let frac = format!("{:09}", t.nanosecond());
        s.push('.');
        s.push_str(frac.trim_end_matches('0'));
    }
    s.push('Z');
    Ok(s)
}

/// The custom metadata that records `t` for rclone (`mtime`) and gsutil
/// (`goog-reserved-file-mtime`).
pub(crate) fn mtime_metadata(t: OffsetDateTime) -> Result<serde_json::Value> {
    Ok(serde_json::json!({
        META_MTIME: format_mtime(t)?,
        META_MTIME_GSUTIL: t.unix_timestamp().to_string(),
    }))
}

/// Classifies an error answer by its status and the JSON error body
/// (`{"error":{"code":…,"message":…,"errors":[{"reason":…}]}}`): 404 NotFound,
/// 403 PermissionDenied, 412 ConditionNotMatch, 429 and 5xx temporary with `Retry-After`
/// (see [`status_error`]), a `rateLimitExceeded` 403 rate-limited, a 400 about a mismatched
/// MD5 or CRC32C ("Provided MD5 hash … doesn't match") a `ConditionNotMatch`.
pub(crate) fn parse_error(status: StatusCode, retry_after: Option<Duration>, body: &str) -> Error {
    let api = ApiError::parse(body);
    let msg = api.describe("Cloud Storage", status);
    let ApiError { message, reason } = api;
    match (status.as_u16(), reason.as_str()) {
        (403, "rateLimitExceeded" | "userRateLimitExceeded") => {
            Error::rate_limited(msg, retry_after)
        }
        (400, _)
            if message.to_ascii_lowercase().contains("md5")
                || message.to_ascii_lowercase().contains("crc32c") =>
        {
            Error::new(ErrorKind::ConditionNotMatch, msg)
        }
        _ => status_error(status, retry_after, msg),
    }
}

/// Turns a non-success answer into an error.
pub(crate) async fn error_from(res: Response) -> Error {
    let status = res.status();
    let ra = retry_after(res.headers());
    let body = read_prefix(res, MAX_ERROR_BODY).await;
    parse_error(status, ra, &String::from_utf8_lossy(&body))
}

/// Parses a JSON answer of at most [`MAX_JSON_BODY`] bytes; `what` names it in errors.
pub(crate) async fn json_capped<T: serde::de::DeserializeOwned>(
    res: Response,
    what: &str,
) -> Result<T> {
    crate::google::json_capped(res, MAX_JSON_BODY, what).await
}

/// The client shared by every operation of one remote.
#[derive(Debug)]
pub(crate) struct GcsCore {
    pub(crate) http: Client,
    pub(crate) cfg: Validated,
    tokens: Option<GoogleTokens>,
    /// What the remote calls itself in `describe` (`gs://bucket/prefix`); the
    /// [`ErrorContext`](cloudsync_core::ErrorContext) layer names it in errors.
    pub(crate) name: String,
}

impl GcsCore {
    pub(crate) fn new(mut cfg: Validated) -> Result<Self> {
        let http = Client::builder()
            .connect_timeout(Duration::from_secs(30).min(cfg.timeout))
            .read_timeout(cfg.timeout)
            // Sessions and media links are never followed elsewhere.
            .redirect(reqwest::redirect::Policy::none())
            // Bytes as stored: a gzip-encoded object must match its listed size and MD5 (see
            // `reader`), whatever features another crate turns on in reqwest.
            .no_gzip()
            .no_brotli()
            .no_deflate()
            .no_zstd()
            .build()
            .map_err(|e| Error::new(ErrorKind::Unexpected, format!("HTTP client: {e}")))?;
        let tokens = match std::mem::replace(&mut cfg.auth, Auth::Anonymous) {
            Auth::Anonymous => None,
            Auth::Tokens(source) => Some(GoogleTokens {
                source: *source,
                http: http.clone(),
            }),
        };
        let mut name = format!("gs://{}", cfg.bucket);
        if !cfg.prefix.is_root() {
            name.push('/');
            name.push_str(cfg.prefix.as_str());
        }
        Ok(GcsCore {
            http,
            cfg,
            tokens,
            name,
        })
    }

    /// `e` naming `path`; the operation and this remote's name come from the
    /// [`ErrorContext`](cloudsync_core::ErrorContext) layer.
    pub(crate) fn ctx(&self, e: Error, path: &RemotePath) -> Error {
        e.with_path(path)
    }

    /// The entry at `path`: the object of that name, else the implicit directory of that
    /// prefix while something lies below it.
    pub(crate) async fn stat(&self, path: &RemotePath) -> Result<Entry> {
        if !path.is_root() {
            match self.get_object(&self.object_name(path)).await {
                Ok(o) => return o.entry(path.clone()).map_err(|e| self.ctx(e, path)),
                Err(e) if e.kind() == ErrorKind::NotFound => {}
                Err(e) => return Err(self.ctx(e, path)),
            }
        }
        if self.dir_exists(path).await.map_err(|e| self.ctx(e, path))? {
            Ok(Entry::dir(path.clone()))
        } else {
            Err(self.ctx(
                Error::new(ErrorKind::NotFound, "no such file or directory"),
                path,
            ))
        }
    }

    /// Sends the request `build` makes, authorized (core's [`send_authorized`]: one token
    /// refresh on 401), and returns any answer. Every call but a transfer must be over, body
    /// included, within the configured timeout; transfers have the idle timeout only.
    pub(crate) async fn send_raw(
        &self,
        transfer: bool,
        build: impl Fn(&Client) -> RequestBuilder,
    ) -> Result<Response> {
        let build = |c: &Client| {
            let b = build(c);
            if transfer {
                b
            } else {
                b.timeout(self.cfg.timeout)
            }
        };
        match &self.tokens {
            Some(t) => send_authorized(&self.http, t, build).await,
            None => build(&self.http).send().await.map_err(transport_error),
        }
    }

    /// [`GcsCore::send_raw`], with any non-success answer turned into an error.
    pub(crate) async fn send(
        &self,
        transfer: bool,
        build: impl Fn(&Client) -> RequestBuilder,
    ) -> Result<Response> {
        let res = self.send_raw(transfer, build).await?;
        if res.status().is_success() {
            Ok(res)
        } else {
            Err(error_from(res).await)
        }
    }

    /// The object name of `path` below the remote's root.
    pub(crate) fn object_name(&self, path: &RemotePath) -> String {
        match (self.cfg.prefix.is_root(), path.is_root()) {
            (true, _) => path.as_str().to_owned(),
            (false, true) => self.cfg.prefix.as_str().to_owned(),
            (false, false) => format!("{}/{}", self.cfg.prefix.as_str(), path.as_str()),
        }
    }

    /// The listing prefix of directory `dir`: its object name and `/`, or empty for the bucket
    /// root.
    pub(crate) fn dir_prefix(&self, dir: &RemotePath) -> String {
        let name = self.object_name(dir);
        if name.is_empty() { name } else { name + "/" }
    }

    /// `{api}/b/{bucket}/o/{object}`.
    pub(crate) fn object_url(&self, name: &str) -> String {
        format!(
            "{}/b/{}/o/{}",
            self.cfg.api_url,
            enc(&self.cfg.bucket),
            enc(name)
        )
    }

    /// `{api}/b/{bucket}/o`.
    pub(crate) fn objects_url(&self) -> String {
        format!("{}/b/{}/o", self.cfg.api_url, enc(&self.cfg.bucket))
    }

    /// `{upload}/b/{bucket}/o`.
    pub(crate) fn upload_url(&self) -> String {
        format!("{}/b/{}/o", self.cfg.upload_url, enc(&self.cfg.bucket))
    }

    /// `objects.get` of the metadata of `name`.
    pub(crate) async fn get_object(&self, name: &str) -> Result<Object> {
        let url = self.object_url(name);
        let res = self
            .send(false, |c| c.get(&url).query(&[("fields", OBJECT_FIELDS)]))
            .await?;
        json_capped(res, "object resource").await
    }

    /// One page of `objects.list` below `prefix`; `delimited` lists one level (`delimiter=/`).
    pub(crate) async fn list_page(
        &self,
        prefix: &str,
        delimited: bool,
        max: u32,
        page_token: Option<&str>,
    ) -> Result<ObjectList> {
        let mut query: Vec<(&str, String)> = vec![
            ("prefix", prefix.to_owned()),
            ("maxResults", max.to_string()),
            (
                "fields",
                format!("items({OBJECT_FIELDS}),prefixes,nextPageToken"),
            ),
        ];
        if delimited {
            query.push(("delimiter", "/".into()));
        }
        if let Some(t) = page_token {
            query.push(("pageToken", t.to_owned()));
        }
        let url = self.objects_url();
        let res = self.send(false, |c| c.get(&url).query(&query)).await?;
        json_capped(res, "objects.list page").await
    }

    /// Whether anything lies below `dir` (an implicit directory exists).
    pub(crate) async fn dir_exists(&self, dir: &RemotePath) -> Result<bool> {
        let prefix = self.dir_prefix(dir);
        if prefix.is_empty() {
            return Ok(true);
        }
        let page = self.list_page(&prefix, false, 1, None).await?;
        Ok(!page.items.is_empty() || !page.prefixes.is_empty())
    }

    /// `objects.patch` of the custom metadata of `name` (keys merge; see
    /// [`mtime_metadata`]).
    pub(crate) async fn patch_metadata(
        &self,
        name: &str,
        metadata: serde_json::Value,
    ) -> Result<Object> {
        let url = self.object_url(name);
        let body = serde_json::json!({ "metadata": metadata });
        let res = self
            .send(false, |c| {
                c.patch(&url)
                    .query(&[("fields", OBJECT_FIELDS)])
                    .json(&body)
            })
            .await?;
        json_capped(res, "object resource").await
    }

    /// `objects.rewrite` of `from` to `to`, repeated with the `rewriteToken` until done (large
    /// objects between locations or storage classes take several calls). Bounded: a service
    /// that never finishes is an error.
    pub(crate) async fn rewrite(&self, from: &str, to: &str) -> Result<Object> {
        const MAX_ROUNDS: usize = 10_000;
        let url = format!(
            "{}/rewriteTo/b/{}/o/{}",
            self.object_url(from),
            enc(&self.cfg.bucket),
            enc(to)
        );
        let mut token: Option<String> = None;
        for _ in 0..MAX_ROUNDS {
            let mut query: Vec<(&str, String)> = vec![(
                "fields",
                format!("done,rewriteToken,resource({OBJECT_FIELDS})"),
            )];
            if let Some(t) = &token {
                query.push(("rewriteToken", t.clone()));
            }
            let res = self
                .send(false, |c| {
                    c.post(&url).query(&query).json(&serde_json::json!({}))
                })
                .await?;
            let r: RewriteResponse = json_capped(res, "objects.rewrite response").await?;
            if r.done {
                return r.resource.ok_or_else(|| {
                    Error::new(
                        ErrorKind::Protocol,
                        "objects.rewrite was done but named no object",
                    )
                });
            }
            match r.rewrite_token {
                Some(t) if !t.is_empty() => token = Some(t),
                _ => {
                    return Err(Error::new(
                        ErrorKind::Protocol,
                        "objects.rewrite is not done and gave no rewriteToken",
                    ));
                }
            }
        }
        Err(Error::new(
            ErrorKind::Protocol,
            format!("objects.rewrite was not done after {MAX_ROUNDS} calls"),
        ))
    }

    /// `objects.delete` of `name`, optionally only generation `generation`; `Ok(false)` when
    /// it was not there (404).
    pub(crate) async fn delete_object(&self, name: &str, generation: Option<&str>) -> Result<bool> {
        let url = self.object_url(name);
        let res = self
            .send_raw(false, |c| {
                let b = c.delete(&url);
                match generation {
                    Some(g) => b.query(&[("ifGenerationMatch", g)]),
                    None => b,
                }
            })
            .await?;
        match res.status() {
            s if s.is_success() => Ok(true),
            StatusCode::NOT_FOUND => Ok(false),
            _ => Err(error_from(res).await),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_are_classified() {
        let body = |reason: &str, msg: &str| {
            serde_json::json!({"error":{"code":0,"message":msg,"errors":[{"reason":reason}]}})
                .to_string()
        };
        let k = |s: u16, b: &str| parse_error(StatusCode::from_u16(s).unwrap(), None, b).kind();
        assert_eq!(
            k(404, &body("notFound", "No such object")),
            ErrorKind::NotFound
        );
        assert_eq!(
            k(403, &body("forbidden", "no")),
            ErrorKind::PermissionDenied
        );
        assert_eq!(
            k(412, &body("conditionNotMet", "x")),
            ErrorKind::ConditionNotMatch
        );
        assert_eq!(k(429, ""), ErrorKind::RateLimited);
        assert_eq!(
            k(403, &body("rateLimitExceeded", "slow")),
            ErrorKind::RateLimited
        );
        assert_eq!(k(503, "<html>"), ErrorKind::Transient);
        assert_eq!(
            k(
                400,
                &body(
                    "invalid",
                    "Provided MD5 hash \"x\" doesn't match calculated MD5 hash"
                )
            ),
            ErrorKind::ConditionNotMatch
        );
        assert_eq!(k(400, &body("invalid", "bad")), ErrorKind::InvalidInput);
        let e = parse_error(
            StatusCode::SERVICE_UNAVAILABLE,
            Some(Duration::from_secs(7)),
            "",
        );
        assert!(e.is_retryable());
        assert_eq!(e.retry_after(), Some(Duration::from_secs(7)));
        // Server text is cut.
        let long = "x".repeat(10_000);
        let e = parse_error(StatusCode::BAD_REQUEST, None, &body("r", &long));
        assert!(e.message().len() < 600, "{}", e.message().len());
    }

    #[test]
    fn modtime_prefers_rclone_then_gsutil_then_updated() {
        let mut o = Object {
            updated: Some("2020-01-01T00:00:00.5Z".into()),
            ..Default::default()
        };
        let updated = OffsetDateTime::parse("2020-01-01T00:00:00.5Z", &Rfc3339).unwrap();
        assert_eq!(o.modtime(), Some(updated));
        let mut m = BTreeMap::new();
        m.insert(META_MTIME_GSUTIL.to_owned(), "1234567890".to_owned());
        o.metadata = Some(m.clone());
        assert_eq!(o.modtime().unwrap().unix_timestamp(), 1_234_567_890);
        m.insert(
            META_MTIME.to_owned(),
            "2021-03-04T05:06:07.123456789Z".to_owned(),
        );
        o.metadata = Some(m.clone());
        assert_eq!(
            o.modtime().unwrap().unix_timestamp_nanos(),
            1_614_834_367_123_456_789
        );
        // A value that does not parse is passed over.
        m.insert(META_MTIME.to_owned(), "yesterday".to_owned());
        o.metadata = Some(m);
        assert_eq!(o.modtime().unwrap().unix_timestamp(), 1_234_567_890);
    }

    #[test]
    fn mtime_is_written_as_rclone_and_gsutil_do() {
        let t = OffsetDateTime::from_unix_timestamp_nanos(1_614_834_367_123_456_789).unwrap();
        let m = mtime_metadata(t).unwrap();
        assert_eq!(m[META_MTIME], "2021-03-04T05:06:07.123456789Z");
        assert_eq!(m[META_MTIME_GSUTIL], "1614834367");
        let t = OffsetDateTime::from_unix_timestamp_nanos(1_614_834_367_120_000_000).unwrap();
        assert_eq!(format_mtime(t).unwrap(), "2021-03-04T05:06:07.12Z");
        let t = OffsetDateTime::from_unix_timestamp(1_614_834_367).unwrap();
        assert_eq!(format_mtime(t).unwrap(), "2021-03-04T05:06:07Z");
        // Round trip through the reader.
        let t = OffsetDateTime::from_unix_timestamp_nanos(-1_000_000_001).unwrap();
        let s = format_mtime(t).unwrap();
        assert_eq!(OffsetDateTime::parse(&s, &Rfc3339).unwrap(), t);
    }

    #[test]
    fn hashes_decode_from_base64() {
        let o = Object {
            md5_hash: Some("XrY7u+Ae7tCTyyK7j1rNww==".into()),
            crc32c: Some("yZRlqg==".into()),
            ..Default::default()
        };
        let h = o.hashes();
        assert_eq!(
            h.get(HashKind::Md5),
            Some("5eb63bbbe01eeed093cb22bb8f5acdc3")
        );
        assert_eq!(h.get(HashKind::Crc32c), Some("c99465aa"));
        // Garbage is no hash, not a wrong one.
        let o = Object {
            md5_hash: Some("not base64!".into()),
            crc32c: Some("AAAAAAAA".into()),
            ..Default::default()
        };
        assert!(o.hashes().is_empty());
    }

    #[test]
    fn bad_sizes_are_one_bad_entry() {
        let o = Object {
            name: "a".into(),
            size: Some("-1".into()),
            ..Default::default()
        };
        assert_eq!(o.size().unwrap_err().kind(), ErrorKind::InvalidInput);
    }

    #[test]
    fn names_are_encoded_as_one_segment() {
        assert_eq!(enc("a/b c?#%.txt"), "a%2Fb%20c%3F%23%25.txt");
    }
}
