//! One test per way a fault used to reach the user's data through the engine. Each failed on
//! the engine before its fix; the property test (`safety_model.rs`) looks for new ones.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use cloudsync_core::ops::{self, SyncOptions};
use cloudsync_core::testkit::{Chaos, Fault, FaultPlan, MemFs, Mutation, Op, Rule};
use cloudsync_core::{Action, ErrorKind, Mode, Prefix, Remote, RemotePath};
use time::OffsetDateTime;

fn rp(p: &str) -> RemotePath {
    RemotePath::new(p).unwrap()
}

fn t(secs: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(1_700_000_000 + secs).unwrap()
}

fn put(fs: &MemFs, path: &str, body: &str, secs: i64) {
    fs.put_file(&rp(path), Bytes::from(body.to_owned()), t(secs))
        .unwrap();
}

fn rule(op: Op, path: &str, times: u32, fault: Fault) -> Rule {
    Rule {
        op,
        path: Some(rp(path)),
        skip: 0,
        times,
        fault,
    }
}

fn chaos(fs: &MemFs, rules: Vec<Rule>) -> (Chaos, Arc<dyn Remote>) {
    let c = Chaos::new(Arc::new(fs.clone()), FaultPlan { rules });
    (c.clone(), Arc::new(c))
}

fn quick() -> SyncOptions {
    SyncOptions {
        retry_backoff: Duration::from_millis(1),
        ..Default::default()
    }
}

/// 400 files in `d` on both sides, identical.
fn twins(prefix: &str) -> (MemFs, MemFs) {
    let (src, dst) = (MemFs::new("memfs://src"), MemFs::new("memfs://dst"));
    for i in 0..400 {
        put(&src, &format!("{prefix}d/{i:03}"), "x", 0);
        put(&dst, &format!("d/{i:03}"), "x", 0);
    }
    (src, dst)
}

#[tokio::test]
async fn a_listing_that_breaks_off_once_deletes_nothing_the_source_has() {
    let (src_fs, dst_fs) = twins("");
    put(&dst_fs, "d/extra", "gone on the source", 0);
    let fault = Fault::ListBreaks {
        after: 199,
        kind: ErrorKind::Transient,
    };
    let (_, src) = chaos(&src_fs, vec![rule(Op::List, "d", 1, fault)]);
    let dst: Arc<dyn Remote> = Arc::new(dst_fs.clone());
    let s = ops::sync(&src, &dst, &quick()).await.unwrap();
    assert!(
        s.errors.is_empty(),
        "the retry listed it whole: {:?}",
        s.errors
    );
    assert_eq!(
        dst_fs.files(),
        src_fs.files(),
        "exactly the source, extra file deleted"
    );
    assert_eq!(s.deleted, 1);
}

#[tokio::test]
async fn a_listing_that_keeps_breaking_off_blocks_every_deletion() {
    let (src_fs, dst_fs) = twins("");
    put(&dst_fs, "other/extra", "x", 0);
    let fault = Fault::ListBreaks {
        after: 10,
        kind: ErrorKind::Io,
    };
    let (_, src) = chaos(&src_fs, vec![rule(Op::List, "d", u32::MAX, fault)]);
    let dst: Arc<dyn Remote> = Arc::new(dst_fs.clone());
    let s = ops::sync(&src, &dst, &quick()).await.unwrap();
    assert_eq!(s.errors.len(), 1, "{:?}", s.errors);
    assert_eq!(s.errors[0].path, rp("d"));
    assert_eq!(dst_fs.files().len(), 401, "nothing deleted");
    assert!(s.deletes_skipped_due_to_errors);
}

#[tokio::test]
async fn retries_through_a_prefix_view_list_the_directory_that_failed() {
    // `dav:src`: a named remote with a sub-path. The retry used to list `src/src/d`.
    let (src_fs, dst_fs) = twins("src/");
    put(&dst_fs, "d/extra", "x", 0);
    let fault = Fault::ListBreaks {
        after: 5,
        kind: ErrorKind::Transient,
    };
    let (c, inner) = chaos(&src_fs, vec![rule(Op::List, "src/d", 1, fault)]);
    let src = Prefix::wrap(inner, rp("src"));
    let dst: Arc<dyn Remote> = Arc::new(dst_fs.clone());
    let s = ops::sync(&src, &dst, &quick()).await.unwrap();
    assert_eq!(c.fired().len(), 1);
    assert!(s.errors.is_empty(), "{:?}", s.errors);
    assert_eq!(dst_fs.files().len(), 400);
}

