//! Content checks: empty and multi-MiB files, ranged reads, overwrite, writes from a local
//! file, atomicity and hashes.

use std::sync::Arc;

use bytes::Bytes;
use futures::StreamExt;
use tokio::sync::oneshot;

use super::support::{
    Check, chunked, content, ensure, expect_content, expect_kind, failing_body, first_difference,
    get, keys, limit, ls, ls_ok, ls_raw, p, paused_body, put, show,
};
use crate::entry::WriteMeta;
use crate::error::ErrorKind;
use crate::hash::{HashKind, MultiHasher};
use crate::remote::Remote;

/// A 0-byte file (written from a body with no chunks, and from one empty chunk) has size 0 in
/// the write result, `stat` and the listing, and reads back empty.
pub async fn check_empty_file(remote: &Arc<dyn Remote>) -> Check {
    let a = p("zero/none")?;
    let e = remote
        .write(&a, futures::stream::empty().boxed(), WriteMeta::default())
        .await
        .map_err(|e| format!("write of an empty body: {}", show(&e)))?;
    ensure!(e.size == 0, "empty write returned size {}", e.size);
    let b = p("zero/one-empty-chunk")?;
    put(remote, &b, Bytes::new()).await?;
    for f in [&a, &b] {
        let st = remote
            .stat(f)
            .await
            .map_err(|e| format!("stat {f}: {}", show(&e)))?;
        ensure!(
            st.is_file() && st.size == 0,
            "stat {f}: {:?} size {}",
            st.kind,
            st.size
        );
        expect_content(remote, f, b"").await?;
    }
    let m = ls_ok(remote, &p("zero")?).await?;
    ensure!(m.len() == 2, "list zero: got {:?}", keys(&m));
    for e in m.values() {
        ensure!(e.size == 0, "{} listed with size {}", e.path, e.size);
    }
    Ok(())
}

/// A file of `size` bytes written in uneven chunks reads back byte for byte.
pub async fn check_large_file_with(remote: &Arc<dyn Remote>, size: usize) -> Check {
    let data = content(size, 7);
    let path = p("big/large.bin")?;
    let e = remote
        .write(
            &path,
            chunked(data.clone(), 1_000_003),
            WriteMeta {
                size: Some(size as u64),
                ..Default::default()
            },
        )
        .await
        .map_err(|e| format!("write {size} bytes: {}", show(&e)))?;
    ensure!(
        e.size == size as u64,
        "write returned size {}, want {size}",
        e.size
    );
    let st = remote
        .stat(&path)
        .await
        .map_err(|e| format!("stat: {}", show(&e)))?;
    ensure!(st.size == size as u64, "stat size {}, want {size}", st.size);
    expect_content(remote, &path, &data).await
}

/// [`check_large_file_with`] with 5 MiB + 3 bytes.
pub async fn check_large_file(remote: &Arc<dyn Remote>) -> Check {
    check_large_file_with(remote, 5 * 1024 * 1024 + 3).await
}

/// Ranged reads return exactly the bytes asked for.
///
/// Required: ranges inside the file (start, middle, end, whole), an empty range (no bytes), and
/// a range whose end lies past the end of the file (the bytes up to the end). A range that
/// starts at or after the end may give an empty body or an error, but never bytes.
pub async fn check_ranged_read(remote: &Arc<dyn Remote>) -> Check {
    let data = content(1000, 11);
    let path = p("ranged.bin")?;
    put(remote, &path, data.clone()).await?;
    for r in [
        0..10u64,
        500..600,
        990..1000,
        0..1000,
        1..999,
        999..1000,
        400..400,
    ] {
        let got = get(remote, &path, Some(r.clone()))
            .await
            .map_err(|e| format!("read {r:?}: {}", show(&e)))?;
        let want = &data[r.start as usize..r.end as usize];
        ensure!(
            got == want,
            "read {r:?}: got {} bytes{}, want {}",
            got.len(),
            first_difference(&got, want),
            want.len()
        );
    }
    let got = get(remote, &path, Some(990..2000))
        .await
        .map_err(|e| format!("read 990..2000 of a 1000-byte file: {}", show(&e)))?;
    ensure!(
        got == data[990..],
        "read 990..2000 of a 1000-byte file: got {} bytes, want the last 10",
        got.len()
    );
    for r in [1000..1010u64, 5000..6000] {
        if let Ok(got) = get(remote, &path, Some(r.clone())).await {
            ensure!(
                got.is_empty(),
                "read {r:?} past the end of a 1000-byte file returned {} bytes",
                got.len()
            );
        }
    }
    Ok(())
}

