//! [`FtpConfig`]: the settings of an FTP or FTPS remote, their validation, and [`FtpFactory`],
//! the registry entry that opens them.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use std::sync::Arc;

use async_trait::async_trait;
use cloudsync_core::{BackendFactory, Error, ErrorKind, Remote, Result, Secret, parse_config};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::backend::FtpRemote;
use crate::core::FtpCore;

/// How the connection is encrypted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum Tls {
    /// Plain FTP: commands, password and data travel unencrypted.
    #[default]
    None,
    /// Explicit FTPS: connect in plain text, then `AUTH TLS` upgrades the control connection
    /// and `PROT P` protects every data connection (usually port 21).
    Explicit,
    /// Implicit FTPS: TLS from the first byte (usually port 990).
    Implicit,
}

/// Settings of an FTP or FTPS remote.
///
/// In a config file:
///
/// ```toml
/// [remotes.nas]
/// type = "ftp"
/// host = "nas.local"
/// user = "backup"
/// password_env = "NAS_FTP_PASSWORD"
/// tls = "explicit"
/// root = "/backups"
/// ```
///
/// or as a URL: `ftp://user@host:2121/dir` (plain) and `ftps://user@host/dir` (explicit TLS; add
/// `?tls=implicit` for implicit TLS). A password in a URL is refused (URLs end up in shell
/// history, logs and reports): name its variable instead, `ftp://user@host/dir?password_env=VAR`,
/// or set `password` in the config file.
///
/// ```no_run
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> cloudsync_core::Result<()> {
/// use cloudsync_ftp::{FtpConfig, Tls};
/// let remote = FtpConfig::new("ftp.example.com")
///     .with_user("backup")
///     .with_password_env("FTP_PASSWORD")
///     .with_tls(Tls::Explicit)
///     .with_root("/backups")
///     .build()
///     .await?;
/// # let _ = remote;
/// # Ok(())
/// # }
/// ```
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
#[non_exhaustive]
pub struct FtpConfig {
    /// Server host name or IP address (required).
    pub host: String,
    /// Control port; default 21, or 990 with implicit TLS.
    pub port: Option<u16>,
    /// User name; default `anonymous`.
    pub user: Option<String>,
    /// The password itself. Prefer [`FtpConfig::password_env`], which keeps it out of files.
    /// Read from a plain string; shown and serialised as `***` (see [`Secret`]).
    pub password: Option<Secret>,
    /// Name of the environment variable holding the password.
    pub password_env: Option<String>,
    /// Encryption: `none` (default), `explicit` or `implicit`.
    pub tls: Tls,
    /// A PEM file of extra certificates to trust (a private CA or a self-signed server
    /// certificate), in addition to the system's roots.
    pub ca_file: Option<PathBuf>,
    /// Accept any server certificate. Dangerous (anyone on the path can read and change the
    /// traffic); only for test servers. Off by default.
    pub no_check_certificate: bool,
    /// Most control connections open at once (each moves one file at a time); default 8.
    pub connections: usize,
    /// The directory on the server the remote is rooted at. An absolute path (`/srv/x`) or one
    /// relative to the login directory; default: the login directory.
    pub root: String,
    /// Seconds one protocol step (connect, a command's reply, one chunk of data) may take before
    /// the operation fails as a temporary error; default 60.
    pub timeout: u64,
    /// Workaround for servers whose `EPSV` is broken: use `PASV` only.
    pub disable_epsv: bool,
    /// Workaround for servers whose `MLSD` is broken: list with `LIST` only.
    pub disable_mlsd: bool,
}

impl Default for FtpConfig {
    fn default() -> Self {
        FtpConfig {
            host: String::new(),
            port: None,
            user: None,
            password: None,
            password_env: None,
            tls: Tls::None,
            ca_file: None,
            no_check_certificate: false,
            connections: 8,
            root: String::new(),
            timeout: 60,
            disable_epsv: false,
            disable_mlsd: false,
        }
    }
}

impl fmt::Debug for FtpConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FtpConfig")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("user", &self.user)
            .field("password_env", &self.password_env)
            .field("tls", &self.tls)
            .field("ca_file", &self.ca_file)
            .field("no_check_certificate", &self.no_check_certificate)
            .field("connections", &self.connections)
            .field("root", &self.root)
            .field("timeout", &self.timeout)
            .field("disable_epsv", &self.disable_epsv)
            .field("disable_mlsd", &self.disable_mlsd)
            .finish_non_exhaustive()
    }
}

/// Validated settings, with the password resolved.
#[derive(Clone)]
pub(crate) struct Settings {
    pub(crate) host: String,
    pub(crate) port: u16,
    pub(crate) user: String,
    pub(crate) password: String,
    pub(crate) tls: Tls,
    pub(crate) ca_file: Option<PathBuf>,
    pub(crate) no_check_certificate: bool,
    pub(crate) connections: usize,
    pub(crate) root: String,
    pub(crate) timeout: Duration,
    pub(crate) disable_epsv: bool,
    pub(crate) disable_mlsd: bool,
}

