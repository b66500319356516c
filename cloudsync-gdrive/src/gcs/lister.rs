//! Listings as streams of pages of `objects.list`: one page in memory at a time, never the
//! whole prefix.

use std::collections::HashSet;
use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use cloudsync_core::{Entry, EntryStream, Error, ErrorKind, RemotePath, Result, stream_paginated};
use futures::StreamExt;

use super::core::{GcsCore, Object, ObjectList, PAGE_SIZE, cut};

/// The most pages one listing may have: a service that keeps handing out new page tokens
/// cannot make a listing endless (at 1000 objects a page, 100 million objects).
pub(crate) const MAX_PAGES: usize = 100_000;

/// What one listing walks; shared by the page requests of [`stream_paginated`].
struct Walk {
    core: Arc<GcsCore>,
    /// The directory listed (entries are built below it).
    dir: RemotePath,
    /// Its listing prefix (`root/dir/`, or empty for the bucket root).
    prefix: String,
    delimited: bool,
    /// The first page, fetched before the stream was handed out.
    first: Mutex<Option<ObjectList>>,
    /// Whether anything (an object, a prefix, a directory marker) was seen.
    seen_any: AtomicBool,
    /// Whether a page request failed (the stream then ends with that error alone).
    failed: AtomicBool,
    /// Hashes of the page tokens seen (a token seen twice means the listing goes round).
    tokens: Mutex<HashSet<u64>>,
    hasher: BuildHasherDefault<DefaultHasher>,
}

/// Lists `dir` (one level when `delimited`, else the whole tree below it) as a stream, one
/// page in memory at a time (core's [`stream_paginated`]).
///
/// The first page is fetched here, so a directory with nothing below it (which does not exist
/// on an object store; only the bucket root may be empty) is a `NotFound` from this call. If
/// the service hands out empty pages with a token first, the `NotFound` ends the stream
/// instead. Names that cannot be paths (`a//b`, `..`) are `InvalidInput` items, one each, and
/// the rest stands.
pub(crate) async fn list(
    core: Arc<GcsCore>,
    dir: &RemotePath,
    delimited: bool,
) -> Result<EntryStream> {
    let prefix = core.dir_prefix(dir);
    let first = core
        .list_page(&prefix, delimited, PAGE_SIZE, None)
        .await
        .map_err(|e| e.with_path(dir))?;
    let empty = first.items.is_empty() && first.prefixes.is_empty();
    let no_more = first.next_page_token.as_deref().is_none_or(str::is_empty);
    if empty && no_more && !prefix.is_empty() {
        return Err(Error::new(ErrorKind::NotFound, "directory not found").with_path(dir));
    }
    let walk = Arc::new(Walk {
        core,
        dir: dir.clone(),
        prefix,
        delimited,
        first: Mutex::new(Some(first)),
        seen_any: AtomicBool::new(false),
        failed: AtomicBool::new(false),
        tokens: Mutex::new(HashSet::new()),
        hasher: BuildHasherDefault::default(),
    });
    let end = walk.clone();
    let pages = stream_paginated(walk, |walk: Arc<Walk>, token| async move {
        let r = walk.page(token).await;
        if r.is_err() {
            walk.failed.store(true, Ordering::SeqCst);
        }
        r
    })
    .map(|r| r.and_then(|item| item));
    // A prefix that gave nothing in any page does not exist.
    let tail = futures::stream::once(async move {
        let missing = !end.seen_any.load(Ordering::SeqCst)
            && !end.failed.load(Ordering::SeqCst)
            && !end.prefix.is_empty();
        missing.then(|| {
            Err(Error::new(ErrorKind::NotFound, "directory not found").with_path(&end.dir))
        })
    })
    .filter_map(futures::future::ready);
    Ok(pages.chain(tail).boxed())
}

impl Walk {
    /// The page for `token` (the first one was fetched already), as entries, and the next
    /// token.
    async fn page(&self, token: Option<String>) -> Result<(Vec<Result<Entry>>, Option<String>)> {
        let first = match token {
            None => self.first.lock().unwrap_or_else(|p| p.into_inner()).take(),
            Some(_) => None,
        };
        let page = match first {
            Some(p) => p,
            None => {
                if let Some(t) = &token {
                    let mut seen = self.tokens.lock().unwrap_or_else(|p| p.into_inner());
                    if !seen.insert(self.hasher.hash_one(t)) {
                        return Err(Error::new(
                            ErrorKind::Protocol,
                            "objects.list handed out a nextPageToken it gave before; the \
                             listing would never end",
                        )
                        .with_path(&self.dir));
                    }
                    if seen.len() > MAX_PAGES {
                        return Err(Error::new(
                            ErrorKind::Protocol,
                            format!("the listing has more than {MAX_PAGES} pages"),
                        )
                        .with_path(&self.dir));
                    }
                }
                self.core
                    .list_page(&self.prefix, self.delimited, PAGE_SIZE, token.as_deref())
                    .await
                    .map_err(|e| e.with_path(&self.dir))?
            }
        };
        let next = page.next_page_token.clone();
        Ok((self.entries(page), next))
    }

    /// The entries of one page.
    fn entries(&self, page: ObjectList) -> Vec<Result<Entry>> {
        let mut out = Vec::with_capacity(page.items.len() + page.prefixes.len());
        if !page.items.is_empty() || !page.prefixes.is_empty() {
            self.seen_any.store(true, Ordering::SeqCst);
        }
        for p in &page.prefixes {
            let rel = p
                .strip_prefix(&self.prefix)
                .and_then(|r| r.strip_suffix('/'));
            out.push(match rel {
                Some(name) => self
                    .dir
                    .join(name)
                    .map(Entry::dir)
                    .map_err(|e| bad_name(p, e)),
                None => Err(outside(p)),
            });
        }
        for o in page.items {
            if let Some(e) = self.item(o) {
                out.push(e);
            }
        }
        out
    }

    /// The entry of one object; `None` for the directory's own marker object (`dir/`, as the
    /// console's "create folder" makes).
    fn item(&self, o: Object) -> Option<Result<Entry>> {
        let Some(rel) = o.name.strip_prefix(&self.prefix) else {
            return Some(Err(outside(&o.name)));
        };
        if rel.is_empty() {
            return None;
        }
        // A marker object of a deeper directory (only in recursive listings: a delimited one
        // folds it into `prefixes`): the directory, as rclone shows it.
        if let Some(dir) = rel.strip_suffix('/') {
            return Some(
                RemotePath::new(dir)
                    .map(|d| Entry::dir(self.dir.join_path(&d)))
                    .map_err(|e| bad_name(&o.name, e)),
            );
        }
        let path = if self.delimited {
            self.dir.join(rel)
        } else {
            RemotePath::new(rel).map(|r| self.dir.join_path(&r))
        };
        Some(match path {
            Ok(p) => o.entry(p),
            Err(e) => Err(bad_name(&o.name, e)),
        })
    }
}

/// One object whose name cannot be a path: an `InvalidInput` entry error.
fn bad_name(name: &str, e: Error) -> Error {
    Error::new(
        ErrorKind::InvalidInput,
        format!(
            "object {:?} has a name that cannot be a path: {}",
            cut(name),
            e.message()
        ),
    )
}

fn outside(name: &str) -> Error {
    Error::new(
        ErrorKind::Protocol,
        format!(
            "objects.list returned {:?}, which is outside the prefix asked for",
            cut(name)
        ),
    )
}
