//! [`SftpRemote`] (the [`Remote`] implementation) and [`SftpFactory`] (its registration).

use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use cloudsync_core::deps::serde_json::Value;
use cloudsync_core::{
    BackendFactory, ByteStream, Capabilities, Entry, EntryStream, Error, ErrorKind, HashKind,
    Location, Remote, RemotePath, Result, Usage, WriteMeta, parse_config,
};
use russh_sftp::protocol::{FileAttributes, OpenFlags, StatusCode};
use time::OffsetDateTime;

use crate::config::SftpConfig;
use crate::core::{Core, Kind, OpenHandle, entry_of, kind_of, modtime_of, status_of};
use crate::pool::Pool;
use crate::{deleter, lister, reader, writer};

/// An SFTP server directory as a [`Remote`].
///
/// Cheap to share (`Arc`); its operations run concurrently over a pool of SSH connections.
/// See the [crate docs](crate) for what it supports.
#[derive(Debug)]
pub struct SftpRemote {
    core: Arc<Core>,
    caps: Capabilities,
}

impl SftpRemote {
    /// Connects (one connection, to report bad credentials or an unknown host key at once),
    /// resolves the root directory and returns the remote.
    pub async fn connect(config: SftpConfig) -> Result<SftpRemote> {
        let settings = config.build()?;
        let describe_base = {
            let port = if settings.port == 22 {
                String::new()
            } else {
                format!(":{}", settings.port)
            };
            format!("sftp://{}@{}{port}", settings.user, settings.host)
        };
        let (host, port) = (settings.host.clone(), settings.port);
        let shell_hashes = settings.shell_hashes;
        let follow_symlinks = settings.follow_symlinks;
        let configured_root = settings.root.clone();
        let pool = Pool::new(settings);
        let conn = pool.get().await.map_err(|e| {
            e.with_operation("connect")
                .with_remote(describe_base.clone())
        })?;
        let root = resolve_root(&conn, &configured_root).await.map_err(|e| {
            e.with_operation("connect")
                .with_remote(describe_base.clone())
        })?;
        let features = conn.features.clone();
        drop(conn);
        let describe = if root.starts_with('/') {
            format!("{describe_base}{root}")
        } else {
            format!("{describe_base}/{root}")
        };
        let hashes = if shell_hashes {
            vec![HashKind::Md5, HashKind::Sha1]
        } else {
            Vec::new()
        };
        let caps = Capabilities {
            hashes,
            modtime_precision: Some(Duration::from_secs(1)),
            write_modtime: true,
            set_modtime: true,
            copy: features.copy_data,
            rename: true,
            purge: true,
            usage: features.statvfs,
            dirs: true,
            max_name_len: Some(255),
            ..Default::default()
        };
        Ok(SftpRemote {
            core: Arc::new(Core {
                location: crate::core::location(&host, port, &root),
                pool,
                root,
                describe,
                follow_symlinks,
                posix_rename_off: std::sync::atomic::AtomicBool::new(false),
            }),
            caps,
        })
    }

    /// Test hook: from now on, replace files as if the server lacked
    /// `posix-rename@openssh.com` (move the old file aside, rename, delete the old one).
    #[doc(hidden)]
    pub fn disable_posix_rename_for_tests(&self) {
        self.core
            .posix_rename_off
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }

    /// Closes every pooled connection (they are also closed when the remote is dropped).
    pub async fn close(&self) {
        self.core.pool.close_all().await;
    }
}

/// The absolute root: `configured` if absolute, else below the login directory.
async fn resolve_root(conn: &crate::ssh::Connection, configured: &str) -> Result<String> {
    let configured = configured.strip_prefix("~/").unwrap_or(configured);
    let joined = if configured.starts_with('/') {
        configured.to_owned()
    } else {
        let home = conn
            .sftp
            .realpath(".")
            .await
            .map_err(|e| crate::core::parse_error(conn, e).with_path("."))?;
        let home = home
            .files
            .into_iter()
            .next()
            .map(|f| f.filename)
            .filter(|h| h.starts_with('/'))
            .ok_or_else(|| {
                Error::new(
                    ErrorKind::Protocol,
                    "the server did not say what its login directory is",
                )
            })?;
        let home = home.trim_end_matches('/');
        if configured.is_empty() {
            if home.is_empty() {
                "/".to_owned()
            } else {
                home.to_owned()
            }
        } else {
            format!("{home}/{configured}")
        }
    };
    let trimmed = joined.trim_end_matches('/');
    Ok(if trimmed.is_empty() {
        "/".to_owned()
    } else {
        trimmed.to_owned()
    })
}

