//! What the user sees while an operation runs: the live progress bar (`--progress`), one line
//! per change with `-v`, notices, dry-run decisions, and the final statistics line.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use cloudsync::{Action, Event, EventSink, RemotePath, Summary};
use indicatif::{HumanBytes, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::cli::GlobalArgs;

/// Renders events on stderr.
pub struct Output {
    verbose: u8,
    quiet: bool,
    dry_run: bool,
    bar: Option<ProgressBar>,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    files_total: u64,
    files_done: u64,
    /// Bytes counted so far for each transfer in flight.
    current: BTreeMap<RemotePath, u64>,
}

impl Output {
    /// Output for one command; the bar (for transfers) is drawn only with `--progress` on a
    /// terminal.
    pub fn new(global: &GlobalArgs, dry_run: bool, transfers: bool) -> Arc<Self> {
        let show_bar = transfers
            && global.progress
            && !global.quiet
            && std::io::stdout().is_terminal()
            && std::io::stderr().is_terminal();
        let bar = show_bar.then(|| {
            let template = if global.stats_one_line {
                "{bytes}/{total_bytes} {binary_bytes_per_sec} ETA {eta} {msg}"
            } else {
                "{spinner} [{elapsed_precise}] {wide_bar} {bytes}/{total_bytes} \
                 {binary_bytes_per_sec} ETA {eta}\n  {msg}"
            };
            let style = ProgressStyle::with_template(template)
                .unwrap_or_else(|_| ProgressStyle::default_bar());
            let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr())
                .with_style(style);
            bar.enable_steady_tick(Duration::from_millis(200));
            bar
        });
        Arc::new(Output {
            verbose: global.verbose,
            quiet: global.quiet,
            dry_run,
            bar,
            state: Mutex::new(State::default()),
        })
    }

    /// The sink to hand to an operation.
    pub fn sink(self: &Arc<Self>) -> EventSink {
        let me = self.clone();
        Arc::new(move |e: &Event| me.event(e))
    }

    /// Prints one line on stderr without tearing the bar.
    pub fn line(&self, text: &str) {
        let text = crate::redact::scrub(text);
        match &self.bar {
            Some(bar) => bar.suspend(|| eprintln!("{text}")),
            None => eprintln!("{text}"),
        }
    }

    /// Prints a notice unless `-q`.
    pub fn notice(&self, text: &str) {
        if !self.quiet {
            self.line(&format!("NOTICE: {text}"));
        }
    }

    /// Prints an error line.
    pub fn error(&self, text: &str) {
        self.line(&format!("ERROR: {text}"));
    }

    /// Removes the bar.
    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }

    fn event(&self, e: &Event) {
        let mut st = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        match e {
            Event::Planned {
                path,
                action,
                reason,
                bytes,
            } => {
                if matches!(action, Action::Copy | Action::Update) {
                    st.files_total += 1;
                    if let Some(bar) = &self.bar {
                        bar.inc_length(*bytes);
                    }
                }
                if self.dry_run && !self.quiet {
                    let what = verb(*action);
                    self.line(&format!(
                        "NOTICE: {path}: skipped {what} as --dry-run is set ({})",
                        reason.describe()
                    ));
                }
            }
            Event::TransferStarted { path, .. } => {
                st.current.insert(path.clone(), 0);
            }
            Event::Resumed { path, offset } => {
                // The kept bytes count as done: the bar starts the file at its offset.
                let seen = st.current.entry(path.clone()).or_insert(0);
                let delta = offset.saturating_sub(*seen);
                *seen = (*seen).max(*offset);
                if let Some(bar) = &self.bar {
                    bar.inc(delta);
                }
                if self.verbose >= 1 {
                    self.line(&format!(
                        "INFO: {path}: resuming after {} already transferred",
                        HumanBytes(*offset)
                    ));
                }
            }
            Event::Progress { path, bytes, .. } => {
                let seen = st.current.entry(path.clone()).or_insert(0);
                let delta = bytes.saturating_sub(*seen);
                *seen = (*seen).max(*bytes);
                if let Some(bar) = &self.bar {
                    bar.inc(delta);
                }
            }
            Event::TransferDone {
                path,
                bytes,
                action,
            } => {
                let seen = st.current.remove(path).unwrap_or(0);
                st.files_done += 1;
                if let Some(bar) = &self.bar {
                    bar.inc(bytes.saturating_sub(seen));
                }
                if self.verbose >= 1 {
                    let what = match action {
                        Action::Copy => "Copied (new)",
                        Action::Update => "Copied (replaced existing)",
                        Action::SetModtime => "Updated modification time in destination",
                        _ => "Done",
                    };
                    self.line(&format!("INFO: {path}: {what}"));
                }
            }
            Event::Skipped { path, reason } if self.verbose >= 2 => {
                let why = reason.describe();
                self.line(&format!("DEBUG: {path}: unchanged, skipping ({why})"));
            }
            Event::Deleted { path, dir } if self.verbose >= 1 => {
                let what = if *dir { "Removed directory" } else { "Deleted" };
                self.line(&format!("INFO: {path}: {what}"));
            }
            Event::Failed {
                path,
                error,
                will_retry: true,
            } => {
                if let (Some(seen), Some(bar)) = (st.current.insert(path.clone(), 0), &self.bar) {
                    bar.set_position(bar.position().saturating_sub(seen));
                }
                if self.verbose >= 1 {
                    self.line(&format!("NOTICE: {path}: {error} (will retry)"));
                }
            }
            Event::Notice { message } if !self.quiet => {
                self.line(&format!("NOTICE: {message}"));
            }
            _ => {}
        }
        if let Some(bar) = &self.bar {
            let names: Vec<&str> = st.current.keys().take(3).map(RemotePath::as_str).collect();
            let more = st.current.len().saturating_sub(names.len());
            let mut msg = format!("{}/{} files", st.files_done, st.files_total);
            if !names.is_empty() {
                msg.push_str(" | ");
                msg.push_str(&names.join(", "));
                if more > 0 {
                    msg.push_str(&format!(" (+{more})"));
                }
            }
            bar.set_message(msg);
        }
    }

    /// The final statistics line (stderr), unless `-q`.
    pub fn summary(&self, s: &Summary) {
        if self.quiet {
            return;
        }
        let secs = s.elapsed.as_secs_f64();
        let rate = if secs > 0.0 {
            s.bytes as f64 / secs
        } else {
            0.0
        };
        let mut line = format!(
            "{}Transferred: {} files, {} ({}/s) | checked {} | deleted {}",
            if s.dry_run { "(dry run) " } else { "" },
            s.transferred,
            HumanBytes(s.bytes),
            HumanBytes(rate as u64),
            s.checked,
            s.deleted,
        );
        if s.bytes_resumed > 0 {
            line.push_str(&format!(" | resumed {}", HumanBytes(s.bytes_resumed)));
        }
        if s.backed_up > 0 {
            line.push_str(&format!(" | backed up {}", s.backed_up));
        }
        if s.dirs_deleted > 0 {
            line.push_str(&format!(" | removed {} dirs", s.dirs_deleted));
        }
        line.push_str(&format!(" | errors {} | {:.1}s", s.errors.len(), secs));
        self.line(&line);
    }
}

fn verb(action: Action) -> &'static str {
    match action {
        Action::Copy => "copy",
        Action::Update => "update",
        Action::SetModtime => "set modification time",
        Action::Delete => "delete",
        Action::Mkdir => "make directory",
        Action::Rmdir => "remove directory",
        _ => "change",
    }
}
