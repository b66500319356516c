//! The `PROPFIND` protocol: the request body, the streaming multistatus parser and href
//! validation (RFC 4918 §13, §14.16).
//!
//! The parser resolves namespaces (any prefix bound to `DAV:`, default namespaces), reads one
//! `<response>` at a time from the body as it arrives (a huge directory never sits in memory
//! whole), applies only the properties of `2xx` propstats (404 propstats name properties the
//! server does not have), and turns each href into a [`RemotePath`] below the root: absolute
//! URLs of another origin, paths outside the root and `.`/`..` segments are errors.

use std::borrow::Cow;
use std::time::SystemTime;

use bytes::Bytes;
use cloudsync_core::{Entry, EntryKind};
use cloudsync_core::{Error, ErrorKind, HashKind, Hashes, RemotePath, Result};
use futures::StreamExt;
use futures::stream::BoxStream;
use quick_xml::events::Event;
use quick_xml::name::{Namespace, ResolveResult};
use quick_xml::reader::NsReader;
use reqwest::StatusCode;
use time::OffsetDateTime;
use tokio::io::AsyncBufRead;
use tokio_util::io::StreamReader;

use crate::core::{WebdavCore, cut, decoded_segments, parse_error};

const DAV_NS: &str = "DAV:";
const OC_NS: &str = "http://owncloud.org/ns";

/// Longest text we accept inside one element, and deepest nesting (a hostile server cannot
/// make the parser use unbounded memory).
const MAX_TEXT: usize = 64 * 1024;
const MAX_DEPTH: usize = 64;

/// Largest `PROPFIND` answer we read (about 150,000 entries as Apache writes them). The parser
/// streams, but one XML event is buffered whole, and the engine keeps a directory's entries:
/// a larger answer is an error, not unbounded memory.
pub(crate) const MAX_MULTISTATUS: u64 = 64 * 1024 * 1024;

/// The properties one `<response>` carries, as the server sent them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct DavResponse {
    /// The raw (percent-encoded) href.
    pub(crate) href: String,
    /// Status of the whole response (`<response><status>`), when present (0 when it cannot be
    /// read).
    pub(crate) status: Option<u16>,
    /// How many `<href>`s the response has (RFC 4918 allows several sharing one status).
    pub(crate) hrefs: u32,
    /// Status of a failed propstat (other than 404) that named a property we use: the
    /// server could not tell us that property, so the entry cannot be described.
    pub(crate) failed: Option<u16>,
    /// A `getcontentlength` that is not a number.
    pub(crate) bad_size: bool,
    pub(crate) is_dir: bool,
    pub(crate) size: Option<u64>,
    pub(crate) modified: Option<String>,
    pub(crate) etag: Option<String>,
    /// `oc:checksum` texts (`SHA1:… MD5:…`).
    pub(crate) checksums: Vec<String>,
    pub(crate) fileid: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tag {
    Multistatus,
    Response,
    Href,
    Status,
    Propstat,
    Prop,
    ResourceType,
    Collection,
    ContentLength,
    LastModified,
    Etag,
    Checksums,
    Checksum,
    FileId,
    Other,
}

impl Tag {
    /// A property we read.
    fn is_used_prop(self) -> bool {
        matches!(
            self,
            Tag::ResourceType
                | Tag::ContentLength
                | Tag::LastModified
                | Tag::Etag
                | Tag::Checksums
                | Tag::FileId
        )
    }

    fn is_leaf(self) -> bool {
        matches!(
            self,
            Tag::Href
                | Tag::Status
                | Tag::ContentLength
                | Tag::LastModified
                | Tag::Etag
                | Tag::Checksum
                | Tag::FileId
        )
    }

