//! Differential tests: the same `ls`, `lsjson`, `sync`/`copy`/`move` and `check` scenarios run
//! through `rclone` (the Debian package) and through our CLI on local trees; the resulting
//! trees, listings, reports and exit codes must agree.

mod cli_support;

use std::path::Path;

use cli_support::{copy_tree, cs, mkdir, put, rclone, s, snapshot};

/// Source tree of every scenario.
fn source(root: &Path) {
    put(root, "a.txt", "alpha", 0);
    put(root, "b.log", "log line", 10);
    put(root, "sp ace.txt", "space", 15);
    put(root, "ünï.txt", "unicode", 16);
    put(root, "sub/c.txt", "charlie!", 20);
    put(root, "sub/deep/d.txt", "delta delta", 30);
    put(root, "sub/deep/e.bin", "0123456789abcdef", 35);
    put(root, "logs/x.log", "xx", 40);
    mkdir(root, "empty");
}

/// Destination tree before each run: some files equal, some different, some extra.
fn destination(root: &Path) {
    put(root, "a.txt", "ALPHA!", 0); // size differs
    put(root, "b.log", "log line", 10); // identical
    put(root, "sub/c.txt", "charliE!", 20); // same size and modtime, other content
    put(root, "sub/deep/d.txt", "delta delta", 99); // same content, other modtime
    put(root, "sub/deep/e.bin", "0123456789ABCDEF", 5); // same size, older
    put(root, "extra.txt", "extra", 0);
    put(root, "old/dir/stale.txt", "stale", 0);
    put(root, "logs/y.log", "yy", 0);
}

fn setup() -> (tempfile::TempDir, std::path::PathBuf) {
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("src");
    source(&src);
    (t, src)
}

/// Runs `cmd SRC DST FLAGS` with both tools on fresh copies of the destination and compares
/// the trees (paths, directories, content, whole-second modtimes) and exit codes.
fn same_transfer(cmd: &str, flags: &[&str]) {
    let (t, src) = setup();
    let template = t.path().join("template");
    destination(&template);
    let (ours, theirs) = (t.path().join("ours"), t.path().join("theirs"));
    copy_tree(&template, &ours);
    copy_tree(&template, &theirs);
    let (src_ours, src_theirs) = (t.path().join("src-ours"), t.path().join("src-theirs"));
    copy_tree(&src, &src_ours);
    copy_tree(&src, &src_theirs);

    let mut a = vec![cmd, s(&src_ours), s(&ours)];
    a.extend_from_slice(flags);
    let o = cs(&a);
    let mut b = vec![cmd, s(&src_theirs), s(&theirs)];
    b.extend_from_slice(flags);
    let r = rclone(&b);
    assert_eq!(
        o.code, r.code,
        "{cmd} {flags:?}: exit codes differ\nours: {}\nrclone: {}",
        o.stderr, r.stderr
    );
    let mut theirs_after = snapshot(&theirs);
    if cmd == "move" {
        // A documented difference: `sub/c.txt` has the same size and modtime on both sides but
        // other content. rclone's move deletes the source and keeps the destination's content
        // (the source's is lost); ours compares hashes first and moves the source's content.
        let ours_now = snapshot(&ours);
        let key = "sub/c.txt".to_owned();
        assert_ne!(
            ours_now.get(&key),
            theirs_after.get(&key),
            "the known difference is gone"
        );
        if let Some(v) = ours_now.get(&key) {
            theirs_after.insert(key, v.clone());
        }
    }
    assert_eq!(
        snapshot(&ours),
        theirs_after,
        "{cmd} {flags:?}: destinations differ\nours: {}\nrclone: {}",
        o.stderr,
        r.stderr
    );
    assert_eq!(
        snapshot(&src_ours),
        snapshot(&src_theirs),
        "{cmd} {flags:?}: sources differ afterwards"
    );
}

