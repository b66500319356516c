//! `cloudsync dist` end to end: a PostgreSQL server started by the harness, the CLI's
//! `submit`, three `worker` processes (one killed with SIGKILL in the middle of a shard),
//! `status` and `report --json`, compared with a one-process `sync`.

mod cli_support;

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use cli_support::{cs, cs_cmd, put, snapshot};
use cloudsync_dist::testkit::Pg;

fn tree(src: &Path, dsts: &[&Path]) {
    for d in ["a", "a/b", "c", "c/d/e", "f"] {
        for i in 0..3 {
            put(src, &format!("{d}/f{i}.txt"), &format!("{d} {i}"), 0);
        }
    }
    // The shard a worker is killed in: one file slow to copy under --bwlimit.
    let big = "x".repeat(1 << 20);
    put(src, "big/blob.bin", &big, 0);
    put(src, "same.txt", "same", 0);
    for dst in dsts {
        put(dst, "same.txt", "same", 0);
        put(dst, "extra.txt", "only on the destination", 0);
        put(dst, "gone/deep/y.txt", "destination-only folder", 0);
    }
}

/// Whether process `pid` has a file open for writing in `dir`: one of our temp files or, where
/// the local backend writes new files unnamed (Linux `O_TMPFILE`), `dir/#<inode> (deleted)`.
fn writing_into(pid: u32, dir: &Path) -> bool {
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return false;
    };
    let dir = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
    let dir = dir.as_path();
    fds.flatten().any(|fd| {
        std::fs::read_link(fd.path()).is_ok_and(|target| {
            target.parent() == Some(dir)
                && target.file_name().is_some_and(|n| {
                    let n = n.to_string_lossy();
                    cloudsync::is_temp_name(&n) || n.starts_with('#')
                })
        })
    })
}

