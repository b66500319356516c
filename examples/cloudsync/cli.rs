//! The command line: commands and flags, with rclone's names and meanings.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use cloudsync::ops::CutoffMode;
use cloudsync::{BwTimetable, parse_age, parse_duration, parse_size};

use crate::limits::{bwlimit, cutoff_mode};

/// rclone-style file sync between local folders, SFTP, FTP, WebDAV, Dropbox, Google Drive and
/// Cloud Storage.
///
/// A location is a local path, `name:path` naming a `[remotes.name]` section of the config file,
/// or a URL (`sftp://user@host:22/dir`, `ftp://`, `ftps://`, `webdav://`, `webdavs://`,
/// `gs://bucket/prefix`, `memory://name`).
#[derive(Debug, Parser)]
// A flag given twice takes the last value, as in rclone (list flags such as --include add up).
#[command(
    name = "cloudsync",
    version,
    max_term_width = 100,
    args_override_self = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    #[command(flatten)]
    pub global: GlobalArgs,
}

/// Flags every command accepts, before or after the command name.
#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// Config file [default: $XDG_CONFIG_HOME/cloudsync/cloudsync.toml, else
    /// ~/.config/cloudsync/cloudsync.toml; a missing default file is an empty config]
    #[arg(long, global = true, env = "CLOUDSYNC_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// More output: -v lists each change (log level info), -vv debug logs
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Print only errors
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,
    /// Show a live progress bar (only when stdout is a terminal)
    #[arg(short = 'P', long, global = true)]
    pub progress: bool,
    /// Show progress and the final statistics as one line
    #[arg(long, global = true)]
    pub stats_one_line: bool,
    /// Print the result (summary or report) as JSON on stdout
    #[arg(long, global = true)]
    pub json: bool,
    /// Bandwidth limit in bytes/s for all transfers together: `10M` (both ways), `UP:DOWN`
    /// (`10M:off`; a local folder is then not limited), `off`, or a timetable of local times
    /// such as "08:00,512k 19:00,10M 23:00,off" (weekly: "Mon-08:00,2M Sat-00:00,off")
    #[arg(long, global = true, value_parser = bwlimit, value_name = "BWTIMETABLE")]
    pub bwlimit: Option<BwTimetable>,
    /// Bandwidth limit of each file, same syntax as --bwlimit
    #[arg(long, global = true, value_parser = bwlimit, value_name = "BWTIMETABLE")]
    pub bwlimit_file: Option<BwTimetable>,
    #[command(flatten)]
    pub layers: LayerArgs,
}

