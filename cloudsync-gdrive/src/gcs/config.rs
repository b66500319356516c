//! Configuration of the `gcs` remote type.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use std::sync::Arc;

use async_trait::async_trait;
use cloudsync_core::{
    BackendFactory, Error, ErrorKind, Location, QueryKind, Remote, RemotePath, Result, parse_config,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::auth::{
    self, GCS_SCOPE, METADATA_TOKEN_URL, TokenSource, application_default_file,
    credentials_from_file,
};
use crate::config::{Credentials, DEFAULT_TOKEN_URL};

use super::backend::GcsRemote;
use super::core::GcsCore;

/// The Cloud Storage endpoint (the JSON API lives below it at `/storage/v1`).
pub const DEFAULT_GCS_URL: &str = "https://storage.googleapis.com";

/// Resumable-upload chunks are multiples of this (256 KiB), as the JSON API requires of every
/// chunk but the last.
pub const GCS_CHUNK_QUANTUM: u64 = 256 * 1024;

/// Default size of one resumable-upload chunk (8 MiB, as rclone and Google's clients use).
pub const DEFAULT_GCS_CHUNK_SIZE: u64 = 8 * 1024 * 1024;

/// Default size up to which content goes up in one multipart request (8 MiB); larger content
/// goes through a resumable session.
pub const DEFAULT_GCS_UPLOAD_CUTOFF: u64 = 8 * 1024 * 1024;

/// The largest `chunk_size` and `upload_cutoff` (1 GiB): both are held in memory.
pub(crate) const MAX_BUFFER: u64 = 1024 * 1024 * 1024;

/// Default `timeout`, in seconds.
const DEFAULT_TIMEOUT_SECS: u64 = 300;

/// Configuration of a `gcs` remote.
///
/// Credentials: `service_account_file` (a JSON key), else `anonymous` (public buckets and
/// emulators), else Application Default Credentials (`GOOGLE_APPLICATION_CREDENTIALS`, the
/// gcloud ADC file or the metadata server).
///
/// ```
/// use cloudsync_gdrive::GcsConfig;
/// let cfg: GcsConfig = serde_json::from_value(serde_json::json!({
///     "bucket": "backups",
///     "prefix": "home/photos",
///     "service_account_file": "/etc/cloudsync/sa.json",
/// }))?;
/// assert_eq!(cfg.bucket, "backups");
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
#[non_exhaustive]
pub struct GcsConfig {
    /// The bucket name.
    pub bucket: String,
    /// The remote's root inside the bucket (`a/b`, no leading or trailing `/` needed).
    pub prefix: String,
    /// Path of a service-account JSON key file (or a gcloud `authorized_user` file).
    pub service_account_file: Option<String>,
    /// Send requests without credentials (public buckets, emulators).
    pub anonymous: bool,
    /// Another endpoint than `https://storage.googleapis.com` (emulators such as
    /// fake-gcs-server); `http://` is allowed here. A trailing `/storage/v1` (rclone's
    /// `endpoint` form) is accepted too.
    pub base_url: Option<String>,
    /// Resumable uploads send chunks of this size (a multiple of 256 KiB; default 8 MiB).
    pub chunk_size: u64,
    /// Content up to this size goes up in one multipart request, larger content through a
    /// resumable session (default 8 MiB).
    pub upload_cutoff: u64,
    /// Seconds a request may go without progress: the whole time of a metadata call, the
    /// longest silence of a transfer. Default 300.
    pub timeout: u64,
    /// The OAuth 2.0 token endpoint for service accounts and user logins (default: the one
    /// the key file names, else Google's).
    pub token_url: Option<String>,
}

impl Default for GcsConfig {
    fn default() -> Self {
        GcsConfig {
            bucket: String::new(),
            prefix: String::new(),
            service_account_file: None,
            anonymous: false,
            base_url: None,
            chunk_size: DEFAULT_GCS_CHUNK_SIZE,
            upload_cutoff: DEFAULT_GCS_UPLOAD_CUTOFF,
            timeout: DEFAULT_TIMEOUT_SECS,
            token_url: None,
        }
    }
}

impl fmt::Debug for GcsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GcsConfig")
            .field("bucket", &self.bucket)
            .field("prefix", &self.prefix)
            .field("service_account_file", &self.service_account_file)
            .field("anonymous", &self.anonymous)
            .field("base_url", &self.base_url.as_deref().map(redact))
            .field("chunk_size", &self.chunk_size)
            .field("upload_cutoff", &self.upload_cutoff)
            .field("timeout", &self.timeout)
            .field("token_url", &self.token_url.as_deref().map(redact))
            .finish()
    }
}

