//! Saved reports, resync and the queue on in-memory remotes.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use time::OffsetDateTime;

use super::*;
use crate::filter::FilterSpec;
use crate::ops::{CheckOptions, check};
use crate::report::{CheckItem, CheckReport, ErrorRecord};
use crate::testkit::{FaultOp, Faulty, MemFs};
use crate::{Error, ErrorKind, Remote, RemotePath, collect_bytes};

fn fs(name: &str) -> Arc<dyn Remote> {
    Arc::new(MemFs::new(name))
}

fn p(s: &str) -> RemotePath {
    RemotePath::new(s).unwrap()
}

fn t(secs: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(1_700_000_000 + secs).unwrap()
}

async fn put(r: &Arc<dyn Remote>, path: &str, body: &str, secs: i64) {
    crate::testkit::put_text(r, path, body, Some(t(secs))).await;
}

async fn read(r: &Arc<dyn Remote>, path: &str) -> Option<String> {
    let s = r.read(&p(path), None).await.ok()?;
    Some(String::from_utf8(collect_bytes(s).await.unwrap().to_vec()).unwrap())
}

fn fast_resync() -> ResyncOptions {
    ResyncOptions {
        sync: crate::ops::SyncOptions {
            retry_backoff: Duration::from_millis(1),
            low_level_retries: 1,
            retries: 1,
            ..Default::default()
        },
        ..Default::default()
    }
}

fn paths(items: &[CheckItem]) -> Vec<&str> {
    items.iter().map(|i| i.path.as_str()).collect()
}

/// A camera with 10 pictures, a server that received 4 of them and one stray file.
async fn partial() -> (Arc<dyn Remote>, Arc<dyn Remote>) {
    let (cam, server) = (fs("memfs://cam"), fs("memfs://server"));
    for i in 0..10 {
        put(
            &cam,
            &format!("2026/{i:02}.jpg"),
            &format!("picture {i}"),
            i,
        )
        .await;
    }
    for i in 0..4 {
        put(
            &server,
            &format!("2026/{i:02}.jpg"),
            &format!("picture {i}"),
            i,
        )
        .await;
    }
    put(&server, "stray.jpg", "x", 0).await;
    (cam, server)
}

#[tokio::test]
async fn saved_report_keeps_sizes_modtimes_and_options() {
    let (cam, server) = partial().await;
    put(&server, "2026/03.jpg", "picture 3 but longer", 3).await;
    let spec = CompareSpec {
        filters: FilterSpec {
            exclude: vec!["*.tmp".into()],
            ..Default::default()
        },
        ..Default::default()
    };
    let r = compare(&cam, &server, &spec).await.unwrap();
    let c = r.counts();
    assert_eq!(
        (
            c.matched,
            c.differ,
            c.missing_on_dst,
            c.missing_on_src,
            c.errors
        ),
        (3, 1, 6, 1, 0)
    );
    assert_eq!(r.source, "memfs://cam");
    assert_eq!(r.check.differ[0].src_size, Some(9));
    assert_eq!(r.check.differ[0].dst_size, Some(20));
    assert_eq!(r.check.missing_on_dst[0].src_modtime, Some(t(4)));

    let json = r.to_json().unwrap();
    assert!(json.contains("\"exclude\":[\"*.tmp\"]"), "{json}");
    let back = SavedReport::from_json(&json).unwrap();
    assert_eq!(back, r);

    let text = r.to_text(false);
    assert!(text.contains("= 3 identical, * 1 different, + 6 missing on destination"));
    assert!(text.contains("+ 2026/04.jpg (src 9 B, "), "{text}");
    assert!(text.contains("* 2026/03.jpg (src 9 B, "), "{text}");
    assert!(text.contains("- stray.jpg (dst 1 B"), "{text}");
    assert!(!text.contains("= 2026/00.jpg"));
    assert!(r.to_text(true).contains("= 2026/00.jpg"));
}

