//! `list`: the entries of one directory, or of a whole tree, filtered.

use std::sync::Arc;

use futures::StreamExt;

use crate::error::Error;
use crate::path::RemotePath;
use crate::plan::march::{Item, MarchConfig, Seed, march};
use crate::remote::{EntryStream, Remote};

use super::ListOptions;

/// Lists `dir` (one level, or the whole tree with [`ListOptions::recursive`]), keeping the
/// entries the filters include. Excluded directories are not descended into.
///
/// Entries come in no particular order; paths are relative to the remote's root. Listing
/// errors are items of the stream, so one unreadable directory does not hide the rest.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> cloudsync_core::Result<()> {
/// use futures::TryStreamExt;
/// use cloudsync_core::{bytes_stream, memory, ops, RemotePath, WriteMeta};
/// let r = memory();
/// r.write(&RemotePath::new("a/b/c.txt")?, bytes_stream("x"), WriteMeta::default()).await?;
/// let opts = ops::ListOptions { recursive: true, ..Default::default() };
/// let mut paths: Vec<String> = ops::list(&r, &RemotePath::root(), &opts)
///     .map_ok(|e| e.path.to_string())
///     .try_collect()
///     .await?;
/// paths.sort();
/// assert_eq!(paths, ["a", "a/b", "a/b/c.txt"]);
/// # Ok(())
/// # }
/// ```
pub fn list(remote: &Arc<dyn Remote>, dir: &RemotePath, opts: &ListOptions) -> EntryStream {
    let filter = opts.filter.clone();
    if !opts.recursive {
        let remote = remote.clone();
        let dir = dir.clone();
        return futures::stream::once(async move { remote.list(&dir).await })
            .flat_map(move |r| match r {
                Ok(s) => s,
                Err(e) => futures::stream::once(async move { Err(e) }).boxed(),
            })
            .filter(move |r| {
                let keep = match r {
                    Ok(e) => !crate::temp::is_temp_name(e.name()) && filter.include_entry(e),
                    Err(_) => true,
                };
                async move { keep }
            })
            .boxed();
    }
    let cfg = MarchConfig {
        filter,
        checkers: opts.checkers,
        walk_dst_only: false,
        walk_dst_excluded: false,
        skip_dst: None,
        leftover_age: None,
        // One remote: every name is listed as it is.
        unicode_normalization: false,
        subdirs: None,
    };
    march(remote.clone(), None, vec![Seed::Dir(dir.clone())], cfg)
        .filter_map(|item| async move {
            match item {
                Item::Pair {
                    src: Some(e),
                    src_included: true,
                    ..
                } => Some(Ok(e)),
                Item::SrcDir { entry, .. } => Some(Ok(entry)),
                Item::Error { error, .. } => Some(Err(error)),
                Item::Conflict { path } | Item::Duplicate { path } => Some(Err(Error::new(
                    crate::ErrorKind::Conflict,
                    "duplicate name in listing",
                )
                .with_path(path))),
                _ => None,
            }
        })
        .boxed()
}