fn redact(url: &str) -> String {
    cloudsync_core::redact_location(url)
}

pub(crate) fn invalid(key: &str, why: impl fmt::Display) -> Error {
    Error::new(
        ErrorKind::ConfigInvalid,
        format!("gcs config `{key}`: {why}"),
    )
}

fn http_url(key: &str, s: &str) -> Result<String> {
    let u = url::Url::parse(s).map_err(|e| invalid(key, e))?;
    if !matches!(u.scheme(), "http" | "https") {
        return Err(invalid(key, "scheme must be http or https"));
    }
    Ok(s.trim_end_matches('/').to_owned())
}

/// How requests are authorized.
#[derive(Debug)]
pub(crate) enum Auth {
    /// No `Authorization` header.
    Anonymous,
    /// Bearer tokens from a Google grant.
    Tokens(Box<TokenSource>),
}

/// A validated configuration.
#[derive(Debug)]
pub(crate) struct Validated {
    pub(crate) bucket: String,
    /// The root inside the bucket, as path segments.
    pub(crate) prefix: RemotePath,
    /// `{base}/storage/v1`.
    pub(crate) api_url: String,
    /// `{base}/upload/storage/v1`.
    pub(crate) upload_url: String,
    pub(crate) chunk_size: u64,
    pub(crate) upload_cutoff: u64,
    pub(crate) timeout: Duration,
    pub(crate) auth: Auth,
}

impl GcsConfig {
    /// A config for `bucket` with everything else at its default.
    pub fn new(bucket: impl Into<String>) -> Self {
        GcsConfig {
            bucket: bucket.into(),
            ..Default::default()
        }
    }

    /// Roots the remote at `prefix` inside the bucket.
    pub fn with_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// Talks to `base_url` (an emulator) without credentials.
    pub fn with_emulator(mut self, base_url: impl Into<String>) -> Self {
        self.base_url = Some(base_url.into());
        self.anonymous = true;
        self
    }

    /// Sets the resumable-upload chunk size (a multiple of 256 KiB).
    pub fn with_chunk_size(mut self, chunk_size: u64) -> Self {
        self.chunk_size = chunk_size;
        self
    }

    /// Sets the size above which uploads are resumable.
    pub fn with_upload_cutoff(mut self, cutoff: u64) -> Self {
        self.upload_cutoff = cutoff;
        self
    }

    /// Sets the [`GcsConfig::timeout`] in seconds.
    pub fn with_timeout(mut self, secs: u64) -> Self {
        self.timeout = secs;
        self
    }

    /// Validates the configuration and builds the remote: the one way to open a Cloud
    /// Storage remote. No request is sent.
    pub fn build(&self) -> Result<GcsRemote> {
        let v = self.validate()?;
        let location = Location::new(format!("gs://{}", v.bucket), v.prefix.as_str());
        Ok(GcsRemote::from_core(GcsCore::new(v)?, location))
    }

