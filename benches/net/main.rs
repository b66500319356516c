//! Network rows of the side-by-side benchmark: our CLI (release build) against rclone and each
//! protocol's reference client (OpenSSH `sftp`, `lftp`, `curl`) uploading to and downloading
//! from real servers on 127.0.0.1 — OpenSSH, ProFTPD (plain and explicit FTPS) and Apache
//! mod_dav (HTTP and HTTPS) — started by this program the way the tests start them.
//!
//! Run through `scripts/bench.sh --net` (builds the release CLI with every backend first), e.g.
//! `scripts/bench.sh --net --backends sftp,webdav --scenarios small --reps 5`. `cargo test`
//! never runs it.
//!
//! Every run writes to a fresh directory; the harness checks that it holds exactly the source's
//! files and bytes (a tool that failed at once would otherwise look fast) and moves it aside
//! (DESIGN.md §8). Tools and directions alternate in a rotating order.

#[path = "../harness/measure.rs"]
mod measure;
#[path = "../harness/tree.rs"]
mod tree;
#[path = "../harness/util.rs"]
mod util;

#[path = "../../cloudsync-sftp/tests/common/mod.rs"]
#[allow(unused_imports)]
mod sshd;

#[path = "../../cloudsync-ftp/tests/common/mod.rs"]
#[allow(unused_imports)]
mod ftpd;

#[path = "../../cloudsync-webdav/tests/common/mod.rs"]
#[allow(unused_imports)]
mod dav;

mod endpoints;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use clap::Parser;

use crate::endpoints::{Direction, Endpoint};
use crate::measure::Sample;
use crate::tree::TreeSpec;
use crate::util::{available, human, slug};

#[derive(Debug, Parser)]
#[command(
    name = "net",
    about = "cloudsync vs rclone and reference clients over SFTP, FTP(S) and WebDAV(S)"
)]
struct Args {
    /// Servers: sftp (OpenSSH), ftp (ProFTPD), ftps (Pure-FTPd, explicit TLS), webdav (Apache
    /// mod_dav), webdavs (the same over HTTPS)
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "sftp,ftp,ftps,webdav,webdavs"
    )]
    backends: Vec<String>,
    /// Scenarios: small (many small files), big (one large file)
    #[arg(long, value_delimiter = ',', default_value = "small,big")]
    scenarios: Vec<String>,
    /// Directions: up (local -> server), down (server -> local)
    #[arg(long, value_delimiter = ',', default_value = "up,down")]
    directions: Vec<String>,
    /// Repetitions per tool
    #[arg(long, default_value_t = 3)]
    reps: usize,
    /// Files in the `small` tree
    #[arg(long, default_value_t = 2_000)]
    small_files: usize,
    /// Average size of a `small` file in bytes
    #[arg(long, default_value_t = 16 * 1024)]
    small_size: u64,
    /// Size of the `big` file in MiB
    #[arg(long, default_value_t = 512)]
    big_mib: u64,
    /// --transfers for cloudsync and rclone
    #[arg(long, default_value_t = 4)]
    transfers: usize,
    /// GiB of memory to touch and free before timing
    #[arg(long, default_value_t = 2)]
    warm_gib: u64,
    /// Working directory (source trees are kept there between runs)
    #[arg(long)]
    work: Option<PathBuf>,
    /// Path of our CLI [default: target/release/examples/cloudsync next to this program]
    #[arg(long)]
    cloudsync: Option<PathBuf>,
    /// Another build of our CLI to time beside it (a row named `baseline`), e.g. before and
    /// after a change
    #[arg(long)]
    baseline: Option<PathBuf>,
    /// Passed by `cargo bench`; ignored
    #[arg(long, hide = true)]
    bench: bool,
}

/// The samples of one (backend, scenario, direction, tool) cell.
struct Row {
    key: String,
    tool: &'static str,
    bytes: u64,
    samples: Vec<Sample>,
    /// Runs that failed or left a wrong result (not timed).
    failed: usize,
}

