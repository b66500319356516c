//! Drop-folder ingestion and compare reports end to end on real local directories.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use cloudsync::ingest::{IngestOptions, SkipReason, ingest};
use cloudsync::queue::{CompareSpec, ResyncOptions, SavedReport, compare, resync};
use cloudsync::{ErrorKind, Remote};

fn write(root: &Path, rel: &str, body: &str, age: Duration) {
    let path = root.join(rel);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, body).unwrap();
    let f = std::fs::File::options().write(true).open(&path).unwrap();
    f.set_modified(SystemTime::now() - age).unwrap();
}

/// Every file below `root`, relative, with content.
fn files(root: &Path) -> Vec<(String, String)> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<(String, String)>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let e = e.unwrap();
            let p = e.path();
            if p.is_dir() {
                walk(root, &p, out);
            } else {
                let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
                out.push((rel, std::fs::read_to_string(&p).unwrap()));
            }
        }
    }
    let mut out = Vec::new();
    walk(root, root, &mut out);
    out.sort();
    out
}

fn names(v: &[(String, String)]) -> Vec<&str> {
    v.iter().map(|(k, _)| k.as_str()).collect()
}

async fn open(p: &Path) -> Arc<dyn Remote> {
    cloudsync::open(p.to_str().unwrap()).await.unwrap()
}

const OLD: Duration = Duration::from_secs(3600);

fn opts() -> IngestOptions {
    IngestOptions {
        recheck_delay: Some(Duration::from_millis(300)),
        lock_confirm_delay: Duration::from_millis(50),
        ..Default::default()
    }
}

fn today() -> String {
    let t = time::OffsetDateTime::now_utc();
    format!("{:04}-{:02}-{:02}", t.year(), u8::from(t.month()), t.day())
}

#[tokio::test]
async fn local_drop_folder_end_to_end() {
    let (d, t) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    write(d.path(), "orders/1001.xml", "<order id=1001/>", OLD);
    write(d.path(), "orders/1002.xml", "<order id=1002/>", OLD);
    write(d.path(), "users.csv", "id,name", OLD);
    write(d.path(), "orders/1003.xml", "<order id=10", Duration::ZERO); // being written
    write(d.path(), ".lock", "erp", OLD);
    write(d.path(), "_incoming/1004.xml", "<order/>", OLD);
    write(d.path(), "orders/_1005.xml.tmp", "<ord", OLD);
    let (drop, target) = (open(d.path()).await, open(t.path()).await);

    let r = ingest(&drop, &target, &opts()).await.unwrap();
    assert!(r.is_ok(), "{:?}", r.failed);
    assert_eq!(
        names(&files(t.path())),
        ["orders/1001.xml", "orders/1002.xml", "users.csv"],
        "the lock is gone too"
    );
    assert_eq!(files(t.path())[0].1, "<order id=1001/>");
    let day = today();
    let left = files(d.path());
    let left_names = names(&left);
    for stays in [
        ".lock",
        "_incoming/1004.xml",
        "orders/1003.xml",
        "orders/_1005.xml.tmp",
    ] {
        assert!(left_names.contains(&stays), "{stays}: {left_names:?}");
    }
    for gone in ["orders/1001.xml", "orders/1002.xml", "users.csv"] {
        assert!(!left_names.contains(&gone));
        let archived = format!("archives/{day}/{gone}");
        assert!(left_names.contains(&archived.as_str()), "{archived}");
    }
    let fresh = r
        .skipped
        .iter()
        .find(|s| s.path.as_str() == "orders/1003.xml");
    assert!(matches!(
        fresh.map(|s| &s.reason),
        Some(SkipReason::TooRecent { .. })
    ));
    // The report on disk, JSON and text.
    let json_path = d.path().join(r.report_files[0].as_str());
    let txt_path = d.path().join(r.report_files[1].as_str());
    let back =
        cloudsync::ingest::IngestReport::from_json(&std::fs::read_to_string(json_path).unwrap())
            .unwrap();
    assert_eq!(back.ingested, r.ingested);
    assert_eq!(back.bytes, 16 + 16 + 7);
    let txt = std::fs::read_to_string(txt_path).unwrap();
    assert!(txt.contains("ingested 3 (39 bytes)"), "{txt}");

    // The second run finds nothing new; once the fresh file has settled, it is taken.
    let r2 = ingest(&drop, &target, &opts()).await.unwrap();
    assert!(r2.ingested.is_empty());
    let f = std::fs::File::options()
        .write(true)
        .open(d.path().join("orders/1003.xml"))
        .unwrap();
    f.set_modified(SystemTime::now() - OLD).unwrap();
    let r3 = ingest(&drop, &target, &opts()).await.unwrap();
    assert_eq!(r3.ingested.len(), 1);
    assert_eq!(r3.ingested[0].path.as_str(), "orders/1003.xml");
}

