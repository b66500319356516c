//! The programs compared. Adding a row = adding a [`Tool`] here.
//!
//! A tool receives the source directory and a fresh local destination directory below
//! `<work>/dst`; the harness checks that directory afterwards and moves it aside. A network row
//! (SFTP, FTP, WebDAV on a loopback server) serves `<work>/dst` from the server and maps the
//! local destination to the server's URL in its command, e.g. `cloudsync sync SRC
//! sftp://127.0.0.1:PORT/<dst relative to work/dst>` next to `rclone sync SRC
//! :sftp,host=127.0.0.1,port=PORT:<same>`, so checking and cleaning up stay the same.

use std::path::{Path, PathBuf};
use std::process::Command;

/// What one timed run does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// The destination does not exist: everything is copied.
    First,
    /// The destination is already identical: the tool only compares.
    NoOp,
}

impl Phase {
    pub fn label(self) -> &'static str {
        match self {
            Phase::First => "first run",
            Phase::NoOp => "no-op run",
        }
    }
}

/// Builds the command of one run from the source, the destination and the phase.
pub type CommandFn = dyn Fn(&str, &str, Phase) -> Option<Command>;

/// A program that makes `dst` a copy of `src`.
pub struct Tool {
    /// Name in the table.
    pub name: &'static str,
    /// The command for one run; `None` when the tool has no meaningful run for this phase
    /// (`cp -r` cannot skip unchanged files).
    pub command: Box<CommandFn>,
}

/// The tools of a local -> local comparison. `ours` is the release build of the example CLI;
/// `work` holds the config file of the `fsync = false` row.
pub fn local_tools(ours: PathBuf, transfers: usize, checkers: usize, work: &Path) -> Vec<Tool> {
    let (t, c) = (transfers.to_string(), checkers.to_string());
    let (t2, c2) = (t.clone(), c.clone());
    let (t3, c3) = (t.clone(), c.clone());
    let ours3 = ours.clone();
    // Our durable default against a row without flushes, which is what rclone and cp do.
    let config = work.join("nofsync.toml");
    let written = std::fs::write(
        &config,
        "[remotes.nofsync]\ntype = \"local\"\nroot = \"/\"\nfsync = false\n",
    );
    if let Err(e) = written {
        eprintln!("{}: {e}", config.display());
    }
    vec![
        Tool {
            name: "cloudsync",
            command: Box::new(move |src, dst, _| {
                let mut cmd = Command::new(&ours);
                cmd.args(["sync", src, dst, "-q", "--transfers", &t, "--checkers", &c]);
                Some(cmd)
            }),
        },
        Tool {
            name: "cloudsync fsync=false",
            command: Box::new(move |src, dst, _| {
                let mut cmd = Command::new(&ours3);
                cmd.arg("--config").arg(&config);
                let dst = format!("nofsync:{}", dst.trim_start_matches('/'));
                cmd.args([
                    "sync",
                    src,
                    &dst,
                    "-q",
                    "--transfers",
                    &t3,
                    "--checkers",
                    &c3,
                ]);
                Some(cmd)
            }),
        },
        Tool {
            name: "rclone",
            command: Box::new(move |src, dst, _| {
                let mut cmd = Command::new("rclone");
                cmd.args(["--config", "/dev/null", "sync", src, dst, "-q"]);
                cmd.args(["--transfers", &t2, "--checkers", &c2]);
                Some(cmd)
            }),
        },
        Tool {
            name: "rsync -a",
            command: Box::new(|src, dst, _| {
                let mut cmd = Command::new("rsync");
                cmd.args(["-a", "--delete", &format!("{src}/"), &format!("{dst}/")]);
                Some(cmd)
            }),
        },
        Tool {
            name: "cp -r",
            command: Box::new(|src, dst, phase| {
                (phase == Phase::First).then(|| {
                    let mut cmd = Command::new("cp");
                    cmd.args(["-r", src, dst]);
                    cmd
                })
            }),
        },
        Tool {
            name: "cp -a",
            command: Box::new(|src, dst, phase| {
                (phase == Phase::First).then(|| {
                    let mut cmd = Command::new("cp");
                    cmd.args(["-a", src, dst]);
                    cmd
                })
            }),
        },
    ]
}
