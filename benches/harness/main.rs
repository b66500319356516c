//! Side-by-side benchmark: our CLI (release build) against rclone, rsync and cp on generated
//! trees, in the same run, alternating, several repetitions; prints a markdown table of medians,
//! ratios to rclone and peak memory.
//!
//! Run through `scripts/bench.sh` (builds the release CLI first), e.g.
//! `scripts/bench.sh --quick` or `scripts/bench.sh --scenarios small,tiny,big --reps 5`.
//! `cargo test` never runs it.
//!
//! Pitfalls handled (see DESIGN.md §8): tools run alternately in a rotating order so drift
//! hits all of them; memory is touched and freed before timing; old destination trees are
//! moved aside, never deleted between runs, and removed only at the end.

mod measure;
mod tools;
mod tree;
mod util;

use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Parser;

use crate::measure::Sample;
use crate::tools::{Phase, Tool};
use crate::tree::TreeSpec;
use crate::util::{human, slug};

#[derive(Debug, Parser)]
#[command(
    name = "harness",
    about = "cloudsync vs rclone / rsync / cp, side by side"
)]
struct Args {
    /// 10k small files only, 3 repetitions (the figures for a quick check)
    #[arg(long)]
    quick: bool,
    /// Repetitions per tool and phase
    #[arg(long)]
    reps: Option<usize>,
    /// Scenarios to run: small, tiny, big
    #[arg(long, value_delimiter = ',')]
    scenarios: Option<Vec<String>>,
    /// Tools to compare (by table name prefix: cloudsync, rclone, rsync, cp)
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "cloudsync,rclone,rsync,cp"
    )]
    tools: Vec<String>,
    /// Files in the `small` tree
    #[arg(long, default_value_t = 10_000)]
    small_files: usize,
    /// Average size of a `small` file in bytes
    #[arg(long, default_value_t = 16 * 1024)]
    small_size: u64,
    /// Files in the `tiny` tree
    #[arg(long, default_value_t = 200_000)]
    tiny_files: usize,
    /// Average size of a `tiny` file in bytes
    #[arg(long, default_value_t = 100)]
    tiny_size: u64,
    /// Size of the `big` file in MiB
    #[arg(long, default_value_t = 1024)]
    big_mib: u64,
    /// Working directory (source trees are kept there between runs)
    #[arg(long)]
    work: Option<PathBuf>,
    /// --transfers for cloudsync and rclone
    #[arg(long, default_value_t = 4)]
    transfers: usize,
    /// --checkers for cloudsync and rclone
    #[arg(long, default_value_t = 8)]
    checkers: usize,
    /// GiB of memory to touch and free before timing
    #[arg(long, default_value_t = 2)]
    warm_gib: u64,
    /// Leave the destination trees in <work>/trash instead of removing them at the end
    #[arg(long)]
    keep_trash: bool,
    /// Path of our CLI [default: target/release/examples/cloudsync next to this program]
    #[arg(long)]
    cloudsync: Option<PathBuf>,
    /// Passed by `cargo bench`; ignored
    #[arg(long, hide = true)]
    bench: bool,
}

/// Medians and extremes of one (scenario, phase, tool) cell.
struct Row {
    scenario: String,
    phase: Phase,
    tool: &'static str,
    samples: Vec<Sample>,
    files: usize,
    bytes: u64,
}