#[test]
fn sync_matches_rclone() {
    for flags in [
        &[][..],
        &["--exclude", "*.log"],
        &["--exclude", "*.log", "--delete-excluded"],
        &["--exclude", "logs/"],
        &["--include", "*.txt"],
        &["--filter", "- sub/deep/**", "--filter", "+ *"],
        &["--size-only"],
        &["--checksum"],
        &["--ignore-times"],
        &["--ignore-existing"],
        &["--update"],
        &["--update", "--checksum"],
        &["--update", "--ignore-times"],
        &["--min-size", "6B"],
        &["--max-size", "8B"],
        &["--max-depth", "1"],
        &["--max-depth", "2"],
        &["--max-depth", "-1"],
        &["--ignore-case", "--exclude", "A.TXT"],
        &["--create-empty-src-dirs"],
        &["--dry-run"],
    ] {
        same_transfer("sync", flags);
    }
}

#[test]
fn copy_and_move_match_rclone() {
    for flags in [&[][..], &["--exclude", "sub/**"], &["--checksum"]] {
        same_transfer("copy", flags);
    }
    for flags in [
        &[][..],
        &["--include", "*.txt"],
        &["--delete-empty-src-dirs"],
    ] {
        same_transfer("move", flags);
    }
}

/// Normalises a combined report (both tools sort it, but not the same way).
fn sorted(lines: Vec<String>) -> Vec<String> {
    let mut l = lines;
    l.sort();
    l
}

#[test]
fn check_combined_matches_rclone() {
    let (t, src) = setup();
    let dst = t.path().join("dst");
    destination(&dst);
    for flags in [
        &[][..],
        &["--one-way"],
        &["--size-only"],
        &["--download"],
        &["--exclude", "*.log"],
        &["--include", "sub/**"],
        &["--max-depth", "1"],
    ] {
        let mut a = vec!["check", s(&src), s(&dst), "--combined", "-"];
        a.extend_from_slice(flags);
        let (o, r) = (cs(&a), rclone(&a));
        assert_eq!(
            o.code, r.code,
            "check {flags:?}\nours: {}\nrclone: {}",
            o.stderr, r.stderr
        );
        assert_eq!(o.code, 1);
        assert_eq!(
            sorted(o.lines()),
            sorted(r.lines()),
            "check {flags:?}\nrclone: {}",
            r.stderr
        );
    }
    // Identical trees: both exit 0 and agree on every line.
    let same = t.path().join("same");
    copy_tree(&src, &same);
    let a = ["check", s(&src), s(&same), "--combined", "-"];
    let (o, r) = (cs(&a), rclone(&a));
    assert_eq!((o.code, r.code), (0, 0));
    assert_eq!(sorted(o.lines()), sorted(r.lines()));

    // The separate report files.
    let out = t.path().join("reports");
    mkdir(&out, "");
    for which in [
        "--missing-on-dst",
        "--missing-on-src",
        "--differ",
        "--match",
    ] {
        let (fo, fr) = (out.join("ours"), out.join("theirs"));
        cs(&["check", s(&src), s(&dst), which, s(&fo)]);
        rclone(&["check", s(&src), s(&dst), which, s(&fr)]);
        let read = |p: &Path| {
            sorted(
                std::fs::read_to_string(p)
                    .unwrap()
                    .lines()
                    .map(str::to_owned)
                    .collect(),
            )
        };
        assert_eq!(read(&fo), read(&fr), "{which}");
    }
}

#[test]
fn lsf_matches_rclone() {
    let (_t, src) = setup();
    for flags in [
        &[][..],
        &["-R"],
        &["-R", "--files-only"],
        &["-R", "--dirs-only"],
        &["--dirs-only"],
        &["-R", "--max-depth", "2"],
        &["-R", "--max-depth", "-1"],
        // A flag given twice: the last value counts; list flags add up.
        &["-R", "--max-depth", "3", "--max-depth", "1"],
        &["-R", "--include", "*.txt", "--include", "*.log"],
        &["-R", "--include", "*.txt"],
        &["-R", "--exclude", "sub/**"],
        &["-R", "--exclude", "deep/"],
        &["-R", "--min-size", "6B"],
        &["-R", "--filter", "+ *.log", "--filter", "- *"],
    ] {
        let mut a = vec![s(&src)];
        a.extend_from_slice(flags);
        let o = cs(&[&["ls"][..], &a].concat());
        let r = rclone(&[&["lsf"][..], &a].concat());
        assert_eq!((o.code, r.code), (0, 0), "{flags:?}: {}", r.stderr);
        if flags.contains(&"-R") {
            assert_eq!(sorted(o.lines()), sorted(r.lines()), "ls {flags:?}");
        } else {
            // One directory: rclone sorts it, and so do we.
            assert_eq!(o.lines(), r.lines(), "ls {flags:?}");
        }
    }
    let sub = src.join("sub");
    assert_eq!(
        cs(&["ls", s(&sub)]).lines(),
        rclone(&["lsf", s(&sub)]).lines()
    );
}