/// Overwriting replaces the whole content: small, then bigger, then smaller again.
pub async fn check_overwrite(remote: &Arc<dyn Remote>) -> Check {
    let path = p("over/write.bin")?;
    for (len, seed) in [(100usize, 1u64), (300_000, 2), (10, 3), (0, 4), (70_000, 5)] {
        let data = content(len, seed);
        put(remote, &path, data.clone()).await?;
        expect_content(remote, &path, &data).await?;
        let st = remote
            .stat(&path)
            .await
            .map_err(|e| format!("stat: {}", show(&e)))?;
        ensure!(
            st.size == len as u64,
            "after writing {len} bytes stat says {}",
            st.size
        );
    }
    let m = ls_ok(remote, &p("over")?).await?;
    ensure!(
        keys(&m) == ["over/write.bin"],
        "list over: got {:?}",
        keys(&m)
    );
    Ok(())
}

/// `write_from_file` writes a local file's bytes (and modtime, when the remote stores modtimes);
/// when the remote reports a `local_path`, the file is really there.
pub async fn check_write_from_file(remote: &Arc<dyn Remote>) -> Check {
    let dir = tempfile::tempdir().map_err(|e| format!("temp dir: {e}"))?;
    let data = content(300_001, 21);
    let src = dir.path().join("source.bin");
    std::fs::write(&src, &data).map_err(|e| format!("write {}: {e}", src.display()))?;
    let caps = remote.capabilities().clone();
    let modtime = time::OffsetDateTime::from_unix_timestamp_nanos(1_614_834_367_123_456_789)
        .map_err(|e| e.to_string())?;
    let path = p("from-file/copy.bin")?;
    let meta = WriteMeta {
        size: Some(data.len() as u64),
        modtime: caps.write_modtime.then_some(modtime),
        ..Default::default()
    };
    let e = remote
        .write_from_file(&path, &src, meta)
        .await
        .map_err(|e| format!("write_from_file: {}", show(&e)))?;
    ensure!(
        e.path == path && e.size == data.len() as u64,
        "write_from_file returned {:?} size {}",
        e.path,
        e.size
    );
    expect_content(remote, &path, &data).await?;
    if caps.write_modtime {
        let precision = caps.modtime_precision.unwrap_or_default();
        let st = remote
            .stat(&path)
            .await
            .map_err(|e| format!("stat: {}", show(&e)))?;
        let got = st
            .modtime
            .ok_or("stat after write_from_file has no modtime")?;
        ensure!(
            super::support::within(got, modtime, precision),
            "write_from_file modtime {got}, want {modtime} within {precision:?}"
        );
    }
    if let Some(local) = remote.local_path(&path) {
        let on_disk =
            std::fs::read(&local).map_err(|e| format!("read {}: {e}", local.display()))?;
        ensure!(
            on_disk == data,
            "local_path {} does not hold the written bytes",
            local.display()
        );
    }
    // A missing source is an error and leaves nothing behind.
    let missing = dir.path().join("missing.bin");
    let res = remote
        .write_from_file(&p("from-file/none.bin")?, &missing, WriteMeta::default())
        .await;
    ensure!(
        res.is_err(),
        "write_from_file of a missing local file succeeded"
    );
    let m = ls_ok(remote, &p("from-file")?).await?;
    ensure!(
        keys(&m) == ["from-file/copy.bin"],
        "list from-file: got {:?}",
        keys(&m)
    );
    Ok(())
}

