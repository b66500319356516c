//! Table-driven cases (examples from rclone's filtering documentation, used as data) and
//! property tests for [`FilterSet`].

use std::time::Duration;

use proptest::prelude::*;
use time::macros::datetime;

use super::rules::Rule;
use super::*;
use crate::error::ErrorKind;

fn p(s: &str) -> RemotePath {
    RemotePath::new(s).unwrap()
}

/// Whether `glob` matches `path` (the pattern alone, without directory pruning); the string
/// shortcut and the regular expression must agree.
fn matches(glob: &str, path: &str) -> bool {
    let rule = Rule::new(true, glob, false).unwrap_or_else(|e| panic!("{glob}: {e:?}"));
    let mut list = RuleList::default();
    list.push(rule.clone());
    let fast = list.decide(path).is_some();
    assert_eq!(fast, rule.regex_matches(path), "{glob} on {path}");
    fast
}

/// rclone docs, "Filter pattern examples" and "Pattern syntax" (paths without the leading `/`).
#[test]
fn documented_pattern_examples() {
    let table: &[(&str, &[&str], &[&str])] = &[
        (
            "*.jpg",
            &["file.jpg", "dir/file.jpg"],
            &["file.png", "dir/file.png"],
        ),
        (
            "/*.jpg",
            &["file.jpg", "file2.jpg"],
            &["file.png", "dir/file.jpg"],
        ),
        (
            "*.{jpg,png}",
            &["file.jpg", "dir/file.png"],
            &["file.gif", "dir/file.gif"],
        ),
        (
            "dir/**",
            &["dir/anyfile", "subdir/dir/subsubdir/anyfile"],
            &["file.png", "subdir/file.png"],
        ),
        (
            "*.t?t",
            &["file.txt", "dir/file.tzt"],
            &["file.qxt", "dir/file.png"],
        ),
        (
            "*.[a-z]",
            &["file.a", "dir/file.b"],
            &["file.0", "dir/file.1"],
        ),
        (
            "*.\\?\\?\\?",
            &["file.???", "dir/file.???"],
            &["file.abc", "dir/file.def"],
        ),
        (
            "*.\\d\\d\\d",
            &["file.012", "dir/file.345"],
            &["file.abc", "dir/file.def"],
        ),
        (
            "*.{{jpe?g}}",
            &["file.jpeg", "dir/file.jpg"],
            &["file.png", "dir/file.jpeeg"],
        ),
        // The table says "doesn't match /dir/file.jpg", but the regexp's `.*` crosses `/` and
        // rclone 1.60 does match it; we follow rclone.
        (
            "/{{.*\\.jpe?g}}",
            &["file.jpeg", "file.jpg", "dir/file.jpg"],
            &["file.png"],
        ),
        (
            "file.jpg",
            &["file.jpg", "directory/file.jpg"],
            &["afile.jpg", "directory/afile.jpg"],
        ),
        (
            "/file.jpg",
            &["file.jpg"],
            &["afile.jpg", "directory/file.jpg"],
        ),
        ("potato", &["potato"], &["POTATO"]),
        ("*.{{(?i)jpg}}", &["file.jpg", "file.JPG"], &["file.png"]),
        (
            "{{start[^/]*end\\.jpg}}",
            &["start-x-end.jpg"],
            &["start/end.jpg"],
        ),
        ("{{start.*end\\.jpg}}", &["start/end.jpg"], &["x/start"]),
        (
            "*\\[{JP,KR,HK}\\]*",
            &["a[JP]b", "d/[KR]"],
            &["a[US]b", "aJPb"],
        ),
        (
            "??[^[:punct:]]*",
            &["abcdef", "x/abc"],
            &["ab.def", "x/ab!"],
        ),
    ];
    for (glob, yes, no) in table {
        for path in *yes {
            assert!(matches(glob, path), "{glob} should match {path}");
        }
        for path in *no {
            assert!(!matches(glob, path), "{glob} should not match {path}");
        }
    }
}

