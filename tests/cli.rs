//! The `cloudsync` example CLI: every command, flag parsing, exit codes and config errors.

mod cli_support;

use std::path::Path;

use cli_support::{Node, cs, cs_cmd, cs_in, mkdir, put, s, snapshot};

/// A small source tree: `a.txt`, `b.log`, `sub/c.txt`, `sub/deep/d.txt`, `empty/`.
fn sample(root: &Path) {
    put(root, "a.txt", "alpha", 0);
    put(root, "b.log", "log line", 10);
    put(root, "sub/c.txt", "charlie!", 20);
    put(root, "sub/deep/d.txt", "delta delta", 30);
    mkdir(root, "empty");
}

fn files(root: &Path) -> Vec<String> {
    snapshot(root)
        .into_iter()
        .filter(|(_, n)| matches!(n, Node::File { .. }))
        .map(|(p, _)| p)
        .collect()
}

#[test]
fn help_and_version_exit_0() {
    let o = cs(&["--help"]);
    o.expect(0);
    assert!(o.stdout.contains("Usage: cloudsync [OPTIONS] <COMMAND>"));
    for cmd in [
        "copy", "sync", "move", "check", "ls", "lsjson", "delete", "purge", "cleanup", "rmdirs",
        "mkdir", "cat", "config", "ingest", "report",
    ] {
        assert!(
            o.stdout.contains(&format!("\n  {cmd} ")),
            "{cmd} missing from help"
        );
    }
    cs(&["--version"]).expect(0);
    cs(&["sync", "--help"]).expect(0);
}

#[test]
fn usage_errors_exit_1() {
    let o = cs(&["sync", "a"]);
    o.expect(1);
    assert!(
        o.stderr
            .contains("error: the following required arguments were not provided:")
    );
    let o = cs(&["frobnicate"]);
    o.expect(1);
    assert!(
        o.stderr
            .contains("error: unrecognized subcommand 'frobnicate'")
    );
    let o = cs(&["ls", ".", "--no-such-flag"]);
    o.expect(1);
    assert!(
        o.stderr
            .contains("error: unexpected argument '--no-such-flag' found")
    );
    let o = cs(&["ls", ".", "--min-size", "abc"]);
    o.expect(1);
    assert!(o.stderr.starts_with(
        "error: invalid value 'abc' for '--min-size <SIZE>': size \"abc\": unknown suffix"
    ));
    let o = cs(&["ls", ".", "--max-age", "yesterday"]);
    o.expect(1);
    assert!(
        o.stderr.starts_with(
            "error: invalid value 'yesterday' for '--max-age <AGE>': age \"yesterday\""
        )
    );
    let o = cs(&["sync", "a", "b", "--modify-window=-1s"]);
    o.expect(1);
    assert!(o.stderr.starts_with(
        "error: invalid value '-1s' for '--modify-window <DURATION>': duration \"-1s\": negative \
         durations are not supported"
    ));
    let o = cs(&["ls", ".", "--files-only", "--dirs-only"]);
    o.expect(1);
    assert!(o.stderr.contains("cannot be used with"));
    let o = cs(&["ls", ".", "-v", "-q"]);
    o.expect(1);
    // A bad glob is a usage error too, reported by the filter compiler.
    let o = cs(&["ls", ".", "--include", "a{b"]);
    o.expect(1);
    assert!(
        o.stderr
            .starts_with("ERROR: invalid input: --include \"a{b\"")
    );
}

/// The flags of the layers around network remotes: bad values are usage errors naming the flag
/// and the value; good ones are accepted before or after the command, and a copy between two
/// layered (memory) remotes still works with them.
#[test]
fn layer_flags() {
    for (args, want) in [
        (
            vec!["--tpslimit", "fast"],
            "error: invalid value 'fast' for '--tpslimit <N>': \"fast\" is not a number",
        ),
        (
            vec!["--tpslimit=-2"],
            "error: invalid value '-2' for '--tpslimit <N>'",
        ),
        (
            vec!["--tpslimit-burst", "0"],
            "error: invalid value '0' for '--tpslimit-burst <N>'",
        ),
        (
            vec!["--timeout", "soon"],
            "error: invalid value 'soon' for '--timeout <DURATION>': duration \"soon\"",
        ),
        (
            vec!["--contimeout=-1s"],
            "error: invalid value '-1s' for '--contimeout <DURATION>'",
        ),
        (
            vec!["--retries-sleep", "1x"],
            "error: invalid value '1x' for '--retries-sleep <DURATION>'",
        ),
    ] {
        let mut argv = vec!["copy", "memory://a", "memory://b"];
        argv.extend(args);
        let o = cs(&argv);
        o.expect(1);
        assert!(o.stderr.starts_with(want), "{argv:?}: {}", o.stderr);
    }
    cs(&[
        "--tpslimit",
        "50",
        "--tpslimit-burst",
        "4",
        "--timeout",
        "10s",
        "--contimeout",
        "5s",
        "ls",
        "memory://empty",
    ])
    .expect(0);
    let t = tempfile::tempdir().unwrap();
    sample(t.path());
    cs(&[
        "copy",
        s(t.path()),
        "memory://m",
        "--tpslimit",
        "1000",
        "--retries-sleep",
        "1s",
        "--low-level-retries",
        "2",
        "--timeout",
        "0",
    ])
    .expect(0);
}

