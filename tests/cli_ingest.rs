//! The `cloudsync` example CLI: `ingest` (drop folders), `check --save-report`, `report show`
//! and `report resync`, on local folders.

mod cli_support;

use std::fs::FileTimes;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use cli_support::{Node, cs, s, snapshot};
use serde_json::Value;

/// Writes `root/rel` with `content`, last modified `age` ago.
fn drop_file(root: &Path, rel: &str, content: &str, age: Duration) {
    let p = root.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(&p, content).unwrap();
    let f = std::fs::File::options().write(true).open(&p).unwrap();
    f.set_times(FileTimes::new().set_modified(SystemTime::now() - age))
        .unwrap();
}

const OLD: Duration = Duration::from_secs(2 * 3600);

/// Every file below `root` with its content (relative paths, sorted).
fn files(root: &Path) -> Vec<(String, String)> {
    if !root.exists() {
        return Vec::new();
    }
    snapshot(root)
        .into_iter()
        .filter_map(|(p, n)| match n {
            Node::File { content, .. } => Some((p, String::from_utf8(content).unwrap())),
            Node::Dir => None,
        })
        .collect()
}

fn names(root: &Path) -> Vec<String> {
    files(root).into_iter().map(|(p, _)| p).collect()
}

/// Files directly in `dir`, sorted.
fn ls(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

fn today() -> String {
    let t = time::OffsetDateTime::now_utc();
    format!("{:04}-{:02}-{:02}", t.year(), u8::from(t.month()), t.day())
}

fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}):\n{text}"))
}

fn paths(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|i| i["path"].as_str().unwrap().to_owned())
        .collect()
}

/// A drop folder as an ERP leaves it: two finished files, one still being written (new),
/// hidden and `_` names.
fn erp_drop(drop: &Path) {
    drop_file(drop, "orders/42.csv", "id,qty\n42,1\n", OLD);
    drop_file(drop, "users.csv", "id,name\n1,ann\n", OLD);
    drop_file(drop, "fresh.csv", "being written", Duration::ZERO);
    drop_file(drop, ".hidden", "dot", OLD);
    drop_file(drop, "_tmp", "underscore", OLD);
    drop_file(drop, "_upload/part.csv", "in an underscore dir", OLD);
}