    /// Which element this is, given its namespace, local name and parent. Names only count in
    /// their place (`DAV:href` inside some property value is not the response's href).
    fn classify(parent: Option<Tag>, ns: &ResolveResult<'_>, local: &str) -> Tag {
        let ns = match ns {
            ResolveResult::Bound(Namespace(n)) => *n,
            _ => return Tag::Other,
        };
        match (parent, ns, local) {
            (None, DAV_NS, "multistatus") => Tag::Multistatus,
            (Some(Tag::Multistatus), DAV_NS, "response") => Tag::Response,
            (Some(Tag::Response), DAV_NS, "href") => Tag::Href,
            (Some(Tag::Response), DAV_NS, "status") => Tag::Status,
            (Some(Tag::Response), DAV_NS, "propstat") => Tag::Propstat,
            (Some(Tag::Propstat), DAV_NS, "status") => Tag::Status,
            (Some(Tag::Propstat), DAV_NS, "prop") => Tag::Prop,
            (Some(Tag::Prop), DAV_NS, "resourcetype") => Tag::ResourceType,
            (Some(Tag::ResourceType), DAV_NS, "collection") => Tag::Collection,
            (Some(Tag::Prop), DAV_NS, "getcontentlength") => Tag::ContentLength,
            (Some(Tag::Prop), DAV_NS, "getlastmodified") => Tag::LastModified,
            (Some(Tag::Prop), DAV_NS, "getetag") => Tag::Etag,
            (Some(Tag::Prop), OC_NS, "checksums") => Tag::Checksums,
            (Some(Tag::Checksums), OC_NS, "checksum") => Tag::Checksum,
            (Some(Tag::Prop), OC_NS, "fileid") => Tag::FileId,
            _ => Tag::Other,
        }
    }
}

/// Properties of one propstat, applied to the response only if its status is 2xx.
#[derive(Debug, Default)]
struct PropBuf {
    status: Option<u16>,
    /// Whether it names a property we use.
    named: bool,
    bad_size: bool,
    is_dir: bool,
    size: Option<u64>,
    modified: Option<String>,
    etag: Option<String>,
    checksums: Vec<String>,
    fileid: Option<String>,
}

/// Incremental multistatus parser: feed it resolved events, get whole responses.
#[derive(Debug, Default)]
struct Parser {
    stack: Vec<Tag>,
    text: String,
    cur: Option<DavResponse>,
    props: PropBuf,
    saw_root: bool,
}

pub(crate) fn protocol(msg: impl Into<String>) -> Error {
    Error::new(ErrorKind::Protocol, msg)
}

