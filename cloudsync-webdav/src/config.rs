//! Configuration of the `webdav` and `nextcloud` remote types, and the factories that open them
//! from the registry ([`WebdavFactory`], [`NextcloudFactory`]).

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use std::sync::Arc;

use async_trait::async_trait;
use cloudsync_core::{
    BackendFactory, Error, ErrorKind, QueryKind, Remote, Result, Secret, parse_config,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::backend::WebdavRemote;
use crate::core::WebdavCore;

/// Default size above which Nextcloud/ownCloud uploads are chunked (10 MiB).
pub const DEFAULT_CHUNK_SIZE: u64 = 10 * 1024 * 1024;

/// Smallest chunk Nextcloud's chunking v2 accepts (except for the last chunk): 5 MiB.
pub const MIN_CHUNK_SIZE: u64 = 5 * 1024 * 1024;

/// Default idle timeout of one request, in seconds.
pub const DEFAULT_TIMEOUT_SECS: u64 = 300;

/// Which server family a WebDAV remote talks to; it selects the protocol extensions used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum Vendor {
    /// A plain RFC 4918 server (Apache mod_dav, nginx, IIS, rclone serve webdav, ...): modtimes
    /// cannot be set, uploads go to a hidden temp name and are moved into place.
    #[default]
    Generic,
    /// Nextcloud: `X-OC-Mtime`, `OC-Checksum`/`oc:checksums`, chunking v2, trash bin, versions.
    Nextcloud,
    /// ownCloud: `X-OC-Mtime`, `OC-Checksum`/`oc:checksums`, trash bin (uploads are not chunked).
    Owncloud,
}

impl Vendor {
    /// Whether the server speaks the ownCloud extensions Nextcloud inherited.
    pub fn is_oc(self) -> bool {
        matches!(self, Vendor::Nextcloud | Vendor::Owncloud)
    }

    /// The lowercase config name.
    pub fn as_str(self) -> &'static str {
        match self {
            Vendor::Generic => "generic",
            Vendor::Nextcloud => "nextcloud",
            Vendor::Owncloud => "owncloud",
        }
    }
}

/// Configuration of a `webdav` remote.
///
/// ```
/// use cloudsync_webdav::WebdavConfig;
/// let cfg: WebdavConfig = serde_json::from_value(serde_json::json!({
///     "url": "https://dav.example.com/files/",
///     "user": "me",
///     "password_env": "DAV_PASSWORD",
/// }))?;
/// assert_eq!(cfg.url, "https://dav.example.com/files/");
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
#[non_exhaustive]
pub struct WebdavConfig {
    /// The collection that is the remote's root (`http://` or `https://`).
    pub url: String,
    /// Server family (`generic`, `nextcloud`, `owncloud`).
    pub vendor: Vendor,
    /// User name for HTTP Basic authentication.
    pub user: Option<String>,
    /// Name of the environment variable holding the password (or app password).
    pub password_env: Option<String>,
    /// The password itself (prefer `password_env`). Read from a plain string; shown and
    /// serialised as `***` (see [`Secret`]).
    pub password: Option<Secret>,
    /// Name of the environment variable holding a bearer token (instead of Basic auth).
    pub bearer_token_env: Option<String>,
    /// Files larger than this are uploaded in chunks (Nextcloud only), and resumable uploads to
    /// a generic server that takes ranged `PUT` go in ranged `PUT`s: streamed, from this size
    /// doubling up to 8 times it, when the file's size is known (the engine's transfers);
    /// else of this size, two of them held in memory (the one sent and the next). At least
    /// 5 MiB.
    pub chunk_size: u64,
    /// A PEM file of extra CA certificates to trust (for self-signed servers).
    pub ca_file: Option<PathBuf>,
    /// Skip TLS certificate verification (only for testing: anyone can intercept the traffic).
    pub no_check_certificate: bool,
    /// Seconds a request may stay idle (no bytes moving) before it fails.
    pub timeout: u64,
}

