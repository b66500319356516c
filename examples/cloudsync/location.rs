//! Locations on the command line: the config file, opening remotes, and splitting a location
//! into its parent and last name (for commands that act on a file or on the directory itself).

use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use cloudsync::{
    Config, Error, ErrorKind, Registry, Remote, RemotePath, RemoteSpec, Result, redact_location,
};

/// The config file to use: `--config` / `CLOUDSYNC_CONFIG` (must exist), else the default path
/// (may be missing).
pub fn config_path(explicit: Option<&Path>) -> (PathBuf, bool) {
    if let Some(p) = explicit {
        return (p.to_owned(), true);
    }
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))
        .unwrap_or_else(|| PathBuf::from(".config"));
    (base.join("cloudsync").join("cloudsync.toml"), false)
}

/// Loads the config file; a missing default file is an empty config.
pub fn load_config(path: &Path, explicit: bool) -> Result<Config> {
    if !explicit && !path.exists() {
        return Ok(Config::default());
    }
    Config::load(path)
}

/// Opens locations with the backends of this build and one config.
pub struct Opener {
    pub registry: Registry,
    pub config: Config,
    /// The config file, for messages.
    pub config_path: PathBuf,
}

impl Opener {
    /// Opens one location. Configuration errors of a named remote say which file and section
    /// they come from.
    pub async fn open(&self, location: &str) -> Result<Arc<dyn Remote>> {
        self.registry
            .open(location, &self.config)
            .await
            .map_err(|e| match RemoteSpec::parse(location) {
                Ok(RemoteSpec::Named { name, .. })
                    if e.kind() == ErrorKind::ConfigInvalid
                        && self.config.remote(&name).is_ok() =>
                {
                    Error::new(
                        ErrorKind::ConfigInvalid,
                        format!(
                            "{}: remote {name:?}: {}",
                            self.config_path.display(),
                            e.message()
                        ),
                    )
                }
                _ => e,
            })
    }

    /// Opens the parent of `location` and returns it with the last name, or `None` when the
    /// location is the root of its remote.
    pub async fn open_parent(
        &self,
        location: &str,
    ) -> Result<Option<(Arc<dyn Remote>, RemotePath)>> {
        let Some((parent, name)) = split_location(location)? else {
            return Ok(None);
        };
        let remote = self.open(&parent).await?;
        Ok(Some((remote, RemotePath::new(&name)?)))
    }
}

/// Splits a location into its parent location and last name: `/a/b` -> (`/a`, `b`),
/// `nas:x/y` -> (`nas:x`, `y`), `sftp://h/x/y` -> (`sftp://h/x`, `y`). `None` for a root.
pub fn split_location(location: &str) -> Result<Option<(String, String)>> {
    match RemoteSpec::parse(location)? {
        RemoteSpec::Local(p) => {
            let abs = normalize(Path::new(&p))?;
            let (Some(parent), Some(name)) = (abs.parent(), abs.file_name()) else {
                return Ok(None);
            };
            let name = name.to_str().ok_or_else(|| {
                Error::new(ErrorKind::InvalidInput, format!("{p:?} is not valid UTF-8"))
            })?;
            Ok(Some((parent.display().to_string(), name.to_owned())))
        }
        RemoteSpec::Named { name, path } => Ok(path.parent().map(|parent| {
            (
                format!("{name}:{}", parent.as_str()),
                path.name().to_owned(),
            )
        })),
        RemoteSpec::Url(u) => {
            let trimmed = u.trim_end_matches('/');
            let after_scheme = trimmed.find("://").map_or(0, |i| i + 3);
            match trimmed[after_scheme..].rfind('/') {
                Some(i) if i + 1 < trimmed.len() - after_scheme => {
                    let cut = after_scheme + i;
                    let name = &trimmed[cut + 1..];
                    Ok(Some((trimmed[..cut].to_owned(), name.to_owned())))
                }
                _ => Ok(None),
            }
        }
    }
}

/// Absolute path with `.` and `..` resolved lexically.
fn normalize(p: &Path) -> Result<PathBuf> {
    let abs = std::path::absolute(p)?;
    let mut out = PathBuf::new();
    for c in abs.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    Ok(out)
}

