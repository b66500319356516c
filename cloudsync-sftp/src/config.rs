//! [`SftpConfig`]: the keys of an `sftp` remote, from a config file section or a URL, and
//! [`SftpFactory`], the registry entry that opens them.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use std::sync::Arc;

use async_trait::async_trait;
use cloudsync_core::deps::serde_json::Value;
use cloudsync_core::{
    BackendFactory, Error, ErrorKind, QueryKind, Remote, Result, Secret, parse_config,
};
use percent_encoding::percent_decode_str;
use serde::{Deserialize, Serialize};

use crate::backend::SftpRemote;
use crate::core::SftpCore;

/// Default number of SSH connections a remote keeps.
pub const DEFAULT_CONNECTIONS: usize = 8;
/// Default timeout (seconds) for connecting and for each SFTP request.
pub const DEFAULT_TIMEOUT_SECS: u64 = 60;

/// Configuration of an SFTP remote.
///
/// In a config file:
///
/// ```toml
/// [remotes.nas]
/// type = "sftp"
/// host = "nas.local"
/// user = "backup"
/// key_file = "~/.ssh/id_ed25519"
/// root = "backups"
/// ```
///
/// Secrets never appear in `Debug` output, and serialising the config writes `***` for the
/// password (see [`Secret`]). The keys are checked (and the secrets read from
/// the environment) when the remote is opened; a bad key is an `ErrorKind::ConfigInvalid`
/// error naming it.
#[derive(Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
#[non_exhaustive]
pub struct SftpConfig {
    /// Server name or address (required).
    pub host: String,
    /// TCP port (22).
    pub port: u16,
    /// Login name (default: the `USER` environment variable).
    pub user: Option<String>,
    /// Password, written in the config itself (prefer `password_env`). Read from a plain
    /// string; shown and serialised as `***`.
    pub password: Option<Secret>,
    /// Name of an environment variable holding the password.
    pub password_env: Option<String>,
    /// Private key file (OpenSSH or PEM format; ed25519, ecdsa or rsa). `~/` is expanded.
    /// Without one, `~/.ssh/id_ed25519`, `id_ecdsa` and `id_rsa` are tried when present.
    pub key_file: Option<String>,
    /// Name of an environment variable holding the private key's passphrase.
    pub key_passphrase_env: Option<String>,
    /// Try the keys of the ssh-agent at `SSH_AUTH_SOCK` (true).
    pub use_agent: bool,
    /// known_hosts file used to verify the server (default `~/.ssh/known_hosts`).
    pub known_hosts: Option<String>,
    /// Accept any host key without checking: only for throw-away test servers (false).
    pub insecure_accept_any_host_key: bool,
    /// Directory on the server that is this remote's root: absolute, or relative to the
    /// login directory (default: the login directory).
    pub root: String,
    /// SSH connections kept open; parallel transfers spread over them (8).
    pub connections: usize,
    /// Seconds allowed for connecting and for each SFTP request (60).
    pub timeout: u64,
    /// Compute MD5/SHA-1 by running `md5sum`/`sha1sum` on the server over SSH (false).
    pub shell_hashes: bool,
    /// Follow symbolic links: list what they point to and walk linked directories (rclone's
    /// `--copy-links`/`-L`). Off by default: links are skipped (logged at debug level) and
    /// never walked. A purge never follows links either way: it removes the link itself.
    pub follow_symlinks: bool,
}

impl Default for SftpConfig {
    fn default() -> Self {
        SftpConfig {
            host: String::new(),
            port: 22,
            user: None,
            password: None,
            password_env: None,
            key_file: None,
            key_passphrase_env: None,
            use_agent: true,
            known_hosts: None,
            insecure_accept_any_host_key: false,
            root: String::new(),
            connections: DEFAULT_CONNECTIONS,
            timeout: DEFAULT_TIMEOUT_SECS,
            shell_hashes: false,
            follow_symlinks: false,
        }
    }
}

