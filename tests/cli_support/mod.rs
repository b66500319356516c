//! Helpers for the CLI tests: run the built `cloudsync` example (and `rclone`), build trees,
//! snapshot them.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::LazyLock;
use std::time::{Duration, SystemTime};

/// The example binary built by `cargo test` (examples are built before integration tests run,
/// by `cargo test` and `cargo nextest` alike) next to this test binary's `deps/` directory.
pub fn bin() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("test binary is in target/<profile>/deps");
    let p = profile_dir
        .join("examples")
        .join(format!("cloudsync{}", std::env::consts::EXE_SUFFIX));
    assert!(
        p.exists(),
        "the cloudsync example binary is missing at {}: run the tests with `cargo test -p \
         cloudsync` (it builds examples first) or build it with `cargo build --example cloudsync`",
        p.display()
    );
    // `cargo test --test cli` builds only the selected test, not the examples: refuse a binary
    // older than the example's sources rather than test stale code.
    let built = std::fs::metadata(&p)
        .and_then(|m| m.modified())
        .expect("mtime");
    let sources = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/cloudsync");
    for e in std::fs::read_dir(&sources).expect("examples/cloudsync") {
        let e = e.expect("entry");
        let changed = e.metadata().and_then(|m| m.modified()).expect("mtime");
        assert!(
            changed <= built,
            "{} is older than {}: build it first (`cargo build -p cloudsync --example \
             cloudsync`, or run the whole `cargo test -p cloudsync`)",
            p.display(),
            e.path().display()
        );
    }
    p
}

/// An empty directory used as `$HOME` and `$XDG_CONFIG_HOME`, so no user config is read.
static EMPTY_HOME: LazyLock<tempfile::TempDir> =
    LazyLock::new(|| tempfile::tempdir().expect("tempdir"));

/// What a program run produced.
#[derive(Debug)]
pub struct Out {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Out {
    /// Asserts the exit code, showing the output when it differs.
    #[track_caller]
    pub fn expect(&self, code: i32) -> &Self {
        assert_eq!(
            self.code, code,
            "unexpected exit code\nstdout:\n{}\nstderr:\n{}",
            self.stdout, self.stderr
        );
        self
    }

    /// stdout lines.
    pub fn lines(&self) -> Vec<String> {
        self.stdout.lines().map(str::to_owned).collect()
    }

    /// stdout lines, sorted.
    pub fn sorted_lines(&self) -> Vec<String> {
        let mut l = self.lines();
        l.sort();
        l
    }
}

fn output(cmd: &mut Command) -> Out {
    let o = cmd.output().expect("run program");
    Out {
        code: o.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
    }
}

/// A `cloudsync` command with an isolated environment.
pub fn cs_cmd(args: &[&str]) -> Command {
    let mut c = Command::new(bin());
    c.args(args)
        .env_remove("CLOUDSYNC_CONFIG")
        .env_remove("RUST_LOG")
        .env("HOME", EMPTY_HOME.path())
        .env("XDG_CONFIG_HOME", EMPTY_HOME.path());
    c
}

/// Runs `cloudsync ARGS`.
pub fn cs(args: &[&str]) -> Out {
    output(&mut cs_cmd(args))
}

/// Runs `cloudsync ARGS` in `dir`.
pub fn cs_in(dir: &Path, args: &[&str]) -> Out {
    output(cs_cmd(args).current_dir(dir))
}

/// Runs `rclone ARGS` with an empty config; fails with instructions when rclone is missing.
pub fn rclone(args: &[&str]) -> Out {
    let prog = Path::new("/usr/bin/rclone");
    assert!(
        prog.exists(),
        "rclone is needed for the differential tests: install it with `apt-get install rclone` \
         (scripts/install-test-deps.sh does)"
    );
    let cfg = EMPTY_HOME.path().join("rclone.conf");
    std::fs::write(&cfg, "").expect("write empty rclone config");
    output(
        Command::new(prog)
            .arg("--config")
            .arg(&cfg)
            .args(args)
            .env("HOME", EMPTY_HOME.path()),
    )
}

/// A fixed instant for modtimes, so trees made twice are identical.
pub fn base_time() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000)
}

/// Writes `root/rel` with `content` and modtime `base_time() + secs`.
pub fn put(root: &Path, rel: &str, content: &str, secs: u64) {
    let p = root.join(rel);
    std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
    std::fs::write(&p, content).expect("write");
    let f = std::fs::File::options().write(true).open(&p).expect("open");
    f.set_modified(base_time() + Duration::from_secs(secs))
        .expect("set mtime");
}

/// Creates a directory.
pub fn mkdir(root: &Path, rel: &str) {
    std::fs::create_dir_all(root.join(rel)).expect("mkdir");
}

/// One node of a snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Node {
    Dir,
    File { content: Vec<u8>, mtime_secs: u64 },
}

/// Every file and directory below `root`, with content and whole-second modtimes.
pub fn snapshot(root: &Path) -> BTreeMap<String, Node> {
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, Node>) {
    for e in std::fs::read_dir(dir).expect("read_dir") {
        let e = e.expect("dir entry");
        let p = e.path();
        let rel = p
            .strip_prefix(root)
            .expect("below root")
            .to_string_lossy()
            .into_owned();
        let meta = e.metadata().expect("metadata");
        if meta.is_dir() {
            out.insert(rel, Node::Dir);
            walk(root, &p, out);
        } else {
            let mtime_secs = meta
                .modified()
                .expect("mtime")
                .duration_since(SystemTime::UNIX_EPOCH)
                .expect("after epoch")
                .as_secs();
            out.insert(
                rel,
                Node::File {
                    content: std::fs::read(&p).expect("read"),
                    mtime_secs,
                },
            );
        }
    }
}

/// Copies a tree, keeping modtimes.
pub fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for e in std::fs::read_dir(from).expect("read_dir") {
        let e = e.expect("entry");
        let (src, dst) = (e.path(), to.join(e.file_name()));
        if e.metadata().expect("meta").is_dir() {
            copy_tree(&src, &dst);
        } else {
            std::fs::copy(&src, &dst).expect("copy");
            let mtime = e.metadata().expect("meta").modified().expect("mtime");
            std::fs::File::options()
                .write(true)
                .open(&dst)
                .expect("open")
                .set_modified(mtime)
                .expect("set mtime");
        }
    }
}

/// `p` as a `&str`.
pub fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 temp path")
}
