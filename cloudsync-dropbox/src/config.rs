//! Configuration of the `dropbox` remote type.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use std::sync::Arc;

use async_trait::async_trait;
use cloudsync_core::{
    BackendFactory, DROPBOX_BLOCK, Error, ErrorKind, Location, QueryKind, Remote, RemotePath,
    Result, Secret, parse_config,
};
use percent_encoding::percent_decode_str;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::auth::TokenCallback;
use crate::backend::DropboxRemote;
use crate::core::DropboxCore;

/// The RPC endpoint host of the real service.
pub const DEFAULT_API_URL: &str = "https://api.dropboxapi.com";
/// The content (upload and download) endpoint host of the real service.
pub const DEFAULT_CONTENT_URL: &str = "https://content.dropboxapi.com";
/// The OAuth2 token endpoint of the real service.
pub const DEFAULT_TOKEN_URL: &str = "https://api.dropboxapi.com/oauth2/token";
/// Default upload chunk: files above it go through an upload session (48 MiB).
pub const DEFAULT_CHUNK_SIZE: u64 = 12 * DROPBOX_BLOCK as u64;
/// Largest chunk: one request may carry at most 150 MiB, and chunks are whole 4 MiB blocks.
pub const MAX_CHUNK_SIZE: u64 = 37 * DROPBOX_BLOCK as u64;
/// Default entries per listing page (the service's largest `limit`).
pub const DEFAULT_LIST_LIMIT: u32 = 2000;
/// Most files one `upload_session/finish_batch_v2` call may commit.
pub const MAX_BATCH_SIZE: u32 = 1000;
/// Default wait for more files before a partial batch is committed, in milliseconds.
pub const DEFAULT_BATCH_TIMEOUT_MS: u64 = 500;
/// Default idle timeout of one request, in seconds.
pub const DEFAULT_TIMEOUT_SECS: u64 = 300;

/// Configuration of a `dropbox` remote.
///
/// Credentials: a refresh token (`refresh_token_env`, or a `token_file` written by
/// `examples/authorize.rs`) with the app key (and the app secret for apps that have one; PKCE
/// apps have none), or a short-lived access token (`access_token_env`).
///
/// ```
/// use cloudsync_dropbox::DropboxConfig;
/// let cfg: DropboxConfig = serde_json::from_value(serde_json::json!({
///     "app_key": "abc123",
///     "refresh_token_env": "DROPBOX_REFRESH_TOKEN",
///     "root": "Backups/home",
/// }))?;
/// assert_eq!(cfg.root, "Backups/home");
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
#[non_exhaustive]
pub struct DropboxConfig {
    /// The app key (OAuth2 client id).
    pub app_key: String,
    /// Environment variable holding the app secret (apps using PKCE have none).
    pub app_secret_env: Option<String>,
    /// The app secret itself (prefer `app_secret_env`; a [`Secret`]: never shown, serialised
    /// as `"***"`).
    pub app_secret: Option<Secret>,
    /// Environment variable holding the refresh token.
    pub refresh_token_env: Option<String>,
    /// The refresh token itself (prefer `refresh_token_env` or `token_file`; a [`Secret`]).
    pub refresh_token: Option<Secret>,
    /// A JSON file holding `refresh_token` (and the current access token); refreshed access
    /// tokens are written back to it.
    pub token_file: Option<PathBuf>,
    /// Environment variable holding an access token (short-lived; for tests and one-off runs).
    pub access_token_env: Option<String>,
    /// An access token itself (a [`Secret`]).
    pub access_token: Option<Secret>,
    /// Folder in the Dropbox that is the remote's root (empty: the whole Dropbox).
    pub root: String,
    /// Files larger than this are uploaded through an upload session in chunks of this size;
    /// a multiple of 4 MiB, at most 148 MiB.
    pub chunk_size: u64,
    /// Bytes per `upload_session/append_v2` call of a resumable upload (0: `chunk_size`), at
    /// most 148 MiB. A cut upload loses at most the chunk in flight: the service keeps every
    /// append it acknowledged, so a smaller chunk loses less and makes more requests.
    pub session_chunk_size: u64,
    /// Entries requested per listing page (`limit`, 1..=2000).
    pub list_limit: u32,
    /// Files up to `chunk_size` are committed together, up to this many per
    /// `upload_session/finish_batch_v2` call (0: each file is committed alone). Batches avoid
    /// `too_many_write_operations` when many small files are written at once; use them with
    /// many concurrent transfers, since each write waits for its batch.
    pub batch_size: u32,
    /// How long a partial batch waits for more files, in milliseconds.
    pub batch_timeout_ms: u64,
    /// Base URL of the RPC endpoints.
    pub api_url: String,
    /// Base URL of the content endpoints.
    pub content_url: String,
    /// The OAuth2 token endpoint.
    pub token_url: String,
    /// Seconds a transfer may stay idle before it fails, and the whole time any other call
    /// (listing page, metadata, token) may take, body included.
    pub timeout: u64,
    /// Called with every refreshed token, so the application can persist it.
    #[serde(skip)]
    pub on_token_refresh: Option<TokenCallback>,
}

