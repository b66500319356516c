//! `ingest DROP TARGET`: flags to [`IngestOptions`], one call to `cloudsync::ingest::ingest`,
//! the report on stdout.

use std::time::Duration;

use cloudsync::ErrorKind;
use cloudsync::ingest::{self, IngestOptions, Location};

use crate::cli::{GlobalArgs, IngestCmd};
use crate::commands::{build_filter, print_stdout};
use crate::exit::{self, Failure};
use crate::location::{DirLocation, Opener, dir_location};
use crate::progress::Output;

pub async fn ingest(opener: &Opener, g: &GlobalArgs, c: IngestCmd) -> Result<u8, Failure> {
    let filter = build_filter(&c.filter)?;
    let archive = match (&c.archive_dir, c.no_archive) {
        (_, true) => None,
        (None, false) => IngestOptions::default().archive,
        (Some(dir), false) => Some(location(opener, &c.drop, "--archive-dir", dir).await?),
    };
    let reports = match (&c.report_dir, c.no_report) {
        (_, true) => None,
        (None, false) => IngestOptions::default().reports,
        (Some(dir), false) => Some(location(opener, &c.drop, "--report-dir", dir).await?),
    };
    let out = Output::new(g, false, true);
    let opts = IngestOptions {
        filter,
        ignore_hidden: !c.include_hidden,
        settle: c.settle,
        recheck_delay: (c.recheck_delay > Duration::ZERO).then_some(c.recheck_delay),
        archive,
        reports,
        stale_lock: c.stale_lock,
        transfers: c.transfers.max(1),
        events: Some(out.sink()),
        ..Default::default()
    };
    let drop = opener.open(&c.drop).await?;
    let target = opener.open(&c.target).await?;
    let result = ingest::ingest(&drop, &target, &opts).await;
    out.finish();
    let report = match result {
        Ok(r) => r,
        Err(e) if e.kind() == ErrorKind::Conflict => {
            return Err(Failure {
                code: exit::RETRY,
                message: format!("ingest not started, try again later: {}", e.chain()),
            });
        }
        Err(e) => return Err(e.into()),
    };
    for e in &report.failed {
        out.error(&e.to_string());
    }
    if g.json {
        print_stdout(&format!("{}\n", report.to_json()?))?;
    } else {
        print_stdout(&report.to_text())?;
    }
    if !report.report_files.is_empty() {
        let files: Vec<String> = report.report_files.iter().map(|p| p.to_string()).collect();
        out.notice(&format!("report written to {}", files.join(" and ")));
    }
    Ok(exit::for_records(&report.failed))
}

/// `--archive-dir`/`--report-dir VALUE` as an ingest [`Location`]; see
/// [`dir_location`] for the rule.
async fn location(
    opener: &Opener,
    drop: &str,
    flag: &str,
    value: &str,
) -> Result<Location, Failure> {
    match dir_location(drop, value).map_err(|e| Failure::usage(format!("{flag}: {}", e.chain())))? {
        DirLocation::InDrop(dir) if dir.is_root() => Err(Failure::usage(format!(
            "{flag} {:?} is the drop folder itself: name a directory inside it or elsewhere",
            cloudsync::redact_location(value)
        ))),
        DirLocation::InDrop(dir) => Ok(Location::on_drop(dir)),
        DirLocation::Elsewhere(loc) => {
            let remote = opener.open(&loc).await?;
            Ok(Location::on(remote, cloudsync::RemotePath::root()))
        }
    }
}
