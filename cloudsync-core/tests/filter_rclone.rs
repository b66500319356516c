//! Differential test: `FilterSet` against `rclone lsf -R --files-only` on a generated local tree.
//!
//! Every scenario is given to rclone as command-line flags and to [`FilterSet`] through the
//! builder; the files our pruned walk finds (and the files `include_file` accepts without any
//! pruning) must be exactly the files rclone lists. Needs rclone (`apt-get install rclone`).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime};

use cloudsync_core::deps::time::OffsetDateTime;
use cloudsync_core::{FilterBuilder, FilterSet, RemotePath, parse_age, parse_size};

/// One filter flag, as rclone takes it and as the builder takes it.
#[derive(Debug, Clone)]
enum Arg {
    Include(String),
    Exclude(String),
    Filter(String),
    IncludeFrom(String),
    ExcludeFrom(String),
    FilterFrom(String),
    FilesFrom(String),
    MinSize(&'static str),
    MaxSize(&'static str),
    MinAge(String),
    MaxAge(String),
    MaxDepth(usize),
    IgnoreCase,
    /// Ours: `exclude_hidden_and_underscore`; rclone: the four equivalent excludes.
    Hidden,
}

use Arg::*;

fn s(x: &str) -> String {
    x.to_owned()
}

/// (relative path, size in bytes, age in seconds)
const TREE: &[(&str, u64, u64)] = &[
    ("file.jpg", 100, 60),
    ("file.png", 2048, 60),
    ("file2.jpg", 0, 3 * 3600),
    ("afile.jpg", 1024, 30 * 86400),
    ("secret1.jpg", 1500, 60),
    ("secret17.jpg", 100, 3 * 3600),
    ("file2.avi", 51201, 30 * 86400),
    ("42.doc", 10, 60),
    ("a.bak", 10, 3 * 3600),
    ("notes.txt", 1023, 30 * 86400),
    ("Zaphod.txt", 1025, 60),
    ("x.JPG", 100, 60),
    ("file.???", 1, 60),
    ("file.012", 1, 60),
    ("file.abc", 1, 60),
    ("potato", 5, 60),
    ("POTATO", 5, 60),
    ("[JP]movie.mkv", 5000, 3 * 3600),
    ("a{b}.txt", 7, 60),
    ("tmp", 3, 60),
    ("dir/anyfile", 10, 60),
    ("dir/file.jpg", 2000, 3 * 3600),
    ("dir/tmp/x.txt", 10, 30 * 86400),
    ("dir/Trash/y.jpg", 10, 60),
    ("dir/Trash/z.txt", 10, 60),
    ("subdir/dir/subsubdir/anyfile", 10, 60),
    ("subdir/file.png", 10, 3 * 3600),
    ("subdir/file.jpeg", 10, 60),
    ("a/b/c.jpg", 4096, 60),
    ("a/b/d.txt", 10, 30 * 86400),
    ("a/c/e.jpg", 10, 60),
    ("a/x.jpg", 10, 3 * 3600),
    ("a/b/deep/er/f.jpg", 10, 60),
    ("dir1/a.pdf", 10, 60),
    ("dir2/sub/b.pdf", 10, 60),
    ("dir3/c.pdf", 10, 60),
    ("dir3/d.txt", 10, 60),
    (".hidden/file.txt", 10, 60),
    (".dot.txt", 10, 60),
    ("_under/x.txt", 10, 60),
    ("ok/_partial.txt", 10, 60),
    ("ok/done.txt", 10, 60),
    ("space name/file one.txt", 10, 60),
    ("ü/日本.txt", 10, 60),
    ("var/spool/x/ncw", 10, 60),
    ("x/tmp/y", 10, 60),
    ("2024-report.csv", 10, 60),
    ("B/c/DIR/x.jpg", 10, 60),
];

fn rclone() -> PathBuf {
    let candidates = [PathBuf::from("/usr/bin/rclone")];
    if let Some(p) = candidates.iter().find(|p| p.exists()) {
        return p.clone();
    }
    match Command::new("rclone").arg("version").output() {
        Ok(o) if o.status.success() => PathBuf::from("rclone"),
        _ => panic!(
            "rclone is needed for this differential test and was not found: \
             apt-get install rclone (or run scripts/install-test-deps.sh)"
        ),
    }
}

fn make_tree(root: &Path) {
    let now = SystemTime::now();
    for (path, size, age) in TREE {
        let full = root.join(path);
        std::fs::create_dir_all(full.parent().unwrap()).unwrap();
        let file = std::fs::File::create(&full).unwrap();
        file.set_len(*size).unwrap();
        file.set_modified(now - Duration::from_secs(*age)).unwrap();
    }
}

struct Scenario<'a> {
    root: &'a Path,
    tmp: &'a Path,
    rclone: &'a Path,
}

impl Scenario<'_> {
    fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.tmp.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    /// rclone's listing, or `Err(stderr)` when it refused the flags.
    fn rclone_files(&self, args: &[Arg]) -> Result<BTreeSet<String>, String> {
        let mut cmd = Command::new(self.rclone);
        cmd.args(["--config", "/dev/null", "lsf", "-R", "--files-only"]);
        for (i, a) in args.iter().enumerate() {
            match a {
                Include(g) => cmd.args(["--include", g]),
                Exclude(g) => cmd.args(["--exclude", g]),
                Filter(r) => cmd.args(["--filter", r]),
                IncludeFrom(t) => cmd
                    .arg("--include-from")
                    .arg(self.write(&format!("i{i}"), t)),
                ExcludeFrom(t) => cmd
                    .arg("--exclude-from")
                    .arg(self.write(&format!("e{i}"), t)),
                FilterFrom(t) => cmd
                    .arg("--filter-from")
                    .arg(self.write(&format!("f{i}"), t)),
                FilesFrom(t) => cmd.arg("--files-from").arg(self.write(&format!("l{i}"), t)),
                MinSize(v) => cmd.args(["--min-size", v]),
                MaxSize(v) => cmd.args(["--max-size", v]),
                MinAge(v) => cmd.args(["--min-age", v]),
                MaxAge(v) => cmd.args(["--max-age", v]),
                MaxDepth(d) => cmd.args(["--max-depth", &d.to_string()]),
                IgnoreCase => cmd.arg("--ignore-case"),
                Hidden => cmd.args([
                    "--exclude",
                    ".*",
                    "--exclude",
                    "_*",
                    "--exclude",
                    ".*/",
                    "--exclude",
                    "_*/",
                ]),
            };
        }
        cmd.arg(self.root);
        let out = cmd.output().expect("run rclone");
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).into_owned());
        }
        Ok(String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(str::to_owned)
            .collect())
    }

    fn build(&self, args: &[Arg]) -> cloudsync_core::Result<FilterSet> {
        let mut b = FilterBuilder::new();
        for (i, a) in args.iter().enumerate() {
            match a {
                Include(g) => b.include(g),
                Exclude(g) => b.exclude(g),
                Filter(r) => b.filter(r),
                IncludeFrom(t) => b.include_from(&self.write(&format!("i{i}"), t)),
                ExcludeFrom(t) => b.exclude_from(&self.write(&format!("e{i}"), t)),
                FilterFrom(t) => b.filter_from(&self.write(&format!("f{i}"), t)),
                FilesFrom(t) => b.files_from(&self.write(&format!("l{i}"), t)),
                MinSize(v) => b.min_size(parse_size(v)?.unwrap()),
                MaxSize(v) => b.max_size(parse_size(v)?.unwrap()),
                MinAge(v) => b.min_age_limit(parse_age(v)?),
                MaxAge(v) => b.max_age_limit(parse_age(v)?),
                MaxDepth(d) => b.max_depth(*d),
                IgnoreCase => b.ignore_case(true),
                Hidden => b.exclude_hidden_and_underscore(),
            };
        }
        b.build()
    }

    /// Our listing: a walk that never lists a pruned directory.
    fn our_files(&self, f: &FilterSet) -> BTreeSet<String> {
        fn walk(root: &Path, dir: &RemotePath, f: &FilterSet, out: &mut BTreeSet<String>) {
            let full = root.join(dir.as_str());
            for e in std::fs::read_dir(full).unwrap() {
                let e = e.unwrap();
                let name = e.file_name().into_string().unwrap();
                let path = dir.join(&name).unwrap();
                let meta = e.metadata().unwrap();
                if meta.is_dir() {
                    if f.descend_into(&path) {
                        walk(root, &path, f, out);
                    }
                } else {
                    let mtime = OffsetDateTime::from(meta.modified().unwrap());
                    if f.include_file(&path, meta.len(), Some(mtime)) {
                        out.insert(path.as_str().to_owned());
                    }
                }
            }
        }
        let mut out = BTreeSet::new();
        walk(self.root, &RemotePath::root(), f, &mut out);
        out
    }

    /// `include_file` alone on every file of the tree (what a recursive lister without pruning
    /// would give).
    fn unpruned_files(&self, f: &FilterSet) -> BTreeSet<String> {
        TREE.iter()
            .filter(|(p, _, _)| {
                let meta = std::fs::metadata(self.root.join(p)).unwrap();
                let mtime = OffsetDateTime::from(meta.modified().unwrap());
                f.include_file(&RemotePath::new(p).unwrap(), meta.len(), Some(mtime))
            })
            .map(|(p, _, _)| (*p).to_owned())
            .collect()
    }

    /// Runs one scenario; returns a description of the disagreement, if any, and how many files
    /// rclone listed.
    fn check(&self, args: &[Arg]) -> (Option<String>, Option<usize>) {
        let theirs = self.rclone_files(args);
        let listed = theirs.as_ref().ok().map(BTreeSet::len);
        (self.compare(args, theirs), listed)
    }

    fn compare(&self, args: &[Arg], theirs: Result<BTreeSet<String>, String>) -> Option<String> {
        let ours = self.build(args);
        match (theirs, ours) {
            (Err(_), Err(_)) => None,
            (Ok(theirs), Ok(f)) => {
                let walked = self.our_files(&f);
                let unpruned = self.unpruned_files(&f);
                if walked == theirs && unpruned == theirs {
                    return None;
                }
                let only_rclone: Vec<_> = theirs.difference(&walked).collect();
                let only_ours: Vec<_> = walked.difference(&theirs).collect();
                Some(format!(
                    "{args:?}\n  only rclone lists: {only_rclone:?}\n  only we list: {only_ours:?}\n  \
                     unpruned differs from walk: {}\n{}",
                    unpruned != walked,
                    f.dump()
                ))
            }
            (Err(e), Ok(_)) => Some(format!(
                "{args:?}: rclone refused ({}) but we accepted",
                e.trim()
            )),
            // A deliberate difference: contradictory limits are an error here, where rclone
            // (for sizes) silently lists nothing.
            (Ok(theirs), Err(e))
                if theirs.is_empty() && e.message().contains("can't be larger") =>
            {
                None
            }
            (Ok(_), Err(e)) => Some(format!("{args:?}: we refused ({e}) but rclone accepted")),
        }
    }
}

