//! The remote registry: backend type names and URL schemes mapped to factories, and the TOML
//! configuration file that names remotes.
//!
//! This is the plugin point. Each backend crate exposes a [`BackendFactory`]; an application
//! (or the `cloudsync` facade crate) registers the ones it wants, and a downstream crate can
//! register its own.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::Value;

use crate::bwlimit::BandwidthLimiter;
use crate::error::{Error, ErrorKind, Result};
use crate::layers::{ErrorContext, LayerOptions, Stack};
use crate::objstore::{memory, memory_named_at};
use crate::path::RemotePath;
use crate::prefix::Prefix;
use crate::remote::Remote;
use crate::secret::{REDACTED, redact_location};

#[cfg(feature = "rclone")]
pub mod rclone;

/// Builds remotes of one backend type from configuration.
///
/// A backend's configuration is a JSON object (a TOML table from the config file, or what
/// [`BackendFactory::config_from_url`] derives from a URL). The backend deserialises it into its
/// own config struct, rejecting unknown keys, and validates it.
#[async_trait]
pub trait BackendFactory: Send + Sync {
    /// The `type = "..."` name in config files (`"sftp"`).
    fn type_name(&self) -> &'static str;

    /// URL schemes this backend opens (`["sftp"]`); may be empty.
    fn url_schemes(&self) -> &'static [&'static str] {
        &[]
    }

    /// Turns a URL of one of [`BackendFactory::url_schemes`] into a configuration object.
    fn config_from_url(&self, url: &url::Url) -> Result<Value> {
        Err(Error::new(
            ErrorKind::ConfigInvalid,
            format!(
                "backend {} cannot be opened from a URL ({})",
                self.type_name(),
                redact_location(url.as_str())
            ),
        ))
    }

    /// Config keys whose values are secrets (masked when configuration is shown).
    fn secret_keys(&self) -> &'static [&'static str] {
        &[]
    }

    /// Opens a remote from a configuration object.
    async fn open(&self, config: Value) -> Result<Arc<dyn Remote>>;
}

/// Where a remote comes from, as written on a command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RemoteSpec {
    /// `scheme://...`
    Url(String),
    /// `name:path` naming a section of the config file.
    Named {
        /// The section name.
        name: String,
        /// The path below that remote's root.
        path: RemotePath,
    },
    /// A local filesystem path.
    Local(String),
}

impl RemoteSpec {
    /// Parses a command-line location the way rclone does: `scheme://…` is a URL, `name:path`
    /// (a name of letters, digits, `_` or `-`; on Windows two or more, as one letter is a
    /// drive) is a configured remote, anything else is a local path (`./a:b` forces a local
    /// path).
    ///
    /// ```
    /// use cloudsync_core::RemoteSpec;
    /// assert!(matches!(RemoteSpec::parse("sftp://me@host/x")?, RemoteSpec::Url(_)));
    /// assert!(matches!(RemoteSpec::parse("backup:photos")?, RemoteSpec::Named { .. }));
    /// assert!(matches!(RemoteSpec::parse("/srv/data")?, RemoteSpec::Local(_)));
    /// # Ok::<(), cloudsync_core::Error>(())
    /// ```
    pub fn parse(s: &str) -> Result<Self> {
        if s.contains("://") {
            return Ok(RemoteSpec::Url(s.to_owned()));
        }
        if let Some((name, rest)) = s.split_once(':') {
            if is_remote_name(name) {
                let path = RemotePath::new(rest.trim_start_matches('/'))?;
                return Ok(RemoteSpec::Named {
                    name: name.to_owned(),
                    path,
                });
            }
        }
        if s.is_empty() {
            return Err(Error::new(ErrorKind::InvalidInput, "empty location"));
        }
        Ok(RemoteSpec::Local(s.to_owned()))
    }
}

