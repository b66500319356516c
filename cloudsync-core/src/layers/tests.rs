//! The layers against [`MemFs`] through [`Chaos`], on tokio's paused clock.

use std::sync::Arc;
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use tokio::time::Instant;

use super::*;
use crate::error::ErrorKind;
use crate::path::RemotePath;
use crate::remote::Remote;
use crate::retry::RetryPolicy;
use crate::testkit::{Chaos, Fault, FaultPlan, MemFs, Op, Rule, put_text, text_tree};

fn p(s: &str) -> RemotePath {
    RemotePath::new(s).unwrap()
}

fn rule(op: Op, path: &str, fault: Fault) -> Rule {
    Rule {
        op,
        path: Some(p(path)),
        skip: 0,
        times: 1,
        fault,
    }
}

/// A MemFs holding `d/x` and `d/y`, behind `rules`, behind [`Retrying`].
async fn setup(rules: Vec<Rule>) -> (Arc<dyn Remote>, Chaos, Arc<dyn Remote>) {
    let mem: Arc<dyn Remote> = Arc::new(MemFs::new("memfs://a"));
    put_text(&mem, "d/x", "hello", None).await;
    put_text(&mem, "d/y", "world!", None).await;
    let chaos = Chaos::new(mem.clone(), FaultPlan { rules });
    let policy = RetryPolicy {
        max_retries: 5,
        base: Duration::from_millis(1),
        max_backoff: Duration::from_millis(10),
        ..Default::default()
    };
    let retrying = Retrying::wrap(Arc::new(chaos.clone()), policy);
    (retrying, chaos, mem)
}

const WAIT: Duration = Duration::from_secs(30);

fn slow_down() -> Fault {
    Fault::RateLimited { retry_after: WAIT }
}

/// 429/503 with Retry-After on list, stat, remove and read: each call succeeds after the wait
/// the server asked for (and not much longer).
#[tokio::test(start_paused = true)]
async fn rate_limited_calls_are_retried_after_the_wait() {
    let (r, chaos, mem) = setup(vec![
        rule(Op::List, "d", slow_down()),
        rule(Op::Stat, "d/x", slow_down()),
        rule(Op::Read, "d/x", slow_down()),
        rule(Op::RemoveFile, "d/y", slow_down()),
    ])
    .await;
    let waited = |t0: Instant| {
        let e = t0.elapsed();
        assert!(
            e >= WAIT && e < WAIT + Duration::from_secs(1),
            "waited {e:?}"
        );
    };

    let t0 = Instant::now();
    let names: Vec<String> = r
        .list(&p("d"))
        .await
        .unwrap()
        .map_ok(|e| e.name().to_owned())
        .try_collect()
        .await
        .unwrap();
    waited(t0);
    assert_eq!(names.len(), 2);

    let t0 = Instant::now();
    assert_eq!(r.stat(&p("d/x")).await.unwrap().size, 5);
    waited(t0);

    let t0 = Instant::now();
    let body = crate::collect_bytes(r.read(&p("d/x"), None).await.unwrap()).await;
    assert_eq!(&body.unwrap()[..], b"hello");
    waited(t0);

    let t0 = Instant::now();
    r.remove_file(&p("d/y")).await.unwrap();
    waited(t0);
    assert!(!text_tree(&mem).await.contains_key("d/y"));
    assert_eq!(chaos.fired().len(), 4, "{:?}", chaos.fired());
}

/// A Retry-After beyond the cap is waited on for the cap only.
#[tokio::test(start_paused = true)]
async fn retry_after_is_capped() {
    let huge = Fault::RateLimited {
        retry_after: Duration::from_secs(86_400),
    };
    let (r, _chaos, _) = setup(vec![rule(Op::Stat, "d/x", huge)]).await;
    let t0 = Instant::now();
    r.stat(&p("d/x")).await.unwrap();
    let e = t0.elapsed();
    assert!(
        e >= MAX_RETRY_AFTER && e < MAX_RETRY_AFTER + Duration::from_secs(1),
        "{e:?}"
    );
}