#[test]
fn glob_syntax_elements() {
    let table: &[(&str, &[&str], &[&str])] = &[
        // `*` stays within one element, `**` crosses `/`.
        ("a*c", &["abc", "ac", "x/abbbc"], &["ab/c", "abd"]),
        ("a**c", &["abc", "ab/c", "x/a/b/c"], &["ab/d"]),
        ("/a/**", &["a/b", "a/b/c"], &["x/a/b", "a"]),
        ("**", &["a", "a/b/c"], &[]),
        ("/**", &["a", "a/b/c"], &[]),
        // `?` is one non-`/` character.
        ("a?c", &["abc"], &["ac", "a/c", "abbc"]),
        // Classes, negated classes, escapes inside classes.
        ("[ab]", &["a", "x/b"], &["c", "ab"]),
        ("[^ab]", &["c"], &["a"]),
        ("[\\[\\]]", &["[", "]"], &["a"]),
        // Alternation, nested, and with `/` inside.
        ("a{b,{c,d}}e", &["abe", "ace", "ade"], &["ae", "abce"]),
        ("{x/y,z}.txt", &["x/y.txt", "z.txt", "q/z.txt"], &["y.txt"]),
        ("a{,b}", &["a", "ab"], &["abb"]),
        ("a,b", &["a,b"], &["a", "b"]),
        // Escapes.
        ("a\\*b", &["a*b"], &["axb"]),
        ("a\\{b\\}", &["a{b}"], &["ab"]),
        ("a\\\\b", &["a\\b"], &["ab"]),
        // Regexp embedded in a glob; `}}}` closes the longest run.
        ("/{{\\d{4}}}-*", &["2024-x"], &["24-x", "a/2024-x"]),
        ("x{{a|b}}y", &["xay", "xby"], &["xcy", "xaby"]),
        // Regex metacharacters are literal in globs.
        ("a.b+(c)|^$", &["a.b+(c)|^$"], &["axb+(c)|^$"]),
        // Anchoring and whole-element matching.
        ("b/c", &["b/c", "a/b/c"], &["ab/c", "b/c/d"]),
        ("/b/c", &["b/c"], &["a/b/c"]),
        // Unicode.
        (
            "日本/*.txt",
            &["日本/ü.txt", "x/日本/a.txt"],
            &["日本x/a.txt"],
        ),
    ];
    for (glob, yes, no) in table {
        for path in *yes {
            assert!(matches(glob, path), "{glob} should match {path}");
        }
        for path in *no {
            assert!(!matches(glob, path), "{glob} should not match {path}");
        }
    }
}

#[test]
fn ignore_case() {
    let f = FilterSet::builder()
        .include("zaphod.txt")
        .ignore_case(true)
        .build()
        .unwrap();
    assert!(f.include_path(&p("Zaphod.txt"), false));
    assert!(f.include_path(&p("d/ZAPHOD.TXT"), false));
    let f = FilterSet::builder().include("zaphod.txt").build().unwrap();
    assert!(!f.include_path(&p("Zaphod.txt"), false));
    let f = FilterSet::builder()
        .exclude("/Dir/")
        .ignore_case(true)
        .build()
        .unwrap();
    assert!(!f.include_dir(&p("dir")));
    assert!(!f.include_path(&p("DIR/x"), false));
}

