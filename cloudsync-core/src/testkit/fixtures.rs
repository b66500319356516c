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