impl Row {
    fn median(&self) -> Option<Duration> {
        let mut w: Vec<Duration> = self.samples.iter().map(|s| s.wall).collect();
        w.sort();
        w.get(w.len() / 2).copied()
    }
    fn peak_mib(&self) -> String {
        self.samples
            .iter()
            .filter_map(|s| s.peak_kib)
            .max()
            .map(|k| format!("{:.0} MiB", k as f64 / 1024.0))
            .unwrap_or_else(|| "–".into())
    }
}

fn main() {
    let args = Args::parse();
    if let Err(e) = run(&args) {
        eprintln!("net: {e}");
        std::process::exit(1);
    }
}

fn run(args: &Args) -> Result<(), String> {
    let work = util::work_dir(args.work.as_deref())?;
    let ours = util::our_cli(
        args.cloudsync.as_deref(),
        "`cargo build --release --all-features --example cloudsync` (scripts/bench.sh --net does)",
    )?;
    for program in ["rclone", "sftp", "lftp", "curl"] {
        if !available(program) {
            return Err(format!(
                "{program} is not installed (scripts/bench.sh --net installs rclone, lftp, curl and openssh-client)"
            ));
        }
    }
    let specs: Vec<TreeSpec> = args
        .scenarios
        .iter()
        .map(|s| match s.as_str() {
            "small" => Ok(TreeSpec {
                name: "small",
                files: args.small_files,
                size: args.small_size,
                per_dir: 100,
            }),
            "big" => Ok(TreeSpec {
                name: "big",
                files: 1,
                size: args.big_mib << 20,
                per_dir: 1,
            }),
            other => Err(format!("unknown scenario {other:?} (small, big)")),
        })
        .collect::<Result<_, _>>()?;
    let directions: Vec<Direction> = args
        .directions
        .iter()
        .map(|d| match d.as_str() {
            "up" => Ok(Direction::Up),
            "down" => Ok(Direction::Down),
            other => Err(format!("unknown direction {other:?} (up, down)")),
        })
        .collect::<Result<_, _>>()?;
    measure::warm_memory(args.warm_gib);

    let mut rows: Vec<Row> = Vec::new();
    for backend in &args.backends {
        let mut endpoint = Endpoint::start(backend, &ours, &work, args.transfers)?;
        endpoint.baseline = args.baseline.clone();
        for spec in &specs {
            let local_src = spec
                .ensure(&work)
                .map_err(|e| format!("generating {}: {e}", spec.name))?;
            // The source of the downloads: the same tree on the server.
            let remote_src = endpoint.seed(&local_src, spec.name)?;
            for &dir in &directions {
                let key = format!(
                    "{backend} | {} ({} files, {}) | {}",
                    spec.name,
                    spec.files,
                    human(spec.total_bytes()),
                    dir.label()
                );
                let tools = endpoint.tools(spec, dir);
                for rep in 0..args.reps {
                    for k in 0..tools.len() {
                        let tool = &tools[(k + rep) % tools.len()];
                        let (src, dst, check) = match dir {
                            Direction::Up => {
                                let rel = endpoint.fresh_dir(tool.name)?;
                                let check = endpoint.data.join(&rel);
                                (local_src.to_string_lossy().into_owned(), rel, check)
                            }
                            Direction::Down => {
                                let dst = work.join("dst").join(format!(
                                    "{}-{}",
                                    slug(tool.name),
                                    tree::unique()
                                ));
                                let s = dst.to_string_lossy().into_owned();
                                (remote_src.clone(), s, dst)
                            }
                        };
                        let cmd = (tool.command)(&src, &dst);
                        // A failed or wrong run is reported and counted, not timed: one
                        // tool's bad moment must not lose the whole table.
                        let outcome = measure::run(cmd, &work)
                            .map_err(|e| e.to_string())
                            .and_then(|s| spec.check(&check).map(|()| s));
                        if check.exists() {
                            retire(&check, spec)
                                .map_err(|e| format!("clearing {}: {e}", check.display()))?;
                        }
                        let row = match rows
                            .iter_mut()
                            .position(|r| r.key == key && r.tool == tool.name)
                        {
                            Some(i) => &mut rows[i],
                            None => {
                                rows.push(Row {
                                    key: key.clone(),
                                    tool: tool.name,
                                    bytes: spec.total_bytes(),
                                    samples: Vec::new(),
                                    failed: 0,
                                });
                                rows.last_mut().ok_or("no row")?
                            }
                        };
                        match outcome {
                            Ok(sample) => {
                                eprintln!(
                                    "{key} rep {}/{} {:<10} {:>8.3}s",
                                    rep + 1,
                                    args.reps,
                                    tool.name,
                                    sample.wall.as_secs_f64()
                                );
                                row.samples.push(sample);
                            }
                            Err(e) => {
                                eprintln!(
                                    "{key} rep {}/{} {} FAILED: {e}",
                                    rep + 1,
                                    args.reps,
                                    tool.name
                                );
                                row.failed += 1;
                            }
                        }
                    }
                }
            }
        }
        // The server's copies (trash and seeds) and the downloads go before the next server.
        for dir in [endpoint.data.clone(), work.join("dst")] {
            let _ = std::fs::remove_dir_all(dir.join(".bench-trash"));
        }
        endpoint.remove_seeds();
    }
    print_table(args, &rows);
    Ok(())
}