/// How every network remote is called (rclone's flags; local folders are not affected).
#[derive(Debug, Args)]
pub struct LayerArgs {
    /// Make at most N calls per second to the servers, over the whole run (0 = no limit)
    #[arg(long, global = true, value_parser = tps, default_value = "0", value_name = "N")]
    pub tpslimit: f64,
    /// Calls allowed at once after a quiet spell under --tpslimit
    #[arg(long, global = true, default_value_t = 1, value_name = "N",
          value_parser = clap::value_parser!(u32).range(1..))]
    pub tpslimit_burst: u32,
    /// Fail a call that makes no progress for this long, as a temporary error (0 = never)
    #[arg(long, global = true, value_parser = duration, default_value = "5m",
          value_name = "DURATION")]
    pub timeout: Duration,
    /// Connect timeout: accepted for rclone compatibility; each backend's own connect timeout
    /// applies (and a connection that stalls is caught by --timeout)
    #[arg(long, global = true, value_parser = duration, default_value = "1m",
          value_name = "DURATION")]
    pub contimeout: Duration,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Copy new and changed files from SOURCE to DEST; never deletes
    Copy(Transfer),
    /// Make DEST identical to SOURCE: copy, then delete what is not on SOURCE (only if nothing
    /// failed)
    Sync(Transfer),
    /// Move files from SOURCE to DEST (each source file is deleted after its copy is verified)
    Move(Transfer),
    /// Compare SOURCE and DEST by size and hash (rclone check); exit code 1 on differences
    Check(CheckCmd),
    /// List paths, one per line, directories with a trailing / (rclone lsf)
    #[command(alias = "lsf")]
    Ls(LsCmd),
    /// List entries as JSON (rclone lsjson)
    Lsjson(LsjsonCmd),
    /// Delete the files the filters include; directories stay unless --rmdirs
    Delete(DeleteCmd),
    /// Remove a directory and everything in it (filters do not apply)
    Purge(PurgeCmd),
    /// Free space: empty the trash, remove old versions (where the backend has them)
    Cleanup(Location),
    /// Remove empty directories below a location (and the location itself unless --leave-root)
    Rmdirs(RmdirsCmd),
    /// Create a directory (and its parents)
    Mkdir(Location),
    /// Print a file's content to stdout
    Cat(CatCmd),
    /// Inspect the configuration
    #[command(subcommand)]
    Config(ConfigCmd),
    /// Move the files another system drops into DROP to TARGET: leave files still being
    /// written, keep an archive copy of each and a report of each run (safe from a scheduler)
    Ingest(IngestCmd),
    /// Show saved compare reports (`check --save-report`) and re-run & sync them
    #[command(subcommand)]
    Report(ReportCmd),
    /// Run one copy or sync with many worker processes (on one machine or many), using a
    /// PostgreSQL database as the work queue
    #[command(subcommand)]
    Dist(crate::dist::DistCmd),
    /// Serve the HTTP API (jobs, live events, the compare-report queue, schedules) and its
    /// web page; loopback only unless authentication is given
    #[cfg(feature = "serve")]
    Serve(crate::serve::ServeCmd),
}

/// `SOURCE DEST` and the flags of copy, sync and move.
#[derive(Debug, Args)]
pub struct Transfer {
    /// Where files come from
    pub source: String,
    /// Where files go
    pub dest: String,
    #[command(flatten)]
    pub filter: FilterArgs,
    #[command(flatten)]
    pub compare: CompareArgs,
    /// Decide and report, but change nothing
    #[arg(short = 'n', long)]
    pub dry_run: bool,
    /// Files transferred in parallel
    #[arg(long, default_value_t = 4, value_name = "N")]
    pub transfers: usize,
    /// Directories listed and files compared in parallel
    #[arg(long, default_value_t = 8, value_name = "N")]
    pub checkers: usize,
    /// Attempts of the whole operation (later attempts redo only what failed)
    #[arg(long, default_value_t = 3, value_name = "N")]
    pub retries: u32,
    /// Wait this long before each attempt after the first (at least as long as a server asked)
    #[arg(long, value_parser = duration, default_value = "0", value_name = "DURATION")]
    pub retries_sleep: Duration,
    /// Retries of one failing request or transfer
    #[arg(long, default_value_t = 10, value_name = "N")]
    pub low_level_retries: u32,
    /// Stop deleting after N deletions (with an error)
    #[arg(long, value_name = "N")]
    pub max_delete: Option<u64>,
    /// Transfer files of at least this size resumably, so a transfer cut off (a dropped link,
    /// a killed process) continues where it stopped, in a retry or the next run: through a
    /// partial file next to the target (local, SFTP, FTP, WebDAV with ranged PUT) or an upload
    /// session (Nextcloud, Dropbox, Drive, Cloud Storage); 0 or off = never
    #[arg(long, value_parser = size, value_name = "SIZE", default_value = "16M")]
    pub resume_above: Size,
    /// Where the upload sessions of unfinished uploads to cloud remotes (Drive, Cloud Storage,
    /// Dropbox, Nextcloud) are recorded, so the next run continues them; `off` keeps them in memory only
    /// (a retry in the run still continues). Default: $XDG_CACHE_HOME/cloudsync/uploads.json
    /// (else ~/.cache/cloudsync/uploads.json)
    #[arg(long, env = "CLOUDSYNC_UPLOAD_STATE", value_name = "FILE")]
    pub upload_state: Option<std::path::PathBuf>,
    /// Remove our temporary upload files older than this (left by an interrupted run) from the
    /// DEST folders the run lists; 0 = never
    #[arg(long, value_parser = duration, value_name = "DURATION", default_value = "24h")]
    pub leftover_age: Duration,
    /// Move replaced and deleted files here instead of deleting them: a location inside DEST
    /// (the engine never syncs into it)
    #[arg(long, value_name = "LOCATION")]
    pub backup_dir: Option<String>,
    /// Also delete files on DEST that the filters exclude (sync only)
    #[arg(long)]
    pub delete_excluded: bool,
    /// Create empty source directories on DEST
    #[arg(long)]
    pub create_empty_src_dirs: bool,
    /// After a move, remove source directories left empty
    #[arg(long)]
    pub delete_empty_src_dirs: bool,
    /// Exit with code 9 when nothing was transferred
    #[arg(long)]
    pub error_on_no_transfer: bool,
    /// Stop after transferring this much (e.g. 10G), deleting nothing; exit code 8
    #[arg(long, value_parser = size, value_name = "SIZE")]
    pub max_transfer: Option<Size>,
    /// How --max-transfer and --max-duration stop the run: hard (at once, abandoning running
    /// transfers), soft (start nothing new), cautious (start no transfer that would pass
    /// --max-transfer)
    #[arg(long, value_parser = cutoff_mode, default_value = "hard", value_name = "MODE")]
    pub cutoff_mode: CutoffMode,
    /// Start no transfer after this long (e.g. 1h30m; 0 = no limit), deleting nothing; exit
    /// code 10
    #[arg(long, value_parser = duration, value_name = "DURATION")]
    pub max_duration: Option<Duration>,
    /// Match names byte for byte: by default a name in NFD on one side and in NFC on the
    /// other is one file (as in rclone)
    #[arg(long)]
    pub no_unicode_normalization: bool,
}