impl Default for DropboxConfig {
    fn default() -> Self {
        DropboxConfig {
            app_key: String::new(),
            app_secret_env: None,
            app_secret: None,
            refresh_token_env: None,
            refresh_token: None,
            token_file: None,
            access_token_env: None,
            access_token: None,
            root: String::new(),
            chunk_size: DEFAULT_CHUNK_SIZE,
            session_chunk_size: 0,
            list_limit: DEFAULT_LIST_LIMIT,
            batch_size: 0,
            batch_timeout_ms: DEFAULT_BATCH_TIMEOUT_MS,
            api_url: DEFAULT_API_URL.to_owned(),
            content_url: DEFAULT_CONTENT_URL.to_owned(),
            token_url: DEFAULT_TOKEN_URL.to_owned(),
            timeout: DEFAULT_TIMEOUT_SECS,
            on_token_refresh: None,
        }
    }
}

impl fmt::Debug for DropboxConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DropboxConfig")
            .field("app_key", &self.app_key)
            .field("app_secret_env", &self.app_secret_env)
            .field("refresh_token_env", &self.refresh_token_env)
            .field("token_file", &self.token_file)
            .field("access_token_env", &self.access_token_env)
            .field("root", &self.root)
            .field("chunk_size", &self.chunk_size)
            .field("session_chunk_size", &self.session_chunk_size)
            .field("list_limit", &self.list_limit)
            .field("batch_size", &self.batch_size)
            .field("batch_timeout_ms", &self.batch_timeout_ms)
            .field("api_url", &self.api_url)
            .field("content_url", &self.content_url)
            .field("token_url", &self.token_url)
            .field("timeout", &self.timeout)
            .field(
                "on_token_refresh",
                &self.on_token_refresh.as_ref().map(|_| "callback"),
            )
            .finish_non_exhaustive()
    }
}

/// Where the first credentials come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum RefreshSource {
    /// No refresh token: the access token is used until it expires.
    None,
    /// A refresh token from the environment or the config.
    Token(Secret),
    /// A token file (read now, written back on refresh).
    File(PathBuf, Secret),
}

/// A validated configuration: everything [`crate::DropboxRemote`] needs.
#[derive(Clone)]
pub(crate) struct Validated {
    pub(crate) app_key: String,
    pub(crate) app_secret: Option<Secret>,
    pub(crate) refresh: RefreshSource,
    pub(crate) access_token: Option<Secret>,
    /// `""` for the whole Dropbox, else `/a/b`.
    pub(crate) root: String,
    pub(crate) chunk_size: u64,
    /// Bytes per append of a resumable upload.
    pub(crate) session_chunk_size: u64,
    pub(crate) list_limit: u32,
    pub(crate) batch_size: usize,
    pub(crate) batch_timeout: Duration,
    pub(crate) api_url: String,
    pub(crate) content_url: String,
    pub(crate) token_url: url::Url,
    pub(crate) timeout: Duration,
    pub(crate) on_token_refresh: Option<TokenCallback>,
}

fn invalid(key: &str, why: impl fmt::Display) -> Error {
    Error::new(
        ErrorKind::ConfigInvalid,
        format!("dropbox config `{key}`: {why}"),
    )
}

fn env_secret(key: &str, var: &str) -> Result<Secret> {
    match std::env::var(var) {
        Ok(v) if !v.trim().is_empty() => Ok(Secret::new(v.trim())),
        _ => Err(invalid(
            key,
            format!("environment variable {var} is not set"),
        )),
    }
}