impl Default for WebdavConfig {
    fn default() -> Self {
        WebdavConfig {
            url: String::new(),
            vendor: Vendor::Generic,
            user: None,
            password_env: None,
            password: None,
            bearer_token_env: None,
            chunk_size: DEFAULT_CHUNK_SIZE,
            ca_file: None,
            no_check_certificate: false,
            timeout: DEFAULT_TIMEOUT_SECS,
        }
    }
}

impl fmt::Debug for WebdavConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebdavConfig")
            .field("url", &self.url)
            .field("vendor", &self.vendor)
            .field("user", &self.user)
            .field("password_env", &self.password_env)
            .field("bearer_token_env", &self.bearer_token_env)
            .field("chunk_size", &self.chunk_size)
            .field("ca_file", &self.ca_file)
            .field("no_check_certificate", &self.no_check_certificate)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// How requests authenticate.
#[derive(Clone, PartialEq, Eq)]
pub(crate) enum Auth {
    None,
    Basic { user: String, password: String },
    Bearer(String),
}

impl fmt::Debug for Auth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Auth::None => f.write_str("None"),
            Auth::Basic { user, .. } => write!(f, "Basic({user})"),
            Auth::Bearer(_) => f.write_str("Bearer"),
        }
    }
}

/// A validated configuration: everything [`crate::WebdavRemote`] needs.
#[derive(Debug, Clone)]
pub(crate) struct Validated {
    pub(crate) url: url::Url,
    pub(crate) vendor: Vendor,
    pub(crate) auth: Auth,
    pub(crate) chunk_size: u64,
    pub(crate) ca_file: Option<PathBuf>,
    pub(crate) no_check_certificate: bool,
    pub(crate) timeout: Duration,
    /// The Nextcloud/ownCloud user id and the server's `remote.php/dav/` URL, when derivable.
    pub(crate) dav_root: Option<(String, url::Url)>,
}

fn invalid(key: &str, why: impl fmt::Display) -> Error {
    Error::new(
        ErrorKind::ConfigInvalid,
        format!("webdav config `{key}`: {why}"),
    )
}

fn env_secret(key: &str, var: &str) -> Result<String> {
    std::env::var(var).map_err(|_| invalid(key, format!("environment variable {var} is not set")))
}

impl WebdavConfig {
    /// A config for `url` with everything else at its default.
    pub fn new(url: impl Into<String>) -> Self {
        WebdavConfig {
            url: url.into(),
            ..Default::default()
        }
    }

    /// Sets the server family.
    pub fn with_vendor(mut self, vendor: Vendor) -> Self {
        self.vendor = vendor;
        self
    }

    /// Sets the user and the environment variable holding the password.
    pub fn with_user(mut self, user: impl Into<String>, password_env: impl Into<String>) -> Self {
        self.user = Some(user.into());
        self.password_env = Some(password_env.into());
        self
    }

    /// Sets the user and the password itself.
    pub fn with_password(mut self, user: impl Into<String>, password: impl Into<Secret>) -> Self {
        self.user = Some(user.into());
        self.password = Some(password.into());
        self
    }

    /// Sets the chunk size for chunked uploads.
    pub fn with_chunk_size(mut self, chunk_size: u64) -> Self {
        self.chunk_size = chunk_size;
        self
    }

    /// Disables TLS certificate verification (tests only).
    pub fn with_no_check_certificate(mut self, yes: bool) -> Self {
        self.no_check_certificate = yes;
        self
    }

    /// Validates the configuration (reading secrets from the environment) and builds the
    /// remote. No request is sent until the remote is used.
    pub fn build(&self) -> Result<WebdavRemote> {
        Ok(WebdavRemote::from_core(WebdavCore::new(self.validate()?)?))
    }

