//! OAuth2: short-lived access tokens from a refresh token, refreshed before they expire and when
//! the service says one has expired, and the PKCE pieces of the authorization-code flow.
//!
//! Tokens never appear in logs or `Debug` output.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cloudsync_core::http;
use cloudsync_core::{Error, ErrorKind, Result, Secret};
use serde::Deserialize;
use time::OffsetDateTime;

use crate::config::{RefreshSource, TokenFile};

/// Called with every refreshed token, so the embedding application can persist it.
pub type TokenCallback = Arc<dyn Fn(&TokenInfo) + Send + Sync>;

/// The authorization endpoint of the real service (the page the user approves the app on).
pub const AUTHORIZE_URL: &str = "https://www.dropbox.com/oauth2/authorize";

/// A token the token endpoint issued. The tokens are [`Secret`]s: `Debug` shows `***`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct TokenInfo {
    /// The access token (a bearer token for API calls).
    pub access_token: Secret,
    /// When the access token expires, if the service said.
    pub expires_at: Option<OffsetDateTime>,
    /// The refresh token: issued by the authorization-code exchange with
    /// `token_access_type=offline`; a refresh returns the one it was given.
    pub refresh_token: Option<Secret>,
    /// The account the token belongs to, when the service said.
    pub account_id: Option<String>,
}

/// The token endpoint's answer.
#[derive(Deserialize)]
struct TokenResponse {
    access_token: Secret,
    #[serde(default)]
    expires_in: Option<u64>,
    #[serde(default)]
    refresh_token: Option<Secret>,
    #[serde(default)]
    account_id: Option<String>,
}

/// The token endpoint's error (RFC 6749 section 5.2).
#[derive(Deserialize)]
struct TokenError {
    error: String,
    #[serde(default)]
    error_description: Option<String>,
}

/// The current access token and when to stop using it.
struct Current {
    token: Secret,
    /// Refresh after this instant (a margin before the real expiry).
    stale_at: Option<Instant>,
}

/// Hands out access tokens, refreshing them when needed.
pub(crate) struct Tokens {
    client: reqwest::Client,
    /// The whole time one token request may take.
    deadline: Duration,
    token_url: url::Url,
    app_key: String,
    app_secret: Option<Secret>,
    refresh: RefreshSource,
    callback: Option<TokenCallback>,
    current: tokio::sync::Mutex<Option<Current>>,
}

impl fmt::Debug for Tokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tokens")
            .field("token_url", &self.token_url.as_str())
            .field("app_key", &self.app_key)
            .finish_non_exhaustive()
    }
}

/// How long before the service's expiry a token is refreshed: a minute, or a tenth of the
/// lifetime for short ones.
fn margin(lifetime: Duration) -> Duration {
    (lifetime / 10).min(Duration::from_secs(60))
}