fn base_url(key: &str, s: &str) -> Result<String> {
    let u = url::Url::parse(s).map_err(|e| invalid(key, format!("{s:?}: {e}")))?;
    if !matches!(u.scheme(), "http" | "https") || u.host_str().is_none() {
        return Err(invalid(key, format!("{s:?} is not an http(s) URL")));
    }
    Ok(s.trim_end_matches('/').to_owned())
}

/// A token file's content.
#[derive(Serialize, Deserialize)]
pub(crate) struct TokenFile {
    pub(crate) refresh_token: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) access_token: Option<String>,
    /// Unix seconds when `access_token` expires.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) expires_at: Option<i64>,
}

impl DropboxConfig {
    /// A config for the app `app_key` with everything else at its default.
    pub fn new(app_key: impl Into<String>) -> Self {
        DropboxConfig {
            app_key: app_key.into(),
            ..Default::default()
        }
    }

    /// Sets the refresh token itself.
    pub fn with_refresh_token(mut self, token: impl Into<Secret>) -> Self {
        self.refresh_token = Some(token.into());
        self
    }

    /// Sets the environment variable holding the refresh token.
    pub fn with_refresh_token_env(mut self, var: impl Into<String>) -> Self {
        self.refresh_token_env = Some(var.into());
        self
    }

    /// Sets an access token itself.
    pub fn with_access_token(mut self, token: impl Into<Secret>) -> Self {
        self.access_token = Some(token.into());
        self
    }

    /// Sets the app secret itself.
    pub fn with_app_secret(mut self, secret: impl Into<Secret>) -> Self {
        self.app_secret = Some(secret.into());
        self
    }

    /// Sets the root folder.
    pub fn with_root(mut self, root: impl Into<String>) -> Self {
        self.root = root.into();
        self
    }

    /// Sets the upload chunk size.
    pub fn with_chunk_size(mut self, chunk_size: u64) -> Self {
        self.chunk_size = chunk_size;
        self
    }

    /// Sets the bytes per append of a resumable upload (0: the upload chunk size).
    pub fn with_session_chunk_size(mut self, bytes: u64) -> Self {
        self.session_chunk_size = bytes;
        self
    }

    /// Sets the listing page size.
    pub fn with_list_limit(mut self, list_limit: u32) -> Self {
        self.list_limit = list_limit;
        self
    }

    /// Commits small files in batches of up to `batch_size` (0: off), waiting at most
    /// `timeout_ms` for a batch to fill.
    pub fn with_batching(mut self, batch_size: u32, timeout_ms: u64) -> Self {
        self.batch_size = batch_size;
        self.batch_timeout_ms = timeout_ms;
        self
    }

    /// Points the client at other endpoints (an emulator, a proxy).
    pub fn with_urls(
        mut self,
        api_url: impl Into<String>,
        content_url: impl Into<String>,
        token_url: impl Into<String>,
    ) -> Self {
        self.api_url = api_url.into();
        self.content_url = content_url.into();
        self.token_url = token_url.into();
        self
    }

    /// Sets the callback told about every refreshed token.
    pub fn with_token_callback(mut self, callback: TokenCallback) -> Self {
        self.on_token_refresh = Some(callback);
        self
    }

    /// Validates the configuration (reading secrets from the environment or the token file)
    /// and builds the remote: the one way to open a Dropbox remote. No request is sent until
    /// the remote is used.
    pub fn build(&self) -> Result<DropboxRemote> {
        let v = self.validate()?;
        let location = location(&v.api_url, &v.root);
        Ok(DropboxRemote::from_core(DropboxCore::new(v)?, location))
    }

