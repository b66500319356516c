//! [`FtpRemote`] (the [`Remote`] implementation) and [`FtpFactory`] (its registry entry).

use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use cloudsync_core::{
    BackendFactory, ByteStream, Capabilities, Entry, EntryStream, Error, ErrorKind, Location,
    Remote, RemotePath, Result, WriteMeta, parse_config,
};
use serde_json::Value;
use time::OffsetDateTime;

use crate::config::{FtpConfig, Settings, Tls};
use crate::core::{Conn, Connector, Features, Paths, TEMP_PREFIX};
use crate::pool::Pool;
use crate::{deleter, lister, reader, writer};

/// A remote on an FTP or FTPS server.
///
/// Opened with [`FtpConfig::build`] (or through the registry as type `ftp`, URLs `ftp://` and
/// `ftps://`). Cheap to clone; clones share the connection pool.
#[derive(Clone)]
pub struct FtpRemote {
    pub(crate) inner: Arc<Inner>,
}

/// Shared state of a remote.
pub(crate) struct Inner {
    pub(crate) pool: Arc<Pool>,
    pub(crate) paths: Paths,
    pub(crate) features: Features,
    caps: Capabilities,
    describe: String,
    location: Location,
}

impl std::fmt::Debug for FtpRemote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FtpRemote")
            .field("describe", &self.inner.describe)
            .field("features", &self.inner.features)
            .finish_non_exhaustive()
    }
}

impl FtpRemote {
    /// Connects once (to read `FEAT`, the login directory and, on servers without `MFMT`,
    /// whether `MDTM` can set times), then keeps that session in the pool.
    pub(crate) async fn connect(settings: Settings) -> Result<Self> {
        let describe = describe(&settings);
        let (settings_host, settings_port) = (settings.host.clone(), settings.port);
        let root = settings.root.clone();
        let disable_mlsd = settings.disable_mlsd;
        let connector = Connector::new(settings).map_err(|e| e.with_remote(describe.clone()))?;
        let pool = Pool::new(connector);
        let mut conn = pool
            .connector
            .connect()
            .await
            .map_err(|e| e.with_remote(describe.clone()))?;
        // The login directory decides where a relative root is: never guess it (a `PWD` lost to
        // a reset would put the root under `/`). One fresh session is tried, then the open fails.
        let home = match conn.pwd().await {
            Ok(home) => home,
            Err(_) if root.starts_with('/') => "/".to_owned(),
            Err(first) => {
                let mut again = pool
                    .connector
                    .connect()
                    .await
                    .map_err(|e| e.with_remote(describe.clone()))?;
                match again.pwd().await {
                    Ok(home) => home,
                    Err(_) => return Err(first.with_remote(describe.clone())),
                }
            }
        };
        let paths = Paths::new(&root, &home);
        let location = location(&settings_host, settings_port, &paths);
        let mut features = pool.connector.features.get().cloned().unwrap_or_default();
        if disable_mlsd {
            features.mlsd = false;
            features.mlst = false;
        }
        if !features.mfmt && features.mdtm {
            features.mdtm_write = probe_mdtm_write(&mut conn, &paths).await;
        }
        let set_time = features.mfmt || features.mdtm_write;
        let caps = Capabilities {
            modtime_precision: (features.mlsd || features.mdtm).then_some(Duration::from_secs(1)),
            write_modtime: set_time,
            set_modtime: set_time,
            rename: true,
            dirs: true,
            ..Default::default()
        };
        tracing::debug!(remote = %describe, ?features, "FTP server features");
        if !conn.broken {
            pool.put_idle(conn);
        }
        Ok(FtpRemote {
            inner: Arc::new(Inner {
                pool,
                paths,
                features,
                caps,
                describe,
                location,
            }),
        })
    }
}

fn describe(s: &Settings) -> String {
    let scheme = match s.tls {
        Tls::None => "ftp",
        _ => "ftps",
    };
    let host = if s.host.contains(':') {
        format!("[{}]", s.host)
    } else {
        s.host.clone()
    };
    let root = if s.root.is_empty() || s.root.starts_with('/') {
        s.root.clone()
    } else {
        format!("/{}", s.root)
    };
    format!("{scheme}://{}@{host}:{}{root}", s.user, s.port)
}