#[test]
fn ingest_moves_settled_files_with_archive_and_report() {
    let t = tempfile::tempdir().unwrap();
    let (drop, target) = (t.path().join("drop"), t.path().join("target"));
    erp_drop(&drop);
    let o = cs(&[
        "ingest",
        s(&drop),
        s(&target),
        "--settle",
        "10m",
        "--recheck-delay",
        "200ms",
    ]);
    o.expect(0);
    let day = today();
    // The text report on stdout, the report files named on stderr.
    assert!(o.stdout.starts_with("ingest "), "{}", o.stdout);
    assert!(
        o.stdout
            .contains("ingested 2 (26 bytes), skipped 4, failed 0\n"),
        "{}",
        o.stdout
    );
    assert!(o.stdout.contains(&format!(
        "+ orders/42.csv (12 bytes) -> orders/42.csv, archived as archives/{day}/orders/42.csv\n"
    )));
    assert!(o.stdout.contains("- fresh.csv: too recent (modified "));
    assert!(o.stdout.contains("- .hidden: hidden or `_` name\n"));
    assert!(o.stdout.contains("- _tmp: hidden or `_` name\n"));
    assert!(o.stdout.contains("- _upload/: hidden or `_` name\n"));
    assert!(o.stderr.starts_with("NOTICE: report written to reports/"));

    assert_eq!(
        files(&target),
        [
            ("orders/42.csv".to_owned(), "id,qty\n42,1\n".to_owned()),
            ("users.csv".to_owned(), "id,name\n1,ann\n".to_owned()),
        ]
    );
    // Left in the drop folder: the new file, hidden and `_` names, archives and reports.
    let left: Vec<String> = names(&drop)
        .into_iter()
        .filter(|p| !p.starts_with("reports/"))
        .collect();
    assert_eq!(
        left,
        [
            ".hidden".to_owned(),
            "_tmp".to_owned(),
            "_upload/part.csv".to_owned(),
            format!("archives/{day}/orders/42.csv"),
            format!("archives/{day}/users.csv"),
            "fresh.csv".to_owned(),
        ]
    );
    assert_eq!(
        std::fs::read_to_string(drop.join(format!("archives/{day}/users.csv"))).unwrap(),
        "id,name\n1,ann\n"
    );
    // One report per run, JSON and text, with the same content as printed.
    let reports = ls(&drop.join("reports"));
    assert_eq!(reports.len(), 2, "{reports:?}");
    assert!(reports[0].ends_with(".json") && reports[1].ends_with(".txt"));
    let saved = json(&std::fs::read_to_string(drop.join("reports").join(&reports[0])).unwrap());
    assert_eq!(
        paths(&saved["ingested"]),
        ["orders/42.csv", "users.csv"],
        "{saved}"
    );
    assert_eq!(saved["bytes"], 26);
    let text = std::fs::read_to_string(drop.join("reports").join(&reports[1])).unwrap();
    assert_eq!(text, o.stdout);
    // No lock is left on the target.
    assert!(!target.join(".cloudsync-ingest.lock").exists());

    // A second run ingests nothing (the new file is still too new); --json prints the report.
    let o = cs(&[
        "ingest",
        s(&drop),
        s(&target),
        "--settle",
        "10m",
        "--recheck-delay",
        "0",
        "--json",
    ]);
    o.expect(0);
    let r = json(&o.stdout);
    assert_eq!(r["ingested"], Value::Array(vec![]));
    assert_eq!(r["bytes"], 0);
    assert_eq!(
        paths(&r["skipped"]),
        [".hidden", "_tmp", "_upload", "fresh.csv"]
    );
    assert_eq!(r["skipped"][3]["reason"], "too_recent");
    assert_eq!(names(&target), ["orders/42.csv", "users.csv"]);
    assert_eq!(ls(&drop.join("reports")).len(), 4);

    // With no settle period the new file goes too.
    let o = cs(&[
        "ingest",
        s(&drop),
        s(&target),
        "--settle",
        "0",
        "--recheck-delay",
        "0",
        "--json",
    ]);
    o.expect(0);
    assert_eq!(paths(&json(&o.stdout)["ingested"]), ["fresh.csv"]);
    assert!(!drop.join("fresh.csv").exists());
    assert_eq!(names(&target), ["fresh.csv", "orders/42.csv", "users.csv"]);
}

#[test]
fn ingest_filters_hidden_names_and_archive_locations() {
    let t = tempfile::tempdir().unwrap();
    let (drop, target) = (t.path().join("drop"), t.path().join("target"));
    let elsewhere = t.path().join("elsewhere");
    drop_file(&drop, "a.csv", "a", OLD);
    drop_file(&drop, "b.part", "b", OLD);
    drop_file(&drop, "_c.csv", "c", OLD);
    // --archive-dir as a location of its own, no report file, filters, and `_` names taken.
    let o = cs(&[
        "ingest",
        s(&drop),
        s(&target),
        "--recheck-delay",
        "0",
        "--archive-dir",
        s(&elsewhere),
        "--no-report",
        "--exclude",
        "*.part",
        "--include-hidden",
    ]);
    o.expect(0);
    assert!(o.stderr.is_empty(), "{}", o.stderr);
    assert!(o.stdout.contains("- b.part: excluded by filters\n"));
    let day = today();
    assert_eq!(names(&target), ["_c.csv", "a.csv"]);
    assert_eq!(
        names(&elsewhere),
        [format!("{day}/_c.csv"), format!("{day}/a.csv")]
    );
    assert_eq!(names(&drop), ["b.part"]);

    // A plain relative --archive-dir is inside the drop folder (and never ingested); an
    // absolute path inside the drop folder is the same; --no-archive keeps none.
    drop_file(&drop, "d.csv", "d", OLD);
    let o = cs(&[
        "ingest",
        s(&drop),
        s(&target),
        "--recheck-delay",
        "0",
        "--archive-dir",
        "done/archive",
        "--report-dir",
        s(&drop.join("done/reports")),
        "--exclude",
        "*.part",
    ]);
    o.expect(0);
    assert!(o.stdout.contains(&format!(
        "+ d.csv (1 bytes) -> d.csv, archived as done/archive/{day}/d.csv\n"
    )));
    assert!(
        o.stdout
            .contains("ingested 1 (1 bytes), skipped 1, failed 0\n")
    );
    assert!(
        o.stderr
            .starts_with("NOTICE: report written to done/reports/")
    );
    drop_file(&drop, "e.csv", "e", OLD);
    let o = cs(&[
        "ingest",
        s(&drop),
        s(&target),
        "--recheck-delay",
        "0",
        "--archive-dir",
        "done/archive",
        "--report-dir",
        s(&drop.join("done/reports")),
        "--exclude",
        "*.part",
        "--json",
    ]);
    o.expect(0);
    // done/ was not looked into: only e.csv was taken.
    assert_eq!(paths(&json(&o.stdout)["ingested"]), ["e.csv"]);
    // A run that does not name done/ would take it: exclude it (and *.part) by filter.
    drop_file(&drop, "f.csv", "f", OLD);
    let o = cs(&[
        "ingest",
        s(&drop),
        s(&target),
        "--recheck-delay",
        "0",
        "--no-archive",
        "--no-report",
        "--exclude",
        "done/",
        "--exclude",
        "*.part",
    ]);
    o.expect(0);
    assert!(o.stdout.contains("+ f.csv (1 bytes) -> f.csv\n"));
    assert!(!drop.join("f.csv").exists());
    assert_eq!(
        names(&target),
        ["_c.csv", "a.csv", "d.csv", "e.csv", "f.csv"]
    );
}