/// Whether `name` can name a configured remote in a location (`name:path`): letters, digits,
/// `_` and `-`, and on Windows at least two of them (`C:` is a drive there; rclone reads a
/// one-letter name as a remote on other systems, and so do we).
fn is_remote_name(name: &str) -> bool {
    let min = if cfg!(windows) { 2 } else { 1 };
    name.len() >= min
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// The configuration file: named remotes, each a table with a `type` and the backend's keys.
///
/// ```
/// use cloudsync_core::Config;
/// let cfg = Config::from_toml_str(r#"
///     [remotes.nas]
///     type = "sftp"
///     host = "nas.local"
///     user = "backup"
///     password_env = "NAS_PASSWORD"
/// "#)?;
/// assert_eq!(cfg.remote("nas")?.get("host").and_then(|v| v.as_str()), Some("nas.local"));
/// # Ok::<(), cloudsync_core::Error>(())
/// ```
#[derive(Clone, Default, PartialEq)]
pub struct Config {
    remotes: BTreeMap<String, Value>,
    schedules: BTreeMap<String, Value>,
}

/// Shows each section with the values of secret-looking keys as `***` (the config file may
/// hold passwords and tokens inline).
impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let masked: BTreeMap<&String, Value> = self
            .remotes
            .iter()
            .map(|(name, section)| (name, mask_section(section, &[])))
            .collect();
        // A schedule names locations, which may carry a password: only the names are shown.
        let schedules: Vec<&String> = self.schedules.keys().collect();
        f.debug_struct("Config")
            .field("remotes", &masked)
            .field("schedules", &schedules)
            .finish()
    }
}

/// Keys masked in every backend's section, whatever its factory declares.
const GENERIC_SECRET_KEYS: &[&str] = &[
    "password",
    "secret",
    "token",
    "pass",
    "key_passphrase",
    "access_token",
    "refresh_token",
    "app_secret",
    "client_secret",
    "bearer_token",
    "private_key",
];

/// `section` with the values of `extra` keys and [`GENERIC_SECRET_KEYS`] replaced by `***`.
fn mask_section(section: &Value, extra: &[&str]) -> Value {
    let mut out = section.clone();
    if let Some(obj) = out.as_object_mut() {
        for (k, v) in obj.iter_mut() {
            if extra.contains(&k.as_str()) || GENERIC_SECRET_KEYS.contains(&k.as_str()) {
                *v = Value::String(REDACTED.into());
            }
        }
    }
    out
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    #[serde(default)]
    remotes: BTreeMap<String, toml::Table>,
    /// Jobs `cloudsync serve` runs on a schedule; read by the service, which checks them.
    #[serde(default)]
    schedules: BTreeMap<String, toml::Table>,
}

impl Config {
    /// Parses TOML text.
    pub fn from_toml_str(text: &str) -> Result<Self> {
        let file: ConfigFile = toml::from_str(text).map_err(|e| {
            Error::new(ErrorKind::ConfigInvalid, format!("config: {}", e.message())).with_source(e)
        })?;
        let mut remotes = BTreeMap::new();
        for (name, table) in file.remotes {
            if !is_remote_name(&name) {
                let rule = if cfg!(windows) {
                    "two or more letters, digits, `_` or `-` (one letter is a drive)"
                } else {
                    "letters, digits, `_` or `-`"
                };
                return Err(Error::new(
                    ErrorKind::ConfigInvalid,
                    format!(
                        "remote {name:?}: a remote name is made of {rule}, or `{name}:path` \
                         could not reach it"
                    ),
                ));
            }
            if !table.contains_key("type") {
                return Err(Error::new(
                    ErrorKind::ConfigInvalid,
                    format!("remote {name:?}: missing key `type`"),
                ));
            }
            let value = serde_json::to_value(&table).map_err(|e| {
                Error::new(ErrorKind::ConfigInvalid, format!("remote {name:?}: {e}"))
            })?;
            remotes.insert(name, value);
        }
        let mut schedules = BTreeMap::new();
        for (name, table) in file.schedules {
            let value = serde_json::to_value(&table).map_err(|e| {
                Error::new(ErrorKind::ConfigInvalid, format!("schedule {name:?}: {e}"))
            })?;
            schedules.insert(name, value);
        }
        Ok(Config { remotes, schedules })
    }