#[test]
fn ls_formats_like_lsf() {
    let t = tempfile::tempdir().unwrap();
    sample(t.path());
    let root = s(t.path());
    let o = cs(&["ls", root]);
    o.expect(0);
    assert_eq!(o.lines(), ["a.txt", "b.log", "empty/", "sub/"]);
    let o = cs(&["ls", "-R", root]);
    o.expect(0);
    assert_eq!(
        o.lines(),
        [
            "a.txt",
            "b.log",
            "empty/",
            "sub/",
            "sub/c.txt",
            "sub/deep/",
            "sub/deep/d.txt"
        ]
    );
    let o = cs(&["ls", "-R", "--files-only", root, "--include", "*.txt"]);
    assert_eq!(o.lines(), ["a.txt", "sub/c.txt", "sub/deep/d.txt"]);
    let o = cs(&["ls", "--recursive", "--dirs-only", root]);
    assert_eq!(o.lines(), ["empty/", "sub/", "sub/deep/"]);
    let o = cs(&["ls", "-R", root, "--max-depth", "2", "--exclude", "*.log"]);
    assert_eq!(
        o.lines(),
        ["a.txt", "empty/", "sub/", "sub/c.txt", "sub/deep/"]
    );
    // `lsf` is accepted as an alias; a relative location works from the current directory.
    let o = cs_in(t.path(), &["lsf", "sub"]);
    o.expect(0);
    assert_eq!(o.lines(), ["c.txt", "deep/"]);
}

#[test]
fn ls_missing_directory_exits_3() {
    let t = tempfile::tempdir().unwrap();
    let missing = t.path().join("nope");
    let o = cs(&["ls", s(&missing)]);
    o.expect(3);
    assert_eq!(
        o.stderr,
        format!(
            "ERROR: not found: directory not found: {}\n",
            missing.display()
        )
    );
}

#[test]
fn lsjson_entries() {
    let t = tempfile::tempdir().unwrap();
    sample(t.path());
    let o = cs(&["lsjson", s(t.path()), "-R", "--hash"]);
    o.expect(0);
    let v: serde_json::Value = serde_json::from_str(&o.stdout).unwrap();
    let arr = v.as_array().unwrap();
    assert_eq!(arr.len(), 7);
    let a = &arr[0];
    assert_eq!(a["Path"], "a.txt");
    assert_eq!(a["Name"], "a.txt");
    assert_eq!(a["Size"], 5);
    assert_eq!(a["IsDir"], false);
    assert_eq!(a["MimeType"], "text/plain; charset=utf-8");
    assert_eq!(a["ModTime"], "2023-11-14T22:13:20.000000000Z");
    let md5 = a["Hashes"]["md5"].as_str().unwrap();
    assert_eq!(md5, "2c1743a391305fbf367df8e4f069f9f9"); // md5("alpha")
    let d = arr.iter().find(|e| e["Path"] == "sub/deep").unwrap();
    assert_eq!(d["Name"], "deep");
    assert_eq!(d["IsDir"], true);
    assert_eq!(d["Size"], -1);
    assert!(d.get("Hashes").is_none());
    // Without --hash there are no hashes.
    let o = cs(&["lsjson", s(t.path())]);
    let v: serde_json::Value = serde_json::from_str(&o.stdout).unwrap();
    assert!(v[0].get("Hashes").is_none());
}