#[test]
fn lsjson_matches_rclone() {
    let (_t, src) = setup();
    // MIME types come from the system's tables as Go reads them.
    for name in [
        "n.md", "n.bak", "n.c", "n.C", "n.tar.gz", "n.JPG", "n.weird", "noext", "n.html",
    ] {
        put(&src, &format!("mime/{name}"), "x", 0);
    }
    let o = cs(&["lsjson", "-R", s(&src)]);
    let r = rclone(&["lsjson", "-R", s(&src)]);
    let keep = |text: &str| {
        let v: serde_json::Value = serde_json::from_str(text).unwrap();
        let mut rows: Vec<String> = v
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                format!(
                    "{} {} {} {} {} {}",
                    e["Path"], e["Name"], e["Size"], e["IsDir"], e["ModTime"], e["MimeType"]
                )
            })
            .collect();
        rows.sort();
        rows
    };
    assert_eq!(keep(&o.stdout), keep(&r.stdout));
}

#[test]
fn exit_codes_match_rclone() {
    let (t, src) = setup();
    let missing = t.path().join("missing");
    let dst = t.path().join("dst");
    let cases: Vec<Vec<&str>> = vec![
        vec!["sync", s(&missing), s(&dst)],
        vec!["copy", s(&missing), s(&dst)],
        vec!["check", s(&missing), s(&src)],
        vec!["lsjson", s(&missing)],
        vec!["sync", s(&src), s(&dst), "--no-such-flag"],
        vec!["sync", s(&src)],
        vec!["sync", s(&src), s(&dst)],
        vec!["sync", s(&src), s(&dst), "--error-on-no-transfer"],
    ];
    for args in cases {
        let (o, r) = (cs(&args), rclone(&args));
        assert_eq!(
            o.code, r.code,
            "{args:?}\nours: {}\nrclone: {}",
            o.stderr, r.stderr
        );
    }
    let (o, r) = (cs(&["ls", s(&missing)]), rclone(&["lsf", s(&missing)]));
    assert_eq!((o.code, r.code), (3, 3));
}

/// A file and a folder of the same name are two entries, as rclone sees them.
#[test]
fn a_file_and_a_folder_of_one_name_match_rclone() {
    // The source has an empty folder `x`, the destination a file `x`: sync deletes the file.
    // With `--min-size`, a small source file `x` is filtered out and the destination folder
    // `x/` is kept by copy. Check reports `+ x` and `- x/f`.
    let t = tempfile::tempdir().unwrap();
    let scenarios: [(&str, &[&str]); 4] = [
        ("sync", &[]),
        ("copy", &["--min-size", "1M"]),
        ("sync", &["--min-size", "1M"]),
        ("copy", &[]),
    ];
    for (n, (cmd, flags)) in scenarios.into_iter().enumerate() {
        let base = t.path().join(format!("case{n}"));
        let src = base.join("src");
        put(&src, "keep.txt", "k", 0);
        let (ours, theirs) = (base.join("ours"), base.join("theirs"));
        if n == 0 {
            mkdir(&src, "x");
            put(&ours, "x", "a file", 0);
        } else {
            put(&src, "x", "small", 0);
            put(&ours, "x/f", "in a folder", 0);
        }
        copy_tree(&ours, &theirs);
        let mut a = vec![cmd, s(&src), s(&ours)];
        a.extend_from_slice(flags);
        let o = cs(&a);
        let mut b = vec![cmd, s(&src), s(&theirs)];
        b.extend_from_slice(flags);
        let r = rclone(&b);
        if n == 3 {
            // A write that really collides fails in both (rclone exits 1, we exit 6: an error
            // retrying did not fix).
            assert!(o.code != 0 && r.code != 0, "{}", o.stderr);
        } else {
            assert_eq!(
                o.code, r.code,
                "{cmd} {flags:?}: exit codes differ\nours: {}\nrclone: {}",
                o.stderr, r.stderr
            );
        }
        assert_eq!(snapshot(&ours), snapshot(&theirs), "{cmd} {flags:?}");
    }

    let base = t.path().join("check");
    let (src, dst) = (base.join("src"), base.join("dst"));
    put(&src, "x", "a file", 0);
    put(&dst, "x/f", "in a folder", 0);
    for flags in [&[][..], &["--exclude", "x"]] {
        let mut a = vec!["check", s(&src), s(&dst), "--combined", "-"];
        a.extend_from_slice(flags);
        let (o, r) = (cs(&a), rclone(&a));
        assert_eq!(o.code, r.code, "check {flags:?}\nours: {}", o.stderr);
        assert_eq!(sorted(o.lines()), sorted(r.lines()), "check {flags:?}");
    }
}

