//! [`resync`]: "re-run & sync" of a saved compare report — transfer exactly what it lists as
//! missing on the destination (optionally also what differs), then check those files again.

use std::sync::Arc;
use std::time::Instant;

use futures::StreamExt;

use crate::error::{ErrorKind, Result};
use crate::filter::FilterSet;
use crate::ops::{CheckOptions, SyncOptions, check, copy_files};
use crate::remote::Remote;
use crate::report::{CheckItem, ErrorRecord, Summary};

use crate::report::{ResyncOutcome, ResyncSkip, SavedReport, secs};

/// Options of [`resync`].
#[derive(Debug, Clone, Default)]
pub struct ResyncOptions {
    /// Also transfer the files the report lists as different (`*`), replacing the
    /// destination's version. Default: only the missing ones (`+`).
    pub include_differ: bool,
    /// Transfer a file even when its size on the source is no longer the one in the report.
    /// Default: such a file is skipped and listed ("changed on the source since the report"),
    /// since the report no longer describes it; run a new compare for it.
    pub transfer_changed: bool,
    /// Transfer settings (`transfers`, `checkers`, retries, `dry_run`, `events`). Its
    /// `filter` and `compare` are not used: the report decides what is transferred.
    pub sync: SyncOptions,
}

/// Transfers what `report` lists as missing on the destination (and, with
/// [`ResyncOptions::include_differ`], what it lists as different) from `src` to `dst`, and
/// returns a follow-up report: a fresh check of exactly those files, with
/// [`SavedReport::follows`] set to `report`'s id and [`SavedReport::resync`] saying what was
/// done. The caller stores it ([`SavedReport::save`], [`ReportQueue`](super::ReportQueue)).
///
/// Each file is re-validated against the source first: a file gone from the source is skipped;
/// a file whose source size differs from the report's is skipped unless
/// [`ResyncOptions::transfer_changed`]. The transfer itself is [`copy_files`], which stats the
/// source again, skips files that meanwhile arrived identical at the destination, and
/// verifies every copy. Files the report lists as different are transferred even when size
/// and modtime agree (the compare found their content differs).
///
/// `src` and `dst` are opened by the caller, normally from [`SavedReport::source`] and
/// [`SavedReport::destination`].
pub async fn resync(
    report: &SavedReport,
    src: &Arc<dyn Remote>,
    dst: &Arc<dyn Remote>,
    opts: &ResyncOptions,
) -> Result<SavedReport> {
    let clock = Instant::now();
    let mut outcome = ResyncOutcome {
        dry_run: opts.sync.dry_run,
        ..Default::default()
    };
    let differ: &[CheckItem] = if opts.include_differ {
        &report.check.differ
    } else {
        &[]
    };
    let requested: Vec<&CheckItem> = report.check.missing_on_dst.iter().chain(differ).collect();
    outcome.requested = requested.len() as u64;

    let checkers = opts.sync.checkers.max(1);
    let verdicts: Vec<(bool, &CheckItem, Result<Option<String>>)> = futures::stream::iter(
        report
            .check
            .missing_on_dst
            .iter()
            .map(|i| (false, i))
            .chain(differ.iter().map(|i| (true, i))),
    )
    .map(|(is_differ, item)| async move {
        let why = revalidate(src, item, opts.transfer_changed).await;
        (is_differ, item, why)
    })
    .buffer_unordered(checkers)
    .collect()
    .await;
    let (mut missing, mut changed) = (Vec::new(), Vec::new());
    for (is_differ, item, why) in verdicts {
        match why {
            Err(e) => outcome.errors.push(ErrorRecord::new(item.path.clone(), &e)),
            Ok(Some(reason)) => outcome.skipped.push(ResyncSkip {
                path: item.path.clone(),
                reason,
            }),
            Ok(None) if is_differ => changed.push(item.path.clone()),
            Ok(None) => missing.push(item.path.clone()),
        }
    }
    outcome.skipped.sort_by(|a, b| a.path.cmp(&b.path));

    let base = SyncOptions {
        filter: FilterSet::everything(),
        compare: Default::default(),
        ..opts.sync.clone()
    };
    if !missing.is_empty() {
        let s = copy_files(src, dst, missing, &base).await?;
        add(&mut outcome, s);
    }
    if !changed.is_empty() {
        let mut o = base.clone();
        o.compare.ignore_times = true;
        let s = copy_files(src, dst, changed, &o).await?;
        add(&mut outcome, s);
    }

    // The follow-up: check exactly the requested files again.
    let paths: Vec<String> = requested.iter().map(|i| i.path.to_string()).collect();
    let follow_check = if paths.is_empty() {
        crate::report::CheckReport {
            source: src.describe(),
            destination: dst.describe(),
            checked_at: Some(time::OffsetDateTime::now_utc()),
            method: "none".to_owned(),
            ..Default::default()
        }
    } else {
        let filter = FilterSet::builder().files_from_list(paths).build()?;
        let copts = CheckOptions {
            filter,
            size_only: report.options.size_only,
            download: report.options.download,
            one_way: true,
            checkers,
            events: None,
            ..Default::default()
        };
        check(src, dst, &copts).await?
    };
    let mut follow = SavedReport::new(
        follow_check,
        report.source.clone(),
        report.destination.clone(),
        report.options.clone(),
    );
    follow.follows = Some(report.id.clone());
    follow.resync = Some(outcome);
    follow.elapsed = secs::millis(clock.elapsed());
    Ok(follow)
}

fn add(outcome: &mut ResyncOutcome, s: Summary) {
    outcome.transferred += s.transferred;
    outcome.bytes = outcome.bytes.saturating_add(s.bytes);
    outcome.already_there += s.skipped;
    outcome.errors.extend(s.errors);
}

/// Why `item` must not be transferred, or `None` when it still is what the report says.
async fn revalidate(
    src: &Arc<dyn Remote>,
    item: &CheckItem,
    transfer_changed: bool,
) -> Result<Option<String>> {
    match src.stat(&item.path).await {
        Ok(e) if !e.is_file() => Ok(Some("no longer a file on the source".to_owned())),
        Ok(e) => Ok(match item.src_size {
            Some(was) if was != e.size && !transfer_changed => Some(format!(
                "changed on the source since the report (size {was} -> {})",
                e.size
            )),
            _ => None,
        }),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(Some("gone from the source".to_owned())),
        Err(e) => Err(e),
    }
}
