//! Google access tokens, shared by the Drive and Cloud Storage backends: the OAuth 2.0
//! refresh-token grant, the service-account JWT grant (RS256), and the metadata server of a
//! Google Cloud machine; cached until shortly before they expire.
//!
//! Cloud Storage also finds Application Default Credentials ([`application_default`]) and
//! hands tokens to core's [`send_authorized`](cloudsync_core::http::send_authorized) through
//! [`GoogleTokens`].
// The metadata server, Application Default Credentials and the storage scope serve only Cloud
// Storage; a build without the `gcs` feature compiles them without using them.
#![cfg_attr(not(feature = "gcs"), allow(dead_code))]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use cloudsync_core::http::{read_prefix, transport_error};
use cloudsync_core::{Error, ErrorKind, Result, Secret};
use serde::Deserialize;
use tokio::sync::Mutex;

use crate::config::Credentials;

/// The scope service accounts ask for by default (Drive).
const SCOPE: &str = "https://www.googleapis.com/auth/drive";

/// The scope Cloud Storage asks for: read and write objects (what rclone asks for too).
pub(crate) const GCS_SCOPE: &str = "https://www.googleapis.com/auth/devstorage.read_write";

/// The token endpoint of the metadata server of Google Cloud machines (Compute Engine, GKE,
/// Cloud Run), the last resort of Application Default Credentials.
pub(crate) const METADATA_TOKEN_URL: &str =
    "http://metadata.google.internal/computeMetadata/v1/instance/service-accounts/default/token";

/// The current access token; `Debug` shows `***` for it ([`Secret`]).
#[derive(Debug)]
struct Cached {
    token: Secret,
    expires: Instant,
}

/// How a token is obtained.
#[derive(Debug, Clone)]
enum Grant {
    /// An OAuth 2.0 grant at the token endpoint.
    OAuth(Credentials),
    /// A GET of the metadata server's token URL with `Metadata-Flavor: Google`.
    MetadataServer,
}

/// Hands out access tokens, refreshing them when they expire or the server rejects them.
#[derive(Debug)]
pub(crate) struct TokenSource {
    grant: Grant,
    scope: &'static str,
    token_url: String,
    /// The whole time one token request may take.
    deadline: Duration,
    cached: Mutex<Option<Cached>>,
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: Secret,
    /// Seconds; any JSON number is taken (see [`lifetime`]).
    #[serde(default)]
    expires_in: Option<serde_json::Number>,
}

/// The longest lifetime a token is believed to have (Google's are an hour).
const MAX_LIFETIME: Duration = Duration::from_secs(24 * 3600);

/// How long a token lives, from the server's `expires_in`: an hour when absent, capped at
/// [`MAX_LIFETIME`], zero when negative (the token is then fetched anew for the next call).
fn lifetime(expires_in: Option<&serde_json::Number>) -> Duration {
    let Some(n) = expires_in else {
        return Duration::from_secs(3600);
    };
    let secs = match (n.as_u64(), n.as_f64()) {
        (Some(s), _) => Duration::from_secs(s),
        (None, Some(f)) if f > 0.0 => Duration::try_from_secs_f64(f).unwrap_or(MAX_LIFETIME),
        _ => Duration::ZERO,
    };
    secs.min(MAX_LIFETIME)
}

impl TokenSource {
    pub(crate) fn new(credentials: Credentials, token_url: String, deadline: Duration) -> Self {
        TokenSource {
            grant: Grant::OAuth(credentials),
            scope: SCOPE,
            token_url,
            deadline,
            cached: Mutex::new(None),
        }
    }

    /// Tokens from the metadata server at `url` (see [`METADATA_TOKEN_URL`]).
    pub(crate) fn metadata_server(url: String, deadline: Duration) -> Self {
        TokenSource {
            grant: Grant::MetadataServer,
            scope: SCOPE,
            token_url: url,
            deadline,
            cached: Mutex::new(None),
        }
    }

    /// The scope a service account asks for (default: Drive).
    pub(crate) fn with_scope(mut self, scope: &'static str) -> Self {
        self.scope = scope;
        self
    }

    /// A valid access token (fetching one when none is cached or it is about to expire).
    pub(crate) async fn token(&self, http: &reqwest::Client) -> Result<Secret> {
        let mut cached = self.cached.lock().await;
        if let Some(c) = cached.as_ref() {
            if c.expires.saturating_duration_since(Instant::now()) > Duration::from_secs(60) {
                return Ok(c.token.clone());
            }
        }
        let fresh = self.fetch(http).await?;
        let token = fresh.token.clone();
        *cached = Some(fresh);
        Ok(token)
    }

    /// Drops `rejected` from the cache (the server answered 401), so the next
    /// [`TokenSource::token`] fetches a new one.
    pub(crate) async fn invalidate(&self, rejected: &Secret) {
        let mut cached = self.cached.lock().await;
        if cached.as_ref().is_some_and(|c| &c.token == rejected) {
            *cached = None;
        }
    }