impl fmt::Debug for Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Settings")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("user", &self.user)
            .field("tls", &self.tls)
            .field("root", &self.root)
            .finish_non_exhaustive()
    }
}

fn invalid(msg: impl Into<String>) -> Error {
    Error::new(
        ErrorKind::ConfigInvalid,
        format!("ftp config: {}", msg.into()),
    )
}

impl FtpConfig {
    /// Settings for `host`, with every option at its default.
    pub fn new(host: impl Into<String>) -> Self {
        FtpConfig {
            host: host.into(),
            ..Default::default()
        }
    }

    /// Sets [`FtpConfig::port`].
    pub fn with_port(mut self, port: u16) -> Self {
        self.port = Some(port);
        self
    }

    /// Sets [`FtpConfig::user`].
    pub fn with_user(mut self, user: impl Into<String>) -> Self {
        self.user = Some(user.into());
        self
    }

    /// Sets [`FtpConfig::password`].
    pub fn with_password(mut self, password: impl Into<Secret>) -> Self {
        self.password = Some(password.into());
        self
    }

    /// Sets [`FtpConfig::password_env`].
    pub fn with_password_env(mut self, var: impl Into<String>) -> Self {
        self.password_env = Some(var.into());
        self
    }

    /// Sets [`FtpConfig::tls`].
    pub fn with_tls(mut self, tls: Tls) -> Self {
        self.tls = tls;
        self
    }

