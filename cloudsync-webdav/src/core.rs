//! The HTTP side: the client, URLs for paths, sending requests, and mapping HTTP statuses and
//! transport failures to [`Error`] kinds ([`parse_error`]).

use std::borrow::Cow;
use std::collections::HashSet;
use std::sync::Mutex;
use std::time::Duration;

use cloudsync_core::http::{read_prefix, retry_after, status_error, transport_error};
use cloudsync_core::{Error, ErrorKind, Location, RemotePath, Result};
use reqwest::header::{HeaderMap, HeaderValue};
use reqwest::{Method, RequestBuilder, Response, StatusCode};

use crate::config::{Auth, Validated, Vendor, encode_segment};

/// Most directories remembered as existing (the cache is cleared when it grows past this).
const KNOWN_DIRS_MAX: usize = 4096;

/// Longest piece of server-sent text (a name, an href) quoted in an error message.
pub(crate) const QUOTE_MAX: usize = 200;

/// `s` cut to at most [`QUOTE_MAX`] characters, with `…` when something was cut.
pub(crate) fn cut(s: &str) -> Cow<'_, str> {
    cloudsync_core::cut_text(s, QUOTE_MAX)
}

/// The `PROPFIND`, `MKCOL`, `COPY` and `MOVE` methods.
pub(crate) fn method(name: &'static str) -> Method {
    // These are valid tokens, so this cannot fail; fall back to GET just in case.
    Method::from_bytes(name.as_bytes()).unwrap_or(Method::GET)
}

/// Everything the reader, writer, lister and deleter share: one pooled HTTP client (connection
/// reuse) and the remote's root.
#[derive(Debug)]
pub(crate) struct WebdavCore {
    pub(crate) client: reqwest::Client,
    /// The root collection's URL, ending in `/`.
    pub(crate) base: url::Url,
    /// The root URL's path segments, percent-decoded.
    pub(crate) base_segments: Vec<String>,
    pub(crate) vendor: Vendor,
    pub(crate) auth: Auth,
    pub(crate) chunk_size: u64,
    /// Nextcloud/ownCloud user id and `…/remote.php/dav/` URL.
    pub(crate) dav_root: Option<(String, url::Url)>,
    /// `webdav://…` description without secrets.
    pub(crate) describe: String,
    /// Directories known to exist, so uploads skip `MKCOL` for parents already made.
    known_dirs: Mutex<HashSet<RemotePath>>,
    /// Whether the server takes ranged `PUT`s (resumable uploads), once probed.
    pub(crate) ranged: crate::ranged::RangedPut,
}

