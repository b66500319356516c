//! `cloudsync`: the command-line face of the library, following rclone's commands, flags and
//! exit codes for the subset it implements.
//!
//! ```sh
//! cargo run --release --example cloudsync -- sync ./source-folder ./destination-folder
//! cargo run --release --example cloudsync -- check ./a nas:backup/a --combined -
//! cargo run --release --example cloudsync -- ls -R sftp://me@host:22/photos
//! cargo run --release --example cloudsync -- ingest sftp://erp@host/outbox ./inbox --settle 2m
//! cargo run --release --example cloudsync -- check ./cam nas:pics --save-report cam.json
//! cargo run --release --example cloudsync -- report resync cam.json
//! CLOUDSYNC_DB=postgres://... cargo run --release --example cloudsync -- dist submit --mode sync /data /backup
//! cargo run --release --features serve --example cloudsync -- serve --addr 127.0.0.1:5572
//! ```
//!
//! A thin layer: every decision is made by `cloudsync::ops`, `cloudsync::ingest` and
//! `cloudsync::queue`; this program parses flags, opens locations, renders events and maps
//! results to exit codes.

mod cli;
mod commands;
mod dist;
mod exit;
mod ingest;
mod limits;
mod listing;
mod location;
mod malloc;
mod mime;
mod progress;
mod redact;
mod reports;
#[cfg(feature = "serve")]
mod serve;

use std::process::ExitCode;

use clap::Parser;
use clap::error::ErrorKind as ClapKind;

use crate::cli::Cli;
use crate::exit::Failure;

fn main() -> ExitCode {
    redact::init(std::env::args_os().map(|a| a.to_string_lossy().into_owned()));
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            let code = match e.kind() {
                ClapKind::DisplayHelp
                | ClapKind::DisplayVersion
                | ClapKind::DisplayHelpOnMissingArgumentOrSubcommand => exit::OK,
                _ => exit::USAGE,
            };
            return ExitCode::from(code);
        }
    };
    init_logging(cli.global.verbose, cli.global.quiet);
    malloc::limit_arenas();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("ERROR: cannot start the async runtime: {e}");
            return ExitCode::from(exit::FATAL);
        }
    };
    let code = match runtime.block_on(commands::run(cli)) {
        Ok(code) => code,
        Err(Failure { code, message }) => {
            eprintln!("ERROR: {}", redact::scrub(&message));
            code
        }
    };
    ExitCode::from(code)
}

/// Logs go to stderr: warnings by default, `-v` info, `-vv` debug, `-q` errors only;
/// `RUST_LOG` overrides.
///
/// Below `-vv` the engine's own log lines are left out: everything they say also arrives as
/// an event or in the summary, which this program prints once.
fn init_logging(verbose: u8, quiet: bool) {
    use tracing_subscriber::EnvFilter;
    let level = match (quiet, verbose) {
        (true, _) => "error,cloudsync_core=off",
        (false, 0) => "warn,cloudsync_core=off",
        (false, 1) => "info,cloudsync_core=off",
        (false, 2) => "debug",
        _ => "trace",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(|| redact::ScrubbedStderr)
        .with_target(false)
        .try_init();
}