    /// Checks the configuration and reads the secrets it names.
    pub(crate) fn validate(&self) -> Result<Validated> {
        let app_secret = match (&self.app_secret_env, &self.app_secret) {
            (Some(_), Some(_)) => {
                return Err(invalid(
                    "app_secret_env",
                    "set either `app_secret_env` or `app_secret`, not both",
                ));
            }
            (Some(var), None) => Some(env_secret("app_secret_env", var)?),
            (None, s) => s.clone(),
        };
        let sources = [
            self.refresh_token_env.is_some(),
            self.refresh_token.is_some(),
            self.token_file.is_some(),
        ];
        if sources.iter().filter(|s| **s).count() > 1 {
            return Err(invalid(
                "refresh_token_env",
                "set only one of `refresh_token_env`, `refresh_token` and `token_file`",
            ));
        }
        let mut access_token = match (&self.access_token_env, &self.access_token) {
            (Some(_), Some(_)) => {
                return Err(invalid(
                    "access_token_env",
                    "set either `access_token_env` or `access_token`, not both",
                ));
            }
            (Some(var), None) => Some(env_secret("access_token_env", var)?),
            (None, t) => t.clone(),
        };
        let refresh = if let Some(var) = &self.refresh_token_env {
            RefreshSource::Token(env_secret("refresh_token_env", var)?)
        } else if let Some(t) = &self.refresh_token {
            RefreshSource::Token(t.clone())
        } else if let Some(path) = &self.token_file {
            let text = std::fs::read_to_string(path).map_err(|e| {
                invalid("token_file", format!("cannot read {}: {e}", path.display()))
            })?;
            let file: TokenFile = serde_json::from_str(&text)
                .map_err(|e| invalid("token_file", format!("{}: {e}", path.display())))?;
            let now = time::OffsetDateTime::now_utc().unix_timestamp();
            if access_token.is_none() && file.expires_at.is_some_and(|t| t > now + 60) {
                access_token = file.access_token.clone().map(Secret::from);
            }
            RefreshSource::File(path.clone(), Secret::from(file.refresh_token))
        } else {
            RefreshSource::None
        };
        if refresh == RefreshSource::None && access_token.is_none() {
            return Err(invalid(
                "refresh_token_env",
                "no credentials: set `refresh_token_env` or `token_file` (or `access_token_env`)",
            ));
        }
        if refresh != RefreshSource::None && self.app_key.trim().is_empty() {
            return Err(invalid("app_key", "required to refresh access tokens"));
        }
        if self.session_chunk_size > MAX_CHUNK_SIZE {
            return Err(invalid(
                "session_chunk_size",
                format!("{} is above 148 MiB", self.session_chunk_size),
            ));
        }
        if self.chunk_size == 0
            || self.chunk_size % DROPBOX_BLOCK as u64 != 0
            || self.chunk_size > MAX_CHUNK_SIZE
        {
            return Err(invalid(
                "chunk_size",
                format!(
                    "{} is not a multiple of 4 MiB between 4 MiB and 148 MiB",
                    self.chunk_size
                ),
            ));
        }
        if !(1..=2000).contains(&self.list_limit) {
            return Err(invalid("list_limit", "must be between 1 and 2000"));
        }
        if self.batch_size > MAX_BATCH_SIZE {
            return Err(invalid("batch_size", "must be at most 1000"));
        }
        if self.batch_size > 0 && !(1..=60_000).contains(&self.batch_timeout_ms) {
            return Err(invalid("batch_timeout_ms", "must be between 1 and 60000"));
        }
        if self.timeout == 0 {
            return Err(invalid("timeout", "must be at least 1 second"));
        }
        let trimmed = self.root.trim_matches('/');
        let root = if trimmed.is_empty() {
            String::new()
        } else {
            let p = RemotePath::new(trimmed).map_err(|e| invalid("root", e.message()))?;
            format!("/{}", p.as_str())
        };
        let token_url = url::Url::parse(&base_url("token_url", &self.token_url)?)
            .map_err(|e| invalid("token_url", e))?;
        Ok(Validated {
            app_key: self.app_key.trim().to_owned(),
            app_secret,
            refresh,
            access_token,
            root,
            chunk_size: self.chunk_size,
            session_chunk_size: if self.session_chunk_size == 0 {
                self.chunk_size
            } else {
                self.session_chunk_size
            },
            list_limit: self.list_limit,
            batch_size: self.batch_size as usize,
            batch_timeout: Duration::from_millis(self.batch_timeout_ms),
            api_url: base_url("api_url", &self.api_url)?,
            content_url: base_url("content_url", &self.content_url)?,
            token_url,
            timeout: Duration::from_secs(self.timeout),
            on_token_refresh: self.on_token_refresh.clone(),
        })
    }
}