    /// Reads and parses a TOML file.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            Error::new(
                ErrorKind::ConfigInvalid,
                format!("cannot read config file {}: {e}", path.display()),
            )
            .with_source(e)
        })?;
        Self::from_toml_str(&text).map_err(|e| {
            Error::new(
                ErrorKind::ConfigInvalid,
                format!("{}: {}", path.display(), e.message()),
            )
        })
    }

    /// Adds or replaces a remote section (a JSON object with a `type` key).
    pub fn insert(&mut self, name: impl Into<String>, section: Value) {
        self.remotes.insert(name.into(), section);
    }

    /// The section of remote `name`.
    pub fn remote(&self, name: &str) -> Result<&Value> {
        self.remotes.get(name).ok_or_else(|| {
            Error::new(
                ErrorKind::ConfigInvalid,
                format!("remote {name:?} is not in the config file"),
            )
        })
    }

    /// The `[schedules.NAME]` sections (jobs `cloudsync serve` runs on a schedule), as
    /// written; the service checks their keys.
    ///
    /// ```
    /// use cloudsync_core::Config;
    /// let cfg = Config::from_toml_str(r#"
    ///     [schedules.pull]
    ///     op = "copy"
    ///     src = "nas:courses"
    ///     dst = "/srv/courses"
    ///     every = "15m"
    /// "#)?;
    /// let (name, s) = cfg.schedules().next().unwrap();
    /// assert_eq!((name, s["every"].as_str()), ("pull", Some("15m")));
    /// # Ok::<(), cloudsync_core::Error>(())
    /// ```
    pub fn schedules(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.schedules.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// Names of the configured remotes.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.remotes.keys().map(String::as_str)
    }
}

/// Maps backend type names and URL schemes to factories, and opens remotes.
///
/// `memory` (type and `memory://name[/dir]` URLs) is always registered.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> cloudsync_core::Result<()> {
/// use cloudsync_core::{Config, Registry};
/// let registry = Registry::new();
/// let remote = registry.open("memory://scratch", &Config::default()).await?;
/// assert_eq!(remote.describe(), "memory://scratch");
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct Registry {
    by_type: HashMap<&'static str, Arc<dyn BackendFactory>>,
    by_scheme: HashMap<&'static str, Arc<dyn BackendFactory>>,
    /// Named remotes opened so far: `nas:a` and `nas:b` share one connection pool, and the
    /// engine can copy and move between them on the server.
    opened: Arc<std::sync::Mutex<HashMap<String, Arc<dyn Remote>>>>,
    /// The layers every network remote it opens is wrapped in ([`LayerOptions`]).
    layers: Stack,
    /// The bandwidth buckets shared by every remote it opens ([`BandwidthLimiter`]).
    bwlimit: Option<BandwidthLimiter>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut types: Vec<_> = self.by_type.keys().collect();
        types.sort();
        f.debug_struct("Registry").field("types", &types).finish()
    }
}

impl Default for Registry {
    fn default() -> Self {
        Self::new()
    }
}

impl Registry {
    /// A registry knowing only the built-in `memory` backend.
    pub fn new() -> Self {
        let mut r = Registry {
            by_type: HashMap::new(),
            by_scheme: HashMap::new(),
            opened: Arc::default(),
            layers: Stack::default(),
            bwlimit: None,
        };
        r.register(Arc::new(MemoryFactory));
        r
    }

    /// Sets the idle limit of the remotes opened from now on (`--timeout`; default
    /// [`DEFAULT_TIMEOUT`](crate::DEFAULT_TIMEOUT); `None`: wait for ever). A call that makes no progress for that long
    /// fails with a temporary error instead of holding the run.
    pub fn set_timeout(&mut self, timeout: Option<Duration>) -> &mut Self {
        self.layers.opts.timeout = timeout;
        self
    }