impl fmt::Debug for SftpConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SftpConfig")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("user", &self.user)
            .field("password_env", &self.password_env)
            .field("key_file", &self.key_file)
            .field("key_passphrase_env", &self.key_passphrase_env)
            .field("use_agent", &self.use_agent)
            .field("known_hosts", &self.known_hosts)
            .field(
                "insecure_accept_any_host_key",
                &self.insecure_accept_any_host_key,
            )
            .field("root", &self.root)
            .field("connections", &self.connections)
            .field("timeout", &self.timeout)
            .field("shell_hashes", &self.shell_hashes)
            .field("follow_symlinks", &self.follow_symlinks)
            .finish_non_exhaustive()
    }
}

/// A validated configuration with secrets read from the environment.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub(crate) host: String,
    pub(crate) port: u16,
    pub(crate) user: String,
    pub(crate) password: Option<Secret>,
    /// Explicit key file (must exist), or the default identities to try.
    pub(crate) key_files: Vec<PathBuf>,
    pub(crate) key_file_explicit: bool,
    pub(crate) key_passphrase: Option<Secret>,
    pub(crate) use_agent: bool,
    pub(crate) known_hosts: Option<PathBuf>,
    pub(crate) insecure_accept_any_host_key: bool,
    pub(crate) root: String,
    pub(crate) connections: usize,
    pub(crate) timeout: Duration,
    pub(crate) shell_hashes: bool,
    pub(crate) follow_symlinks: bool,
}

fn invalid(key: &str, why: impl fmt::Display) -> Error {
    Error::new(
        ErrorKind::ConfigInvalid,
        format!("sftp config `{key}`: {why}"),
    )
}

fn home_dir() -> Option<PathBuf> {
    std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(PathBuf::from)
}

/// Expands a leading `~/` to the home directory.
fn expand_home(key: &str, path: &str) -> Result<PathBuf> {
    if path == "~" || path.starts_with("~/") {
        let home = home_dir().ok_or_else(|| invalid(key, "`~` used but HOME is not set"))?;
        Ok(home.join(path.trim_start_matches('~').trim_start_matches('/')))
    } else {
        Ok(PathBuf::from(path))
    }
}

fn env_secret(key: &str, var: &Option<String>) -> Result<Option<Secret>> {
    match var {
        None => Ok(None),
        Some(name) if name.is_empty() => Err(invalid(key, "empty variable name")),
        Some(name) => match std::env::var(name) {
            Ok(v) => Ok(Some(Secret::new(v))),
            Err(_) => Err(invalid(
                key,
                format!("environment variable {name} is not set (or not UTF-8)"),
            )),
        },
    }
}

impl SftpConfig {
    /// A configuration for `user@host` with every other key at its default.
    pub fn new(host: impl Into<String>, user: impl Into<String>) -> Self {
        SftpConfig {
            host: host.into(),
            user: Some(user.into()),
            ..Default::default()
        }
    }

    /// Sets the port.
    pub fn with_port(mut self, port: u16) -> Self {
        self.port = port;
        self
    }

    /// Sets the private key file.
    pub fn with_key_file(mut self, path: impl Into<String>) -> Self {
        self.key_file = Some(path.into());
        self
    }

    /// Sets the environment variable the password is read from.
    pub fn with_password_env(mut self, var: impl Into<String>) -> Self {
        self.password_env = Some(var.into());
        self
    }

    /// Sets the known_hosts file.
    pub fn with_known_hosts(mut self, path: impl Into<String>) -> Self {
        self.known_hosts = Some(path.into());
        self
    }

    /// Accepts any host key (test servers only).
    pub fn with_insecure_accept_any_host_key(mut self, yes: bool) -> Self {
        self.insecure_accept_any_host_key = yes;
        self
    }

    /// Sets the directory on the server that is the remote's root.
    pub fn with_root(mut self, root: impl Into<String>) -> Self {
        self.root = root.into();
        self
    }

    /// Sets the number of SSH connections.
    pub fn with_connections(mut self, n: usize) -> Self {
        self.connections = n;
        self
    }

    /// Sets whether to use the ssh-agent.
    pub fn with_use_agent(mut self, yes: bool) -> Self {
        self.use_agent = yes;
        self
    }

