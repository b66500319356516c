//! What every HTTP backend needs once: `Retry-After` parsing, the classification of transport
//! failures and of HTTP statuses into [`Error`] kinds, and reading a body no longer than a cap.
//!
//! Available with the `http` feature. Backends keep their own `parse_error` for what their
//! service says beyond the status (Dropbox's `.tag` chains, Drive's `reason`s, WebDAV's `423`)
//! and fall back to [`status_error`] for the rest.
//!
//! ```
//! use std::time::Duration;
//! use cloudsync_core::ErrorKind;
//! use cloudsync_core::http::{retry_after, status_error};
//! use reqwest::StatusCode;
//! use reqwest::header::{HeaderMap, HeaderValue, RETRY_AFTER};
//!
//! let mut headers = HeaderMap::new();
//! headers.insert(RETRY_AFTER, HeaderValue::from_static("30"));
//! let e = status_error(StatusCode::TOO_MANY_REQUESTS, retry_after(&headers), "slow down");
//! assert_eq!(e.kind(), ErrorKind::RateLimited);
//! assert_eq!(e.retry_after(), Some(Duration::from_secs(30)));
//! assert!(e.is_retryable());
//! ```

use std::time::{Duration, SystemTime};

use bytes::Bytes;
use reqwest::header::{HeaderMap, RETRY_AFTER};
use reqwest::{Response, StatusCode};

use crate::{Error, ErrorKind, Result};

mod bearer;

pub use bearer::{TokenSource, send_authorized};

/// The longest wait a server's `Retry-After` is believed for: a server cannot park a sync for
/// days (or, with `u64::MAX` seconds, overflow a deadline).
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

/// A delay a server asked for in whole seconds (a header or a JSON field), capped at
/// [`MAX_RETRY_AFTER`].
///
/// ```
/// use std::time::Duration;
/// use cloudsync_core::http::{MAX_RETRY_AFTER, delay_secs};
/// assert_eq!(delay_secs(7), Duration::from_secs(7));
/// assert_eq!(delay_secs(u64::MAX), MAX_RETRY_AFTER);
/// ```
pub fn delay_secs(secs: u64) -> Duration {
    Duration::from_secs(secs.min(MAX_RETRY_AFTER.as_secs()))
}

/// How long the `Retry-After` header of `headers` asks the client to wait (RFC 9110 §10.2.3),
/// capped at [`MAX_RETRY_AFTER`].
///
/// Both forms are understood: delay-seconds (`120`; more digits than fit a `u64` count as
/// very long) and an HTTP date (`Wed, 21 Oct 2015 07:28:00 GMT`; a date in the past means no
/// wait). A missing header, a negative or fractional number, or anything else gives `None`.
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let v = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()) {
        return Some(delay_secs(v.parse::<u64>().unwrap_or(u64::MAX)));
    }
    let when = httpdate::parse_http_date(v).ok()?;
    Some(
        when.duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO)
            .min(MAX_RETRY_AFTER),
    )
}

/// The error kind an HTTP status stands for, by its common meaning:
///
/// ```text
/// 400 InvalidInput · 401 Auth · 403 PermissionDenied · 404/410 NotFound · 408 Transient
/// 409 Conflict · 412 ConditionNotMatch · 429 RateLimited · 507 QuotaExceeded
/// other 5xx Transient · anything else Unexpected
/// ```
///
/// A backend whose service gives a status another meaning (WebDAV's `423 Locked`, Drive's
/// `403 rateLimitExceeded`) decides that case itself before asking this.
pub fn status_kind(status: StatusCode) -> ErrorKind {
    match status.as_u16() {
        400 => ErrorKind::InvalidInput,
        401 => ErrorKind::Auth,
        403 => ErrorKind::PermissionDenied,
        404 | 410 => ErrorKind::NotFound,
        408 => ErrorKind::Transient,
        409 => ErrorKind::Conflict,
        412 => ErrorKind::ConditionNotMatch,
        429 => ErrorKind::RateLimited,
        507 => ErrorKind::QuotaExceeded,
        500..=599 => ErrorKind::Transient,
        _ => ErrorKind::Unexpected,
    }
}