#[test]
fn copy_sync_move_and_json_summary() {
    let t = tempfile::tempdir().unwrap();
    let (src, dst) = (t.path().join("src"), t.path().join("dst"));
    sample(&src);
    let o = cs(&["copy", s(&src), s(&dst), "--json", "-q"]);
    o.expect(0);
    let sum: serde_json::Value = serde_json::from_str(&o.stdout).unwrap();
    assert_eq!(sum["transferred"], 4);
    assert_eq!(sum["bytes"], 32);
    assert_eq!(sum["errors"].as_array().unwrap().len(), 0);
    assert_eq!(o.stderr, "");
    let (a, b) = (snapshot(&src), snapshot(&dst));
    assert_eq!(
        a.into_iter()
            .filter(|(p, _)| p != "empty")
            .collect::<Vec<_>>(),
        b.into_iter().collect::<Vec<_>>()
    );

    // sync deletes extras; -v names every change.
    put(&dst, "extra.txt", "x", 0);
    put(&src, "a.txt", "ALPHA!", 100);
    let o = cs(&["sync", s(&src), s(&dst), "-v"]);
    o.expect(0);
    assert!(
        o.stderr
            .contains("INFO: a.txt: Copied (replaced existing)\n")
    );
    assert!(o.stderr.contains("INFO: extra.txt: Deleted\n"));
    assert!(!dst.join("extra.txt").exists());

    // --error-on-no-transfer: nothing to do gives 9.
    cs(&["sync", s(&src), s(&dst), "--error-on-no-transfer"]).expect(9);
    cs(&["sync", s(&src), s(&dst)]).expect(0);

    // move empties the source (files), and --delete-empty-src-dirs its directories. (The
    // destination exists: into a missing one the whole folder is renamed, see cli_rclone.rs.)
    let moved = t.path().join("moved");
    std::fs::create_dir(&moved).unwrap();
    let o = cs(&[
        "move",
        s(&src),
        s(&moved),
        "--delete-empty-src-dirs",
        "--create-empty-src-dirs",
    ]);
    o.expect(0);
    assert_eq!(files(&src), Vec::<String>::new());
    assert_eq!(
        files(&moved),
        ["a.txt", "b.log", "sub/c.txt", "sub/deep/d.txt"]
    );
    assert!(moved.join("empty").is_dir());
}

#[test]
fn filters_dry_run_and_compare_flags() {
    let t = tempfile::tempdir().unwrap();
    let (src, dst) = (t.path().join("src"), t.path().join("dst"));
    sample(&src);
    let o = cs(&["copy", s(&src), s(&dst), "--dry-run"]);
    o.expect(0);
    assert!(!dst.exists());
    assert!(
        o.stderr
            .contains("NOTICE: a.txt: skipped copy as --dry-run is set (missing on destination)")
    );
    assert!(o.stderr.contains("(dry run) Transferred: 4 files"));

    cs(&[
        "copy",
        s(&src),
        s(&dst),
        "--exclude",
        "*.log",
        "--min-size",
        "6B",
    ])
    .expect(0);
    assert_eq!(files(&dst), ["sub/c.txt", "sub/deep/d.txt"]);

    let rules = t.path().join("rules");
    std::fs::write(&rules, "+ /a.txt\n- *\n").unwrap();
    cs(&["copy", s(&src), s(&dst), "--filter-from", s(&rules)]).expect(0);
    assert_eq!(files(&dst), ["a.txt", "sub/c.txt", "sub/deep/d.txt"]);

    // Same size, different content and modtime: --size-only keeps it, the default replaces it.
    put(&dst, "a.txt", "ALPHA", 500);
    cs(&["copy", s(&src), s(&dst), "--size-only"]).expect(0);
    assert_eq!(std::fs::read_to_string(dst.join("a.txt")).unwrap(), "ALPHA");
    // --update: the destination is newer, so it stays.
    cs(&["copy", s(&src), s(&dst), "-u"]).expect(0);
    assert_eq!(std::fs::read_to_string(dst.join("a.txt")).unwrap(), "ALPHA");
    cs(&["copy", s(&src), s(&dst), "--ignore-existing"]).expect(0);
    assert_eq!(std::fs::read_to_string(dst.join("a.txt")).unwrap(), "ALPHA");
    cs(&[
        "copy",
        s(&src),
        s(&dst),
        "-c",
        "--transfers",
        "1",
        "--checkers",
        "1",
    ])
    .expect(0);
    assert_eq!(std::fs::read_to_string(dst.join("a.txt")).unwrap(), "alpha");
}

#[test]
fn files_from_and_single_file_source() {
    let t = tempfile::tempdir().unwrap();
    let (src, dst) = (t.path().join("src"), t.path().join("dst"));
    sample(&src);
    let list = t.path().join("list");
    std::fs::write(&list, "sub/c.txt\n# comment\nb.log\n").unwrap();
    cs(&["copy", s(&src), s(&dst), "--files-from", s(&list)]).expect(0);
    assert_eq!(files(&dst), ["b.log", "sub/c.txt"]);
    let o = cs(&[
        "copy",
        s(&src),
        s(&dst),
        "--files-from",
        s(&list),
        "--include",
        "*",
    ]);
    o.expect(1);
    assert!(
        o.stderr
            .contains("--files-from overrides all other filters")
    );

    let single = t.path().join("single");
    cs(&["copy", s(&src.join("sub/deep/d.txt")), s(&single)]).expect(0);
    assert_eq!(files(&single), ["d.txt"]);
}

