//! Listings as streams of pages of `objects.list`: one page in memory at a time, never the
//! whole prefix.

use std::collections::HashSet;
use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};
use std::sync::Arc;

use cloudsync_core::{Entry, EntryStream, Error, ErrorKind, RemotePath, Result};
use futures::StreamExt;

use super::core::{GcsCore, Object, ObjectList, PAGE_SIZE, cut};

/// The most pages one listing may have: a service that keeps handing out new page tokens
/// cannot make a listing endless (at 1000 objects a page, 100 million objects).
pub(crate) const MAX_PAGES: usize = 100_000;

/// What one listing walks.
struct Walk {
    core: Arc<GcsCore>,
    /// The directory listed (entries are built below it).
    dir: RemotePath,
    /// Its listing prefix (`root/dir/`, or empty for the bucket root).
    prefix: String,
    delimited: bool,
    /// Whether anything (an object, a prefix, a directory marker) was seen.
    seen_any: bool,
    /// Hashes of the page tokens seen (a token seen twice means the listing goes round).
    tokens: HashSet<u64>,
    hasher: BuildHasherDefault<DefaultHasher>,
}

enum State {
    /// The first page, fetched before the stream was handed out.
    First(Box<Walk>, ObjectList),
    Next(Box<Walk>, Option<String>),
    Done,
}

/// Lists `dir` (one level when `delimited`, else the whole tree below it) as a stream.
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
        .map_err(|e| e.with_operation("list").with_path(dir))?;
    let empty = first.items.is_empty() && first.prefixes.is_empty();
    let no_more = first.next_page_token.as_deref().is_none_or(str::is_empty);
    if empty && no_more && !prefix.is_empty() {
        return Err(Error::new(ErrorKind::NotFound, "directory not found")
            .with_operation("list")
            .with_path(dir));
    }
    let walk = Walk {
        core,
        dir: dir.clone(),
        prefix,
        delimited,
        seen_any: false,
        tokens: HashSet::new(),
        hasher: BuildHasherDefault::default(),
    };
    Ok(
        futures::stream::unfold(State::First(Box::new(walk), first), |state| async move {
            let (mut walk, page) = match state {
                State::Done => return None,
                State::First(walk, page) => (walk, page),
                State::Next(walk, token) => {
                    match walk
                        .core
                        .list_page(&walk.prefix, walk.delimited, PAGE_SIZE, token.as_deref())
                        .await
                    {
                        Ok(p) => (walk, p),
                        Err(e) => {
                            let e = e.with_operation("list").with_path(&walk.dir);
                            return Some((vec![Err(e)], State::Done));
                        }
                    }
                }
            };
            let next = page.next_page_token.clone().filter(|t| !t.is_empty());
            let mut out = walk.entries(page);
            let state = match next {
                None => {
                    if !walk.seen_any && !walk.prefix.is_empty() {
                        out.push(Err(Error::new(ErrorKind::NotFound, "directory not found")
                            .with_operation("list")
                            .with_path(&walk.dir)));
                    }
                    State::Done
                }
                Some(t) => {
                    if !walk.tokens.insert(walk.hasher.hash_one(&t)) {
                        out.push(Err(Error::new(
                            ErrorKind::Protocol,
                            "objects.list handed out a nextPageToken it gave before; the \
                         listing would never end",
                        )
                        .with_operation("list")
                        .with_path(&walk.dir)));
                        State::Done
                    } else if walk.tokens.len() >= MAX_PAGES {
                        out.push(Err(Error::new(
                            ErrorKind::Protocol,
                            format!("the listing has more than {MAX_PAGES} pages"),
                        )
                        .with_operation("list")
                        .with_path(&walk.dir)));
                        State::Done
                    } else {
                        State::Next(walk, Some(t))
                    }
                }
            };
            Some((out, state))
        })
        .flat_map(futures::stream::iter)
        .boxed(),
    )
}

impl Walk {
    /// The entries of one page.
    fn entries(&mut self, page: ObjectList) -> Vec<Result<Entry>> {
        let mut out = Vec::with_capacity(page.items.len() + page.prefixes.len());
        if !page.items.is_empty() || !page.prefixes.is_empty() {
            self.seen_any = true;
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
    .with_operation("list")
}

fn outside(name: &str) -> Error {
    Error::new(
        ErrorKind::Protocol,
        format!(
            "objects.list returned {:?}, which is outside the prefix asked for",
            cut(name)
        ),
    )
    .with_operation("list")
}
