//! March benchmark: time and peak memory of comparing two generated trees of 100,000 and
//! 1,000,000 files (a dry-run sync where every file is identical, so the run is all march and
//! comparison).
//!
//! Each size runs in its own process so that its peak memory (VmHWM) is its own. Run with
//! `cargo bench --bench march`; `MARCH_SIZES=10000,100000` picks other sizes.
//!
//! The trees are generated on the fly by a listing-only remote, so the figures measure the
//! engine, not a filesystem. Memory should stay flat as the tree grows.
//!
//! `MARCH_LAYERS=none,default,all` also measures the wrappers the registry puts around a
//! network remote: `default` is its stack with rclone's defaults (Retrying over Timeout),
//! `all` adds Throttled (at a rate that never waits) and Limited (64 calls in flight).

use std::ops::Range;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cloudsync::deps::async_trait::async_trait;
use cloudsync::deps::futures::StreamExt;
use cloudsync::deps::time::OffsetDateTime;
use cloudsync::{
    ByteStream, Capabilities, DEFAULT_TIMEOUT, Entry, EntryStream, Error, ErrorKind, Limited,
    Remote, RemotePath, Result, RetryPolicy, Retrying, Throttled, Timeout, WriteMeta,
};

const FILES_PER_DIR: usize = 1000;

/// A read-only remote whose listing is `dNNNNN/fNNNNN` generated on demand.
#[derive(Debug)]
struct Generated {
    name: &'static str,
    dirs: usize,
    caps: Capabilities,
}

impl Generated {
    fn new(name: &'static str, files: usize) -> Self {
        Generated {
            name,
            dirs: files.div_ceil(FILES_PER_DIR),
            caps: Capabilities {
                modtime_precision: Some(Duration::from_nanos(1)),
                write_modtime: true,
                set_modtime: true,
                dirs: true,
                ..Default::default()
            },
        }
    }
}

fn nope(op: &str) -> Error {
    Error::new(ErrorKind::Unsupported, format!("generated tree: no {op}"))
}

#[async_trait]
impl Remote for Generated {
    fn describe(&self) -> String {
        format!("generated://{}", self.name)
    }
    fn capabilities(&self) -> &Capabilities {
        &self.caps
    }
    async fn list(&self, dir: &RemotePath) -> Result<EntryStream> {
        let mtime = OffsetDateTime::from_unix_timestamp(1_700_000_000).ok();
        if dir.is_root() {
            let dirs = self.dirs;
            return Ok(cloudsync::deps::futures::stream::iter(0..dirs)
                .map(move |i| Ok(Entry::dir(RemotePath::new(&format!("d{i:05}"))?)))
                .boxed());
        }
        let dir = dir.clone();
        Ok(cloudsync::deps::futures::stream::iter(0..FILES_PER_DIR)
            .map(move |i| {
                Ok(Entry::file(dir.join(&format!("f{i:05}.dat"))?, 1000).with_modtime(mtime))
            })
            .boxed())
    }
    async fn stat(&self, _: &RemotePath) -> Result<Entry> {
        Err(nope("stat"))
    }
    async fn read(&self, _: &RemotePath, _: Option<Range<u64>>) -> Result<ByteStream> {
        Err(nope("read"))
    }
    async fn write(&self, _: &RemotePath, _: ByteStream, _: WriteMeta) -> Result<Entry> {
        Err(nope("write"))
    }
    async fn mkdir(&self, _: &RemotePath) -> Result<()> {
        Err(nope("mkdir"))
    }
    async fn remove_file(&self, _: &RemotePath) -> Result<()> {
        Err(nope("remove_file"))
    }
    async fn remove_dir(&self, _: &RemotePath) -> Result<()> {
        Err(nope("remove_dir"))
    }
}

fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// `remote` inside the layers named by `layers`, innermost first as the registry stacks them.
fn layered(remote: Arc<dyn Remote>, layers: &str, throttle: &Throttled) -> Arc<dyn Remote> {
    if layers == "none" {
        return remote;
    }
    let mut r = Timeout::wrap(remote, DEFAULT_TIMEOUT);
    if layers == "all" {
        r = Limited::wrap(r, 64);
        r = throttle.wrap(r);
    }
    Retrying::wrap(r, RetryPolicy::default())
}

fn run_one(files: usize, layers: &str) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let before = peak_rss_kib();
    let start = Instant::now();
    let summary = rt.block_on(async {
        let throttle = Throttled::new(1e9, 1_000_000).expect("a valid rate");
        let src = layered(Arc::new(Generated::new("src", files)), layers, &throttle);
        let dst = layered(Arc::new(Generated::new("dst", files)), layers, &throttle);
        let opts = cloudsync::ops::SyncOptions {
            dry_run: true,
            ..Default::default()
        };
        cloudsync::ops::sync(&src, &dst, &opts).await
    });
    let elapsed = start.elapsed();
    let summary = summary.expect("march run");
    assert_eq!(summary.checked as usize, files, "every file compared");
    assert_eq!(summary.transferred, 0);
    println!(
        "| {files} | {layers} | {:.2} s | {:.2} M files/s | {} MiB | {} MiB |",
        elapsed.as_secs_f64(),
        files as f64 / elapsed.as_secs_f64() / 1e6,
        before / 1024,
        peak_rss_kib() / 1024
    );
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(pos) = args.iter().position(|a| a == "--one") {
        let n = args
            .get(pos + 1)
            .and_then(|v| v.parse().ok())
            .expect("--one N");
        let layers = args.get(pos + 2).map_or("none", String::as_str);
        run_one(n, layers);
        return;
    }
    if args.iter().any(|a| a == "--list" || a == "--test") {
        return; // `cargo test --benches` and `--list` probes
    }
    let sizes: Vec<usize> = std::env::var("MARCH_SIZES")
        .unwrap_or_else(|_| "100000,1000000".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let layers = std::env::var("MARCH_LAYERS").unwrap_or_else(|_| "none".into());
    let exe = std::env::current_exe().expect("current exe");
    println!("| files | layers | time | rate | RSS at start | peak RSS |");
    println!("|---|---|---|---|---|---|");
    for n in sizes {
        for l in layers.split(',').map(str::trim) {
            assert!(
                matches!(l, "none" | "default" | "all"),
                "MARCH_LAYERS: {l:?} is not none, default or all"
            );
            let status = std::process::Command::new(&exe)
                .args(["--one", &n.to_string(), l])
                .status()
                .expect("spawn bench child");
            assert!(status.success(), "march bench for {n} files failed");
        }
    }
}