impl Row {
    fn median(&self) -> Duration {
        let mut w: Vec<Duration> = self.samples.iter().map(|s| s.wall).collect();
        w.sort();
        w[w.len() / 2]
    }
    fn min(&self) -> Duration {
        self.samples
            .iter()
            .map(|s| s.wall)
            .min()
            .unwrap_or_default()
    }
    fn max(&self) -> Duration {
        self.samples
            .iter()
            .map(|s| s.wall)
            .max()
            .unwrap_or_default()
    }
    /// Median user and system CPU seconds, when measured.
    fn cpu(&self) -> Option<(f64, f64)> {
        let mut user: Vec<f64> = Vec::new();
        let mut sys: Vec<f64> = Vec::new();
        for (u, s) in self.samples.iter().filter_map(|s| s.cpu) {
            user.push(u.as_secs_f64());
            sys.push(s.as_secs_f64());
        }
        if user.is_empty() {
            return None;
        }
        user.sort_by(f64::total_cmp);
        sys.sort_by(f64::total_cmp);
        Some((user[user.len() / 2], sys[sys.len() / 2]))
    }
    fn peak_mib(&self) -> Option<f64> {
        self.samples
            .iter()
            .filter_map(|s| s.peak_kib)
            .max()
            .map(|k| k as f64 / 1024.0)
    }
}

fn main() {
    let args = Args::parse();
    if let Err(e) = run(&args) {
        eprintln!("harness: {e}");
        std::process::exit(1);
    }
}

fn run(args: &Args) -> Result<(), String> {
    let reps = args.reps.unwrap_or(if args.quick { 3 } else { 5 }).max(1);
    let scenarios = scenarios(args)?;
    let work = util::work_dir(args.work.as_deref())?;
    let ours = util::our_cli(
        args.cloudsync.as_deref(),
        "`cargo build --release --example cloudsync` (scripts/bench.sh does)",
    )?;
    let tools: Vec<Tool> = tools::local_tools(ours, args.transfers, args.checkers, &work)
        .into_iter()
        .filter(|t| args.tools.iter().any(|n| t.name.starts_with(n.as_str())))
        .collect();
    for t in &tools {
        let program = t.name.split_whitespace().next().unwrap_or(t.name);
        if program != "cloudsync" && !util::available(program) {
            return Err(format!(
                "{program} is not installed: `apt-get install {program}` (scripts/bench.sh installs it)"
            ));
        }
    }
    measure::warm_memory(args.warm_gib);

    let mut rows: Vec<Row> = Vec::new();
    for spec in &scenarios {
        let src = spec
            .ensure(&work)
            .map_err(|e| format!("generating {}: {e}", spec.name))?;
        let src_s = src.to_string_lossy().into_owned();
        let label = format!(
            "{} ({} files, {})",
            spec.name,
            spec.files,
            human(spec.total_bytes())
        );
        for rep in 0..reps {
            // Rotate the order so no tool always runs first (or right after another one).
            for k in 0..tools.len() {
                let tool = &tools[(k + rep) % tools.len()];
                let dst = work
                    .join("dst")
                    .join(format!("{}-{}", slug(tool.name), tree::unique()));
                let dst_s = dst.to_string_lossy().into_owned();
                for phase in [Phase::First, Phase::NoOp] {
                    let Some(cmd) = (tool.command)(&src_s, &dst_s, phase) else {
                        continue;
                    };
                    let sample = measure::run(cmd, &work)
                        .map_err(|e| format!("{} {}: {e}", tool.name, phase.label()))?;
                    eprintln!(
                        "{:<8} rep {}/{reps} {:<10} {:<9} {:>8.3}s  {}",
                        spec.name,
                        rep + 1,
                        tool.name,
                        phase.label(),
                        sample.wall.as_secs_f64(),
                        sample
                            .peak_kib
                            .map(|k| format!("{:.0} MiB", k as f64 / 1024.0))
                            .unwrap_or_default()
                    );
                    if phase == Phase::First && rep == 0 {
                        spec.check(&dst)
                            .map_err(|e| format!("{}: {e}", tool.name))?;
                    }
                    match rows
                        .iter_mut()
                        .find(|r| r.scenario == label && r.phase == phase && r.tool == tool.name)
                    {
                        Some(r) => r.samples.push(sample),
                        None => rows.push(Row {
                            scenario: label.clone(),
                            phase,
                            tool: tool.name,
                            samples: vec![sample],
                            files: spec.files,
                            bytes: spec.total_bytes(),
                        }),
                    }
                }
                move_aside(&work, &dst)
                    .map_err(|e| format!("moving {} aside: {e}", dst.display()))?;
            }
        }
    }
    print_table(args, reps, &rows);
    if !args.keep_trash {
        let trash = work.join("trash");
        eprintln!("removing old destination trees in {}", trash.display());
        let _ = std::fs::remove_dir_all(&trash);
    }
    Ok(())
}