fn fixed_scenarios() -> Vec<Vec<Arg>> {
    let ten_days_ago = (OffsetDateTime::now_utc() - Duration::from_secs(10 * 86400)).date();
    vec![
        vec![],
        vec![Include(s("*.jpg"))],
        vec![Include(s("*.{jpg,png}"))],
        vec![Include(s("/*.jpg"))],
        vec![Include(s("dir/**"))],
        vec![Include(s("/dir/**"))],
        vec![Include(s("/a/b/**"))],
        vec![Include(s("/a/*.jpg"))],
        vec![Include(s("{dir1,dir2}/**"))],
        vec![Include(s("{dir1/**,dir2/**}"))],
        vec![Include(s("/directory/"))],
        vec![Include(s("*.t?t"))],
        vec![Include(s("*.[a-z]"))],
        vec![Include(s("*.\\?\\?\\?"))],
        vec![Include(s("*.\\d\\d\\d"))],
        vec![Include(s("*.{{jpe?g}}"))],
        vec![Include(s("/{{.*\\.jpe?g}}"))],
        vec![Include(s("/{{\\d{4}}}-*"))],
        vec![Include(s("??[^[:punct:]]*"))],
        vec![Include(s("file.jpg"))],
        vec![Include(s("/file.jpg"))],
        vec![Include(s("potato"))],
        vec![Include(s("potato")), IgnoreCase],
        vec![Include(s("zaphod.txt")), IgnoreCase],
        vec![Include(s("*.jpg")), IgnoreCase],
        vec![Exclude(s("/Dir/")), IgnoreCase],
        vec![Include(s("/var/spool/**/ncw"))],
        vec![Include(s("a{b}.txt"))],
        vec![Include(s("a\\{b\\}.txt"))],
        vec![Include(s("space name/*"))],
        vec![Include(s("ü/*"))],
        vec![Exclude(s("*.bak"))],
        vec![Exclude(s("/dir/**"))],
        vec![Exclude(s("dir/"))],
        vec![Exclude(s("tmp/"))],
        vec![Exclude(s("*\\[{JP,KR,HK}\\]*"))],
        vec![Exclude(s("*.jpg")), Include(s("a*"))],
        vec![Filter(s("- *.bak"))],
        vec![Filter(s("+ *.jpg")), Exclude(s("secret*"))],
        vec![Filter(s("+ a/b.txt")), Filter(s("- *"))],
        vec![Filter(s("+ /a/**")), Filter(s("- /**"))],
        vec![Filter(s("+ **/dir/**")), Filter(s("- **"))],
        vec![Include(s("*.jpg")), Filter(s("!"))],
        vec![FilterFrom(s(
            "# a sample filter rule file\n- secret*.jpg\n+ *.jpg\n+ *.png\n+ file2.avi\n\
             - /dir/tmp/** # WARNING! This text will be treated as part of the path.\n\
             - /dir/Trash/**\n+ /dir/**\n# exclude everything else\n- *\n",
        ))],
        vec![FilterFrom(s(
            "- secret*.jpg\n+ *.jpg\n+ *.png\n+ file2.avi\n- *\n",
        ))],
        vec![FilterFrom(s("+ *.jpg\n+ *.gif\n!\n+ 42.doc\n- *\n"))],
        vec![FilterFrom(s("- /dir1/\n- /dir2/\n+ *.pdf\n- **\n"))],
        vec![IncludeFrom(s(
            "# a sample include rule file\n*.jpg\nfile2.avi\n",
        ))],
        vec![ExcludeFrom(s(
            "# a sample exclude rule file\n*.bak\nfile2.jpg\n",
        ))],
        vec![IncludeFrom(s("; only comments\n"))],
        vec![FilesFrom(s(
            "# comment\nfile1.jpg\nfile.jpg\n  dir/anyfile  \n/a/b/c.jpg\nmissing.txt\n",
        ))],
        vec![MinSize("1k")],
        vec![MaxSize("1k")],
        vec![MinSize("100B"), MaxSize("2k")],
        vec![MinSize("50k")],
        vec![MinAge(s("1h"))],
        vec![MaxAge(s("1h"))],
        vec![MaxAge(s("2d")), MinAge(s("30m"))],
        vec![MinAge(s("1w"))],
        vec![MaxAge(s("1M"))],
        vec![MaxAge(s("600"))],
        vec![MaxAge(ten_days_ago.to_string())],
        vec![MinAge(format!("{ten_days_ago} 00:00:00"))],
        vec![MaxDepth(1)],
        vec![MaxDepth(2), Include(s("*.jpg"))],
        vec![MaxDepth(3), Exclude(s("dir/"))],
        vec![Hidden],
        vec![Include(s("a{b"))],
        vec![Include(s("***"))],
        vec![Filter(s("* x"))],
        vec![Include(s("ab]c"))],
        vec![MinSize("2k"), MaxSize("1k")],
        vec![MinAge(s("2h")), MaxAge(s("1h"))],
        vec![FilesFrom(s("file.jpg\n")), Include(s("*.jpg"))],
    ]
}

