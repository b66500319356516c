//! Modtimes and the optional operations: each works when declared in [`Capabilities`] and
//! returns `Unsupported` (changing nothing) when not.
//!
//! [`Capabilities`]: crate::Capabilities

use std::sync::Arc;

use time::OffsetDateTime;

use super::support::{
    Check, content, ensure, expect_content, expect_kind, keys, ls_ok, p, put, put_meta, show,
    within,
};
use crate::entry::WriteMeta;
use crate::error::ErrorKind;
use crate::path::RemotePath;
use crate::remote::Remote;

/// 2021-03-04T05:06:07.123456789Z: has sub-second digits at every precision.
fn modtime_a() -> Result<OffsetDateTime, String> {
    OffsetDateTime::from_unix_timestamp_nanos(1_614_834_367_123_456_789).map_err(|e| e.to_string())
}

/// 2009-02-13T23:31:30.987654321Z.
fn modtime_b() -> Result<OffsetDateTime, String> {
    OffsetDateTime::from_unix_timestamp_nanos(1_234_567_890_987_654_321).map_err(|e| e.to_string())
}

/// Checks that `stat` and the parent's listing show `want` for `path` within `precision`.
async fn expect_modtime(
    remote: &Arc<dyn Remote>,
    path: &RemotePath,
    want: OffsetDateTime,
    what: &str,
) -> Check {
    let precision = remote
        .capabilities()
        .modtime_precision
        .ok_or_else(|| format!("{what}: declared but modtime_precision is None"))?;
    let st = remote
        .stat(path)
        .await
        .map_err(|e| format!("stat {path}: {}", show(&e)))?;
    let got = st
        .modtime
        .ok_or_else(|| format!("{what}: stat {path} has no modtime"))?;
    ensure!(
        within(got, want, precision),
        "{what}: stat {path} shows {got}, want {want} within {precision:?}"
    );
    let parent = path.parent().unwrap_or_default();
    let m = ls_ok(remote, &parent).await?;
    let e = m
        .get(path.as_str())
        .ok_or_else(|| format!("{path} missing from its listing"))?;
    let got = e
        .modtime
        .ok_or_else(|| format!("{what}: listing of {path} has no modtime"))?;
    ensure!(
        within(got, want, precision),
        "{what}: listing shows {got} for {path}, want {want} within {precision:?}"
    );
    Ok(())
}

/// With `write_modtime`, a write stores [`WriteMeta::modtime`] (seen by `stat`, the listing and
/// the returned entry within `modtime_precision`); with `set_modtime`, changing it works.
pub async fn check_modtime(remote: &Arc<dyn Remote>) -> Check {
    let caps = remote.capabilities().clone();
    let path = p("times/file.txt")?;
    let a = modtime_a()?;
    let e = put_meta(
        remote,
        &path,
        content(1234, 61),
        WriteMeta {
            modtime: Some(a),
            ..Default::default()
        },
    )
    .await?;
    if caps.write_modtime {
        let precision = caps
            .modtime_precision
            .ok_or("write_modtime declared but modtime_precision is None")?;
        if let Some(got) = e.modtime {
            ensure!(
                within(got, a, precision),
                "write returned modtime {got}, want {a} within {precision:?}"
            );
        }
        expect_modtime(remote, &path, a, "write with modtime").await?;
        // An overwrite stores the new modtime.
        let b = modtime_b()?;
        put_meta(
            remote,
            &path,
            content(10, 62),
            WriteMeta {
                modtime: Some(b),
                ..Default::default()
            },
        )
        .await?;
        expect_modtime(remote, &path, b, "overwrite with modtime").await?;
    }
    if caps.set_modtime {
        let f = p("times/set.txt")?;
        put(remote, &f, "set me").await?;
        let b = modtime_b()?;
        remote
            .set_modtime(&f, b)
            .await
            .map_err(|e| format!("set_modtime: {}", show(&e)))?;
        expect_modtime(remote, &f, b, "set_modtime").await?;
        expect_content(remote, &f, b"set me").await?;
        expect_kind(
            "set_modtime of a missing file",
            remote.set_modtime(&p("times/missing")?, b).await,
            ErrorKind::NotFound,
        )?;
    }
    Ok(())
}

