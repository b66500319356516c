//! Listing checks: empty, one, many entries, awkward names, missing directories, hostile names
//! and `list_recursive`.

use std::collections::BTreeMap;
use std::sync::Arc;

use futures::{StreamExt, TryStreamExt};

use super::support::{Check, ensure, expect_content, keys, ls, ls_ok, p, put, show};
use crate::entry::EntryKind;
use crate::error::ErrorKind;
use crate::path::RemotePath;
use crate::remote::Remote;

/// Listing a new empty directory gives no entries (remotes with directories), or nothing /
/// `NotFound` (remotes where directories are implied by files).
pub async fn check_list_empty(remote: &Arc<dyn Remote>) -> Check {
    let dir = p("empty")?;
    remote
        .mkdir(&dir)
        .await
        .map_err(|e| format!("mkdir empty: {}", show(&e)))?;
    match ls(remote, &dir).await {
        Ok(m) => ensure!(m.is_empty(), "list of an empty dir returned {:?}", keys(&m)),
        Err(e) if !remote.capabilities().dirs && e.kind() == ErrorKind::NotFound => {}
        Err(e) => return Err(format!("list of an empty dir: {}", show(&e))),
    }
    Ok(())
}

/// A directory holding one file lists exactly that file, with its full path from the root,
/// kind and size; its parent lists the directory as a directory.
pub async fn check_list_one(remote: &Arc<dyn Remote>) -> Check {
    let f = p("d/one.txt")?;
    put(remote, &f, "12345").await?;
    let m = ls_ok(remote, &p("d")?).await?;
    ensure!(
        keys(&m) == ["d/one.txt"],
        "list d: got {:?}, want [\"d/one.txt\"] (paths are full paths from the root)",
        keys(&m)
    );
    let e = &m["d/one.txt"];
    ensure!(
        e.kind == EntryKind::File,
        "d/one.txt listed as {:?}",
        e.kind
    );
    ensure!(e.size == 5, "d/one.txt listed with size {}, want 5", e.size);
    let root = ls_ok(remote, &RemotePath::root()).await?;
    ensure!(
        keys(&root) == ["d"],
        "list of the root: got {:?}, want [\"d\"]",
        keys(&root)
    );
    ensure!(root["d"].is_dir(), "d listed as {:?}", root["d"].kind);
    Ok(())
}

/// A directory of `count` files lists each exactly once with the right size (pagination).
pub async fn check_list_many_with(remote: &Arc<dyn Remote>, count: usize) -> Check {
    let dir = p("many")?;
    let dir = &dir;
    let names: Vec<String> = (0..count).map(|i| format!("f{i:05}.txt")).collect();
    futures::stream::iter(names.iter().enumerate())
        .map(|(i, n)| async move {
            let path = dir.join(n).map_err(|e| show(&e))?;
            put(remote, &path, i.to_string()).await.map(|_| ())
        })
        .buffer_unordered(8)
        .try_collect::<Vec<()>>()
        .await?;
    let m = ls_ok(remote, dir).await?;
    ensure!(
        m.len() == count,
        "list of a dir with {count} files returned {} entries",
        m.len()
    );
    for (i, n) in names.iter().enumerate() {
        let key = format!("many/{n}");
        let e = m
            .get(&key)
            .ok_or_else(|| format!("list of {count} files is missing {key}"))?;
        let want = i.to_string().len() as u64;
        ensure!(
            e.size == want && e.is_file(),
            "{key} listed as {:?} of size {}, want a file of {want}",
            e.kind,
            e.size
        );
    }
    Ok(())
}

/// [`check_list_many_with`] with 1100 files.
pub async fn check_list_many(remote: &Arc<dyn Remote>) -> Check {
    check_list_many_with(remote, 1100).await
}

/// Names the suite writes to exercise quoting and encoding.
pub const AWKWARD_NAMES: &[&str] = &[
    "with space.txt",
    "ünïcødé ñ 日本語 😀.txt",
    "hash#question?percent%amp&plus+.txt",
    "%20not-an-escape%2F%41",
    "-leading-dash",
    "~tilde",
    "semi;colon=equals,comma",
    "quote'single",
    "brackets[1](2){3}",
    "at@dollar$bang!",
    ".hidden",
    "a..b",
];

/// Files and directories with spaces, unicode, `#?%&+`, a leading `-` or `~` round-trip by
/// name through write, list, stat and read.
pub async fn check_names(remote: &Arc<dyn Remote>) -> Check {
    let dir = p("names")?;
    let sub = dir.join("dir #?%&+ ü 日本").map_err(|e| show(&e))?;
    let mut want = BTreeMap::new();
    for (i, name) in AWKWARD_NAMES.iter().enumerate() {
        for base in [&dir, &sub] {
            let path = base.join(name).map_err(|e| show(&e))?;
            let body = format!("{i}:{name}");
            put(remote, &path, body.clone()).await?;
            want.insert(path, body);
        }
    }
    let top = ls_ok(remote, &dir).await?;
    let mut want_top: Vec<String> = AWKWARD_NAMES.iter().map(|n| format!("names/{n}")).collect();
    want_top.push(sub.to_string());
    want_top.sort();
    ensure!(
        keys(&top) == want_top,
        "list names: got {:?}, want {want_top:?}",
        keys(&top)
    );
    ensure!(
        top[sub.as_str()].is_dir(),
        "{sub} is not listed as a directory"
    );
    let inner = ls_ok(remote, &sub).await?;
    ensure!(
        inner.len() == AWKWARD_NAMES.len(),
        "list {sub}: got {:?}",
        keys(&inner)
    );
    for (path, body) in &want {
        let e = remote
            .stat(path)
            .await
            .map_err(|e| format!("stat {path:?}: {}", show(&e)))?;
        ensure!(
            e.path == *path && e.size == body.len() as u64,
            "stat {path:?} returned {:?} size {}",
            e.path,
            e.size
        );
        expect_content(remote, path, body.as_bytes()).await?;
    }
    Ok(())
}