/// `HTTP/1.1 404 Not Found` → 404; 0 for a status line that cannot be read (never success).
fn status_code(line: &str) -> u16 {
    line.split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

impl Parser {
    fn start(&mut self, ns: &ResolveResult<'_>, local: &str) -> Result<()> {
        if self.stack.len() >= MAX_DEPTH {
            return Err(protocol("multistatus nests too deeply"));
        }
        let parent = self.stack.last().copied();
        let tag = if parent == Some(Tag::Other) {
            Tag::Other
        } else {
            Tag::classify(parent, ns, local)
        };
        if parent.is_none() {
            if tag != Tag::Multistatus {
                return Err(protocol("PROPFIND answer is not a DAV:multistatus"));
            }
            self.saw_root = true;
        }
        match tag {
            Tag::Response => self.cur = Some(DavResponse::default()),
            Tag::Propstat => self.props = PropBuf::default(),
            Tag::Collection => self.props.is_dir = true,
            t if t.is_used_prop() => {
                self.props.named = true;
                self.text.clear();
            }
            t if t.is_leaf() => self.text.clear(),
            _ => {}
        }
        self.stack.push(tag);
        Ok(())
    }

    fn text(&mut self, s: &str) -> Result<()> {
        if self.stack.last().is_some_and(|t| t.is_leaf()) {
            if self.text.len() + s.len() > MAX_TEXT {
                return Err(protocol("multistatus element text too long"));
            }
            self.text.push_str(s);
        }
        Ok(())
    }

    fn end(&mut self) -> Option<DavResponse> {
        let tag = self.stack.pop()?;
        let parent = self.stack.last().copied();
        let text = self.text.trim();
        match tag {
            Tag::Href => {
                if let Some(c) = &mut self.cur {
                    if c.hrefs == 0 {
                        c.href = text.to_owned();
                    }
                    c.hrefs = c.hrefs.saturating_add(1);
                }
            }
            Tag::Status => {
                let code = Some(status_code(text));
                match parent {
                    Some(Tag::Propstat) => self.props.status = code,
                    Some(Tag::Response) => {
                        if let Some(c) = &mut self.cur {
                            c.status = code;
                        }
                    }
                    _ => {}
                }
            }
            // Empty in the 404 propstats that name it; anything else must be a number.
            Tag::ContentLength if text.is_empty() => {}
            Tag::ContentLength => match text.parse() {
                Ok(n) => self.props.size = Some(n),
                Err(_) => self.props.bad_size = true,
            },
            Tag::LastModified => self.props.modified = Some(text.to_owned()),
            Tag::Etag => self.props.etag = Some(text.to_owned()),
            Tag::Checksum if !text.is_empty() => self.props.checksums.push(text.to_owned()),
            Tag::FileId => self.props.fileid = Some(text.to_owned()),
            Tag::Propstat => {
                let props = std::mem::take(&mut self.props);
                let ok = props.status.is_none_or(|s| (200..300).contains(&s));
                let Some(c) = &mut self.cur else {
                    return None;
                };
                if !ok {
                    // 404 names properties the resource does not have (RFC 4918 §9.1: "A
                    // request to retrieve the value of a property that does not exist is an
                    // error and MUST be noted ... with a 404"). Any other failure hides a
                    // property we need.
                    if props.named && props.status != Some(404) {
                        c.failed = c.failed.or(props.status);
                    }
                } else {
                    c.bad_size |= props.bad_size;
                    c.is_dir |= props.is_dir;
                    c.size = props.size.or(c.size);
                    c.modified = props.modified.or(c.modified.take());
                    c.etag = props.etag.or(c.etag.take());
                    c.checksums.extend(props.checksums);
                    c.fileid = props.fileid.or(c.fileid.take());
                }
            }
            Tag::Response => return self.cur.take(),
            _ => {}
        }
        None
    }
}

/// Reads responses one by one from a multistatus body.
pub(crate) struct MultistatusReader<R> {
    reader: NsReader<R>,
    parser: Parser,
    buf: Vec<u8>,
}

impl<R: AsyncBufRead + Unpin> MultistatusReader<R> {
    pub(crate) fn new(input: R) -> Self {
        let mut reader = NsReader::from_reader(input);
        reader.config_mut().trim_text(false);
        MultistatusReader {
            reader,
            parser: Parser::default(),
            buf: Vec::new(),
        }
    }

    /// The next `<response>`, or `None` at the end of the document.
    pub(crate) async fn next(&mut self) -> Result<Option<DavResponse>> {
        loop {
            self.buf.clear();
            let (ns, ev) = self
                .reader
                .read_resolved_event_into_async(&mut self.buf)
                .await
                .map_err(xml_error)?;
            match ev {
                Event::Start(e) => {
                    let local = e.local_name();
                    self.parser.start(&ns, local.as_ref())?;
                }
                Event::Empty(e) => {
                    let local = e.local_name();
                    self.parser.start(&ns, local.as_ref())?;
                    if let Some(r) = self.parser.end() {
                        return Ok(Some(r));
                    }
                }
                Event::End(_) => {
                    if let Some(r) = self.parser.end() {
                        return Ok(Some(r));
                    }
                }
                Event::Text(t) => {
                    let s = t.xml10_content();
                    self.parser.text(&s)?;
                }
                Event::CData(t) => {
                    let s = t.xml10_content();
                    self.parser.text(&s)?;
                }
                Event::GeneralRef(r) => {
                    let resolved: Cow<'_, str> = match r.resolve_char_ref() {
                        Ok(Some(c)) => Cow::Owned(c.to_string()),
                        Ok(None) => {
                            let name = r.xml10_content();
                            match quick_xml::escape::resolve_predefined_entity(&name) {
                                Some(v) => Cow::Borrowed(v),
                                None => {
                                    return Err(protocol(format!(
                                        "unknown entity &{name}; in multistatus"
                                    )));
                                }
                            }
                        }
                        Err(e) => return Err(protocol(format!("bad character reference: {e}"))),
                    };
                    self.parser.text(&resolved)?;
                }
                Event::Eof => {
                    if !self.parser.saw_root {
                        return Err(protocol("empty PROPFIND answer"));
                    }
                    if !self.parser.stack.is_empty() {
                        return Err(
                            protocol("PROPFIND answer ends in the middle").set_temporary(true)
                        );
                    }
                    return Ok(None);
                }
                _ => {}
            }
        }
    }
}

fn xml_error(e: quick_xml::Error) -> Error {
    match e {
        quick_xml::Error::Io(io) => {
            // Our own verdict on the body (too large) keeps its kind.
            if let Some(ours) = io.get_ref().and_then(|i| i.downcast_ref::<Error>()) {
                return Error::new(ours.kind(), ours.message().to_owned());
            }
            let msg = format!("reading PROPFIND answer: {io}");
            Error::new(ErrorKind::Transient, msg)
        }
        other => protocol(format!("malformed multistatus XML: {other}")),
    }
}

