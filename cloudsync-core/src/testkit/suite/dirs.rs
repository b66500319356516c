//! Directory and error-kind checks: mkdir, parents created by writes, removals, `NotFound`
//! and `Conflict` kinds, purge.

use std::sync::Arc;

use super::listing::walk;
use super::support::{Check, ensure, expect_content, expect_kind, keys, ls, ls_ok, p, put, show};
use crate::error::ErrorKind;
use crate::path::RemotePath;
use crate::remote::Remote;

/// `mkdir` creates nested parents, and succeeds on a directory that already exists.
pub async fn check_mkdir(remote: &Arc<dyn Remote>) -> Check {
    let deep = p("a/b/c")?;
    for d in [&deep, &deep, &p("a")?, &p("a/b")?] {
        remote
            .mkdir(d)
            .await
            .map_err(|e| format!("mkdir {d}: {}", show(&e)))?;
    }
    if remote.capabilities().dirs {
        for (d, want) in [("", "a"), ("a", "a/b"), ("a/b", "a/b/c")] {
            let m = ls_ok(remote, &p(d)?).await?;
            ensure!(
                keys(&m) == [want] && m[want].is_dir(),
                "list {d:?} after mkdir a/b/c: got {:?}, want directory {want}",
                keys(&m)
            );
        }
        let st = remote
            .stat(&deep)
            .await
            .map_err(|e| format!("stat a/b/c: {}", show(&e)))?;
        ensure!(
            st.is_dir() && st.path == deep,
            "stat a/b/c: {:?} {:?}",
            st.path,
            st.kind
        );
        let m = ls_ok(remote, &deep).await?;
        ensure!(m.is_empty(), "new directory lists {:?}", keys(&m));
    }
    // mkdir where a directory already holds files.
    put(remote, &p("full/f.txt")?, "f").await?;
    remote
        .mkdir(&p("full")?)
        .await
        .map_err(|e| format!("mkdir of an existing non-empty dir: {}", show(&e)))?;
    expect_content(remote, &p("full/f.txt")?, b"f").await
}

/// A write to a path whose parents do not exist creates them.
pub async fn check_write_creates_parents(remote: &Arc<dyn Remote>) -> Check {
    let path = p("x/y/z/deep.txt")?;
    put(remote, &path, "deep").await?;
    expect_content(remote, &path, b"deep").await?;
    let m = ls_ok(remote, &p("x/y")?).await?;
    ensure!(
        keys(&m) == ["x/y/z"] && m["x/y/z"].is_dir(),
        "list x/y: got {:?}, want directory x/y/z",
        keys(&m)
    );
    let st = remote
        .stat(&p("x")?)
        .await
        .map_err(|e| format!("stat x: {}", show(&e)))?;
    ensure!(st.is_dir(), "stat x: {:?}", st.kind);
    Ok(())
}

/// `remove_file` removes a file (and only it); `remove_dir` removes an empty directory.
pub async fn check_remove(remote: &Arc<dyn Remote>) -> Check {
    let f = p("rm/gone.txt")?;
    let stay = p("rm/stay.txt")?;
    put(remote, &f, "bye").await?;
    put(remote, &stay, "hi").await?;
    remote
        .remove_file(&f)
        .await
        .map_err(|e| format!("remove_file: {}", show(&e)))?;
    expect_kind(
        "stat of a removed file",
        remote.stat(&f).await,
        ErrorKind::NotFound,
    )?;
    expect_kind(
        "read of a removed file",
        super::support::get(remote, &f, None).await,
        ErrorKind::NotFound,
    )?;
    let m = ls_ok(remote, &p("rm")?).await?;
    ensure!(
        keys(&m) == ["rm/stay.txt"],
        "list rm after remove_file: {:?}",
        keys(&m)
    );
    if remote.capabilities().dirs {
        let d = p("rm/emptydir")?;
        remote
            .mkdir(&d)
            .await
            .map_err(|e| format!("mkdir: {}", show(&e)))?;
        remote
            .remove_dir(&d)
            .await
            .map_err(|e| format!("remove_dir of an empty dir: {}", show(&e)))?;
        expect_kind(
            "stat of a removed dir",
            remote.stat(&d).await,
            ErrorKind::NotFound,
        )?;
        let m = ls_ok(remote, &p("rm")?).await?;
        ensure!(
            keys(&m) == ["rm/stay.txt"],
            "list rm after remove_dir: {:?}",
            keys(&m)
        );
    }
    Ok(())
}

/// `remove_dir` of a directory that still holds a file fails with `Conflict` and removes
/// nothing (remotes with directories).
pub async fn check_remove_dir_not_empty(remote: &Arc<dyn Remote>) -> Check {
    if !remote.capabilities().dirs {
        return Ok(());
    }
    let f = p("full/inside.txt")?;
    put(remote, &f, "keep me").await?;
    expect_kind(
        "remove_dir of a non-empty dir",
        remote.remove_dir(&p("full")?).await,
        ErrorKind::Conflict,
    )?;
    expect_content(remote, &f, b"keep me").await
}

/// Missing paths give `NotFound` from `stat` and `read` (from `read` or its first item).
pub async fn check_not_found(remote: &Arc<dyn Remote>) -> Check {
    put(remote, &p("exists/here.txt")?, "x").await?;
    for s in ["nope.txt", "exists/nope.txt", "no/such/dir/file.txt"] {
        let path = p(s)?;
        expect_kind(
            &format!("stat {s}"),
            remote.stat(&path).await,
            ErrorKind::NotFound,
        )?;
        expect_kind(
            &format!("read {s}"),
            super::support::get(remote, &path, None).await,
            ErrorKind::NotFound,
        )?;
    }
    Ok(())
}

/// When declared, `purge` removes a whole tree and nothing else.
pub async fn check_purge(remote: &Arc<dyn Remote>) -> Check {
    if !remote.capabilities().purge {
        return Ok(());
    }
    for f in [
        "tree/a.txt",
        "tree/sub/b.txt",
        "tree/sub/deeper/c.txt",
        "other/d.txt",
    ] {
        put(remote, &p(f)?, f).await?;
    }
    if remote.capabilities().dirs {
        remote
            .mkdir(&p("tree/empty")?)
            .await
            .map_err(|e| format!("mkdir: {}", show(&e)))?;
    }
    remote
        .purge(&p("tree")?)
        .await
        .map_err(|e| format!("purge: {}", show(&e)))?;
    expect_kind(
        "stat of a purged dir",
        remote.stat(&p("tree")?).await,
        ErrorKind::NotFound,
    )?;
    match ls(remote, &p("tree")?).await {
        Err(e) if e.kind() == ErrorKind::NotFound => {}
        Ok(m) => return Err(format!("list of a purged dir: {:?}", keys(&m))),
        Err(e) => return Err(format!("list of a purged dir: {}", show(&e))),
    }
    let left = walk(remote, &RemotePath::root()).await?;
    let left: Vec<&str> = left.keys().map(String::as_str).collect();
    ensure!(
        left == ["other", "other/d.txt"],
        "after purge the tree holds {left:?}"
    );
    Ok(())
}
