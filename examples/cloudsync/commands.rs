//! One handler per command: parse flags into library options, call `cloudsync::ops`, print.

use std::io::Write;
use std::sync::Arc;

use cloudsync::FilterSpec;
use cloudsync::ops::{self, CheckOptions, CompareOptions, DeleteOptions, SyncOptions};
use cloudsync::queue::{CompareSpec, SavedReport};
use cloudsync::{
    CheckReport, EntryKind, FilterSet, LayerOptions, Remote, RemotePath, RetryPolicy, Summary,
    deps::serde_json,
};
use futures::TryStreamExt;

use crate::cli::{
    CatCmd, CheckCmd, Cli, Command, ConfigCmd, DeleteCmd, Depth, FilterArgs, GlobalArgs, Location,
    LsCmd, LsjsonCmd, PurgeCmd, ReportCmd, RmdirsCmd, Transfer,
};
use crate::exit::{self, Failure};
use crate::listing;
use crate::location::{Opener, backup_dir_within, config_path, load_config, storable_location};
use crate::progress::Output;

/// Runs the parsed command line; returns the exit code.
pub async fn run(cli: Cli) -> Result<u8, Failure> {
    let g = &cli.global;
    // Reads no config of ours: a broken one must not stop the import meant to replace it.
    if let Command::Config(ConfigCmd::ImportRclone {
        file,
        output,
        secrets_file,
    }) = &cli.command
    {
        return import_rclone(file.as_deref(), output.as_deref(), secrets_file.as_deref());
    }
    let (path, explicit) = config_path(g.config.as_deref());
    let mut registry = cloudsync::registry();
    registry.set_bwlimit(crate::limits::bandwidth(g));
    registry.set_layers(layer_options(g, &cli.command))?;
    let opener = Opener {
        registry,
        config: load_config(&path, explicit)?,
        config_path: path.clone(),
    };
    match cli.command {
        Command::Copy(t) => transfer(&opener, g, Mode::Copy, t).await,
        Command::Sync(t) => transfer(&opener, g, Mode::Sync, t).await,
        Command::Move(t) => transfer(&opener, g, Mode::Move, t).await,
        Command::Check(c) => check(&opener, g, c).await,
        Command::Ls(c) => ls(&opener, c).await,
        Command::Lsjson(c) => lsjson(&opener, c).await,
        Command::Delete(c) => delete(&opener, g, c).await,
        Command::Purge(c) => purge(&opener, g, c).await,
        Command::Cleanup(Location { location }) => {
            let remote = opener.open(&location).await?;
            ops::cleanup(&remote).await?;
            Ok(exit::OK)
        }
        Command::Rmdirs(c) => rmdirs(&opener, g, c).await,
        Command::Mkdir(Location { location }) => {
            let remote = opener.open(&location).await?;
            remote.mkdir(&RemotePath::root()).await?;
            Ok(exit::OK)
        }
        Command::Cat(c) => cat(&opener, c).await,
        Command::Config(c) => config(&opener, &path, explicit, c),
        Command::Ingest(c) => crate::ingest::ingest(&opener, g, c).await,
        Command::Report(ReportCmd::Show(c)) => crate::reports::show(g, c).await,
        Command::Report(ReportCmd::Resync(c)) => crate::reports::resync(&opener, g, c).await,
        Command::Dist(c) => crate::dist::run(opener, g, c).await,
        #[cfg(feature = "serve")]
        Command::Serve(c) => crate::serve::run(opener, c).await,
    }
}

