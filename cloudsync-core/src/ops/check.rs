//! `check`: compare two trees and report, per file, rclone's categories `= - + * !`.

use std::sync::Arc;

use bytes::Bytes;
use futures::StreamExt;
use time::OffsetDateTime;

use crate::entry::Entry;
use crate::error::{Error, ErrorKind, Result};
use crate::plan::equal::Comparator;
use crate::plan::march::{Item, MarchConfig, Seed, march};
use crate::remote::{ByteStream, Remote};
use crate::report::{CheckItem, CheckReport, ErrorRecord, Event};
use crate::{path::RemotePath, plan::Reason};

use super::{CheckOptions, CompareOptions};

/// How one path came out.
enum Verdict {
    Match(CheckItem),
    Differ(CheckItem),
    MissingOnDst(CheckItem),
    MissingOnSrc(CheckItem),
    Error(ErrorRecord),
}

fn item(path: RemotePath, s: Option<&Entry>, d: Option<&Entry>) -> CheckItem {
    CheckItem {
        path,
        src_size: s.map(|e| e.size),
        dst_size: d.map(|e| e.size),
        src_modtime: s.and_then(|e| e.modtime),
        dst_modtime: d.and_then(|e| e.modtime),
    }
}

/// Compares `src` and `dst` file by file: by size and a hash both sides have, by size only
/// ([`CheckOptions::size_only`], or when no hash is shared), or byte for byte
/// ([`CheckOptions::download`]). Modtimes are not compared, as in rclone.
///
/// The report lists every file in one category; [`CheckReport::combined`] prints it the way
/// `rclone check --combined` does.
pub async fn check(
    src: &Arc<dyn Remote>,
    dst: &Arc<dyn Remote>,
    opts: &CheckOptions,
) -> Result<CheckReport> {
    let cmp = Arc::new(Comparator::new(
        src.clone(),
        dst.clone(),
        CompareOptions::default(),
    ));
    let method = if opts.download {
        "download".to_owned()
    } else if opts.size_only {
        "size".to_owned()
    } else {
        match cmp.hash {
            Some(k) => format!("size+{k}"),
            None => {
                let msg = format!(
                    "no hash type in common between {} and {}: checking sizes only",
                    src.describe(),
                    dst.describe()
                );
                tracing::warn!("{msg}");
                if let Some(sink) = &opts.events {
                    sink(&Event::Notice { message: msg });
                }
                "size".to_owned()
            }
        }
    };
    let cfg = MarchConfig {
        filter: opts.filter.clone(),
        checkers: opts.checkers.max(1),
        walk_dst_only: !opts.one_way,
        walk_dst_excluded: false,
        skip_dst: None,
        leftover_age: None,
        unicode_normalization: !opts.no_unicode_normalization,
        subdirs: None,
    };
    let seeds = match opts.filter.files_from() {
        Some(f) => f.iter().cloned().map(Seed::File).collect(),
        None => vec![Seed::Dir(RemotePath::root())],
    };
    let mut report = CheckReport {
        source: src.describe(),
        destination: dst.describe(),
        checked_at: Some(OffsetDateTime::now_utc()),
        method,
        ..Default::default()
    };
    let one_way = opts.one_way;
    let size_only = opts.size_only;
    let download = opts.download;
    let mut verdicts = march(src.clone(), Some(dst.clone()), seeds, cfg)
        .map(|it| {
            let cmp = cmp.clone();
            async move { judge(&cmp, it, one_way, size_only, download).await }
        })
        .buffer_unordered(opts.checkers.max(1));
    while let Some(v) = verdicts.next().await {
        match v {
            None => {}
            Some(Verdict::Match(i)) => report.matched.push(i),
            Some(Verdict::Differ(i)) => report.differ.push(i),
            Some(Verdict::MissingOnDst(i)) => report.missing_on_dst.push(i),
            Some(Verdict::MissingOnSrc(i)) => report.missing_on_src.push(i),
            Some(Verdict::Error(e)) => {
                if e.path.is_root() && e.kind == ErrorKind::NotFound {
                    return Err(
                        Error::new(ErrorKind::NotFound, "source directory not found")
                            .with_remote(src.describe()),
                    );
                }
                report.errors.push(e)
            }
        }
    }
    report.sort();
    Ok(report)
}