impl WebdavCore {
    pub(crate) fn new(cfg: Validated) -> Result<Self> {
        let mut builder = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(30).min(cfg.timeout))
            .read_timeout(cfg.timeout)
            .pool_idle_timeout(Duration::from_secs(60))
            .pool_max_idle_per_host(32)
            .tcp_nodelay(true)
            .user_agent(concat!("cloudsync/", env!("CARGO_PKG_VERSION")));
        if let Some(ca) = &cfg.ca_file {
            let pem = std::fs::read(ca).map_err(|e| {
                Error::new(
                    ErrorKind::ConfigInvalid,
                    format!("webdav config `ca_file`: cannot read {}: {e}", ca.display()),
                )
            })?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
                Error::new(
                    ErrorKind::ConfigInvalid,
                    format!("webdav config `ca_file`: {}: {e}", ca.display()),
                )
            })?;
            builder = builder.tls_certs_merge(certs);
        }
        if cfg.no_check_certificate {
            builder = builder.tls_danger_accept_invalid_certs(true);
        }
        let client = builder.build().map_err(|e| {
            Error::new(
                ErrorKind::ConfigInvalid,
                format!("webdav: cannot build the HTTP client: {e}"),
            )
            .with_source(e)
        })?;
        let base_segments = decoded_segments(cfg.url.path())
            .ok_or_else(|| Error::new(ErrorKind::ConfigInvalid, "webdav config `url`: bad path"))?;
        let scheme = if cfg.url.scheme() == "https" {
            "webdavs"
        } else {
            "webdav"
        };
        let mut describe = format!("{scheme}://");
        if let Auth::Basic { user, .. } = &cfg.auth {
            describe.push_str(&encode_segment(user).to_string());
            describe.push('@');
        }
        describe.push_str(cfg.url.host_str().unwrap_or(""));
        if let Some(port) = cfg.url.port() {
            describe.push_str(&format!(":{port}"));
        }
        describe.push_str(cfg.url.path().trim_end_matches('/'));
        Ok(WebdavCore {
            client,
            base: cfg.url,
            base_segments,
            vendor: cfg.vendor,
            auth: cfg.auth,
            chunk_size: cfg.chunk_size,
            dav_root: cfg.dav_root,
            describe,
            known_dirs: Mutex::new(HashSet::new()),
            ranged: Default::default(),
        })
    }

    /// Where the root collection is: scheme, host, port (the scheme's default filled in, so
    /// `http://h/dav` and `http://h:80/dav` are one place) and the percent-decoded path. The
    /// user is left out (two accounts may see one collection).
    pub(crate) fn location(&self) -> Location {
        Location::network(
            self.base.scheme(),
            self.base.host_str().unwrap_or(""),
            self.base.port_or_known_default(),
            &self.base_segments.join("/"),
        )
    }

    /// The URL of `path`; directories get a trailing `/`.
    pub(crate) fn url(&self, path: &RemotePath, dir: bool) -> url::Url {
        let mut s = self.base.as_str().to_owned();
        for seg in path.segments() {
            s.push_str(&encode_segment(seg).to_string());
            s.push('/');
        }
        if !dir && !path.is_root() {
            s.pop();
        }
        // Encoded segments appended to a valid URL keep it valid.
        url::Url::parse(&s).unwrap_or_else(|_| self.base.clone())
    }

    /// A request with authentication applied.
    pub(crate) fn request(&self, method: Method, url: url::Url) -> RequestBuilder {
        let rb = self.client.request(method, url);
        match &self.auth {
            Auth::None => rb,
            Auth::Basic { user, password } => rb.basic_auth(user, Some(password)),
            Auth::Bearer(token) => rb.bearer_auth(token),
        }
    }

    /// Sends a request; transport failures become errors (temporary where a retry may help).
    pub(crate) async fn send(&self, rb: RequestBuilder, path: &RemotePath) -> Result<Response> {
        rb.send().await.map_err(|e| self.transport_error(e, path))
    }

    /// Sends a request and turns a non-success status into an error.
    pub(crate) async fn send_ok(&self, rb: RequestBuilder, path: &RemotePath) -> Result<Response> {
        let resp = self.send(rb, path).await?;
        if resp.status().is_success() {
            Ok(resp)
        } else {
            Err(self.status_error(resp, path).await)
        }
    }

    /// An error for a failed response, with the start of the server's message.
    pub(crate) async fn status_error(&self, resp: Response, path: &RemotePath) -> Error {
        let status = resp.status();
        let headers = resp.headers().clone();
        let detail = body_snippet(resp).await;
        parse_error(status, &headers, &detail).with_path(path)
    }

    /// An error for a transport failure (connection, timeout, body stream).
    pub(crate) fn transport_error(&self, e: reqwest::Error, path: &RemotePath) -> Error {
        transport_error(e).with_path(path)
    }

    /// Whether `dir` is known to exist.
    pub(crate) fn dir_known(&self, dir: &RemotePath) -> bool {
        self.known_dirs
            .lock()
            .map(|s| s.contains(dir))
            .unwrap_or(false)
    }

    /// Remembers that `dir` exists.
    pub(crate) fn remember_dir(&self, dir: &RemotePath) {
        if let Ok(mut s) = self.known_dirs.lock() {
            if s.len() >= KNOWN_DIRS_MAX {
                s.clear();
            }
            s.insert(dir.clone());
        }
    }

    /// Forgets `dir` and everything below it (after a delete, or a failure that says it is gone).
    pub(crate) fn forget_dir(&self, dir: &RemotePath) {
        if let Ok(mut s) = self.known_dirs.lock() {
            s.retain(|d| !d.starts_with(dir));
        }
    }

    /// An error about `path` (the operation and the remote are named by the
    /// [`ErrorContext`](cloudsync_core::ErrorContext) layer around every opened remote).
    pub(crate) fn err(&self, kind: ErrorKind, msg: &str, path: &RemotePath) -> Error {
        Error::new(kind, msg).with_path(path)
    }

    /// Whether this remote speaks the ownCloud/Nextcloud extensions.
    pub(crate) fn is_oc(&self) -> bool {
        self.vendor.is_oc()
    }
}