/// rclone docs, `--filter-from` examples.
#[test]
fn documented_filter_from_examples() {
    let text = "# a sample filter rule file\n- secret*.jpg\n+ *.jpg\n+ *.png\n+ file2.avi\n\
                - /dir/tmp/** # WARNING! This text will be treated as part of the path.\n\
                - /dir/Trash/**\n+ /dir/**\n# exclude everything else\n- *\n";
    let f = FilterSet::builder()
        .add_rules_from_str(RuleKind::Filter, text)
        .build()
        .unwrap();
    for (path, want) in [
        ("a.jpg", true),
        ("x/b.png", true),
        ("file2.avi", true),
        ("secret17.jpg", false),
        ("dir/notes.txt", true),
        ("dir/Trash/x.txt", false),
        ("dir/tmp/x.txt", true), // the inline "comment" is part of the glob
        ("other.txt", false),
    ] {
        assert_eq!(f.include_path(&p(path), false), want, "{path}");
    }
    // `+ *.jpg` comes first, so `dir/Trash/a.jpg` is included and `dir/Trash` is listed.
    assert!(f.include_path(&p("dir/Trash/a.jpg"), false));
    assert!(f.include_dir(&p("dir/Trash")));

    let text = "- secret*.jpg\n+ *.jpg\n+ *.png\n+ file2.avi\n- *\n";
    let f = FilterSet::builder()
        .add_rules_from_str(RuleKind::Filter, text)
        .build()
        .unwrap();
    for (path, want) in [
        ("file1.jpg", true),
        ("file3.png", true),
        ("file2.avi", true),
        ("secret17.jpg", false),
        ("file.txt", false),
    ] {
        assert_eq!(f.include_path(&p(path), false), want, "{path}");
    }

    // `!` clears the rules before it.
    let text = "+ *.jpg\n+ *.gif\n!\n+ 42.doc\n- *\n";
    let f = FilterSet::builder()
        .add_rules_from_str(RuleKind::Filter, text)
        .build()
        .unwrap();
    assert!(f.include_path(&p("42.doc"), false));
    assert!(!f.include_path(&p("a.jpg"), false));

    // Directory example: `- /dir1/`, `- /dir2/`, `+ *.pdf`, `- **`.
    let text = "- /dir1/\n- /dir2/\n+ *.pdf\n- **\n";
    let f = FilterSet::builder()
        .add_rules_from_str(RuleKind::Filter, text)
        .build()
        .unwrap();
    assert!(!f.include_dir(&p("dir1")));
    assert!(!f.include_dir(&p("dir2/sub")));
    assert!(f.include_dir(&p("dir3")));
    assert!(!f.include_path(&p("dir1/a.pdf"), false));
    assert!(f.include_path(&p("dir3/a.pdf"), false));
    assert!(f.include_path(&p("a.pdf"), false));
    assert!(!f.include_path(&p("a.txt"), false));
}

/// rclone docs: include/exclude files with comments; includes imply `- **`; the order by kind.
#[test]
fn include_exclude_from_and_order() {
    let dir = tempfile::tempdir().unwrap();
    let inc = dir.path().join("include-file.txt");
    std::fs::write(&inc, "# a sample include rule file\n*.jpg\nfile2.avi\n").unwrap();
    let exc = dir.path().join("exclude-file.txt");
    std::fs::write(
        &exc,
        "; a sample exclude rule file\n*.bak\n  file2.jpg  \n\n",
    )
    .unwrap();

    let f = FilterSet::builder().include_from(&inc).build().unwrap();
    assert!(f.include_path(&p("a/x.jpg"), false));
    assert!(f.include_path(&p("file2.avi"), false));
    assert!(!f.include_path(&p("file3.avi"), false));

    let f = FilterSet::builder().exclude_from(&exc).build().unwrap();
    assert!(!f.include_path(&p("a/x.bak"), false));
    assert!(!f.include_path(&p("file2.jpg"), false));
    assert!(f.include_path(&p("file3.jpg"), false));

    // Includes are applied before excludes, whatever the call order.
    let f = FilterSet::builder()
        .exclude("*.jpg")
        .include("a*")
        .build()
        .unwrap();
    assert!(f.include_path(&p("a.jpg"), false));
    assert!(!f.include_path(&p("b.jpg"), false));
    assert!(!f.include_path(&p("b.txt"), false)); // implied `- **`

    // Excludes before filters; a `+` filter adds no implied exclude.
    let f = FilterSet::builder()
        .filter("+ *.jpg")
        .exclude("secret*")
        .build()
        .unwrap();
    assert!(!f.include_path(&p("secret.jpg"), false));
    assert!(f.include_path(&p("a.jpg"), false));
    assert!(f.include_path(&p("a.txt"), false));

    // Within one kind, the order given; `-from` files after the single flags.
    let f = FilterSet::builder()
        .add_rules_from_str(RuleKind::Filter, "- *.txt")
        .filter("+ keep.txt")
        .build()
        .unwrap();
    assert!(f.include_path(&p("keep.txt"), false));

    // `!` in a filter also clears includes, but the implied exclude is still added.
    let f = FilterSet::builder()
        .include("*.jpg")
        .filter("!")
        .build()
        .unwrap();
    assert!(!f.include_path(&p("a.jpg"), false));

    // An empty include file still implies `- **`.
    let empty = dir.path().join("empty.txt");
    std::fs::write(&empty, "# nothing\n").unwrap();
    let f = FilterSet::builder().include_from(&empty).build().unwrap();
    assert!(!f.include_path(&p("a"), false));
    assert!(!f.is_trivial());
}