async fn judge(
    cmp: &Comparator,
    it: Item,
    one_way: bool,
    size_only: bool,
    download: bool,
) -> Option<Verdict> {
    match it {
        Item::Pair {
            path,
            src,
            dst,
            src_included,
            dst_included,
        } => {
            let s = src.filter(|_| src_included);
            let d = dst.filter(|_| dst_included);
            // A file on the source is reported under the source's name (as rclone does; the
            // destination's may be another Unicode form of it).
            let path = s.as_ref().map_or(path, |s| s.path.clone());
            match (s, d) {
                (Some(s), Some(d)) => {
                    let i = item(path.clone(), Some(&s), Some(&d));
                    if s.size != d.size {
                        return Some(Verdict::Differ(i));
                    }
                    if size_only {
                        return Some(Verdict::Match(i));
                    }
                    let same = if download {
                        same_bytes(cmp, &s.path, &d.path).await.map(Some)
                    } else {
                        cmp.same_hash(&s, &d).await
                    };
                    Some(match same {
                        Ok(Some(false)) => Verdict::Differ(i),
                        Ok(_) => Verdict::Match(i),
                        Err(e) => Verdict::Error(ErrorRecord::new(path, &e)),
                    })
                }
                (Some(s), None) => Some(Verdict::MissingOnDst(item(path, Some(&s), None))),
                (None, Some(d)) if !one_way => {
                    Some(Verdict::MissingOnSrc(item(path, None, Some(&d))))
                }
                _ => None,
            }
        }
        Item::Conflict { path } => Some(conflict(path, Reason::TypeConflict)),
        Item::Duplicate { path } => Some(conflict(path, Reason::Duplicate)),
        Item::Error { path, error, .. } => Some(Verdict::Error(ErrorRecord::new(path, &error))),
        Item::Leftover { .. } => None,
        Item::SrcDir { .. } | Item::DstOnlyDir { .. } => None,
    }
}

fn conflict(path: RemotePath, reason: Reason) -> Verdict {
    let e = Error::new(ErrorKind::Conflict, reason.describe());
    Verdict::Error(ErrorRecord::new(path, &e))
}

/// Reads both files and compares them byte for byte.
async fn same_bytes(cmp: &Comparator, src: &RemotePath, dst: &RemotePath) -> Result<bool> {
    let a = cmp.src.read(src, None).await?;
    let b = cmp.dst.read(dst, None).await?;
    streams_equal(a, b).await
}

/// Whether two byte streams carry the same bytes, whatever their chunking.
pub(crate) async fn streams_equal(mut a: ByteStream, mut b: ByteStream) -> Result<bool> {
    let (mut ca, mut cb) = (Bytes::new(), Bytes::new());
    loop {
        if ca.is_empty() {
            ca = next_chunk(&mut a).await?;
        }
        if cb.is_empty() {
            cb = next_chunk(&mut b).await?;
        }
        match (ca.is_empty(), cb.is_empty()) {
            (true, true) => return Ok(true),
            (true, false) | (false, true) => return Ok(false),
            _ => {}
        }
        let n = ca.len().min(cb.len());
        if ca[..n] != cb[..n] {
            return Ok(false);
        }
        ca = ca.slice(n..);
        cb = cb.slice(n..);
    }
}

/// The next non-empty chunk, or an empty one at the end of the stream.
async fn next_chunk(s: &mut ByteStream) -> Result<Bytes> {
    while let Some(c) = s.next().await.transpose()? {
        if !c.is_empty() {
            return Ok(c);
        }
    }
    Ok(Bytes::new())
}