/// Where the root folder is: the space `dropbox` (plus the API endpoint's host and port when
/// it is not Dropbox's own, as for an emulator) and the root in lower case, because Dropbox
/// paths ignore case.
///
/// Nothing in the config tells two accounts apart without a request: the app key is shared by
/// every account of an app, and token files and variable names are only names (two of them
/// may hold one account's token, and splitting those into two places would miss a real
/// overlap). So two remotes on different accounts with overlapping roots are judged to be one
/// place: a sync between them is refused, never run over itself.
fn location(api_url: &str, root: &str) -> Location {
    let mut space = "dropbox".to_owned();
    if api_url.trim_end_matches('/') != DEFAULT_API_URL {
        if let Ok(u) = url::Url::parse(api_url) {
            let host = u.host_str().unwrap_or("").to_ascii_lowercase();
            let port = u.port_or_known_default().unwrap_or(0);
            space.push_str(&format!("@{host}:{port}"));
        }
    }
    Location::new(space, &root.to_lowercase())
}

/// Opens `type = "dropbox"` remotes and `dropbox://folder/sub?app_key=…` URLs.
///
/// URL query keys: `app_key`, `app_secret_env`, `refresh_token_env`, `token_file`,
/// `access_token_env`, `chunk_size`, `session_chunk_size`, `list_limit`, `batch_size`,
/// `batch_timeout_ms`.
#[derive(Debug, Clone, Copy, Default)]
pub struct DropboxFactory;