/// A permanent error is returned at once, after one call.
#[tokio::test(start_paused = true)]
async fn permanent_errors_are_not_retried() {
    let (r, chaos, _) = setup(vec![
        rule(Op::Stat, "d/x", Fault::Fail(ErrorKind::PermissionDenied)),
        rule(Op::Mkdir, "e", Fault::Fail(ErrorKind::Io)),
    ])
    .await;
    let t0 = Instant::now();
    let e = r.stat(&p("d/x")).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::PermissionDenied);
    let e = r.mkdir(&p("e")).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Io);
    assert_eq!(t0.elapsed(), Duration::ZERO, "no backoff either");
    assert_eq!(chaos.fired().len(), 2);
    // Each rule fired once: the next calls go through, so the failures were not retried away.
    r.stat(&p("d/x")).await.unwrap();
}

/// A rename whose response was lost took effect: it is not repeated (a second call would hit
/// the `PermissionDenied` rule) and reports success with the target's entry.
#[tokio::test(start_paused = true)]
async fn lost_rename_is_not_repeated_and_succeeds() {
    let (r, chaos, mem) = setup(vec![
        rule(Op::Rename, "d/z", Fault::LostResponse(ErrorKind::Transient)),
        rule(Op::Rename, "d/z", Fault::Fail(ErrorKind::PermissionDenied)),
    ])
    .await;
    let e = r.rename(&p("d/x"), &p("d/z")).await.unwrap();
    assert_eq!((e.path.as_str(), e.size), ("d/z", 5));
    assert_eq!(chaos.fired().len(), 1, "{:?}", chaos.fired());
    let tree = text_tree(&mem).await;
    assert_eq!(tree.get("d/z").map(String::as_str), Some("hello"));
    assert!(!tree.contains_key("d/x"));
}

/// A rename that failed before taking effect (the source is still there) is tried again.
#[tokio::test(start_paused = true)]
async fn failed_rename_without_effect_is_tried_again() {
    let (r, chaos, mem) = setup(vec![rule(
        Op::Rename,
        "d/z",
        Fault::Fail(ErrorKind::Transient),
    )])
    .await;
    r.rename(&p("d/x"), &p("d/z")).await.unwrap();
    assert_eq!(chaos.fired().len(), 1);
    assert!(text_tree(&mem).await.contains_key("d/z"));
}

/// After a lost rename response, a source gone without the target in sight is not taken for
/// success: the temporary error is reported (and the move not repeated).
#[tokio::test(start_paused = true)]
async fn rename_with_unclear_outcome_reports_the_error() {
    let (r, chaos, _) = setup(vec![
        rule(Op::Rename, "d/z", Fault::LostResponse(ErrorKind::Transient)),
        rule(Op::Stat, "d/z", Fault::Fail(ErrorKind::NotFound)),
    ])
    .await;
    let e = r.rename(&p("d/x"), &p("d/z")).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Transient);
    assert_eq!(chaos.fired().len(), 2, "{:?}", chaos.fired());
}

/// A removal whose response was lost finds "not found" on the retry: done.
#[tokio::test(start_paused = true)]
async fn lost_remove_counts_as_done() {
    let (r, chaos, mem) = setup(vec![rule(
        Op::RemoveFile,
        "d/x",
        Fault::LostResponse(ErrorKind::Transient),
    )])
    .await;
    r.remove_file(&p("d/x")).await.unwrap();
    assert_eq!(chaos.fired().len(), 1);
    assert!(!text_tree(&mem).await.contains_key("d/x"));
    // A first attempt that finds nothing is still an error.
    let e = r.remove_file(&p("d/x")).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound);
}

/// A server-side copy whose response was lost is not repeated (a second call would fail).
#[tokio::test(start_paused = true)]
async fn lost_copy_is_not_repeated() {
    let (r, chaos, mem) = setup(vec![
        rule(Op::Copy, "d/c", Fault::LostResponse(ErrorKind::Transient)),
        rule(Op::Copy, "d/c", Fault::Fail(ErrorKind::PermissionDenied)),
    ])
    .await;
    let e = r.copy(&p("d/y"), &p("d/c")).await.unwrap();
    assert_eq!(e.size, 6);
    assert_eq!(chaos.fired().len(), 1);
    assert_eq!(text_tree(&mem).await["d/c"], "world!");
}