#[test]
fn ingest_lock_held_by_another_run_exits_5() {
    let t = tempfile::tempdir().unwrap();
    let (drop, target) = (t.path().join("drop"), t.path().join("target"));
    drop_file(&drop, "a.csv", "a", OLD);
    std::fs::create_dir_all(&target).unwrap();
    let now = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let lock = target.join(".cloudsync-ingest.lock");
    let body = format!(
        r#"{{"token":"t0","purpose":"ingest","host":"otherhost","pid":4242,"acquired":"{now}","refreshed":"{now}"}}"#
    );
    std::fs::write(&lock, &body).unwrap();
    let o = cs(&["ingest", s(&drop), s(&target), "--recheck-delay", "0"]);
    o.expect(5);
    assert!(o.stdout.is_empty());
    assert!(
        o.stderr.starts_with(
            "ERROR: ingest not started, try again later: conflict: another ingest is running \
             (lock held by pid 4242 on otherhost since "
        ),
        "{}",
        o.stderr
    );
    assert!(
        o.stderr.ends_with(": .cloudsync-ingest.lock)\n"),
        "{}",
        o.stderr
    );
    // Nothing was touched.
    assert_eq!(names(&drop), ["a.csv"]);
    assert_eq!(std::fs::read_to_string(&lock).unwrap(), body);
}

/// A crashed run of this host left its lock: the next run takes it over at once instead of
/// failing with exit 5 until the lock is stale.
#[cfg(target_os = "linux")]
#[test]
fn ingest_takes_over_the_lock_of_a_dead_process_of_this_host() {
    let t = tempfile::tempdir().unwrap();
    let (drop, target) = (t.path().join("drop"), t.path().join("target"));
    drop_file(&drop, "a.csv", "a", OLD);
    std::fs::create_dir_all(&target).unwrap();
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    // Pids never reach 2^22 (the kernel's upper limit of pid_max).
    let dead = (1u32 << 22..)
        .find(|p| !Path::new(&format!("/proc/{p}")).exists())
        .unwrap();
    let now = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let lock = target.join(".cloudsync-ingest.lock");
    std::fs::write(
        &lock,
        format!(
            r#"{{"token":"t0","purpose":"ingest","host":"{}","pid":{dead},"acquired":"{now}","refreshed":"{now}"}}"#,
            host.trim()
        ),
    )
    .unwrap();
    let o = cs(&["ingest", s(&drop), s(&target), "--recheck-delay", "0"]);
    o.expect(0);
    assert_eq!(names(&target), ["a.csv"]);
    assert!(!lock.exists());
}

