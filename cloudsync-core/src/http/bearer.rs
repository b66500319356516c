//! Bearer-token authorization (RFC 6750) for HTTP backends: a [`TokenSource`] hands out access
//! tokens, and [`send_authorized`] sends a request with one, and when the server answers
//! `401 Unauthorized` fetches a fresh token and sends the request once more.
//!
//! Re-exported from [`crate::http`] (feature `http`).

use std::fmt::Debug;

use async_trait::async_trait;
use reqwest::{Client, RequestBuilder, Response, StatusCode};

use super::transport_error;
use crate::{Result, Secret};

/// Where access tokens come from (an OAuth 2.0 grant, a metadata server, a fixed token).
///
/// Implementations cache the token and are shared by every request of a remote.
#[async_trait]
pub trait TokenSource: Send + Sync + Debug {
    /// A valid access token. `refused` is the token the server just answered `401` to: the
    /// source must not hand it out again, and fetches a new one unless another request already
    /// replaced it (so a burst of 401s costs one token fetch, not one each).
    async fn token(&self, refused: Option<&Secret>) -> Result<Secret>;

    /// Whether a refused token can be replaced (a fixed access token cannot). When it cannot,
    /// [`send_authorized`] hands the `401` answer back for the caller to classify, with the
    /// server's own explanation.
    fn can_refresh(&self) -> bool {
        true
    }
}

/// Sends the request `build` makes with `Authorization: Bearer <token>`; on a `401` answer it
/// asks `tokens` for a fresh token (passing the refused one) and sends a new request from
/// `build` once more; a source that cannot refresh gets the `401` answer back. Whatever that second answer is, it is returned: a token that is refused twice is an
/// authorization problem, not something to loop on.
///
/// Any answer is returned as it came (callers classify statuses); a request that got no
/// answer is classified by [`transport_error`]. `build` is called once per attempt, so a
/// request body must be re-creatable (bytes, not a one-shot stream) for the retry to send it.
///
/// ```no_run
/// # async fn demo(tokens: &dyn cloudsync_core::http::TokenSource) -> cloudsync_core::Result<()> {
/// let client = reqwest::Client::new();
/// let res = cloudsync_core::http::send_authorized(&client, tokens, |c| {
///     c.get("https://storage.googleapis.com/storage/v1/b/bucket/o")
/// })
/// .await?;
/// # let _ = res;
/// # Ok(())
/// # }
/// ```
pub async fn send_authorized(
    client: &Client,
    tokens: &dyn TokenSource,
    build: impl Fn(&Client) -> RequestBuilder,
) -> Result<Response> {
    let token = tokens.token(None).await?;
    let res = build(client)
        .bearer_auth(token.expose())
        .send()
        .await
        .map_err(transport_error)?;
    if res.status() != StatusCode::UNAUTHORIZED || !tokens.can_refresh() {
        return Ok(res);
    }
    tracing::debug!("access token refused (401); fetching a new one");
    drop(res);
    let token = tokens.token(Some(&token)).await?;
    build(client)
        .bearer_auth(token.expose())
        .send()
        .await
        .map_err(transport_error)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;
    use crate::{Error, ErrorKind};

    /// Hands out `tok-N` (N counts fetches); `fetches` counts calls, `forced` the refreshes,
    /// `refused` the tokens it was told were refused.
    #[derive(Debug, Default)]
    struct Counting {
        fetches: AtomicUsize,
        forced: AtomicUsize,
        refused: std::sync::Mutex<Vec<String>>,
        fail: bool,
        fixed: bool,
    }

    #[async_trait]
    impl TokenSource for Counting {
        async fn token(&self, refused: Option<&Secret>) -> Result<Secret> {
            if self.fail {
                return Err(Error::new(ErrorKind::Auth, "token endpoint said no"));
            }
            if let Some(r) = refused {
                self.forced.fetch_add(1, Ordering::SeqCst);
                self.refused.lock().unwrap().push(r.expose().to_owned());
            }
            let n = self.fetches.fetch_add(1, Ordering::SeqCst);
            Ok(Secret::new(format!("tok-{n}")))
        }

        fn can_refresh(&self) -> bool {
            !self.fixed
        }
    }

    /// A server that answers 401 unless the request carries `Bearer <accepted>`; it records the
    /// Authorization header of every request.
    async fn server(accepted: &'static str) -> (String, Arc<std::sync::Mutex<Vec<String>>>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        let log = seen.clone();
        tokio::spawn(async move {
            while let Ok((mut conn, _)) = listener.accept().await {
                let mut buf = vec![0u8; 4096];
                let n = conn.read(&mut buf).await.unwrap_or(0);
                let req = String::from_utf8_lossy(&buf[..n]).to_string();
                let auth = req
                    .lines()
                    .find_map(|l| l.strip_prefix("authorization: "))
                    .unwrap_or("")
                    .to_owned();
                let ok = auth == format!("Bearer {accepted}");
                log.lock().unwrap().push(auth);
                let answer: &[u8] = if ok {
                    b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"
                } else {
                    b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                };
                let _ = conn.write_all(answer).await;
                let _ = conn.shutdown().await;
            }
        });
        (format!("http://{addr}/"), seen)
    }

    #[tokio::test]
    async fn a_refused_token_is_refreshed_once_and_the_request_sent_again() {
        let (url, seen) = server("tok-1").await;
        let tokens = Counting::default();
        let res = send_authorized(&Client::new(), &tokens, |c| c.get(&url))
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(*seen.lock().unwrap(), ["Bearer tok-0", "Bearer tok-1"]);
        assert_eq!(tokens.forced.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn an_accepted_token_is_sent_once() {
        let (url, seen) = server("tok-0").await;
        let tokens = Counting::default();
        let res = send_authorized(&Client::new(), &tokens, |c| c.get(&url))
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(seen.lock().unwrap().len(), 1);
        assert_eq!(tokens.forced.load(Ordering::SeqCst), 0);
    }

    #[tokio::test]
    async fn a_second_refusal_is_returned_not_retried() {
        let (url, seen) = server("never").await;
        let tokens = Counting::default();
        let res = send_authorized(&Client::new(), &tokens, |c| c.get(&url))
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(seen.lock().unwrap().len(), 2);
    }

    #[tokio::test]
    async fn a_token_that_cannot_be_had_sends_nothing() {
        let (url, seen) = server("tok-0").await;
        let tokens = Counting {
            fail: true,
            ..Default::default()
        };
        let e = send_authorized(&Client::new(), &tokens, |c| c.get(&url))
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Auth);
        assert!(seen.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn the_refused_token_is_named_to_the_source() {
        let (url, _) = server("tok-1").await;
        let tokens = Counting::default();
        send_authorized(&Client::new(), &tokens, |c| c.get(&url))
            .await
            .unwrap();
        assert_eq!(*tokens.refused.lock().unwrap(), ["tok-0"]);
    }

    #[tokio::test]
    async fn a_source_that_cannot_refresh_gets_the_401_back_after_one_request() {
        let (url, seen) = server("tok-1").await;
        let tokens = Counting {
            fixed: true,
            ..Default::default()
        };
        let res = send_authorized(&Client::new(), &tokens, |c| c.get(&url))
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(seen.lock().unwrap().len(), 1);
        assert_eq!(tokens.forced.load(Ordering::SeqCst), 0);
    }
}
