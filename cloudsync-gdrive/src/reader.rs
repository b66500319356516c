//! Downloads (`alt=media`, with a `Range` header for partial reads).

use std::ops::Range;

use cloudsync_core::http::transport_error;
use cloudsync_core::{ByteStream, Error, ErrorKind, RemotePath, Result};
use futures::{StreamExt, TryStreamExt};
use reqwest::header::RANGE;

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
    let header = match range {
        Some(r) => {
            let end = r.end.min(size);
            if r.start >= end {
                return Ok(futures::stream::empty().boxed());
            }
            Some(format!("bytes={}-{}", r.start, end - 1))
        }
        None if size == 0 => return Ok(futures::stream::empty().boxed()),
        None => None,
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
    Ok(res
        .bytes_stream()
        .map_err(|e| transport_error(e).with_operation("read"))
        .boxed())
}
