//! Access tokens: the OAuth 2.0 refresh-token grant and the service-account JWT grant
//! (RS256), cached until shortly before they expire.

use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use cloudsync_core::http::{read_prefix, transport_error};
use cloudsync_core::{Error, ErrorKind, Result, Secret};
use serde::Deserialize;
use tokio::sync::Mutex;

use crate::config::Credentials;

/// The scope service accounts ask for.
const SCOPE: &str = "https://www.googleapis.com/auth/drive";

/// The current access token; `Debug` shows `***` for it ([`Secret`]).
#[derive(Debug)]
struct Cached {
    token: Secret,
    expires: Instant,
}

/// Hands out access tokens, refreshing them when they expire or the server rejects them.
#[derive(Debug)]
pub(crate) struct TokenSource {
    credentials: Credentials,
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
            credentials,
            token_url,
            deadline,
            cached: Mutex::new(None),
        }
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
        let form: Vec<(&str, String)> = match &self.credentials {
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
        let t: TokenResponse = crate::core::json_capped(res, "token", "token response").await?;
        let now = Instant::now();
        let life = lifetime(t.expires_in.as_ref());
        Ok(Cached {
            token: t.access_token,
            expires: now.checked_add(life).unwrap_or(now),
        })
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
            "scope": SCOPE,
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
            format!("gdrive config `service_account_file`: bad RSA key: {e}"),
        )
    })?;
    let mut sig = vec![0u8; key.public_modulus_len()];
    key.sign(&RSA_PKCS1_SHA256, &SystemRandom::new(), msg, &mut sig)
        .map_err(|e| Error::new(ErrorKind::Unexpected, format!("RS256 signing failed: {e}")))?;
    Ok(sig)
}
