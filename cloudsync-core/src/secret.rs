//! [`Secret`] and [`redact_location`]: how credentials stay out of logs, `Debug` strings, error
//! texts and saved reports (DESIGN.md §4, safety rule 8: secrets reach only their server).
//!
//! A credential lives in a [`Secret`] from the moment it is read (config, environment, token
//! file, token endpoint) until the one place that sends it to its server calls
//! [`Secret::expose`]. A location a user typed (`ftp://me:pw@host/dir`) goes through
//! [`redact_location`] before it is printed, logged, put in an error or stored.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// What a hidden secret is shown as.
pub const REDACTED: &str = "***";

/// A credential (password, access or refresh token, client secret, private key) that prints
/// as `***`.
///
/// `Debug` and `Display` show `***`. It deserialises from a plain string, so config files and
/// JSON sections keep their shape (`password = "..."`), but it *serialises* as `"***"`: a
/// struct holding a `Secret` can be written into a report or shown as JSON without the secret
/// in it. Code that must persist the secret itself (a token file) writes
/// [`expose`](Secret::expose) explicitly. Comparison is by value, so a cache can check which
/// token the server rejected.
///
/// ```
/// use cloudsync_core::Secret;
/// let s = Secret::new("hunter2");
/// assert_eq!(s.expose(), "hunter2");
/// assert_eq!(format!("{s:?} {s}"), "Secret(***) ***");
/// assert_eq!(serde_json::to_string(&s)?, r#""***""#);
/// let back: Secret = serde_json::from_str(r#""hunter2""#)?;
/// assert_eq!(back, s);
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The secret itself, for the one place that sends it to its server.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether the secret is the empty string.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Secret(value)
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Self {
        Secret(value.to_owned())
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret({REDACTED})")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(REDACTED)
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(Secret)
    }
}

/// Whether a URL query key names a secret value (`password`, `token`, `client_secret`, ...)
/// rather than where one is (`password_env`, `token_file`).
fn secret_query_key(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    let names_secret = ["pass", "secret", "token", "key_passphrase", "signature"]
        .iter()
        .any(|s| k.contains(s));
    let names_place = k.ends_with("_env") || k.ends_with("_file") || k.ends_with("_path");
    names_secret && !names_place
}

/// A location as it may be shown or stored: the password of a URL's `user:password@` and the
/// values of secret-looking query keys (`?password=`, `?token=`) become `***`. `name:path`
/// locations, local paths and URLs without a password come back unchanged.
///
/// Works on text that is not a valid URL too (an error about a malformed URL must not carry
/// its password either): the authority is whatever follows `://` up to the first `/`, `?` or
/// `#`, and its userinfo ends at its last `@`.
///
/// ```
/// use cloudsync_core::redact_location;
/// assert_eq!(redact_location("ftp://me:pw@host/x"), "ftp://me:***@host/x");
/// assert_eq!(redact_location("sftp://me@host:22/x"), "sftp://me@host:22/x");
/// assert_eq!(redact_location("nas:backup/a"), "nas:backup/a");
/// assert_eq!(redact_location("/srv/a:b@c"), "/srv/a:b@c");
/// assert_eq!(redact_location("x://h/p?token=abc&n=1"), "x://h/p?token=***&n=1");
/// ```
pub fn redact_location(location: &str) -> String {
    let Some(scheme_end) = location.find("://") else {
        return location.to_owned();
    };
    let auth_start = scheme_end + 3;
    let rest = &location[auth_start..];
    let auth_len = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..auth_len];
    let mut out = String::with_capacity(location.len());
    out.push_str(&location[..auth_start]);
    match authority.rfind('@') {
        Some(at) => {
            let userinfo = &authority[..at];
            match userinfo.find(':') {
                Some(colon) => {
                    out.push_str(&userinfo[..=colon]);
                    out.push_str(REDACTED);
                }
                None => out.push_str(userinfo),
            }
            out.push_str(&authority[at..]);
        }
        None => out.push_str(authority),
    }
    let tail = &rest[auth_len..];
    let (before_fragment, fragment) = match tail.find('#') {
        Some(i) => tail.split_at(i),
        None => (tail, ""),
    };
    match before_fragment.split_once('?') {
        Some((path, query)) => {
            out.push_str(path);
            out.push('?');
            let pairs: Vec<String> = query
                .split('&')
                .map(|pair| match pair.split_once('=') {
                    Some((k, _)) if secret_query_key(k) => format!("{k}={REDACTED}"),
                    _ => pair.to_owned(),
                })
                .collect();
            out.push_str(&pairs.join("&"));
        }
        None => out.push_str(before_fragment),
    }
    out.push_str(fragment);
    out
}