#[test]
fn directory_rules() {
    // `+ /a/b/**` implies `/a/`, `/a/b/` and everything below.
    let f = FilterSet::builder().include("/a/b/**").build().unwrap();
    for (dir, want) in [
        ("a", true),
        ("a/b", true),
        ("a/b/c/d", true),
        ("a/c", false),
        ("b", false),
        ("x/a", false),
    ] {
        assert_eq!(f.include_dir(&p(dir)), want, "{dir}");
    }
    assert!(f.prunes_directories());

    // rclone docs: `/a/*.jpg` implies `/a/`.
    let f = FilterSet::builder().include("/a/*.jpg").build().unwrap();
    assert!(f.include_dir(&p("a")));
    assert!(!f.include_dir(&p("a/b")));
    assert!(!f.include_dir(&p("b")));

    // `--include /directory/` matches no file but limits the directories.
    let f = FilterSet::builder().include("/directory/").build().unwrap();
    assert!(f.include_dir(&p("directory")));
    assert!(!f.include_dir(&p("other")));
    assert!(!f.include_path(&p("directory/file"), false));

    // `- dir/` excludes the directory and its contents at any depth.
    let f = FilterSet::builder().exclude("tmp/").build().unwrap();
    assert!(!f.include_dir(&p("tmp")));
    assert!(!f.include_dir(&p("a/tmp")));
    assert!(!f.include_dir(&p("a/tmp/b")));
    assert!(!f.include_path(&p("a/tmp/x"), false));
    assert!(f.include_path(&p("tmp"), false)); // a file called tmp
    assert!(f.include_dir(&p("a/tmpx")));

    // Unanchored includes and regexps look everywhere.
    for glob in ["*.jpg", "{{.*}}", "{dir1/**,dir2/**}"] {
        let f = FilterSet::builder().include(glob).build().unwrap();
        assert!(f.include_dir(&p("any/where")), "{glob}");
    }
    // `{dir1,dir2}/**` can prune. As in rclone, the implied directory rules of an unanchored
    // glob only reach `dir1` at the top: `x/` matches none of them.
    let f = FilterSet::builder()
        .include("{dir1,dir2}/**")
        .build()
        .unwrap();
    assert!(f.include_dir(&p("dir1/sub")));
    assert!(!f.include_dir(&p("dir3")));
    assert!(!f.include_dir(&p("x/dir1")));
    assert!(!f.include_path(&p("x/dir1/f"), false));

    // `- /**` excludes every directory; `- *` too (rclone turns `*` into a directory rule).
    let f = FilterSet::builder().filter("- /**").build().unwrap();
    assert!(!f.include_dir(&p("a")));
    let f = FilterSet::builder()
        .filter("+ a/b.txt")
        .filter("- *")
        .build()
        .unwrap();
    assert!(f.include_dir(&p("a")));
    assert!(f.include_dir(&p("a/a")) && !f.include_dir(&p("x")));
    assert!(f.include_path(&p("a/b.txt"), false));
    // Excluded directories hide the files below them, so pruning never changes the answer.
    assert!(!f.include_path(&p("x/a/b.txt"), false));

    // A directory rule that is too hard to split falls back to every directory.
    let f = FilterSet::builder().include("a[/]b").build().unwrap();
    assert!(f.include_dir(&p("x")));

    // Exclude-only rules never prune with a derived rule, and the root is always included.
    let f = FilterSet::builder().exclude("*.bak").build().unwrap();
    assert!(f.include_dir(&p("x/y")));
    assert!(!f.prunes_directories());
    assert!(f.include_dir(&RemotePath::root()));
}