    /// Sets the layers of the remotes opened from now on (retries, throttle, limit, timeout;
    /// see [`LayerOptions`]). A rate limit that is not a positive number is
    /// [`ErrorKind::ConfigInvalid`].
    pub fn set_layers(&mut self, opts: LayerOptions) -> Result<&mut Self> {
        self.layers = Stack::new(opts)?;
        Ok(self)
    }

    /// The layers of the remotes opened from now on.
    pub fn layers(&self) -> &LayerOptions {
        &self.layers.opts
    }

    /// Wraps `remote` in the registry's layers, as it does every remote it opens (an
    /// embedding application may wrap a remote it built itself the same way):
    /// [`ErrorContext`] around the backend, then [`BandwidthLimited`](crate::BandwidthLimited)
    /// when a bandwidth limit is set, then the [`LayerOptions`] stack. A local directory gets
    /// only the first two: the kernel answers or fails, and the per-call layers would cost on
    /// every file.
    pub fn layered(&self, remote: Arc<dyn Remote>) -> Arc<dyn Remote> {
        let local = remote.local_path(&RemotePath::root()).is_some();
        let remote = ErrorContext::wrap(remote);
        let remote = match &self.bwlimit {
            Some(l) if !l.is_off() && (!local || l.is_symmetric()) => l.wrap(remote),
            _ => remote,
        };
        if local {
            return remote;
        }
        self.layers.apply(remote)
    }

    /// Limits the bandwidth of the remotes opened from now on (`--bwlimit`, `--bwlimit-file`),
    /// all of them drawing on `limiter`'s buckets. A local folder is limited only when the
    /// limit is the same both ways (`UP:DOWN` limits the network, as in rclone).
    pub fn set_bwlimit(&mut self, limiter: Option<BandwidthLimiter>) -> &mut Self {
        self.bwlimit = limiter;
        self
    }

    /// Registers (or replaces) a backend.
    pub fn register(&mut self, factory: Arc<dyn BackendFactory>) -> &mut Self {
        for scheme in factory.url_schemes() {
            self.by_scheme.insert(scheme, factory.clone());
        }
        self.by_type.insert(factory.type_name(), factory);
        self
    }

    /// The factory for a type name.
    pub fn factory(&self, type_name: &str) -> Result<&Arc<dyn BackendFactory>> {
        self.by_type.get(type_name).ok_or_else(|| {
            let mut known: Vec<_> = self.by_type.keys().copied().collect();
            known.sort_unstable();
            Error::new(
                ErrorKind::ConfigInvalid,
                format!(
                    "unknown remote type {type_name:?} (known: {}; is its cargo feature enabled?)",
                    known.join(", ")
                ),
            )
        })
    }

    /// Opens a remote from a configuration section (a JSON object with a `type` key).
    pub async fn open_section(&self, section: &Value) -> Result<Arc<dyn Remote>> {
        let type_name = section
            .get("type")
            .and_then(Value::as_str)
            .ok_or_else(|| Error::new(ErrorKind::ConfigInvalid, "missing key `type`"))?;
        let mut config = section.clone();
        if let Some(obj) = config.as_object_mut() {
            obj.remove("type");
        }
        Ok(self.layered(self.factory(type_name)?.open(config).await?))
    }

    /// Opens a URL (`sftp://user@host:22/path`, `memory://name`, ...).
    pub async fn open_url(&self, s: &str) -> Result<Arc<dyn Remote>> {
        let url = url::Url::parse(s).map_err(|e| {
            Error::new(
                ErrorKind::InvalidInput,
                format!("invalid URL {:?}: {e}", redact_location(s)),
            )
            .with_source(e)
        })?;
        let factory = self.by_scheme.get(url.scheme()).ok_or_else(|| {
            let mut known: Vec<_> = self.by_scheme.keys().copied().collect();
            known.sort_unstable();
            Error::new(
                ErrorKind::ConfigInvalid,
                format!(
                    "unknown URL scheme {:?} (known: {}; is its cargo feature enabled?)",
                    url.scheme(),
                    known.join(", ")
                ),
            )
        })?;
        let config = factory.config_from_url(&url)?;
        Ok(self.layered(factory.open(config).await?))
    }