/// Turns `--backup-dir LOCATION` into a path relative to the destination root. The backup
/// directory must be on the same remote as the destination and inside it (the engine keeps it
/// out of the sync).
pub fn backup_dir_within(dest: &str, backup: &str) -> Result<RemotePath> {
    match relative_within(dest, backup)? {
        Some(rel) if !rel.is_root() => Ok(rel),
        _ => Err(Error::new(
            ErrorKind::InvalidInput,
            format!(
                "--backup-dir {:?} must be a directory inside the destination {:?} \
                 (same remote; the sync never enters it)",
                redact_location(backup),
                redact_location(dest)
            ),
        )),
    }
}

/// The path of location `inner` relative to location `base` when `inner` is `base` itself or
/// lies below it on the same remote (root for `base` itself); `None` otherwise.
pub fn relative_within(base: &str, inner: &str) -> Result<Option<RemotePath>> {
    let rel = match (RemoteSpec::parse(base)?, RemoteSpec::parse(inner)?) {
        (RemoteSpec::Local(d), RemoteSpec::Local(b)) => {
            let (d, b) = (normalize(Path::new(&d))?, normalize(Path::new(&b))?);
            match b.strip_prefix(&d).ok().and_then(Path::to_str) {
                Some(rel) => rel.to_owned(),
                None => return Ok(None),
            }
        }
        (RemoteSpec::Named { name: dn, path: dp }, RemoteSpec::Named { name: bn, path: bp })
            if dn == bn =>
        {
            match bp.strip_prefix(&dp) {
                Some(rel) => rel.as_str().to_owned(),
                None => return Ok(None),
            }
        }
        (RemoteSpec::Url(d), RemoteSpec::Url(b)) => {
            let (d, b) = (d.trim_end_matches('/'), b.trim_end_matches('/'));
            match b.strip_prefix(d) {
                Some("") => String::new(),
                Some(rest) if rest.starts_with('/') => rest[1..].to_owned(),
                _ => return Ok(None),
            }
        }
        _ => return Ok(None),
    };
    Ok(RemotePath::new(&rel).ok())
}

/// A location as it is stored in a saved report, so that another process can open it again:
/// a relative local path becomes absolute; URLs and `name:path` stay as written, except for a
/// password, which is never stored (`SavedReport` keeps `ftp://me:***@host/x`).
pub fn storable_location(location: &str) -> Result<String> {
    match RemoteSpec::parse(location)? {
        RemoteSpec::Local(p) => {
            let abs = normalize(Path::new(&p))?;
            abs.to_str().map(str::to_owned).ok_or_else(|| {
                Error::new(ErrorKind::InvalidInput, format!("{p:?} is not valid UTF-8"))
            })
        }
        _ => Ok(location.to_owned()),
    }
}

/// Where `--archive-dir`/`--report-dir VALUE` of `ingest` points.
pub enum DirLocation {
    /// A directory inside the drop folder (relative to its root).
    InDrop(RemotePath),
    /// A location of its own, to open.
    Elsewhere(String),
}

/// The rule for `--archive-dir`/`--report-dir`: a plain relative path (`archives`,
/// `done/2026`: no scheme, no `name:`, not absolute, no `.` or `..` segment) is a directory
/// inside the drop folder; anything else (URL, `name:path`, absolute path, `./dir`) is a
/// location, which counts as a directory of the drop folder when it lies inside it.
pub fn dir_location(drop: &str, value: &str) -> Result<DirLocation> {
    if let RemoteSpec::Local(p) = RemoteSpec::parse(value)? {
        let plain = p.trim_end_matches('/');
        if Path::new(plain).is_relative() {
            if let Ok(rel) = RemotePath::new(plain) {
                return Ok(DirLocation::InDrop(rel));
            }
        }
    }
    Ok(match relative_within(drop, value)? {
        Some(rel) => DirLocation::InDrop(rel),
        None => DirLocation::Elsewhere(value.to_owned()),
    })
}
