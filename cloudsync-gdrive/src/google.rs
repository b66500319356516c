//! What Drive and Cloud Storage share on the wire: the JSON error body both APIs answer with
//! (`{"error":{"code":…,"message":…,"errors":[{"reason":…}]}}`), capped JSON answers, and
//! server text cut short for error messages.

use cloudsync_core::http::read_capped;
use cloudsync_core::{Error, ErrorKind, Result};
use reqwest::{Response, StatusCode};
use serde::Deserialize;

/// The most characters of server text an error message keeps.
pub(crate) const MAX_SERVER_TEXT: usize = 200;

/// `s` cut to [`MAX_SERVER_TEXT`] characters, with `…` when something was cut: server text in
/// an error message stays readable however long the server made it.
pub(crate) fn cut(s: &str) -> String {
    cloudsync_core::cut_text(s, MAX_SERVER_TEXT).into_owned()
}

/// Parses a JSON answer of at most `max` bytes; `what` names it in errors.
pub(crate) async fn json_capped<T: serde::de::DeserializeOwned>(
    res: Response,
    max: usize,
    what: &str,
) -> Result<T> {
    let body = read_capped(res, max).await?;
    serde_json::from_slice(&body).map_err(|e| {
        Error::new(
            ErrorKind::Protocol,
            format!("malformed {what}: {}", cut(&e.to_string())),
        )
    })
}

/// The message and the first `reason` of an error answer, each cut with [`cut`]; both empty
/// when the body is not the documented JSON.
#[derive(Debug, Default)]
pub(crate) struct ApiError {
    pub(crate) message: String,
    pub(crate) reason: String,
}

impl ApiError {
    /// Reads an error answer's body.
    pub(crate) fn parse(body: &str) -> ApiError {
        #[derive(Deserialize)]
        struct Body {
            error: Detail,
        }
        #[derive(Deserialize)]
        struct Detail {
            #[serde(default)]
            message: String,
            #[serde(default)]
            errors: Vec<Item>,
        }
        #[derive(Deserialize)]
        struct Item {
            #[serde(default)]
            reason: String,
        }
        match serde_json::from_str::<Body>(body) {
            Ok(b) => ApiError {
                reason: cut(&b
                    .error
                    .errors
                    .into_iter()
                    .next()
                    .map(|e| e.reason)
                    .unwrap_or_default()),
                message: cut(&b.error.message),
            },
            Err(_) => ApiError::default(),
        }
    }

    /// `"<service> answered <status> (<reason>): <message>"`, leaving out what is empty.
    pub(crate) fn describe(&self, service: &str, status: StatusCode) -> String {
        let mut msg = format!("{service} answered {status}");
        if !self.reason.is_empty() {
            msg.push_str(&format!(" ({})", self.reason));
        }
        if !self.message.is_empty() {
            msg.push_str(&format!(": {}", self.message));
        }
        msg
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_bodies_give_reason_and_message() {
        let e = ApiError::parse(
            r#"{"error":{"code":403,"message":"Rate Limit Exceeded","errors":[{"reason":"rateLimitExceeded"}]}}"#,
        );
        assert_eq!(e.reason, "rateLimitExceeded");
        assert_eq!(
            e.describe("Drive API", StatusCode::FORBIDDEN),
            "Drive API answered 403 Forbidden (rateLimitExceeded): Rate Limit Exceeded"
        );
        let e = ApiError::parse("<html>bad gateway</html>");
        assert_eq!(
            e.describe("Cloud Storage", StatusCode::BAD_GATEWAY),
            "Cloud Storage answered 502 Bad Gateway"
        );
        let long = ApiError::parse(&format!(
            r#"{{"error":{{"message":"{}"}}}}"#,
            "x".repeat(10_000)
        ));
        assert!(long.message.chars().count() <= MAX_SERVER_TEXT + 1);
    }
}