/// Parses a whole multistatus document (tests).
#[cfg(test)]
pub(crate) async fn parse_multistatus(body: &[u8]) -> Result<Vec<DavResponse>> {
    let mut r = MultistatusReader::new(body);
    let mut out = Vec::new();
    while let Some(resp) = r.next().await? {
        out.push(resp);
    }
    Ok(out)
}

/// Turns server hrefs into [`RemotePath`]s below the root, refusing anything outside it.
#[derive(Debug, Clone)]
pub(crate) struct HrefResolver {
    scheme: String,
    host: String,
    port: Option<u16>,
    base_segments: Vec<String>,
    /// Path of the request URL (for relative hrefs), percent-encoded, ending in `/` for
    /// collections.
    request_path: String,
}

impl HrefResolver {
    pub(crate) fn new(core: &WebdavCore, request: &url::Url) -> Self {
        HrefResolver {
            scheme: core.base.scheme().to_owned(),
            host: core.base.host_str().unwrap_or("").to_ascii_lowercase(),
            port: core.base.port_or_known_default(),
            base_segments: core.base_segments.clone(),
            request_path: request.path().to_owned(),
        }
    }

    fn outside(href: &str, why: &str) -> Error {
        Error::new(
            ErrorKind::Protocol,
            format!(
                "server returned href {:?} {}; refusing to follow it",
                cut(href),
                cut(why)
            ),
        )
    }

    /// The path `href` names, relative to the root.
    pub(crate) fn resolve(&self, href: &str) -> Result<RemotePath> {
        let lower = href.get(..8).unwrap_or(href).to_ascii_lowercase();
        let raw_path: Cow<'_, str> =
            if lower.starts_with("http://") || lower.starts_with("https://") {
                let url = url::Url::parse(href)
                    .map_err(|_| Self::outside(href, "that is not a valid URL"))?;
                let same = url.scheme() == self.scheme
                    && url.host_str().map(str::to_ascii_lowercase).as_deref() == Some(&self.host)
                    && url.port_or_known_default() == self.port;
                if !same {
                    return Err(Self::outside(href, "on another server"));
                }
                // The path as sent (Url::parse would silently remove `..` segments).
                let after = &href[href.find("://").map(|i| i + 3).unwrap_or(0)..];
                Cow::Borrowed(after.find('/').map(|i| &after[i..]).unwrap_or("/"))
            } else if href.starts_with('/') {
                Cow::Borrowed(href)
            } else {
                Cow::Owned(format!(
                    "{}{href}",
                    &self.request_path[..self.request_path.rfind('/').map(|i| i + 1).unwrap_or(0)]
                ))
            };
        let raw_path = raw_path.split(['?', '#']).next().unwrap_or_default();
        let segments =
            decoded_segments(raw_path).ok_or_else(|| Self::outside(href, "that is not UTF-8"))?;
        if segments.iter().any(|s| s == "." || s == "..") {
            return Err(Self::outside(href, "with a `.` or `..` segment"));
        }
        if segments.len() < self.base_segments.len()
            || segments[..self.base_segments.len()] != self.base_segments[..]
        {
            return Err(Self::outside(href, "outside the remote's root"));
        }
        let mut path = RemotePath::root();
        for seg in &segments[self.base_segments.len()..] {
            path = path
                .join(seg)
                .map_err(|e| Self::outside(href, e.message()))?;
        }
        Ok(path)
    }
}

/// Parses `getlastmodified` (RFC 1123, also RFC 850 and asctime).
pub(crate) fn parse_modtime(s: &str) -> Option<OffsetDateTime> {
    let t: SystemTime = httpdate::parse_http_date(s.trim()).ok()?;
    Some(OffsetDateTime::from(t))
}

/// `SHA1:… MD5:… ADLER32:…` → the hashes we know.
pub(crate) fn parse_checksums(texts: &[String]) -> Hashes {
    let mut h = Hashes::default();
    for item in texts.iter().flat_map(|t| t.split_whitespace()) {
        let Some((algo, value)) = item.split_once(':') else {
            continue;
        };
        let (kind, len) = match algo.to_ascii_uppercase().as_str() {
            "SHA1" => (HashKind::Sha1, 40),
            "MD5" => (HashKind::Md5, 32),
            "SHA256" => (HashKind::Sha256, 64),
            _ => continue,
        };
        if value.len() == len && value.bytes().all(|b| b.is_ascii_hexdigit()) {
            h.insert(kind, value);
        }
    }
    h
}