/// Clears a finished destination: a tree of many files is moved into a `.bench-trash` folder
/// beside it (deleting many files right before creating many is slow on ext4, DESIGN.md §8);
/// a few (large) files are deleted at once, so repetitions of a large file do not fill the disk.
fn retire(dir: &Path, spec: &TreeSpec) -> std::io::Result<()> {
    if spec.files < 100 {
        return std::fs::remove_dir_all(dir);
    }
    let Some(parent) = dir.parent() else {
        return Ok(());
    };
    let trash = parent.join(".bench-trash");
    std::fs::create_dir_all(&trash)?;
    std::fs::rename(dir, trash.join(tree::unique()))
}

fn print_table(args: &Args, rows: &[Row]) {
    println!();
    println!(
        "network rows, {} repetitions (median), --transfers {}, {} CPUs, servers on 127.0.0.1",
        args.reps,
        args.transfers,
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!();
    println!(
        "| backend | scenario | direction | tool | median | vs rclone | vs reference | throughput | peak RSS |"
    );
    println!("| --- | --- | --- | --- | ---: | ---: | ---: | ---: | ---: |");
    for r in rows {
        let failed = if r.failed > 0 {
            format!(
                " ({} of {} runs failed)",
                r.failed,
                r.failed + r.samples.len()
            )
        } else {
            String::new()
        };
        let Some(median) = r.median() else {
            println!("| {} | {}{failed} | – | – | – | – | – |", r.key, r.tool);
            continue;
        };
        let ratio_to = |pred: &dyn Fn(&Row) -> bool| {
            rows.iter()
                .find(|o| o.key == r.key && pred(o))
                .and_then(Row::median)
                .map(|o| format!("{:.2}×", median.as_secs_f64() / o.as_secs_f64()))
                .unwrap_or_else(|| "–".into())
        };
        let secs = median.as_secs_f64().max(1e-9);
        println!(
            "| {} | {}{failed} | {:.3} s | {} | {} | {}/s | {} |",
            r.key,
            r.tool,
            secs,
            ratio_to(&|o| o.tool == "rclone"),
            ratio_to(&|o| o.tool != "rclone"
                && !o.tool.starts_with("cloudsync")
                && o.tool != "baseline"),
            human((r.bytes as f64 / secs) as u64),
            r.peak_mib()
        );
    }
    println!();
    println!(
        "vs rclone / vs reference: median time divided by that tool's median in the same run \
         (below 1 = faster); reference = OpenSSH sftp, lftp (FTP, FTPS), curl (WebDAV, one file)."
    );
}

/// Runs a setup command, failing with its stderr.
fn setup(cmd: &mut Command) -> Result<String, String> {
    let out = cmd.output().map_err(|e| format!("{cmd:?}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{cmd:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}