/// Character classes mean what Go's regexp (rclone's) makes of them.
#[test]
fn glob_classes_match_rclone() {
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("src");
    for name in ["[1].txt", "1.txt", "a1", "&x", "~y", "-z", "bq", "[x"] {
        put(&src, name, "x", 0);
    }
    for glob in ["[[]1].txt", "[a&&b]*", "[a~~b]*", "[&~]*", "[-b]*", "[[]x"] {
        let a = [s(&src), "-R", "--include", glob];
        let o = cs(&[&["ls"][..], &a].concat());
        let r = rclone(&[&["lsf"][..], &a].concat());
        assert_eq!(o.code, r.code, "{glob}: {}", o.stderr);
        assert_eq!(sorted(o.lines()), sorted(r.lines()), "--include {glob}");
    }
}

/// `e` + U+0301 (NFD) and `é` (NFC): one name to rclone (and to us), two byte strings to ext4.
const NFD_E: &str = "e\u{301}";
const NFC_E: &str = "\u{e9}";

/// A snapshot with every name in NFC (to compare which files exist, whatever form they have).
fn snapshot_nfc(root: &Path) -> std::collections::BTreeMap<String, cli_support::Node> {
    use unicode_normalization::UnicodeNormalization;
    snapshot(root)
        .into_iter()
        .map(|(k, v)| (k.nfc().collect(), v))
        .collect()
}

/// A source name in NFD and the same name in NFC on the destination are one file, as in
/// rclone: updated in place (never a second copy), never deleted because the other form
/// exists; `--no-unicode-normalization` makes them two files again.
#[test]
fn unicode_forms_match_rclone() {
    let t = tempfile::tempdir().unwrap();
    let make = |base: &Path| {
        let (src, dst) = (base.join("src"), base.join("dst"));
        put(&src, &format!("{NFD_E}.txt"), "hello from source", 5);
        put(&src, &format!("same-{NFD_E}.txt"), "same", 0);
        put(&src, &format!("{NFD_E}dir/f.txt"), "in a folder", 7);
        put(&dst, &format!("{NFC_E}.txt"), "other", 0);
        put(&dst, &format!("same-{NFC_E}.txt"), "same", 0);
        put(&dst, &format!("{NFC_E}dir/f.txt"), "old", 0);
        (src, dst)
    };
    let mut n = 0;
    for (cmd, flags) in [
        ("copy", &[][..]),
        ("sync", &[]),
        ("move", &[]),
        ("sync", &["--no-unicode-normalization"]),
        ("copy", &["--no-unicode-normalization"]),
    ] {
        n += 1;
        let (src_o, ours) = make(&t.path().join(format!("o{n}")));
        let (src_t, theirs) = make(&t.path().join(format!("t{n}")));
        let mut a = vec![cmd, s(&src_o), s(&ours)];
        a.extend_from_slice(flags);
        let o = cs(&a);
        let mut b = vec![cmd, s(&src_t), s(&theirs)];
        b.extend_from_slice(flags);
        let r = rclone(&b);
        assert_eq!(o.code, r.code, "{cmd} {flags:?}\nours: {}", o.stderr);
        if cmd == "move" {
            // A documented difference: rclone's move renames each file to the source's form
            // (on local disk its server-side move replaces `é.txt` by `e\u{301}.txt`); ours
            // writes under the name the destination already has. The same files hold the same
            // content either way.
            assert_eq!(
                snapshot_nfc(&ours),
                snapshot_nfc(&theirs),
                "{cmd} {flags:?}"
            );
            assert!(ours.join(format!("{NFC_E}.txt")).exists());
            assert!(!ours.join(format!("{NFD_E}.txt")).exists());
        } else {
            assert_eq!(snapshot(&ours), snapshot(&theirs), "{cmd} {flags:?}");
        }
        assert_eq!(
            snapshot(&src_o),
            snapshot(&src_t),
            "{cmd} {flags:?}: sources"
        );
        if flags.is_empty() {
            // Never a second copy under the other form.
            assert_eq!(
                std::fs::read_dir(&ours).unwrap().count(),
                3,
                "{cmd}: {:?}",
                snapshot(&ours)
            );
        }
    }

    // check: the pair is one file (`*` or `=`), reported under the source's name.
    let (src, dst) = make(&t.path().join("check"));
    put(&src, &format!("{NFD_E}dir/new.txt"), "new", 0);
    put(&dst, &format!("{NFC_E}dir/gone.txt"), "gone", 0);
    for flags in [&[][..], &["--no-unicode-normalization"], &["--one-way"]] {
        let mut a = vec!["check", s(&src), s(&dst), "--combined", "-"];
        a.extend_from_slice(flags);
        let (o, r) = (cs(&a), rclone(&a));
        assert_eq!(o.code, r.code, "check {flags:?}\nours: {}", o.stderr);
        assert_eq!(sorted(o.lines()), sorted(r.lines()), "check {flags:?}");
    }
}

