//! Archive copies: `<dir>/<UTC date>/<path>`, never replacing an earlier archive of the same
//! name: the second `a/b.csv` of a day becomes `a/b (1).csv`, then `a/b (2).csv`, ... (the
//! counter goes before the last extension; names without one get ` (1)` at the end).

use std::sync::Arc;

use crate::entry::Entry;
use crate::error::{Error, ErrorKind, Result};
use crate::ops::{SyncOptions, copy_entry};
use crate::path::RemotePath;
use crate::remote::Remote;

use super::options::Location;

/// Gives up looking for a free name after this many tries.
const MAX_SUFFIX: u32 = 10_000;

/// `name (n).ext` for `name.ext`, `name (n)` for `name` and `.name`.
pub(crate) fn suffixed(name: &str, n: u32) -> String {
    match name.rfind('.') {
        Some(i) if i > 0 => format!("{} ({n}){}", &name[..i], &name[i..]),
        _ => format!("{name} ({n})"),
    }
}

/// The first of `path`, `path (1)`, `path (2)`, ... that does not exist on `remote`.
pub(crate) async fn free_name(remote: &dyn Remote, path: &RemotePath) -> Result<RemotePath> {
    let parent = path.parent().unwrap_or_else(RemotePath::root);
    for n in 0..=MAX_SUFFIX {
        let candidate = if n == 0 {
            path.clone()
        } else {
            parent.join(&suffixed(path.name(), n))?
        };
        match remote.stat(&candidate).await {
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(candidate),
            Err(e) => return Err(e),
            Ok(_) => {}
        }
    }
    Err(Error::new(
        ErrorKind::AlreadyExists,
        format!("no free archive name after {MAX_SUFFIX} tries"),
    )
    .with_path(path))
}

/// How the archive copy was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Archived {
    /// Copied; the drop file is still there and must be removed.
    Copied,
    /// Moved by a server-side rename; the drop file is gone.
    Moved,
}

/// Archives `entry` (a drop-folder file) under `loc/<date>/<path>` and returns the archive path.
///
/// When the archive lives on the drop remote and that remote can rename, the file is moved
/// into the archive in one server-side step (no copy, and it leaves the drop folder at the
/// same instant it appears in the archive); with server-side copy it is copied on the server;
/// otherwise it is streamed with a verified transfer.
pub(crate) async fn archive(
    drop: &Arc<dyn Remote>,
    loc: &Location,
    date: &str,
    entry: &Entry,
    topts: &SyncOptions,
) -> Result<(RemotePath, Archived)> {
    let remote = loc.remote(drop);
    let wanted = loc.dir.join(date)?.join_path(&entry.path);
    let path = free_name(remote.as_ref(), &wanted).await?;
    let same = loc.is_on(drop);
    let caps = drop.capabilities();
    let check = |written: Entry| {
        if written.size == entry.size {
            Ok(())
        } else {
            Err(Error::new(
                ErrorKind::Protocol,
                format!(
                    "archive copy has {} bytes, the file {}",
                    written.size, entry.size
                ),
            )
            .with_path(&path))
        }
    };
    if same && caps.rename {
        let written = drop.rename(&entry.path, &path).await?;
        check(written)?;
        return Ok((path, Archived::Moved));
    }
    if same && caps.copy {
        let written = drop.copy(&entry.path, &path).await?;
        check(written)?;
        return Ok((path, Archived::Copied));
    }
    copy_entry(drop, remote, entry, &path, topts).await?;
    Ok((path, Archived::Copied))
}

#[cfg(test)]
mod tests {
    use super::suffixed;

    #[test]
    fn suffix_goes_before_the_last_extension() {
        assert_eq!(suffixed("a.csv", 1), "a (1).csv");
        assert_eq!(suffixed("a.tar.gz", 2), "a.tar (2).gz");
        assert_eq!(suffixed("README", 3), "README (3)");
        assert_eq!(suffixed(".env", 1), ".env (1)");
    }
}