/// Without hashes, a target of the source's size is no proof that a failed copy happened: the
/// copy is made again (the old target had other content of the same size).
#[tokio::test(start_paused = true)]
async fn failed_copy_over_a_same_size_file_without_hashes_is_made_again() {
    let caps = crate::Capabilities {
        hashes: Vec::new(),
        ..MemFs::new("x").capabilities().clone()
    };
    let mem: Arc<dyn Remote> = Arc::new(MemFs::new("memfs://b").with_capabilities(caps));
    put_text(&mem, "d/y", "world!", None).await;
    put_text(&mem, "d/c", "OLD!!!", None).await;
    let chaos = Chaos::new(
        mem.clone(),
        FaultPlan {
            rules: vec![rule(Op::Copy, "d/c", Fault::Fail(ErrorKind::Transient))],
        },
    );
    let policy = RetryPolicy {
        max_retries: 5,
        base: Duration::from_millis(1),
        max_backoff: Duration::from_millis(10),
        ..Default::default()
    };
    let r = Retrying::wrap(Arc::new(chaos.clone()), policy);
    r.copy(&p("d/y"), &p("d/c")).await.unwrap();
    assert_eq!(chaos.fired().len(), 1);
    assert_eq!(text_tree(&mem).await["d/c"], "world!", "the copy was made");
}

/// A listing is started again only while it has yielded nothing.
#[tokio::test(start_paused = true)]
async fn listing_restarts_only_before_the_first_entry() {
    let breaks = |after| Fault::ListBreaks {
        after,
        kind: ErrorKind::Transient,
    };
    let (r, _chaos, _) = setup(vec![rule(Op::List, "d", breaks(0))]).await;
    let all: Vec<_> = r.list(&p("d")).await.unwrap().collect().await;
    assert!(all.iter().all(Result::is_ok) && all.len() == 2, "{all:?}");

    let (r, _chaos, _) = setup(vec![rule(Op::List, "d", breaks(1))]).await;
    let all: Vec<_> = r.list(&p("d")).await.unwrap().collect().await;
    assert_eq!(all.len(), 2, "one entry, then the error: {all:?}");
    assert!(all[0].is_ok() && all[1].is_err());
}

/// Writes are never repeated: the body stream cannot be replayed.
#[tokio::test(start_paused = true)]
async fn writes_are_not_retried() {
    let (r, chaos, _) = setup(vec![rule(
        Op::Write,
        "d/w",
        Fault::Fail(ErrorKind::Transient),
    )])
    .await;
    let e = r
        .write(&p("d/w"), crate::bytes_stream("abc"), Default::default())
        .await
        .unwrap_err();
    assert!(e.is_retryable());
    assert_eq!(chaos.fired().len(), 1);
}

/// `--tpslimit 2`: after the first call, one call every half second.
#[tokio::test(start_paused = true)]
async fn throttle_spaces_calls() {
    let mem: Arc<dyn Remote> = Arc::new(MemFs::new("memfs://t"));
    put_text(&mem, "x", "1", None).await;
    let r = Throttled::new(2.0, 1).unwrap().wrap(mem);
    let t0 = Instant::now();
    for _ in 0..5 {
        r.stat(&p("x")).await.unwrap();
    }
    assert_eq!(t0.elapsed(), Duration::from_secs(2));
}

/// `--tpslimit-burst 3`: three calls at once after a quiet spell, then the rate; two remotes
/// wrapped by one `Throttled` share it.
#[tokio::test(start_paused = true)]
async fn throttle_burst_is_shared() {
    let a: Arc<dyn Remote> = Arc::new(MemFs::new("memfs://a"));
    let b: Arc<dyn Remote> = Arc::new(MemFs::new("memfs://b"));
    put_text(&a, "x", "1", None).await;
    put_text(&b, "x", "1", None).await;
    let t = Throttled::new(1.0, 3).unwrap();
    let (a, b) = (t.wrap(a), t.wrap(b));
    let t0 = Instant::now();
    for r in [&a, &b, &a] {
        r.stat(&p("x")).await.unwrap();
    }
    assert_eq!(t0.elapsed(), Duration::ZERO, "the burst");
    b.stat(&p("x")).await.unwrap();
    assert_eq!(t0.elapsed(), Duration::from_secs(1));
    tokio::time::sleep(Duration::from_secs(10)).await;
    let t1 = Instant::now();
    for r in [&a, &b, &a] {
        r.stat(&p("x")).await.unwrap();
    }
    assert_eq!(
        t1.elapsed(),
        Duration::ZERO,
        "refilled, up to the burst only"
    );
    a.stat(&p("x")).await.unwrap();
    assert_eq!(t1.elapsed(), Duration::from_secs(1));
    assert!(Throttled::new(f64::NAN, 1).is_err() && Throttled::new(-1.0, 1).is_err());
}