#[test]
fn backup_dir_must_be_inside_destination() {
    let t = tempfile::tempdir().unwrap();
    let (src, dst) = (t.path().join("src"), t.path().join("dst"));
    sample(&src);
    cs(&["sync", s(&src), s(&dst)]).expect(0);
    put(&src, "a.txt", "new alpha", 1000);
    put(&dst, "gone.txt", "bye", 0);
    let backup = dst.join(".old");
    cs(&["sync", s(&src), s(&dst), "--backup-dir", s(&backup)]).expect(0);
    assert_eq!(
        std::fs::read_to_string(backup.join("a.txt")).unwrap(),
        "alpha"
    );
    assert_eq!(
        std::fs::read_to_string(backup.join("gone.txt")).unwrap(),
        "bye"
    );
    assert!(!dst.join("gone.txt").exists());

    let outside = t.path().join("old");
    let o = cs(&["sync", s(&src), s(&dst), "--backup-dir", s(&outside)]);
    o.expect(1);
    assert_eq!(
        o.stderr,
        format!(
            "ERROR: invalid input: --backup-dir {:?} must be a directory inside the destination \
             {:?} (same remote; the sync never enters it)\n",
            s(&outside),
            s(&dst)
        )
    );
}

#[test]
fn max_delete_stops_deletions() {
    let t = tempfile::tempdir().unwrap();
    let (src, dst) = (t.path().join("src"), t.path().join("dst"));
    put(&src, "keep", "k", 0);
    for i in 0..3 {
        put(&dst, &format!("x{i}"), "x", 0);
    }
    let o = cs(&["sync", s(&src), s(&dst), "--max-delete", "1"]);
    o.expect(6);
    assert!(
        o.stderr
            .contains("ERROR: conflict: max delete limit (1) reached")
    );
    assert_eq!(files(&dst).len(), 3); // keep + 2 of the 3 extras
}

#[test]
fn limit_flags_reject_bad_values() {
    for (flag, value, why) in [
        (
            "--bwlimit",
            "10Q",
            "bandwidth \"10Q\": size \"10Q\": unknown suffix",
        ),
        (
            "--bwlimit",
            "25:00,1M",
            "bandwidth \"25:00,1M\": \"25:00\" is not a time (HH:MM)",
        ),
        (
            "--bwlimit-file",
            "Xyz-08:00,1M",
            "bandwidth \"Xyz-08:00,1M\": \"Xyz\" is not a weekday",
        ),
        ("--max-transfer", "1X", "size \"1X\": unknown suffix"),
        ("--max-duration", "soon", "duration \"soon\""),
        (
            "--cutoff-mode",
            "gentle",
            "cutoff mode \"gentle\": expected hard, soft or cautious",
        ),
    ] {
        let o = cs(&["sync", "a", "b", flag, value]);
        o.expect(1);
        let head = format!("error: invalid value '{value}' for '{flag} <");
        assert!(o.stderr.starts_with(&head), "{flag}: {}", o.stderr);
        assert!(o.stderr.contains(why), "{flag}: {}", o.stderr);
    }
}

/// 6 MiB local to local at 4 MiB/s: 1.5 s (± 20 %). `4M:off` limits only network remotes.
#[test]
fn bwlimit_holds_the_rate() {
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("src");
    std::fs::create_dir_all(&src).unwrap();
    for i in 0..3 {
        std::fs::write(src.join(format!("f{i}")), vec![b'x'; 2 << 20]).unwrap();
    }
    let timed = |dst: &str, limit: &str| {
        let start = std::time::Instant::now();
        cs(&["copy", s(&src), s(&t.path().join(dst)), "--bwlimit", limit]).expect(0);
        start.elapsed().as_secs_f64()
    };
    let took = timed("dst", "4M");
    assert!((1.2..=1.8).contains(&took), "took {took} s");
    assert_eq!(files(&t.path().join("dst")), ["f0", "f1", "f2"]);
    let took = timed("dst2", "4M:off");
    assert!(
        took < 1.0,
        "a local copy is not limited by UP:DOWN; took {took} s"
    );
}

/// Five files of 100 KiB, `--max-transfer 250k`: each mode stops where it should, exits 8
/// and deletes nothing.
#[test]
fn max_transfer_stops_the_run_and_deletes_nothing() {
    for (mode, copied) in [
        ("hard", &["f0", "f1"][..]),
        ("soft", &["f0", "f1", "f2"]),
        ("cautious", &["f0", "f1"]),
    ] {
        let t = tempfile::tempdir().unwrap();
        let (src, dst) = (t.path().join("src"), t.path().join("dst"));
        for i in 0..5 {
            put(&src, &format!("f{i}"), &"x".repeat(100 << 10), 0);
        }
        put(&dst, "extra", "keep me", 0);
        let o = cs(&[
            "sync",
            s(&src),
            s(&dst),
            "--transfers",
            "1",
            "--max-transfer",
            "250k",
            "--cutoff-mode",
            mode,
        ]);
        o.expect(8);
        assert!(
            o.stderr.contains(
                "ERROR: max transfer reached: max transfer limit reached as set by --max-transfer"
            ),
            "{mode}: {}",
            o.stderr
        );
        let mut want: Vec<&str> = copied.to_vec();
        want.insert(0, "extra");
        assert_eq!(
            files(&dst),
            want,
            "{mode}: nothing partial, nothing deleted"
        );
    }
}