#[tokio::test]
async fn resync_after_a_partial_transfer_completes_it() {
    let (cam, server) = partial().await;
    let report = compare(&cam, &server, &CompareSpec::default())
        .await
        .unwrap();
    assert_eq!(report.check.missing_on_dst.len(), 6);

    let follow = resync(&report, &cam, &server, &fast_resync())
        .await
        .unwrap();
    let o = follow.resync.as_ref().unwrap();
    assert_eq!((o.requested, o.transferred), (6, 6));
    assert_eq!(o.bytes, 6 * 9);
    assert!(o.skipped.is_empty() && o.errors.is_empty());
    assert_eq!(follow.follows.as_deref(), Some(report.id.as_str()));
    assert_ne!(follow.id, report.id);
    // The follow-up checks exactly the requested files.
    assert_eq!(follow.check.matched.len(), 6);
    assert!(follow.check.is_identical());
    for i in 4..10 {
        assert_eq!(
            read(&server, &format!("2026/{i:02}.jpg")).await.unwrap(),
            format!("picture {i}")
        );
    }
    // Only what the report listed: the stray file is untouched, the tree now agrees otherwise.
    let again = check(&cam, &server, &CheckOptions::default())
        .await
        .unwrap();
    assert_eq!(paths(&again.missing_on_src), ["stray.jpg"]);
    assert!(again.missing_on_dst.is_empty() && again.differ.is_empty());
}

#[tokio::test]
async fn resync_revalidates_against_the_source() {
    let (cam, server) = partial().await;
    let report = compare(&cam, &server, &CompareSpec::default())
        .await
        .unwrap();
    // After the report: one picture is rewritten with another size, one is deleted, and one
    // reaches the server by other means.
    put(&cam, "2026/04.jpg", "picture 4, re-encoded", 40).await;
    cam.remove_file(&p("2026/05.jpg")).await.unwrap();
    put(&server, "2026/06.jpg", "picture 6", 6).await;

    let follow = resync(&report, &cam, &server, &fast_resync())
        .await
        .unwrap();
    let o = follow.resync.as_ref().unwrap();
    let skipped: Vec<(&str, &str)> = o
        .skipped
        .iter()
        .map(|s| (s.path.as_str(), s.reason.as_str()))
        .collect();
    assert_eq!(
        skipped,
        [
            (
                "2026/04.jpg",
                "changed on the source since the report (size 9 -> 21)"
            ),
            ("2026/05.jpg", "gone from the source"),
        ]
    );
    assert_eq!(o.transferred, 3, "07, 08, 09");
    assert_eq!(o.already_there, 1, "06");
    assert!(read(&server, "2026/04.jpg").await.is_none());
    assert_eq!(paths(&follow.check.missing_on_dst), ["2026/04.jpg"]);

    // Asked to, it transfers the changed file too.
    let opts = ResyncOptions {
        transfer_changed: true,
        ..fast_resync()
    };
    let follow = resync(&report, &cam, &server, &opts).await.unwrap();
    assert_eq!(follow.resync.as_ref().unwrap().transferred, 1);
    assert_eq!(
        read(&server, "2026/04.jpg").await.unwrap(),
        "picture 4, re-encoded"
    );
}

#[tokio::test]
async fn differing_files_only_on_request() {
    let (cam, server) = partial().await;
    // Same size and modtime, other bytes: only a hash compare finds it.
    put(&server, "2026/01.jpg", "picture X", 1).await;
    let report = compare(&cam, &server, &CompareSpec::default())
        .await
        .unwrap();
    assert_eq!(paths(&report.check.differ), ["2026/01.jpg"]);

    let follow = resync(&report, &cam, &server, &fast_resync())
        .await
        .unwrap();
    assert_eq!(follow.resync.as_ref().unwrap().requested, 6);
    assert_eq!(read(&server, "2026/01.jpg").await.unwrap(), "picture X");

    let opts = ResyncOptions {
        include_differ: true,
        ..fast_resync()
    };
    let follow = resync(&report, &cam, &server, &opts).await.unwrap();
    let o = follow.resync.as_ref().unwrap();
    assert_eq!((o.requested, o.transferred, o.already_there), (7, 1, 6));
    assert_eq!(read(&server, "2026/01.jpg").await.unwrap(), "picture 1");
    assert!(follow.check.is_identical());
}