#[tokio::test]
async fn a_file_still_growing_is_left_alone() {
    let (d, t) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    write(d.path(), "big.bin", "first part", OLD);
    let path = d.path().join("big.bin");
    // The uploader appends every 20 ms until the run is over, keeping old times, so the file
    // grows across the recheck window however the threads are scheduled.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (started_tx, started_rx) = std::sync::mpsc::channel();
    let writer = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            use std::io::Write;
            let mut f = std::fs::File::options().append(true).open(&path).unwrap();
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                f.write_all(b", more").unwrap();
                f.set_modified(SystemTime::now() - OLD).unwrap();
                let _ = started_tx.send(());
                std::thread::sleep(Duration::from_millis(20));
            }
        })
    };
    started_rx.recv().unwrap();
    let (drop, target) = (open(d.path()).await, open(t.path()).await);
    let r = ingest(&drop, &target, &opts()).await.unwrap();
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    writer.join().unwrap();
    assert!(r.ingested.is_empty());
    assert_eq!(r.skipped[0].reason, SkipReason::StillChanging);
    assert!(files(t.path()).is_empty());
}

#[tokio::test]
async fn concurrent_local_runs_take_each_file_once() {
    let (d, t) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    for i in 0..30 {
        write(
            d.path(),
            &format!("in/{i:03}.csv"),
            &format!("row {i}"),
            OLD,
        );
    }
    let (drop, target) = (open(d.path()).await, open(t.path()).await);
    let (drop2, target2) = (open(d.path()).await, open(t.path()).await);
    let o = opts();
    let (a, b) = tokio::join!(ingest(&drop, &target, &o), ingest(&drop2, &target2, &o));
    let errors: Vec<_> = [&a, &b]
        .into_iter()
        .filter_map(|r| r.as_ref().err())
        .collect();
    assert_eq!(errors.len(), 1, "one run proceeds, one backs off");
    assert_eq!(errors[0].kind(), ErrorKind::Conflict);
    assert_eq!(files(t.path()).len(), 30);
    let archives = files(&d.path().join("archives"));
    assert_eq!(archives.len(), 30);
    assert!(archives.iter().all(|(k, _)| !k.contains(" (1)")));
}

#[tokio::test]
async fn compare_report_and_resync_on_local_folders() {
    let (cam, server) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    for i in 0..20 {
        write(
            cam.path(),
            &format!("cam1/{i:04}.jpg"),
            &format!("jpeg {i}"),
            OLD,
        );
    }
    // A partial transfer: the first 12 made it.
    for i in 0..12 {
        write(
            server.path(),
            &format!("cam1/{i:04}.jpg"),
            &format!("jpeg {i}"),
            OLD,
        );
    }
    let (src, dst) = (open(cam.path()).await, open(server.path()).await);
    let report = compare(&src, &dst, &CompareSpec::default()).await.unwrap();
    assert_eq!(report.counts().missing_on_dst, 8);
    let keep = tempfile::tempdir().unwrap();
    let file = keep.path().join("report.json");
    report.save_file(&file).await.unwrap();

    // Later, in another process: load the report, reopen its locations, re-run & sync.
    let loaded = SavedReport::load_file(&file).await.unwrap();
    let src = cloudsync::open(&loaded.source).await.unwrap();
    let dst = cloudsync::open(&loaded.destination).await.unwrap();
    let follow = resync(&loaded, &src, &dst, &ResyncOptions::default())
        .await
        .unwrap();
    assert_eq!(follow.resync.as_ref().unwrap().transferred, 8);
    assert!(follow.check.is_identical());
    assert_eq!(files(cam.path()), files(server.path()));
}