/// Random rule sets built from pieces that matter for the tree (no nested `{}`: rclone 1.60
/// does not have them).
fn random_scenarios(n: usize, seed: u64) -> Vec<Vec<Arg>> {
    const ATOMS: &[&str] = &[
        "dir",
        "a",
        "b",
        "sub*",
        "*.jpg",
        "*.txt",
        "file?.jpg",
        "[ab]",
        "{a,dir}",
        "**",
        "*",
        "secret*",
        "{{[a-c]}}",
        "*.{jpg,png}",
        "d*",
        "tmp",
        "Trash",
        "x",
        "c.jpg",
        "?",
    ];
    let mut rng = fastrand::Rng::with_seed(seed);
    let glob = |rng: &mut fastrand::Rng| -> String {
        loop {
            let mut g = String::new();
            if rng.bool() {
                g.push('/');
            }
            let n = rng.usize(1..4);
            let atoms: Vec<&str> = (0..n).map(|_| ATOMS[rng.usize(..ATOMS.len())]).collect();
            g.push_str(&atoms.join("/"));
            if rng.u8(..4) == 0 {
                g.push('/');
            }
            if !g.contains("***") {
                return g;
            }
        }
    };
    (0..n)
        .map(|_| {
            let mut args = Vec::new();
            // Mostly one kind per scenario, as rclone recommends; sometimes mixed.
            let style = rng.u8(..4);
            for _ in 0..rng.usize(1..6) {
                let g = glob(&mut rng);
                let kind = if style < 3 { style } else { rng.u8(..3) };
                args.push(match kind {
                    0 => Include(g),
                    1 => Exclude(g),
                    _ => match rng.u8(..10) {
                        0 => Filter(s("!")),
                        1..5 => Filter(format!("+ {g}")),
                        _ => Filter(format!("- {g}")),
                    },
                });
            }
            if rng.u8(..5) == 0 {
                args.push(IgnoreCase);
            }
            args
        })
        .collect()
}

