//! `list` and `stat`: `PROPFIND` with `Depth: 1` or `0`, read as a stream of responses by
//! the parser in [`crate::multistatus`].

use cloudsync_core::{Entry, EntryStream, Error, ErrorKind, RemotePath, Result};
use futures::{StreamExt, TryStreamExt};
use reqwest::StatusCode;
use reqwest::header::{CONTENT_TYPE, HeaderValue};
use tokio_util::io::StreamReader;

use crate::core::{WebdavCore, cut, method};
use crate::multistatus::{
    BodyReader, HrefResolver, MultistatusReader, capped, propfind_body, protocol, response_problem,
    to_entry,
};

/// Sends `PROPFIND` with `depth` to `url`; returns a reader of its responses.
pub(crate) async fn propfind(
    core: &WebdavCore,
    url: url::Url,
    depth: &'static str,
    path: &RemotePath,
) -> Result<PropfindAnswer> {
    let rb = core
        .request(method("PROPFIND"), url.clone())
        .header("Depth", depth)
        .header(
            CONTENT_TYPE,
            HeaderValue::from_static("application/xml; charset=utf-8"),
        )
        .body(propfind_body(core.is_oc()));
    let resp = core.send(rb, path).await?;
    let status = resp.status();
    if status != StatusCode::MULTI_STATUS {
        if status.is_redirection() {
            return Ok(PropfindAnswer::Redirect);
        }
        if status.is_success() {
            return Err(protocol(format!(
                "PROPFIND answered {status} instead of 207 Multi-Status"
            ))
            .with_path(path));
        }
        return Err(core.status_error(resp, path).await);
    }
    let body = capped(resp.bytes_stream().map_err(std::io::Error::other).boxed());
    Ok(PropfindAnswer::Multistatus(
        Box::new(MultistatusReader::new(StreamReader::new(body))),
        HrefResolver::new(core, &url),
    ))
}

/// Metadata of `path` via `PROPFIND Depth: 0`.
pub(crate) async fn stat(core: &WebdavCore, path: &RemotePath) -> Result<Entry> {
    let mut answer = propfind(core, core.url(path, false), "0", path).await?;
    if matches!(answer, PropfindAnswer::Redirect) {
        // Some servers redirect a collection's URL without the trailing slash.
        answer = propfind(core, core.url(path, true), "0", path).await?;
    }
    let PropfindAnswer::Multistatus(mut reader, resolver) = answer else {
        return Err(core.err(ErrorKind::Protocol, "PROPFIND redirected twice", path));
    };
    let ctx = |e: Error| e.with_path(path);
    while let Some(r) = reader.next().await.map_err(ctx)? {
        let p = resolver.resolve(&r.href).map_err(ctx)?;
        if &p != path {
            continue;
        }
        if r.status == Some(404) {
            break;
        }
        if let Some(e) = response_problem(&r) {
            return Err(ctx(e));
        }
        return Ok(to_entry(p, &r));
    }
    Err(core.err(
        ErrorKind::NotFound,
        "PROPFIND answer has no entry for the path",
        path,
    ))
}

/// Lists `dir` one level deep via `PROPFIND Depth: 1`, streaming.
pub(crate) async fn list(core: &WebdavCore, dir: &RemotePath) -> Result<EntryStream> {
    let answer = match propfind(core, core.url(dir, true), "1", dir).await {
        Ok(PropfindAnswer::Multistatus(reader, resolver)) => Some((reader, resolver)),
        Ok(PropfindAnswer::Redirect) => None,
        Err(e) if dir.is_root() || !is_answer_about_the_path(&e) => return Err(e),
        Err(e) => {
            // `file/` gets 400, 404 or 409 depending on the server: say what it is.
            return match stat(core, dir).await {
                Ok(found) if found.is_file() => {
                    Err(core.err(ErrorKind::Conflict, "not a directory", dir))
                }
                _ => Err(e),
            };
        }
    };
    let Some((reader, resolver)) = answer else {
        return Err(core.err(ErrorKind::Conflict, "not a directory", dir));
    };
    let state = ListState {
        reader,
        resolver,
        dir: dir.clone(),
    };
    Ok(futures::stream::try_unfold(state, |mut st| async move {
        match st.next_entry().await {
            Ok(Some(e)) => Ok(Some((e, st))),
            Ok(None) => Ok(None),
            Err(e) => Err(e.with_path(&st.dir)),
        }
    })
    .boxed())
}

/// Whether an error is the server's verdict on the path (not auth, throttling or transport).
fn is_answer_about_the_path(e: &Error) -> bool {
    matches!(
        e.kind(),
        ErrorKind::NotFound | ErrorKind::Conflict | ErrorKind::InvalidInput
    )
}

/// What a `PROPFIND` returned.
pub(crate) enum PropfindAnswer {
    /// A 207 answer being read.
    Multistatus(Box<MultistatusReader<BodyReader>>, HrefResolver),
    /// A 3xx answer.
    Redirect,
}

struct ListState {
    reader: Box<MultistatusReader<BodyReader>>,
    resolver: HrefResolver,
    dir: RemotePath,
}

impl ListState {
    async fn next_entry(&mut self) -> Result<Option<Entry>> {
        while let Some(r) = self.reader.next().await? {
            let path = self.resolver.resolve(&r.href)?;
            if r.status == Some(404) && path != self.dir && r.hrefs == 1 {
                // A member whose own status is 404 is not there: RFC 4918 §14.24 makes a
                // response's status "the effect of a method on [the] resource" its href
                // names, and 404 is HTTP's "did not find a current representation for the
                // target resource" (RFC 9110 §15.5.5), e.g. a file deleted between the
                // server's directory read and its lookup. Skipping it is the same as the
                // server not listing it.
                tracing::debug!(href = %cut(&r.href), "skipping a member answered 404");
                continue;
            }
            if let Some(e) = response_problem(&r) {
                return Err(e);
            }
            if path == self.dir {
                if !r.is_dir {
                    return Err(Error::new(ErrorKind::Conflict, "not a directory"));
                }
                continue;
            }
            if path.parent().as_ref() != Some(&self.dir) {
                tracing::debug!(%path, "skipping an entry that is not a direct child");
                continue;
            }
            // Our temporary upload files are listed: the engine never pairs them, and
            // removes old ones.
            return Ok(Some(to_entry(path, &r)));
        }
        Ok(None)
    }
}