    /// Opens a command-line location: a URL, `name:path` from `config`, or a local path (which
    /// needs the `local` backend registered).
    pub async fn open(&self, location: &str, config: &Config) -> Result<Arc<dyn Remote>> {
        match RemoteSpec::parse(location)? {
            RemoteSpec::Url(u) => self.open_url(&u).await,
            RemoteSpec::Named { name, path } => {
                let section = config.remote(&name)?;
                let cached = self.opened_remote(&name);
                let remote = match cached {
                    Some(r) => r,
                    None => {
                        let r = self.open_section(section).await?;
                        self.opened
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .insert(name, r.clone());
                        r
                    }
                };
                Ok(Prefix::wrap(remote, path))
            }
            RemoteSpec::Local(p) => {
                let section = serde_json::json!({ "type": "local", "root": p });
                self.open_section(&section).await
            }
        }
    }

    fn opened_remote(&self, name: &str) -> Option<Arc<dyn Remote>> {
        self.opened
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(name)
            .cloned()
    }

    /// The section with every secret value replaced by `"***"` (for `config show`).
    pub fn masked(&self, section: &Value) -> Value {
        let secret_keys = section
            .get("type")
            .and_then(Value::as_str)
            .and_then(|t| self.by_type.get(t))
            .map(|f| f.secret_keys())
            .unwrap_or(&[]);
        mask_section(section, secret_keys)
    }
}

/// `memory` backend: `memory://name/dir` (the directory `dir` of the store `name`) or
/// `type = "memory"` with an optional `name` and `root`.
struct MemoryFactory;

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct MemoryConfig {
    #[serde(default)]
    name: Option<String>,
    /// A directory inside the store (`memory://name/root`).
    #[serde(default)]
    root: Option<String>,
}

#[async_trait]
impl BackendFactory for MemoryFactory {
    fn type_name(&self) -> &'static str {
        "memory"
    }

    fn url_schemes(&self) -> &'static [&'static str] {
        &["memory"]
    }

    fn config_from_url(&self, url: &url::Url) -> Result<Value> {
        // `memory://name/dir` is the directory `dir` of the store `name`.
        let name = url.host_str().unwrap_or("").to_owned();
        let root = percent_encoding::percent_decode_str(url.path())
            .decode_utf8()
            .map_err(|_| {
                Error::new(
                    ErrorKind::ConfigInvalid,
                    format!("memory URL: path of {url} is not UTF-8"),
                )
            })?;
        let root = root.trim_matches('/');
        Ok(serde_json::json!({ "name": name, "root": root }))
    }

    async fn open(&self, config: Value) -> Result<Arc<dyn Remote>> {
        let cfg: MemoryConfig = parse_config("memory", config)?;
        let root = match cfg.root.as_deref().map(|r| r.trim_matches('/')) {
            Some(r) if !r.is_empty() => RemotePath::new(r).map_err(|e| {
                Error::new(
                    ErrorKind::ConfigInvalid,
                    format!("memory config `root`: {}", e.message()),
                )
            })?,
            _ => RemotePath::root(),
        };
        Ok(match cfg.name {
            Some(n) if !n.is_empty() => memory_named_at(&n, &root),
            _ if root.is_root() => memory(),
            _ => {
                return Err(Error::new(
                    ErrorKind::ConfigInvalid,
                    "memory config: a `root` needs a store `name` (memory://name/root)",
                ));
            }
        })
    }
}