/// 100 KiB files at 100 KiB/s, `--max-duration 1.5s`: the second file starts before the limit
/// and finishes (soft); the third never starts. Exit code 10, nothing deleted.
#[test]
fn max_duration_stops_starting_transfers() {
    let t = tempfile::tempdir().unwrap();
    let (src, dst) = (t.path().join("src"), t.path().join("dst"));
    for i in 0..4 {
        put(&src, &format!("f{i}"), &"x".repeat(100 << 10), 0);
    }
    put(&dst, "extra", "keep me", 0);
    let o = cs(&[
        "sync",
        s(&src),
        s(&dst),
        "--transfers",
        "1",
        "--bwlimit",
        "100k",
        "--max-duration",
        "1.5s",
        "--cutoff-mode",
        "soft",
    ]);
    o.expect(10);
    assert!(
        o.stderr.contains("ERROR: max duration reached"),
        "{}",
        o.stderr
    );
    assert_eq!(files(&dst), ["extra", "f0", "f1"]);
}

#[test]
fn sync_missing_source_exits_3() {
    let t = tempfile::tempdir().unwrap();
    let missing = t.path().join("missing");
    let o = cs(&["sync", s(&missing), s(&t.path().join("dst"))]);
    o.expect(3);
    assert_eq!(
        o.stderr,
        format!(
            "ERROR: not found: source directory not found ({})\n",
            missing.display()
        )
    );
}

#[test]
fn sync_from_missing_object_store_prefix_exits_3_and_keeps_dst() {
    // `memory://x/typo` is a directory of the (empty) store `x` that does not exist: like a
    // missing local directory it must stop the sync, never be mirrored as an empty tree.
    let t = tempfile::tempdir().unwrap();
    let dst = t.path().join("backup");
    sample(&dst);
    let before = snapshot(&dst);
    let o = cs(&["sync", "memory://x/typo", s(&dst)]);
    o.expect(3);
    assert!(
        o.stderr.contains("directory not found"),
        "stderr: {}",
        o.stderr
    );
    assert_eq!(snapshot(&dst), before);
}

#[test]
fn failed_files_exit_6_with_one_line_each() {
    let t = tempfile::tempdir().unwrap();
    let (src, dst) = (t.path().join("src"), t.path().join("dst"));
    put(&src, "blocker", "I am a file", 0);
    put(&src, "fine.txt", "ok", 0);
    mkdir(&dst, "blocker/inside");
    let o = cs(&["copy", s(&src), s(&dst), "--retries", "1"]);
    o.expect(6);
    let errors: Vec<&str> = o
        .stderr
        .lines()
        .filter(|l| l.starts_with("ERROR: "))
        .collect();
    assert_eq!(errors.len(), 1, "{}", o.stderr);
    assert!(errors[0].starts_with("ERROR: blocker: "), "{}", errors[0]);
    assert!(dst.join("fine.txt").exists());
}

#[test]
fn check_reports_and_exit_codes() {
    let t = tempfile::tempdir().unwrap();
    let (src, dst) = (t.path().join("src"), t.path().join("dst"));
    sample(&src);
    cs(&["sync", s(&src), s(&dst)]).expect(0);
    let o = cs(&["check", s(&src), s(&dst), "--combined", "-"]);
    o.expect(0);
    assert_eq!(
        o.lines(),
        ["= a.txt", "= b.log", "= sub/c.txt", "= sub/deep/d.txt"]
    );

    put(&dst, "a.txt", "ALPHA", 0); // same size, different content
    put(&dst, "only-dst", "d", 0);
    std::fs::remove_file(dst.join("sub/c.txt")).unwrap();
    let out = t.path().join("reports");
    mkdir(&out, "");
    let f = |n: &str| out.join(n).to_string_lossy().into_owned();
    let o = cs(&[
        "check",
        s(&src),
        s(&dst),
        "--combined",
        &f("combined"),
        "--missing-on-dst",
        &f("mdst"),
        "--missing-on-src",
        &f("msrc"),
        "--differ",
        &f("differ"),
        "--match",
        &f("match"),
        "--error",
        &f("error"),
    ]);
    o.expect(1);
    let read = |n: &str| std::fs::read_to_string(out.join(n)).unwrap();
    assert_eq!(
        read("combined"),
        "* a.txt\n= b.log\n- only-dst\n+ sub/c.txt\n= sub/deep/d.txt\n"
    );
    assert_eq!(read("mdst"), "sub/c.txt\n");
    assert_eq!(read("msrc"), "only-dst\n");
    assert_eq!(read("differ"), "a.txt\n");
    assert_eq!(read("match"), "b.log\nsub/deep/d.txt\n");
    assert_eq!(read("error"), "");
    assert!(o.stderr.contains(
        "NOTICE: 2 matching files, 3 differences found (1 missing on destination, 1 missing on \
         source, 1 differ), 0 errors"
    ));

    // --size-only misses the same-size change; --one-way ignores extra destination files.
    let o = cs(&[
        "check",
        s(&src),
        s(&dst),
        "--size-only",
        "--one-way",
        "--combined",
        "-",
    ]);
    o.expect(1);
    assert_eq!(
        o.lines(),
        ["= a.txt", "= b.log", "+ sub/c.txt", "= sub/deep/d.txt"]
    );
    let o = cs(&["check", s(&src), s(&dst), "--download", "--json", "-q"]);
    o.expect(1);
    let r: serde_json::Value = serde_json::from_str(&o.stdout).unwrap();
    assert_eq!(r["method"], "download");
    assert_eq!(r["differ"][0]["path"], "a.txt");
    assert_eq!(r["missing_on_dst"][0]["path"], "sub/c.txt");
    assert_eq!(r["missing_on_src"][0]["path"], "only-dst");
    let o = cs(&[
        "check",
        s(&src),
        s(&dst),
        "--exclude",
        "{a.txt,only-dst,sub/c.txt}",
    ]);
    o.expect(0);
}

