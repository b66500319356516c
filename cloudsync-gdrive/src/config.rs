//! Configuration of the `gdrive` remote type.

use std::fmt;
use std::path::PathBuf;

use std::sync::Arc;

use async_trait::async_trait;
use cloudsync_core::{
    BackendFactory, Error, ErrorKind, Location, Remote, Result, Secret, parse_config,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::backend::DriveRemote;
use crate::core::DriveCore;

/// Default size of one resumable-upload chunk, and the size above which uploads are resumable
/// (8 MiB).
pub const DEFAULT_CHUNK_SIZE: u64 = 8 * 1024 * 1024;

/// Resumable-upload chunks are multiples of this (256 KiB), as the Drive API requires.
pub const CHUNK_QUANTUM: u64 = 256 * 1024;

/// The Drive API v3 endpoint.
pub const DEFAULT_API_URL: &str = "https://www.googleapis.com/drive/v3";
/// The Drive API v3 upload endpoint.
pub const DEFAULT_UPLOAD_URL: &str = "https://www.googleapis.com/upload/drive/v3";
/// Google's OAuth 2.0 token endpoint.
pub const DEFAULT_TOKEN_URL: &str = "https://oauth2.googleapis.com/token";
/// Default `timeout`, in seconds.
pub(crate) const DEFAULT_TIMEOUT_SECS: u64 = 300;

/// Configuration of a `gdrive` remote.
///
/// Authentication is either an OAuth 2.0 refresh token (`client_id` with
/// `refresh_token_env` or `token_file`, and `client_secret_env` when the client has a secret)
/// or a service account (`service_account_file`).
///
/// ```
/// use cloudsync_gdrive::GdriveConfig;
/// let cfg: GdriveConfig = serde_json::from_value(serde_json::json!({
///     "client_id": "123.apps.googleusercontent.com",
///     "client_secret_env": "GDRIVE_CLIENT_SECRET",
///     "refresh_token_env": "GDRIVE_REFRESH_TOKEN",
///     "root_folder_id": "1AbCdEf",
/// }))?;
/// assert!(cfg.use_trash);
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
#[non_exhaustive]
pub struct GdriveConfig {
    /// OAuth 2.0 client id.
    pub client_id: Option<String>,
    /// Name of the environment variable holding the OAuth 2.0 client secret.
    pub client_secret_env: Option<String>,
    /// Name of the environment variable holding the refresh token.
    pub refresh_token_env: Option<String>,
    /// A JSON file with a `refresh_token` (as written by the `gdrive_authorize` example).
    pub token_file: Option<PathBuf>,
    /// A service-account JSON key file (signs JWTs with its RSA key).
    pub service_account_file: Option<PathBuf>,
    /// The folder that is the remote's root (default: My Drive's root, or the shared drive).
    pub root_folder_id: Option<String>,
    /// A shared drive to work in.
    pub drive_id: Option<String>,
    /// Deletes move files to the trash (default) instead of deleting them for good.
    pub use_trash: bool,
    /// Lets `cleanup` empty the trash of the whole drive (My Drive, or the shared drive of
    /// `drive_id`) although the remote is rooted at a folder below the drive's root (default
    /// `false`: refused). Drive's trash belongs to the drive, not to a folder, so emptying it
    /// removes for good what was trashed anywhere in the drive, outside the remote too.
    pub cleanup_whole_trash: bool,
    /// Uploads above this size use resumable sessions in chunks of this size (a multiple of
    /// 256 KiB).
    pub chunk_size: u64,
    /// The Drive API endpoint (tests point it at the emulator).
    pub api_url: String,
    /// The upload endpoint.
    pub upload_url: String,
    /// The OAuth 2.0 token endpoint.
    pub token_url: String,
    /// Seconds a request may go without progress: the whole time of a metadata call (body
    /// included), the longest silence of a transfer. A server that stalls fails the call
    /// with a temporary error. Default 300.
    pub timeout: u64,
}

impl Default for GdriveConfig {
    fn default() -> Self {
        GdriveConfig {
            client_id: None,
            client_secret_env: None,
            refresh_token_env: None,
            token_file: None,
            service_account_file: None,
            root_folder_id: None,
            drive_id: None,
            use_trash: true,
            cleanup_whole_trash: false,
            chunk_size: DEFAULT_CHUNK_SIZE,
            api_url: DEFAULT_API_URL.into(),
            upload_url: DEFAULT_UPLOAD_URL.into(),
            token_url: DEFAULT_TOKEN_URL.into(),
            timeout: DEFAULT_TIMEOUT_SECS,
        }
    }
}

impl fmt::Debug for GdriveConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GdriveConfig")
            .field("client_id", &self.client_id)
            .field("client_secret_env", &self.client_secret_env)
            .field("refresh_token_env", &self.refresh_token_env)
            .field("token_file", &self.token_file)
            .field("service_account_file", &self.service_account_file)
            .field("root_folder_id", &self.root_folder_id)
            .field("drive_id", &self.drive_id)
            .field("use_trash", &self.use_trash)
            .field("cleanup_whole_trash", &self.cleanup_whole_trash)
            .field("chunk_size", &self.chunk_size)
            .field("api_url", &self.api_url)
            .field("upload_url", &self.upload_url)
            .field("token_url", &self.token_url)
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// Where access tokens come from. Every secret is a [`Secret`], so the derived `Debug` shows
/// `***` for it.
#[derive(Debug, Clone)]
pub(crate) enum Credentials {
    Refresh {
        client_id: String,
        client_secret: Option<Secret>,
        refresh_token: Secret,
    },
    ServiceAccount {
        email: String,
        /// The RSA key as PEM PKCS#8 (checked to decode when the config is validated).
        key_pem: Secret,
    },
}

/// A validated configuration.
#[derive(Debug, Clone)]
pub(crate) struct Validated {
    pub(crate) credentials: Credentials,
    pub(crate) root_id: String,
    pub(crate) drive_id: Option<String>,
    pub(crate) use_trash: bool,
    pub(crate) cleanup_whole_trash: bool,
    pub(crate) chunk_size: u64,
    pub(crate) api_url: String,
    pub(crate) upload_url: String,
    pub(crate) token_url: String,
    pub(crate) timeout: std::time::Duration,
}

pub(crate) fn invalid(key: &str, why: impl fmt::Display) -> Error {
    Error::new(
        ErrorKind::ConfigInvalid,
        format!("gdrive config `{key}`: {why}"),
    )
}

fn env_secret(key: &str, var: &str) -> Result<Secret> {
    std::env::var(var)
        .map(Secret::from)
        .map_err(|_| invalid(key, format!("environment variable {var} is not set")))
}

fn http_url(key: &str, s: &str) -> Result<String> {
    let u = url::Url::parse(s).map_err(|e| invalid(key, e))?;
    if !matches!(u.scheme(), "http" | "https") {
        return Err(invalid(key, "scheme must be http or https"));
    }
    Ok(s.trim_end_matches('/').to_owned())
}

#[derive(Deserialize)]
struct TokenFile {
    refresh_token: Secret,
}

#[derive(Deserialize)]
struct ServiceAccountFile {
    client_email: String,
    private_key: Secret,
}

/// The DER bytes inside a PEM `PRIVATE KEY` block.
pub(crate) fn pem_to_der(pem: &str) -> Option<Vec<u8>> {
    use base64::Engine as _;
    let start = pem.find("-----BEGIN PRIVATE KEY-----")? + "-----BEGIN PRIVATE KEY-----".len();
    let end = pem.find("-----END PRIVATE KEY-----")?;
    let body: String = pem
        .get(start..end)?
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    base64::engine::general_purpose::STANDARD.decode(body).ok()
}

impl GdriveConfig {
    /// A config using an OAuth 2.0 refresh token read from the environment variable
    /// `refresh_token_env`.
    pub fn oauth(client_id: impl Into<String>, refresh_token_env: impl Into<String>) -> Self {
        GdriveConfig {
            client_id: Some(client_id.into()),
            refresh_token_env: Some(refresh_token_env.into()),
            ..Default::default()
        }
    }

    /// A config authenticating as the service account whose JSON key is at `path`.
    pub fn service_account(path: impl Into<PathBuf>) -> Self {
        GdriveConfig {
            service_account_file: Some(path.into()),
            ..Default::default()
        }
    }

    /// Points the API, upload and token endpoints at `base` (`{base}/drive/v3`,
    /// `{base}/upload/drive/v3`, `{base}/token`), as the emulator serves them.
    pub fn with_endpoint(mut self, base: &str) -> Self {
        let base = base.trim_end_matches('/');
        self.api_url = format!("{base}/drive/v3");
        self.upload_url = format!("{base}/upload/drive/v3");
        self.token_url = format!("{base}/token");
        self
    }

    /// Roots the remote at a folder id.
    pub fn with_root_folder_id(mut self, id: impl Into<String>) -> Self {
        self.root_folder_id = Some(id.into());
        self
    }

    /// Sets the resumable-upload chunk size.
    pub fn with_chunk_size(mut self, chunk_size: u64) -> Self {
        self.chunk_size = chunk_size;
        self
    }

    /// Sets the [`GdriveConfig::timeout`] in seconds.
    pub fn with_timeout(mut self, secs: u64) -> Self {
        self.timeout = secs;
        self
    }

    /// Deletes to the trash (`true`, the default) or for good.
    pub fn with_use_trash(mut self, yes: bool) -> Self {
        self.use_trash = yes;
        self
    }

    /// Sets [`GdriveConfig::cleanup_whole_trash`].
    pub fn with_cleanup_whole_trash(mut self, yes: bool) -> Self {
        self.cleanup_whole_trash = yes;
        self
    }

    /// Sets the shared drive to work in ([`GdriveConfig::drive_id`]).
    pub fn with_drive_id(mut self, id: impl Into<String>) -> Self {
        self.drive_id = Some(id.into());
        self
    }

    /// Validates the configuration (reading secrets) and builds the remote: the one way to
    /// open a Drive remote. No request is sent until the remote is used.
    pub fn build(&self) -> Result<DriveRemote> {
        let v = self.validate()?;
        let location = location(v.drive_id.as_deref(), &v.root_id, &v.api_url);
        Ok(DriveRemote::from_core(DriveCore::new(v)?, location))
    }

    /// Checks the configuration and reads secrets (environment, token file, key file).
    pub(crate) fn validate(&self) -> Result<Validated> {
        if self.chunk_size == 0 || self.chunk_size % CHUNK_QUANTUM != 0 {
            return Err(invalid(
                "chunk_size",
                format!("must be a positive multiple of {CHUNK_QUANTUM} (256 KiB)"),
            ));
        }
        if self.timeout == 0 {
            return Err(invalid("timeout", "must be at least 1 second"));
        }
        let credentials = match (&self.service_account_file, &self.client_id) {
            (Some(_), Some(_)) => {
                return Err(invalid(
                    "service_account_file",
                    "set `service_account_file` or `client_id`, not both",
                ));
            }
            (Some(path), None) => {
                let text = std::fs::read_to_string(path).map_err(|e| {
                    invalid(
                        "service_account_file",
                        format!("cannot read {}: {e}", path.display()),
                    )
                })?;
                let sa: ServiceAccountFile =
                    serde_json::from_str(&text).map_err(|e| invalid("service_account_file", e))?;
                if pem_to_der(sa.private_key.expose()).is_none() {
                    return Err(invalid(
                        "service_account_file",
                        "private_key is not a PEM PKCS#8 key",
                    ));
                }
                Credentials::ServiceAccount {
                    email: sa.client_email,
                    key_pem: sa.private_key,
                }
            }
            (None, Some(client_id)) => {
                let refresh_token = match (&self.refresh_token_env, &self.token_file) {
                    (Some(_), Some(_)) => {
                        return Err(invalid(
                            "token_file",
                            "set `refresh_token_env` or `token_file`, not both",
                        ));
                    }
                    (Some(var), None) => env_secret("refresh_token_env", var)?,
                    (None, Some(path)) => {
                        let text = std::fs::read_to_string(path).map_err(|e| {
                            invalid("token_file", format!("cannot read {}: {e}", path.display()))
                        })?;
                        serde_json::from_str::<TokenFile>(&text)
                            .map_err(|e| invalid("token_file", e))?
                            .refresh_token
                    }
                    (None, None) => {
                        return Err(invalid(
                            "refresh_token_env",
                            "missing (or set `token_file`)",
                        ));
                    }
                };
                let client_secret = match &self.client_secret_env {
                    Some(var) => Some(env_secret("client_secret_env", var)?),
                    None => None,
                };
                Credentials::Refresh {
                    client_id: client_id.clone(),
                    client_secret,
                    refresh_token,
                }
            }
            (None, None) => {
                return Err(invalid(
                    "client_id",
                    "missing (or set `service_account_file`)",
                ));
            }
        };
        let root_id = self
            .root_folder_id
            .clone()
            .or_else(|| self.drive_id.clone())
            .unwrap_or_else(|| "root".into());
        if root_id.is_empty() || root_id.contains(['/', '\'', '\\']) {
            return Err(invalid("root_folder_id", "not a file id"));
        }
        Ok(Validated {
            credentials,
            root_id,
            drive_id: self.drive_id.clone(),
            use_trash: self.use_trash,
            cleanup_whole_trash: self.cleanup_whole_trash,
            chunk_size: self.chunk_size,
            api_url: http_url("api_url", &self.api_url)?,
            upload_url: http_url("upload_url", &self.upload_url)?,
            token_url: http_url("token_url", &self.token_url)?,
            timeout: std::time::Duration::from_secs(self.timeout),
        })
    }
}
/// Where the root folder is. Drive has no paths to compare, only ids, so the space is the
/// root's own id: `gdrive:folder:ID` for a `root_folder_id`, `gdrive:drive:ID` for the root of
/// a shared drive, `gdrive:my-drive` for My Drive (plus the API endpoint's host and port when
/// it is not Google's, as for an emulator). Two remotes with one root are one place, and the
/// sub-folders of one root (`Prefix` views) nest as paths do.
///
/// Without a request nothing tells which drive a folder id lies in, or which account a My
/// Drive is: a `root_folder_id` inside another remote's drive is judged apart from it, and
/// the My Drives of two accounts are judged one place (a refused sync, never a lost file).
pub(crate) fn location(drive_id: Option<&str>, root_id: &str, api_url: &str) -> Location {
    let mut space = match drive_id {
        _ if root_id == "root" => "gdrive:my-drive".to_owned(),
        Some(d) if d == root_id => format!("gdrive:drive:{d}"),
        _ => format!("gdrive:folder:{root_id}"),
    };
    if api_url.trim_end_matches('/') != DEFAULT_API_URL {
        if let Ok(u) = url::Url::parse(api_url) {
            let host = u.host_str().unwrap_or("").to_ascii_lowercase();
            let port = u.port_or_known_default().unwrap_or(0);
            space.push_str(&format!("@{host}:{port}"));
        }
    }
    Location::new(space, "")
}

/// Opens `gdrive` remotes from configuration.
///
/// ```
/// use cloudsync_core::BackendFactory;
/// assert_eq!(cloudsync_gdrive::GdriveFactory.type_name(), "gdrive");
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct GdriveFactory;

#[async_trait]
impl BackendFactory for GdriveFactory {
    fn type_name(&self) -> &'static str {
        "gdrive"
    }

    async fn open(&self, config: Value) -> Result<Arc<dyn Remote>> {
        let cfg: GdriveConfig = parse_config("gdrive", config)?;
        Ok(Arc::new(cfg.build()?))
    }
}