/// Splits an absolute URL path into percent-decoded segments (empty segments dropped).
/// `None` when a segment does not decode to UTF-8.
pub(crate) fn decoded_segments(path: &str) -> Option<Vec<String>> {
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

/// Reads at most 1 KiB of an error response for the message.
async fn body_snippet(resp: Response) -> String {
    let buf = read_prefix(resp, 1024).await;
    let text = String::from_utf8_lossy(&buf);
    cut(&snippet_text(&text)).into_owned()
}

/// The readable part of the start of an error body.
fn snippet_text(text: &str) -> String {
    // Sabre (Nextcloud/ownCloud) puts the reason in <s:message>.
    if let Some(start) = text.find("message>") {
        let rest = &text[start + "message>".len()..];
        if let Some(end) = rest.find('<') {
            let m = rest[..end].trim();
            if !m.is_empty() {
                return m.to_owned();
            }
        }
    }
    if text.trim_start().starts_with('<') {
        return String::new();
    }
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Maps an HTTP status (and its headers) to an [`Error`] of the right kind.
///
/// ```text
/// 401 Auth · 403 PermissionDenied · 404/410 NotFound · 405/409 Conflict · 412 ConditionNotMatch
/// 423 Locked → Transient · 429/503 RateLimited (Retry-After) · 507 QuotaExceeded · other 5xx Transient
/// ```
pub(crate) fn parse_error(status: StatusCode, headers: &HeaderMap, detail: &str) -> Error {
    let code = status.as_u16();
    let mut msg = format!("HTTP {status}");
    if !detail.is_empty() {
        msg.push_str(": ");
        msg.push_str(detail);
    }
    let kind = match code {
        405 => ErrorKind::Conflict,
        413 => ErrorKind::QuotaExceeded,
        414 => ErrorKind::InvalidInput,
        // Locked: another client holds the lock, which it will release.
        423 => ErrorKind::Transient,
        // Servers answer 503 with a Retry-After when they shed load.
        429 | 503 => return Error::rate_limited(msg, retry_after(headers)),
        _ => return status_error(status, retry_after(headers), msg),
    };
    Error::new(kind, msg)
}

/// `T` or `F` for the `Overwrite` header.
pub(crate) fn overwrite(yes: bool) -> HeaderValue {
    HeaderValue::from_static(if yes { "T" } else { "F" })
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::RETRY_AFTER;

    fn kind(code: u16) -> (ErrorKind, bool) {
        let e = parse_error(StatusCode::from_u16(code).unwrap(), &HeaderMap::new(), "");
        (e.kind(), e.is_retryable())
    }

    #[test]
    fn statuses_map_to_kinds() {
        assert_eq!(kind(404), (ErrorKind::NotFound, false));
        assert_eq!(kind(401), (ErrorKind::Auth, false));
        assert_eq!(kind(403), (ErrorKind::PermissionDenied, false));
        assert_eq!(kind(409), (ErrorKind::Conflict, false));
        assert_eq!(kind(412), (ErrorKind::ConditionNotMatch, false));
        assert_eq!(kind(423), (ErrorKind::Transient, true));
        assert_eq!(kind(429), (ErrorKind::RateLimited, true));
        assert_eq!(kind(503), (ErrorKind::RateLimited, true));
        assert_eq!(kind(502), (ErrorKind::Transient, true));
        assert_eq!(kind(507), (ErrorKind::QuotaExceeded, false));
    }

    #[test]
    fn extreme_retry_after_is_capped_at_an_hour() {
        let mut h = HeaderMap::new();
        h.insert(
            RETRY_AFTER,
            HeaderValue::from_static("99999999999999999999999999"),
        );
        let e = parse_error(StatusCode::SERVICE_UNAVAILABLE, &h, "");
        assert_eq!(e.retry_after(), Some(Duration::from_secs(3600)));
        h.insert(RETRY_AFTER, HeaderValue::from_static("-5"));
        let e = parse_error(StatusCode::TOO_MANY_REQUESTS, &h, "");
        assert_eq!(e.retry_after(), None);
    }

    #[test]
    fn long_text_is_cut() {
        let long = "é".repeat(5000);
        let c = cut(&long);
        assert_eq!(c.chars().count(), QUOTE_MAX + 1);
        assert!(c.ends_with('…'));
        assert_eq!(cut("short"), "short");
    }

    #[test]
    fn retry_after_seconds_and_date() {
        let mut h = HeaderMap::new();
        h.insert(RETRY_AFTER, HeaderValue::from_static("7"));
        let e = parse_error(StatusCode::TOO_MANY_REQUESTS, &h, "slow down");
        assert_eq!(e.retry_after(), Some(Duration::from_secs(7)));
        assert!(e.message().contains("slow down"));
        let later = std::time::SystemTime::now() + Duration::from_secs(120);
        h.insert(
            RETRY_AFTER,
            HeaderValue::from_str(&httpdate::fmt_http_date(later)).unwrap(),
        );
        let d = parse_error(StatusCode::TOO_MANY_REQUESTS, &h, "")
            .retry_after()
            .unwrap();
        assert!(
            d > Duration::from_secs(100) && d <= Duration::from_secs(120),
            "{d:?}"
        );
    }
}