/// Where the two differ on purpose: a new file in a folder the destination has in the other
/// form goes into that folder (rclone creates a second folder under the source's form); and
/// two files on one side whose names are one after normalisation, with that name on the other
/// side too, are never told apart: the run reports an error and neither file is deleted or
/// overwritten (rclone ignores one). Where the names are the same on both sides, each pairs
/// with its own.
#[test]
fn unicode_forms_are_never_merged_or_lost() {
    let t = tempfile::tempdir().unwrap();
    let (src, dst) = (t.path().join("src"), t.path().join("dst"));
    put(&src, &format!("{NFD_E}dir/new.txt"), "new", 0);
    put(&dst, &format!("{NFC_E}dir/old.txt"), "old", 0);
    cs(&["copy", s(&src), s(&dst)]).expect(0);
    assert_eq!(
        snapshot(&dst).keys().cloned().collect::<Vec<_>>(),
        [
            format!("{NFC_E}dir"),
            format!("{NFC_E}dir/new.txt"),
            format!("{NFC_E}dir/old.txt")
        ]
    );
    // A sync deletes in the folder under its destination name, and a move empties the
    // source's folder.
    std::fs::remove_file(src.join(format!("{NFD_E}dir/new.txt"))).unwrap();
    put(&src, &format!("{NFD_E}dir/old.txt"), "old", 0);
    cs(&["sync", s(&src), s(&dst)]).expect(0);
    assert_eq!(
        snapshot(&dst).keys().cloned().collect::<Vec<_>>(),
        [format!("{NFC_E}dir"), format!("{NFC_E}dir/old.txt")]
    );

    for (cmd, both_on_src) in [
        ("sync", false),
        ("sync", true),
        ("move", true),
        ("copy", false),
    ] {
        let base = t.path().join(format!("dup-{cmd}-{both_on_src}"));
        let (src, dst) = (base.join("src"), base.join("dst"));
        put(&src, "other.txt", "x", 0);
        let side = if both_on_src { &src } else { &dst };
        put(side, &format!("{NFD_E}.txt"), "decomposed", 0);
        put(side, &format!("{NFC_E}.txt"), "composed", 0);
        // The other side has the name in one form: which of the two does it pair with?
        let other = if both_on_src { &dst } else { &src };
        put(other, &format!("{NFC_E}.txt"), "third", 0);
        let (src_before, dst_before) = (snapshot(&src), snapshot(&dst));
        let o = cs(&[cmd, s(&src), s(&dst)]);
        assert_ne!(o.code, 0, "{cmd}: {}", o.stderr);
        // Both forms are still there with their content, on both sides.
        for (root, before) in [(&src, &src_before), (&dst, &dst_before)] {
            let now = snapshot(root);
            for form in [NFD_E, NFC_E] {
                let k = format!("{form}.txt");
                assert_eq!(
                    now.get(&k),
                    before.get(&k),
                    "{cmd}: {k} in {}",
                    root.display()
                );
            }
        }
    }

    // Both forms on both sides: each pairs with its own name, and the run is clean.
    let base = t.path().join("both-forms");
    let (src, dst) = (base.join("src"), base.join("dst"));
    for (root, tag, secs) in [(&src, "new", 9), (&dst, "old", 0)] {
        put(
            root,
            &format!("{NFD_E}.txt"),
            &format!("decomposed {tag}"),
            secs,
        );
        put(
            root,
            &format!("{NFC_E}.txt"),
            &format!("composed {tag}"),
            secs,
        );
    }
    cs(&["sync", s(&src), s(&dst)]).expect(0);
    assert_eq!(snapshot(&src), snapshot(&dst));
}