#[test]
fn delete_purge_rmdirs_mkdir_cat_cleanup() {
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("r");
    sample(&root);
    let o = cs(&["delete", s(&root), "--include", "*.txt", "--dry-run"]);
    o.expect(0);
    assert_eq!(files(&root).len(), 4);
    cs(&["delete", s(&root), "--include", "*.txt"]).expect(0);
    assert_eq!(files(&root), ["b.log"]);
    assert!(root.join("sub/deep").is_dir());

    cs(&["rmdirs", s(&root), "--leave-root"]).expect(0);
    assert!(!root.join("sub").exists());
    assert!(!root.join("empty").exists());
    assert!(root.is_dir());

    let made = root.join("x/y/z");
    cs(&["mkdir", s(&made)]).expect(0);
    assert!(made.is_dir());
    cs(&["rmdirs", s(&root.join("x"))]).expect(0);
    assert!(!root.join("x").exists());

    put(&root, "data.bin", "0123456789", 0);
    let o = cs(&["cat", s(&root.join("data.bin"))]);
    o.expect(0);
    assert_eq!(o.stdout, "0123456789");
    let o = cs(&[
        "cat",
        s(&root.join("data.bin")),
        "--offset",
        "3",
        "--count",
        "4",
    ]);
    assert_eq!(o.stdout, "3456");
    let o = cs(&["cat", s(&root.join("data.bin")), "--offset", "7"]);
    assert_eq!(o.stdout, "789");
    let o = cs(&["cat", s(&root.join("nope.bin"))]);
    o.expect(4);
    assert!(o.stderr.starts_with("ERROR: not found: "));

    let o = cs(&["cleanup", s(&root)]);
    o.expect(1);
    assert_eq!(
        o.stderr,
        format!(
            "ERROR: unsupported: {r} does not support cleanup (cleanup {r})\n",
            r = root.display()
        )
    );

    put(&root, "p/q/r.txt", "r", 0);
    cs(&["purge", s(&root.join("p")), "--dry-run"]).expect(0);
    assert!(root.join("p/q/r.txt").exists());
    cs(&["purge", s(&root.join("p"))]).expect(0);
    assert!(!root.join("p").exists());
    assert!(root.join("data.bin").exists());
}

#[test]
fn named_remotes_from_config() {
    let t = tempfile::tempdir().unwrap();
    let data = t.path().join("data");
    sample(&data);
    let cfg = t.path().join("cloudsync.toml");
    std::fs::write(
        &cfg,
        format!(
            "[remotes.home]\ntype = \"local\"\nroot = {:?}\n\n[remotes.scratch]\ntype = \
             \"memory\"\n\n[remotes.h]\ntype = \"local\"\nroot = {:?}\n",
            s(&data),
            s(&data)
        ),
    )
    .unwrap();
    let o = cs(&["--config", s(&cfg), "ls", "home:sub"]);
    o.expect(0);
    assert_eq!(o.lines(), ["c.txt", "deep/"]);
    // A one-letter name is a remote, as in rclone on Linux.
    let o = cs(&["--config", s(&cfg), "ls", "h:sub"]);
    o.expect(0);
    assert_eq!(o.lines(), ["c.txt", "deep/"]);
    // CLOUDSYNC_CONFIG names the file too; flags may come after the command.
    let o = cs_cmd(&["ls", "home:", "-R", "--files-only"])
        .env("CLOUDSYNC_CONFIG", &cfg)
        .output()
        .unwrap();
    assert!(o.status.success());
    assert_eq!(String::from_utf8_lossy(&o.stdout).lines().count(), 4);
    // The default location: $XDG_CONFIG_HOME/cloudsync/cloudsync.toml.
    let xdg = t.path().join("xdg");
    mkdir(&xdg, "cloudsync");
    std::fs::copy(&cfg, xdg.join("cloudsync/cloudsync.toml")).unwrap();
    let o = cs_cmd(&["ls", "home:"])
        .env("XDG_CONFIG_HOME", &xdg)
        .output()
        .unwrap();
    assert!(o.status.success(), "{o:?}");
    // A copy into the memory remote works within one process.
    cs(&["--config", s(&cfg), "copy", "home:sub", "scratch:x"]).expect(0);
    let o = cs(&["--config", s(&cfg), "ls", "nas:"]);
    o.expect(1);
    assert_eq!(
        o.stderr,
        "ERROR: invalid configuration: remote \"nas\" is not in the config file\n"
    );
}