#[tokio::test]
async fn the_first_error_of_a_path_is_the_one_reported() {
    let (src_fs, dst_fs) = twins("");
    let (_, src) = chaos(
        &src_fs,
        vec![
            rule(Op::List, "d", 1, Fault::Fail(ErrorKind::PermissionDenied)),
            rule(Op::List, "d", u32::MAX, Fault::Fail(ErrorKind::Io)),
        ],
    );
    let dst: Arc<dyn Remote> = Arc::new(dst_fs.clone());
    let s = ops::sync(&src, &dst, &quick()).await.unwrap();
    assert_eq!(s.errors.len(), 1);
    assert_eq!(
        s.errors[0].kind,
        ErrorKind::PermissionDenied,
        "{:?}",
        s.errors
    );
}

#[tokio::test]
async fn a_source_folder_said_to_be_missing_after_its_parent_listed_it_blocks_deletions() {
    // A server that answers "not found" for a folder the user cannot enter.
    let (src_fs, dst_fs) = twins("");
    put(&src_fs, "top.txt", "x", 0);
    let (_, src) = chaos(
        &src_fs,
        vec![rule(
            Op::List,
            "d",
            u32::MAX,
            Fault::Fail(ErrorKind::NotFound),
        )],
    );
    let dst: Arc<dyn Remote> = Arc::new(dst_fs.clone());
    let s = ops::sync(&src, &dst, &quick()).await.unwrap();
    assert_eq!(
        dst_fs.files().len(),
        401,
        "the copies of d are kept, top.txt copied"
    );
    assert!(!s.errors.is_empty());
}

#[tokio::test]
async fn an_entry_that_cannot_be_described_keeps_the_rest_of_its_listing() {
    let (src_fs, dst_fs) = (MemFs::new("memfs://src"), MemFs::new("memfs://dst"));
    put(&src_fs, "d/a", "new", 0);
    put(&src_fs, "d/b", "new", 0);
    put(&dst_fs, "d/old", "x", 0);
    let (_, src) = chaos(
        &src_fs,
        vec![rule(Op::List, "d", u32::MAX, Fault::BadEntry { after: 1 })],
    );
    let dst: Arc<dyn Remote> = Arc::new(dst_fs.clone());
    let s = ops::sync(&src, &dst, &quick()).await.unwrap();
    assert_eq!(s.transferred, 2, "the valid entries are copied");
    assert_eq!(s.errors.len(), 1);
    assert_eq!(s.errors[0].kind, ErrorKind::InvalidInput);
    assert!(
        dst_fs.files().contains_key("d/old"),
        "an error blocks deletions"
    );
}

#[tokio::test]
async fn a_source_that_changes_during_transfer_never_replaces_the_destination() {
    let (src_fs, dst_fs) = (MemFs::new("memfs://src"), MemFs::new("memfs://dst"));
    put(&src_fs, "f", "version-2", 10);
    put(&dst_fs, "f", "version-1", 0);
    // Right before the read, the source file gets other content of the same size.
    let change = Fault::Mutate(Mutation::Write {
        path: rp("f"),
        data: Bytes::from_static(b"version-3"),
        modtime: t(10),
    });
    let (_, src) = chaos(&src_fs, vec![rule(Op::Read, "f", 1, change)]);
    let dst: Arc<dyn Remote> = Arc::new(dst_fs.clone());
    let opts = SyncOptions {
        retries: 1,
        ..quick()
    };
    let s = ops::copy(&src, &dst, &opts).await.unwrap();
    assert_eq!(s.errors.len(), 1, "{:?}", s.errors);
    assert_eq!(
        dst_fs.files()["f"],
        "version-1",
        "the old version stays, whole"
    );
}

#[tokio::test]
async fn a_move_keeps_the_source_when_the_destination_copy_vanished_after_listing() {
    let (src_fs, dst_fs) = (MemFs::new("memfs://src"), MemFs::new("memfs://dst"));
    put(&src_fs, "0", "to copy first", 0);
    put(&src_fs, "f", "same", 0);
    put(&dst_fs, "f", "same", 0);
    // Both listings are done; while "0" is written, someone deletes the destination's "f".
    let vanish = Fault::Mutate(Mutation::Remove(rp("f")));
    let (_, dst) = chaos(&dst_fs, vec![rule(Op::Write, "0", 1, vanish)]);
    let src: Arc<dyn Remote> = Arc::new(src_fs.clone());
    let opts = SyncOptions {
        transfers: 1,
        retries: 1,
        ..quick()
    };
    let s = ops::move_files(&src, &dst, &opts).await.unwrap();
    assert!(
        src_fs.files().contains_key("f") || dst_fs.files().contains_key("f"),
        "f exists somewhere ({:?})",
        s.errors
    );
}