#[async_trait]
impl Remote for SftpRemote {
    fn describe(&self) -> String {
        self.core.describe.clone()
    }

    fn location(&self) -> Option<Location> {
        Some(self.core.location.clone())
    }

    fn capabilities(&self) -> &Capabilities {
        &self.caps
    }

    async fn list(&self, dir: &RemotePath) -> Result<EntryStream> {
        lister::list(self.core.clone(), dir).await
    }

    async fn stat(&self, path: &RemotePath) -> Result<Entry> {
        let core = &self.core;
        let conn = core.conn(path).await?;
        let attrs = if core.follow_symlinks || path.is_root() {
            core.stat_on(&conn, path).await?
        } else {
            let attrs = core.lstat_on(&conn, path).await?;
            if kind_of(&attrs) == Kind::Symlink {
                // Invisible to this remote, as in listings.
                return Err(core.ctx(
                    Error::new(
                        ErrorKind::NotFound,
                        "is a symbolic link (skipped; set follow_symlinks to follow it)",
                    ),
                    path,
                ));
            }
            attrs
        };
        entry_of(path.clone(), &attrs).ok_or_else(|| {
            core.ctx(
                Error::new(ErrorKind::Unsupported, "not a regular file or directory"),
                path,
            )
        })
    }

    async fn read(&self, path: &RemotePath, range: Option<Range<u64>>) -> Result<ByteStream> {
        reader::read(self.core.clone(), path, range).await
    }

    async fn write(&self, path: &RemotePath, body: ByteStream, meta: WriteMeta) -> Result<Entry> {
        writer::write(self.core.clone(), path, body, meta).await
    }

    async fn mkdir(&self, dir: &RemotePath) -> Result<()> {
        let conn = self.core.conn(dir).await?;
        self.core.mkdir_all(&conn, dir).await
    }

    async fn remove_file(&self, path: &RemotePath) -> Result<()> {
        deleter::remove_file(&self.core, path).await
    }

    async fn remove_dir(&self, dir: &RemotePath) -> Result<()> {
        deleter::remove_dir(&self.core, dir).await
    }

    async fn purge(&self, dir: &RemotePath) -> Result<()> {
        deleter::purge(&self.core, dir).await
    }

    async fn rename(&self, from: &RemotePath, to: &RemotePath) -> Result<Entry> {
        let core = &self.core;
        let conn = core.conn(from).await?;
        let (src, dst) = (core.abs(from), core.abs(to));
        if let Err(e) = core.rename_over(&conn, &src, &dst).await {
            if status_of(&e) != Some(StatusCode::NoSuchFile) {
                return Err(core.fail(&conn, e, from));
            }
            // Either the source is missing or the target's directory is.
            core.stat_on(&conn, from).await?;
            if let Some(parent) = to.parent() {
                core.mkdir_all(&conn, &parent).await?;
            }
            core.rename_over(&conn, &src, &dst)
                .await
                .map_err(|e| core.fail(&conn, e, from))?;
        }
        let attrs = core.stat_on(&conn, to).await?;
        entry_of(to.clone(), &attrs).ok_or_else(|| {
            core.ctx(
                Error::new(ErrorKind::Unsupported, "not a regular file or directory"),
                to,
            )
        })
    }

    async fn copy(&self, from: &RemotePath, to: &RemotePath) -> Result<Entry> {
        if !self.caps.copy {
            return Err(self.unsupported("copy"));
        }
        copy_on_server(&self.core, from, to).await
    }

    async fn set_modtime(&self, path: &RemotePath, modtime: OffsetDateTime) -> Result<()> {
        let core = &self.core;
        let attrs = crate::core::mtime_attrs(modtime).map_err(|e| core.ctx(e, path))?;
        let conn = core.conn(path).await?;
        conn.sftp
            .setstat(core.abs(path), attrs)
            .await
            .map(|_| ())
            .map_err(|e| core.fail(&conn, e, path))
    }

