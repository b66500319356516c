//! Downloads: `objects.get` with `alt=media`, whole or a byte range, and hashes read from
//! the object's metadata or computed from its bytes.

use std::ops::Range;

use bytes::Bytes;
use cloudsync_core::http::transport_error;
use cloudsync_core::{ByteStream, Error, ErrorKind, HashKind, RemotePath, Result};
use futures::{StreamExt, TryStreamExt};
use reqwest::StatusCode;
use reqwest::header::{ACCEPT_ENCODING, CONTENT_RANGE, RANGE};

use super::core::{GcsCore, error_from};

/// The checksum `kind` of the file at `path`: the MD5 or CRC32C the service keeps, else
/// (a composite object has no MD5, other kinds are not kept) computed from its bytes.
pub(crate) async fn hash(core: &GcsCore, path: &RemotePath, kind: HashKind) -> Result<String> {
    let name = core.object_name(path);
    if matches!(kind, HashKind::Md5 | HashKind::Crc32c) {
        let o = core
            .get_object(&name)
            .await
            .map_err(|e| core.ctx(e, path))?;
        if let Some(h) = o.hashes().get(kind) {
            return Ok(h.to_owned());
        }
    }
    let body = read(core, &name, None)
        .await
        .map_err(|e| core.ctx(e, path))?;
    cloudsync_core::hash_stream(body, kind).await
}

/// Reads object `name`, or the bytes `range` of it.
///
/// `Accept-Encoding: gzip` asks for the bytes as stored: an object uploaded with
/// `Content-Encoding: gzip` is otherwise decompressed on the way ("decompressive
/// transcoding"), and its bytes would match neither the listed size nor the MD5.
///
/// A range whose start is at or past the end gives nothing (the service answers 416). A server
/// that ignores `Range` and sends the whole object (200) is handled by skipping to the range
/// here, so the caller always gets exactly the bytes asked for.
pub(crate) async fn read(
    core: &GcsCore,
    name: &str,
    range: Option<Range<u64>>,
) -> Result<ByteStream> {
    if let Some(r) = &range {
        if r.start >= r.end {
            // Nothing to read, but the object must exist.
            core.get_object(name).await?;
            return Ok(futures::stream::empty().boxed());
        }
    }
    let url = core.object_url(name);
    let res = core
        .send_raw(true, |c| {
            let b = c
                .get(&url)
                .query(&[("alt", "media")])
                .header(ACCEPT_ENCODING, "gzip");
            match &range {
                Some(r) => b.header(RANGE, format!("bytes={}-{}", r.start, r.end - 1)),
                None => b,
            }
        })
        .await?;
    let status = res.status();
    let (skip, take) = match (&range, status) {
        (_, StatusCode::RANGE_NOT_SATISFIABLE) if range.is_some() => {
            return Ok(futures::stream::empty().boxed());
        }
        (_, s) if !s.is_success() => return Err(error_from(res).await),
        (None, StatusCode::OK) => (0, None),
        (Some(r), StatusCode::PARTIAL_CONTENT) => {
            let start = res
                .headers()
                .get(CONTENT_RANGE)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("bytes "))
                .and_then(|v| v.split('-').next())
                .and_then(|v| v.parse::<u64>().ok());
            if start != Some(r.start) {
                return Err(Error::new(
                    ErrorKind::Protocol,
                    format!(
                        "asked for bytes from {} and the answer starts elsewhere ({:?})",
                        r.start,
                        res.headers().get(CONTENT_RANGE)
                    ),
                ));
            }
            (0, Some(r.end - r.start))
        }
        (Some(r), StatusCode::OK) => {
            tracing::debug!(
                object = name,
                "the server ignored Range and sent the whole object; skipping to the range"
            );
            (r.start, Some(r.end - r.start))
        }
        (_, s) => {
            return Err(Error::new(
                ErrorKind::Protocol,
                format!("a download answered {s}"),
            ));
        }
    };
    let body = res
        .bytes_stream()
        .map_err(|e| transport_error(e.without_url()));
    Ok(window(body.boxed(), skip, take))
}

/// The bytes `skip..skip+take` of `body` (all after `skip` when `take` is `None`); a body that
/// goes on past the window is cut, not read further.
fn window(body: ByteStream, skip: u64, take: Option<u64>) -> ByteStream {
    futures::stream::unfold(
        (body, skip, take),
        |(mut body, mut skip, mut take)| async move {
            loop {
                if take == Some(0) {
                    return None;
                }
                let mut chunk: Bytes = match body.next().await? {
                    Ok(c) => c,
                    Err(e) => return Some((Err(e), (body, 0, Some(0)))),
                };
                if skip > 0 {
                    let n = skip.min(chunk.len() as u64);
                    skip -= n;
                    chunk = chunk.slice(n as usize..);
                }
                if let Some(t) = take.as_mut() {
                    if chunk.len() as u64 > *t {
                        chunk.truncate(*t as usize);
                    }
                    *t -= chunk.len() as u64;
                }
                if !chunk.is_empty() {
                    return Some((Ok(chunk), (body, skip, take)));
                }
            }
        },
    )
    .boxed()
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn run(chunks: &[&'static [u8]], skip: u64, take: Option<u64>) -> Vec<u8> {
        let body = futures::stream::iter(
            chunks
                .iter()
                .map(|c| Ok(Bytes::from_static(c)))
                .collect::<Vec<_>>(),
        )
        .boxed();
        cloudsync_core::collect_bytes(window(body, skip, take))
            .await
            .unwrap()
            .to_vec()
    }

    #[tokio::test]
    async fn a_window_over_chunks() {
        assert_eq!(run(&[b"abc", b"def", b"gh"], 2, Some(4)).await, b"cdef");
        assert_eq!(run(&[b"abc", b"def", b"gh"], 0, None).await, b"abcdefgh");
        assert_eq!(run(&[b"abc", b"def"], 4, None).await, b"ef");
        assert_eq!(run(&[b"abc"], 1, Some(100)).await, b"bc");
        assert_eq!(run(&[b"abc"], 5, Some(1)).await, b"");
    }
}
