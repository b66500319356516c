//! [`WebdavBackend`]: the builder and the [`Remote`] implementation, and the factories that
//! open `webdav` and `nextcloud` remotes from configuration.

use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use cloudsync_core::{
    BackendFactory, ByteStream, Capabilities, Entry, EntryStream, Error, ErrorKind, HashKind,
    Location, QueryKind, Remote, RemotePath, Result, WriteMeta, parse_config,
};
use serde_json::Value;

use crate::config::{NextcloudConfig, Validated, Vendor, WebdavConfig};
use crate::core::DavCore;

/// A WebDAV server (generic, Nextcloud or ownCloud) as a [`Remote`].
///
/// ```no_run
/// # async fn demo() -> cloudsync_core::Result<()> {
/// use cloudsync_core::Remote;
/// use cloudsync_webdav::{Vendor, WebdavBackend, WebdavConfig};
///
/// let remote = WebdavBackend::new(
///     WebdavConfig::new("https://cloud.example.com/remote.php/dav/files/alice/")
///         .with_vendor(Vendor::Nextcloud)
///         .with_user("alice", "NEXTCLOUD_APP_PASSWORD"),
/// )?;
/// assert!(remote.capabilities().write_modtime);
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct WebdavBackend {
    core: Arc<DavCore>,
    caps: Capabilities,
}

impl WebdavBackend {
    /// Validates `config` (reading secrets from the environment) and builds the remote.
    /// No request is sent until the remote is used.
    pub fn new(config: WebdavConfig) -> Result<Self> {
        Self::from_validated(config.validate()?)
    }

    /// Builds a remote from a `nextcloud` preset.
    pub fn nextcloud(config: NextcloudConfig) -> Result<Self> {
        Self::from_validated(config.validate()?)
    }

    fn from_validated(v: Validated) -> Result<Self> {
        let vendor = v.vendor;
        let has_dav_root = v.dav_root.is_some();
        let core = DavCore::new(v)?;
        let caps = match vendor {
            Vendor::Generic => Capabilities {
                modtime_precision: Some(Duration::from_secs(1)),
                copy: true,
                rename: true,
                purge: true,
                dirs: true,
                ..Default::default()
            },
            Vendor::Nextcloud | Vendor::Owncloud => Capabilities {
                hashes: vec![HashKind::Sha1, HashKind::Md5],
                modtime_precision: Some(Duration::from_secs(1)),
                write_modtime: true,
                copy: true,
                rename: true,
                purge: true,
                cleanup: has_dav_root,
                dirs: true,
                ..Default::default()
            },
        };
        Ok(WebdavBackend {
            core: Arc::new(core),
            caps,
        })
    }

    /// The server family this remote talks to.
    pub fn vendor(&self) -> Vendor {
        self.core.vendor
    }
}

#[async_trait]
impl Remote for WebdavBackend {
    fn describe(&self) -> String {
        self.core.describe.clone()
    }

    fn location(&self) -> Option<Location> {
        Some(self.core.location())
    }

    fn capabilities(&self) -> &Capabilities {
        &self.caps
    }

    async fn list(&self, dir: &RemotePath) -> Result<EntryStream> {
        self.core.list_dir(dir).await
    }

    async fn stat(&self, path: &RemotePath) -> Result<Entry> {
        self.core.stat_path(path).await
    }

    async fn read(&self, path: &RemotePath, range: Option<Range<u64>>) -> Result<ByteStream> {
        self.core.read_file(path, range).await
    }

    async fn write(&self, path: &RemotePath, body: ByteStream, meta: WriteMeta) -> Result<Entry> {
        self.core.write_file(path, body, meta).await
    }

    async fn mkdir(&self, dir: &RemotePath) -> Result<()> {
        self.core.mkdir_all(dir, true).await
    }

    async fn remove_file(&self, path: &RemotePath) -> Result<()> {
        self.core.remove_file_at(path).await
    }

    async fn remove_dir(&self, dir: &RemotePath) -> Result<()> {
        self.core.remove_dir_at(dir).await
    }

    async fn copy(&self, from: &RemotePath, to: &RemotePath) -> Result<Entry> {
        self.core.transfer("COPY", from, to).await
    }

    async fn rename(&self, from: &RemotePath, to: &RemotePath) -> Result<Entry> {
        self.core.transfer("MOVE", from, to).await
    }

    async fn hash(&self, path: &RemotePath, kind: HashKind) -> Result<String> {
        if self.core.is_oc() {
            let e = self.core.stat_path(path).await?;
            if let Some(h) = e.hashes.get(kind) {
                return Ok(h.to_owned());
            }
        }
        // No stored checksum: hash the content.
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

    async fn purge(&self, dir: &RemotePath) -> Result<()> {
        self.core.purge_dir(dir).await
    }

    async fn cleanup(&self) -> Result<()> {
        if !self.caps.cleanup {
            return Err(self.unsupported("cleanup"));
        }
        self.core.cleanup_oc().await
    }
}

/// Opens `type = "webdav"` remotes and `webdav://` (HTTP) / `webdavs://` (HTTPS) URLs.
///
/// A URL is `webdavs://user@host:port/path?vendor=nextcloud&password_env=VAR`; the query keys
/// are `vendor`, `password_env`, `bearer_token_env`, `chunk_size`, `timeout` and
/// `no_check_certificate`.
#[derive(Debug, Clone, Copy, Default)]
pub struct WebdavFactory;

#[async_trait]
impl BackendFactory for WebdavFactory {
    fn type_name(&self) -> &'static str {
        "webdav"
    }