    /// Sets whether hashes are computed by running `md5sum`/`sha1sum` on the server.
    pub fn with_shell_hashes(mut self, yes: bool) -> Self {
        self.shell_hashes = yes;
        self
    }

    /// Sets [`SftpConfig::follow_symlinks`].
    pub fn with_follow_symlinks(mut self, yes: bool) -> Self {
        self.follow_symlinks = yes;
        self
    }

    /// Validates the keys, reads the secrets from the environment, connects (one connection,
    /// to report bad credentials or an unknown host key at once), resolves the root directory
    /// and returns the remote.
    pub async fn build(&self) -> Result<SftpRemote> {
        Ok(SftpRemote::from_core(
            SftpCore::connect(self.validate()?).await?,
        ))
    }

    /// Validates the keys and reads the secrets from the environment.
    pub(crate) fn validate(&self) -> Result<Settings> {
        let host = self.host.trim();
        if host.is_empty() {
            return Err(invalid("host", "missing"));
        }
        if host.contains(char::is_whitespace) || host.contains('/') {
            return Err(invalid("host", format!("{host:?} is not a host name")));
        }
        if self.port == 0 {
            return Err(invalid("port", "must be 1..65535"));
        }
        let user = match &self.user {
            Some(u) if u.is_empty() => return Err(invalid("user", "empty")),
            Some(u) => u.clone(),
            None => std::env::var("USER")
                .ok()
                .filter(|u| !u.is_empty())
                .ok_or_else(|| invalid("user", "missing (and USER is not set)"))?,
        };
        if self.password.is_some() && self.password_env.is_some() {
            return Err(invalid(
                "password",
                "set either `password` or `password_env`, not both",
            ));
        }
        let password = match &self.password {
            Some(p) => Some(p.clone()),
            None => env_secret("password_env", &self.password_env)?,
        };
        let key_passphrase = env_secret("key_passphrase_env", &self.key_passphrase_env)?;
        let (key_files, key_file_explicit) = match &self.key_file {
            Some(k) if k.is_empty() => return Err(invalid("key_file", "empty")),
            Some(k) => {
                let p = expand_home("key_file", k)?;
                if !p.is_file() {
                    return Err(invalid(
                        "key_file",
                        format!("{} is not a readable file", p.display()),
                    ));
                }
                (vec![p], true)
            }
            None => {
                let defaults = home_dir()
                    .map(|h| {
                        ["id_ed25519", "id_ecdsa", "id_rsa"]
                            .iter()
                            .map(|n| h.join(".ssh").join(n))
                            .filter(|p| p.is_file())
                            .collect()
                    })
                    .unwrap_or_default();
                (defaults, false)
            }
        };
        let known_hosts = match &self.known_hosts {
            Some(k) if k.is_empty() => return Err(invalid("known_hosts", "empty")),
            Some(k) => Some(expand_home("known_hosts", k)?),
            None => home_dir().map(|h| h.join(".ssh").join("known_hosts")),
        };
        if known_hosts.is_none() && !self.insecure_accept_any_host_key {
            return Err(invalid(
                "known_hosts",
                "not set and HOME is unknown; set `known_hosts` (or, for test servers only, \
                 `insecure_accept_any_host_key = true`)",
            ));
        }
        if self.connections == 0 || self.connections > 64 {
            return Err(invalid("connections", "must be 1..64"));
        }
        if self.timeout == 0 {
            return Err(invalid("timeout", "must be at least 1 second"));
        }
        if self.root.contains('\0') {
            return Err(invalid("root", "contains a NUL byte"));
        }
        Ok(Settings {
            host: host.to_owned(),
            port: self.port,
            user,
            password,
            key_files,
            key_file_explicit,
            key_passphrase,
            use_agent: self.use_agent,
            known_hosts,
            insecure_accept_any_host_key: self.insecure_accept_any_host_key,
            root: self.root.clone(),
            connections: self.connections,
            timeout: Duration::from_secs(self.timeout),
            shell_hashes: self.shell_hashes,
            follow_symlinks: self.follow_symlinks,
        })
    }