fn scenarios(args: &Args) -> Result<Vec<TreeSpec>, String> {
    let names = match (&args.scenarios, args.quick) {
        (Some(n), _) => n.clone(),
        (None, true) => vec!["small".into()],
        (None, false) => vec!["small".into(), "tiny".into(), "big".into()],
    };
    names
        .iter()
        .map(|n| match n.as_str() {
            "small" => Ok(TreeSpec {
                name: "small",
                files: args.small_files,
                size: args.small_size,
                per_dir: 100,
            }),
            "tiny" => Ok(TreeSpec {
                name: "tiny",
                files: args.tiny_files,
                size: args.tiny_size,
                per_dir: 1000,
            }),
            "big" => Ok(TreeSpec {
                name: "big",
                files: 1,
                size: args.big_mib << 20,
                per_dir: 1,
            }),
            other => Err(format!("unknown scenario {other:?} (small, tiny, big)")),
        })
        .collect()
}

fn move_aside(work: &Path, dst: &Path) -> std::io::Result<()> {
    if !dst.exists() {
        return Ok(());
    }
    let trash = work.join("trash");
    std::fs::create_dir_all(&trash)?;
    std::fs::rename(dst, trash.join(tree::unique()))
}

fn print_table(args: &Args, reps: usize, rows: &[Row]) {
    println!();
    println!(
        "local -> local, {reps} repetitions (median, min-max), --transfers {} --checkers {}, {} CPUs",
        args.transfers,
        args.checkers,
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!();
    println!(
        "| scenario | run | tool | median | min–max | vs rclone | vs cp -a | user | sys | throughput | peak RSS |"
    );
    println!("| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    for r in rows {
        let rclone = rows
            .iter()
            .find(|o| o.scenario == r.scenario && o.phase == r.phase && o.tool == "rclone");
        let ratio = rclone
            .map(|o| {
                format!(
                    "{:.2}×",
                    r.median().as_secs_f64() / o.median().as_secs_f64()
                )
            })
            .unwrap_or_else(|| "–".into());
        let vs_cp = rows
            .iter()
            .find(|o| o.scenario == r.scenario && o.phase == r.phase && o.tool == "cp -a")
            .map(|o| {
                format!(
                    "{:.2}×",
                    r.median().as_secs_f64() / o.median().as_secs_f64()
                )
            })
            .unwrap_or_else(|| "–".into());
        let (user, sys) = match r.cpu() {
            Some((u, s)) => (format!("{u:.3} s"), format!("{s:.3} s")),
            None => ("–".into(), "–".into()),
        };
        let secs = r.median().as_secs_f64().max(1e-9);
        let throughput = match r.phase {
            Phase::First if r.files < 100 => format!("{}/s", human((r.bytes as f64 / secs) as u64)),
            _ => format!("{:.0} files/s", r.files as f64 / secs),
        };
        println!(
            "| {} | {} | {} | {:.3} s | {:.3}–{:.3} | {} | {} | {} | {} | {} | {} |",
            r.scenario,
            r.phase.label(),
            r.tool,
            r.median().as_secs_f64(),
            r.min().as_secs_f64(),
            r.max().as_secs_f64(),
            ratio,
            vs_cp,
            user,
            sys,
            throughput,
            r.peak_mib()
                .map(|m| format!("{m:.0} MiB"))
                .unwrap_or_else(|| "–".into())
        );
    }
    println!();
    println!(
        "vs rclone, vs cp -a: median time divided by that tool's median in the same run (below 1 = faster); user, sys: median CPU seconds (/usr/bin/time)."
    );
}