    async fn fetch(&self, http: &reqwest::Client) -> Result<Cached> {
        let credentials = match &self.grant {
            Grant::OAuth(c) => c,
            Grant::MetadataServer => return self.fetch_from_metadata(http).await,
        };
        let form: Vec<(&str, String)> = match credentials {
            Credentials::Refresh {
                client_id,
                client_secret,
                refresh_token,
            } => {
                let mut f = vec![
                    ("grant_type", "refresh_token".to_owned()),
                    ("client_id", client_id.clone()),
                    ("refresh_token", refresh_token.expose().to_owned()),
                ];
                if let Some(s) = client_secret {
                    f.push(("client_secret", s.expose().to_owned()));
                }
                f
            }
            Credentials::ServiceAccount { email, key_pem } => vec![
                (
                    "grant_type",
                    "urn:ietf:params:oauth:grant-type:jwt-bearer".to_owned(),
                ),
                ("assertion", self.jwt(email, key_pem)?),
            ],
        };
        let res = http
            .post(&self.token_url)
            .timeout(self.deadline)
            .form(&form)
            .send()
            .await
            .map_err(|e| transport_error(e).with_operation("token"))?;
        let status = res.status();
        if !status.is_success() {
            let kind = if status.is_server_error() {
                ErrorKind::Transient
            } else if status.as_u16() == 429 {
                ErrorKind::RateLimited
            } else {
                ErrorKind::Auth
            };
            let body = read_prefix(res, crate::core::MAX_ERROR_BODY).await;
            let mut msg = format!("token endpoint answered {status}");
            if let Ok(v) = serde_json::from_slice::<serde_json::Value>(&body) {
                if let Some(err) = v.get("error").and_then(|e| e.as_str()) {
                    msg.push_str(&format!(": {}", crate::core::cut(err)));
                }
            }
            return Err(Error::new(kind, msg).with_operation("token"));
        }
        let t: TokenResponse = crate::core::json_capped(res, "token response")
            .await
            .map_err(|e| e.with_operation("token"))?;
        Ok(cached(t))
    }

    /// A token from the metadata server. A server that cannot be reached means this is no
    /// Google Cloud machine: an `Auth` error naming the other ways to give credentials, not a
    /// temporary one to retry.
    async fn fetch_from_metadata(&self, http: &reqwest::Client) -> Result<Cached> {
        let res = http
            .get(&self.token_url)
            .header("Metadata-Flavor", "Google")
            .timeout(self.deadline)
            .send()
            .await
            .map_err(|e| {
                let e = transport_error(e);
                Error::new(
                    ErrorKind::Auth,
                    format!(
                        "no Google credentials: no service-account key or \
                         GOOGLE_APPLICATION_CREDENTIALS file, no gcloud application-default \
                         login, and the metadata server cannot be reached ({})",
                        e.message()
                    ),
                )
                .with_operation("token")
            })?;
        let status = res.status();
        if !status.is_success() {
            let kind = if status.is_server_error() {
                ErrorKind::Transient
            } else {
                ErrorKind::Auth
            };
            return Err(Error::new(
                kind,
                format!("the metadata server answered {status} for a token"),
            )
            .with_operation("token"));
        }
        let t: TokenResponse = crate::core::json_capped(res, "token response")
            .await
            .map_err(|e| e.with_operation("token"))?;
        Ok(cached(t))
    }

    /// A signed JWT assertion for the service-account grant, signed with the PEM PKCS#8 RSA
    /// key `key_pem`.
    fn jwt(&self, email: &str, key_pem: &Secret) -> Result<String> {
        let key_der = crate::config::pem_to_der(key_pem.expose()).ok_or_else(|| {
            crate::config::invalid(
                "service_account_file",
                "private_key is not a PEM PKCS#8 key",
            )
        })?;
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"RS256","typ":"JWT"}"#);
        let claims = serde_json::json!({
            "iss": email,
            "scope": self.scope,
            "aud": self.token_url,
            "iat": now,
            "exp": now + 3600,
        });
        let claims = URL_SAFE_NO_PAD.encode(claims.to_string());
        let signing_input = format!("{header}.{claims}");
        let sig = sign_rs256(&key_der, signing_input.as_bytes())?;
        Ok(format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(sig)))
    }
}

/// RSASSA-PKCS1-v1_5 with SHA-256 over `msg` with a PKCS#8 RSA key.
pub(crate) fn sign_rs256(key_der: &[u8], msg: &[u8]) -> Result<Vec<u8>> {
    use aws_lc_rs::{rand::SystemRandom, rsa::KeyPair, signature::RSA_PKCS1_SHA256};
    let key = KeyPair::from_pkcs8(key_der).map_err(|e| {
        Error::new(
            ErrorKind::ConfigInvalid,
            format!("the service-account key is not a usable RSA key: {e}"),
        )
    })?;
    let mut sig = vec![0u8; key.public_modulus_len()];
    key.sign(&RSA_PKCS1_SHA256, &SystemRandom::new(), msg, &mut sig)
        .map_err(|e| Error::new(ErrorKind::Unexpected, format!("RS256 signing failed: {e}")))?;
    Ok(sig)
}

