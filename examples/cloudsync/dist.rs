//! `cloudsync dist`: one copy or sync run by many worker processes, with PostgreSQL as the
//! work queue (the `cloudsync-dist` crate).

use std::time::Duration;

use clap::{Args, Subcommand};
use cloudsync::deps::serde_json;
use cloudsync_dist::{Db, DistError, DistMode, JobOptions, JobSpec, JobState, Remotes};

use crate::cli::{CompareArgs, FilterArgs, GlobalArgs, duration};
use crate::commands::{filter_spec, print_stdout};
use crate::exit::{self, Failure};
use crate::location::{Opener, storable_location};

/// `cloudsync dist ...`.
#[derive(Debug, Subcommand)]
pub enum DistCmd {
    /// Create a job (copy, sync or move SOURCE to DEST) for the workers; prints its id last
    Submit(Box<SubmitCmd>),
    /// Run shards of any job in the database until stopped (or, with --until-idle, until
    /// no job is left running)
    Worker(WorkerCmd),
    /// Show a job's progress
    Status(JobCmd),
    /// Print a job's merged summary (the same JSON as a one-process run with --json)
    Report(JobCmd),
    /// Cancel a job: its shards stop at their next heartbeat
    Cancel(JobCmd),
    /// Continue a job after a crash: requeue expired leases, queue given-up shards again,
    /// reopen a failed phase (deletions still wait until every shard is done without error),
    /// then work on the job until it ends (unless --detach)
    Resume(ResumeCmd),
}

/// `dist resume JOB`.
#[derive(Debug, Args)]
pub struct ResumeCmd {
    /// The job id (printed by `dist submit`)
    pub job: i64,
    #[command(flatten)]
    pub db: DbArg,
    /// Only put the job back on its way; leave the work to the running workers
    #[arg(long)]
    pub detach: bool,
    /// How long a shard claimed by this process stays its own without a heartbeat
    #[arg(long, value_parser = duration, default_value = "60s", value_name = "DURATION")]
    pub lease: Duration,
}

/// The database, on every `dist` command.
#[derive(Debug, Args)]
pub struct DbArg {
    /// PostgreSQL URL of the queue (postgres://user:password@host:port/db; sslmode as in
    /// libpq, sslrootcert=FILE to trust a private CA). Prefer the environment variable: a
    /// password in it stays off the command line
    #[arg(long, env = "CLOUDSYNC_DB", value_name = "URL", hide_env_values = true)]
    pub db: String,
}

/// Which operation a job runs.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum ModeArg {
    /// Copy new and changed files; never delete
    Copy,
    /// Make DEST identical to SOURCE; deletions wait until every shard is done without error
    Sync,
    /// Copy, removing each source file once its copy on DEST is verified
    Move,
}

/// `dist submit`.
#[derive(Debug, Args)]
pub struct SubmitCmd {
    /// Where files come from: a configured remote (`name:path`, opened by each worker from
    /// its own config), a URL without password, or an absolute local path
    pub source: String,
    /// Where files go
    pub dest: String,
    /// copy, sync or move
    #[arg(long, value_enum)]
    pub mode: ModeArg,
    /// A directory with more files to act on than N hands them to batch shards of N
    /// planned transfers each, so that many workers share a huge flat directory
    #[arg(long, default_value_t = cloudsync_dist::DEFAULT_BATCH_SIZE, value_name = "N")]
    pub batch_size: usize,
    #[command(flatten)]
    pub db: DbArg,
    #[command(flatten)]
    pub filter: FilterArgs,
    #[command(flatten)]
    pub compare: CompareArgs,
    /// Files transferred in parallel by each worker
    #[arg(long, default_value_t = 4, value_name = "N")]
    pub transfers: usize,
    /// Directories listed and files compared in parallel by each worker
    #[arg(long, default_value_t = 8, value_name = "N")]
    pub checkers: usize,
    /// Retries of one failing request or transfer
    #[arg(long, default_value_t = 10, value_name = "N")]
    pub low_level_retries: u32,
    /// Delete nothing (and fail the job) when the whole job would delete more than N files
    #[arg(long, value_name = "N")]
    pub max_delete: Option<u64>,
    /// Also delete files on DEST that the filters exclude (sync only)
    #[arg(long)]
    pub delete_excluded: bool,
    /// Create empty source directories on DEST
    #[arg(long)]
    pub create_empty_src_dirs: bool,
    /// Move only: remove the source's empty directories once every shard is done without
    /// error
    #[arg(long)]
    pub delete_empty_src_dirs: bool,
    /// Match names byte for byte (no Unicode normalisation)
    #[arg(long)]
    pub no_unicode_normalization: bool,
}