#[async_trait]
impl BackendFactory for DropboxFactory {
    fn type_name(&self) -> &'static str {
        crate::TYPE_NAME
    }

    fn url_schemes(&self) -> &'static [&'static str] {
        &["dropbox"]
    }

    fn config_from_url(&self, url: &url::Url) -> Result<Value> {
        if !url.username().is_empty() || url.password().is_some() {
            return Err(Error::new(
                ErrorKind::ConfigInvalid,
                "dropbox URL: no user or password in the URL; tokens come from \
                 ?refresh_token_env=VAR or ?token_file=PATH",
            ));
        }
        let mut root = url.host_str().unwrap_or("").to_owned();
        root.push_str(url.path());
        let root = percent_decode_str(&root).decode_utf8_lossy();
        let mut cfg = serde_json::Map::new();
        cfg.insert(
            "root".into(),
            Value::String(root.trim_matches('/').to_owned()),
        );
        let text = QueryKind::Text;
        let number = QueryKind::Number;
        cloudsync_core::query_to_config(
            "dropbox",
            url,
            &[
                ("app_key", text),
                ("app_secret_env", text),
                ("refresh_token_env", text),
                ("token_file", text),
                ("access_token_env", text),
                ("chunk_size", number),
                ("session_chunk_size", number),
                ("list_limit", number),
                ("batch_size", number),
                ("batch_timeout_ms", number),
            ],
            &mut cfg,
        )?;
        Ok(Value::Object(cfg))
    }

    fn secret_keys(&self) -> &'static [&'static str] {
        &["app_secret", "refresh_token", "access_token"]
    }

    async fn open(&self, config: Value) -> Result<Arc<dyn Remote>> {
        let cfg: DropboxConfig = parse_config(crate::TYPE_NAME, config)?;
        Ok(Arc::new(cfg.build()?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validates_and_names_the_key() {
        let ok = DropboxConfig::new("k").with_refresh_token("r");
        let v = ok.validate().unwrap();
        assert_eq!(v.root, "");
        let v = ok.clone().with_root("/a/b/").validate().unwrap();
        assert_eq!(v.root, "/a/b");
        for (cfg, key) in [
            (ok.clone().with_chunk_size(5 * 1024 * 1024), "chunk_size"),
            (ok.clone().with_chunk_size(0), "chunk_size"),
            (ok.clone().with_chunk_size(152 * 1024 * 1024), "chunk_size"),
            (ok.clone().with_list_limit(0), "list_limit"),
            (ok.clone().with_batching(1001, 100), "batch_size"),
            (ok.clone().with_batching(10, 0), "batch_timeout_ms"),
            (ok.clone().with_root("a/../b"), "root"),
            (DropboxConfig::new("k"), "refresh_token_env"),
            (DropboxConfig::new("").with_refresh_token("r"), "app_key"),
            (
                ok.clone()
                    .with_refresh_token_env("CLOUDSYNC_NO_SUCH_VARIABLE"),
                "refresh_token_env",
            ),
            (
                ok.clone()
                    .with_urls("ftp://x", DEFAULT_CONTENT_URL, DEFAULT_TOKEN_URL),
                "api_url",
            ),
        ] {
            let e = cfg.validate().err().unwrap();
            assert_eq!(e.kind(), ErrorKind::ConfigInvalid);
            assert!(e.to_string().contains(&format!("`{key}`")), "{key}: {e}");
        }
        // An access token alone is enough (no refresh, no app key).
        DropboxConfig::default()
            .with_access_token("t")
            .validate()
            .unwrap();
    }

    #[test]
    fn debug_has_no_secrets() {
        let cfg = DropboxConfig::new("key")
            .with_refresh_token("refresh-secret")
            .with_access_token("access-secret")
            .with_app_secret("app-secret");
        let s = format!("{cfg:?}");
        assert!(!s.contains("secret\""), "{s}");
        for secret in ["refresh-secret", "access-secret", "app-secret"] {
            assert!(!s.contains(secret), "{s}");
        }
    }

    #[test]
    fn token_file_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tok.json");
        std::fs::write(&path, r#"{"refresh_token": "rt"}"#).unwrap();
        let cfg = DropboxConfig {
            token_file: Some(path),
            ..DropboxConfig::new("k")
        };
        let v = cfg.validate().unwrap();
        assert!(matches!(v.refresh, RefreshSource::File(_, ref t) if t.expose() == "rt"));
        assert!(v.access_token.is_none());
    }

    #[test]
    fn urls_become_configs() {
        let u = url::Url::parse(
            "dropbox://Backups/home%20a?app_key=k&refresh_token_env=RT&chunk_size=8388608",
        )
        .unwrap();
        let v = DropboxFactory.config_from_url(&u).unwrap();
        assert_eq!(v["root"], "Backups/home a");
        assert_eq!(v["app_key"], "k");
        assert_eq!(v["refresh_token_env"], "RT");
        assert_eq!(v["chunk_size"], 8388608);
        let u = url::Url::parse("dropbox://x?colour=red").unwrap();
        assert!(DropboxFactory.config_from_url(&u).is_err());
    }

    /// The root of a URL is percent-decoded: `+` stays a plus, `%2B` is a plus, `%XX` of
    /// UTF-8 is the character, a stray `%` stays, and invalid UTF-8 becomes U+FFFD.
    #[test]
    fn url_roots_are_percent_decoded() {
        let root = |s: &str| {
            let u = url::Url::parse(s).unwrap();
            DropboxFactory.config_from_url(&u).unwrap()["root"]
                .as_str()
                .unwrap()
                .to_owned()
        };
        assert_eq!(root("dropbox://Backups/home%20a"), "Backups/home a");
        assert_eq!(root("dropbox://a/b+c%2Bd"), "a/b+c+d");
        assert_eq!(root("dropbox://a/caf%C3%A9/"), "a/café");
        assert_eq!(root("dropbox://a/100%25/%zz"), "a/100%/%zz");
        assert_eq!(root("dropbox://a/x%FFy"), "a/x\u{FFFD}y");
        assert_eq!(root("dropbox://a/b=c;d"), "a/b=c;d");
        // The former decoder went through form decoding and cut the root at `&`.
        assert_eq!(root("dropbox://a/b&c"), "a/b&c");
    }

    /// A secret never comes in a URL: a user or password in one is refused, without the
    /// secret in the error.
    #[test]
    fn url_refuses_user_and_password() {
        for u in [
            "dropbox://user:hunter2@Backups?app_key=k",
            "dropbox://hunter2@Backups?app_key=k",
            "dropbox://:hunter2@Backups",
        ] {
            let url = url::Url::parse(u).unwrap();
            let e = DropboxFactory.config_from_url(&url).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::ConfigInvalid, "{u}");
            assert!(e.to_string().contains("password"), "{e}");
            assert!(!format!("{e}{e:?}").contains("hunter2"), "{e}");
        }
    }

    #[tokio::test]
    async fn factory_rejects_unknown_keys() {
        let e = DropboxFactory
            .open(serde_json::json!({"app_key": "k", "refresh_token": "r", "colour": "red"}))
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::ConfigInvalid);
        assert!(e.to_string().contains("colour"), "{e}");
    }
}