/// The layers around every network remote: the global flags, and `--low-level-retries` of
/// copy, sync and move.
fn layer_options(g: &GlobalArgs, command: &Command) -> LayerOptions {
    let l = &g.layers;
    let defaults = LayerOptions::default();
    let max_retries = match command {
        Command::Copy(t) | Command::Sync(t) | Command::Move(t) => t.low_level_retries,
        _ => defaults.retry.max_retries,
    };
    LayerOptions {
        timeout: Some(l.timeout).filter(|d| !d.is_zero()),
        retry: RetryPolicy {
            max_retries,
            ..defaults.retry
        },
        tps_limit: Some(l.tpslimit).filter(|n| *n > 0.0),
        tps_burst: l.tpslimit_burst,
        ..defaults
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Copy,
    Sync,
    Move,
}

/// The filter flags in their storable form (ages as written).
pub fn filter_spec(f: &FilterArgs) -> FilterSpec {
    FilterSpec {
        include: f.include.clone(),
        exclude: f.exclude.clone(),
        filter: f.filter.clone(),
        include_from: f.include_from.clone(),
        exclude_from: f.exclude_from.clone(),
        filter_from: f.filter_from.clone(),
        files_from: f.files_from.clone(),
        min_size: f.min_size.and_then(|s| s.0),
        max_size: f.max_size.and_then(|s| s.0),
        min_age: f.min_age.as_ref().map(|a| a.0.clone()),
        max_age: f.max_age.as_ref().map(|a| a.0.clone()),
        max_depth: f.max_depth.and_then(|d| d.0),
        ignore_case: f.ignore_case,
        ..Default::default()
    }
}

/// Compiles the filter flags.
pub fn build_filter(f: &FilterArgs) -> Result<FilterSet, Failure> {
    filter_spec(f)
        .build()
        .map_err(|e| Failure::usage(e.chain()))
}

/// What `--max-depth 0` means to each command, as in rclone: to copy, sync, move and check
/// (its directory walk) the top directory only, as 1; to the listing and deleting commands
/// (its recursive listing) no limit.
fn zero_depth_means(f: &mut FilterArgs, depth: Option<usize>) {
    if matches!(f.max_depth, Some(Depth(Some(0)))) {
        f.max_depth = Some(Depth(depth));
    }
}

/// `ls`/`lsjson` as rclone's `lsf`/`lsjson`: an explicit `--max-depth` other than -1 lists
/// that deep even without `-R` (0: the whole tree).
fn listing_depth(f: &mut FilterArgs, shape: &mut crate::cli::ListShape) {
    if let Some(Depth(Some(_))) = &f.max_depth {
        shape.recursive = true;
    }
    zero_depth_means(f, None);
}

async fn transfer(
    opener: &Opener,
    g: &GlobalArgs,
    mode: Mode,
    mut t: Transfer,
) -> Result<u8, Failure> {
    zero_depth_means(&mut t.filter, Some(1));
    let filter = build_filter(&t.filter)?;
    let backup_dir = match &t.backup_dir {
        Some(b) => Some(backup_dir_within(&t.dest, b)?),
        None => None,
    };
    let out = Output::new(g, t.dry_run, true);
    let mut opts = SyncOptions {
        filter,
        compare: CompareOptions {
            checksum: t.compare.checksum,
            size_only: t.compare.size_only,
            ignore_times: t.compare.ignore_times,
            ignore_existing: t.compare.ignore_existing,
            update: t.compare.update,
            modify_window: t.compare.modify_window.unwrap_or_default(),
        },
        dry_run: t.dry_run,
        transfers: t.transfers.max(1),
        checkers: t.checkers.max(1),
        retries: t.retries.max(1),
        retries_sleep: t.retries_sleep,
        low_level_retries: t.low_level_retries,
        max_delete: t.max_delete,
        leftover_age: Some(t.leftover_age).filter(|d| !d.is_zero()),
        resume_above: t.resume_above.0.filter(|n| *n > 0),
        sessions: upload_state(t.upload_state.as_deref()),
        backup_dir,
        delete_excluded: t.delete_excluded,
        create_empty_src_dirs: t.create_empty_src_dirs,
        delete_empty_src_dirs: t.delete_empty_src_dirs,
        events: Some(out.sink()),
        max_transfer: t.max_transfer.and_then(|s| s.0),
        cutoff_mode: t.cutoff_mode,
        max_duration: t.max_duration.filter(|d| !d.is_zero()),
        no_unicode_normalization: t.no_unicode_normalization,
        ..Default::default()
    };
    let mut src = opener.open(&t.source).await?;
    let dst = opener.open(&t.dest).await?;
    // rclone accepts a single file as the source: it is copied into DEST.
    if let Some((parent, name)) = single_file(opener, &src, &t.source).await {
        if !opts.filter.is_trivial() {
            return Err(Failure::usage(
                "filters cannot be used when the source is a single file",
            ));
        }
        opts.filter = FilterSet::builder()
            .files_from_list(vec![name.to_string()])
            .build()?;
        src = parent;
    }
    let result = run_mode(mode, &src, &dst, &opts).await;
    out.finish();
    let summary = result?;
    finish_summary(g, &out, &summary)?;
    let code = exit::for_records(&summary.errors);
    if code == exit::OK && t.error_on_no_transfer && summary.transferred == 0 {
        return Ok(exit::NO_FILES_TRANSFERRED);
    }
    Ok(code)
}

async fn run_mode(
    mode: Mode,
    src: &Arc<dyn Remote>,
    dst: &Arc<dyn Remote>,
    opts: &SyncOptions,
) -> cloudsync::Result<Summary> {
    match mode {
        Mode::Copy => ops::copy(src, dst, opts).await,
        Mode::Sync => ops::sync(src, dst, opts).await,
        Mode::Move => ops::move_files(src, dst, opts).await,
    }
}

/// When `location` names a file: its parent remote and name.
async fn single_file(
    opener: &Opener,
    remote: &Arc<dyn Remote>,
    location: &str,
) -> Option<(Arc<dyn Remote>, RemotePath)> {
    let root = remote.stat(&RemotePath::root()).await.ok()?;
    if root.kind != EntryKind::File {
        return None;
    }
    opener.open_parent(location).await.ok()?
}

/// Prints the per-file errors, the JSON summary (`--json`) and the statistics line.
fn finish_summary(g: &GlobalArgs, out: &Output, summary: &Summary) -> Result<(), Failure> {
    for e in &summary.errors {
        out.error(&e.to_string());
    }
    if g.json {
        let text = serde_json::to_string_pretty(summary).map_err(std::io::Error::other)?;
        print_stdout(&format!("{text}\n"))?;
    }
    out.summary(summary);
    Ok(())
}

async fn check(opener: &Opener, g: &GlobalArgs, mut c: CheckCmd) -> Result<u8, Failure> {
    zero_depth_means(&mut c.filter, Some(1));
    let filter = build_filter(&c.filter)?;
    let out = Output::new(g, false, false);
    let opts = CheckOptions {
        filter,
        size_only: c.size_only,
        download: c.download,
        one_way: c.one_way,
        checkers: c.checkers.max(1),
        events: Some(out.sink()),
        no_unicode_normalization: c.no_unicode_normalization,
    };
    // Checked before the compare, so a bad location fails at once rather than after it.
    let storable = match &c.save_report {
        Some(_) => Some((storable_location(&c.source)?, storable_location(&c.dest)?)),
        None => None,
    };
    let src = opener.open(&c.source).await?;
    let dst = opener.open(&c.dest).await?;
    let clock = std::time::Instant::now();
    let result = ops::check(&src, &dst, &opts).await;
    let elapsed = clock.elapsed();
    out.finish();
    let report = result?;
    write_check_outputs(&c, &report)?;
    for e in &report.errors {
        out.error(&e.to_string());
    }
    if g.json {
        let text = serde_json::to_string_pretty(&report).map_err(std::io::Error::other)?;
        print_stdout(&format!("{text}\n"))?;
    }
    let differences =
        report.differ.len() + report.missing_on_dst.len() + report.missing_on_src.len();
    out.notice(&format!(
        "{} matching files, {differences} differences found ({} missing on destination, {} \
         missing on source, {} differ), {} errors (compared by {})",
        report.matched.len(),
        report.missing_on_dst.len(),
        report.missing_on_src.len(),
        report.differ.len(),
        report.errors.len(),
        report.method,
    ));
    let code = if report.is_identical() {
        exit::OK
    } else {
        exit::USAGE
    };
    if let (Some(file), Some((source, dest))) = (&c.save_report, storable) {
        let spec = CompareSpec {
            filters: filter_spec(&c.filter),
            size_only: c.size_only,
            download: c.download,
            one_way: c.one_way,
        };
        let mut saved = SavedReport::new(report, source, dest, spec);
        saved.elapsed = elapsed;
        saved.save_file(file).await.map_err(|e| Failure {
            code: exit::USAGE,
            message: format!(
                "cannot save the report to {}: {}",
                file.display(),
                e.chain()
            ),
        })?;
        out.notice(&format!("report saved to {}", file.display()));
    }
    Ok(code)
}

/// Writes the `--combined`, `--missing-on-*`, `--differ`, `--match` and `--error` files.
fn write_check_outputs(c: &CheckCmd, r: &CheckReport) -> Result<(), Failure> {
    let paths = |items: &[cloudsync::CheckItem]| -> Vec<String> {
        items.iter().map(|i| i.path.to_string()).collect()
    };
    let targets: [(&Option<String>, Vec<String>); 6] = [
        (&c.combined, r.combined()),
        (&c.missing_on_dst, paths(&r.missing_on_dst)),
        (&c.missing_on_src, paths(&r.missing_on_src)),
        (&c.differ, paths(&r.differ)),
        (&c.matched, paths(&r.matched)),
        (
            &c.error,
            r.errors.iter().map(|e| e.path.to_string()).collect(),
        ),
    ];
    for (target, lines) in targets {
        let Some(target) = target else { continue };
        let mut text = lines.join("\n");
        if !text.is_empty() {
            text.push('\n');
        }
        if target == "-" {
            print_stdout(&text)?;
        } else {
            std::fs::write(target, text)
                .map_err(|e| Failure::usage(format!("cannot write check output {target}: {e}")))?;
        }
    }
    Ok(())
}

async fn ls(opener: &Opener, mut c: LsCmd) -> Result<u8, Failure> {
    listing_depth(&mut c.filter, &mut c.shape);
    let filter = build_filter(&c.filter)?;
    let remote = opener.open(&c.location).await?;
    let l = listing::collect(&remote, &c.shape, filter).await?;
    let mut buf = Vec::new();
    listing::write_lsf(&mut buf, &l.entries)?;
    write_stdout(&buf)?;
    for e in &l.errors {
        eprintln!("ERROR: {}", crate::redact::scrub(&e.to_string()));
    }
    Ok(exit::for_records(&l.errors))
}

async fn lsjson(opener: &Opener, mut c: LsjsonCmd) -> Result<u8, Failure> {
    listing_depth(&mut c.filter, &mut c.shape);
    let filter = build_filter(&c.filter)?;
    let remote = opener.open(&c.location).await?;
    let mut l = listing::collect(&remote, &c.shape, filter).await?;
    if c.hash {
        listing::add_hashes(&remote, &mut l.entries, c.shape.checkers, &mut l.errors).await;
    }
    let mut buf = Vec::new();
    listing::write_lsjson(&mut buf, &l.entries, c.hash)?;
    write_stdout(&buf)?;
    for e in &l.errors {
        eprintln!("ERROR: {}", crate::redact::scrub(&e.to_string()));
    }
    Ok(exit::for_records(&l.errors))
}

async fn delete(opener: &Opener, g: &GlobalArgs, mut c: DeleteCmd) -> Result<u8, Failure> {
    zero_depth_means(&mut c.filter, None);
    let filter = build_filter(&c.filter)?;
    let out = Output::new(g, c.dry_run, false);
    let opts = DeleteOptions {
        filter,
        rmdirs: c.rmdirs,
        dry_run: c.dry_run,
        checkers: c.checkers.max(1),
        events: Some(out.sink()),
    };
    let remote = opener.open(&c.location).await?;
    let result = ops::delete(&remote, &opts).await;
    out.finish();
    let summary = result?;
    finish_summary(g, &out, &summary)?;
    Ok(exit::for_records(&summary.errors))
}

async fn purge(opener: &Opener, g: &GlobalArgs, c: PurgeCmd) -> Result<u8, Failure> {
    let out = Output::new(g, c.dry_run, false);
    let summary = match opener.open_parent(&c.location).await? {
        Some((parent, name)) => ops::purge(&parent, &name, c.dry_run).await?,
        None => {
            let remote = opener.open(&c.location).await?;
            ops::purge(&remote, &RemotePath::root(), c.dry_run).await?
        }
    };
    finish_summary(g, &out, &summary)?;
    Ok(exit::for_records(&summary.errors))
}

async fn rmdirs(opener: &Opener, g: &GlobalArgs, c: RmdirsCmd) -> Result<u8, Failure> {
    let out = Output::new(g, c.dry_run, false);
    let summary = match opener.open_parent(&c.location).await? {
        Some((parent, name)) => ops::rmdirs(&parent, &name, c.leave_root, c.dry_run).await?,
        None => {
            let remote = opener.open(&c.location).await?;
            ops::rmdirs(&remote, &RemotePath::root(), true, c.dry_run).await?
        }
    };
    finish_summary(g, &out, &summary)?;
    Ok(exit::for_records(&summary.errors))
}

async fn cat(opener: &Opener, c: CatCmd) -> Result<u8, Failure> {
    let Some((remote, name)) = opener.open_parent(&c.location).await? else {
        return Err(Failure::usage(format!(
            "cat: {:?} is the root of a remote, not a file",
            cloudsync::redact_location(&c.location)
        )));
    };
    let not_found = |e: cloudsync::Error| {
        let mut f = Failure::from(e);
        if f.code == exit::DIR_NOT_FOUND {
            f.code = exit::FILE_NOT_FOUND;
        }
        f
    };
    let range = if c.offset > 0 || c.count.is_some() {
        let end = match c.count {
            Some(n) => c.offset.saturating_add(n),
            None => remote.stat(&name).await.map_err(not_found)?.size,
        };
        Some(c.offset..end.max(c.offset))
    } else {
        None
    };
    if range.as_ref().is_some_and(|r| r.is_empty()) {
        return Ok(exit::OK);
    }
    let mut body = remote.read(&name, range).await.map_err(not_found)?;
    let stdout = std::io::stdout();
    let mut lock = stdout.lock();
    while let Some(chunk) = body.try_next().await.map_err(not_found)? {
        if let Err(e) = lock.write_all(&chunk) {
            return broken_pipe_ok(e);
        }
    }
    match lock.flush() {
        Ok(()) => Ok(exit::OK),
        Err(e) => broken_pipe_ok(e),
    }
}

fn config(
    opener: &Opener,
    path: &std::path::Path,
    explicit: bool,
    c: ConfigCmd,
) -> Result<u8, Failure> {
    match c {
        ConfigCmd::File => {
            let state = if path.exists() {
                "exists"
            } else if explicit {
                "missing"
            } else {
                "missing: no remotes configured"
            };
            print_stdout(&format!("{} ({state})\n", path.display()))?;
            Ok(exit::OK)
        }
        ConfigCmd::Show { name } => {
            let names: Vec<String> = match name {
                Some(n) => {
                    opener.config.remote(&n)?;
                    vec![n]
                }
                None => opener.config.names().map(str::to_owned).collect(),
            };
            let mut remotes = toml::Table::new();
            for n in names {
                let section = opener.config.remote(&n)?;
                let masked = opener.registry.masked(section);
                let value = toml::Value::try_from(&masked)
                    .map_err(|e| Failure::usage(format!("remote {n:?}: {e}")))?;
                remotes.insert(n, value);
            }
            let mut doc = toml::Table::new();
            doc.insert("remotes".into(), toml::Value::Table(remotes));
            let text = toml::to_string(&doc).map_err(std::io::Error::other)?;
            print_stdout(&text)?;
            Ok(exit::OK)
        }
        ConfigCmd::ImportRclone { .. } => unreachable!("handled before the config is read"),
    }
}

/// `config import-rclone [FILE] [--output FILE] [--secrets-file FILE]`: the TOML on stdout
/// (or in `--output`), what was left out and which variables to set on stderr. No secret is
/// printed: they go to `--secrets-file` (mode 0600) or stay with the user.
fn import_rclone(
    file: Option<&std::path::Path>,
    output: Option<&std::path::Path>,
    secrets_file: Option<&std::path::Path>,
) -> Result<u8, Failure> {
    use cloudsync::rclone::{RcloneImport, default_config_path};
    let source = match file {
        Some(f) => f.to_owned(),
        None => default_config_path()?,
    };
    if let (Some(o), Some(s)) = (output, secrets_file) {
        if o == s {
            return Err(Failure::usage(
                "--output and --secrets-file must be different files",
            ));
        }
    }
    let import = RcloneImport::load(&source)?;
    let mut text = format!(
        "# cloudsync remotes imported from the rclone config {}.\n\
         # Secrets are not in this file: each `*_env` key names the environment variable that\n\
         # holds one{}.\n\n",
        source.display(),
        match secrets_file {
            Some(s) => format!(
                " (written to {}: load it with `set -a; . {}; set +a`)",
                s.display(),
                s.display()
            ),
            None => String::new(),
        }
    );
    text.push_str(&import.to_toml());
    if let Some(s) = secrets_file {
        import.write_secrets_file(s)?;
    }
    match output {
        Some(o) => std::fs::write(o, &text)
            .map_err(|e| Failure::usage(format!("cannot write {}: {e}", o.display())))?,
        None => print_stdout(&text)?,
    }
    for m in import.messages() {
        eprintln!("NOTICE: {m}");
    }
    let count = import.secrets().count();
    match secrets_file {
        Some(s) if count > 0 => eprintln!(
            "NOTICE: {count} secret(s) written to {} (owner-only); load them with \
             `set -a; . {}; set +a` before running cloudsync",
            s.display(),
            s.display()
        ),
        _ => {
            for secret in import.secrets() {
                let remote = import
                    .remotes
                    .iter()
                    .find(|r| r.secrets.contains(secret))
                    .map_or("", |r| r.rclone_name.as_str());
                eprintln!(
                    "NOTICE: set {} to the {} of rclone remote [{remote}] (or run again with \
                     --secrets-file FILE)",
                    secret.variable,
                    match secret.rclone_key.as_str() {
                        "token" => "OAuth refresh token (in `token`)",
                        "pass" => "password",
                        "key_file_pass" => "key file passphrase",
                        other => other,
                    }
                );
            }
        }
    }
    eprintln!(
        "NOTICE: {} remote(s) imported, {} skipped",
        import.remotes.len(),
        import.skipped.len()
    );
    Ok(exit::OK)
}

pub fn print_stdout(text: &str) -> Result<(), Failure> {
    write_stdout(text.as_bytes())
}

fn write_stdout(bytes: &[u8]) -> Result<(), Failure> {
    let mut lock = std::io::stdout().lock();
    lock.write_all(bytes)
        .and_then(|()| lock.flush())
        .or_else(|e| broken_pipe_ok(e).map(|_| ()))
}

/// A closed pipe (`cloudsync ls | head`) ends output quietly.
fn broken_pipe_ok(e: std::io::Error) -> Result<u8, Failure> {
    if e.kind() == std::io::ErrorKind::BrokenPipe {
        Ok(exit::OK)
    } else {
        Err(e.into())
    }
}

/// The record of unfinished upload sessions (`--upload-state`): the file given, in memory only
/// for `off`, else the file under the user's cache directory.
fn upload_state(given: Option<&std::path::Path>) -> cloudsync::SessionStore {
    match given {
        Some(p) if p.as_os_str() == "off" || p.as_os_str() == "none" => {
            cloudsync::SessionStore::memory()
        }
        Some(p) => cloudsync::SessionStore::open(p),
        None => cloudsync::SessionStore::default_file()
            .map(cloudsync::SessionStore::open)
            .unwrap_or_default(),
    }
}