impl Tokens {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        client: reqwest::Client,
        deadline: Duration,
        token_url: url::Url,
        app_key: String,
        app_secret: Option<Secret>,
        refresh: RefreshSource,
        access_token: Option<Secret>,
        callback: Option<TokenCallback>,
    ) -> Self {
        let current = access_token.map(|token| Current {
            token,
            stale_at: None,
        });
        Tokens {
            client,
            deadline,
            token_url,
            app_key,
            app_secret,
            refresh,
            callback,
            current: tokio::sync::Mutex::new(current),
        }
    }

    fn can_refresh(&self) -> bool {
        self.refresh != RefreshSource::None
    }

    /// A valid access token: the current one, or a fresh one when it is (nearly) expired.
    pub(crate) async fn get(&self) -> Result<Secret> {
        let mut cur = self.current.lock().await;
        if let Some(c) = cur.as_ref() {
            let fresh = c.stale_at.is_none_or(|t| Instant::now() < t);
            if fresh || !self.can_refresh() {
                return Ok(c.token.clone());
            }
        }
        let next = self.refresh().await?;
        let token = next.token.clone();
        *cur = Some(next);
        Ok(token)
    }

    /// The service rejected `used` as expired: refresh (unless another request already did)
    /// and return the new token.
    pub(crate) async fn expired(&self, used: &Secret) -> Result<Secret> {
        if !self.can_refresh() {
            return Err(Error::new(
                ErrorKind::Auth,
                "the access token expired and no refresh token is configured",
            ));
        }
        {
            let mut cur = self.current.lock().await;
            if cur.as_ref().is_some_and(|c| &c.token == used) {
                *cur = None;
            }
        }
        self.get().await
    }

    async fn refresh(&self) -> Result<Current> {
        let refresh_token = match &self.refresh {
            RefreshSource::None => {
                return Err(Error::new(
                    ErrorKind::Auth,
                    "no access token and no refresh token",
                ));
            }
            RefreshSource::Token(t) | RefreshSource::File(_, t) => t.clone(),
        };
        let mut form = vec![
            ("grant_type", "refresh_token".to_owned()),
            ("refresh_token", refresh_token.expose().to_owned()),
            ("client_id", self.app_key.clone()),
        ];
        if let Some(s) = &self.app_secret {
            form.push(("client_secret", s.expose().to_owned()));
        }
        tracing::debug!(url = %self.token_url, "refreshing the Dropbox access token");
        let started = Instant::now();
        let info = request_token(&self.client, self.deadline, &self.token_url, &form).await?;
        let info = TokenInfo {
            refresh_token: Some(info.refresh_token.unwrap_or(refresh_token)),
            ..info
        };
        let stale_at = info.expires_at.map(|at| {
            let lifetime = (at - OffsetDateTime::now_utc()).unsigned_abs();
            started + lifetime.saturating_sub(margin(lifetime))
        });
        if let RefreshSource::File(path, _) = &self.refresh {
            if let Err(e) = write_token_file(path, &info) {
                tracing::warn!(file = %path.display(), error = %e, "cannot update the token file");
            }
        }
        if let Some(cb) = &self.callback {
            cb(&info);
        }
        Ok(Current {
            token: info.access_token,
            stale_at,
        })
    }
}

/// Posts `form` to the token endpoint and parses the answer.
async fn request_token(
    client: &reqwest::Client,
    deadline: Duration,
    token_url: &url::Url,
    form: &[(&str, String)],
) -> Result<TokenInfo> {
    let resp = client
        .post(token_url.clone())
        .timeout(deadline)
        .form(form)
        .send()
        .await
        .map_err(|e| http::transport_error(e).with_operation("oauth2/token"))?;
    let status = resp.status();
    let body = if status.is_success() {
        http::read_capped(resp, crate::core::MAX_JSON_BODY)
            .await
            .map_err(|e| e.with_operation("oauth2/token"))?
    } else {
        http::read_prefix(resp, crate::core::MAX_ERROR_BODY).await
    };
    if status.is_server_error() || status == reqwest::StatusCode::TOO_MANY_REQUESTS {
        return Err(Error::new(
            ErrorKind::Transient,
            format!("token endpoint answered {status}"),
        )
        .with_operation("oauth2/token"));
    }
    if !status.is_success() {
        let msg = match serde_json::from_slice::<TokenError>(&body) {
            Ok(e) => format!(
                "token endpoint refused: {}{}",
                crate::core::cut(&e.error),
                e.error_description
                    .map(|d| format!(" ({})", crate::core::cut(&d)))
                    .unwrap_or_default()
            ),
            Err(_) => format!("token endpoint answered {status}"),
        };
        return Err(Error::new(ErrorKind::Auth, msg).with_operation("oauth2/token"));
    }
    let t: TokenResponse = serde_json::from_slice(&body).map_err(|e| {
        Error::new(
            ErrorKind::Protocol,
            format!(
                "token endpoint: malformed answer: {}",
                crate::core::cut(&e.to_string())
            ),
        )
        .with_operation("oauth2/token")
    })?;
    let expires_at = t
        .expires_in
        .map(|s| OffsetDateTime::now_utc() + Duration::from_secs(s.min(10 * 365 * 24 * 3600)));
    Ok(TokenInfo {
        access_token: t.access_token,
        expires_at,
        refresh_token: t.refresh_token,
        account_id: t.account_id,
    })
}

/// Writes a token file atomically (temp file + rename), readable only by the owner on Unix.
pub fn write_token_file(path: &Path, info: &TokenInfo) -> std::io::Result<()> {
    let refresh_token = info
        .refresh_token
        .clone()
        .ok_or_else(|| std::io::Error::other("the token has no refresh token"))?;
    // The token file is where the secrets are kept, so it gets them exposed (owner-only).
    let file = TokenFile {
        refresh_token: refresh_token.expose().to_owned(),
        access_token: Some(info.access_token.expose().to_owned()),
        expires_at: info.expires_at.map(|t| t.unix_timestamp()),
    };
    let text = serde_json::to_string_pretty(&file).map_err(std::io::Error::other)?;
    let mut tmp = PathBuf::from(path);
    tmp.set_extension(format!("tmp{}", std::process::id()));
    {
        use std::io::Write as _;
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt as _;
            opts.mode(0o600);
        }
        let mut f = opts.open(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)
}