/// A cache entry for a token answer, valid for its [`lifetime`].
fn cached(t: TokenResponse) -> Cached {
    let now = Instant::now();
    let life = lifetime(t.expires_in.as_ref());
    Cached {
        token: t.access_token,
        expires: now.checked_add(life).unwrap_or(now),
    }
}

/// A Google credentials JSON file: a service-account key or a gcloud user login
/// (`authorized_user`). Unknown fields are ignored; secrets are [`Secret`]s.
#[derive(Deserialize)]
struct CredentialsFile {
    #[serde(rename = "type", default)]
    kind: String,
    #[serde(default)]
    client_email: Option<String>,
    #[serde(default)]
    private_key: Option<Secret>,
    #[serde(default)]
    token_uri: Option<String>,
    #[serde(default)]
    client_id: Option<String>,
    #[serde(default)]
    client_secret: Option<Secret>,
    #[serde(default)]
    refresh_token: Option<Secret>,
}

/// The credentials in the JSON file at `path`, and the token endpoint it names (service-account
/// keys carry `token_uri`). `invalid` makes the configuration error for the file.
pub(crate) fn credentials_from_file(
    path: &Path,
    invalid: &dyn Fn(String) -> Error,
) -> Result<(Credentials, Option<String>)> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| invalid(format!("cannot read {}: {e}", path.display())))?;
    let f: CredentialsFile = serde_json::from_str(&text)
        .map_err(|e| invalid(format!("{} is not a credentials file: {e}", path.display())))?;
    match f.kind.as_str() {
        "service_account" => {
            let (Some(email), Some(key)) = (f.client_email, f.private_key) else {
                return Err(invalid(format!(
                    "{}: a service-account key needs client_email and private_key",
                    path.display()
                )));
            };
            if crate::config::pem_to_der(key.expose()).is_none() {
                return Err(invalid(format!(
                    "{}: private_key is not a PEM PKCS#8 key",
                    path.display()
                )));
            }
            Ok((
                Credentials::ServiceAccount {
                    email,
                    key_pem: key,
                },
                f.token_uri,
            ))
        }
        "authorized_user" => {
            let (Some(client_id), Some(refresh_token)) = (f.client_id, f.refresh_token) else {
                return Err(invalid(format!(
                    "{}: a user login needs client_id and refresh_token",
                    path.display()
                )));
            };
            Ok((
                Credentials::Refresh {
                    client_id,
                    client_secret: f.client_secret,
                    refresh_token,
                },
                None,
            ))
        }
        other => Err(invalid(format!(
            "{}: credentials of type {:?} are not supported (service_account or \
             authorized_user)",
            path.display(),
            crate::core::cut(other)
        ))),
    }
}

/// Where Application Default Credentials come from, in Google's order: the file named by
/// `GOOGLE_APPLICATION_CREDENTIALS`, else gcloud's `application_default_credentials.json`
/// (in `$CLOUDSDK_CONFIG`, else `~/.config/gcloud`, or `%APPDATA%\gcloud` on Windows), else
/// the metadata server (`None` here). Nothing is read but the environment and the file system.
pub(crate) fn application_default_file() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("GOOGLE_APPLICATION_CREDENTIALS") {
        if !p.is_empty() {
            return Some(PathBuf::from(p));
        }
    }
    let dir = if let Some(d) = std::env::var_os("CLOUDSDK_CONFIG") {
        PathBuf::from(d)
    } else if cfg!(windows) {
        PathBuf::from(std::env::var_os("APPDATA")?).join("gcloud")
    } else {
        PathBuf::from(std::env::var_os("HOME")?)
            .join(".config")
            .join("gcloud")
    };
    let f = dir.join("application_default_credentials.json");
    f.is_file().then_some(f)
}

/// A [`TokenSource`] with its HTTP client, as core's
/// [`TokenSource`](cloudsync_core::http::TokenSource) for
/// [`send_authorized`](cloudsync_core::http::send_authorized).
#[derive(Debug)]
pub(crate) struct GoogleTokens {
    pub(crate) source: TokenSource,
    pub(crate) http: reqwest::Client,
}

#[async_trait::async_trait]
impl cloudsync_core::http::TokenSource for GoogleTokens {
    async fn token(&self, refused: Option<&Secret>) -> Result<Secret> {
        if let Some(r) = refused {
            self.source.invalidate(r).await;
        }
        self.source.token(&self.http).await
    }
}