/// How files present on both sides are compared.
#[derive(Debug, Args)]
pub struct CompareArgs {
    /// Compare by size and hash instead of size and modification time
    #[arg(short = 'c', long)]
    pub checksum: bool,
    /// Compare by size only
    #[arg(long)]
    pub size_only: bool,
    /// Transfer every file, whether it differs or not
    #[arg(long)]
    pub ignore_times: bool,
    /// Skip every file that already exists on DEST
    #[arg(long)]
    pub ignore_existing: bool,
    /// Skip files that are newer on DEST
    #[arg(short = 'u', long)]
    pub update: bool,
    /// Tolerance when comparing modification times (e.g. 2s, 1h)
    #[arg(long, value_parser = duration, value_name = "DURATION")]
    pub modify_window: Option<Duration>,
}

/// rclone's filter flags.
#[derive(Debug, Args, Default)]
pub struct FilterArgs {
    /// Include files matching GLOB (implies excluding everything else)
    #[arg(long, value_name = "GLOB")]
    pub include: Vec<String>,
    /// Exclude files matching GLOB (`dir/` excludes a directory)
    #[arg(long, value_name = "GLOB")]
    pub exclude: Vec<String>,
    /// Filter rule: `+ GLOB`, `- GLOB` or `!`
    #[arg(long, value_name = "RULE", allow_hyphen_values = true)]
    pub filter: Vec<String>,
    /// Read filter rules from FILE
    #[arg(long, value_name = "FILE")]
    pub filter_from: Vec<PathBuf>,
    /// Read include globs from FILE
    #[arg(long, value_name = "FILE")]
    pub include_from: Vec<PathBuf>,
    /// Read exclude globs from FILE
    #[arg(long, value_name = "FILE")]
    pub exclude_from: Vec<PathBuf>,
    /// Only these files (one path per line in FILE); cannot be combined with other filters
    #[arg(long, value_name = "FILE")]
    pub files_from: Vec<PathBuf>,
    /// Only files older than this (duration like 2h45m, 1d, 2w, or a date)
    #[arg(long, value_parser = age, value_name = "AGE")]
    pub min_age: Option<Age>,
    /// Only files younger than this (duration like 2h45m, 1d, 2w, or a date)
    #[arg(long, value_parser = age, value_name = "AGE")]
    pub max_age: Option<Age>,
    /// Only files at least this large (50k, 1.5M, 100B; no suffix = KiB)
    #[arg(long, value_parser = size, value_name = "SIZE")]
    pub min_size: Option<Size>,
    /// Only files at most this large
    #[arg(long, value_parser = size, value_name = "SIZE")]
    pub max_size: Option<Size>,
    /// Descend at most N levels (1 = the top directory only; -1 = no limit, rclone's default)
    #[arg(long, value_parser = depth, value_name = "N", allow_negative_numbers = true)]
    pub max_depth: Option<Depth>,
    /// Match globs case-insensitively
    #[arg(long)]
    pub ignore_case: bool,
}