#[test]
fn ingest_usage_errors() {
    let t = tempfile::tempdir().unwrap();
    let (drop, target) = (t.path().join("drop"), t.path().join("target"));
    std::fs::create_dir_all(&drop).unwrap();
    let o = cs(&["ingest", s(&drop), s(&target), "--settle", "soon"]);
    o.expect(1);
    assert!(o.stderr.starts_with(
        "error: invalid value 'soon' for '--settle <DURATION>': duration \"soon\": expected e.g. \
         `300ms`, `2h45m`, `1.5d`, `2w`, `1M`, `1y`, a number of seconds or `off`\n"
    ));
    let o = cs(&[
        "ingest",
        s(&drop),
        s(&target),
        "--archive-dir",
        "x",
        "--no-archive",
    ]);
    o.expect(1);
    assert!(o.stderr.starts_with(
        "error: the argument '--archive-dir <PATH>' cannot be used with '--no-archive'\n"
    ));
    let o = cs(&["ingest", s(&drop), s(&target), "--archive-dir", s(&drop)]);
    o.expect(1);
    assert_eq!(
        o.stderr,
        format!(
            "ERROR: --archive-dir {:?} is the drop folder itself: name a directory inside it or \
             elsewhere\n",
            s(&drop)
        )
    );
    let o = cs(&["ingest", s(&t.path().join("none")), s(&target)]);
    o.expect(3);
    assert!(
        o.stderr
            .starts_with("ERROR: not found: directory not found")
    );
    let o = cs(&["ingest", s(&drop), s(&drop)]);
    o.expect(1);
    assert_eq!(
        o.stderr,
        format!(
            "ERROR: invalid input: the drop folder ({}) and the target ({}) are the same place\n",
            s(&drop),
            s(&drop)
        )
    );
}

#[test]
fn ingest_into_its_own_drop_folder_is_refused() {
    let t = tempfile::tempdir().unwrap();
    let drop = t.path().join("drop");
    drop_file(&drop, "a.csv", "a", OLD);
    drop_file(&drop, "inbox/b.csv", "b", OLD);
    std::fs::create_dir_all(drop.join("x")).unwrap();
    let before = snapshot(&drop);
    let spellings = [
        drop.join("inbox"),
        drop.join("x/../inbox"),
        drop.join("missing/../inbox"),
        drop.join("./inbox/new"),
        t.path().join("drop/../drop"),
    ];
    for target in &spellings {
        let o = cs(&[
            "ingest",
            s(&drop),
            s(target),
            "--settle",
            "0",
            "--recheck-delay",
            "0",
        ]);
        o.expect(1);
        assert!(
            o.stderr.starts_with(&format!(
                "ERROR: invalid input: the drop folder ({}) and the target (",
                s(&drop)
            )) && (o.stderr.ends_with(") are the same place\n")
                || o.stderr.ends_with(") overlap (one is inside the other)\n")),
            "{}",
            o.stderr
        );
        assert!(o.stdout.is_empty(), "{}", o.stdout);
        assert_eq!(snapshot(&drop), before, "nothing moved for {}", s(target));
    }
    // The target as the drop folder and the drop folder inside it: the same refusal.
    let o = cs(&["ingest", s(&drop.join("inbox")), s(&drop), "--settle", "0"]);
    o.expect(1);
    assert!(
        o.stderr.contains("overlap (one is inside the other)"),
        "{}",
        o.stderr
    );
    assert_eq!(snapshot(&drop), before);
}

/// A camera's pictures and a server that got only some of them.
fn partial_copy(t: &Path) -> (PathBuf, PathBuf) {
    let (cam, server) = (t.join("cam"), t.join("server"));
    for (p, body) in [
        ("0001.jpg", "jpeg one"),
        ("0002.jpg", "jpeg two"),
        ("day2/0003.jpg", "jpeg three"),
        ("day2/0004.jpg", "jpeg four"),
    ] {
        drop_file(&cam, p, body, OLD);
    }
    std::fs::create_dir_all(server.join("day2")).unwrap();
    std::fs::copy(cam.join("0001.jpg"), server.join("0001.jpg")).unwrap();
    // Cut off mid-way: a shorter 0003.jpg.
    std::fs::write(server.join("day2/0003.jpg"), "jpeg").unwrap();
    drop_file(&server, "extra.jpg", "only on the server", OLD);
    (cam, server)
}

