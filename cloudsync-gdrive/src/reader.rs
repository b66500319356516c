//! Downloads (`alt=media`, with a `Range` header for partial reads).

use std::ops::Range;

use cloudsync_core::http::transport_error;
use cloudsync_core::{ByteStream, Error, ErrorKind, RemotePath, Result};
use futures::{StreamExt, TryStreamExt};
use reqwest::StatusCode;
use reqwest::header::{CONTENT_RANGE, RANGE};

use crate::core::{DriveCore, enc};

/// Reads `path`, or the byte `range` of it.
pub(crate) async fn read(
    core: &DriveCore,
    path: &RemotePath,
    range: Option<Range<u64>>,
) -> Result<ByteStream> {
    let file = core
        .lookup(path)
        .await?
        .ok_or_else(|| Error::new(ErrorKind::NotFound, "no such file"))?;
    if file.is_folder() {
        return Err(Error::new(ErrorKind::Conflict, "is a folder, not a file"));
    }
    if file.is_google_doc() {
        return Err(Error::new(
            ErrorKind::Unsupported,
            format!(
                "{} is a Google document ({}) with no binary content",
                path,
                crate::core::cut(&file.mime_type)
            ),
        ));
    }
    let size: u64 = file
        .size
        .as_deref()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let (header, span) = match range {
        Some(r) => {
            let end = r.end.min(size);
            if r.start >= end {
                return Ok(futures::stream::empty().boxed());
            }
            (
                Some(format!("bytes={}-{}", r.start, end - 1)),
                Some((r.start, end - r.start)),
            )
        }
        None if size == 0 => return Ok(futures::stream::empty().boxed()),
        None => (None, None),
    };
    let mut query = core.common();
    query.push(("alt", "media".into()));
    let url = core.api(&format!("files/{}", enc(&file.id)));
    let res = core
        .send("read", |c| {
            let r = c.get(&url).query(&query);
            match &header {
                Some(h) => r.header(RANGE, h),
                None => r,
            }
        })
        .await?;
    let status = res.status();
    let content_range = res
        .headers()
        .get(CONTENT_RANGE)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
    let body = res.bytes_stream().map_err(transport_error).boxed();
    let Some((start, len)) = span else {
        return Ok(body);
    };
    // A server may ignore `Range` (RFC 9110 §14.2: "A server MAY ignore the Range header
    // field") and send the whole content with 200: its first `start` bytes are skipped, never
    // taken for the range. A 206 must start where it was asked to.
    let skip = match status {
        StatusCode::PARTIAL_CONTENT => {
            let got = content_range
                .as_deref()
                .and_then(|v| v.strip_prefix("bytes "))
                .and_then(|v| v.split_once('-'))
                .and_then(|(a, _)| a.trim().parse::<u64>().ok());
            if got != Some(start) {
                return Err(Error::new(
                    ErrorKind::Protocol,
                    format!(
                        "asked for bytes from {start}, the server sent Content-Range {:?}",
                        crate::core::cut(content_range.as_deref().unwrap_or(""))
                    ),
                ));
            }
            0
        }
        _ => {
            tracing::debug!(%status, start, "the server ignored Range; skipping the prefix");
            start
        }
    };
    Ok(exact_span(body, skip, len))
}

/// The `len` bytes of `body` after its first `skip`: the stream ends after them, and an error
/// ends it when the body ends first (a short range is never taken for the whole).
fn exact_span(body: ByteStream, skip: u64, len: u64) -> ByteStream {
    futures::stream::unfold(
        (body, skip, len),
        |(mut body, mut skip, mut left)| async move {
            if left == 0 {
                return None;
            }
            loop {
                match body.next().await {
                    None => {
                        let e = Error::new(
                            ErrorKind::Transient,
                            format!("the download ended {left} bytes before the end of the range"),
                        );
                        return Some((Err(e), (body, 0, 0)));
                    }
                    Some(Err(e)) => return Some((Err(e), (body, 0, 0))),
                    Some(Ok(mut b)) => {
                        let n = b.len() as u64;
                        if skip >= n {
                            skip -= n;
                            continue;
                        }
                        let mut b = b.split_off(skip as usize);
                        if b.len() as u64 > left {
                            b.truncate(left as usize);
                        }
                        left -= b.len() as u64;
                        return Some((Ok(b), (body, 0, left)));
                    }
                }
            }
        },
    )
    .boxed()
}
