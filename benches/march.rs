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
//! network remote, applied by [`Registry::layered`] itself: `default` is its stack with
//! rclone's defaults (Retrying over Timeout over ErrorContext), `all` adds Throttled (at a rate
//! that never waits), Limited (64 calls in flight) and BandwidthLimited (at 1 TiB/s).
//!
//! `MARCH_REPS=5` runs every size and layer set five times, interleaved (none, default, all,
//! none, ...) so that a slow spell of the machine hits all of them alike, and ends with the
//! median time of each and its overhead over `none`:
//!
//! ```text
//! MARCH_SIZES=1000000 MARCH_LAYERS=none,default,all MARCH_REPS=7 cargo bench --bench march
//! ```

use std::ops::Range;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cloudsync::deps::async_trait::async_trait;
use cloudsync::deps::futures::StreamExt;
use cloudsync::deps::time::OffsetDateTime;
use cloudsync::{
    BandwidthLimiter, ByteStream, Capabilities, Entry, EntryStream, Error, ErrorKind, LayerOptions,
    Registry, Remote, RemotePath, Result, WriteMeta,
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

/// CPU seconds this process has used, all threads, user and system (`/proc/self/stat`, in
/// ticks of 1/100 s): on a machine shared with other work this varies far less than the wall
/// clock.
fn cpu_secs() -> f64 {
    std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| {
            // Fields after the command name, which is in parentheses: utime and stime are the
            // 14th and 15th fields of the line.
            let rest = &s[s.rfind(')')? + 1..];
            let f: Vec<u64> = rest
                .split_whitespace()
                .skip(11)
                .take(2)
                .filter_map(|v| v.parse().ok())
                .collect();
            (f.len() == 2).then(|| (f[0] + f[1]) as f64 / 100.0)
        })
        .unwrap_or(0.0)
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

/// The registry whose layers `layers` names.
fn registry(layers: &str) -> Registry {
    let mut r = Registry::new();
    if layers == "all" {
        let opts = LayerOptions {
            tps_limit: Some(1e9),
            tps_burst: 1_000_000,
            max_in_flight: Some(64),
            ..Default::default()
        };
        r.set_layers(opts).expect("valid layer options");
        let limit = "1T".parse().expect("a valid bandwidth");
        r.set_bwlimit(Some(BandwidthLimiter::new(limit, None)));
    }
    r
}

/// `remote` inside the layers named by `layers`, as the registry stacks them.
fn layered(remote: Arc<dyn Remote>, registry: &Registry, layers: &str) -> Arc<dyn Remote> {
    if layers == "none" {
        return remote;
    }
    registry.layered(remote)
}

fn run_one(files: usize, layers: &str) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let before = peak_rss_kib();
    let cpu_before = cpu_secs();
    let start = Instant::now();
    let summary = rt.block_on(async {
        let registry = registry(layers);
        let src = layered(Arc::new(Generated::new("src", files)), &registry, layers);
        let dst = layered(Arc::new(Generated::new("dst", files)), &registry, layers);
        let opts = cloudsync::ops::SyncOptions {
            dry_run: true,
            ..Default::default()
        };
        cloudsync::ops::sync(&src, &dst, &opts).await
    });
    let elapsed = start.elapsed();
    let cpu = cpu_secs() - cpu_before;
    let summary = summary.expect("march run");
    assert_eq!(summary.checked as usize, files, "every file compared");
    assert_eq!(summary.transferred, 0);
    println!(
        "| {files} | {layers} | {:.3} s | {cpu:.2} s | {:.2} M files/s | {} MiB | {} MiB |",
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
    let layers: Vec<String> = std::env::var("MARCH_LAYERS")
        .unwrap_or_else(|_| "none".into())
        .split(',')
        .map(|l| l.trim().to_owned())
        .collect();
    for l in &layers {
        assert!(
            matches!(l.as_str(), "none" | "default" | "all"),
            "MARCH_LAYERS: {l:?} is not none, default or all"
        );
    }
    let reps: usize = std::env::var("MARCH_REPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1)
        .max(1);
    let exe = std::env::current_exe().expect("current exe");
    println!("| files | layers | time | CPU | rate | RSS at start | peak RSS |");
    println!("|---|---|---|---|---|---|---|");
    // Wall and CPU seconds of each run, by size and layer set.
    let mut times: Vec<Runs<'_>> = Vec::new();
    for &n in &sizes {
        for l in &layers {
            times.push((n, l, Vec::new()));
        }
    }
    for _ in 0..reps {
        for (n, l, runs) in times.iter_mut() {
            let out = std::process::Command::new(&exe)
                .args(["--one", &n.to_string(), l])
                .stderr(std::process::Stdio::inherit())
                .output()
                .expect("spawn bench child");
            assert!(out.status.success(), "march bench for {n} files failed");
            let row = String::from_utf8_lossy(&out.stdout);
            print!("{row}");
            // `| files | layers | 1.234 s | 2.34 s | ...`
            let field = |i: usize| -> f64 {
                row.split('|')
                    .nth(i)
                    .and_then(|t| t.trim().trim_end_matches(" s").parse().ok())
                    .expect("times in the child's row")
            };
            runs.push((field(3), field(4)));
        }
    }
    if reps > 1 {
        println!();
        println!(
            "| files | layers | median time of {reps} | min–max | overhead | median CPU | min–max | overhead |"
        );
        println!("|---|---|---|---|---|---|---|---|");
        for (n, l, _) in &times {
            summary_row(&times, *n, l);
        }
    }
}

/// The runs of one size and layer set: files, layers, (wall, CPU) seconds of each run.
type Runs<'a> = (usize, &'a str, Vec<(f64, f64)>);

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    if v.len() % 2 == 1 {
        v[mid]
    } else {
        (v[mid - 1] + v[mid]) / 2.0
    }
}

/// Median, range and overhead over `none` of the runs of `n` files with layers `l`, for the
/// wall clock and for CPU time.
fn summary_row(times: &[Runs<'_>], n: usize, l: &str) {
    let runs = |layers: &str, pick: fn(&(f64, f64)) -> f64| -> Option<Vec<f64>> {
        times
            .iter()
            .find(|(m, name, _)| *m == n && *name == layers)
            .map(|(_, _, r)| r.iter().map(pick).collect())
    };
    let mut row = format!("| {n} | {l} |");
    for pick in [(|r: &(f64, f64)| r.0) as fn(&(f64, f64)) -> f64, |r| r.1] {
        let mine = runs(l, pick).unwrap_or_default();
        let min = mine.iter().copied().fold(f64::INFINITY, f64::min);
        let max = mine.iter().copied().fold(0.0, f64::max);
        let med = median(mine);
        let overhead = match runs("none", pick) {
            Some(b) if l != "none" => format!("{:+.1} %", (med / median(b) - 1.0) * 100.0),
            _ => "-".into(),
        };
        row.push_str(&format!(" {med:.3} s | {min:.3}–{max:.3} s | {overhead} |"));
    }
    println!("{row}");
}