#[test]
fn check_save_report_show_and_resync() {
    let t = tempfile::tempdir().unwrap();
    let (cam, server) = partial_copy(t.path());
    let report = t.path().join("cam.json");
    let o = cs(&[
        "check",
        s(&cam),
        s(&server),
        "--save-report",
        s(&report),
        "--max-age",
        "1d",
    ]);
    o.expect(1);
    assert!(
        o.stderr
            .ends_with(&format!("NOTICE: report saved to {}\n", s(&report)))
    );
    let saved = json(&std::fs::read_to_string(&report).unwrap());
    assert_eq!(saved["source"], s(&cam));
    assert_eq!(saved["destination"], s(&server));
    // The age is kept as written, so a later compare means the same.
    assert_eq!(saved["options"]["filters"]["max_age"], "1d");
    assert_eq!(
        paths(&saved["check"]["missing_on_dst"]),
        ["0002.jpg", "day2/0004.jpg"]
    );

    let o = cs(&["report", "show", s(&report)]);
    o.expect(0);
    let id = saved["id"].as_str().unwrap();
    assert!(o.stdout.starts_with(&format!(
        "report {id}\nsource:      {}\ndestination: {}\nchecked:     ",
        s(&cam),
        s(&server)
    )));
    assert!(o.stdout.contains(
        "\n= 1 identical, * 1 different, + 2 missing on destination, - 1 missing on source, ! 0 \
         errors\n"
    ));
    assert!(o.stdout.contains("\n+ 0002.jpg (src 8 B, "));
    assert!(o.stdout.contains("\n* day2/0003.jpg (src 10 B, "));
    assert!(o.stdout.contains("\n- extra.jpg (dst 18 B, "));
    assert!(!o.stdout.contains("0001.jpg"));
    let all = cs(&["report", "show", s(&report), "--all"]);
    all.expect(0);
    assert!(all.stdout.contains("\n= 0001.jpg ("));
    let o = cs(&["report", "show", s(&report), "--counts"]);
    o.expect(0);
    assert_eq!(o.stdout, "= 1\n* 1\n+ 2\n- 1\n! 0\n");
    let o = cs(&["report", "show", s(&report), "--json"]);
    o.expect(0);
    assert_eq!(json(&o.stdout), saved);

    // Re-run & sync: the two missing files arrive; the different one is left (not asked for),
    // so the follow-up check of the requested files is identical.
    let o = cs(&["report", "resync", s(&report)]);
    o.expect(0);
    assert!(o.stdout.contains(&format!("follow-up of {id}\n")));
    assert!(o.stdout.contains(
        "\n= 2 identical, * 0 different, + 0 missing on destination, - 0 missing on source, ! \
         0 errors\nresync: 2 requested, 2 transferred (17 bytes), 0 skipped, 0 failed\n"
    ));
    let follow = o
        .stdout
        .lines()
        .last()
        .and_then(|l| l.strip_prefix("follow-up report: "))
        .map(PathBuf::from)
        .unwrap_or_else(|| panic!("no follow-up path in:\n{}", o.stdout));
    assert_eq!(follow.parent(), Some(t.path()));
    let name = follow.file_name().unwrap().to_str().unwrap();
    assert!(
        name.starts_with("cam.resync-") && name.ends_with("Z.json"),
        "{name}"
    );
    let f = json(&std::fs::read_to_string(&follow).unwrap());
    assert_eq!(f["follows"], id);
    assert_eq!(f["resync"]["transferred"], 2);
    assert_eq!(
        std::fs::read_to_string(server.join("day2/0004.jpg")).unwrap(),
        "jpeg four"
    );
    assert_eq!(
        std::fs::read_to_string(server.join("day2/0003.jpg")).unwrap(),
        "jpeg"
    );

    // With --include-differ the different one is replaced too; the whole check then passes
    // except for the extra file on the server.
    let out = t.path().join("second.json");
    let o = cs(&[
        "report",
        "resync",
        s(&report),
        "--include-differ",
        "--json",
        "-o",
        s(&out),
    ]);
    o.expect(0);
    let r = json(&o.stdout);
    assert_eq!(r["resync"]["requested"], 3);
    assert_eq!(r["resync"]["transferred"], 1);
    assert_eq!(r["resync"]["already_there"], 2);
    assert_eq!(
        o.stderr,
        format!("NOTICE: follow-up report saved to {}\n", s(&out))
    );
    assert_eq!(json(&std::fs::read_to_string(&out).unwrap()), r);
    assert_eq!(
        std::fs::read_to_string(server.join("day2/0003.jpg")).unwrap(),
        "jpeg three"
    );
    cs(&["check", s(&cam), s(&server), "--one-way"]).expect(0);
}

