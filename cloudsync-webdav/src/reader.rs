//! `GET`, whole or with `Range`, streamed.
//!
//! A server that ignores `Range` answers `200` with the whole file; the reader then skips the
//! bytes before the range itself and stops at its end, so callers always get exactly the bytes
//! they asked for.

use std::ops::Range;

use bytes::Bytes;
use cloudsync_core::http::transport_error;
use cloudsync_core::{ByteStream, Error, ErrorKind, HashKind, RemotePath, Result};
use futures::{StreamExt, TryStreamExt};
use reqwest::StatusCode;
use reqwest::header::{CONTENT_RANGE, RANGE};

use crate::core::WebdavCore;
use crate::lister;

/// One hash of `path`: the checksum Nextcloud/ownCloud store with the file when there is one,
/// else the content downloaded and hashed.
pub(crate) async fn hash(core: &WebdavCore, path: &RemotePath, kind: HashKind) -> Result<String> {
    if core.is_oc() {
        let e = lister::stat(core, path).await?;
        if let Some(h) = e.hashes.get(kind) {
            return Ok(h.to_owned());
        }
    }
    hash_by_reading(core, path, kind).await
}

/// Downloads `path` and hashes it.
async fn hash_by_reading(core: &WebdavCore, path: &RemotePath, kind: HashKind) -> Result<String> {
    cloudsync_core::hash_stream(read(core, path, None).await?, kind).await
}

/// Reads `path`, or the byte `range` of it.
pub(crate) async fn read(
    core: &WebdavCore,
    path: &RemotePath,
    range: Option<Range<u64>>,
) -> Result<ByteStream> {
    if let Some(r) = &range
        && r.start >= r.end
    {
        return Ok(futures::stream::empty().boxed());
    }
    let mut rb = core.request(reqwest::Method::GET, core.url(path, false));
    if let Some(r) = &range {
        rb = rb.header(RANGE, format!("bytes={}-{}", r.start, r.end - 1));
    }
    let resp = core.send(rb, path).await?;
    let status = resp.status();
    let (skip, take) = match (&range, status) {
        (None, StatusCode::OK) => (0, None),
        (Some(r), StatusCode::PARTIAL_CONTENT) => {
            let span = resp
                .headers()
                .get(CONTENT_RANGE)
                .and_then(|v| v.to_str().ok())
                .and_then(content_range);
            match span {
                // The answer may stop early at the end of the file.
                Some((start, end)) if start == r.start => (0, Some(r.end.min(end) - start)),
                _ => {
                    return Err(core.err(
                        ErrorKind::Protocol,
                        "206 answer does not start at the requested offset",
                        path,
                    ));
                }
            }
        }
        // The server ignored Range: skip to the start ourselves.
        (Some(r), StatusCode::OK) => {
            let end = resp.content_length().map_or(r.end, |len| r.end.min(len));
            (r.start, Some(end.saturating_sub(r.start)))
        }
        (Some(_), StatusCode::RANGE_NOT_SATISFIABLE) => {
            return Err(core.err(
                ErrorKind::InvalidInput,
                "range starts beyond the end of the file",
                path,
            ));
        }
        (_, s) if s.is_success() => {
            return Err(core.err(ErrorKind::Protocol, &format!("GET answered {s}"), path));
        }
        _ => return Err(core.status_error(resp, path).await),
    };
    let p = path.clone();
    let body = resp
        .bytes_stream()
        .map_err(move |e| transport_error(e).with_path(&p));
    Ok(window(body.boxed(), skip, take))
}

/// `bytes 100-199/1000` → `(100, 200)` (start, exclusive end).
fn content_range(v: &str) -> Option<(u64, u64)> {
    let rest = v.trim().strip_prefix("bytes")?.trim_start();
    let span = rest.split('/').next()?;
    let (a, b) = span.split_once('-')?;
    let (a, b): (u64, u64) = (a.trim().parse().ok()?, b.trim().parse().ok()?);
    // `b` may be u64::MAX: the exclusive end saturates (no file is that long).
    (b >= a).then_some((a, b.saturating_add(1)))
}

/// The part of `body` after `skip` bytes, at most `take` bytes long (all when `None`). A body
/// that ends before the window is full is an error (a truncated transfer).
fn window(body: ByteStream, skip: u64, take: Option<u64>) -> ByteStream {
    struct St {
        body: ByteStream,
        skip: u64,
        left: Option<u64>,
    }
    let st = St {
        body,
        skip,
        left: take,
    };
    futures::stream::try_unfold(st, |mut st| async move {
        loop {
            if st.left == Some(0) {
                return Ok(None);
            }
            let Some(mut chunk): Option<Bytes> = st.body.try_next().await? else {
                if st.skip > 0 || st.left.is_some() {
                    return Err(Error::new(
                        ErrorKind::Transient,
                        "the server's answer ended before the requested range",
                    ));
                }
                return Ok(None);
            };
            if st.skip > 0 {
                let n = st.skip.min(chunk.len() as u64);
                chunk = chunk.slice(n as usize..);
                st.skip -= n;
            }
            if let Some(left) = &mut st.left {
                if (chunk.len() as u64) > *left {
                    chunk.truncate(*left as usize);
                }
                *left -= chunk.len() as u64;
            }
            if !chunk.is_empty() {
                return Ok(Some((chunk, st)));
            }
        }
    })
    .boxed()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunks(parts: &[&'static [u8]]) -> ByteStream {
        let v: Vec<Result<Bytes>> = parts.iter().map(|p| Ok(Bytes::from_static(p))).collect();
        futures::stream::iter(v).boxed()
    }

    #[tokio::test]
    async fn window_skips_and_truncates_across_chunks() {
        let out =
            cloudsync_core::collect_bytes(window(chunks(&[b"abc", b"defg", b"hij"]), 2, Some(6)))
                .await
                .unwrap();
        assert_eq!(&out[..], b"cdefgh");
        let all = cloudsync_core::collect_bytes(window(chunks(&[b"abc", b"def"]), 0, None))
            .await
            .unwrap();
        assert_eq!(&all[..], b"abcdef");
        let short = cloudsync_core::collect_bytes(window(chunks(&[b"abc"]), 1, Some(5))).await;
        assert_eq!(short.unwrap_err().kind(), ErrorKind::Transient);
    }

    #[test]
    fn parses_content_range() {
        assert_eq!(content_range("bytes 100-199/1000"), Some((100, 200)));
        assert_eq!(content_range("bytes 0-0/*"), Some((0, 1)));
        assert_eq!(content_range("items 1-2"), None);
        assert_eq!(content_range("bytes 5-2/9"), None);
        // Extreme ends: no overflow, no panic.
        assert_eq!(
            content_range("bytes 0-18446744073709551615/*"),
            Some((0, u64::MAX))
        );
        assert_eq!(
            content_range("bytes 18446744073709551615-18446744073709551615/18446744073709551615"),
            Some((u64::MAX, u64::MAX))
        );
        assert_eq!(content_range("bytes 0-18446744073709551616/*"), None);
        assert_eq!(content_range("bytes -1-5/*"), None);
    }
}