/// The canonical place of the remote's root: `ftp://host:port` plus the absolute root. `ftp`
/// and `ftps` (explicit or implicit TLS) share the space: they are two ways into one server
/// and its one file tree, so only the host and port tell servers apart. The user is left out
/// too (two logins may see one directory; refusing a false overlap is safer than missing a
/// true one).
fn location(host: &str, port: u16, paths: &Paths) -> Location {
    Location::network("ftp", host, Some(port), paths.root())
}

/// Whether `MDTM YYYYMMDDhhmmss path` sets a file's time (vsftpd with `mdtm_write`): writes an
/// empty hidden file in the root, sets and reads back its time, removes it. Any failure (a
/// read-only or missing root included) means no.
async fn probe_mdtm_write(conn: &mut Conn, paths: &Paths) -> bool {
    let name = format!("{TEMP_PREFIX}{:016x}.probe", fastrand::u64(..));
    let Ok(abs) = paths.abs(&RemotePath::root()).map(|r| {
        if r == "/" {
            format!("/{name}")
        } else {
            format!("{r}/{name}")
        }
    }) else {
        return false;
    };
    let Ok(transfer) = conn.stor(&abs).await else {
        return false;
    };
    conn.broken = true;
    let finished = tokio::time::timeout(conn.timeout, transfer.finish()).await;
    if conn.check(finished, "write", &abs).is_err() {
        return false;
    }
    conn.broken = false;
    let want =
        OffsetDateTime::from_unix_timestamp(946_782_245).unwrap_or(OffsetDateTime::UNIX_EPOCH);
    let set = conn
        .custom(
            &format!("MDTM {} {abs}", crate::parse::format_timeval(want)),
            &[213, 200, 250],
        )
        .await
        .is_ok();
    let works = set && matches!(conn.mdtm(&abs).await, Ok(t) if t == want);
    if !conn.broken {
        let _ = conn.dele(&abs).await;
    }
    works
}

#[async_trait]
impl Remote for FtpRemote {
    fn describe(&self) -> String {
        self.inner.describe.clone()
    }

    fn location(&self) -> Option<Location> {
        Some(self.inner.location.clone())
    }

    fn capabilities(&self) -> &Capabilities {
        &self.inner.caps
    }

    async fn list(&self, dir: &RemotePath) -> Result<EntryStream> {
        lister::list(&self.inner, dir).await
    }

    async fn stat(&self, path: &RemotePath) -> Result<Entry> {
        lister::stat(&self.inner, path)
            .await
            .map_err(|e| e.with_path(path))
    }

    async fn read(&self, path: &RemotePath, range: Option<Range<u64>>) -> Result<ByteStream> {
        reader::read(&self.inner, path, range)
            .await
            .map_err(|e| e.with_path(path))
    }

    async fn write(&self, path: &RemotePath, body: ByteStream, meta: WriteMeta) -> Result<Entry> {
        writer::write(&self.inner, path, body, meta)
            .await
            .map_err(|e| e.with_path(path))
    }

    async fn mkdir(&self, dir: &RemotePath) -> Result<()> {
        writer::mkdir(&self.inner, dir)
            .await
            .map_err(|e| e.with_path(dir))
    }

    async fn remove_file(&self, path: &RemotePath) -> Result<()> {
        deleter::remove_file(&self.inner, path)
            .await
            .map_err(|e| e.with_path(path))
    }

    async fn remove_dir(&self, dir: &RemotePath) -> Result<()> {
        deleter::remove_dir(&self.inner, dir)
            .await
            .map_err(|e| e.with_path(dir))
    }

    async fn rename(&self, from: &RemotePath, to: &RemotePath) -> Result<Entry> {
        writer::rename(&self.inner, from, to)
            .await
            .map_err(|e| e.with_path(from))
    }