#[tokio::test]
async fn failed_transfers_show_in_the_follow_up_and_a_second_resync_finishes() {
    let (cam, inner) = partial().await;
    let faulty = Faulty::new(inner.clone());
    faulty.fail(
        FaultOp::Write,
        p("2026/07.jpg"),
        u32::MAX,
        ErrorKind::PermissionDenied,
    );
    let server: Arc<dyn Remote> = Arc::new(faulty);
    let report = compare(&cam, &server, &CompareSpec::default())
        .await
        .unwrap();
    let follow = resync(&report, &cam, &server, &fast_resync())
        .await
        .unwrap();
    let o = follow.resync.as_ref().unwrap();
    assert_eq!(o.transferred, 5);
    assert_eq!(o.errors.len(), 1);
    assert_eq!(o.errors[0].path.as_str(), "2026/07.jpg");
    assert_eq!(paths(&follow.check.missing_on_dst), ["2026/07.jpg"]);
    assert!(follow.to_text(false).contains("1 failed"));

    // The follow-up is itself a report: resync it against the repaired server.
    let last = resync(&follow, &cam, &inner, &fast_resync()).await.unwrap();
    assert_eq!(last.resync.as_ref().unwrap().transferred, 1);
    assert!(last.check.is_identical());
    assert!(
        check(
            &cam,
            &inner,
            &CheckOptions {
                one_way: true,
                ..Default::default()
            }
        )
        .await
        .unwrap()
        .is_identical()
    );
}

#[test]
fn a_report_of_100_000_entries_round_trips() {
    let mut check = CheckReport {
        source: "sftp://cam@host/pictures".into(),
        destination: "/srv/pictures".into(),
        checked_at: Some(t(0)),
        method: "size+md5".into(),
        ..Default::default()
    };
    for i in 0..100_000u64 {
        let item = CheckItem {
            path: p(&format!("cam{:02}/2026/{:06}.jpg", i % 50, i)),
            src_size: Some(i * 7),
            dst_size: (i % 4 != 1).then_some(i * 7 + i % 3),
            src_modtime: Some(t(i as i64)),
            dst_modtime: (i % 4 != 1).then(|| t(i as i64 + 1)),
        };
        match i % 4 {
            0 => check.matched.push(item),
            1 => check.missing_on_dst.push(CheckItem {
                dst_size: None,
                dst_modtime: None,
                ..item
            }),
            2 => check.differ.push(item),
            _ => check.missing_on_src.push(CheckItem {
                src_size: None,
                src_modtime: None,
                ..item
            }),
        }
    }
    check.errors.push(ErrorRecord::new(
        p("cam00/broken.jpg"),
        &Error::new(ErrorKind::PermissionDenied, "denied"),
    ));
    let r = SavedReport::new(check, "cam", "server", CompareSpec::default());
    let clock = Instant::now();
    let json = r.to_json().unwrap();
    let encoded = clock.elapsed();
    let back = SavedReport::from_json(&json).unwrap();
    let total = clock.elapsed();
    assert_eq!(back, r);
    assert_eq!(
        back.counts().matched
            + back.counts().differ
            + back.counts().missing_on_dst
            + back.counts().missing_on_src,
        100_000
    );
    println!(
        "100,000-entry report: {} bytes of JSON, encoded in {encoded:?}, round trip {total:?}",
        json.len()
    );
}

#[tokio::test]
async fn local_file_round_trip_and_newer_formats_are_refused() {
    let (cam, server) = partial().await;
    let r = compare(&cam, &server, &CompareSpec::default())
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("report.json");
    r.save_file(&path).await.unwrap();
    assert_eq!(SavedReport::load_file(&path).await.unwrap(), r);
    let newer = r
        .to_json()
        .unwrap()
        .replace("\"format\":1", "\"format\":99");
    let e = SavedReport::from_json(&newer).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
    assert!(SavedReport::from_json("{}").is_err());
}