/// `dist worker`.
#[derive(Debug, Args)]
pub struct WorkerCmd {
    #[command(flatten)]
    pub db: DbArg,
    /// Return when no job is left running
    #[arg(long)]
    pub until_idle: bool,
    /// How long a claimed shard stays this worker's without a heartbeat
    #[arg(long, value_parser = duration, default_value = "60s", value_name = "DURATION")]
    pub lease: Duration,
    /// A shard that failed this many times is dead (an error of its job)
    #[arg(long, default_value_t = 3, value_name = "N")]
    pub max_attempts: i32,
    /// Wait between looks for work when there is none
    #[arg(long, value_parser = duration, default_value = "1s", value_name = "DURATION")]
    pub poll: Duration,
    /// Shards (directories) this worker runs at once, each under its own lease
    #[arg(long, default_value_t = 1, value_name = "N")]
    pub shards: usize,
}

/// `dist status|report|cancel JOB`.
#[derive(Debug, Args)]
pub struct JobCmd {
    /// The job id (printed by `dist submit`)
    pub job: i64,
    #[command(flatten)]
    pub db: DbArg,
}

impl From<DistError> for Failure {
    fn from(e: DistError) -> Self {
        let code = match &e {
            DistError::Auth { .. } | DistError::SchemaTooNew { .. } => exit::FATAL,
            e if e.is_connection() => exit::RETRY,
            _ => exit::USAGE,
        };
        Failure {
            code,
            message: e.to_string(),
        }
    }
}

fn db(arg: &DbArg) -> Result<Db, Failure> {
    Ok(Db::new(&arg.db)?)
}

/// Runs a `dist` command.
pub async fn run(opener: Opener, g: &GlobalArgs, c: DistCmd) -> Result<u8, Failure> {
    match c {
        DistCmd::Submit(s) => submit(g, *s).await,
        DistCmd::Worker(w) => {
            let mut opts = cloudsync_dist::WorkerOptions::default().until_idle(w.until_idle);
            opts.lease = w.lease.max(Duration::from_secs(1));
            opts.heartbeat = opts.lease / 4;
            opts.max_attempts = w.max_attempts.max(1);
            opts.poll = w.poll;
            opts.shards = w.shards.max(1);
            let remotes = Remotes {
                registry: opener.registry,
                config: opener.config,
            };
            let stats = cloudsync_dist::run_worker(&db(&w.db)?, &remotes, &opts).await?;
            tracing::info!(?stats, "worker finished");
            Ok(exit::OK)
        }
        DistCmd::Status(j) => {
            let st = cloudsync_dist::status(&db(&j.db)?, j.job).await?;
            if g.json {
                let text = serde_json::to_string_pretty(&st).map_err(std::io::Error::other)?;
                print_stdout(&format!("{text}\n"))?;
            } else {
                let s = &st.shards;
                print_stdout(&format!(
                    "job {}: {:?} {} -> {}\nstate: {}\nshards: {} pending, {} running, {} done, \
                     {} dead, {} cancelled\ndelete candidates: {}\n{}",
                    st.id,
                    st.mode,
                    st.source,
                    st.destination,
                    state_name(st.state),
                    s.pending,
                    s.running,
                    s.done,
                    s.dead,
                    s.cancelled,
                    st.delete_candidates,
                    st.error
                        .map(|e| format!("error: {e}\n"))
                        .unwrap_or_default()
                ))?;
            }
            Ok(exit::OK)
        }
        DistCmd::Report(j) => {
            let db = db(&j.db)?;
            let st = cloudsync_dist::status(&db, j.job).await?;
            let summary = cloudsync_dist::report(&db, j.job).await?;
            if g.json {
                let text = serde_json::to_string_pretty(&summary).map_err(std::io::Error::other)?;
                print_stdout(&format!("{text}\n"))?;
            } else {
                for e in &summary.errors {
                    eprintln!("ERROR: {e}");
                }
                print_stdout(&format!(
                    "job {} {}: {} transferred ({} bytes), {} checked, {} skipped, {} deleted, \
                     {} directories removed, {} errors\n",
                    j.job,
                    state_name(st.state),
                    summary.transferred,
                    summary.bytes,
                    summary.checked,
                    summary.skipped,
                    summary.deleted,
                    summary.dirs_deleted,
                    summary.errors.len()
                ))?;
            }
            Ok(match st.state {
                JobState::Done => exit::for_records(&summary.errors),
                JobState::Failed | JobState::Cancelled => {
                    exit::for_records(&summary.errors).max(exit::USAGE)
                }
                // Still running: not a failure, not a result yet.
                JobState::Running | JobState::Deleting => exit::RETRY,
            })
        }
        DistCmd::Resume(r) => {
            let db = db(&r.db)?;
            let done = cloudsync_dist::resume(&db, r.job).await?;
            eprintln!(
                "job {}: {} expired lease(s) requeued, {} given-up shard(s) queued again{}; {}",
                r.job,
                done.requeued,
                done.revived,
                done.reopened
                    .map(|p| format!(", {} phase reopened", state_name(p)))
                    .unwrap_or_default(),
                state_name(done.state)
            );
            let mut state = done.state;
            if !r.detach && !state.is_finished() {
                let mut opts = cloudsync_dist::WorkerOptions::default()
                    .until_idle(true)
                    .only_job(r.job);
                opts.lease = r.lease.max(Duration::from_secs(1));
                opts.heartbeat = opts.lease / 4;
                let remotes = Remotes {
                    registry: opener.registry,
                    config: opener.config,
                };
                cloudsync_dist::run_worker(&db, &remotes, &opts).await?;
                state = cloudsync_dist::status(&db, r.job).await?.state;
            }
            print_stdout(&format!("job {} {}\n", r.job, state_name(state)))?;
            Ok(match state {
                JobState::Done | JobState::Running | JobState::Deleting => exit::OK,
                JobState::Failed | JobState::Cancelled => exit::NO_RETRY,
            })
        }
        DistCmd::Cancel(j) => {
            let was_running = cloudsync_dist::cancel(&db(&j.db)?, j.job).await?;
            if !was_running {
                eprintln!("job {} had already finished", j.job);
            }
            Ok(exit::OK)
        }
    }
}