/// Writes are atomic: a body that fails mid-way makes `write` fail and leaves neither the
/// target nor a temp file visible; a failing overwrite keeps the old content; and while a write
/// is in progress the target still shows its old content and listings show no extra entry.
pub async fn check_atomicity(remote: &Arc<dyn Remote>) -> Check {
    // 1. A new file whose body fails after several MiB.
    let dir = p("atomic")?;
    let target = dir.join("new.bin").map_err(|e| show(&e))?;
    let res = remote
        .write(&target, failing_body(9, 1024 * 1024), WriteMeta::default())
        .await;
    ensure!(res.is_err(), "a write whose body failed returned Ok");
    expect_kind(
        "stat after a failed write",
        remote.stat(&target).await,
        ErrorKind::NotFound,
    )?;
    match ls_raw(remote, &dir).await {
        Ok(m) => ensure!(
            m.is_empty(),
            "after a failed write of a new file the directory lists {:?}",
            keys(&m)
        ),
        Err(e) if e.kind() == ErrorKind::NotFound => {}
        Err(e) => return Err(format!("list after a failed write: {}", show(&e))),
    }

    // 2. A failing overwrite keeps the old content.
    let keep = dir.join("keep.txt").map_err(|e| show(&e))?;
    let old = content(5000, 31);
    put(remote, &keep, old.clone()).await?;
    for chunks in [0usize, 1, 3] {
        let res = remote
            .write(
                &keep,
                failing_body(chunks, 256 * 1024),
                WriteMeta::default(),
            )
            .await;
        ensure!(
            res.is_err(),
            "an overwrite whose body failed after {chunks} chunks returned Ok"
        );
        expect_content(remote, &keep, &old).await?;
    }
    let m = ls_raw(remote, &dir)
        .await
        .map_err(|e| format!("list {dir:?}: {}", show(&e)))?;
    ensure!(
        keys(&m) == ["atomic/keep.txt"],
        "after failed overwrites the directory lists {:?}",
        keys(&m)
    );

    // 3. During a write the old content stays visible.
    let first = content(256 * 1024, 32);
    let second = content(100_000, 33);
    let (started_tx, started_rx) = oneshot::channel();
    let (gate_tx, gate_rx) = oneshot::channel();
    let body = paused_body(first.clone(), second.clone(), started_tx, gate_rx);
    let write = remote.write(&keep, body, WriteMeta::default());
    let probe = async {
        if started_rx.await.is_err() {
            return Ok(()); // the write ended early; its result is checked below
        }
        let res = async {
            let st = limit("stat during a write", 30, remote.stat(&keep))
                .await?
                .map_err(|e| format!("stat during a write: {}", show(&e)))?;
            ensure!(
                st.size == old.len() as u64,
                "during a write stat shows size {}, want the old {}",
                st.size,
                old.len()
            );
            let got = limit("read during a write", 30, get(remote, &keep, None))
                .await?
                .map_err(|e| format!("read during a write: {}", show(&e)))?;
            ensure!(
                got == old,
                "during a write a read shows {} bytes, not the old content",
                got.len()
            );
            let m = limit("list during a write", 30, ls(remote, &dir))
                .await?
                .map_err(|e| format!("list during a write: {}", show(&e)))?;
            ensure!(
                keys(&m) == ["atomic/keep.txt"],
                "during a write the directory lists {:?}",
                keys(&m)
            );
            Ok(())
        }
        .await;
        let _ = gate_tx.send(());
        res
    };
    let (written, probed) = futures::join!(write, probe);
    written.map_err(|e| format!("paused write: {}", show(&e)))?;
    probed?;
    let mut new = first.to_vec();
    new.extend_from_slice(&second);
    expect_content(remote, &keep, &new).await
}

/// Every hash kind in `capabilities().hashes` matches [`MultiHasher`] over the content, from
/// `hash()` and from `stat`/listing entries when they carry it.
pub async fn check_hashes(remote: &Arc<dyn Remote>) -> Check {
    let kinds = remote.capabilities().hashes.clone();
    if kinds.is_empty() {
        return Ok(());
    }
    for (name, data) in [
        ("empty", Bytes::new()),
        ("small", Bytes::from_static(b"hello world\n")),
        ("blocks", content(4 * 1024 * 1024 + 5, 41)),
    ] {
        let path = p("hashes")?.join(name).map_err(|e| show(&e))?;
        put(remote, &path, data.clone()).await?;
        let mut h = MultiHasher::new(&kinds);
        h.update(&data);
        let want = h.finish();
        let st = remote
            .stat(&path)
            .await
            .map_err(|e| format!("stat {path}: {}", show(&e)))?;
        let listed = ls_ok(remote, &p("hashes")?).await?;
        let le = listed
            .get(path.as_str())
            .ok_or_else(|| format!("{path} missing from its listing"))?;
        for kind in &kinds {
            let kind: HashKind = *kind;
            let w = want.get(kind).unwrap_or_default();
            let got = remote
                .hash(&path, kind)
                .await
                .map_err(|e| format!("hash {kind} of {path}: {}", show(&e)))?;
            ensure!(got == w, "hash {kind} of {path}: got {got}, want {w}");
            for (src, e) in [("stat", &st), ("list", le)] {
                if let Some(v) = e.hashes.get(kind) {
                    ensure!(v == w, "{src} of {path} carries {kind} {v}, want {w}");
                }
            }
        }
    }
    Ok(())
}

/// Writing with a [`WriteMeta::size`] that does not match the body must not leave a file of
/// the wrong size under the target name (an error is expected; a backend that ignores the
/// size must at least store exactly what the body held).
pub async fn check_size_mismatch(remote: &Arc<dyn Remote>) -> Check {
    let path = p("mismatch.bin")?;
    let data = content(1000, 51);
    let res = remote
        .write(
            &path,
            chunked(data.clone(), 300),
            WriteMeta {
                size: Some(2000),
                ..Default::default()
            },
        )
        .await;
    match res {
        Err(_) => {
            if let Ok(st) = remote.stat(&path).await {
                return Err(format!(
                    "a write that failed on a size mismatch left {path} of {} bytes",
                    st.size
                ));
            }
        }
        Ok(_) => expect_content(remote, &path, &data).await?,
    }
    Ok(())
}