    async fn set_modtime(&self, path: &RemotePath, modtime: OffsetDateTime) -> Result<()> {
        if !self.inner.caps.set_modtime {
            return Err(self.unsupported("set_modtime"));
        }
        let abs = self.inner.paths.abs(path)?;
        let mut conn = self.inner.pool.get().await?;
        let r = match conn.set_mtime(&abs, modtime, &self.inner.features).await {
            Ok(()) => Ok(()),
            Err(e) => Err(conn
                .confirm_not_found(e, &abs, self.inner.features.mlsd)
                .await),
        };
        r.map_err(|e| e.with_path(path))
    }
}

/// Registry entry: type `ftp`, URL schemes `ftp` and `ftps`.
///
/// ```
/// let mut registry = cloudsync_core::Registry::new();
/// registry.register(std::sync::Arc::new(cloudsync_ftp::FtpFactory));
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct FtpFactory;

#[async_trait]
impl BackendFactory for FtpFactory {
    fn type_name(&self) -> &'static str {
        crate::TYPE_NAME
    }

    fn url_schemes(&self) -> &'static [&'static str] {
        &["ftp", "ftps"]
    }

    fn config_from_url(&self, url: &url::Url) -> Result<Value> {
        let cfg = FtpConfig::from_url(url)?;
        let mut value = serde_json::to_value(&cfg).map_err(|e| {
            Error::new(ErrorKind::ConfigInvalid, format!("ftp config: {e}")).with_source(e)
        })?;
        // The password serialises as `***`; the config the remote is opened from needs it.
        if let (Some(password), Some(obj)) = (&cfg.password, value.as_object_mut()) {
            obj.insert(
                "password".into(),
                Value::String(password.expose().to_owned()),
            );
        }
        Ok(value)
    }

    fn secret_keys(&self) -> &'static [&'static str] {
        &["password"]
    }

    async fn open(&self, config: Value) -> Result<Arc<dyn Remote>> {
        let cfg: FtpConfig = parse_config(crate::TYPE_NAME, config)?;
        Ok(Arc::new(cfg.build().await?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The location of a URL's remote, with `home` as the login directory.
    fn loc(url: &str, home: &str) -> Location {
        let cfg = FtpConfig::from_url(&url::Url::parse(url).unwrap()).unwrap();
        let s = cfg.validate().unwrap();
        location(&s.host, s.port, &Paths::new(&s.root, home))
    }

    /// A password in the URL still reaches the login, although the config serialises it as
    /// `***`.
    #[test]
    fn url_password_survives_config_from_url() {
        let u = url::Url::parse("ftp://me:p%40ss@h/x").unwrap();
        let v = FtpFactory.config_from_url(&u).unwrap();
        assert_eq!(v["password"], "p@ss");
        let cfg: FtpConfig = parse_config(crate::TYPE_NAME, v).unwrap();
        assert_eq!(cfg.validate().unwrap().password, "p@ss");
        let v = FtpFactory
            .config_from_url(&url::Url::parse("ftp://me@h/x").unwrap())
            .unwrap();
        assert_eq!(v["password"], serde_json::Value::Null);
    }

    #[test]
    fn location_is_server_port_and_absolute_root() {
        let a = loc("ftp://nas/backup", "/home/me");
        // Same server and port: the scheme, the user, the host's case and the spelling of
        // the root do not matter.
        assert_eq!(a, loc("ftps://someone@NAS:21//home/me/backup/", "/"));
        assert_eq!(a, loc("ftp://nas:21/x/../backup", "/home/me"));
        assert_eq!(
            loc("ftps://nas/x?tls=implicit", "/"),
            loc("ftp://nas:990/x", "/")
        );
        assert!(a.contains(&loc("ftp://nas/backup/2024", "/home/me")));
        // Another port or host is another place.
        assert_ne!(a, loc("ftp://nas:2121/backup", "/home/me"));
        assert_ne!(a, loc("ftp://nas2/backup", "/home/me"));
        assert!(
            !loc("ftp://u:hunter2@nas/backup", "/")
                .to_string()
                .contains("hunter2")
        );
    }
}