/// Two slots: two open downloads hold them, a third call waits until one is dropped.
#[tokio::test(start_paused = true)]
async fn limit_bounds_calls_in_flight() {
    let mem: Arc<dyn Remote> = Arc::new(MemFs::new("memfs://l"));
    put_text(&mem, "x", "1", None).await;
    let r = Limited::wrap(mem, 2);
    let first = r.read(&p("x"), None).await.unwrap();
    let second = r.read(&p("x"), None).await.unwrap();
    let waited = tokio::time::timeout(Duration::from_secs(60), r.stat(&p("x"))).await;
    assert!(waited.is_err(), "a third call waits for a slot");
    drop(first);
    r.stat(&p("x")).await.unwrap();
    // A stream read to its end gives its slot back before it is dropped.
    let mut second = second;
    while second.next().await.is_some() {}
    let _third = r.read(&p("x"), None).await.unwrap();
    r.stat(&p("x")).await.unwrap();
    drop(second);
}

/// A remote whose every call fails with an error that names nothing but its kind; a listing
/// yields one entry then such an error, a download one chunk then such an error.
#[derive(Debug)]
struct Bare {
    name: &'static str,
    caps: crate::Capabilities,
}

impl Bare {
    fn remote(name: &'static str) -> Arc<dyn Remote> {
        Arc::new(Bare {
            name,
            caps: MemFs::new("x").capabilities().clone(),
        })
    }
}

fn boom() -> crate::Error {
    crate::Error::new(ErrorKind::Transient, "boom")
}

#[async_trait::async_trait]
impl Remote for Bare {
    fn describe(&self) -> String {
        self.name.to_owned()
    }
    fn capabilities(&self) -> &crate::Capabilities {
        &self.caps
    }
    async fn list(&self, dir: &RemotePath) -> crate::Result<crate::EntryStream> {
        if dir.as_str() == "fails" {
            return Err(boom());
        }
        if dir.as_str() == "precise" {
            // A backend that names the step and the entry it could not read.
            let e = boom()
                .with_operation("connect")
                .with_path("precise/bad name");
            return Ok(futures::stream::iter([Err(e)]).boxed());
        }
        let first = crate::Entry::file(dir.join("f")?, 1);
        Ok(futures::stream::iter([Ok(first), Err(boom())]).boxed())
    }
    async fn list_recursive(&self, dir: &RemotePath) -> crate::Result<crate::EntryStream> {
        self.list(dir).await
    }
    async fn stat(&self, _: &RemotePath) -> crate::Result<crate::Entry> {
        Err(boom())
    }
    async fn read(
        &self,
        path: &RemotePath,
        _: Option<std::ops::Range<u64>>,
    ) -> crate::Result<crate::ByteStream> {
        if path.as_str() == "fails" {
            return Err(boom());
        }
        Ok(futures::stream::iter([Ok(bytes::Bytes::from_static(b"ab")), Err(boom())]).boxed())
    }
    async fn write(
        &self,
        _: &RemotePath,
        _: crate::ByteStream,
        _: crate::WriteMeta,
    ) -> crate::Result<crate::Entry> {
        Err(boom())
    }
    async fn write_from_file(
        &self,
        _: &RemotePath,
        _: &std::path::Path,
        _: crate::WriteMeta,
    ) -> crate::Result<crate::Entry> {
        Err(boom())
    }
    async fn mkdir(&self, _: &RemotePath) -> crate::Result<()> {
        Err(boom())
    }
    async fn remove_file(&self, _: &RemotePath) -> crate::Result<()> {
        Err(boom())
    }
    async fn remove_dir(&self, _: &RemotePath) -> crate::Result<()> {
        Err(boom())
    }
    async fn copy(&self, _: &RemotePath, _: &RemotePath) -> crate::Result<crate::Entry> {
        Err(boom())
    }
    async fn rename(&self, _: &RemotePath, _: &RemotePath) -> crate::Result<crate::Entry> {
        Err(boom())
    }
    async fn set_modtime(&self, _: &RemotePath, _: time::OffsetDateTime) -> crate::Result<()> {
        Err(boom())
    }
    async fn hash(&self, _: &RemotePath, _: crate::HashKind) -> crate::Result<String> {
        Err(boom())
    }
    async fn purge(&self, _: &RemotePath) -> crate::Result<()> {
        Err(boom())
    }
    async fn cleanup(&self) -> crate::Result<()> {
        Err(boom())
    }
    async fn usage(&self) -> crate::Result<crate::Usage> {
        Err(boom())
    }
}