    /// Checks the configuration and reads the key file. No request is sent.
    pub(crate) fn validate(&self) -> Result<Validated> {
        if self.bucket.is_empty() {
            return Err(invalid("bucket", "missing"));
        }
        // Bucket names: 3-222 characters of [a-z0-9_.-] ("Bucket naming rules" in the Cloud
        // Storage documentation); anything else could not be a bucket and would only change
        // the meaning of the URL.
        if !self
            .bucket
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-_.".contains(&b))
            || self.bucket.len() > 222
        {
            return Err(invalid(
                "bucket",
                "a bucket name has only lowercase letters, digits, `-`, `_` and `.`",
            ));
        }
        let prefix = RemotePath::new(self.prefix.trim_matches('/'))
            .map_err(|e| invalid("prefix", e.message()))?;
        if self.chunk_size == 0 || self.chunk_size % GCS_CHUNK_QUANTUM != 0 {
            return Err(invalid(
                "chunk_size",
                format!("must be a positive multiple of {GCS_CHUNK_QUANTUM} (256 KiB)"),
            ));
        }
        if self.chunk_size > MAX_BUFFER {
            return Err(invalid(
                "chunk_size",
                "must be at most 1 GiB (it is held in memory)",
            ));
        }
        if self.upload_cutoff > MAX_BUFFER {
            return Err(invalid(
                "upload_cutoff",
                "must be at most 1 GiB (it is held in memory)",
            ));
        }
        if self.timeout == 0 {
            return Err(invalid("timeout", "must be at least 1 second"));
        }
        if self.anonymous && self.service_account_file.is_some() {
            return Err(invalid(
                "anonymous",
                "set `anonymous` or `service_account_file`, not both",
            ));
        }
        let base = match &self.base_url {
            Some(u) => {
                let u = http_url("base_url", u)?;
                u.strip_suffix("/storage/v1").unwrap_or(&u).to_owned()
            }
            None => DEFAULT_GCS_URL.to_owned(),
        };
        let timeout = Duration::from_secs(self.timeout);
        let token_url = match &self.token_url {
            Some(u) => Some(http_url("token_url", u)?),
            None => None,
        };
        let auth = if self.anonymous {
            Auth::Anonymous
        } else {
            let file = match &self.service_account_file {
                Some(f) => Some((PathBuf::from(f), "service_account_file")),
                None => application_default_file().map(|f| (f, "GOOGLE_APPLICATION_CREDENTIALS")),
            };
            match file {
                Some((path, key)) => {
                    let (creds, file_token_url) =
                        credentials_from_file(&path, &|why| invalid(key, why))?;
                    let url = match (&token_url, file_token_url, &creds) {
                        (Some(u), _, _) => u.clone(),
                        (None, Some(u), Credentials::ServiceAccount { .. }) => http_url(key, &u)?,
                        _ => DEFAULT_TOKEN_URL.to_owned(),
                    };
                    Auth::Tokens(Box::new(
                        TokenSource::new(creds, url, timeout).with_scope(GCS_SCOPE),
                    ))
                }
                None => Auth::Tokens(Box::new(
                    TokenSource::metadata_server(
                        token_url.unwrap_or_else(|| METADATA_TOKEN_URL.to_owned()),
                        timeout,
                    )
                    .with_scope(auth::GCS_SCOPE),
                )),
            }
        };
        Ok(Validated {
            bucket: self.bucket.clone(),
            prefix,
            api_url: format!("{base}/storage/v1"),
            upload_url: format!("{base}/upload/storage/v1"),
            chunk_size: self.chunk_size,
            upload_cutoff: self.upload_cutoff,
            timeout,
            auth,
        })
    }
}

/// Opens `gcs` remotes from configuration and `gs://bucket/prefix` URLs.
///
/// ```
/// use cloudsync_core::BackendFactory;
/// let url = url::Url::parse("gs://backups/photos?anonymous=true").unwrap();
/// let cfg = cloudsync_gdrive::GcsFactory.config_from_url(&url)?;
/// assert_eq!(cfg["bucket"], "backups");
/// assert_eq!(cfg["prefix"], "photos");
/// # Ok::<(), cloudsync_core::Error>(())
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct GcsFactory;