#[test]
fn max_depth() {
    let f = FilterSet::builder().max_depth(1).build().unwrap();
    assert_eq!(f.max_depth(), Some(1));
    assert!(!f.is_trivial());
    assert!(f.include_file(&p("a"), 0, None));
    assert!(!f.include_file(&p("a/b"), 0, None));
    assert!(f.include_dir(&p("a")));
    assert!(!f.descend_into(&p("a")));
    assert!(f.descend_into(&RemotePath::root()));
    assert!(!f.include_dir(&p("a/b")));
    let f = FilterSet::builder().max_depth(2).build().unwrap();
    assert!(f.descend_into(&p("a")));
    assert!(f.include_file(&p("a/b"), 0, None));
    assert!(!f.include_file(&p("a/b/c"), 0, None));
}

#[test]
fn sizes_and_ages() {
    let now = datetime!(2024-06-01 12:00 UTC);
    let f = FilterSet::builder()
        .min_size(10)
        .max_size(20)
        .now(now)
        .build()
        .unwrap();
    let a = p("a");
    assert!(!f.include_file(&a, 9, None));
    assert!(f.include_file(&a, 10, None));
    assert!(f.include_file(&a, 20, None));
    assert!(!f.include_file(&a, 21, None));
    assert!(f.include_path(&a, false)); // no sizes in include_path
    assert!(f.include_dir(&a)); // sizes apply to files only

    let f = FilterSet::builder()
        .min_age(Duration::from_secs(3600))
        .max_age(Duration::from_secs(86_400))
        .now(now)
        .build()
        .unwrap();
    assert_eq!(f.now(), now);
    for (t, want) in [
        (datetime!(2024-06-01 11:30 UTC), false), // too young
        (datetime!(2024-06-01 11:00 UTC), true),  // exactly 1h old
        (datetime!(2024-05-31 18:00 UTC), true),
        (datetime!(2024-05-31 12:00 UTC), true), // exactly 1d old
        (datetime!(2024-05-31 11:59 UTC), false), // too old
    ] {
        assert_eq!(f.include_file(&a, 0, Some(t)), want, "{t}");
    }
    assert!(
        !f.include_file(&a, 0, None),
        "unknown modtime fails an age limit"
    );
    assert!(f.include_dir(&a), "ages apply to files only");

    // Absolute dates.
    let f = FilterSet::builder()
        .max_age_limit(parse_age("2024-05-01").unwrap())
        .now(now)
        .build()
        .unwrap();
    assert!(f.include_file(&a, 0, Some(datetime!(2024-05-01 0:00 UTC))));
    assert!(!f.include_file(&a, 0, Some(datetime!(2024-04-30 23:59 UTC))));

    // Contradictions.
    let e = FilterSet::builder()
        .min_age(Duration::from_secs(7200))
        .max_age(Duration::from_secs(3600))
        .build()
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
    assert!(e.message().contains("--min-age"), "{e}");
    let e = FilterSet::builder()
        .min_size(2)
        .max_size(1)
        .build()
        .unwrap_err();
    assert!(e.message().contains("--min-size"), "{e}");
    // Equal limits are fine.
    FilterSet::builder()
        .min_size(2)
        .max_size(2)
        .build()
        .unwrap();
}

#[test]
fn files_from() {
    let dir = tempfile::tempdir().unwrap();
    let list = dir.path().join("files-from.txt");
    std::fs::write(
        &list,
        "# comment\nfile1.jpg\n  subdir/file2.jpg  \n/lead/slash.txt\n; other\n\nfile1.jpg\n",
    )
    .unwrap();
    let f = FilterSet::builder().files_from(&list).build().unwrap();
    let want = [p("file1.jpg"), p("lead/slash.txt"), p("subdir/file2.jpg")];
    assert_eq!(f.files_from(), Some(&want[..]));
    assert!(f.include_file(&p("file1.jpg"), 1, None));
    assert!(f.include_file(&p("subdir/file2.jpg"), 1, None));
    assert!(!f.include_file(&p("file2.jpg"), 1, None));
    assert!(f.include_dir(&p("subdir")));
    assert!(f.include_dir(&p("lead")));
    assert!(!f.include_dir(&p("other")));
    assert!(!f.is_trivial());

    let f = FilterSet::builder()
        .files_from_list(vec!["b".into(), "a/x".into(), "b".into(), "".into()])
        .build()
        .unwrap();
    assert_eq!(f.files_from(), Some(&[p("a/x"), p("b")][..]));

    // Used alone only.
    let e = FilterSet::builder()
        .files_from(&list)
        .include("*.jpg")
        .build()
        .unwrap_err();
    assert!(e.message().contains("--files-from"), "{e}");
    // Invalid paths are errors naming the line.
    std::fs::write(&list, "ok\na/../b\n").unwrap();
    let e = FilterSet::builder().files_from(&list).build().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
    assert!(e.message().contains("line 2"), "{e}");
    let e = FilterSet::builder()
        .files_from(&dir.path().join("missing"))
        .build()
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound);
}