/// The error of every call, or the error its stream yields, as (operation, remote, path).
async fn context_of_every_call(r: &Arc<dyn Remote>) -> Vec<(String, Option<String>)> {
    fn show(e: &crate::Error) -> String {
        format!(
            "{} {} {}",
            e.operation().unwrap_or("-"),
            e.remote().unwrap_or("-"),
            e.path().unwrap_or("-")
        )
    }
    let mut out = Vec::new();
    let mut record = |what: &str, r: crate::Result<()>| {
        out.push((what.to_owned(), r.err().map(|e| show(&e))));
    };
    let (a, b) = (p("a/x"), p("a/y"));
    let mtime = time::OffsetDateTime::UNIX_EPOCH;
    record("list fails", r.list(&p("fails")).await.map(drop));
    let items: Vec<_> = r.list(&p("a")).await.unwrap().collect().await;
    record(
        "list stream",
        items.into_iter().try_for_each(|r| r.map(drop)),
    );
    let items: Vec<_> = r.list_recursive(&p("a")).await.unwrap().collect().await;
    record(
        "list_recursive stream",
        items.into_iter().try_for_each(|r| r.map(drop)),
    );
    record("stat", r.stat(&a).await.map(drop));
    record("read fails", r.read(&p("fails"), None).await.map(drop));
    let body = crate::collect_bytes(r.read(&a, None).await.unwrap()).await;
    record("read stream", body.map(drop));
    let w = r.write(&a, crate::bytes_stream("x"), Default::default());
    record("write", w.await.map(drop));
    let w = r.write_from_file(&a, std::path::Path::new("/nonexistent"), Default::default());
    record("write_from_file", w.await.map(drop));
    record("mkdir", r.mkdir(&a).await);
    record("remove_file", r.remove_file(&a).await);
    record("remove_dir", r.remove_dir(&a).await);
    record("copy", r.copy(&a, &b).await.map(drop));
    record("rename", r.rename(&a, &b).await.map(drop));
    record("set_modtime", r.set_modtime(&a, mtime).await);
    record("hash", r.hash(&a, crate::HashKind::Md5).await.map(drop));
    record("purge", r.purge(&a).await);
    record("cleanup", r.cleanup().await);
    record("usage", r.usage().await.map(drop));
    out
}