#[test]
fn config_errors_have_exact_messages() {
    let t = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| {
        let p = t.path().join(name);
        std::fs::write(&p, text).unwrap();
        p
    };
    let run = |cfg: &Path| cs(&["--config", s(cfg), "ls", "nas:"]);

    let p = write("type.toml", "[remotes.nas]\ntype = \"floppy\"\n");
    let o = run(&p);
    o.expect(1);
    assert_eq!(
        o.stderr,
        format!(
            "ERROR: invalid configuration: {}: remote \"nas\": unknown remote type \"floppy\" \
             (known: {}; is its cargo feature enabled?)\n",
            p.display(),
            known_types()
        )
    );

    let p = write("notype.toml", "[remotes.nas]\nroot = \"/\"\n");
    let o = run(&p);
    o.expect(1);
    assert_eq!(
        o.stderr,
        format!(
            "ERROR: invalid configuration: {}: remote \"nas\": missing key `type`\n",
            p.display()
        )
    );

    let p = write(
        "key.toml",
        "[remotes.nas]\ntype = \"local\"\nrooot = \"/\"\n",
    );
    let o = run(&p);
    o.expect(1);
    assert_eq!(
        o.stderr,
        format!(
            "ERROR: invalid configuration: {}: remote \"nas\": local config: unknown field \
             `rooot`, expected one of `root`, `follow_symlinks`, `fsync`\n",
            p.display()
        )
    );

    let p = write("missing.toml", "[remotes.nas]\ntype = \"local\"\n");
    let o = run(&p);
    o.expect(1);
    assert_eq!(
        o.stderr,
        format!(
            "ERROR: invalid configuration: {}: remote \"nas\": local config: key `root` is \
             required (the directory to sync)\n",
            p.display()
        )
    );

    let p = write("syntax.toml", "[remotes.nas\n");
    let o = run(&p);
    o.expect(1);
    assert!(
        o.stderr.starts_with(&format!(
            "ERROR: invalid configuration: {}: config: ",
            p.display()
        )),
        "{}",
        o.stderr
    );

    let p = write("top.toml", "[remote.nas]\ntype = \"local\"\n");
    let o = run(&p);
    o.expect(1);
    assert!(o.stderr.contains("unknown field `remote`"), "{}", o.stderr);

    // An explicit config file must exist; the default one need not.
    let p = t.path().join("absent.toml");
    let o = run(&p);
    o.expect(1);
    assert_eq!(
        o.stderr,
        format!(
            "ERROR: invalid configuration: cannot read config file {}: No such file or \
             directory (os error 2)\n",
            p.display()
        )
    );
    cs(&["ls", s(t.path())]).expect(0);

    let o = cs(&["ls", "sftp://[broken"]);
    o.expect(1);
    assert_eq!(
        o.stderr,
        "ERROR: invalid input: invalid URL \"sftp://[broken\": invalid IPv6 address\n"
    );
    let o = cs(&["ls", "floppy://x/y"]);
    o.expect(1);
    assert!(
        o.stderr
            .starts_with("ERROR: invalid configuration: unknown URL scheme \"floppy\" (known: "),
        "{}",
        o.stderr
    );
}

/// The backend types this build registers, as the registry lists them in errors.
fn known_types() -> String {
    // Ask the registry by provoking the error with a type name that cannot exist.
    let t = tempfile::tempdir().unwrap();
    let p = t.path().join("c.toml");
    std::fs::write(&p, "[remotes.zz]\ntype = \"\"\n").unwrap();
    let o = cs(&["--config", s(&p), "ls", "zz:"]);
    let msg = o.stderr;
    let start = msg.find("(known: ").expect("known list") + "(known: ".len();
    let end = msg[start..].find(';').expect("end of list") + start;
    msg[start..end].to_owned()
}