/// `check SOURCE DEST`.
#[derive(Debug, Args)]
pub struct CheckCmd {
    /// The reference side
    pub source: String,
    /// The side checked against it
    pub dest: String,
    #[command(flatten)]
    pub filter: FilterArgs,
    /// Only report files missing or different on DEST (ignore extra files on DEST)
    #[arg(long)]
    pub one_way: bool,
    /// Compare sizes only
    #[arg(long)]
    pub size_only: bool,
    /// Compare the bytes of both sides (reads everything)
    #[arg(long)]
    pub download: bool,
    /// Files compared in parallel
    #[arg(long, default_value_t = 8, value_name = "N")]
    pub checkers: usize,
    /// Match names byte for byte: by default a name in NFD on one side and in NFC on the
    /// other is one file (as in rclone)
    #[arg(long)]
    pub no_unicode_normalization: bool,
    /// Write every path with its status (`= - + * !`) to FILE (`-` for stdout)
    #[arg(long, value_name = "FILE")]
    pub combined: Option<String>,
    /// Write paths missing on DEST to FILE
    #[arg(long, value_name = "FILE")]
    pub missing_on_dst: Option<String>,
    /// Write paths missing on SOURCE to FILE
    #[arg(long, value_name = "FILE")]
    pub missing_on_src: Option<String>,
    /// Write paths that differ to FILE
    #[arg(long, value_name = "FILE")]
    pub differ: Option<String>,
    /// Write paths that match to FILE
    #[arg(long = "match", value_name = "FILE")]
    pub matched: Option<String>,
    /// Write paths that could not be compared to FILE
    #[arg(long, value_name = "FILE")]
    pub error: Option<String>,
    /// Save the report as JSON to FILE (with SOURCE, DEST and the options) for `report show`
    /// and `report resync`; relative local paths are stored as absolute paths
    #[arg(long, value_name = "FILE")]
    pub save_report: Option<PathBuf>,
}

/// `ingest DROP TARGET`.
#[derive(Debug, Args)]
#[command(
    after_help = "--archive-dir and --report-dir take a plain relative path (`archives`, \
                        `done/2026`: a directory inside DROP, never ingested) or a location of \
                        its own: a URL, `name:path`, an absolute path, or `./dir` / `../dir` \
                        (relative to the current directory). A location inside DROP counts as \
                        a directory of DROP. archives/ and reports/ at the top of DROP are never \
                        ingested; other archive and report directories in DROP only on runs \
                        that name them.

Exit codes: 0 every eligible file was ingested (or none was eligible); 3 DROP not found; 5 \
             another ingest holds the lock on TARGET, or files failed in a way that may pass \
             next time; 6 files failed (they stay in DROP for the next run); 7 fatal \
             (authentication, quota)."
)]
pub struct IngestCmd {
    /// The drop folder files arrive in
    pub drop: String,
    /// Where ingested files go (same relative paths)
    pub target: String,
    #[command(flatten)]
    pub filter: FilterArgs,
    /// Take a file only when it was modified at least this long ago (0 = at once)
    #[arg(long, value_parser = duration, default_value = "60s", value_name = "DURATION")]
    pub settle: Duration,
    /// Look at sizes twice, this far apart, and leave files that changed (0 = look once)
    #[arg(long, value_parser = duration, default_value = "2s", value_name = "DURATION")]
    pub recheck_delay: Duration,
    /// Keep the archive copy of each file under PATH/<UTC date>/ [default: archives]
    #[arg(long, value_name = "PATH", conflicts_with = "no_archive")]
    pub archive_dir: Option<String>,
    /// Keep no archive copy
    #[arg(long)]
    pub no_archive: bool,
    /// Write each run's report (JSON and text) to PATH [default: reports]
    #[arg(long, value_name = "PATH", conflicts_with = "no_report")]
    pub report_dir: Option<String>,
    /// Write no report file (the report is still printed)
    #[arg(long)]
    pub no_report: bool,
    /// Also take names starting with `.` or `_` (left alone by default, at any depth)
    #[arg(long)]
    pub include_hidden: bool,
    /// Files ingested in parallel
    #[arg(long, default_value_t = 4, value_name = "N")]
    pub transfers: usize,
    /// A lock on TARGET older than this is taken over (left by a crashed run)
    #[arg(long, value_parser = duration, default_value = "1h", value_name = "DURATION")]
    pub stale_lock: Duration,
}