/// Every call names its operation, the remote (password hidden) and its path; errors a
/// listing or a download yields mid-stream too. Without the layer none of it is there.
#[tokio::test(start_paused = true)]
async fn error_context_names_operation_remote_and_path_of_every_call() {
    let bare = Bare::remote("ftp://me:hunter2@host/base");
    for (what, err) in context_of_every_call(&bare).await {
        assert_eq!(
            err.as_deref(),
            Some("- - -"),
            "{what}: bare errors name nothing"
        );
    }
    let r = ErrorContext::wrap(bare);
    assert_eq!(
        r.describe(),
        "ftp://me:hunter2@host/base",
        "describe is passed through"
    );
    let got = context_of_every_call(&r).await;
    let remote = "ftp://me:***@host/base";
    let want = [
        ("list fails", "list", "fails"),
        ("list stream", "list", "a"),
        ("list_recursive stream", "list", "a"),
        ("stat", "stat", "a/x"),
        ("read fails", "read", "fails"),
        ("read stream", "read", "a/x"),
        ("write", "write", "a/x"),
        ("write_from_file", "write", "a/x"),
        ("mkdir", "mkdir", "a/x"),
        ("remove_file", "remove_file", "a/x"),
        ("remove_dir", "remove_dir", "a/x"),
        ("copy", "copy", "a/y"),
        ("rename", "rename", "a/y"),
        ("set_modtime", "set_modtime", "a/x"),
        ("hash", "hash", "a/x"),
        ("purge", "purge", "a/x"),
        ("cleanup", "cleanup", "-"),
        ("usage", "usage", "-"),
    ];
    assert_eq!(got.len(), want.len());
    for ((what, err), (w, op, path)) in got.iter().zip(want) {
        assert_eq!(what, w);
        assert_eq!(err.clone(), Some(format!("{op} {remote} {path}")), "{what}");
    }
    // The display the command line prints.
    let e = r.stat(&p("a/x")).await.unwrap_err();
    assert_eq!(
        e.to_string(),
        "temporary failure: boom (stat ftp://me:***@host/base: a/x)"
    );
    assert!(!format!("{e:?} {}", e.chain()).contains("hunter2"));
    // The root has no path to name.
    let e = r.list(&RemotePath::root()).await.unwrap();
    let e = e.collect::<Vec<_>>().await.pop().unwrap().unwrap_err();
    assert_eq!((e.operation(), e.path()), (Some("list"), None));
    assert_eq!(
        e.to_string(),
        "temporary failure: boom (list ftp://me:***@host/base)"
    );
}

/// Over MemFs with a fault plan: each injected fault, at the call or inside a listing or a
/// download, comes out naming its operation, the remote and its path.
#[tokio::test(start_paused = true)]
async fn error_context_over_chaos_keeps_what_the_backend_said() {
    let mem: Arc<dyn Remote> = Arc::new(MemFs::new("memfs://ctx"));
    put_text(&mem, "d/x", "hello", None).await;
    put_text(&mem, "d/y", "world!", None).await;
    let fail = |op, path| rule(op, path, Fault::Fail(ErrorKind::PermissionDenied));
    let mut rules: Vec<Rule> = Op::ALL
        .iter()
        .filter(|op| !matches!(op, Op::List | Op::Read))
        .map(|&op| fail(op, "d/x"))
        .collect();
    // Copy and rename are hit on their target.
    for r in rules.iter_mut() {
        if matches!(r.op, Op::Copy | Op::Rename) {
            r.path = Some(p("d/z"));
        }
    }
    rules.extend([
        rule(Op::List, "d", Fault::BadEntry { after: 1 }),
        rule(
            Op::List,
            "d",
            Fault::ListBreaks {
                after: 1,
                kind: ErrorKind::Io,
            },
        ),
        rule(
            Op::Read,
            "d/x",
            Fault::ReadCut {
                after: 2,
                kind: ErrorKind::Io,
            },
        ),
        rule(Op::Read, "d/y", Fault::Fail(ErrorKind::Io)),
    ]);
    let chaos = Chaos::new(mem, FaultPlan { rules });
    let r = ErrorContext::wrap(Arc::new(chaos.clone()));
    let named = |e: crate::Error, op: &str, path: &str| {
        assert_eq!(e.operation(), Some(op), "{e}");
        assert_eq!(e.remote(), Some("memfs://ctx"), "{e}");
        assert_eq!(e.path(), Some(path), "{e}");
    };
    let (x, z) = (p("d/x"), p("d/z"));
    named(r.stat(&x).await.unwrap_err(), "stat", "d/x");
    let w = r
        .write(&x, crate::bytes_stream("a"), Default::default())
        .await;
    named(w.unwrap_err(), "write", "d/x");
    named(r.mkdir(&x).await.unwrap_err(), "mkdir", "d/x");
    named(r.remove_file(&x).await.unwrap_err(), "remove_file", "d/x");
    named(r.remove_dir(&x).await.unwrap_err(), "remove_dir", "d/x");
    named(r.copy(&p("d/y"), &z).await.unwrap_err(), "copy", "d/z");
    named(r.rename(&p("d/y"), &z).await.unwrap_err(), "rename", "d/z");
    let m = time::OffsetDateTime::UNIX_EPOCH;
    named(
        r.set_modtime(&x, m).await.unwrap_err(),
        "set_modtime",
        "d/x",
    );
    named(
        r.hash(&x, crate::HashKind::Md5).await.unwrap_err(),
        "hash",
        "d/x",
    );
    // A bad entry: one error in the stream, the listing goes on.
    let items: Vec<_> = r.list(&p("d")).await.unwrap().collect().await;
    assert_eq!(items.len(), 3, "{items:?}");
    let bad = items.into_iter().find_map(Result::err).unwrap();
    assert_eq!(bad.kind(), ErrorKind::InvalidInput);
    named(bad, "list", "d");
    // A listing that breaks off.
    let items: Vec<_> = r.list(&p("d")).await.unwrap().collect().await;
    named(
        items.into_iter().find_map(Result::err).unwrap(),
        "list",
        "d",
    );
    // A download cut after two bytes, and one refused at once.
    let cut = crate::collect_bytes(r.read(&x, None).await.unwrap()).await;
    named(cut.unwrap_err(), "read", "d/x");
    named(r.read(&p("d/y"), None).await.err().unwrap(), "read", "d/y");
    assert_eq!(chaos.fired().len(), 13, "{:?}", chaos.fired());
}