/// How a URL query parameter becomes a config value (see [`query_to_config`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueryKind {
    /// Kept as a string.
    Text,
    /// An unsigned integer.
    Number,
    /// `true`/`1`/`yes` (or no value at all) and `false`/`0`/`no`.
    Flag,
}

/// Reads a URL query flag (`true`, `1`, `yes` or empty; `false`, `0`, `no`).
pub fn query_flag(backend: &str, key: &str, value: &str) -> Result<bool> {
    match value {
        "" | "true" | "1" | "yes" => Ok(true),
        "false" | "0" | "no" => Ok(false),
        other => Err(Error::new(
            ErrorKind::ConfigInvalid,
            format!("{backend} URL: `{key}` must be true or false, not {other:?}"),
        )),
    }
}

/// Reads a URL query number.
pub fn query_number(backend: &str, key: &str, value: &str) -> Result<u64> {
    value.parse().map_err(|_| {
        Error::new(
            ErrorKind::ConfigInvalid,
            format!("{backend} URL: `{key}` must be a number, not {value:?}"),
        )
    })
}

/// Copies the query parameters of `url` into a backend's config object, converting each by
/// its declared [`QueryKind`]; an undeclared parameter is an error that names it.
///
/// ```
/// use cloudsync_core::{QueryKind, query_to_config};
/// let url = url::Url::parse("x://h/p?connections=3&use_agent=no").unwrap();
/// let mut cfg = serde_json::Map::new();
/// let keys = [("connections", QueryKind::Number), ("use_agent", QueryKind::Flag)];
/// query_to_config("x", &url, &keys, &mut cfg)?;
/// assert_eq!(cfg["connections"], 3);
/// assert_eq!(cfg["use_agent"], false);
/// let bad = url::Url::parse("x://h/p?bogus=1").unwrap();
/// assert!(query_to_config("x", &bad, &keys, &mut cfg).is_err());
/// # Ok::<(), cloudsync_core::Error>(())
/// ```
pub fn query_to_config(
    backend: &str,
    url: &url::Url,
    keys: &[(&str, QueryKind)],
    cfg: &mut serde_json::Map<String, Value>,
) -> Result<()> {
    for (k, v) in url.query_pairs() {
        let Some((_, kind)) = keys.iter().find(|(name, _)| *name == k) else {
            return Err(Error::new(
                ErrorKind::ConfigInvalid,
                format!("{backend} URL: unknown query parameter `{k}`"),
            ));
        };
        let value = match kind {
            QueryKind::Text => Value::String(v.clone().into_owned()),
            QueryKind::Number => Value::from(query_number(backend, &k, &v)?),
            QueryKind::Flag => Value::Bool(query_flag(backend, &k, &v)?),
        };
        cfg.insert(k.into_owned(), value);
    }
    Ok(())
}