#[derive(Debug, Subcommand)]
pub enum ReportCmd {
    /// Print a saved report: where, when, counts by category, then the files that are not
    /// identical
    Show(ReportShowCmd),
    /// Re-run & sync: copy the files a saved report lists as missing on the destination (and
    /// with --include-differ the different ones), check them again and save the follow-up
    /// report next to FILE; exit 0 only when they now match
    Resync(ReportResyncCmd),
}

/// `report show FILE`.
#[derive(Debug, Args)]
pub struct ReportShowCmd {
    /// The report (JSON, from `check --save-report`)
    pub file: PathBuf,
    /// Also list the identical files
    #[arg(long)]
    pub all: bool,
    /// Print only the counts by category
    #[arg(long)]
    pub counts: bool,
}

/// `report resync FILE`.
#[derive(Debug, Args)]
pub struct ReportResyncCmd {
    /// The report (JSON, from `check --save-report` or an earlier resync)
    pub file: PathBuf,
    /// Also copy the files the report lists as different, replacing DEST's version
    #[arg(long)]
    pub include_differ: bool,
    /// Copy a file even when its size on SOURCE is no longer the one in the report
    #[arg(long)]
    pub transfer_changed: bool,
    /// Save the follow-up report here [default: FILE-STEM.resync-<UTC time>.json next to FILE]
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Files transferred in parallel
    #[arg(long, default_value_t = 4, value_name = "N")]
    pub transfers: usize,
    /// Files checked in parallel
    #[arg(long, default_value_t = 8, value_name = "N")]
    pub checkers: usize,
}

/// `ls LOCATION`.
#[derive(Debug, Args)]
pub struct LsCmd {
    /// What to list
    pub location: String,
    #[command(flatten)]
    pub shape: ListShape,
    #[command(flatten)]
    pub filter: FilterArgs,
}

/// Flags shared by `ls` and `lsjson`.
#[derive(Debug, Args)]
pub struct ListShape {
    /// List the whole tree
    #[arg(short = 'R', long)]
    pub recursive: bool,
    /// Only list files
    #[arg(long, conflicts_with = "dirs_only")]
    pub files_only: bool,
    /// Only list directories
    #[arg(long)]
    pub dirs_only: bool,
    /// Directories listed in parallel
    #[arg(long, default_value_t = 8, value_name = "N")]
    pub checkers: usize,
}

/// `lsjson LOCATION`.
#[derive(Debug, Args)]
pub struct LsjsonCmd {
    /// What to list
    pub location: String,
    #[command(flatten)]
    pub shape: ListShape,
    /// Include the hashes of each file (may read every file)
    #[arg(long)]
    pub hash: bool,
    #[command(flatten)]
    pub filter: FilterArgs,
}

/// `delete LOCATION`.
#[derive(Debug, Args)]
pub struct DeleteCmd {
    /// Where to delete
    pub location: String,
    #[command(flatten)]
    pub filter: FilterArgs,
    /// Also remove directories left empty
    #[arg(long)]
    pub rmdirs: bool,
    /// Report what would be deleted, delete nothing
    #[arg(short = 'n', long)]
    pub dry_run: bool,
    /// Deletions in parallel
    #[arg(long, default_value_t = 8, value_name = "N")]
    pub checkers: usize,
}