#[test]
fn resync_of_a_changed_source_is_not_clean() {
    let t = tempfile::tempdir().unwrap();
    let (cam, server) = partial_copy(t.path());
    let report = t.path().join("r.json");
    // Relative locations are stored as absolute paths.
    let o = cli_support::cs_in(
        t.path(),
        &[
            "check",
            "cam",
            "./server",
            "--save-report",
            "r.json",
            "--one-way",
        ],
    );
    o.expect(1);
    let saved = json(&std::fs::read_to_string(&report).unwrap());
    assert_eq!(saved["source"], s(&cam));
    assert_eq!(saved["destination"], s(&server));
    assert_eq!(saved["options"]["one_way"], true);
    // 0002.jpg changed size on the camera since the report: skipped, so not identical.
    drop_file(&cam, "0002.jpg", "a longer jpeg two", OLD);
    let o = cs(&["report", "resync", s(&report)]);
    o.expect(1);
    assert!(
        o.stdout
            .contains("resync: 2 requested, 1 transferred (9 bytes), 1 skipped, 0 failed\n")
    );
    assert!(
        o.stdout.contains(
            "  skipped 0002.jpg: changed on the source since the report (size 8 -> 17)\n"
        )
    );
    assert!(!server.join("0002.jpg").exists());
    // --transfer-changed takes it anyway.
    let o = cs(&["report", "resync", s(&report), "--transfer-changed"]);
    o.expect(0);
    assert_eq!(
        std::fs::read_to_string(server.join("0002.jpg")).unwrap(),
        "a longer jpeg two"
    );
}

#[test]
fn report_errors_have_exact_messages() {
    let t = tempfile::tempdir().unwrap();
    let missing = t.path().join("missing.json");
    let o = cs(&["report", "show", s(&missing)]);
    o.expect(4);
    assert_eq!(
        o.stderr,
        format!(
            "ERROR: cannot read report {}: No such file or directory (os error 2)\n",
            s(&missing)
        )
    );
    let o = cs(&["report", "resync", s(&missing)]);
    o.expect(4);
    assert_eq!(
        o.stderr,
        format!(
            "ERROR: cannot read report {}: No such file or directory (os error 2)\n",
            s(&missing)
        )
    );
    let bad = t.path().join("bad.json");
    std::fs::write(&bad, "{}").unwrap();
    let o = cs(&["report", "show", s(&bad)]);
    o.expect(1);
    assert_eq!(
        o.stderr,
        format!(
            "ERROR: cannot read report {}: not a compare report: missing field `format` at line 1 \
             column 2\n",
            s(&bad)
        )
    );
    // A report whose source has gone away: the location is named.
    let (cam, server) = partial_copy(t.path());
    let report = t.path().join("r.json");
    cs(&["check", s(&cam), s(&server), "--save-report", s(&report)]).expect(1);
    let text = std::fs::read_to_string(&report)
        .unwrap()
        .replace(s(&cam), "nas:cam");
    std::fs::write(&report, text).unwrap();
    let o = cs(&["report", "resync", s(&report)]);
    o.expect(1);
    assert!(
        o.stderr
            .starts_with("ERROR: the report's source \"nas:cam\": "),
        "{}",
        o.stderr
    );
    // Saving to a directory that does not exist fails after the check, with the path.
    let o = cs(&[
        "check",
        s(&cam),
        s(&server),
        "--save-report",
        s(&t.path().join("no/such/dir/r.json")),
    ]);
    o.expect(1);
    assert!(
        o.stderr.contains(&format!(
            "ERROR: cannot save the report to {}: ",
            s(&t.path().join("no/such/dir/r.json"))
        )),
        "{}",
        o.stderr
    );
}
