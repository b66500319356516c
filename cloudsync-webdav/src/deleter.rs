//! `DELETE` of files, empty directories and whole trees, and Nextcloud/ownCloud `cleanup`
//! (empty the trash bin, drop old file versions).
//!
//! A WebDAV `DELETE` of a collection removes everything below it, so `remove_file` and
//! `remove_dir` look before they delete: a file removal never takes a directory with it, and
//! only an empty directory is removed by `remove_dir`.

use cloudsync_core::{ErrorKind, RemotePath, Result};
use futures::StreamExt;
use reqwest::StatusCode;

use crate::config::encode_segment;
use crate::core::{WebdavCore, cut, method};
use crate::lister::{self, PropfindAnswer};
use crate::multistatus::response_problem;

async fn delete_url(core: &WebdavCore, url: url::Url, path: &RemotePath) -> Result<()> {
    let rb = core.request(reqwest::Method::DELETE, url);
    core.send_ok(rb, path).await.map(|_| ())
}

/// Removes one file (never a directory).
pub(crate) async fn remove_file(core: &WebdavCore, path: &RemotePath) -> Result<()> {
    let e = lister::stat(core, path).await?;
    if e.is_dir() {
        return Err(core.err(ErrorKind::Conflict, "is a directory", path));
    }
    // `Depth: 0` makes servers that check it refuse to delete a collection.
    let rb = core
        .request(reqwest::Method::DELETE, core.url(path, false))
        .header("Depth", "0");
    core.send_ok(rb, path).await.map(|_| ())
}

/// Removes an empty directory.
///
/// A collection `DELETE` is recursive, so the directory is listed (`Depth: 1`) right
/// before it: anything in the answer besides the directory itself — whatever its status,
/// and even a member whose href or properties cannot be read — refuses with
/// [`ErrorKind::Conflict`]. The directory's own answer must be there and say collection.
pub(crate) async fn remove_dir(core: &WebdavCore, dir: &RemotePath) -> Result<()> {
    let answer = lister::propfind(core, core.url(dir, true), "1", dir).await?;
    let PropfindAnswer::Multistatus(mut reader, resolver) = answer else {
        return Err(core.err(ErrorKind::Conflict, "not a directory", dir));
    };
    let ctx = |e: cloudsync_core::Error| e.with_path(dir);
    let mut seen_self = false;
    while let Some(r) = reader.next().await.map_err(ctx)? {
        let me = r.hrefs == 1 && resolver.resolve(&r.href).is_ok_and(|p| &p == dir);
        if !me {
            tracing::debug!(%dir, href = %cut(&r.href), "not removing a directory that has members");
            return Err(core.err(ErrorKind::Conflict, "directory not empty", dir));
        }
        if r.status == Some(404) {
            return Err(core.err(ErrorKind::NotFound, "directory not found", dir));
        }
        if let Some(e) = response_problem(&r) {
            return Err(ctx(e));
        }
        if !r.is_dir {
            return Err(core.err(ErrorKind::Conflict, "not a directory", dir));
        }
        seen_self = true;
    }
    if !seen_self {
        return Err(core.err(
            ErrorKind::Protocol,
            "the PROPFIND answer does not describe the directory itself",
            dir,
        ));
    }
    core.forget_dir(dir);
    delete_url(core, core.url(dir, true), dir).await
}

/// Removes `dir` and everything below it with one `DELETE`.
pub(crate) async fn purge(core: &WebdavCore, dir: &RemotePath) -> Result<()> {
    let e = lister::stat(core, dir).await?;
    if !e.is_dir() {
        return Err(core.err(ErrorKind::Conflict, "not a directory", dir));
    }
    core.forget_dir(dir);
    delete_url(core, core.url(dir, true), dir).await
}

/// Empties the Nextcloud/ownCloud trash bin and removes old versions of every file below
/// the root.
pub(crate) async fn cleanup(core: &WebdavCore) -> Result<()> {
    let root = RemotePath::root();
    let (user, dav) = core.dav_root.clone().ok_or_else(|| {
        core.err(
            ErrorKind::Unsupported,
            "the URL is not a remote.php/dav/files/USER/ URL, so the trash bin is unknown",
            &root,
        )
    })?;
    let user = encode_segment(&user).to_string();
    let trash = dav
        .join(&format!("trashbin/{user}/trash"))
        .map_err(|e| core.err(ErrorKind::Unexpected, &e.to_string(), &root))?;
    let rb = core.request(reqwest::Method::DELETE, trash);
    let resp = core.send(rb, &root).await?;
    // An empty trash bin may answer 404 on some versions.
    if !resp.status().is_success() && resp.status() != StatusCode::NOT_FOUND {
        return Err(core.status_error(resp, &root).await);
    }
    delete_old_versions(core, &dav, &user).await
}

/// Walks the tree below the root and deletes every stored old version of each file
/// (`remote.php/dav/versions/USER/versions/FILEID/VERSION`).
async fn delete_old_versions(core: &WebdavCore, dav: &url::Url, user: &str) -> Result<()> {
    use futures::TryStreamExt;
    let versions = dav
        .join(&format!("versions/{user}/versions/"))
        .map_err(|e| core.err(ErrorKind::Unexpected, &e.to_string(), &RemotePath::root()))?;
    let mut dirs = vec![RemotePath::root()];
    while let Some(dir) = dirs.pop() {
        let mut entries = lister::list(core, &dir).await?;
        while let Some(e) = entries.try_next().await? {
            if e.is_dir() {
                dirs.push(e.path);
                continue;
            }
            let Some(id) = e.id.as_deref().filter(|i| !i.is_empty()) else {
                continue;
            };
            let folder = versions
                .join(&format!("{}/", encode_segment(id)))
                .map_err(|err| core.err(ErrorKind::Unexpected, &err.to_string(), &e.path))?;
            delete_versions_in(core, folder, &e.path).await?;
        }
    }
    Ok(())
}

async fn delete_versions_in(core: &WebdavCore, folder: url::Url, file: &RemotePath) -> Result<()> {
    let rb = core
        .request(method("PROPFIND"), folder.clone())
        .header("Depth", "1")
        .header("Content-Type", "application/xml; charset=utf-8")
        .body(crate::multistatus::propfind_body(true));
    let resp = core.send(rb, file).await?;
    match resp.status() {
        StatusCode::MULTI_STATUS => {}
        StatusCode::NOT_FOUND => return Ok(()),
        _ => return Err(core.status_error(resp, file).await),
    }
    // Streamed and capped like every PROPFIND answer.
    let body = crate::multistatus::capped(
        futures::TryStreamExt::map_err(resp.bytes_stream(), std::io::Error::other).boxed(),
    );
    let mut reader =
        crate::multistatus::MultistatusReader::new(tokio_util::io::StreamReader::new(body));
    let folder_path = folder.path().trim_end_matches('/').to_owned();
    while let Some(r) = reader.next().await? {
        // Each version is a member of the file's version folder; resolve it against that
        // folder, and only follow hrefs that are directly inside it.
        let Ok(abs) = folder.join(&r.href) else {
            continue;
        };
        if abs.origin() != folder.origin() {
            continue;
        }
        let p = abs.path().trim_end_matches('/');
        let Some(name) = p
            .strip_prefix(&folder_path)
            .and_then(|n| n.strip_prefix('/'))
        else {
            continue;
        };
        if name.is_empty() || name.contains('/') || r.href.contains("..") {
            continue;
        }
        delete_url(core, abs, file).await?;
    }
    Ok(())
}