/// `move` into a destination that does not exist, with no filter, moves the whole folder (one
/// directory rename, as rclone's server-side directory move): the source path is gone, empty
/// folders included. Otherwise files move one by one and empty folders stay, as in rclone.
#[test]
fn move_of_a_whole_folder_matches_rclone() {
    let t = tempfile::tempdir().unwrap();
    let make = |base: &Path, dst_exists: bool| {
        let src = base.join("src");
        put(&src, "a.txt", "alpha", 0);
        put(&src, "sub/b.txt", "bravo", 5);
        mkdir(&src, "empty");
        mkdir(&src, "sub/empty2");
        if dst_exists {
            mkdir(base, "out/dst");
        }
    };
    let cases: [(&str, bool, &[&str]); 7] = [
        ("out/dst", false, &[]),
        ("out/deeper/dst", false, &[]),
        ("out/dst", true, &[]),
        ("out/dst", false, &["--exclude", "nothing"]),
        ("out/dst", false, &["--delete-empty-src-dirs"]),
        ("out/dst", true, &["--delete-empty-src-dirs"]),
        ("out/dst", false, &["--error-on-no-transfer"]),
    ];
    for (n, (dst, exists, flags)) in cases.into_iter().enumerate() {
        let (o_base, r_base) = (
            t.path().join(format!("o{n}")),
            t.path().join(format!("r{n}")),
        );
        make(&o_base, exists);
        make(&r_base, exists);
        let (o_src, o_dst) = (o_base.join("src"), o_base.join(dst));
        let (r_src, r_dst) = (r_base.join("src"), r_base.join(dst));
        let mut a = vec!["move", s(&o_src), s(&o_dst)];
        a.extend_from_slice(flags);
        let mut b = vec!["move", s(&r_src), s(&r_dst)];
        b.extend_from_slice(flags);
        let (o, r) = (cs(&a), rclone(&b));
        assert_eq!(
            o.code, r.code,
            "{dst} {exists} {flags:?}\nours: {}",
            o.stderr
        );
        assert_eq!(
            snapshot(&o_base),
            snapshot(&r_base),
            "{dst} {exists} {flags:?}\nours: {}",
            o.stderr
        );
    }
    // A source that is a symbolic link to a folder is not renamed as a link (rclone would
    // rename the link, leaving the files where they are): the files move one by one.
    let base = t.path().join("link");
    make(&base, false);
    let link = base.join("link");
    std::os::unix::fs::symlink(base.join("src"), &link).unwrap();
    let dst = base.join("out/dst");
    cs(&["move", s(&link), s(&dst)]).expect(0);
    assert!(std::fs::symlink_metadata(&dst).unwrap().is_dir());
    assert_eq!(
        std::fs::read_to_string(dst.join("sub/b.txt")).unwrap(),
        "bravo"
    );
    assert!(!base.join("src/a.txt").exists());
    assert!(std::fs::symlink_metadata(&link).unwrap().is_symlink());
}