    /// Checks the configuration and resolves secrets from the environment.
    pub(crate) fn validate(&self) -> Result<Validated> {
        if self.url.is_empty() {
            return Err(invalid("url", "missing"));
        }
        let mut url = url::Url::parse(&self.url).map_err(|e| invalid("url", e))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(invalid("url", "scheme must be http or https"));
        }
        if url.host_str().is_none() {
            return Err(invalid("url", "no host"));
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err(invalid("url", "must not have a query or fragment"));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(invalid(
                "url",
                "put the user in `user` and the password in `password_env` (or `password`), not in \
                 the URL",
            ));
        }
        if !url.path().ends_with('/') {
            let p = format!("{}/", url.path());
            url.set_path(&p);
        }
        if self.chunk_size < MIN_CHUNK_SIZE {
            return Err(invalid(
                "chunk_size",
                format!("must be at least {MIN_CHUNK_SIZE} bytes (5 MiB)"),
            ));
        }
        if self.timeout == 0 {
            return Err(invalid("timeout", "must be at least 1 second"));
        }
        if self.password.is_some() && self.password_env.is_some() {
            return Err(invalid(
                "password",
                "set `password` or `password_env`, not both",
            ));
        }
        let auth = match (&self.bearer_token_env, &self.user) {
            (Some(_), Some(_)) => {
                return Err(invalid(
                    "bearer_token_env",
                    "set `bearer_token_env` or `user`, not both",
                ));
            }
            (Some(var), None) => Auth::Bearer(env_secret("bearer_token_env", var)?),
            (None, Some(user)) => {
                let password = match (&self.password, &self.password_env) {
                    (Some(p), _) => p.expose().to_owned(),
                    (None, Some(var)) => env_secret("password_env", var)?,
                    (None, None) => String::new(),
                };
                Auth::Basic {
                    user: user.clone(),
                    password,
                }
            }
            (None, None) => {
                if self.password.is_some() || self.password_env.is_some() {
                    return Err(invalid("user", "a password is set but no user"));
                }
                Auth::None
            }
        };
        if let Some(ca) = &self.ca_file
            && !ca.is_file()
        {
            return Err(invalid(
                "ca_file",
                format!("{} is not a file", ca.display()),
            ));
        }
        let dav_root = if self.vendor.is_oc() {
            nextcloud_dav_root(&url)
        } else {
            None
        };
        Ok(Validated {
            url,
            vendor: self.vendor,
            auth,
            chunk_size: self.chunk_size,
            ca_file: self.ca_file.clone(),
            no_check_certificate: self.no_check_certificate,
            timeout: Duration::from_secs(self.timeout),
            dav_root,
        })
    }
}

/// For a URL `…/remote.php/dav/files/USER/…`, the user id and the `…/remote.php/dav/` URL.
fn nextcloud_dav_root(url: &url::Url) -> Option<(String, url::Url)> {
    let path = url.path();
    let marker = "/remote.php/dav/files/";
    let at = path.find(marker)?;
    let rest = &path[at + marker.len()..];
    let user_enc = rest.split('/').next().filter(|u| !u.is_empty())?;
    let user = percent_encoding::percent_decode_str(user_enc)
        .decode_utf8()
        .ok()?
        .into_owned();
    let mut root = url.clone();
    root.set_path(&path[..at + "/remote.php/dav/".len()]);
    Some((user, root))
}

/// Configuration of a `nextcloud` remote: the server's address and an account; the WebDAV
/// paths (`remote.php/dav/files/USER/`) are derived.
///
/// ```
/// use cloudsync_webdav::NextcloudConfig;
/// let cfg: NextcloudConfig = serde_json::from_value(serde_json::json!({
///     "url": "https://cloud.example.com",
///     "user": "alice",
///     "password_env": "NEXTCLOUD_APP_PASSWORD",
///     "root": "Backups/camera",
/// }))?;
/// assert_eq!(
///     cfg.to_webdav().url,
///     "https://cloud.example.com/remote.php/dav/files/alice/Backups/camera/"
/// );
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
#[non_exhaustive]
pub struct NextcloudConfig {
    /// The server's base address (`https://cloud.example.com`, or with a sub-path).
    pub url: String,
    /// The user id (login name).
    pub user: String,
    /// Name of the environment variable holding the password or app password.
    pub password_env: Option<String>,
    /// The password itself (prefer `password_env`). Read from a plain string; shown and
    /// serialised as `***` (see [`Secret`]).
    pub password: Option<Secret>,
    /// A folder below the user's files to use as the remote's root.
    pub root: String,
    /// `nextcloud` (default) or `owncloud`.
    pub vendor: Vendor,
    /// See [`WebdavConfig::chunk_size`].
    pub chunk_size: u64,
    /// See [`WebdavConfig::ca_file`].
    pub ca_file: Option<PathBuf>,
    /// See [`WebdavConfig::no_check_certificate`].
    pub no_check_certificate: bool,
    /// See [`WebdavConfig::timeout`].
    pub timeout: u64,
}