    async fn hash(&self, path: &RemotePath, kind: HashKind) -> Result<String> {
        if self.caps.hashes.contains(&kind) {
            return self.core.shell_hash(path, kind).await;
        }
        // Not available on the server: download and hash (the trait's default).
        let mut body = self.read(path, None).await?;
        let mut h = cloudsync_core::MultiHasher::new(&[kind]);
        while let Some(chunk) = futures::TryStreamExt::try_next(&mut body).await? {
            h.update(&chunk);
        }
        h.finish()
            .get(kind)
            .map(str::to_owned)
            .ok_or_else(|| Error::new(ErrorKind::Unexpected, "hasher produced no value"))
    }

    async fn usage(&self) -> Result<Usage> {
        if !self.caps.usage {
            return Err(self.unsupported("usage"));
        }
        let core = &self.core;
        let root = RemotePath::root();
        let conn = core.conn(&root).await?;
        let v = conn
            .sftp
            .statvfs(core.root.clone())
            .await
            .map_err(|e| core.fail(&conn, e, &root))?;
        let unit = v.fragment_size.max(1);
        let total = v.blocks.saturating_mul(unit);
        let free = v.blocks_avail.saturating_mul(unit);
        let used = v.blocks.saturating_sub(v.blocks_free).saturating_mul(unit);
        Ok(Usage {
            total: Some(total),
            used: Some(used),
            free: Some(free),
            trashed: None,
        })
    }
}

/// Server-side copy with the `copy-data` extension, into a temporary name renamed over `to`;
/// the copy gets the source's modtime.
async fn copy_on_server(core: &Arc<Core>, from: &RemotePath, to: &RemotePath) -> Result<Entry> {
    let Some(parent) = to.parent() else {
        return Err(core.ctx(
            Error::new(ErrorKind::InvalidInput, "cannot copy onto the root"),
            to,
        ));
    };
    let conn = core.conn(from).await?;
    let src = conn
        .sftp
        .open(core.abs(from), OpenFlags::READ, FileAttributes::empty())
        .await
        .map_err(|e| core.fail(&conn, e, from))?;
    let src = OpenHandle::new(conn.clone(), src.handle);
    let attrs = conn
        .sftp
        .fstat(src.handle())
        .await
        .map_err(|e| core.fail(&conn, e, from))?
        .attrs;
    if kind_of(&attrs) != Kind::File {
        return Err(core.ctx(Error::new(ErrorKind::Conflict, "not a regular file"), from));
    }
    let (temp_abs, dst) = writer::open_temp(core, &conn, &parent, to).await?;
    let modtime = modtime_of(&attrs);
    let result = async {
        core.copy_data(&conn, src.handle(), dst.handle()).await?;
        if let Some(t) = attrs.mtime {
            let times = FileAttributes {
                atime: Some(t),
                mtime: Some(t),
                ..FileAttributes::empty()
            };
            conn.sftp.fsetstat(dst.handle(), times).await?;
        }
        dst.close().await?;
        let _ = src.close().await;
        core.rename_over(&conn, &temp_abs, &core.abs(to)).await
    }
    .await;
    match result {
        Ok(()) => Ok(Entry::file(to.clone(), attrs.size.unwrap_or(0)).with_modtime(modtime)),
        Err(e) => {
            let err = core.fail(&conn, e, to);
            writer::discard(core, &conn, &temp_abs).await;
            Err(err)
        }
    }
}

/// Registers the `sftp` type and the `sftp://` URL scheme.
///
/// ```
/// use cloudsync_core::BackendFactory;
/// let f = cloudsync_sftp::SftpFactory;
/// assert_eq!(f.type_name(), "sftp");
/// let url = url::Url::parse("sftp://backup@nas.local:2222/~/photos?use_agent=false").unwrap();
/// let cfg = f.config_from_url(&url).unwrap();
/// assert_eq!(cfg["root"], "photos");
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct SftpFactory;

#[async_trait]
impl BackendFactory for SftpFactory {
    fn type_name(&self) -> &'static str {
        crate::TYPE_NAME
    }

    fn url_schemes(&self) -> &'static [&'static str] {
        &["sftp"]
    }

    fn config_from_url(&self, url: &url::Url) -> Result<Value> {
        SftpConfig::json_from_url(url)
    }

    fn secret_keys(&self) -> &'static [&'static str] {
        &["password"]
    }

    async fn open(&self, config: Value) -> Result<Arc<dyn Remote>> {
        let cfg: SftpConfig = parse_config(crate::TYPE_NAME, config)?;
        Ok(Arc::new(SftpRemote::connect(cfg).await?))
    }
}