/// `--max-depth 0` means what it means to rclone for each command: the top directory only to
/// copy, sync, move and check; no limit to ls, lsjson and delete (and an explicit depth makes
/// `ls` recursive even without `-R`).
#[test]
fn max_depth_zero_matches_rclone() {
    let t = tempfile::tempdir().unwrap();
    let make = |base: &Path| {
        let (src, dst) = (base.join("src"), base.join("dst"));
        put(&src, "a.txt", "alpha", 0);
        put(&src, "sub/b.txt", "bravo", 5);
        mkdir(&src, "empty");
        put(&dst, "a.txt", "ALPHA!", 9);
        put(&dst, "x.txt", "extra", 0);
        put(&dst, "sub/deep.txt", "deep", 0);
        mkdir(&dst, "emptyd");
        mkdir(&dst, "sub/e2");
        (src, dst)
    };
    for (n, cmd) in ["sync", "copy", "move", "delete"].into_iter().enumerate() {
        let (o_src, o_dst) = make(&t.path().join(format!("o{n}")));
        let (r_src, r_dst) = make(&t.path().join(format!("r{n}")));
        let (o, r) = if cmd == "delete" {
            (
                cs(&[cmd, s(&o_dst), "--max-depth", "0"]),
                rclone(&[cmd, s(&r_dst), "--max-depth", "0"]),
            )
        } else {
            (
                cs(&[cmd, s(&o_src), s(&o_dst), "--max-depth", "0"]),
                rclone(&[cmd, s(&r_src), s(&r_dst), "--max-depth", "0"]),
            )
        };
        assert_eq!(o.code, r.code, "{cmd}\nours: {}", o.stderr);
        assert_eq!(snapshot(&o_dst), snapshot(&r_dst), "{cmd}: destinations");
        assert_eq!(snapshot(&o_src), snapshot(&r_src), "{cmd}: sources");
    }
    let (src, dst) = make(&t.path().join("ro"));
    let a = [
        "check",
        s(&src),
        s(&dst),
        "--combined",
        "-",
        "--max-depth",
        "0",
    ];
    let (o, r) = (cs(&a), rclone(&a));
    assert_eq!(o.code, r.code, "check\nours: {}", o.stderr);
    assert_eq!(sorted(o.lines()), sorted(r.lines()), "check");
    for depth in ["0", "1", "2", "-1"] {
        for flags in [&[][..], &["-R"], &["--dirs-only"], &["-R", "--files-only"]] {
            let mut a = vec![s(&dst), "--max-depth", depth];
            a.extend_from_slice(flags);
            let o = cs(&[&["ls"][..], &a].concat());
            let r = rclone(&[&["lsf"][..], &a].concat());
            assert_eq!((o.code, r.code), (0, 0), "ls {a:?}: {}", o.stderr);
            assert_eq!(sorted(o.lines()), sorted(r.lines()), "ls {a:?}");
        }
    }
    let a = ["lsjson", s(&dst), "--max-depth", "0"];
    let names = |text: &str| {
        let v: serde_json::Value = serde_json::from_str(text).unwrap();
        let mut p: Vec<String> = v
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["Path"].to_string())
            .collect();
        p.sort();
        p
    };
    assert_eq!(names(&cs(&a).stdout), names(&rclone(&a).stdout), "lsjson");
}

/// A move that recorded an error leaves the source's folders alone, even with
/// `--delete-empty-src-dirs` (found by the randomized test, seed 370).
#[test]
fn move_with_an_error_keeps_empty_source_folders_as_rclone() {
    let t = tempfile::tempdir().unwrap();
    let make = |base: &Path| {
        let (src, dst) = (base.join("src"), base.join("dst"));
        put(&src, "up.log", "a file", 0);
        put(&src, "b/up/c d.txt", "moved", 0);
        // The file's name is a folder on the destination: that write fails.
        put(&dst, "up.log/inner.txt", "in the way", 0);
        (src, dst)
    };
    let (o_src, o_dst) = make(&t.path().join("o"));
    let (r_src, r_dst) = make(&t.path().join("r"));
    let o = cs(&["move", s(&o_src), s(&o_dst), "--delete-empty-src-dirs"]);
    let r = rclone(&["move", s(&r_src), s(&r_dst), "--delete-empty-src-dirs"]);
    assert!(o.code != 0 && r.code != 0, "{}", o.stderr);
    assert_eq!(snapshot(&o_src), snapshot(&r_src), "sources");
    assert_eq!(snapshot(&o_dst), snapshot(&r_dst), "destinations");
    assert!(o_src.join("b/up").is_dir());
}
