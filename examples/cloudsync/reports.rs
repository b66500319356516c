//! `report show` and `report resync`: saved compare reports (`check --save-report`), read with
//! `SavedReport::load_file` and acted on with `cloudsync::queue::resync`.

use std::path::{Path, PathBuf};

use cloudsync::deps::serde_json;
use cloudsync::ops::SyncOptions;
use cloudsync::queue::{self, ResyncOptions, SavedReport};
use cloudsync::{Error, ErrorKind};
use time::macros::format_description;

use crate::cli::{GlobalArgs, ReportResyncCmd, ReportShowCmd};
use crate::commands::print_stdout;
use crate::exit::{self, Failure};
use crate::location::Opener;
use crate::progress::Output;

pub async fn show(g: &GlobalArgs, c: ReportShowCmd) -> Result<u8, Failure> {
    let r = load(&c.file).await?;
    let text = match (c.counts, g.json) {
        (true, true) => json(&r.counts())?,
        (true, false) => {
            let n = r.counts();
            format!(
                "= {}\n* {}\n+ {}\n- {}\n! {}\n",
                n.matched, n.differ, n.missing_on_dst, n.missing_on_src, n.errors
            )
        }
        (false, true) => json(&r)?,
        (false, false) => r.to_text(c.all),
    };
    print_stdout(&text)?;
    Ok(exit::OK)
}

pub async fn resync(opener: &Opener, g: &GlobalArgs, c: ReportResyncCmd) -> Result<u8, Failure> {
    let r = load(&c.file).await?;
    let src = opener
        .open(&r.source)
        .await
        .map_err(|e| in_report(e, "source", &r.source))?;
    let dst = opener
        .open(&r.destination)
        .await
        .map_err(|e| in_report(e, "destination", &r.destination))?;
    let out = Output::new(g, false, true);
    let opts = ResyncOptions {
        include_differ: c.include_differ,
        transfer_changed: c.transfer_changed,
        sync: SyncOptions {
            transfers: c.transfers.max(1),
            checkers: c.checkers.max(1),
            events: Some(out.sink()),
            ..Default::default()
        },
    };
    let result = queue::resync(&r, &src, &dst, &opts).await;
    out.finish();
    let follow = result?;
    let path = match c.output {
        Some(p) => p,
        None => follow_up_path(&c.file, &follow),
    };
    follow.save_file(&path).await.map_err(|e| Failure {
        code: exit::USAGE,
        message: format!(
            "cannot save the follow-up report to {}: {}",
            path.display(),
            e.chain()
        ),
    })?;
    let mut errors = follow.check.errors.clone();
    if let Some(o) = &follow.resync {
        errors.extend(o.errors.iter().cloned());
    }
    for e in &errors {
        out.error(&e.to_string());
    }
    if g.json {
        print_stdout(&json(&follow)?)?;
        out.notice(&format!("follow-up report saved to {}", path.display()));
    } else {
        print_stdout(&follow.to_text(false))?;
        print_stdout(&format!("follow-up report: {}\n", path.display()))?;
    }
    Ok(if !errors.is_empty() {
        exit::for_records(&errors)
    } else if follow.check.is_identical() {
        exit::OK
    } else {
        exit::USAGE
    })
}

/// Loads a report; a missing file is exit code 4.
async fn load(file: &Path) -> Result<SavedReport, Failure> {
    SavedReport::load_file(file).await.map_err(|e| {
        let code = if e.kind() == ErrorKind::NotFound {
            exit::FILE_NOT_FOUND
        } else {
            exit::USAGE
        };
        Failure {
            code,
            message: format!("cannot read report {}: {}", file.display(), e.message()),
        }
    })
}

/// An error opening a location named in a report says so.
fn in_report(e: Error, side: &str, location: &str) -> Failure {
    let mut f = Failure::from(e);
    f.message = format!(
        "the report's {side} {:?}: {}",
        cloudsync::redact_location(location),
        f.message
    );
    if location.contains(&format!(":{}@", cloudsync::REDACTED)) {
        f.message.push_str(
            " (the report does not keep passwords: give it with `?password_env=VAR` or a named \
             remote, and edit the report's location)",
        );
    }
    f
}

fn json<T: serde::Serialize>(value: &T) -> Result<String, Failure> {
    let text = serde_json::to_string_pretty(value).map_err(std::io::Error::other)?;
    Ok(format!("{text}\n"))
}

/// `dir/name.json` -> `dir/name.resync-2026-11-23T14-05-00Z.json` (then `-1`, `-2`, ... when
/// that exists).
fn follow_up_path(file: &Path, follow: &SavedReport) -> PathBuf {
    let stem = file
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "report".to_owned());
    let stamp = follow
        .created
        .to_offset(time::UtcOffset::UTC)
        .format(format_description!(
            "[year]-[month]-[day]T[hour]-[minute]-[second]Z"
        ))
        .unwrap_or_else(|_| follow.id.clone());
    let dir = file.parent().unwrap_or(Path::new(""));
    let mut path = dir.join(format!("{stem}.resync-{stamp}.json"));
    let mut n = 1;
    while path.exists() {
        path = dir.join(format!("{stem}.resync-{stamp}-{n}.json"));
        n += 1;
    }
    path
}