#[tokio::test]
async fn apply_refuses_a_plan_for_other_remotes_or_with_errors() {
    let (a, b, c) = (
        MemFs::new("memfs://a"),
        MemFs::new("memfs://b"),
        MemFs::new("memfs://c"),
    );
    put(&a, "f", "x", 0);
    let (a, b, c): (Arc<dyn Remote>, Arc<dyn Remote>, Arc<dyn Remote>) =
        (Arc::new(a), Arc::new(b), Arc::new(c));
    let plan = ops::plan(&a, &b, Mode::Sync, &quick()).await.unwrap();
    let e = ops::apply(&a, &c, &plan, &quick()).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput);

    let mut with_error = plan.clone();
    with_error.decisions.push(cloudsync_core::Decision {
        path: rp("broken"),
        action: Action::Error,
        reason: cloudsync_core::Reason::Failed,
        src: None,
        dst: None,
    });
    let e = ops::apply(&a, &b, &with_error, &quick()).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
    let forced = SyncOptions {
        apply_plan_with_errors: true,
        ..quick()
    };
    let s = ops::apply(&a, &b, &with_error, &forced).await.unwrap();
    assert_eq!(s.transferred, 1);
    assert_eq!(s.errors.len(), 1, "the plan's error counts as this run's");
}

#[tokio::test]
async fn apply_does_not_overwrite_a_destination_file_changed_since_planning() {
    let (a_fs, b_fs) = (MemFs::new("memfs://a"), MemFs::new("memfs://b"));
    put(&a_fs, "new", "from a", 0);
    put(&b_fs, "new", "stale", 5);
    let (a, b): (Arc<dyn Remote>, Arc<dyn Remote>) =
        (Arc::new(a_fs.clone()), Arc::new(b_fs.clone()));
    let plan = ops::plan(&a, &b, Mode::Sync, &quick()).await.unwrap();
    put(&b_fs, "new", "edited on b", 9);
    let s = ops::apply(&a, &b, &plan, &quick()).await.unwrap();
    assert_eq!(b_fs.files()["new"], "edited on b");
    assert_eq!(s.errors.len(), 1, "{:?}", s.errors);
}

#[tokio::test]
async fn apply_does_not_delete_a_file_the_source_has_now() {
    let (a_fs, b_fs) = (MemFs::new("memfs://a"), MemFs::new("memfs://b"));
    put(&b_fs, "extra", "only on b", 0);
    put(&b_fs, "extra2", "only on b", 0);
    let (a, b): (Arc<dyn Remote>, Arc<dyn Remote>) =
        (Arc::new(a_fs.clone()), Arc::new(b_fs.clone()));
    let plan = ops::plan(&a, &b, Mode::Sync, &quick()).await.unwrap();
    put(&a_fs, "extra", "now on a too", 0);
    let s = ops::apply(&a, &b, &plan, &quick()).await.unwrap();
    let files = b_fs.files();
    assert!(
        files.contains_key("extra"),
        "a file now on the source is not deleted"
    );
    assert!(!files.contains_key("extra2"), "the other deletion ran");
    assert_eq!(s.errors.len(), 1, "{:?}", s.errors);
}

#[tokio::test]
async fn leftovers_of_a_killed_run_are_removed_and_never_paired() {
    let (src_fs, dst_fs) = (MemFs::new("memfs://src"), MemFs::new("memfs://dst"));
    put(&src_fs, "d/f", "data", 0);
    // A user's file that merely starts like ours is an ordinary file.
    put(&src_fs, "d/.cloudsync-tmp-notes.txt", "user's", 0);
    // Our own temporary file on the source is never copied.
    let fresh = cloudsync_core::temp_name("g", 255);
    put(&src_fs, &format!("d/{fresh}"), "half", 0);
    // On the destination: one from a run killed long ago, one from a run in progress now.
    put(
        &dst_fs,
        "d/.cloudsync-tmp-00000001deadbeef.f",
        "stale half",
        0,
    );
    put(&dst_fs, &format!("d/{fresh}"), "in progress", 0);
    let src: Arc<dyn Remote> = Arc::new(src_fs.clone());
    let dst: Arc<dyn Remote> = Arc::new(dst_fs.clone());
    let s = ops::sync(&src, &dst, &quick()).await.unwrap();
    assert!(s.errors.is_empty(), "{:?}", s.errors);
    assert_eq!(s.leftovers_removed, 1);
    let files: std::collections::BTreeSet<String> = dst_fs.files().into_keys().collect();
    let want = [
        "d/.cloudsync-tmp-notes.txt".to_owned(),
        format!("d/{fresh}"),
        "d/f".to_owned(),
    ];
    assert_eq!(
        files,
        want.into_iter().collect(),
        "the stale one is gone, the fresh one (someone's upload) stays and is not deleted"
    );
    let never = SyncOptions {
        leftover_age: None,
        ..quick()
    };
    put(
        &dst_fs,
        "d/.cloudsync-tmp-00000001deadbeef.f",
        "stale half",
        0,
    );
    let s = ops::sync(&src, &dst, &never).await.unwrap();
    assert_eq!(s.leftovers_removed, 0);
}