/// Deserialises a backend's config object into its struct, with errors that name the backend
/// and the offending key.
///
/// ```
/// #[derive(Debug, serde::Deserialize)]
/// #[serde(deny_unknown_fields)]
/// struct MyConfig { host: String }
/// let err = cloudsync_core::parse_config::<MyConfig>(
///     "mine",
///     serde_json::json!({ "hots": "x" }),
/// ).unwrap_err();
/// assert!(err.to_string().contains("unknown field `hots`"));
/// ```
pub fn parse_config<T: serde::de::DeserializeOwned>(backend: &str, config: Value) -> Result<T> {
    serde_json::from_value(config).map_err(|e| {
        Error::new(ErrorKind::ConfigInvalid, format!("{backend} config: {e}")).with_source(e)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_parsing() {
        assert_eq!(
            RemoteSpec::parse("nas:a/b").unwrap(),
            RemoteSpec::Named {
                name: "nas".into(),
                path: RemotePath::new("a/b").unwrap()
            }
        );
        // One letter names a remote where it is not a drive, as in rclone.
        let one_letter = RemoteSpec::parse("r:photos").unwrap();
        if cfg!(windows) {
            assert_eq!(one_letter, RemoteSpec::Local("r:photos".into()));
        } else {
            assert_eq!(
                one_letter,
                RemoteSpec::Named {
                    name: "r".into(),
                    path: RemotePath::new("photos").unwrap()
                }
            );
        }
        assert_eq!(
            RemoteSpec::parse("my nas:x").unwrap(),
            RemoteSpec::Local("my nas:x".into())
        );
        assert_eq!(
            RemoteSpec::parse("./a:b").unwrap(),
            RemoteSpec::Local("./a:b".into())
        );
        assert!(RemoteSpec::parse("nas:../x").is_err());
    }

    #[test]
    fn config_errors_name_the_problem() {
        let e = Config::from_toml_str("[remotes.x]\nhost = 1\n").unwrap_err();
        assert_eq!(e.message(), "remote \"x\": missing key `type`");
        let e = Config::from_toml_str("[remote.x]\n").unwrap_err();
        assert!(e.message().contains("unknown field `remote`"), "{e}");
        // A section no location could reach is refused at load, never silently unreachable.
        for bad in ["\"my nas\"", "\"a.b\"", "\"\""] {
            let e =
                Config::from_toml_str(&format!("[remotes.{bad}]\ntype = \"local\"\n")).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::ConfigInvalid);
            assert!(e.message().contains("a remote name is made of"), "{e}");
        }
        let one = Config::from_toml_str("[remotes.r]\ntype = \"local\"\n");
        assert_eq!(one.is_ok(), !cfg!(windows), "{one:?}");
        let e = Config::default().remote("nope").unwrap_err();
        assert_eq!(e.message(), "remote \"nope\" is not in the config file");
    }

    #[tokio::test]
    async fn unknown_type_and_scheme() {
        let r = Registry::new();
        let e = r
            .open_section(&serde_json::json!({"type": "floppy"}))
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::ConfigInvalid);
        assert!(e.message().contains("unknown remote type \"floppy\""));
        let e = r.open_url("floppy://x").await.unwrap_err();
        assert!(e.message().contains("unknown URL scheme \"floppy\""));
        let e = r.open_url("not a url").await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput);
    }

    #[tokio::test]
    async fn named_memory_remotes_are_shared() {
        let r = Registry::new();
        let a = r.open_url("memory://shared-test").await.unwrap();
        let p = RemotePath::new("f").unwrap();
        a.write(&p, crate::bytes_stream("x"), Default::default())
            .await
            .unwrap();
        let b = r.open_url("memory://shared-test").await.unwrap();
        assert_eq!(b.stat(&p).await.unwrap().size, 1);
    }

    /// The registry wraps what it opens in its layers: `--tpslimit 2` is shared by every
    /// remote; `set_timeout` keeps working next to `set_layers`; a bad rate is refused.
    #[tokio::test(start_paused = true)]
    async fn layers_are_applied_to_opened_remotes() {
        let mut r = Registry::new();
        let opts = LayerOptions {
            tps_limit: Some(2.0),
            ..Default::default()
        };
        r.set_layers(opts).unwrap();
        r.set_timeout(Some(Duration::from_secs(7)));
        assert_eq!(r.layers().timeout, Some(Duration::from_secs(7)));
        assert_eq!(r.layers().tps_limit, Some(2.0));
        let a = r.open_url("memory://layers-a").await.unwrap();
        let b = r.open_url("memory://layers-b").await.unwrap();
        let d = RemotePath::new("d").unwrap();
        let t0 = tokio::time::Instant::now();
        for remote in [&a, &b, &a, &b, &a] {
            remote.mkdir(&d).await.unwrap();
        }
        assert_eq!(
            t0.elapsed(),
            Duration::from_secs(2),
            "one call every 1/2 s, shared"
        );
        let bad = LayerOptions {
            tps_limit: Some(-1.0),
            ..Default::default()
        };
        let e = r.set_layers(bad).err().unwrap();
        assert_eq!(e.kind(), ErrorKind::ConfigInvalid);
    }

    /// Opens a MemFs behind a fault plan that refuses every `stat` of `x` (the injected
    /// error names only its path).
    struct FaultyFactory;

    #[async_trait]
    impl BackendFactory for FaultyFactory {
        fn type_name(&self) -> &'static str {
            "faulty"
        }
        async fn open(&self, _: Value) -> Result<Arc<dyn Remote>> {
            use crate::testkit::{Chaos, Fault, FaultPlan, MemFs, Op, Rule};
            let rule = Rule {
                op: Op::Stat,
                path: Some(RemotePath::new("x")?),
                skip: 0,
                times: 1,
                fault: Fault::Fail(ErrorKind::PermissionDenied),
            };
            let mem = Arc::new(MemFs::new("faulty://me:pw@host/base"));
            Ok(Arc::new(Chaos::new(mem, FaultPlan { rules: vec![rule] })))
        }
    }

    /// Every remote the registry opens names the operation and the (redacted) remote in its
    /// errors, with or without the other layers.
    #[tokio::test(start_paused = true)]
    async fn opened_remotes_name_operation_and_remote_in_errors() {
        for layers in [
            LayerOptions::default(),
            LayerOptions {
                timeout: None,
                retry: crate::RetryPolicy::none(),
                ..Default::default()
            },
        ] {
            let mut r = Registry::new();
            r.register(Arc::new(FaultyFactory));
            r.set_layers(layers).unwrap();
            let remote = r
                .open_section(&serde_json::json!({"type": "faulty"}))
                .await
                .unwrap();
            let e = remote
                .stat(&RemotePath::new("x").unwrap())
                .await
                .unwrap_err();
            assert_eq!(
                e.to_string(),
                "permission denied: injected Stat fault (stat faulty://me:***@host/base: x)"
            );
        }
    }

    #[tokio::test]
    async fn memory_url_path_is_a_directory_of_the_store() {
        let r = Registry::new();
        let top = r.open_url("memory://dir-test").await.unwrap();
        let p = RemotePath::new("photos/a.jpg").unwrap();
        top.write(&p, crate::bytes_stream("x"), Default::default())
            .await
            .unwrap();
        let photos = r.open_url("memory://dir-test/photos/").await.unwrap();
        assert_eq!(photos.describe(), "memory://dir-test/photos");
        let a = RemotePath::new("a.jpg").unwrap();
        assert_eq!(photos.stat(&a).await.unwrap().size, 1);
        assert!(
            top.location()
                .unwrap()
                .contains(&photos.location().unwrap())
        );
        // A mistyped directory is not found (a sync from it must not see an empty tree).
        let typo = r.open_url("memory://dir-test/phtos").await.unwrap();
        let e = typo.list(&RemotePath::root()).await.err().unwrap();
        assert_eq!(e.kind(), ErrorKind::NotFound);
    }

    #[test]
    fn debug_and_url_errors_hide_secrets() {
        let cfg = Config::from_toml_str(
            "[remotes.nas]\ntype = \"ftp\"\nuser = \"me\"\npassword = \"hunter2\"\n",
        )
        .unwrap();
        let shown = format!("{cfg:?}");
        assert!(
            !shown.contains("hunter2") && shown.contains("me"),
            "{shown}"
        );
        let e = futures::executor::block_on(Registry::new().open_url("ftp://me:hunter2@h:x/"))
            .unwrap_err();
        assert!(!e.chain().contains("hunter2"), "{e}");
        assert!(e.chain().contains("ftp://me:***@h:x/"), "{e}");
    }

    #[test]
    fn masks_secrets() {
        let r = Registry::new();
        let m = r.masked(&serde_json::json!({"type": "x", "password": "hunter2", "user": "me"}));
        assert_eq!(m["password"], "***");
        assert_eq!(m["user"], "me");
    }
}
