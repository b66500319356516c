//! [`LocalConfig`]: the settings of a local remote, and [`LocalFactory`], its registry entry.

use std::fmt;
use std::path::PathBuf;

use std::sync::Arc;

use async_trait::async_trait;
use cloudsync_core::{BackendFactory, Error, ErrorKind, Remote, Result, parse_config};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::backend::LocalRemote;
use crate::core::LocalCore;

/// Settings of a local-disk remote.
///
/// In a config file:
///
/// ```toml
/// [remotes.photos]
/// type = "local"
/// root = "/srv/photos"
/// follow_symlinks = false
/// fsync = true       # the default
/// ```
///
/// ```
/// use cloudsync_local::LocalConfig;
/// let remote = LocalConfig::new("/srv/photos").with_follow_symlinks(true).build()?;
/// # let _ = remote;
/// # Ok::<(), cloudsync_core::Error>(())
/// ```
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
#[non_exhaustive]
pub struct LocalConfig {
    /// The directory the remote is rooted at (required). A relative path is resolved against the
    /// current directory when the remote is opened. It need not exist yet: the first write
    /// creates it, and listing it before that gives `NotFound`.
    pub root: PathBuf,
    /// Follow symbolic links (list and copy what they point to, and write through linked
    /// directories). Off by default: links are skipped with a warning, and nothing is written,
    /// renamed or deleted through a directory link below the root (`PermissionDenied`).
    pub follow_symlinks: bool,
    /// `fsync` each written file before it is renamed into place, and its directory after
    /// (and the parents of directories a write creates). On by default: without it a power
    /// cut can leave a renamed file empty or short under its final name (the rename reaches
    /// the disk before the data on xfs, and on ext4 for new names), which a backup must not.
    /// It costs 0.2–0.4 ms per file on an SSD (see the crate docs for figures); turn it off
    /// for scratch copies where losing the last writes is fine.
    pub fsync: bool,
}

impl Default for LocalConfig {
    fn default() -> Self {
        LocalConfig {
            root: PathBuf::new(),
            follow_symlinks: false,
            fsync: true,
        }
    }
}

impl fmt::Debug for LocalConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalConfig")
            .field("root", &self.root)
            .field("follow_symlinks", &self.follow_symlinks)
            .field("fsync", &self.fsync)
            .finish_non_exhaustive()
    }
}

impl LocalConfig {
    /// Settings for a remote rooted at `root`, with every option at its default.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        LocalConfig {
            root: root.into(),
            ..Default::default()
        }
    }

    /// Sets [`LocalConfig::follow_symlinks`].
    pub fn with_follow_symlinks(mut self, yes: bool) -> Self {
        self.follow_symlinks = yes;
        self
    }

    /// Sets [`LocalConfig::fsync`].
    pub fn with_fsync(mut self, yes: bool) -> Self {
        self.fsync = yes;
        self
    }

    /// Validates the settings and opens the remote.
    ///
    /// Fails with [`ErrorKind::ConfigInvalid`] when `root` is empty or the current directory
    /// (needed to resolve a relative root) cannot be read.
    pub fn build(&self) -> Result<LocalRemote> {
        if self.root.as_os_str().is_empty() {
            return Err(Error::new(
                ErrorKind::ConfigInvalid,
                "local config: key `root` is required (the directory to sync)",
            ));
        }
        let root = std::path::absolute(&self.root).map_err(|e| {
            Error::new(
                ErrorKind::ConfigInvalid,
                format!(
                    "local config: cannot resolve `root` {}: {e}",
                    self.root.display()
                ),
            )
            .with_source(e)
        })?;
        Ok(LocalRemote::from_core(LocalCore::new(root, self)))
    }
}

/// Opens `local` remotes: `type = "local"` in config files, `file:///abs/path` URLs and plain
/// paths on the command line.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> cloudsync_core::Result<()> {
/// use std::sync::Arc;
/// use cloudsync_core::Registry;
///
/// let mut registry = Registry::new();
/// registry.register(Arc::new(cloudsync_local::LocalFactory));
/// let remote = registry.open_url("file:///tmp/cloudsync-doc").await?;
/// assert_eq!(remote.describe(), "/tmp/cloudsync-doc");
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct LocalFactory;

#[async_trait]
impl BackendFactory for LocalFactory {
    fn type_name(&self) -> &'static str {
        "local"
    }

    fn url_schemes(&self) -> &'static [&'static str] {
        &["file"]
    }

    fn config_from_url(&self, url: &url::Url) -> Result<Value> {
        let path = url.to_file_path().map_err(|()| {
            Error::new(
                ErrorKind::ConfigInvalid,
                format!("{url} is not a local file URL (expected file:///absolute/path)"),
            )
        })?;
        let root = path.to_str().ok_or_else(|| {
            Error::new(
                ErrorKind::ConfigInvalid,
                format!("{url}: path is not valid UTF-8"),
            )
        })?;
        Ok(serde_json::json!({ "root": root }))
    }

    async fn open(&self, config: Value) -> Result<Arc<dyn Remote>> {
        let cfg: LocalConfig = parse_config("local", config)?;
        Ok(Arc::new(cfg.build()?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fsync_is_on_by_default() {
        assert!(LocalConfig::new("/x").fsync);
        assert!(LocalConfig::default().fsync);
        let from_file: LocalConfig =
            serde_json::from_value(serde_json::json!({"root": "/x"})).expect("valid config");
        assert!(from_file.fsync);
        let off: LocalConfig =
            serde_json::from_value(serde_json::json!({"root": "/x", "fsync": false}))
                .expect("valid config");
        assert!(!off.fsync);
    }
}