    fn url_schemes(&self) -> &'static [&'static str] {
        &["webdav", "webdavs"]
    }

    fn config_from_url(&self, url: &url::Url) -> Result<Value> {
        let scheme = if url.scheme() == "webdavs" {
            "https"
        } else {
            "http"
        };
        let host = url
            .host_str()
            .ok_or_else(|| Error::new(ErrorKind::ConfigInvalid, format!("no host in {url}")))?;
        let mut http = format!("{scheme}://{host}");
        if let Some(port) = url.port() {
            http.push_str(&format!(":{port}"));
        }
        http.push_str(url.path());
        let mut cfg = serde_json::Map::new();
        cfg.insert("url".into(), Value::String(http));
        if !url.username().is_empty() {
            let user = percent_encoding::percent_decode_str(url.username())
                .decode_utf8_lossy()
                .into_owned();
            cfg.insert("user".into(), Value::String(user));
        }
        if url.password().is_some() {
            return Err(Error::new(
                ErrorKind::ConfigInvalid,
                "webdav URL: do not put a password in the URL; use ?password_env=VAR",
            ));
        }
        cloudsync_core::query_to_config(
            "webdav",
            url,
            &[
                ("vendor", QueryKind::Text),
                ("password_env", QueryKind::Text),
                ("bearer_token_env", QueryKind::Text),
                ("chunk_size", QueryKind::Number),
                ("timeout", QueryKind::Number),
                ("no_check_certificate", QueryKind::Flag),
            ],
            &mut cfg,
        )?;
        Ok(Value::Object(cfg))
    }

    fn secret_keys(&self) -> &'static [&'static str] {
        &["password"]
    }

    async fn open(&self, config: Value) -> Result<Arc<dyn Remote>> {
        let cfg: WebdavConfig = parse_config("webdav", config)?;
        Ok(Arc::new(WebdavBackend::new(cfg)?))
    }
}

/// Opens `type = "nextcloud"` remotes: `url` (the server), `user`, `password_env`, optional
/// `root`; the WebDAV URLs are derived (see [`NextcloudConfig`]).
#[derive(Debug, Clone, Copy, Default)]
pub struct NextcloudFactory;

#[async_trait]
impl BackendFactory for NextcloudFactory {
    fn type_name(&self) -> &'static str {
        "nextcloud"
    }

    fn secret_keys(&self) -> &'static [&'static str] {
        &["password"]
    }

    async fn open(&self, config: Value) -> Result<Arc<dyn Remote>> {
        let cfg: NextcloudConfig = parse_config("nextcloud", config)?;
        Ok(Arc::new(WebdavBackend::nextcloud(cfg)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_become_configs() {
        let u =
            url::Url::parse("webdavs://me@dav.example:8443/a%20b/?vendor=nextcloud&password_env=P")
                .unwrap();
        let v = WebdavFactory.config_from_url(&u).unwrap();
        assert_eq!(v["url"], "https://dav.example:8443/a%20b/");
        assert_eq!(v["user"], "me");
        assert_eq!(v["vendor"], "nextcloud");
        assert_eq!(v["password_env"], "P");
        let u = url::Url::parse("webdav://h/x?bogus=1").unwrap();
        assert!(WebdavFactory.config_from_url(&u).is_err());
        let u = url::Url::parse("webdav://u:secret@h/x").unwrap();
        assert!(WebdavFactory.config_from_url(&u).is_err());
    }

    #[tokio::test]
    async fn factory_rejects_unknown_keys() {
        let e = WebdavFactory
            .open(serde_json::json!({"url": "http://h/", "colour": "red"}))
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::ConfigInvalid);
        assert!(e.to_string().contains("colour"), "{e}");
    }

    #[test]
    fn location_fills_the_port_and_decodes_the_path() {
        let loc = |url: &str| {
            WebdavBackend::new(WebdavConfig::new(url))
                .unwrap()
                .location()
        };
        let a = loc("http://dav.example/a%20b/dav");
        assert!(a.is_some());
        assert_eq!(a, loc("http://DAV.example:80/a b/dav/"));
        assert_eq!(a, loc("http://dav.example/a%20b/x/../dav"));
        let inner = loc("http://dav.example/a%20b/dav/sub").unwrap();
        assert!(a.as_ref().unwrap().contains(&inner));
        assert_ne!(a, loc("http://dav.example:8080/a%20b/dav"));
        assert_ne!(a, loc("https://dav.example/a%20b/dav"));
        assert_ne!(a, loc("http://other.example/a%20b/dav"));
        assert_eq!(
            loc("https://dav.example/x"),
            loc("https://dav.example:443/x")
        );
        let with_user = WebdavBackend::new(
            WebdavConfig::new("http://dav.example/a%20b/dav").with_password("me", "hunter2"),
        )
        .unwrap()
        .location();
        assert_eq!(with_user, a);
        assert!(!with_user.unwrap().to_string().contains("hunter2"));
    }

    #[test]
    fn describe_has_no_secrets() {
        let b = WebdavBackend::new(
            WebdavConfig::new("http://127.0.0.1:8080/dav/").with_password("me", "hunter2"),
        )
        .unwrap();
        assert_eq!(b.describe(), "webdav://me@127.0.0.1:8080/dav");
        assert!(!format!("{b:?}").contains("hunter2"));
    }
}