#[test]
fn three_worker_processes_one_killed_give_a_one_process_sync() {
    let pg = Pg::start();
    let url = pg.url();
    let tmp = tempfile::tempdir().expect("tmp");
    let (src, d1, d2) = (
        tmp.path().join("src"),
        tmp.path().join("d1"),
        tmp.path().join("d2"),
    );
    tree(&src, &[&d1, &d2]);
    let with_db = |args: &[&str]| {
        let mut c = cs_cmd(args);
        c.env("CLOUDSYNC_DB", &url);
        c
    };
    let run = |args: &[&str]| {
        let o = with_db(args).output().expect("run cloudsync");
        (
            o.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&o.stdout).into_owned(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    };

    let (code, out, err) = run(&[
        "dist",
        "submit",
        "--mode",
        "sync",
        src.to_str().expect("utf-8"),
        d1.to_str().expect("utf-8"),
    ]);
    assert_eq!(code, 0, "{out}\n{err}");
    let job = out.lines().last().expect("the job id").trim().to_string();
    job.parse::<i64>().expect("a numeric job id");

    // The doomed worker copies slowly, so that it is surely in the middle of `big`.
    let mut doomed = with_db(&[
        "dist",
        "worker",
        "--lease",
        "2s",
        "--poll",
        "100ms",
        "--bwlimit",
        "100k",
    ])
    .stdout(Stdio::null())
    .stderr(Stdio::null())
    .spawn()
    .expect("spawn worker");
    let deadline = Instant::now() + Duration::from_secs(20);
    while !writing_into(doomed.id(), &d1.join("big")) {
        assert!(
            Instant::now() < deadline,
            "the worker never started copying big/blob.bin"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let helpers: Vec<_> = (0..2)
        .map(|_| {
            with_db(&[
                "dist",
                "worker",
                "--until-idle",
                "--lease",
                "2s",
                "--poll",
                "100ms",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn worker")
        })
        .collect();
    // Deletions wait for every shard, the killed worker's included.
    std::thread::sleep(Duration::from_millis(500));
    assert!(d1.join("extra.txt").exists());
    doomed.kill().expect("SIGKILL");
    let _ = doomed.wait();
    for h in helpers {
        let o = h.wait_with_output().expect("worker");
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }

    let (code, out, err) = run(&["dist", "status", &job, "--json"]);
    assert_eq!(code, 0, "{err}");
    let st: serde_json::Value = serde_json::from_str(&out).expect("status JSON");
    assert_eq!(st["state"], "done", "{out}");
    let (code, out, err) = run(&["dist", "report", &job, "--json"]);
    assert_eq!(code, 0, "{out}\n{err}");
    let report: cloudsync::Summary = serde_json::from_str(&out).expect("a Summary");

    let one = cs(&[
        "sync",
        "--json",
        src.to_str().expect("utf-8"),
        d2.to_str().expect("utf-8"),
    ]);
    one.expect(0);
    let single: cloudsync::Summary = serde_json::from_str(&one.stdout).expect("a Summary");
    let clean = |p: &Path| {
        let mut s = snapshot(p);
        s.retain(|k, _| !cloudsync::is_temp_name(k.rsplit('/').next().unwrap_or(k)));
        s
    };
    assert_eq!(clean(&d1), clean(&d2));
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    assert_eq!(report.transferred, single.transferred);
    assert_eq!(report.bytes, single.bytes);
    assert_eq!(report.skipped, single.skipped);
    assert_eq!(report.deleted, single.deleted);
    assert_eq!(report.dirs_deleted, single.dirs_deleted);
    assert_eq!(report.deleted, 2);

    // A finished job cannot be cancelled; an unknown one is an error.
    let (code, _, err) = run(&["dist", "cancel", &job]);
    assert_eq!(code, 0);
    assert!(err.contains("already finished"), "{err}");
    let (code, _, err) = run(&["dist", "status", "999999"]);
    assert_ne!(code, 0);
    assert!(err.contains("no job 999999"), "{err}");
}

fn signal(child: &std::process::Child, sig: &str) {
    let st = std::process::Command::new("kill")
        .args([sig, &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(st.success(), "kill {sig} failed");
}

/// A worker stopped (SIGSTOP) in the middle of a shard past its lease: the others take the
/// shard over and finish the job; when the stopped worker resumes, it finds its lease lost
/// and its work is not counted.
#[test]
fn a_worker_stopped_past_its_lease_cannot_complete_late() {
    let pg = Pg::start();
    let url = pg.url();
    let tmp = tempfile::tempdir().expect("tmp");
    let (src, d1, d2) = (
        tmp.path().join("src"),
        tmp.path().join("d1"),
        tmp.path().join("d2"),
    );
    tree(&src, &[&d1, &d2]);
    let with_db = |args: &[&str]| {
        let mut c = cs_cmd(args);
        c.env("CLOUDSYNC_DB", &url);
        c
    };
    let out = with_db(&[
        "dist",
        "submit",
        "--mode",
        "sync",
        src.to_str().expect("utf-8"),
        d1.to_str().expect("utf-8"),
    ])
    .output()
    .expect("submit");
    assert!(out.status.success());
    let job = String::from_utf8_lossy(&out.stdout).trim().to_string();

    let log = tmp.path().join("stopped.log");
    let mut stopped = with_db(&[
        "dist",
        "worker",
        "-v",
        "--lease",
        "2s",
        "--poll",
        "100ms",
        "--bwlimit",
        "100k",
    ])
    .stdout(Stdio::null())
    .stderr(std::fs::File::create(&log).expect("log"))
    .spawn()
    .expect("spawn worker");
    let deadline = Instant::now() + Duration::from_secs(20);
    while !writing_into(stopped.id(), &d1.join("big")) {
        assert!(
            Instant::now() < deadline,
            "the worker never started copying big/blob.bin"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    signal(&stopped, "-STOP");
    let o = with_db(&[
        "dist",
        "worker",
        "--until-idle",
        "--lease",
        "2s",
        "--poll",
        "100ms",
    ])
    .output()
    .expect("worker");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let report = |args: &[&str]| {
        let o = with_db(args).output().expect("report");
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    let before = report(&["dist", "report", &job, "--json"]);
    let status_before = report(&["dist", "status", &job, "--json"]);
    assert!(status_before.contains("\"done\""), "{status_before}");

    signal(&stopped, "-CONT");
    let deadline = Instant::now() + Duration::from_secs(20);
    while !std::fs::read_to_string(&log)
        .unwrap_or_default()
        .contains("lease lost")
    {
        assert!(
            Instant::now() < deadline,
            "the resumed worker did not notice its lost lease: {}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    stopped.kill().expect("SIGKILL");
    let _ = stopped.wait();
    // Nothing it did afterwards was counted, and the result is a one-process sync's.
    let after = report(&["dist", "report", &job, "--json"]);
    let strip = |s: &str| {
        let mut v: serde_json::Value = serde_json::from_str(s).expect("JSON");
        v["elapsed"] = serde_json::Value::Null;
        v
    };
    assert_eq!(strip(&before), strip(&after));
    assert_eq!(status_before, report(&["dist", "status", &job, "--json"]));
    cs(&[
        "sync",
        src.to_str().expect("utf-8"),
        d2.to_str().expect("utf-8"),
    ])
    .expect(0);
    let clean = |p: &Path| {
        let mut s = snapshot(p);
        s.retain(|k, _| !cloudsync::is_temp_name(k.rsplit('/').next().unwrap_or(k)));
        s
    };
    assert_eq!(clean(&d1), clean(&d2));
}

/// `dist resume JOB` after the only process working on a job died holding a lease: it
/// requeues the shard and works the job to its end, as a one-process sync.
#[test]
fn dist_resume_continues_a_job_whose_worker_died() {
    let pg = Pg::start();
    let url = pg.url();
    let tmp = tempfile::tempdir().expect("tmp");
    let (src, d1, d2) = (
        tmp.path().join("src"),
        tmp.path().join("d1"),
        tmp.path().join("d2"),
    );
    tree(&src, &[&d1, &d2]);
    let run = |args: &[&str]| {
        let o = cs_cmd(args)
            .env("CLOUDSYNC_DB", &url)
            .output()
            .expect("run cloudsync");
        (
            o.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&o.stdout).into_owned(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    };
    let (code, out, err) = run(&[
        "dist",
        "submit",
        "--mode",
        "sync",
        src.to_str().expect("utf-8"),
        d1.to_str().expect("utf-8"),
    ]);
    assert_eq!(code, 0, "{out}\n{err}");
    let job = out.lines().last().expect("the job id").trim().to_string();
    // The process that claimed the root shard is gone; its lease runs out.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let db = cloudsync_dist::Db::new(&url).expect("db");
    rt.block_on(cloudsync_dist::testkit::claim_for_test(
        &db,
        "crashed",
        Duration::from_millis(200),
    ))
    .expect("claim")
    .expect("the root shard");
    std::thread::sleep(Duration::from_millis(400));

    let (code, out, err) = run(&["dist", "resume", &job, "--lease", "5s"]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(err.contains("1 expired lease(s) requeued"), "{err}");
    assert_eq!(out.trim(), format!("job {job} done"), "{err}");
    cs(&[
        "sync",
        src.to_str().expect("utf-8"),
        d2.to_str().expect("utf-8"),
    ])
    .expect(0);
    assert_eq!(snapshot(&d1), snapshot(&d2));
    let (code, _, err) = run(&["dist", "resume", &job]);
    assert_ne!(code, 0);
    assert!(err.contains("nothing to resume"), "{err}");
}

/// `dist submit --mode move --batch-size 2 --filter-from FILE --delete-empty-src-dirs`: the
/// rules travel with the job (the file is gone before any worker runs), directories of 3
/// files go in batches, every included source file is moved while the excluded ones stay,
/// and the source directories left empty are removed (those holding excluded files stay).
#[test]
fn dist_move_in_batches_with_a_filter_file() {
    let pg = Pg::start();
    let url = pg.url();
    let tmp = tempfile::tempdir().expect("tmp");
    let (src, dst) = (tmp.path().join("src"), tmp.path().join("dst"));
    tree(&src, &[]);
    let before = snapshot(&src);
    let rules = tmp.path().join("rules.txt");
    std::fs::write(&rules, "- c/**\n+ **\n").expect("rules");
    let run = |args: &[&str]| {
        let o = cs_cmd(args)
            .env("CLOUDSYNC_DB", &url)
            .output()
            .expect("run cloudsync");
        (
            o.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&o.stdout).into_owned(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    };
    let (code, out, err) = run(&[
        "dist",
        "submit",
        "--mode",
        "move",
        "--batch-size",
        "2",
        "--filter-from",
        rules.to_str().expect("utf-8"),
        "--delete-empty-src-dirs",
        src.to_str().expect("utf-8"),
        dst.to_str().expect("utf-8"),
    ]);
    assert_eq!(code, 0, "{out}\n{err}");
    let job = out.lines().last().expect("the job id").trim().to_string();
    std::fs::remove_file(&rules).expect("rm rules");
    let (code, out, err) = run(&["dist", "worker", "--until-idle", "--poll", "100ms"]);
    assert_eq!(code, 0, "{out}\n{err}");
    let (code, out, err) = run(&["dist", "status", &job, "--json"]);
    assert_eq!(code, 0, "{err}");
    let st: serde_json::Value = serde_json::from_str(&out).expect("status JSON");
    assert_eq!(st["state"], "done", "{out}");
    let after_src = snapshot(&src);
    let after_dst = snapshot(&dst);
    for (path, node) in &before {
        let cli_support::Node::File { content, .. } = node else {
            continue;
        };
        let content_of =
            |tree: &std::collections::BTreeMap<String, cli_support::Node>| match tree.get(path) {
                Some(cli_support::Node::File { content, .. }) => Some(content.clone()),
                _ => None,
            };
        if path.starts_with("c/") {
            assert_eq!(
                content_of(&after_src).as_ref(),
                Some(content),
                "{path} stays"
            );
            assert_eq!(content_of(&after_dst), None, "{path} was moved");
        } else {
            assert_eq!(
                content_of(&after_src),
                None,
                "{path} is still on the source"
            );
            assert_eq!(content_of(&after_dst).as_ref(), Some(content), "{path}");
        }
    }
    let src_dirs: Vec<&str> = after_src
        .iter()
        .filter(|(_, n)| matches!(n, cli_support::Node::Dir))
        .map(|(p, _)| p.as_str())
        .collect();
    assert_eq!(src_dirs, ["c", "c/d", "c/d/e"], "empty source dirs removed");
    assert!(src.is_dir(), "the source root stays");
}