#[test]
fn hidden_and_underscore() {
    let f = FilterSet::builder()
        .exclude_hidden_and_underscore()
        .build()
        .unwrap();
    for (path, want) in [
        ("a.txt", true),
        ("d/a.txt", true),
        ("a_b.txt", true),
        (".a", false),
        ("_a", false),
        ("d/.a", false),
        ("d/_tmp/x", false),
        (".git/config", false),
    ] {
        assert_eq!(f.include_file(&p(path), 0, None), want, "{path}");
    }
    assert!(!f.include_dir(&p(".git")));
    assert!(!f.include_dir(&p("a/_work")));
    assert!(f.include_dir(&p("a/work")));
    // It takes precedence over includes.
    let f = FilterSet::builder()
        .exclude_hidden_and_underscore()
        .include("*.txt")
        .build()
        .unwrap();
    assert!(!f.include_file(&p("_a.txt"), 0, None));
}

#[test]
fn trivial_and_everything() {
    let f = FilterSet::everything();
    assert!(f.is_trivial());
    assert!(f.include_file(&p("a/b"), 1, None));
    assert!(f.include_dir(&p("a")));
    assert!(FilterSet::builder().build().unwrap().is_trivial());
    assert!(
        FilterSet::builder()
            .ignore_case(true)
            .build()
            .unwrap()
            .is_trivial()
    );
    assert!(
        !FilterSet::builder()
            .exclude("x")
            .build()
            .unwrap()
            .is_trivial()
    );
    // Rules cleared by `!` leave a trivial set.
    assert!(
        FilterSet::builder()
            .filter("- x")
            .filter("!")
            .build()
            .unwrap()
            .is_trivial()
    );
    let e = Entry::file(p("a/b.txt"), 3);
    let f = FilterSet::builder().exclude("*.txt").build().unwrap();
    assert!(!f.include_entry(&e));
    assert!(f.include_entry(&Entry::dir(p("a"))));
    // Cloning shares the compiled rules.
    let g = f.clone();
    assert!(Arc::ptr_eq(&f.inner, &g.inner));
}

#[test]
fn errors_name_flag_pattern_and_position() {
    let cases: Vec<(FilterBuilder, &str)> = vec![
        (
            FilterSet::builder().include("a{b").clone(),
            "--include \"a{b\": unclosed alternation `{` at 2",
        ),
        (
            FilterSet::builder().exclude("x/***").clone(),
            "--exclude \"x/***\": too many stars `***` at 3",
        ),
        (
            FilterSet::builder().filter("+ ab[c").clone(),
            "--filter \"+ ab[c\": unclosed character class `[` at 5",
        ),
        (
            FilterSet::builder().filter("* x").clone(),
            "--filter \"* x\": malformed rule: expected `+ glob`, `- glob` or `!` at 1",
        ),
        (
            FilterSet::builder().filter("+x").clone(),
            "--filter \"+x\": malformed rule: expected `+ glob`, `- glob` or `!` at 1",
        ),
        (
            FilterSet::builder()
                .add_rules_from_str(RuleKind::Filter, "+ a\n\n- b}\n")
                .clone(),
            "--filter-from (text) line 3 \"- b}\": unmatched `}` at 4",
        ),
        (
            FilterSet::builder()
                .add_rules_from_str(RuleKind::Exclude, "ok\n[z-a]")
                .clone(),
            "--exclude-from (text) line 2 \"[z-a]\": invalid regular expression: invalid \
             character class range, the start must be <= the end at 1",
        ),
    ];
    for (b, want) in cases {
        let e = b.build().unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput);
        assert_eq!(e.message(), want);
    }
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("rules.txt");
    std::fs::write(&f, "+ ok\n# c\n- {{(}}\n").unwrap();
    let e = FilterSet::builder().filter_from(&f).build().unwrap_err();
    assert!(
        e.message()
            .contains("rules.txt\" line 3 \"- {{(}}\": invalid regular expression"),
        "{e}"
    );
    assert!(e.message().ends_with(" at 3"), "{e}");
    let e = FilterSet::builder()
        .include_from(&dir.path().join("nope"))
        .build()
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound);
    assert!(e.message().starts_with("--include-from"), "{e}");
}