fn state_name(s: JobState) -> &'static str {
    match s {
        JobState::Running => "running",
        JobState::Deleting => "deleting",
        JobState::Done => "done",
        JobState::Failed => "failed",
        JobState::Cancelled => "cancelled",
    }
}

async fn submit(_g: &GlobalArgs, mut s: SubmitCmd) -> Result<u8, Failure> {
    // `--max-depth 0` means the top directory only, as for copy and sync.
    if matches!(s.filter.max_depth, Some(crate::cli::Depth(Some(0)))) {
        s.filter.max_depth = Some(crate::cli::Depth(Some(1)));
    }
    let mut options = JobOptions::default();
    options.filter = filter_spec(&s.filter);
    options.checksum = s.compare.checksum;
    options.size_only = s.compare.size_only;
    options.ignore_times = s.compare.ignore_times;
    options.ignore_existing = s.compare.ignore_existing;
    options.update = s.compare.update;
    options.modify_window_ms = s
        .compare
        .modify_window
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    options.transfers = s.transfers.max(1);
    options.checkers = s.checkers.max(1);
    options.low_level_retries = s.low_level_retries;
    options.max_delete = s.max_delete;
    options.delete_excluded = s.delete_excluded;
    options.create_empty_src_dirs = s.create_empty_src_dirs;
    options.delete_empty_src_dirs = s.delete_empty_src_dirs;
    options.no_unicode_normalization = s.no_unicode_normalization;
    options.batch_size = s.batch_size.max(1);
    let mode = match s.mode {
        ModeArg::Copy => DistMode::Copy,
        ModeArg::Sync => DistMode::Sync,
        ModeArg::Move => DistMode::Move,
    };
    // Workers run elsewhere: a relative local path is stored absolute.
    let mut spec = JobSpec::new(
        mode,
        storable_location(&s.source)?,
        storable_location(&s.dest)?,
    );
    spec.options = options;
    let job = cloudsync_dist::submit(&db(&s.db)?, &spec).await?;
    print_stdout(&format!("{job}\n"))?;
    Ok(exit::OK)
}