pub use cloudsync_core::http::{code_challenge_s256, pkce_pair, random_token};

/// The URL that asks the user to authorize `app_key` (authorization-code flow with PKCE and
/// an offline token, so a refresh token is issued), redirecting to `redirect_uri`.
pub fn authorize_url(app_key: &str, redirect_uri: &str, challenge: &str, state: &str) -> String {
    let mut u = url::Url::parse(AUTHORIZE_URL).expect("constant URL is valid");
    u.query_pairs_mut()
        .append_pair("client_id", app_key)
        .append_pair("response_type", "code")
        .append_pair("token_access_type", "offline")
        .append_pair("code_challenge", challenge)
        .append_pair("code_challenge_method", "S256")
        .append_pair("redirect_uri", redirect_uri)
        .append_pair("state", state);
    u.into()
}

/// Exchanges an authorization `code` for tokens (the last step of the PKCE flow).
pub async fn exchange_code(
    token_url: &str,
    app_key: &str,
    code: &str,
    code_verifier: &str,
    redirect_uri: &str,
) -> Result<TokenInfo> {
    let url = url::Url::parse(token_url).map_err(|e| {
        Error::new(
            ErrorKind::ConfigInvalid,
            format!("token URL {token_url:?}: {e}"),
        )
    })?;
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .map_err(|e| Error::new(ErrorKind::Unexpected, format!("HTTP client: {e}")))?;
    let form = [
        ("grant_type", "authorization_code".to_owned()),
        ("code", code.to_owned()),
        ("client_id", app_key.to_owned()),
        ("code_verifier", code_verifier.to_owned()),
        ("redirect_uri", redirect_uri.to_owned()),
    ];
    request_token(&client, Duration::from_secs(60), &url, &form).await
}

/// The service refused a token (`401`): [`Tokens::expired`] refreshes it unless another request
/// already did; a fixed access token without a refresh token cannot be replaced, and the `401`
/// goes back to the caller with the service's own explanation.
#[async_trait::async_trait]
impl cloudsync_core::http::TokenSource for Tokens {
    async fn token(&self, refused: Option<&Secret>) -> Result<Secret> {
        match refused {
            None => self.get().await,
            Some(used) => self.expired(used).await,
        }
    }

    fn can_refresh(&self) -> bool {
        Tokens::can_refresh(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s256_matches_rfc7636_appendix_b() {
        assert_eq!(
            code_challenge_s256("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }

    #[test]
    fn verifiers_are_random_and_well_formed() {
        let (a, ca) = pkce_pair().unwrap();
        let (b, _) = pkce_pair().unwrap();
        assert_ne!(a, b);
        // RFC 7636: 43..=128 characters of [A-Z a-z 0-9 - . _ ~].
        assert!((43..=128).contains(&a.len()));
        assert!(
            a.bytes()
                .all(|c| c.is_ascii_alphanumeric() || b"-._~".contains(&c))
        );
        assert_eq!(ca.len(), 43);
        assert_eq!(ca, code_challenge_s256(&a));
    }

    #[test]
    fn authorize_url_carries_the_pkce_parameters() {
        let u = authorize_url("key", "http://127.0.0.1:5000/cb", "chal", "st");
        let u = url::Url::parse(&u).unwrap();
        let q: std::collections::HashMap<_, _> = u.query_pairs().into_owned().collect();
        assert_eq!(q["client_id"], "key");
        assert_eq!(q["code_challenge_method"], "S256");
        assert_eq!(q["code_challenge"], "chal");
        assert_eq!(q["token_access_type"], "offline");
        assert_eq!(q["redirect_uri"], "http://127.0.0.1:5000/cb");
    }

    #[test]
    fn token_debug_hides_secrets() {
        let t = TokenInfo {
            access_token: Secret::new("sl.secret-access"),
            expires_at: None,
            refresh_token: Some(Secret::new("secret-refresh")),
            account_id: Some("dbid:1".into()),
        };
        let s = format!("{t:?}");
        assert!(!s.contains("secret"), "{s}");
    }
}