#[test]
fn paths_with_newlines_follow_the_regex() {
    // `**` is any characters, newlines included (rclone's Go regexps stop at a newline).
    let f = FilterSet::builder().filter("- x**").build().unwrap();
    assert!(!f.include_path(&p("xy"), false));
    assert!(!f.include_path(&p("x\ny"), false));
    let f = FilterSet::builder().include("/a/**").build().unwrap();
    assert!(!f.include_dir(&p("x\ny")));
    assert!(!f.include_path(&p("x\ny"), false));
    assert!(f.include_path(&p("a/x\ny"), false));
}

#[test]
fn dump_is_rclone_like() {
    let f = FilterSet::builder().include("/a/*.jpg").build().unwrap();
    assert_eq!(
        f.dump(),
        "--- File filter rules ---\n+ ^a/[^/]*\\.jpg$\n- ^.*$\n\
         --- Directory filter rules ---\n+ ^a/$\n- ^.*$"
    );
}

// ---------------------------------------------------------------------------------------------
// Property tests.

fn segment() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("a".to_owned()),
        Just("b".to_owned()),
        Just("dir".to_owned()),
        Just("x.jpg".to_owned()),
        Just("y.txt".to_owned()),
        Just(".hid".to_owned()),
        Just("_u".to_owned()),
        Just("A.JPG".to_owned()),
        "[a-c.]{1,3}",
    ]
    .prop_filter("valid segment", |s| s != "." && s != "..")
}

fn path() -> impl Strategy<Value = RemotePath> {
    proptest::collection::vec(segment(), 1..5).prop_map(|segs| p(&segs.join("/")))
}

fn glob_atom() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("a".to_owned()),
        Just("b".to_owned()),
        Just("dir".to_owned()),
        Just("*".to_owned()),
        Just("**".to_owned()),
        Just("?".to_owned()),
        Just("*.jpg".to_owned()),
        Just("[ab]".to_owned()),
        Just("{a,dir}".to_owned()),
        Just("{a,{b,x.jpg}}".to_owned()),
        Just("{{[a-c]+}}".to_owned()),
        Just(".*".to_owned()),
        Just("a*".to_owned()),
        Just("*.{jpg,txt}".to_owned()),
        Just("**.jpg".to_owned()),
        Just("d**".to_owned()),
        Just("{a,b/dir}".to_owned()),
        Just("**b**".to_owned()),
        Just("a**c".to_owned()),
        Just("[a-c]b".to_owned()),
        Just("{{a}}c".to_owned()),
        Just("x\\d".to_owned()),
        Just("{x,y.jpg}".to_owned()),
    ]
}

fn glob() -> impl Strategy<Value = String> {
    (
        any::<bool>(),
        proptest::collection::vec(glob_atom(), 1..4),
        any::<bool>(),
    )
        .prop_map(|(anchored, atoms, dir)| {
            let mut g = String::new();
            if anchored {
                g.push('/');
            }
            g.push_str(&atoms.join("/"));
            if dir {
                g.push('/');
            }
            g
        })
        .prop_filter("no ***", |g| !g.contains("***"))
}