    /// The configuration object for `sftp://[user@]host[:port][/path][?key=value&...]`.
    ///
    /// The path is absolute on the server (`sftp://h/srv/data` is `/srv/data`) except below
    /// `/~/`, which is relative to the login directory; no path (or `/`) is the login directory
    /// and `//` is the server's `/`.
    /// Query parameters set the other keys: `key_file`, `known_hosts`, `password_env`,
    /// `key_passphrase_env`, `use_agent`, `insecure_accept_any_host_key`, `shell_hashes`,
    /// `follow_symlinks`, `connections`, `timeout`. A URL with a password is refused with
    /// [`ErrorKind::ConfigInvalid`]: give it with `password_env` (or the config's `password`).
    pub(crate) fn json_from_url(url: &url::Url) -> Result<serde_json::Value> {
        use serde_json::{Map, Value};
        let bad = |why: String| Error::new(ErrorKind::ConfigInvalid, format!("sftp URL: {why}"));
        let decode = |s: &str| -> Result<String> {
            percent_decode_str(s)
                .decode_utf8()
                .map(|c| c.into_owned())
                .map_err(|_| bad(format!("{s:?} is not UTF-8 once decoded")))
        };
        let mut obj = Map::new();
        let host = url
            .host_str()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| bad("missing host".into()))?;
        // IPv6 literals come bracketed.
        let host = host.trim_start_matches('[').trim_end_matches(']');
        obj.insert("host".into(), Value::String(host.to_owned()));
        if let Some(port) = url.port() {
            obj.insert("port".into(), Value::from(port));
        }
        if !url.username().is_empty() {
            obj.insert("user".into(), Value::String(decode(url.username())?));
        }
        if url.password().is_some() {
            return Err(bad(
                "a password in the URL is not accepted; use the config's `password_env` \
                 (`?password_env=VAR`) or `password` key"
                    .into(),
            ));
        }
        let path = decode(url.path())?;
        let root = if path.is_empty() || path == "/" || path == "/~" {
            String::new()
        } else if let Some(rel) = path.strip_prefix("/~/") {
            rel.to_owned()
        } else if path.starts_with("//") {
            path[1..].to_owned()
        } else {
            path
        };
        obj.insert("root".into(), Value::String(root));
        cloudsync_core::query_to_config(
            "sftp",
            url,
            &[
                ("key_file", QueryKind::Text),
                ("known_hosts", QueryKind::Text),
                ("password_env", QueryKind::Text),
                ("key_passphrase_env", QueryKind::Text),
                ("use_agent", QueryKind::Flag),
                ("insecure_accept_any_host_key", QueryKind::Flag),
                ("shell_hashes", QueryKind::Flag),
                ("follow_symlinks", QueryKind::Flag),
                ("connections", QueryKind::Number),
                ("timeout", QueryKind::Number),
            ],
            &mut obj,
        )?;
        Ok(Value::Object(obj))
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
        Ok(Arc::new(cfg.build().await?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn from_url(s: &str) -> serde_json::Value {
        SftpConfig::json_from_url(&url::Url::parse(s).unwrap()).unwrap()
    }

    #[test]
    fn url_forms() {
        let v = from_url(
            "sftp://me@example.com:2222/srv/data?use_agent=false&connections=3&password_env=P",
        );
        assert_eq!(v["host"], "example.com");
        assert_eq!(v["port"], 2222);
        assert_eq!(v["user"], "me");
        assert_eq!(v.get("password"), None);
        assert_eq!(v["password_env"], "P");
        assert_eq!(v["root"], "/srv/data");
        assert_eq!(v["use_agent"], false);
        assert_eq!(v["connections"], 3);
        assert_eq!(from_url("sftp://h/~/in%20box")["root"], "in box");
        assert_eq!(from_url("sftp://h")["root"], "");
        assert_eq!(from_url("sftp://h/")["root"], "");
        assert_eq!(from_url("sftp://h//")["root"], "/");
        let e =
            SftpConfig::json_from_url(&url::Url::parse("sftp://h/?bogus=1").unwrap()).unwrap_err();
        assert!(
            e.message().contains("unknown query parameter `bogus`"),
            "{e}"
        );
        let cfg: SftpConfig = cloudsync_core::parse_config("sftp", v).unwrap();
        assert_eq!(cfg.connections, 3);
    }

    #[test]
    fn build_names_the_key() {
        let e = SftpConfig::default().validate().unwrap_err();
        assert_eq!(e.kind(), ErrorKind::ConfigInvalid);
        assert!(e.message().contains("`host`"), "{e}");
        let mut c = SftpConfig::new("h", "u").with_insecure_accept_any_host_key(true);
        c.password = Some("x".into());
        c.password_env = Some("Y".into());
        assert!(c.validate().unwrap_err().message().contains("`password`"));
        let c = SftpConfig::new("h", "u")
            .with_insecure_accept_any_host_key(true)
            .with_password_env("CLOUDSYNC_SFTP_SURELY_UNSET_VAR");
        let e = c.validate().unwrap_err();
        assert!(
            e.message().contains("CLOUDSYNC_SFTP_SURELY_UNSET_VAR"),
            "{e}"
        );
        let c = SftpConfig::new("h", "u").with_key_file("/nonexistent/key");
        assert!(c.validate().unwrap_err().message().contains("`key_file`"));
        let c = SftpConfig::new("h", "u").with_connections(0);
        assert!(
            c.validate()
                .unwrap_err()
                .message()
                .contains("`connections`")
        );
    }

    #[test]
    fn debug_hides_password() {
        let mut c = SftpConfig::new("h", "u");
        c.password = Some("hunter2".into());
        assert!(!format!("{c:?}").contains("hunter2"));
    }

    /// A URL with a password is refused with a `ConfigInvalid` error that names the keys to
    /// use instead and does not repeat the password, through the factory too.
    #[test]
    fn url_passwords_are_refused() {
        for url in [
            "sftp://u:hunter2-sftp@h/x",
            "sftp://u:hunter2-sftp@h/x?password_env=P",
            "sftp://:hunter2-sftp@h",
        ] {
            let url = url::Url::parse(url).unwrap();
            for e in [
                SftpConfig::json_from_url(&url).unwrap_err(),
                SftpFactory.config_from_url(&url).unwrap_err(),
            ] {
                assert_eq!(e.kind(), ErrorKind::ConfigInvalid, "{url}");
                assert!(e.message().contains("`password_env`"), "{url}: {e}");
                assert!(e.message().contains("`password`"), "{url}: {e}");
                assert!(!e.to_string().contains("hunter2"), "{url}: {e}");
            }
        }
    }

    /// The password (from a file) and the key passphrase (from the environment) reach the
    /// login, but neither `Debug` nor serialisation shows them.
    #[test]
    fn secrets_never_shown_or_serialised() {
        let var = "CLOUDSYNC_SFTP_TEST_PASSPHRASE_SECRETS";
        // SAFETY: no other test uses this variable, and the unit tests of this crate read the
        // environment only through `std::env` (which locks it), never through C's `getenv`.
        unsafe { std::env::set_var(var, "hunter2-phrase") };
        let mut from_url: SftpConfig = serde_json::from_value(from_url("sftp://u@h/x")).unwrap();
        from_url.password = Some("hunter2-sftp".into());
        from_url.key_passphrase_env = Some(var.into());
        let from_file: SftpConfig = cloudsync_core::parse_config(
            "sftp",
            serde_json::json!({"host": "h", "user": "u", "password": "hunter2-sftp",
                               "key_passphrase_env": var}),
        )
        .unwrap();
        for c in [&from_url, &from_file] {
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
            let s = c.validate().unwrap();
            assert!(!format!("{s:?}").contains("hunter2"), "{s:?}");
            assert_eq!(
                s.password.as_ref().map(Secret::expose),
                Some("hunter2-sftp")
            );
            assert_eq!(
                s.key_passphrase.as_ref().map(Secret::expose),
                Some("hunter2-phrase")
            );
        }
    }
}