impl Default for NextcloudConfig {
    fn default() -> Self {
        NextcloudConfig {
            url: String::new(),
            user: String::new(),
            password_env: None,
            password: None,
            root: String::new(),
            vendor: Vendor::Nextcloud,
            chunk_size: DEFAULT_CHUNK_SIZE,
            ca_file: None,
            no_check_certificate: false,
            timeout: DEFAULT_TIMEOUT_SECS,
        }
    }
}

impl fmt::Debug for NextcloudConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NextcloudConfig")
            .field("url", &self.url)
            .field("user", &self.user)
            .field("password_env", &self.password_env)
            .field("root", &self.root)
            .field("vendor", &self.vendor)
            .field("chunk_size", &self.chunk_size)
            .field("ca_file", &self.ca_file)
            .field("no_check_certificate", &self.no_check_certificate)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

const SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Percent-encodes one path segment for a URL.
pub(crate) fn encode_segment(s: &str) -> percent_encoding::PercentEncode<'_> {
    percent_encoding::utf8_percent_encode(s, SEGMENT)
}

impl NextcloudConfig {
    /// The equivalent `webdav` configuration (the root folder's WebDAV URL, vendor set).
    pub fn to_webdav(&self) -> WebdavConfig {
        let mut url = self.url.trim_end_matches('/').to_owned();
        url.push_str("/remote.php/dav/files/");
        url.push_str(&encode_segment(&self.user).to_string());
        url.push('/');
        for seg in self.root.split('/').filter(|s| !s.is_empty()) {
            url.push_str(&encode_segment(seg).to_string());
            url.push('/');
        }
        WebdavConfig {
            url,
            vendor: self.vendor,
            user: Some(self.user.clone()),
            password_env: self.password_env.clone(),
            password: self.password.clone(),
            bearer_token_env: None,
            chunk_size: self.chunk_size,
            ca_file: self.ca_file.clone(),
            no_check_certificate: self.no_check_certificate,
            timeout: self.timeout,
        }
    }

    /// Validates the preset (reading secrets from the environment) and builds the remote.
    pub fn build(&self) -> Result<WebdavRemote> {
        Ok(WebdavRemote::from_core(WebdavCore::new(self.validate()?)?))
    }

    /// Checks the keys this preset adds, then the derived `webdav` configuration.
    pub(crate) fn validate(&self) -> Result<Validated> {
        if self.url.is_empty() {
            return Err(invalid("url", "missing (the server's address)"));
        }
        if self.user.is_empty() {
            return Err(invalid("user", "missing"));
        }
        if !self.vendor.is_oc() {
            return Err(invalid(
                "vendor",
                "a nextcloud remote is `nextcloud` or `owncloud`",
            ));
        }
        if self.url.contains("/remote.php/") {
            return Err(invalid(
                "url",
                "give the server's address; the remote.php/dav paths are derived",
            ));
        }
        cloudsync_core::RemotePath::new(self.root.trim_matches('/'))
            .map_err(|e| invalid("root", e.message()))?;
        self.to_webdav().validate()
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
                "webdav URL: a password in the URL is not accepted; use the config's \
                 `password_env` (`?password_env=VAR`) or `password` key",
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
        Ok(Arc::new(cfg.build()?))
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
        Ok(Arc::new(cfg.build()?))
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
    }

