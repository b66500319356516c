//! Authentication: none (loopback only), HTTP Basic, or a Bearer token; compared in constant
//! time, refused with 401 and `WWW-Authenticate`.

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use cloudsync_core::Secret;
use subtle::ConstantTimeEq;

use crate::error::{ApiError, ServeError};

/// How clients prove who they are.
#[derive(Clone, Default)]
#[non_exhaustive]
pub enum Auth {
    /// No authentication: only allowed on a loopback address ([`check_bind`]).
    #[default]
    None,
    /// HTTP Basic with one user and password.
    Basic {
        /// The user name.
        user: String,
        /// The password.
        password: Secret,
    },
    /// `Authorization: Bearer TOKEN`.
    Bearer {
        /// The token.
        token: Secret,
    },
}

impl fmt::Debug for Auth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Auth::None => f.write_str("Auth::None"),
            Auth::Basic { user, .. } => f
                .debug_struct("Auth::Basic")
                .field("user", user)
                .finish_non_exhaustive(),
            Auth::Bearer { .. } => f.debug_struct("Auth::Bearer").finish_non_exhaustive(),
        }
    }
}

/// Refuses to listen on a non-loopback address without authentication.
///
/// ```
/// use cloudsync_serve::{check_bind, Auth};
/// assert!(check_bind("127.0.0.1:5572".parse().unwrap(), &Auth::None).is_ok());
/// assert!(check_bind("0.0.0.0:5572".parse().unwrap(), &Auth::None).is_err());
/// ```
pub fn check_bind(addr: SocketAddr, auth: &Auth) -> Result<(), ServeError> {
    if matches!(auth, Auth::None) && !addr.ip().is_loopback() {
        return Err(ServeError::Unauthenticated { addr });
    }
    Ok(())
}

fn same(a: &[u8], b: &[u8]) -> bool {
    // `ct_eq` of slices of different lengths is false without looking at the bytes; the
    // length of a secret is all that can leak.
    a.ct_eq(b).into()
}

impl Auth {
    /// Whether the `Authorization` header value admits the request.
    fn admits(&self, header: Option<&HeaderValue>) -> bool {
        let given = header.and_then(|h| h.to_str().ok()).unwrap_or("");
        match self {
            Auth::None => true,
            Auth::Basic { user, password } => {
                let Some(encoded) = strip_scheme(given, "basic") else {
                    return false;
                };
                let Ok(raw) = base64::engine::general_purpose::STANDARD.decode(encoded.trim())
                else {
                    return false;
                };
                let Some(colon) = raw.iter().position(|b| *b == b':') else {
                    return false;
                };
                let (u, p) = (&raw[..colon], &raw[colon + 1..]);
                // Both compared, always, so the time says nothing about which one failed.
                let user_ok = same(u, user.as_bytes());
                let password_ok = same(p, password.expose().as_bytes());
                user_ok & password_ok
            }
            Auth::Bearer { token } => strip_scheme(given, "bearer")
                .is_some_and(|t| same(t.trim().as_bytes(), token.expose().as_bytes())),
        }
    }

    fn challenge(&self) -> &'static str {
        match self {
            Auth::Bearer { .. } => "Bearer realm=\"cloudsync\"",
            _ => "Basic realm=\"cloudsync\", charset=\"UTF-8\"",
        }
    }
}

/// `value` after `scheme ` (case-insensitive scheme).
fn strip_scheme<'a>(value: &'a str, scheme: &str) -> Option<&'a str> {
    let (s, rest) = value.split_once(' ')?;
    s.eq_ignore_ascii_case(scheme).then_some(rest)
}

/// The middleware: lets admitted requests through, answers 401 otherwise.
pub(crate) async fn require(State(auth): State<Arc<Auth>>, req: Request, next: Next) -> Response {
    if auth.admits(req.headers().get(header::AUTHORIZATION)) {
        return next.run(req).await;
    }
    let body = ApiError {
        status: StatusCode::UNAUTHORIZED,
        error: "authentication required".to_owned(),
        field: None,
    };
    let mut resp = body.into_response();
    resp.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static(auth.challenge()),
    );
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    fn basic(u: &str, p: &str) -> HeaderValue {
        let v = base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"));
        HeaderValue::from_str(&format!("Basic {v}")).unwrap()
    }

    #[test]
    fn basic_needs_both_user_and_password() {
        let auth = Auth::Basic {
            user: "me".into(),
            password: Secret::new("s3cret:x"),
        };
        assert!(auth.admits(Some(&basic("me", "s3cret:x"))));
        assert!(!auth.admits(Some(&basic("me", "s3cret"))));
        assert!(!auth.admits(Some(&basic("you", "s3cret:x"))));
        assert!(!auth.admits(Some(&HeaderValue::from_static("Basic !!!"))));
        assert!(!auth.admits(None));
    }

    #[test]
    fn bearer_compares_the_token() {
        let auth = Auth::Bearer {
            token: Secret::new("tok"),
        };
        assert!(auth.admits(Some(&HeaderValue::from_static("Bearer tok"))));
        assert!(auth.admits(Some(&HeaderValue::from_static("bearer tok"))));
        assert!(!auth.admits(Some(&HeaderValue::from_static("Bearer tok2"))));
        assert!(!auth.admits(Some(&HeaderValue::from_static("Basic tok"))));
        assert!(!format!("{auth:?}").contains("tok"));
    }
}