/// Listing a directory that does not exist is `NotFound` (from `list` or its first item).
pub async fn check_list_missing(remote: &Arc<dyn Remote>) -> Check {
    for d in ["no-such-dir", "no/such/nested/dir"] {
        let dir = p(d)?;
        match ls(remote, &dir).await {
            Ok(m) => return Err(format!("list of missing {d} succeeded with {:?}", keys(&m))),
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => {
                return Err(format!(
                    "list of missing {d}: kind {:?}, want NotFound: {}",
                    e.kind(),
                    show(&e)
                ));
            }
        }
    }
    // A file is not a directory either.
    put(remote, &p("plain.txt")?, "x").await?;
    if let Ok(m) = ls(remote, &p("plain.txt")?).await {
        ensure!(
            m.is_empty(),
            "list of a file returned entries {:?}",
            keys(&m)
        );
    }
    Ok(())
}

/// Names that look like path tricks once decoded or joined by a careless server stay plain
/// names inside their directory and nothing appears outside it.
pub async fn check_hostile_names(remote: &Arc<dyn Remote>) -> Check {
    let dir = p("inner")?;
    let names = [
        "...",
        "..a",
        "%2e%2e",
        "%2e%2e%2fescaped",
        "a%2Fb",
        "..%5cb",
        "%00nul",
    ];
    for n in names {
        let path = dir.join(n).map_err(|e| show(&e))?;
        put(remote, &path, n).await?;
    }
    let m = ls_ok(remote, &dir).await?;
    let mut want: Vec<String> = names.iter().map(|n| format!("inner/{n}")).collect();
    want.sort();
    ensure!(
        keys(&m) == want,
        "list inner: got {:?}, want {want:?}",
        keys(&m)
    );
    for n in names {
        expect_content(remote, &dir.join(n).map_err(|e| show(&e))?, n.as_bytes()).await?;
    }
    let root = ls_ok(remote, &RemotePath::root()).await?;
    ensure!(
        keys(&root) == ["inner"],
        "after writing tricky names the check's root holds {:?}, want only [\"inner\"]",
        keys(&root)
    );
    Ok(())
}

/// When declared, `list_recursive` returns the same files (paths, sizes) as a walk with
/// `list`, and any directory it returns exists in the walk.
pub async fn check_list_recursive(remote: &Arc<dyn Remote>) -> Check {
    if !remote.capabilities().list_recursive {
        return Ok(());
    }
    for (f, body) in [
        ("top.txt", "1"),
        ("a/x.txt", "22"),
        ("a/b/y.txt", "333"),
        ("a/b/c/z.txt", "4444"),
        ("e/w.txt", "55555"),
    ] {
        put(remote, &p(f)?, body).await?;
    }
    let walked = walk(remote, &RemotePath::root()).await?;
    let mut got = BTreeMap::new();
    let mut s = remote
        .list_recursive(&RemotePath::root())
        .await
        .map_err(|e| format!("list_recursive: {}", show(&e)))?;
    while let Some(e) = s
        .try_next()
        .await
        .map_err(|e| format!("list_recursive: {}", show(&e)))?
    {
        got.insert(e.path.to_string(), e);
    }
    let files = |m: &BTreeMap<String, crate::Entry>| -> Vec<(String, u64)> {
        m.values()
            .filter(|e| e.is_file())
            .map(|e| (e.path.to_string(), e.size))
            .collect()
    };
    ensure!(
        files(&got) == files(&walked),
        "list_recursive files {:?} differ from a walk {:?}",
        files(&got),
        files(&walked)
    );
    for (k, e) in &got {
        if e.is_dir() {
            ensure!(
                walked.get(k).is_some_and(|w| w.is_dir()),
                "list_recursive returned directory {k} that a walk does not find"
            );
        }
    }
    // Below a sub-directory, paths are still full paths from the root.
    let mut s = remote
        .list_recursive(&p("a/b")?)
        .await
        .map_err(|e| format!("list_recursive a/b: {}", show(&e)))?;
    let mut sub = Vec::new();
    while let Some(e) = s
        .try_next()
        .await
        .map_err(|e| format!("list_recursive a/b: {}", show(&e)))?
    {
        if e.is_file() {
            sub.push(e.path.to_string());
        }
    }
    sub.sort();
    ensure!(
        sub == ["a/b/c/z.txt", "a/b/y.txt"],
        "list_recursive a/b returned files {sub:?}"
    );
    Ok(())
}

/// Every entry below `dir`, found with `list` one level at a time.
pub(crate) async fn walk(
    remote: &Arc<dyn Remote>,
    dir: &RemotePath,
) -> Result<BTreeMap<String, crate::Entry>, String> {
    let mut out = BTreeMap::new();
    let mut todo = vec![dir.clone()];
    while let Some(d) = todo.pop() {
        for (k, e) in ls_ok(remote, &d).await? {
            if e.is_dir() {
                todo.push(e.path.clone());
            }
            out.insert(k, e);
        }
    }
    Ok(out)
}