    /// A URL with a password is refused with a `ConfigInvalid` error that names the keys to
    /// use instead and does not repeat the password.
    #[test]
    fn url_passwords_are_refused() {
        for url in [
            "webdav://u:hunter2-dav@h/x",
            "webdavs://u:hunter2-dav@h/x?password_env=P",
            "webdav://:hunter2-dav@h",
        ] {
            let u = url::Url::parse(url).unwrap();
            let e = WebdavFactory.config_from_url(&u).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::ConfigInvalid, "{url}");
            assert!(e.message().contains("`password_env`"), "{url}: {e}");
            assert!(e.message().contains("`password`"), "{url}: {e}");
            assert!(!e.to_string().contains("hunter2"), "{url}: {e}");
        }
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
    fn validates_and_names_the_key() {
        let e = WebdavConfig::default().validate().unwrap_err();
        assert_eq!(e.kind(), ErrorKind::ConfigInvalid);
        assert!(e.message().contains("`url`"), "{e}");
        let e = WebdavConfig::new("ftp://x/").validate().unwrap_err();
        assert!(e.message().contains("scheme"), "{e}");
        let e = WebdavConfig::new("http://x/")
            .with_chunk_size(10)
            .validate()
            .unwrap_err();
        assert!(e.message().contains("`chunk_size`"), "{e}");
        let e = WebdavConfig::new("http://x/")
            .with_user("u", "CLOUDSYNC_TEST_SURELY_UNSET_VAR")
            .validate()
            .unwrap_err();
        assert!(
            e.message().contains("CLOUDSYNC_TEST_SURELY_UNSET_VAR"),
            "{e}"
        );
        let v = WebdavConfig::new("http://x/a").validate().unwrap();
        assert_eq!(v.url.as_str(), "http://x/a/");
        assert_eq!(v.auth, Auth::None);
    }

    #[test]
    fn debug_hides_secrets() {
        let c = WebdavConfig::new("http://x/").with_password("u", "hunter2");
        assert!(!format!("{c:?}").contains("hunter2"));
        let v = c.validate().unwrap();
        assert!(!format!("{v:?}").contains("hunter2"));
    }

    /// Neither `Debug` nor serialisation of either config shows the password; the request
    /// still authenticates with it.
    #[test]
    fn password_never_shown_or_serialised() {
        let dav: WebdavConfig = cloudsync_core::parse_config(
            "webdav",
            serde_json::json!({"url": "http://x/", "user": "u", "password": "hunter2-dav"}),
        )
        .unwrap();
        let built = WebdavConfig::new("http://x/").with_password("u", "hunter2-dav");
        let nc: NextcloudConfig = cloudsync_core::parse_config(
            "nextcloud",
            serde_json::json!({"url": "http://x/", "user": "u", "password": "hunter2-dav"}),
        )
        .unwrap();
        let derived = nc.to_webdav();
        let shown = [
            format!("{dav:?}"),
            format!("{built:#?}"),
            format!("{nc:?}"),
            format!("{nc:#?}"),
            format!("{derived:?}"),
            serde_json::to_string(&dav).unwrap(),
            serde_json::to_string(&built).unwrap(),
            serde_json::to_string(&nc).unwrap(),
            serde_json::to_string(&derived).unwrap(),
        ];
        for s in &shown {
            assert!(!s.contains("hunter2"), "{s}");
        }
        assert!(shown[5].contains(r#""password":"***""#), "{}", shown[5]);
        let basic = Auth::Basic {
            user: "u".into(),
            password: "hunter2-dav".into(),
        };
        assert_eq!(dav.validate().unwrap().auth, basic);
        assert_eq!(built.validate().unwrap().auth, basic);
        assert_eq!(nc.validate().unwrap().auth, basic);
    }

    #[test]
    fn nextcloud_paths_are_derived() {
        let n = NextcloudConfig {
            url: "https://c.example/nc/".into(),
            user: "a b".into(),
            password: Some("p".into()),
            ..Default::default()
        };
        let v = n.validate().unwrap();
        assert_eq!(
            v.url.as_str(),
            "https://c.example/nc/remote.php/dav/files/a%20b/"
        );
        let (user, root) = v.dav_root.unwrap();
        assert_eq!(user, "a b");
        assert_eq!(root.as_str(), "https://c.example/nc/remote.php/dav/");
        let bad = NextcloudConfig {
            root: "../x".into(),
            ..n
        };
        assert!(bad.validate().unwrap_err().message().contains("`root`"));
    }
}
