//! Google Cloud Storage (type `gcs`, URLs `gs://bucket/prefix`): object_store's GCP store behind
//! core's [`ObjectStoreRemote`].
//!
//! Directories are implicit, writes are atomic (an object appears whole), large files go up as
//! multipart uploads, modtimes are the upload time (they cannot be set: the engine compares
//! sizes, like rclone does for such remotes) and no hash is declared (object_store's listings do
//! not carry `md5Hash`).

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use cloudsync_core::{
    BackendFactory, Capabilities, Error, ErrorKind, ObjectStoreRemote, QueryKind, Remote,
    RemotePath, Result, parse_config,
};
use object_store::gcp::GcpCredential;
use object_store::gcp::GoogleCloudStorageBuilder;
use object_store::{ClientOptions, StaticCredentialProvider};
use serde::{Deserialize, Serialize};
use serde_json::Value;

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
#[derive(Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
#[non_exhaustive]
pub struct GcsConfig {
    /// The bucket name.
    pub bucket: String,
    /// The remote's root inside the bucket (`a/b`, no leading or trailing `/` needed).
    pub prefix: String,
    /// Path of a service-account JSON key file.
    pub service_account_file: Option<String>,
    /// Send requests unsigned (public buckets, emulators).
    pub anonymous: bool,
    /// Another endpoint than `https://storage.googleapis.com` (emulators such as
    /// fake-gcs-server); `http://` is allowed here.
    pub base_url: Option<String>,
}

impl fmt::Debug for GcsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GcsConfig")
            .field("bucket", &self.bucket)
            .field("prefix", &self.prefix)
            .field("service_account_file", &self.service_account_file)
            .field("anonymous", &self.anonymous)
            .field("base_url", &self.base_url)
            .finish()
    }
}

fn invalid(key: &str, why: impl fmt::Display) -> Error {
    Error::new(
        ErrorKind::ConfigInvalid,
        format!("gcs config `{key}`: {why}"),
    )
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

    /// Validates the configuration and builds the remote. No request is sent.
    pub fn build(&self) -> Result<ObjectStoreRemote> {
        if self.bucket.is_empty() {
            return Err(invalid("bucket", "missing"));
        }
        if self.bucket.contains('/') {
            return Err(invalid("bucket", "must not contain `/`"));
        }
        let prefix = RemotePath::new(self.prefix.trim_matches('/'))
            .map_err(|e| invalid("prefix", e.message()))?;
        if self.anonymous && self.service_account_file.is_some() {
            return Err(invalid(
                "anonymous",
                "set `anonymous` or `service_account_file`, not both",
            ));
        }
        let mut options = ClientOptions::new();
        let mut b = GoogleCloudStorageBuilder::new().with_bucket_name(&self.bucket);
        if let Some(url) = &self.base_url {
            let parsed = url::Url::parse(url).map_err(|e| invalid("base_url", e))?;
            match parsed.scheme() {
                "https" => {}
                "http" => options = options.with_allow_http(true),
                _ => return Err(invalid("base_url", "scheme must be http or https")),
            }
            b = b.with_base_url(url.trim_end_matches('/'));
        }
        if let Some(sa) = &self.service_account_file {
            if !std::path::Path::new(sa).is_file() {
                return Err(invalid(
                    "service_account_file",
                    format!("{sa} is not a file"),
                ));
            }
            b = b.with_service_account_path(sa);
        }
        if self.anonymous {
            // `with_skip_signature` alone is not enough: object_store 0.14 still fetches a
            // credential (from the metadata server) for uploads, so hand it an empty one.
            b = b.with_skip_signature(true).with_credentials(Arc::new(
                StaticCredentialProvider::new(GcpCredential {
                    bearer: String::new(),
                }),
            ));
        }
        let store = b
            .with_client_options(options)
            .build()
            .map_err(|e| invalid("bucket", &e).with_source(e))?;
        let mut name = format!("gs://{}", self.bucket);
        if !prefix.is_root() {
            name.push('/');
            name.push_str(prefix.as_str());
        }
        Ok(ObjectStoreRemote::new(Arc::new(store), name)
            .with_space(format!("gs://{}", self.bucket))
            .with_prefix(&prefix)
            .with_capabilities(gcs_capabilities()))
    }
}

/// What a GCS remote can do.
fn gcs_capabilities() -> Capabilities {
    Capabilities {
        // Upload times, to the millisecond; they cannot be written.
        modtime_precision: Some(Duration::from_millis(1)),
        copy: true,
        rename: true,
        list_recursive: true,
        max_name_len: Some(1024),
        ..Default::default()
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
        let e = GcsConfig::default().build().unwrap_err();
        assert_eq!(e.kind(), ErrorKind::ConfigInvalid);
        assert!(e.message().contains("`bucket`"), "{e}");
        let e = GcsConfig::new("b")
            .with_emulator("ftp://x")
            .build()
            .unwrap_err();
        assert!(e.message().contains("`base_url`"), "{e}");
        let e = GcsConfig::new("b")
            .with_prefix("a/../b")
            .build()
            .unwrap_err();
        assert!(e.message().contains("`prefix`"), "{e}");
    }

    #[test]
    fn describe_names_bucket_and_prefix() {
        let r = GcsConfig::new("bkt")
            .with_prefix("/a/b/")
            .with_emulator("http://127.0.0.1:1")
            .build()
            .unwrap();
        assert_eq!(r.describe(), "gs://bkt/a/b");
    }

    #[test]
    fn debug_never_prints_the_bearer_token() {
        // object_store's own `Debug` of the store prints a static (or cached) credential.
        let store = GoogleCloudStorageBuilder::new()
            .with_bucket_name("bkt")
            .with_base_url("http://127.0.0.1:1")
            .with_client_options(ClientOptions::new().with_allow_http(true))
            .with_credentials(Arc::new(StaticCredentialProvider::new(GcpCredential {
                bearer: "ya29.bearer-secret-5521".into(),
            })))
            .build()
            .unwrap();
        assert!(format!("{store:?}").contains("bearer-secret-5521"));
        let remote = ObjectStoreRemote::new(Arc::new(store), "gs://bkt");
        let shown = format!("{remote:?}");
        assert!(!shown.contains("bearer-secret-5521"), "{shown}");
        assert!(shown.contains("GoogleCloudStorage(bkt)"), "{shown}");
    }

    #[test]
    fn url_rejects_unknown_keys() {
        let url = url::Url::parse("gs://b/p?nope=1").unwrap();
        assert!(GcsFactory.config_from_url(&url).is_err());
    }
}