/// An [`Error`] of the [`status_kind`] of `status`, with `message`.
///
/// `RateLimited` and `Transient` errors are temporary and keep `retry_after` (the server's
/// `Retry-After`, see [`retry_after`]) so the engine waits at least that long; other kinds
/// ignore it.
pub fn status_error(
    status: StatusCode,
    retry_after: Option<Duration>,
    message: impl Into<String>,
) -> Error {
    match status_kind(status) {
        ErrorKind::RateLimited => Error::rate_limited(message, retry_after),
        ErrorKind::Transient => {
            let e = Error::new(ErrorKind::Transient, message);
            match retry_after {
                Some(r) => e.with_retry_after(r),
                None => e,
            }
        }
        kind => Error::new(kind, message),
    }
}

/// Classifies a failure of `reqwest` (no answer, or an answer whose body could not be read)
/// into an [`Error`] with the `reqwest` error as its source:
///
/// - the request body's own stream failed with an [`Error`]: that error's kind and flag (a
///   source file that vanished is not a network problem);
/// - the request could not be built (bad URL, bad header): `InvalidInput`, not temporary;
/// - a server certificate we do not trust, or no TLS version or cipher in common: `Auth`, not
///   temporary (the message says to set `ca_file`);
/// - a timeout, a failed connect (refused, reset, DNS, a TLS handshake that broke off), a
///   connection that broke while sending or while reading the answer: `Transient`, temporary;
/// - an answer that was read but is not what it claims (JSON that does not parse): `Protocol`,
///   not temporary;
/// - a redirect that could not be followed: `Protocol`; anything else `Unexpected`.
///
/// The message is `HTTP request failed: ` and `reqwest`'s description (which names the URL
/// without its credentials); callers add the operation, remote and path.
pub fn transport_error(e: reqwest::Error) -> Error {
    let mut src: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(&e);
    let mut from_json = false;
    while let Some(s) = src {
        if let Some(inner) = s.downcast_ref::<Error>() {
            return Error::new(inner.kind(), inner.message().to_owned())
                .set_temporary(inner.is_retryable())
                .with_source(e);
        }
        from_json |= s.is::<serde_json::Error>();
        if let Some(tls) = refused_tls(s) {
            return Error::new(
                ErrorKind::Auth,
                format!(
                    "TLS with the server failed: {tls} (set `ca_file` to trust a private certificate)"
                ),
            )
            .with_source(e);
        }
        src = s.source();
    }
    let kind = if e.is_builder() {
        ErrorKind::InvalidInput
    } else if e.is_timeout() || e.is_connect() {
        ErrorKind::Transient
    } else if e.is_decode() && from_json {
        ErrorKind::Protocol
    } else if e.is_decode() || e.is_request() || e.is_body() {
        // `reqwest` reports a body that stopped arriving (reset, closed early) as a decode
        // error too; only a parse failure of what did arrive is the server's fault.
        ErrorKind::Transient
    } else if e.is_redirect() {
        ErrorKind::Protocol
    } else {
        ErrorKind::Unexpected
    };
    Error::new(kind, format!("HTTP request failed: {e}")).with_source(e)
}