#[test]
fn filters_list_what_rclone_lists() {
    let rclone = rclone();
    let root_dir = tempfile::tempdir().unwrap();
    let tmp_dir = tempfile::tempdir().unwrap();
    make_tree(root_dir.path());
    let sc = Scenario {
        root: root_dir.path(),
        tmp: tmp_dir.path(),
        rclone: &rclone,
    };
    // The no-filter listing must be the whole tree (checks the harness itself).
    let all = sc.rclone_files(&[]).unwrap();
    assert_eq!(all.len(), TREE.len(), "{all:?}");

    let seed = std::env::var("FILTER_RCLONE_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20240601);
    let mut failures = Vec::new();
    let (mut count, mut partial) = (0, 0);
    for args in fixed_scenarios()
        .into_iter()
        .chain(random_scenarios(150, seed))
    {
        count += 1;
        let (failure, listed) = sc.check(&args);
        failures.extend(failure);
        // Scenarios that select some but not all files are the ones that discriminate.
        if listed.is_some_and(|n| n > 0 && n < TREE.len()) {
            partial += 1;
        }
    }
    assert!(
        partial * 3 > count,
        "only {partial} of {count} scenarios select a proper subset"
    );
    assert!(
        failures.is_empty(),
        "{} of {count} scenarios differ from rclone:\n\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}