/// `purge LOCATION`.
#[derive(Debug, Args)]
pub struct PurgeCmd {
    /// The directory to remove
    pub location: String,
    /// Report what would be removed, remove nothing
    #[arg(short = 'n', long)]
    pub dry_run: bool,
}

/// `rmdirs LOCATION`.
#[derive(Debug, Args)]
pub struct RmdirsCmd {
    /// Where to look for empty directories
    pub location: String,
    /// Keep LOCATION itself even if it ends up empty
    #[arg(long)]
    pub leave_root: bool,
    /// Report what would be removed, remove nothing
    #[arg(short = 'n', long)]
    pub dry_run: bool,
}

/// A command taking one location.
#[derive(Debug, Args)]
pub struct Location {
    /// The location
    pub location: String,
}

/// `cat LOCATION`.
#[derive(Debug, Args)]
pub struct CatCmd {
    /// The file to print
    pub location: String,
    /// Start at this byte
    #[arg(long, default_value_t = 0, value_name = "BYTES")]
    pub offset: u64,
    /// Print at most this many bytes
    #[arg(long, value_name = "BYTES")]
    pub count: Option<u64>,
}

#[derive(Debug, Subcommand)]
pub enum ConfigCmd {
    /// Print the configured remotes with secrets masked (one remote, or all)
    Show {
        /// Only this remote
        name: Option<String>,
    },
    /// Print the path of the config file in use
    File,
    /// Convert an rclone config file into this program's TOML: remotes of type local, sftp,
    /// ftp, webdav, dropbox, drive and google cloud storage (options with no equivalent are
    /// listed); secrets become environment-variable references, never printed
    ImportRclone {
        /// The rclone config [default: as rclone finds it: $RCLONE_CONFIG, else the first of
        /// $XDG_CONFIG_HOME/rclone/rclone.conf, ~/.config/rclone/rclone.conf, ~/.rclone.conf]
        file: Option<PathBuf>,
        /// Write the TOML to FILE instead of stdout
        #[arg(long, value_name = "FILE")]
        output: Option<PathBuf>,
        /// Write the secrets (revealed passwords, OAuth tokens) to FILE as VARIABLE='value'
        /// lines, readable by the owner only; load them with `set -a; . FILE; set +a`.
        /// Without it, set the variables named on stderr yourself
        #[arg(long, value_name = "FILE")]
        secrets_file: Option<PathBuf>,
    },
}

/// A `--min-age`/`--max-age` as written (kept for saved reports), checked when parsed.
#[derive(Debug, Clone)]
pub struct Age(pub String);

/// A parsed `--min-size`/`--max-size` (`None` = `off`).
#[derive(Debug, Clone, Copy)]
pub struct Size(pub Option<u64>);

fn age(s: &str) -> Result<Age, String> {
    parse_age(s)
        .map(|_| Age(s.to_owned()))
        .map_err(|e| e.message().to_owned())
}

/// A parsed `--max-depth` (`None` = no limit, written `-1` as in rclone).
#[derive(Debug, Clone, Copy)]
pub struct Depth(pub Option<usize>);

fn depth(s: &str) -> Result<Depth, String> {
    match s.trim().parse::<i64>() {
        Ok(-1) => Ok(Depth(None)),
        Ok(n) if n >= 0 => usize::try_from(n)
            .map(|n| Depth(Some(n)))
            .map_err(|_| format!("{s:?} is too large")),
        _ => Err(format!(
            "{s:?} is not a depth (a whole number, or -1 for no limit)"
        )),
    }
}

fn size(s: &str) -> Result<Size, String> {
    parse_size(s).map(Size).map_err(|e| e.message().to_owned())
}

fn tps(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(n) if n.is_finite() && n >= 0.0 => Ok(n),
        _ => Err(format!(
            "{s:?} is not a number of calls per second (0 or more)"
        )),
    }
}

pub fn duration(s: &str) -> Result<Duration, String> {
    parse_duration(s)
        .map(Option::unwrap_or_default)
        .map_err(|e| e.message().to_owned())
}