    /// Sets [`FtpConfig::ca_file`].
    pub fn with_ca_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.ca_file = Some(path.into());
        self
    }

    /// Sets [`FtpConfig::no_check_certificate`].
    pub fn with_no_check_certificate(mut self, yes: bool) -> Self {
        self.no_check_certificate = yes;
        self
    }

    /// Sets [`FtpConfig::connections`].
    pub fn with_connections(mut self, n: usize) -> Self {
        self.connections = n;
        self
    }

    /// Sets [`FtpConfig::root`].
    pub fn with_root(mut self, root: impl Into<String>) -> Self {
        self.root = root.into();
        self
    }

    /// Sets [`FtpConfig::timeout`] in seconds.
    pub fn with_timeout(mut self, seconds: u64) -> Self {
        self.timeout = seconds;
        self
    }

    /// Sets [`FtpConfig::disable_epsv`].
    pub fn with_disable_epsv(mut self, yes: bool) -> Self {
        self.disable_epsv = yes;
        self
    }

    /// Sets [`FtpConfig::disable_mlsd`].
    pub fn with_disable_mlsd(mut self, yes: bool) -> Self {
        self.disable_mlsd = yes;
        self
    }

    /// Validates the settings, connects and logs in once (to learn what the server supports),
    /// and returns the remote.
    ///
    /// Fails with [`ErrorKind::ConfigInvalid`] naming the key for bad settings, [`ErrorKind::Auth`]
    /// for a refused login or an untrusted certificate, and a temporary error when the server
    /// cannot be reached.
    pub async fn build(&self) -> Result<FtpRemote> {
        let settings = self.validate()?;
        Ok(FtpRemote::from_core(FtpCore::connect(settings).await?))
    }

    pub(crate) fn validate(&self) -> Result<Settings> {
        let host = self.host.trim();
        if host.is_empty() {
            return Err(invalid("key `host` is required"));
        }
        if host.contains(['/', ' ', '\r', '\n']) {
            return Err(invalid(format!("key `host`: {host:?} is not a host name")));
        }
        let password = match (&self.password, &self.password_env) {
            (Some(_), Some(_)) => {
                return Err(invalid(
                    "keys `password` and `password_env` are both set; keep one",
                ));
            }
            (Some(p), None) => p.expose().to_owned(),
            (None, Some(var)) => std::env::var(var).map_err(|_| {
                invalid(format!(
                    "key `password_env`: environment variable {var:?} is not set"
                ))
            })?,
            (None, None) => String::new(),
        };
        let user = self.user.clone().unwrap_or_else(|| "anonymous".to_owned());
        if user.is_empty() || user.contains(['\r', '\n']) || password.contains(['\r', '\n']) {
            return Err(invalid(
                "key `user` or the password is empty or has a line break",
            ));
        }
        if self.connections == 0 {
            return Err(invalid("key `connections` must be at least 1"));
        }
        if self.timeout == 0 {
            return Err(invalid("key `timeout` must be at least 1 (seconds)"));
        }
        if self.root.contains(['\r', '\n', '\0']) {
            return Err(invalid("key `root` contains a line break or NUL"));
        }
        if let Some(ca) = &self.ca_file {
            if self.tls == Tls::None {
                return Err(invalid(
                    "key `ca_file` needs `tls` = \"explicit\" or \"implicit\"",
                ));
            }
            if !ca.is_file() {
                return Err(invalid(format!(
                    "key `ca_file`: {} is not a readable file",
                    ca.display()
                )));
            }
        }
        let port = self.port.unwrap_or(match self.tls {
            Tls::Implicit => 990,
            _ => 21,
        });
        if port == 0 {
            return Err(invalid("key `port` must not be 0"));
        }
        Ok(Settings {
            host: host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_owned(),
            port,
            user,
            password,
            tls: self.tls,
            ca_file: self.ca_file.clone(),
            no_check_certificate: self.no_check_certificate,
            connections: self.connections,
            root: self.root.clone(),
            timeout: Duration::from_secs(self.timeout),
            disable_epsv: self.disable_epsv,
            disable_mlsd: self.disable_mlsd,
        })
    }

    /// The configuration a URL describes: `ftp://[user@]host[:port][/root]`, or `ftps://` for
    /// explicit TLS. Query keys set the other options
    /// (`?tls=implicit&password_env=VAR&no_check_certificate=true&connections=4&timeout=30`).
    ///
    /// A URL with a password (`ftp://user:password@host`) is refused with
    /// [`ErrorKind::ConfigInvalid`]: give it with `password_env` (or the config's `password`).
    pub fn from_url(url: &url::Url) -> Result<Self> {
        let mut cfg = FtpConfig::new(url.host_str().unwrap_or_default());
        cfg.tls = match url.scheme() {
            "ftp" => Tls::None,
            "ftps" => Tls::Explicit,
            other => return Err(invalid(format!("URL scheme {other:?} is not ftp or ftps"))),
        };
        cfg.port = url.port();
        let decode = |s: &str| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8()
                .map(|c| c.into_owned())
                .map_err(|_| invalid("URL user is not valid UTF-8"))
        };
        if url.password().is_some() {
            return Err(invalid(
                "a password in the URL is not accepted; use the config's `password_env` \
                 (`?password_env=VAR`) or `password` key",
            ));
        }
        if !url.username().is_empty() {
            cfg.user = Some(decode(url.username())?);
        }
        let path = percent_encoding::percent_decode_str(url.path())
            .decode_utf8()
            .map_err(|_| invalid("URL path is not valid UTF-8"))?;
        // `ftp://host/dir` is `dir` below the login directory, `ftp://host//srv` is `/srv`
        // (as in curl and RFC 1738).
        cfg.root = path.strip_prefix('/').unwrap_or(&path).to_owned();
        let flag = |k: &str, v: &str| cloudsync_core::query_flag("ftp", k, v);
        let number = |k: &str, v: &str| cloudsync_core::query_number("ftp", k, v);
        for (k, v) in url.query_pairs() {
            match &*k {
                "tls" => {
                    cfg.tls = match &*v {
                        "none" => Tls::None,
                        "explicit" => Tls::Explicit,
                        "implicit" => Tls::Implicit,
                        _ => {
                            return Err(invalid(format!(
                                "URL option `tls`: {v:?} is not none, explicit or implicit"
                            )));
                        }
                    }
                }
                "password_env" => cfg.password_env = Some(v.into_owned()),
                "ca_file" => cfg.ca_file = Some(PathBuf::from(&*v)),
                "no_check_certificate" => cfg.no_check_certificate = flag(&k, &v)?,
                "connections" => cfg.connections = number(&k, &v)? as usize,
                "timeout" => cfg.timeout = number(&k, &v)?,
                "disable_epsv" => cfg.disable_epsv = flag(&k, &v)?,
                "disable_mlsd" => cfg.disable_mlsd = flag(&k, &v)?,
                other => return Err(invalid(format!("unknown URL option `{other}`"))),
            }
        }
        Ok(cfg)
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
        serde_json::to_value(&cfg).map_err(|e| {
            Error::new(ErrorKind::ConfigInvalid, format!("ftp config: {e}")).with_source(e)
        })
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

    #[test]
    fn validation_names_the_key() {
        let e = FtpConfig::default().validate().unwrap_err();
        assert_eq!(e.kind(), ErrorKind::ConfigInvalid);
        assert!(e.message().contains("`host`"), "{e}");
        let e = FtpConfig::new("h")
            .with_connections(0)
            .validate()
            .unwrap_err();
        assert!(e.message().contains("`connections`"), "{e}");
        let e = FtpConfig::new("h")
            .with_password("a")
            .with_password_env("B")
            .validate()
            .unwrap_err();
        assert!(e.message().contains("`password_env`"), "{e}");
        let e = FtpConfig::new("h")
            .with_password_env("CLOUDSYNC_FTP_SURELY_UNSET_VAR")
            .validate()
            .unwrap_err();
        assert!(
            e.message().contains("CLOUDSYNC_FTP_SURELY_UNSET_VAR"),
            "{e}"
        );
        let e = FtpConfig::new("h")
            .with_ca_file("/x")
            .validate()
            .unwrap_err();
        assert!(e.message().contains("`ca_file`"), "{e}");
    }

    #[test]
    fn defaults() {
        let s = FtpConfig::new("h").validate().unwrap();
        assert_eq!(
            (s.port, s.user.as_str(), s.connections),
            (21, "anonymous", 8)
        );
        let s = FtpConfig::new("h")
            .with_tls(Tls::Implicit)
            .validate()
            .unwrap();
        assert_eq!(s.port, 990);
    }

    #[test]
    fn from_url() {
        let u = url::Url::parse(
            "ftps://me@example.com:2121/a%20b/c?connections=3&tls=implicit&password_env=P",
        )
        .unwrap();
        let c = FtpConfig::from_url(&u).unwrap();
        assert_eq!(c.host, "example.com");
        assert_eq!(c.port, Some(2121));
        assert_eq!(c.user.as_deref(), Some("me"));
        assert_eq!(c.password, None);
        assert_eq!(c.password_env.as_deref(), Some("P"));
        assert_eq!(c.root, "a b/c");
        assert_eq!(c.connections, 3);
        assert_eq!(c.tls, Tls::Implicit);
        let c = FtpConfig::from_url(&url::Url::parse("ftp://h//srv/x").unwrap()).unwrap();
        assert_eq!(c.root, "/srv/x");
        assert_eq!(c.tls, Tls::None);
        assert!(FtpConfig::from_url(&url::Url::parse("ftp://h/?bogus=1").unwrap()).is_err());
    }

    #[test]
    fn serde_rejects_unknown_keys() {
        let e = cloudsync_core::parse_config::<FtpConfig>(
            "ftp",
            serde_json::json!({"host": "h", "hots": 1}),
        )
        .unwrap_err();
        assert!(e.message().contains("unknown field `hots`"), "{e}");
        let c: FtpConfig = cloudsync_core::parse_config(
            "ftp",
            serde_json::json!({"host": "h", "tls": "explicit", "timeout": 5}),
        )
        .unwrap();
        assert_eq!((c.tls, c.timeout, c.connections), (Tls::Explicit, 5, 8));
    }

    /// The factory turns a URL into a config the registry opens; a URL with a password is
    /// refused there too.
    #[test]
    fn factory_config_from_url() {
        let v = FtpFactory
            .config_from_url(&url::Url::parse("ftp://me@h/x?password_env=P").unwrap())
            .unwrap();
        assert_eq!(v["user"], "me");
        assert_eq!(v["password"], Value::Null);
        assert_eq!(v["password_env"], "P");
        let cfg: FtpConfig = parse_config(crate::TYPE_NAME, v).unwrap();
        assert_eq!(cfg.root, "x");
        let e = FtpFactory
            .config_from_url(&url::Url::parse("ftp://me:p%40ss@h/x").unwrap())
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::ConfigInvalid);
    }

    /// A URL with a password is refused with a `ConfigInvalid` error that names the keys to
    /// use instead and does not repeat the password.
    #[test]
    fn url_passwords_are_refused() {
        for url in [
            "ftp://u:hunter2-ftp@h/x",
            "ftps://u:hunter2-ftp@h/x?password_env=P",
            "ftp://:hunter2-ftp@h",
        ] {
            let e = FtpConfig::from_url(&url::Url::parse(url).unwrap()).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::ConfigInvalid, "{url}");
            assert!(e.message().contains("`password_env`"), "{url}: {e}");
            assert!(e.message().contains("`password`"), "{url}: {e}");
            assert!(!e.to_string().contains("hunter2"), "{url}: {e}");
        }
    }

    /// The password is read from config files but never shown: not in `Debug`, not when the
    /// config is serialised (a saved report, `--dump` output).
    #[test]
    fn password_never_shown_or_serialised() {
        let from_file: FtpConfig = cloudsync_core::parse_config(
            "ftp",
            serde_json::json!({"host": "h", "user": "u", "password": "hunter2-ftp"}),
        )
        .unwrap();
        let built = FtpConfig::new("h").with_password("hunter2-ftp");
        for c in [&from_file, &built] {
            for shown in [
                format!("{c:?}"),
                format!("{c:#?}"),
                serde_json::to_string(c).unwrap(),
            ] {
                assert!(!shown.contains("hunter2"), "{shown}");
            }
            assert!(
                serde_json::to_string(c)
                    .unwrap()
                    .contains(r#""password":"***""#)
            );
            // What the login sends.
            assert_eq!(c.validate().unwrap().password, "hunter2-ftp");
        }
    }
}
