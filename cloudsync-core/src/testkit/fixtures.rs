//! Small helpers for tests that build and compare trees on any remote. They panic on failure,
//! as test code does.

use std::collections::BTreeMap;
use std::sync::Arc;

use futures::TryStreamExt;
use time::OffsetDateTime;

use crate::entry::{Entry, WriteMeta};
use crate::ops::{ListOptions, list};
use crate::path::RemotePath;
use crate::remote::{Remote, bytes_stream, collect_bytes};

/// Writes the text `body` at `path` with `modtime`.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use cloudsync_core::testkit::{put_text, text_tree};
/// let r = cloudsync_core::memory();
/// put_text(&r, "a/b.txt", "hello", None).await;
/// assert_eq!(text_tree(&r).await["a/b.txt"], "hello");
/// # }
/// ```
pub async fn put_text(
    remote: &Arc<dyn Remote>,
    path: &str,
    body: &str,
    modtime: Option<OffsetDateTime>,
) -> Entry {
    let path = RemotePath::new(path).unwrap_or_else(|e| panic!("bad test path {path:?}: {e}"));
    let meta = WriteMeta {
        size: Some(body.len() as u64),
        modtime,
        ..Default::default()
    };
    remote
        .write(&path, bytes_stream(body.to_owned()), meta)
        .await
        .unwrap_or_else(|e| panic!("writing {path}: {}", e.chain()))
}

/// Every file of `remote`, path to content (as text).
pub async fn text_tree(remote: &Arc<dyn Remote>) -> BTreeMap<String, String> {
    let opts = ListOptions {
        recursive: true,
        ..Default::default()
    };
    let entries: Vec<Entry> = list(remote, &RemotePath::root(), &opts)
        .try_collect()
        .await
        .unwrap_or_else(|e| panic!("listing {}: {}", remote.describe(), e.chain()));
    let mut out = BTreeMap::new();
    for e in entries.into_iter().filter(Entry::is_file) {
        let body = match remote.read(&e.path, None).await {
            Ok(s) => collect_bytes(s).await,
            Err(err) => Err(err),
        }
        .unwrap_or_else(|err| panic!("reading {}: {}", e.path, err.chain()));
        out.insert(
            e.path.to_string(),
            String::from_utf8_lossy(&body).into_owned(),
        );
    }
    out
}

/// Every file below the local directory `root`: relative path to (content, modtime in whole
/// seconds since the Unix epoch). For comparing what a backend's server wrote to its disk.
pub fn disk_tree(root: &std::path::Path) -> BTreeMap<String, (Vec<u8>, u64)> {
    fn walk(
        root: &std::path::Path,
        dir: &std::path::Path,
        out: &mut BTreeMap<String, (Vec<u8>, u64)>,
    ) {
        let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        for e in entries {
            let p = e
                .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
                .path();
            let meta =
                std::fs::symlink_metadata(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            if meta.is_dir() {
                walk(root, &p, out);
                continue;
            }
            let rel = p
                .strip_prefix(root)
                .unwrap_or(&p)
                .to_string_lossy()
                .into_owned();
            let secs = meta
                .modified()
                .ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map_or(0, |d| d.as_secs());
            let body = std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            out.insert(rel, (body, secs));
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

/// Writes the local file `root/rel` (creating its directories) with `content` and a modtime of
/// `secs` seconds plus 123456789 ns after the Unix epoch.
pub fn put_disk_file(root: &std::path::Path, rel: &str, content: &[u8], secs: u64) {
    let path = root.join(rel);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    }
    std::fs::write(&path, content).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let t = std::time::UNIX_EPOCH + std::time::Duration::new(secs, 123_456_789);
    std::fs::File::options()
        .write(true)
        .open(&path)
        .and_then(|f| f.set_times(std::fs::FileTimes::new().set_modified(t)))
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
}

/// `n` pseudo-random bytes, the same for the same `seed`.
///
/// ```
/// use cloudsync_core::testkit::random_bytes;
/// assert_eq!(random_bytes(100, 7), random_bytes(100, 7));
/// assert_ne!(random_bytes(100, 7), random_bytes(100, 8));
/// ```
pub fn random_bytes(n: usize, seed: u64) -> Vec<u8> {
    let mut rng = fastrand::Rng::with_seed(seed);
    (0..n).map(|_| rng.u8(..)).collect()
}

/// The relative paths of our temporary upload files (see [`is_temp_name`]) anywhere below
/// the local directory `root`: what a backend's server left on its disk.
///
/// [`is_temp_name`]: crate::is_temp_name
pub fn disk_temp_files(root: &std::path::Path) -> Vec<String> {
    disk_tree(root)
        .into_keys()
        .filter(|p| p.rsplit('/').next().is_some_and(crate::is_temp_name))
        .collect()
}
