//! Downloads: `files/download`, with an HTTP `Range` for partial reads.

use std::ops::Range;

use cloudsync_core::http::transport_error;
use cloudsync_core::{ByteStream, Error, ErrorKind, RemotePath, Result};
use futures::{StreamExt, TryStreamExt};
use reqwest::StatusCode;
use serde_json::json;

use crate::core::DropboxCore;

/// Reads `path`, or the byte `range` of it.
pub(crate) async fn read(
    core: &DropboxCore,
    path: &RemotePath,
    range: Option<Range<u64>>,
) -> Result<ByteStream> {
    let arg = json!({ "path": core.dbx_path(path) });
    let range = range.map(|r| (r.start, r.end));
    if let Some((start, end)) = range {
        if start >= end {
            // Nothing to read; still fail for a missing file.
            core.rpc("files/get_metadata", &arg)
                .await
                .map_err(|e| e.with_path(path))?;
            return Ok(futures::stream::empty().boxed());
        }
    }
    let resp = core
        .download(&arg, range)
        .await
        .map_err(|e| e.with_path(path))?;
    match (resp.status(), range) {
        // The range starts at or after the end of the file.
        (StatusCode::RANGE_NOT_SATISFIABLE, _) => return Ok(futures::stream::empty().boxed()),
        (StatusCode::OK, Some((start, _))) if start > 0 => {
            return Err(Error::new(
                ErrorKind::Protocol,
                "files/download ignored the Range header",
            )
            .with_path(path));
        }
        _ => {}
    }
    let want = range.map(|(s, e)| e - s);
    let stream = resp
        .bytes_stream()
        .map_err(|e| transport_error(e).with_operation("files/download"));
    Ok(match want {
        // A full answer to a range starting at 0: stop at the range's end.
        Some(mut left) => stream
            .try_filter_map(move |mut chunk| {
                let keep = (chunk.len() as u64).min(left);
                chunk.truncate(keep as usize);
                left -= keep;
                futures::future::ready(Ok((!chunk.is_empty()).then_some(chunk)))
            })
            .boxed(),
        None => stream.boxed(),
    })
}