#[test]
fn config_show_masks_secrets() {
    let t = tempfile::tempdir().unwrap();
    let cfg = t.path().join("c.toml");
    std::fs::write(
        &cfg,
        "[remotes.box]\ntype = \"memory\"\nname = \"box\"\ntoken = \"s3cr3t-token\"\n\n\
         [remotes.disk]\ntype = \"local\"\nroot = \"/srv\"\npassword = \"hunter2\"\n\
         password_env = \"DISK_PASS\"\n",
    )
    .unwrap();
    let o = cs(&["--config", s(&cfg), "config", "show"]);
    o.expect(0);
    assert!(!o.stdout.contains("s3cr3t"), "{}", o.stdout);
    assert!(!o.stdout.contains("hunter2"), "{}", o.stdout);
    let shown: toml::Table = toml::from_str(&o.stdout).unwrap();
    assert_eq!(shown["remotes"]["box"]["token"].as_str(), Some("***"));
    assert_eq!(shown["remotes"]["disk"]["password"].as_str(), Some("***"));
    assert_eq!(
        shown["remotes"]["disk"]["password_env"].as_str(),
        Some("DISK_PASS")
    );
    assert_eq!(shown["remotes"]["disk"]["root"].as_str(), Some("/srv"));
    let o = cs(&["--config", s(&cfg), "config", "show", "disk"]);
    let shown: toml::Table = toml::from_str(&o.stdout).unwrap();
    assert_eq!(shown["remotes"].as_table().unwrap().len(), 1);
    let o = cs(&["--config", s(&cfg), "config", "show", "nope"]);
    o.expect(1);
    let o = cs(&["--config", s(&cfg), "config", "file"]);
    assert_eq!(o.stdout, format!("{} (exists)\n", cfg.display()));
}

#[test]
fn progress_is_quiet_without_a_terminal() {
    let t = tempfile::tempdir().unwrap();
    let (src, dst) = (t.path().join("src"), t.path().join("dst"));
    sample(&src);
    let o = cs(&["copy", s(&src), s(&dst), "-P"]);
    o.expect(0);
    assert_eq!(o.stdout, "");
    assert!(!o.stderr.contains("ETA"), "{}", o.stderr);
    assert!(
        o.stderr.starts_with("Transferred: 4 files, 32 B"),
        "{}",
        o.stderr
    );
    let o = cs(&["copy", s(&src), s(&dst), "-q", "--stats-one-line"]);
    o.expect(0);
    assert_eq!(o.stderr, "");
}

#[test]
fn one_place_under_two_spellings_is_refused_and_nothing_is_touched() {
    // `move /data/a /data/b/../a` and `move /data/a /data/link-to-a` used to delete every file.
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path();
    sample(&data.join("a"));
    mkdir(data, "b");
    std::os::unix::fs::symlink(data.join("a"), data.join("link-to-a")).unwrap();
    let before = snapshot(&data.join("a"));
    let a = s(&data.join("a")).to_owned();
    let spellings = [
        s(&data.join("b/../a")).to_owned(),
        s(&data.join("link-to-a")).to_owned(),
        s(&data.join("link-to-a/sub")).to_owned(),
        format!("{a}/./sub/.."),
        s(&data.join("missing/../a")).to_owned(),
    ];
    for cmd in ["move", "sync", "copy"] {
        for other in &spellings {
            let o = cs(&[cmd, a.as_str(), other]);
            assert_ne!(o.code, 0, "{cmd} {a} {other} must be refused: {}", o.stderr);
            assert!(o.stderr.contains("overlap"), "{cmd} {other}: {}", o.stderr);
            let o = cs(&[cmd, other, a.as_str()]);
            assert_ne!(o.code, 0, "{cmd} {other} {a} must be refused");
            assert_eq!(snapshot(&data.join("a")), before, "{cmd} {other} touched a");
        }
    }
    // Side by side is fine.
    cs(&["copy", a.as_str(), s(&data.join("b"))]).expect(0);
    assert_eq!(files(&data.join("b")), files(&data.join("a")));
}

/// `serve` on an address other than loopback without `--user`/`--token-file` stops at once
/// with a clear error; the flags that give authentication go together.
#[cfg(feature = "serve")]
#[test]
fn serve_refuses_a_public_address_without_authentication() {
    let state = tempfile::tempdir().unwrap();
    let dir = state.path().to_str().unwrap();
    let o = cs(&["serve", "--addr", "0.0.0.0:0", "--state-dir", dir]);
    o.expect(1);
    assert!(o.stderr.contains("without authentication"), "{}", o.stderr);
    cs(&["serve", "--user", "me", "--state-dir", dir]).expect(1);
    let o = cs(&[
        "serve",
        "--user",
        "me",
        "--password-env",
        "CLOUDSYNC_TEST_UNSET_VAR",
        "--addr",
        "0.0.0.0:0",
        "--state-dir",
        dir,
    ]);
    o.expect(1);
    assert!(
        o.stderr.contains("CLOUDSYNC_TEST_UNSET_VAR"),
        "{}",
        o.stderr
    );
}