/// When declared, `copy` duplicates a file (content, size; modtime when modtimes are kept),
/// creates missing parents and replaces an existing target, leaving the source intact.
pub async fn check_copy(remote: &Arc<dyn Remote>) -> Check {
    let caps = remote.capabilities().clone();
    if !caps.copy {
        return Ok(());
    }
    let src = p("copy/src.bin")?;
    let data = content(200_000, 71);
    let a = modtime_a()?;
    put_meta(
        remote,
        &src,
        data.clone(),
        WriteMeta {
            modtime: caps.write_modtime.then_some(a),
            ..Default::default()
        },
    )
    .await?;
    for dst in ["copy/dst.bin", "copy/new/parent/dst.bin"] {
        let dst = p(dst)?;
        let e = remote
            .copy(&src, &dst)
            .await
            .map_err(|e| format!("copy to {dst}: {}", show(&e)))?;
        ensure!(
            e.path == dst && e.size == data.len() as u64,
            "copy returned {:?} size {}",
            e.path,
            e.size
        );
        expect_content(remote, &dst, &data).await?;
    }
    expect_content(remote, &src, &data).await?;
    if caps.write_modtime {
        expect_modtime(remote, &p("copy/dst.bin")?, a, "copy keeps the modtime").await?;
    }
    // Over an existing file.
    let other = p("copy/other.txt")?;
    put(remote, &other, "old").await?;
    remote
        .copy(&src, &other)
        .await
        .map_err(|e| format!("copy over an existing file: {}", show(&e)))?;
    expect_content(remote, &other, &data).await?;
    expect_kind(
        "copy of a missing file",
        remote.copy(&p("copy/missing")?, &p("copy/x")?).await,
        ErrorKind::NotFound,
    )?;
    Ok(())
}

/// When declared, `rename` moves a file (creating the target's parents, replacing an existing
/// target); the source is gone afterwards.
pub async fn check_rename(remote: &Arc<dyn Remote>) -> Check {
    if !remote.capabilities().rename {
        return Ok(());
    }
    let data = content(50_000, 81);
    let a = p("mv/a.bin")?;
    put(remote, &a, data.clone()).await?;
    let b = p("mv/deeper/new/b.bin")?;
    let e = remote
        .rename(&a, &b)
        .await
        .map_err(|e| format!("rename: {}", show(&e)))?;
    ensure!(
        e.path == b && e.size == data.len() as u64,
        "rename returned {:?} size {}",
        e.path,
        e.size
    );
    expect_kind(
        "stat of a renamed source",
        remote.stat(&a).await,
        ErrorKind::NotFound,
    )?;
    expect_content(remote, &b, &data).await?;
    let c = p("mv/c.txt")?;
    put(remote, &c, "to be replaced").await?;
    remote
        .rename(&b, &c)
        .await
        .map_err(|e| format!("rename over an existing file: {}", show(&e)))?;
    expect_content(remote, &c, &data).await?;
    expect_kind(
        "stat of a renamed source",
        remote.stat(&b).await,
        ErrorKind::NotFound,
    )?;
    let m = ls_ok(remote, &p("mv")?).await?;
    ensure!(
        !m.contains_key("mv/a.bin") && m.contains_key("mv/c.txt"),
        "list mv after renames: {:?}",
        keys(&m)
    );
    expect_kind(
        "rename of a missing file",
        remote.rename(&p("mv/missing")?, &p("mv/x")?).await,
        ErrorKind::NotFound,
    )?;
    Ok(())
}

/// Optional operations that are not declared return `Unsupported` and change nothing;
/// declared `cleanup` and `usage` succeed.
pub async fn check_optional_ops(remote: &Arc<dyn Remote>) -> Check {
    let caps = remote.capabilities().clone();
    let f = p("opt/file.txt")?;
    let g = p("opt/target.txt")?;
    put(remote, &f, "optional").await?;
    let unsupported = |what: &str, res: Result<(), crate::Error>| match res {
        Err(e) if e.kind() == ErrorKind::Unsupported => Ok(()),
        Err(e) => Err(format!(
            "{what} is not declared: want an Unsupported error, got {:?}: {}",
            e.kind(),
            show(&e)
        )),
        Ok(()) => Err(format!(
            "{what} is not declared but succeeded (declare it in Capabilities)"
        )),
    };
    if !caps.copy {
        unsupported("copy", remote.copy(&f, &g).await.map(drop))?;
    }
    if !caps.rename {
        unsupported("rename", remote.rename(&f, &g).await.map(drop))?;
    }
    if !caps.set_modtime {
        unsupported("set_modtime", remote.set_modtime(&f, modtime_a()?).await)?;
    }
    if !caps.purge {
        unsupported("purge", remote.purge(&p("opt")?).await)?;
    }
    if !caps.list_recursive {
        unsupported(
            "list_recursive",
            remote.list_recursive(&RemotePath::root()).await.map(drop),
        )?;
    }
    if caps.cleanup {
        remote
            .cleanup()
            .await
            .map_err(|e| format!("cleanup is declared but failed: {}", show(&e)))?;
    } else {
        unsupported("cleanup", remote.cleanup().await)?;
    }
    if caps.usage {
        remote
            .usage()
            .await
            .map_err(|e| format!("usage is declared but failed: {}", show(&e)))?;
    } else {
        unsupported("usage", remote.usage().await.map(drop))?;
    }
    expect_content(remote, &f, b"optional").await?;
    expect_kind(
        "stat of the target of the undeclared copy/rename",
        remote.stat(&g).await,
        ErrorKind::NotFound,
    )?;
    Ok(())
}