/// The TLS failure in `e`, when it is one a retry cannot mend: the server's certificate is not
/// trusted, or it has no protocol version or cipher in common with us.
fn refused_tls<'a>(e: &'a (dyn std::error::Error + 'static)) -> Option<&'a rustls::Error> {
    // The TLS stream reports rustls' error inside I/O errors (two of them, through reqwest's
    // connector), whose `source` skips what they wrap.
    let mut e = e;
    while let Some(io) = e.downcast_ref::<std::io::Error>() {
        e = io.get_ref()?;
    }
    let tls = e.downcast_ref::<rustls::Error>()?;
    matches!(
        tls,
        rustls::Error::InvalidCertificate(_)
            | rustls::Error::NoCertificatesPresented
            | rustls::Error::PeerIncompatible(_)
            | rustls::Error::UnsupportedNameType
    )
    .then_some(tls)
}

/// The whole body of `resp`, or a `Protocol` error when it is longer than `cap` bytes, so a
/// hostile server cannot fill the memory.
///
/// A `Content-Length` above `cap` fails before anything is read; a body without one (chunked)
/// or that sends more than it announced fails as soon as the bytes received pass `cap`. A
/// connection that breaks while reading is classified by [`transport_error`].
pub async fn read_capped(mut resp: Response, cap: usize) -> Result<Bytes> {
    let too_long = || {
        Error::new(
            ErrorKind::Protocol,
            format!("the answer is longer than {cap} bytes"),
        )
    };
    if resp
        .content_length()
        .is_some_and(|n| u64::try_from(cap).is_ok_and(|cap| n > cap))
    {
        return Err(too_long());
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(transport_error)? {
        if chunk.len() > cap - body.len() {
            return Err(too_long());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Bytes::from(body))
}

/// At most the first `cap` bytes of the body of `resp`, for the message of an error answer:
/// whatever could be read, never an error (the rest is left unread).
pub async fn read_prefix(mut resp: Response, cap: usize) -> Bytes {
    let mut body = Vec::new();
    while body.len() < cap {
        match resp.chunk().await {
            Ok(Some(chunk)) => {
                let take = chunk.len().min(cap - body.len());
                body.extend_from_slice(&chunk[..take]);
            }
            Ok(None) | Err(_) => break,
        }
    }
    Bytes::from(body)
}

/// A PKCE pair (RFC 7636): a fresh random `code_verifier` (43 URL-safe characters from 32
/// bytes of the system's secure generator) and its S256 `code_challenge`.
///
/// ```
/// let (verifier, challenge) = cloudsync_core::http::pkce_pair()?;
/// assert_eq!(verifier.len(), 43);
/// assert_eq!(challenge, cloudsync_core::http::code_challenge_s256(&verifier));
/// # Ok::<(), cloudsync_core::Error>(())
/// ```
pub fn pkce_pair() -> Result<(String, String)> {
    let verifier = random_token(32)?;
    let challenge = code_challenge_s256(&verifier);
    Ok((verifier, challenge))
}

/// `n` random bytes from the system's secure generator, base64url without padding (for a PKCE
/// verifier or an OAuth `state`).
pub fn random_token(n: usize) -> Result<String> {
    use base64::Engine as _;
    let mut buf = vec![0u8; n];
    aws_lc_rs::rand::fill(&mut buf)
        .map_err(|_| Error::new(ErrorKind::Unexpected, "no secure random numbers"))?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(buf))
}

/// The S256 code challenge of a PKCE `code_verifier`: base64url(SHA-256(verifier)), unpadded.
///
/// ```
/// // The example of RFC 7636, appendix B.
/// assert_eq!(
///     cloudsync_core::http::code_challenge_s256("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
///     "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
/// );
/// ```
pub fn code_challenge_s256(verifier: &str) -> String {
    use base64::Engine as _;
    use sha2::Digest as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(verifier))
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn with_retry_after(v: HeaderValue) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(RETRY_AFTER, v);
        h
    }

    fn parse(v: &'static str) -> Option<Duration> {
        retry_after(&with_retry_after(HeaderValue::from_static(v)))
    }

    #[test]
    fn retry_after_seconds() {
        assert_eq!(parse("0"), Some(Duration::ZERO));
        assert_eq!(parse("7"), Some(Duration::from_secs(7)));
        assert_eq!(parse(" 120 "), Some(Duration::from_secs(120)));
        assert_eq!(parse("3600"), Some(MAX_RETRY_AFTER));
        assert_eq!(parse("000042"), Some(Duration::from_secs(42)));
        assert_eq!(retry_after(&HeaderMap::new()), None);
    }

    #[test]
    fn retry_after_extremes_are_capped_at_an_hour() {
        for v in [
            "3601",
            "18446744073709551615",
            "18446744073709551616",
            "99999999999999999999999999999999999999999999999999",
            "Fri, 31 Dec 9999 23:59:59 GMT",
        ] {
            assert_eq!(parse(v), Some(MAX_RETRY_AFTER), "{v}");
        }
        let huge = "9".repeat(10_000);
        let h = with_retry_after(HeaderValue::from_str(&huge).unwrap());
        assert_eq!(retry_after(&h), Some(MAX_RETRY_AFTER));
    }

    #[test]
    fn retry_after_dates() {
        let later = SystemTime::now() + Duration::from_secs(120);
        let h = with_retry_after(HeaderValue::from_str(&httpdate::fmt_http_date(later)).unwrap());
        let d = retry_after(&h).unwrap();
        assert!(
            d > Duration::from_secs(100) && d <= Duration::from_secs(120),
            "{d:?}"
        );
        // A date in the past: retry at once.
        assert_eq!(parse("Sun, 06 Nov 1994 08:49:37 GMT"), Some(Duration::ZERO));
        // The obsolete forms RFC 9110 still asks recipients to accept.
        assert_eq!(
            parse("Sunday, 06-Nov-94 08:49:37 GMT"),
            Some(Duration::ZERO)
        );
        assert_eq!(parse("Sun Nov  6 08:49:37 1994"), Some(Duration::ZERO));
    }

    #[test]
    fn retry_after_garbage_is_none() {
        for v in [
            "",
            " ",
            "-5",
            "-0",
            "+5",
            "1.5",
            "1e3",
            "0x10",
            "5s",
            "soon",
            "5, 6",
            "١٢",
            "Fri, 32 Dec 2099 25:61:61 GMT",
            "Mon, 01 Jan 2024",
            "\t",
        ] {
            let Ok(hv) = HeaderValue::from_str(v) else {
                continue;
            };
            assert_eq!(retry_after(&with_retry_after(hv)), None, "{v:?}");
        }
        // Bytes that are not visible ASCII (allowed in a header value, not a `&str`).
        let h = with_retry_after(HeaderValue::from_bytes(b"\xff\xfe10").unwrap());
        assert_eq!(retry_after(&h), None);
    }

    #[test]
    fn delay_secs_caps() {
        assert_eq!(delay_secs(0), Duration::ZERO);
        assert_eq!(delay_secs(3599), Duration::from_secs(3599));
        assert_eq!(delay_secs(3601), MAX_RETRY_AFTER);
        assert_eq!(delay_secs(u64::MAX), MAX_RETRY_AFTER);
    }

    #[test]
    fn statuses_map_to_kinds() {
        let kind = |c: u16| {
            let e = status_error(StatusCode::from_u16(c).unwrap(), None, "x");
            (e.kind(), e.is_retryable())
        };
        assert_eq!(kind(400), (ErrorKind::InvalidInput, false));
        assert_eq!(kind(401), (ErrorKind::Auth, false));
        assert_eq!(kind(403), (ErrorKind::PermissionDenied, false));
        assert_eq!(kind(404), (ErrorKind::NotFound, false));
        assert_eq!(kind(410), (ErrorKind::NotFound, false));
        assert_eq!(kind(408), (ErrorKind::Transient, true));
        assert_eq!(kind(409), (ErrorKind::Conflict, false));
        assert_eq!(kind(412), (ErrorKind::ConditionNotMatch, false));
        assert_eq!(kind(429), (ErrorKind::RateLimited, true));
        assert_eq!(kind(500), (ErrorKind::Transient, true));
        assert_eq!(kind(503), (ErrorKind::Transient, true));
        assert_eq!(kind(599), (ErrorKind::Transient, true));
        assert_eq!(kind(507), (ErrorKind::QuotaExceeded, false));
        // Codes with no common meaning, including ones outside the registered ranges.
        for c in [100, 200, 204, 302, 304, 418, 451, 600, 999] {
            assert_eq!(kind(c), (ErrorKind::Unexpected, false), "{c}");
        }
    }

    #[test]
    fn status_errors_keep_retry_after_only_when_temporary() {
        let wait = Some(Duration::from_secs(9));
        let e = status_error(StatusCode::TOO_MANY_REQUESTS, wait, "slow");
        assert_eq!((e.retry_after(), e.message()), (wait, "slow"));
        assert_eq!(
            status_error(StatusCode::TOO_MANY_REQUESTS, None, "").retry_after(),
            None
        );
        assert_eq!(
            status_error(StatusCode::BAD_GATEWAY, wait, "").retry_after(),
            wait
        );
        assert_eq!(
            status_error(StatusCode::NOT_FOUND, wait, "").retry_after(),
            None
        );
    }

    #[test]
    fn pkce_pairs_are_fresh_and_well_formed() {
        let (a, ca) = pkce_pair().unwrap();
        let (b, _) = pkce_pair().unwrap();
        assert_ne!(a, b);
        for s in [&a, &ca] {
            assert_eq!(s.len(), 43, "{s}");
            assert!(
                s.bytes()
                    .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
            );
        }
        assert_eq!(ca, code_challenge_s256(&a));
        assert_eq!(random_token(0).unwrap(), "");
        assert_eq!(random_token(24).unwrap().len(), 32);
    }

    /// A server on 127.0.0.1 that answers each connection with `answer(request_number)`
    /// (raw bytes) and then closes it; `None` closes at once without a reply.
    async fn serve(answer: fn(usize) -> Option<Vec<u8>>) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let mut n = 0;
            while let Ok((mut conn, _)) = listener.accept().await {
                let mut buf = vec![0u8; 4096];
                let _ = conn.read(&mut buf).await;
                if let Some(bytes) = answer(n) {
                    let _ = conn.write_all(&bytes).await;
                }
                let _ = conn.shutdown().await;
                n += 1;
            }
        });
        format!("http://{addr}/")
    }

    async fn get(url: &str) -> Response {
        reqwest::Client::new().get(url).send().await.unwrap()
    }

    #[tokio::test]
    async fn read_capped_takes_a_body_up_to_the_cap() {
        let url =
            serve(|_| Some(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello".to_vec())).await;
        assert_eq!(
            &read_capped(get(&url).await, 5).await.unwrap()[..],
            b"hello"
        );
        assert_eq!(
            &read_capped(get(&url).await, 1 << 20).await.unwrap()[..],
            b"hello"
        );
        let e = read_capped(get(&url).await, 4).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Protocol);
        assert!(e.message().contains("longer than 4 bytes"), "{e}");
        assert!(!e.is_retryable());
    }

    #[tokio::test]
    async fn read_capped_refuses_an_announced_length_beyond_the_cap_unread() {
        // Claims a terabyte and sends nothing: the length alone fails it, without waiting.
        let url =
            serve(|_| Some(b"HTTP/1.1 200 OK\r\nContent-Length: 1099511627776\r\n\r\n".to_vec()))
                .await;
        for cap in [0, 1024, 1 << 30] {
            let e = read_capped(get(&url).await, cap).await.unwrap_err();
            assert_eq!(e.kind(), ErrorKind::Protocol, "{e}");
        }
    }

    #[tokio::test]
    async fn read_capped_counts_a_chunked_body() {
        let url = serve(|_| {
            let mut r = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
            for _ in 0..10 {
                r.extend_from_slice(b"400\r\n");
                r.extend_from_slice(&[b'x'; 0x400]);
                r.extend_from_slice(b"\r\n");
            }
            r.extend_from_slice(b"0\r\n\r\n");
            Some(r)
        })
        .await;
        assert_eq!(
            read_capped(get(&url).await, 10 * 1024).await.unwrap().len(),
            10 * 1024
        );
        let e = read_capped(get(&url).await, 10 * 1024 - 1)
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Protocol, "{e}");
        assert_eq!(
            read_capped(get(&url).await, 0).await.unwrap_err().kind(),
            ErrorKind::Protocol
        );
    }

    #[tokio::test]
    async fn read_capped_on_a_body_cut_short_is_transient() {
        let url =
            serve(|_| Some(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly this".to_vec()))
                .await;
        let e = read_capped(get(&url).await, 1024).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Transient, "{e}");
        assert!(e.is_retryable());
    }

    #[tokio::test]
    async fn read_prefix_stops_at_the_cap_and_never_fails() {
        let url =
            serve(|_| Some(b"HTTP/1.1 500 Oops\r\nContent-Length: 100\r\n\r\nabcdef".to_vec()))
                .await;
        assert_eq!(&read_prefix(get(&url).await, 3).await[..], b"abc");
        // The body ends early: what came is kept.
        assert_eq!(&read_prefix(get(&url).await, 64).await[..], b"abcdef");
    }

    #[tokio::test]
    async fn transport_failures_are_classified() {
        // Refused: a port that was just freed.
        let addr = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap()
        };
        let e = reqwest::Client::new()
            .get(format!("http://{addr}/"))
            .send()
            .await
            .unwrap_err();
        let e = transport_error(e);
        assert_eq!(
            (e.kind(), e.is_retryable()),
            (ErrorKind::Transient, true),
            "{e}"
        );
        assert!(e.message().starts_with("HTTP request failed: "), "{e}");

        // Closed without an answer.
        let url = serve(|_| None).await;
        let e = transport_error(reqwest::get(&url).await.unwrap_err());
        assert_eq!(
            (e.kind(), e.is_retryable()),
            (ErrorKind::Transient, true),
            "{e}"
        );

        // A timeout: the server reads and never answers.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/", listener.local_addr().unwrap());
        let e = reqwest::Client::builder()
            .timeout(Duration::from_millis(100))
            .build()
            .unwrap()
            .get(&url)
            .send()
            .await
            .unwrap_err();
        drop(listener);
        let e = transport_error(e);
        assert_eq!(
            (e.kind(), e.is_retryable()),
            (ErrorKind::Transient, true),
            "{e}"
        );

        // Not a URL: cannot be built, retrying will not help.
        for bad in ["not a url", "http://[::1/", "ftp://example.com/"] {
            let e = transport_error(reqwest::Client::new().get(bad).send().await.unwrap_err());
            assert_eq!(
                (e.kind(), e.is_retryable()),
                (ErrorKind::InvalidInput, false),
                "{bad}: {e}"
            );
        }

        // An answer that is not the JSON it claims to be.
        let url = serve(|_| {
            Some(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 4\r\n\r\n{\"a\"".to_vec())
        })
        .await;
        let e = get(&url)
            .await
            .json::<serde_json::Value>()
            .await
            .unwrap_err();
        let e = transport_error(e);
        assert_eq!(
            (e.kind(), e.is_retryable()),
            (ErrorKind::Protocol, false),
            "{e}"
        );
    }

    #[tokio::test]
    async fn a_failed_upload_source_keeps_its_own_kind() {
        let url = serve(|_| Some(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n".to_vec())).await;
        let stream = futures::stream::iter([
            Ok(Bytes::from_static(b"abc")),
            Err(Error::new(ErrorKind::NotFound, "source vanished")),
        ]);
        let e = reqwest::Client::new()
            .put(&url)
            .body(reqwest::Body::wrap_stream(stream))
            .send()
            .await
            .unwrap_err();
        let e = transport_error(e);
        assert_eq!(
            (e.kind(), e.is_retryable()),
            (ErrorKind::NotFound, false),
            "{e}"
        );
        assert_eq!(e.message(), "source vanished");
    }
}