/// What a backend said itself is kept: the step it names and the entry it could not read.
#[tokio::test(start_paused = true)]
async fn error_context_keeps_more_precise_context() {
    let r = ErrorContext::wrap(Bare::remote("bare://p"));
    let items: Vec<_> = r.list(&p("precise")).await.unwrap().collect().await;
    let e = items.into_iter().find_map(Result::err).unwrap();
    assert_eq!(
        e.to_string(),
        "temporary failure: boom (connect bare://p: precise/bad name)"
    );
}

/// Under Retrying, an error that outlived its retries still names where it came from, and a
/// failed look before a rename names the source it looked at.
#[tokio::test(start_paused = true)]
async fn error_context_under_retrying() {
    let bare = Bare::remote("bare://b");
    let policy = RetryPolicy {
        max_retries: 2,
        base: Duration::from_millis(1),
        max_backoff: Duration::from_millis(2),
        ..Default::default()
    };
    let r = Retrying::wrap(ErrorContext::wrap(bare), policy);
    let e = r.stat(&p("q")).await.unwrap_err();
    assert_eq!(e.to_string(), "temporary failure: boom (stat bare://b: q)");
    let e = r.rename(&p("from"), &p("to")).await.unwrap_err();
    assert_eq!(
        e.to_string(),
        "temporary failure: boom (rename bare://b: from)"
    );
}

/// Every layer forwards the upload-session calls: the session checks pass on a session
/// backend inside the whole stack (timeout, in-flight limit, throttle, retries), the error
/// context, a bandwidth limit and a prefix view, as a remote opened from a config has them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_layers_forward_upload_sessions() {
    use crate::layers::stack::Stack;
    let fs = Arc::new(MemFs::new("memfs://layered-sessions").with_sessions());
    let stack = Stack::new(crate::LayerOptions {
        timeout: Some(Duration::from_secs(30)),
        max_in_flight: Some(4),
        tps_limit: Some(1000.0),
        tps_burst: 100,
        retry: crate::RetryPolicy {
            max_retries: 2,
            base: Duration::from_millis(1),
            ..Default::default()
        },
    })
    .expect("stack");
    let inner: Arc<dyn Remote> = fs.clone();
    let wrapped = stack.apply(inner);
    let wrapped = crate::ErrorContext::wrap(wrapped);
    let limiter = crate::BandwidthLimiter::new(
        crate::BwTimetable::constant(crate::BwLimit {
            up: Some(1 << 30),
            down: None,
        }),
        None,
    );
    let wrapped = limiter.wrap(wrapped);
    // Each check in a directory of its own, as the conformance suite runs them.
    crate::testkit::check_session_resume(&crate::Prefix::wrap(wrapped.clone(), p("sub/a")))
        .await
        .expect("session_resume");
    crate::testkit::check_session_stale(&crate::Prefix::wrap(wrapped, p("sub/b")))
        .await
        .expect("session_stale");
    assert_eq!(fs.open_sessions(), 0);
    assert!(fs.files().keys().all(|k| k.starts_with("sub/")));
}