/// Builds the entry for a response whose href resolved to `path`.
pub(crate) fn to_entry(path: RemotePath, r: &DavResponse) -> Entry {
    let kind = if r.is_dir {
        EntryKind::Dir
    } else {
        EntryKind::File
    };
    Entry {
        path,
        kind,
        size: if r.is_dir { 0 } else { r.size.unwrap_or(0) },
        modtime: r.modified.as_deref().and_then(parse_modtime),
        hashes: parse_checksums(&r.checksums),
        id: r.fileid.clone(),
        etag: r.etag.as_ref().map(|e| {
            let e = e.strip_prefix("W/").unwrap_or(e);
            e.trim_matches('"').to_owned()
        }),
    }
}

/// The `PROPFIND` request body: the properties we use.
pub(crate) fn propfind_body(oc: bool) -> &'static str {
    if oc {
        concat!(
            r#"<?xml version="1.0" encoding="utf-8"?>"#,
            r#"<d:propfind xmlns:d="DAV:" xmlns:oc="http://owncloud.org/ns"><d:prop>"#,
            "<d:resourcetype/><d:getcontentlength/><d:getlastmodified/><d:getetag/>",
            "<oc:checksums/><oc:fileid/>",
            "</d:prop></d:propfind>"
        )
    } else {
        concat!(
            r#"<?xml version="1.0" encoding="utf-8"?>"#,
            r#"<d:propfind xmlns:d="DAV:"><d:prop>"#,
            "<d:resourcetype/><d:getcontentlength/><d:getlastmodified/><d:getetag/>",
            "</d:prop></d:propfind>"
        )
    }
}

pub(crate) type BodyReader = StreamReader<BoxStream<'static, std::io::Result<Bytes>>, Bytes>;

/// `body`, failing once more than [`MAX_MULTISTATUS`] bytes came.
pub(crate) fn capped(
    body: BoxStream<'static, std::io::Result<Bytes>>,
) -> BoxStream<'static, std::io::Result<Bytes>> {
    let mut seen = 0u64;
    body.map(move |r| {
        let b = r?;
        seen = seen.saturating_add(b.len() as u64);
        if seen > MAX_MULTISTATUS {
            return Err(std::io::Error::other(protocol(format!(
                "PROPFIND answer larger than {} MiB; refusing to read on",
                MAX_MULTISTATUS >> 20
            ))));
        }
        Ok(b)
    })
    .boxed()
}

/// Why the entry a response describes cannot be used, if it cannot: a status other than
/// success for the resource itself, a failed propstat for a property we need, several hrefs
/// sharing one answer, or an unreadable size. Never [`ErrorKind::InvalidInput`] or
/// [`ErrorKind::NotFound`]: in a listing those would mean "one bad name" or "absent", and
/// the engine must instead void the directory.
pub(crate) fn response_problem(r: &DavResponse) -> Option<Error> {
    let what = |msg: String| format!("entry {:?}: {msg}", cut(&r.href));
    if r.hrefs > 1 {
        let msg = what(format!("one answer for {} hrefs", r.hrefs));
        return Some(protocol(msg));
    }
    if let Some(code) = r.status.filter(|s| !(200..300).contains(s)) {
        let msg = match code {
            0 => what("the server's status line cannot be read".into()),
            c => what(format!("the server answered {c}")),
        };
        return Some(status_problem(code, msg));
    }
    if let Some(code) = r.failed {
        let msg = what(format!("the server could not read its properties ({code})"));
        return Some(status_problem(code, msg));
    }
    if r.bad_size {
        return Some(protocol(what("getcontentlength is not a size".into())));
    }
    None
}

/// An error of the kind `code` maps to, unless that kind would be read as "one bad name" or
/// "absent" (then [`ErrorKind::Protocol`]).
fn status_problem(code: u16, msg: String) -> Error {
    let Ok(status) = StatusCode::from_u16(code) else {
        return protocol(msg);
    };
    let e = parse_error(status, &reqwest::header::HeaderMap::new(), "");
    match e.kind() {
        ErrorKind::PermissionDenied | ErrorKind::Auth => Error::new(e.kind(), msg),
        ErrorKind::Transient | ErrorKind::RateLimited => {
            Error::new(ErrorKind::Transient, msg).set_temporary(true)
        }
        _ => protocol(msg),
    }
}

#[cfg(test)]
mod tests;