#[derive(Debug, Clone)]
enum Op {
    Include(String),
    Exclude(String),
    Filter(String),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        glob().prop_map(Op::Include),
        glob().prop_map(Op::Exclude),
        glob().prop_map(|g| Op::Filter(format!("+ {g}"))),
        glob().prop_map(|g| Op::Filter(format!("- {g}"))),
        Just(Op::Filter("!".to_owned())),
    ]
}

fn build(ops: &[Op], ignore_case: bool) -> FilterSet {
    let mut b = FilterSet::builder();
    b.ignore_case(ignore_case);
    for op in ops {
        match op {
            Op::Include(g) => b.include(g),
            Op::Exclude(g) => b.exclude(g),
            Op::Filter(r) => b.filter(r),
        };
    }
    b.build().unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Pruning never hides an included file: every directory above an included file is included.
    #[test]
    fn pruning_never_hides_an_included_file(
        ops in proptest::collection::vec(op(), 0..6),
        ignore_case in any::<bool>(),
        paths in proptest::collection::vec(path(), 1..20),
    ) {
        let f = build(&ops, ignore_case);
        for path in &paths {
            if f.include_file(path, 0, None) {
                let mut d = path.parent();
                while let Some(dir) = d {
                    prop_assert!(f.include_dir(&dir), "{:?} included but {:?} pruned\n{}", path, dir, f.dump());
                    d = dir.parent();
                }
            }
            // A directory is included only if its parent is.
            if f.include_dir(path) {
                if let Some(parent) = path.parent() {
                    prop_assert!(f.include_dir(&parent));
                }
            }
        }
    }

    /// Building the same rules twice gives the same compiled set and the same answers.
    #[test]
    fn compiled_set_is_deterministic(
        ops in proptest::collection::vec(op(), 0..6),
        paths in proptest::collection::vec(path(), 1..10),
    ) {
        let a = build(&ops, false);
        let b = build(&ops, false);
        prop_assert_eq!(a.dump(), b.dump());
        for path in &paths {
            prop_assert_eq!(a.include_file(path, 0, None), b.include_file(path, 0, None));
            prop_assert_eq!(a.include_dir(path), b.include_dir(path));
        }
    }

    /// The string shortcuts agree with the plain regular expressions rclone would run.
    #[test]
    fn shortcuts_agree_with_regexes(
        ops in proptest::collection::vec(op(), 0..6),
        paths in proptest::collection::vec(path(), 1..10),
    ) {
        let f = build(&ops, false);
        for path in &paths {
            let s = path.as_str();
            let slow = f.inner.file_rules.iter().find(|r| r.regex_matches(s)).map(|r| r.include);
            prop_assert_eq!(f.inner.file_rules.decide(s), slow);
            let d = format!("{s}/");
            let slow = f.inner.dir_rules.iter().find(|r| r.regex_matches(&d)).map(|r| r.include);
            prop_assert_eq!(f.inner.dir_rules.decide(&d), slow);
        }
    }

    /// No input makes the parsers panic.
    #[test]
    fn parsers_never_panic(text in "\\PC{0,24}", raw in proptest::collection::vec(any::<u8>(), 0..24)) {
        let lossy = String::from_utf8_lossy(&raw).into_owned();
        for t in [&text, &lossy] {
            let _ = FilterSet::builder().include(t).build();
            let _ = FilterSet::builder().filter(t).build();
            let _ = FilterSet::builder().add_rules_from_str(RuleKind::Filter, t).build();
            let _ = FilterSet::builder().files_from_list(vec![t.clone()]).build();
            let _ = parse_duration(t);
            let _ = parse_age(t);
            let _ = parse_size(t);
            if let Ok(f) = FilterSet::builder().exclude(t).ignore_case(true).build() {
                let _ = f.include_path(&p("a/b"), false);
            }
        }
    }

    /// Glob-shaped input (many metacharacters) never panics either.
    #[test]
    fn glob_parser_never_panics(g in "[/*?\\[\\]{},\\\\a-c.:^!]{0,16}") {
        if let Ok(f) = FilterSet::builder().include(&g).build() {
            let _ = f.include_path(&p("a/b"), false);
            let _ = f.include_dir(&p("a"));
        }
        let _ = FilterSet::builder().filter(&format!("- {g}")).build();
    }
}