fn queue_with(remotes: &[(&str, Arc<dyn Remote>)]) -> (ReportQueue, Arc<dyn Remote>) {
    let map: HashMap<String, Arc<dyn Remote>> = remotes
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect();
    let store = fs("memfs://queue");
    let q = ReportQueue::new(store.clone(), p("queue"), Arc::new(map))
        .with_lock_timing(Duration::from_secs(3600), Duration::from_millis(20))
        .with_sync_options(fast_resync().sync);
    (q, store)
}

#[tokio::test]
async fn queue_processes_requests_in_order_and_keeps_state() {
    let (cam, server) = partial().await;
    let other = fs("memfs://other");
    let (q, store) = queue_with(&[
        ("cam", cam.clone()),
        ("server", server.clone()),
        ("other", other),
    ]);
    let req = |s: &str, d: &str| JobRequest::Compare {
        source: s.into(),
        destination: d.into(),
        options: Box::default(),
    };
    let a = q.enqueue(req("cam", "server")).await.unwrap();
    let b = q.enqueue(req("cam", "nowhere")).await.unwrap();
    let c = q.enqueue(req("cam", "other")).await.unwrap();
    let states: Vec<JobState> = q.jobs().await.unwrap().iter().map(|j| j.state).collect();
    assert_eq!(states, [JobState::Queued; 3]);

    let first = q.process_next().await.unwrap().unwrap();
    assert_eq!(first.id, a.id, "oldest first");
    assert_eq!(first.state, JobState::Done);
    assert_eq!(first.counts.unwrap().missing_on_dst, 6);
    let jobs = q.jobs().await.unwrap();
    let ids: Vec<&str> = jobs.iter().map(|j| j.id.as_str()).collect();
    assert_eq!(ids, [a.id.as_str(), b.id.as_str(), c.id.as_str()]);
    assert_eq!(
        jobs.iter().map(|j| j.state).collect::<Vec<_>>(),
        [JobState::Done, JobState::Queued, JobState::Queued]
    );

    let rest = q.process_all().await.unwrap();
    assert_eq!(rest.len(), 2);
    assert_eq!(rest[0].state, JobState::Failed);
    assert!(
        rest[0]
            .error
            .as_deref()
            .unwrap()
            .contains("unknown location \"nowhere\"")
    );
    assert_eq!(rest[1].state, JobState::Done);
    assert!(q.process_next().await.unwrap().is_none());

    // The stored report is the compare's, with the request's locations.
    let report = q.report(&a.id).await.unwrap();
    assert_eq!(report.id, a.id);
    assert_eq!(
        (report.source.as_str(), report.destination.as_str()),
        ("cam", "server")
    );
    assert_eq!(report.check.missing_on_dst.len(), 6);
    let stored = SavedReport::load(store.as_ref(), first.report.as_ref().unwrap())
        .await
        .unwrap();
    assert_eq!(stored, report);
    assert_eq!(
        q.report(&b.id).await.unwrap_err().kind(),
        ErrorKind::NotFound
    );

    // Re-run & sync through the queue.
    let r = q.enqueue_resync(&a.id, false).await.unwrap();
    let done = q.process_all().await.unwrap();
    assert_eq!(done.len(), 1);
    assert_eq!(done[0].id, r.id);
    assert_eq!(done[0].state, JobState::Done);
    let follow = q.report(&r.id).await.unwrap();
    assert_eq!(follow.follows.as_deref(), Some(a.id.as_str()));
    assert_eq!(follow.resync.as_ref().unwrap().transferred, 6);
    assert!(follow.check.is_identical());
    assert_eq!(read(&server, "2026/09.jpg").await.unwrap(), "picture 9");
}