#[async_trait]
impl BackendFactory for GcsFactory {
    fn type_name(&self) -> &'static str {
        "gcs"
    }

    fn url_schemes(&self) -> &'static [&'static str] {
        &["gs", "gcs"]
    }

    fn config_from_url(&self, url: &url::Url) -> Result<Value> {
        let bucket = url.host_str().ok_or_else(|| {
            invalid(
                "bucket",
                format!(
                    "no bucket in {}",
                    cloudsync_core::redact_location(url.as_str())
                ),
            )
        })?;
        if !url.username().is_empty() || url.password().is_some() {
            return Err(Error::new(
                ErrorKind::ConfigInvalid,
                "gcs URL: no user or password in the URL; credentials come from \
                 ?service_account_file=PATH or Application Default Credentials",
            ));
        }
        let mut cfg = serde_json::Map::new();
        cfg.insert("bucket".into(), Value::String(bucket.to_owned()));
        let prefix = percent_encoding::percent_decode_str(url.path().trim_matches('/'))
            .decode_utf8()
            .map_err(|e| invalid("prefix", e))?;
        cfg.insert("prefix".into(), Value::String(prefix.into_owned()));
        cloudsync_core::query_to_config(
            "gcs",
            url,
            &[
                ("service_account_file", QueryKind::Text),
                ("base_url", QueryKind::Text),
                ("anonymous", QueryKind::Flag),
                ("chunk_size", QueryKind::Number),
                ("upload_cutoff", QueryKind::Number),
                ("timeout", QueryKind::Number),
            ],
            &mut cfg,
        )?;
        Ok(Value::Object(cfg))
    }

    async fn open(&self, config: Value) -> Result<Arc<dyn Remote>> {
        let cfg: GcsConfig = parse_config("gcs", config)?;
        Ok(Arc::new(cfg.build()?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_errors_name_the_key() {
        let e = GcsConfig::default().validate().unwrap_err();
        assert_eq!(e.kind(), ErrorKind::ConfigInvalid);
        assert!(e.message().contains("`bucket`"), "{e}");
        for bad in ["a/b", "B", "a?b", "a#b"] {
            let e = GcsConfig::new(bad).validate().unwrap_err();
            assert!(e.message().contains("`bucket`"), "{bad}: {e}");
        }
        let e = GcsConfig::new("b")
            .with_emulator("ftp://x")
            .validate()
            .unwrap_err();
        assert!(e.message().contains("`base_url`"), "{e}");
        let e = GcsConfig::new("b")
            .with_prefix("a/../b")
            .validate()
            .unwrap_err();
        assert!(e.message().contains("`prefix`"), "{e}");
        let e = GcsConfig::new("b")
            .with_emulator("http://127.0.0.1:1")
            .with_chunk_size(1000)
            .validate()
            .unwrap_err();
        assert!(e.message().contains("`chunk_size`"), "{e}");
        let e = GcsConfig::new("b")
            .with_emulator("http://127.0.0.1:1")
            .with_upload_cutoff(u64::MAX)
            .validate()
            .unwrap_err();
        assert!(e.message().contains("`upload_cutoff`"), "{e}");
        let e = GcsConfig::new("b")
            .with_emulator("http://127.0.0.1:1")
            .with_chunk_size(1 << 40)
            .validate()
            .unwrap_err();
        assert!(e.message().contains("`chunk_size`"), "{e}");
        let mut both = GcsConfig::new("b").with_emulator("http://127.0.0.1:1");
        both.service_account_file = Some("/nonexistent.json".into());
        let e = both.validate().unwrap_err();
        assert!(e.message().contains("`anonymous`"), "{e}");
    }

    #[test]
    fn endpoint_in_rclone_form_is_accepted() {
        let v = GcsConfig::new("b")
            .with_emulator("http://127.0.0.1:9/storage/v1/")
            .validate()
            .unwrap();
        assert_eq!(v.api_url, "http://127.0.0.1:9/storage/v1");
        assert_eq!(v.upload_url, "http://127.0.0.1:9/upload/storage/v1");
    }

    #[test]
    fn a_key_file_that_is_not_one_is_a_config_error_without_its_content() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("key.json");
        std::fs::write(
            &f,
            r#"{"type":"service_account","client_email":"a@b","private_key":"sekrit-771"}"#,
        )
        .unwrap();
        let mut cfg = GcsConfig::new("b");
        cfg.service_account_file = Some(f.display().to_string());
        let e = cfg.validate().unwrap_err();
        assert_eq!(e.kind(), ErrorKind::ConfigInvalid);
        assert!(e.message().contains("`service_account_file`"), "{e}");
        assert!(!format!("{e:?}{e}").contains("sekrit-771"));
    }

    #[test]
    fn url_rejects_unknown_keys() {
        let url = url::Url::parse("gs://b/p?nope=1").unwrap();
        assert!(GcsFactory.config_from_url(&url).is_err());
    }

    /// A secret never comes in a URL: a user or password in one is refused, without the
    /// secret in the error.
    #[test]
    fn url_refuses_user_and_password() {
        for u in [
            "gs://user:hunter2@b/p",
            "gs://hunter2@b/p",
            "gcs://:hunter2@b",
        ] {
            let url = url::Url::parse(u).unwrap();
            let e = GcsFactory.config_from_url(&url).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::ConfigInvalid, "{u}");
            assert!(e.to_string().contains("password"), "{e}");
            assert!(!format!("{e}{e:?}").contains("hunter2"), "{e}");
        }
        let url = url::Url::parse("gs://b/p?anonymous=true").unwrap();
        assert_eq!(GcsFactory.config_from_url(&url).unwrap()["bucket"], "b");
    }
}