/// Whether `location` carries a secret that [`redact_location`] would hide (a URL password or
/// a secret query value).
///
/// ```
/// use cloudsync_core::location_has_secret;
/// assert!(location_has_secret("ftp://me:pw@host/x"));
/// assert!(!location_has_secret("ftp://me@host/x?password_env=FTP_PW"));
/// ```
pub fn location_has_secret(location: &str) -> bool {
    redact_location(location) != location
}

/// Serialises a location through [`redact_location`] (`#[serde(serialize_with = ...)]` on
/// every stored location field).
pub(crate) fn serialize_location<S: Serializer>(
    location: &str,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&redact_location(location))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_never_prints() {
        let s = Secret::new("tok-123");
        for shown in [
            format!("{s:?}"),
            format!("{s:#?}"),
            format!("{s}"),
            serde_json::to_string(&s).unwrap(),
            format!("{:?}", Some(s.clone())),
        ] {
            assert!(!shown.contains("tok-123"), "{shown}");
        }
        assert_eq!(s.expose(), "tok-123");
    }

    #[test]
    fn secret_deserialises_from_toml_and_json() {
        #[derive(Deserialize)]
        struct Cfg {
            password: Secret,
        }
        let c: Cfg = toml::from_str("password = \"pw\"").unwrap();
        assert_eq!(c.password.expose(), "pw");
        let c: Cfg = serde_json::from_str(r#"{"password":"pw"}"#).unwrap();
        assert_eq!(c.password.expose(), "pw");
    }

    #[test]
    fn redacts_userinfo_passwords() {
        for (input, want) in [
            ("ftp://me:pw@host/x", "ftp://me:***@host/x"),
            ("ftp://me:pw@host", "ftp://me:***@host"),
            (
                "ftps://me:p%40w@[::1]:21/a?tls=implicit",
                "ftps://me:***@[::1]:21/a?tls=implicit",
            ),
            ("ftp://me:p@w@host/x", "ftp://me:***@host/x"),
            ("ftp://:pw@host/x", "ftp://:***@host/x"),
            ("sftp://me@host/a@b", "sftp://me@host/a@b"),
            ("sftp://me@host:22/x", "sftp://me@host:22/x"),
            ("webdav://host/x#frag", "webdav://host/x#frag"),
            ("memory://scratch", "memory://scratch"),
            ("nas:photos/2024", "nas:photos/2024"),
            ("/srv/me:pw@host", "/srv/me:pw@host"),
            ("./a:b", "./a:b"),
            ("", ""),
            ("://", "://"),
            ("ftp://me:pw@", "ftp://me:***@"),
        ] {
            assert_eq!(redact_location(input), want, "{input}");
        }
    }

    #[test]
    fn redacts_secret_query_values() {
        assert_eq!(
            redact_location("x://u:p@h/d?password=a&password_env=V&token=t&n=1#f"),
            "x://u:***@h/d?password=***&password_env=V&token=***&n=1#f"
        );
        assert_eq!(
            redact_location("gs://b/p?service_account_file=/k.json"),
            "gs://b/p?service_account_file=/k.json"
        );
        assert!(location_has_secret("x://h/?access_token=abc"));
        assert!(!location_has_secret("x://h/?connections=4"));
    }
}