#[tokio::test]
async fn one_processor_at_a_time_and_interrupted_jobs_run_again() {
    let (cam, server) = partial().await;
    let (q, _) = queue_with(&[("cam", cam), ("server", server)]);
    let req = JobRequest::Compare {
        source: "cam".into(),
        destination: "server".into(),
        options: Box::default(),
    };
    q.enqueue(req.clone()).await.unwrap();
    q.enqueue(req).await.unwrap();
    let (x, y) = tokio::join!(q.process_next(), q.process_next());
    let (ok, err): (Vec<_>, Vec<_>) = [x, y].into_iter().partition(Result::is_ok);
    assert_eq!((ok.len(), err.len()), (1, 1));
    assert_eq!(err[0].as_ref().unwrap_err().kind(), ErrorKind::Conflict);

    // A job left `running` by a crashed processor is picked up again.
    let mut jobs = q.jobs().await.unwrap();
    assert_eq!(jobs[1].state, JobState::Queued);
    jobs[1].state = JobState::Running;
    q.save_job(&jobs[1]).await.unwrap();
    let again = q.process_next().await.unwrap().unwrap();
    assert_eq!(again.id, jobs[1].id);
    assert_eq!(again.state, JobState::Done);
}

#[tokio::test]
async fn saved_reports_and_queued_jobs_never_hold_a_password() {
    let secret = "pw-in-url-7731";
    let src_url = format!("ftp://me:{secret}@127.0.0.1:1/cam");
    let dst_url = format!("sftp://me@host/x?password={secret}");
    let check = CheckReport {
        source: src_url.clone(),
        destination: dst_url.clone(),
        ..Default::default()
    };
    let mut saved = SavedReport::new(check, &src_url, &dst_url, CompareSpec::default());
    assert_eq!(saved.source, "ftp://me:***@127.0.0.1:1/cam");
    // Set by hand after `new`, the fields are still stored without the secret.
    saved.source = src_url.clone();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("r.json");
    saved.save_file(&file).await.unwrap();
    let mem = fs("reports");
    saved.save(mem.as_ref(), &p("r.json")).await.unwrap();
    for text in [
        saved.to_json().unwrap(),
        saved.to_text(true),
        std::fs::read_to_string(&file).unwrap(),
        read(&mem, "r.json").await.unwrap(),
    ] {
        assert!(!text.contains(secret), "{text}");
        assert!(text.contains("ftp://me:***@127.0.0.1:1/cam"), "{text}");
    }

    let remotes: HashMap<String, Arc<dyn Remote>> = HashMap::new();
    let queue = ReportQueue::new(fs("q"), p("queue"), Arc::new(remotes));
    let e = queue
        .enqueue(JobRequest::Compare {
            source: src_url.clone(),
            destination: "memory://b".into(),
            options: Default::default(),
        })
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
    assert!(!e.chain().contains(secret), "{e}");
    assert!(queue.jobs().await.unwrap().is_empty());
}

/// A resync run outside the queue is stored as a finished job with its report.
#[tokio::test]
async fn a_report_made_outside_is_recorded_as_a_done_job() {
    let (src, dst) = partial().await;
    let remotes: HashMap<String, Arc<dyn Remote>> = HashMap::new();
    let queue = ReportQueue::new(fs("memfs://q"), p("queue"), Arc::new(remotes));
    let report = compare(&src, &dst, &CompareSpec::default()).await.unwrap();
    let follow = resync(&report, &src, &dst, &fast_resync()).await.unwrap();
    let request = JobRequest::Resync {
        report: report.id.clone(),
        include_differ: false,
        transfer_changed: false,
    };
    let job = queue.record(request, &follow).await.unwrap();
    assert_eq!(
        (job.state, job.id.as_str()),
        (JobState::Done, follow.id.as_str())
    );
    assert_eq!(queue.jobs().await.unwrap(), vec![job.clone()]);
    assert_eq!(queue.report(&job.id).await.unwrap(), follow);
}
