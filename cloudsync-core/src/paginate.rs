//! Turning a paginated listing API into a stream of items, one page in memory at a time.
//!
//! Cloud listing APIs answer in pages: each answer carries some items and, while more may follow,
//! a continuation token to send with the next request. A backend that collected every page
//! before yielding anything would hold a whole folder in memory; [`stream_paginated`] asks for a
//! page only when the consumer has taken every item of the previous one.
//!
//! What a page carries is not a promise about what follows: Google Drive documents that a page
//! may hold fewer items than asked for, or none, while a continuation token is still present.
//! The stream therefore ends only when the service sends no token (or an empty one), never
//! because a page was short or empty.

use std::collections::VecDeque;
use std::future::Future;

use futures::Stream;

use crate::{Error, ErrorKind, Result};

/// Where the pagination stands between two requests.
enum Cursor<S, T> {
    /// No request made yet.
    Start(S),
    /// Items of the current page not yet yielded, and the token for the next page if any.
    Page(S, VecDeque<T>, Option<String>),
    /// Finished (the last page was yielded, or an error was).
    Done,
}

/// Streams the items of a paginated listing, fetching a page only when the previous one has been
/// consumed.
///
/// `op(state, token)` fetches one page: `token` is `None` for the first request and then each
/// continuation token the service returned. It answers the page's items and the token for the
/// next page (`None`, or an empty string, when the listing is complete). `state` is cloned into
/// each call (share what is expensive to clone behind an `Arc`).
///
/// Empty and short pages are skipped over, not taken as the end. An error from `op` is yielded
/// once and ends the stream. A service that answers the same token it was sent would make the
/// listing loop forever; that is yielded as an [`ErrorKind::Protocol`] error instead.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> cloudsync_core::Result<()> {
/// use cloudsync_core::stream_paginated;
/// use futures::TryStreamExt;
///
/// // Three pages: [1, 2], [] and [3]; the empty page is not the end.
/// let pages = std::sync::Arc::new(vec![vec![1, 2], vec![], vec![3]]);
/// let items: Vec<i32> = stream_paginated(pages, |pages, token: Option<String>| async move {
///     let at: usize = token.as_deref().unwrap_or("0").parse().unwrap_or(0);
///     let next = (at + 1 < pages.len()).then(|| (at + 1).to_string());
///     Ok((pages[at].clone(), next))
/// })
/// .try_collect()
/// .await?;
/// assert_eq!(items, vec![1, 2, 3]);
/// # Ok(())
/// # }
/// ```
pub fn stream_paginated<S, T, F, Fut>(state: S, op: F) -> impl Stream<Item = Result<T>> + Send
where
    S: Clone + Send,
    T: Send,
    F: Fn(S, Option<String>) -> Fut + Send,
    Fut: Future<Output = Result<(Vec<T>, Option<String>)>> + Send,
{
    futures::stream::unfold((Cursor::Start(state), op), |(mut cursor, op)| async move {
        loop {
            let (state, token) = match cursor {
                Cursor::Done => return None,
                Cursor::Start(state) => (state, None),
                Cursor::Page(state, mut items, next) => {
                    if let Some(item) = items.pop_front() {
                        return Some((Ok(item), (Cursor::Page(state, items, next), op)));
                    }
                    match next {
                        Some(token) => (state, Some(token)),
                        None => return None,
                    }
                }
            };
            match op(state.clone(), token.clone()).await {
                Err(e) => return Some((Err(e), (Cursor::Done, op))),
                Ok((items, next)) => {
                    let next = next.filter(|t| !t.is_empty());
                    if next.is_some() && next == token {
                        let e = Error::new(
                            ErrorKind::Protocol,
                            "the service answered a page with the continuation token it was \
                                 sent; the listing would never end",
                        );
                        return Some((Err(e), (Cursor::Done, op)));
                    }
                    cursor = Cursor::Page(state, items.into(), next);
                }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use futures::{StreamExt, TryStreamExt};

    use super::*;

    /// A fake service: `pages[i]` is the answer to token `i` (no token = page 0).
    #[derive(Clone)]
    struct Pages {
        pages: Arc<Vec<Vec<u32>>>,
        calls: Arc<AtomicUsize>,
    }

    impl Pages {
        fn new(pages: Vec<Vec<u32>>) -> Self {
            Self {
                pages: Arc::new(pages),
                calls: Arc::new(AtomicUsize::new(0)),
            }
        }

        fn stream(&self) -> impl Stream<Item = Result<u32>> + Send + use<> {
            stream_paginated(self.clone(), |s: Pages, token| async move {
                s.calls.fetch_add(1, Ordering::SeqCst);
                let at = match token {
                    None => 0,
                    Some(t) => t
                        .parse::<usize>()
                        .map_err(|_| Error::new(ErrorKind::Protocol, "bad token"))?,
                };
                let page = s.pages.get(at).cloned().unwrap_or_default();
                let next = (at + 1 < s.pages.len()).then(|| (at + 1).to_string());
                Ok((page, next))
            })
        }
    }

    #[tokio::test]
    async fn empty_and_short_pages_are_not_the_end() {
        let pages = Pages::new(vec![vec![], vec![1], vec![], vec![], vec![2, 3], vec![]]);
        let items: Vec<u32> = pages.stream().try_collect().await.unwrap();
        assert_eq!(items, vec![1, 2, 3]);
        assert_eq!(pages.calls.load(Ordering::SeqCst), 6);
    }

    #[tokio::test]
    async fn a_page_is_fetched_only_when_the_previous_one_is_consumed() {
        let pages = Pages::new(vec![vec![1, 2], vec![3], vec![4]]);
        let mut stream = Box::pin(pages.stream());
        assert_eq!(
            pages.calls.load(Ordering::SeqCst),
            0,
            "nothing is fetched before polling"
        );
        assert_eq!(stream.next().await.transpose().unwrap(), Some(1));
        assert_eq!(stream.next().await.transpose().unwrap(), Some(2));
        assert_eq!(
            pages.calls.load(Ordering::SeqCst),
            1,
            "page 2 is not fetched early"
        );
        assert_eq!(stream.next().await.transpose().unwrap(), Some(3));
        assert_eq!(pages.calls.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn an_error_is_yielded_once_and_ends_the_stream() {
        let calls = Arc::new(AtomicUsize::new(0));
        let mut stream = Box::pin(stream_paginated(calls.clone(), |calls, token| async move {
            calls.fetch_add(1, Ordering::SeqCst);
            match token {
                None => Ok((vec![1u32], Some("next".to_string()))),
                Some(_) => Err(Error::new(ErrorKind::Transient, "page two failed")),
            }
        }));
        assert_eq!(stream.next().await.transpose().unwrap(), Some(1));
        let err = stream.next().await.unwrap().unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Transient);
        assert!(stream.next().await.is_none());
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_repeated_token_is_an_error_not_a_loop() {
        let calls = Arc::new(AtomicUsize::new(0));
        let stream = stream_paginated(calls.clone(), |calls, _token| async move {
            calls.fetch_add(1, Ordering::SeqCst);
            Ok((vec![7u32], Some("same".to_string())))
        });
        let got: Vec<Result<u32>> = stream.collect().await;
        assert_eq!(
            got.len(),
            2,
            "the first page's item, then the error: {got:?}"
        );
        assert_eq!(*got[0].as_ref().unwrap(), 7);
        assert_eq!(got[1].as_ref().unwrap_err().kind(), ErrorKind::Protocol);
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn an_empty_token_ends_the_listing() {
        let stream = stream_paginated((), |(), token| async move {
            assert!(token.is_none(), "an empty token must not be sent back");
            Ok((vec![1u32], Some(String::new())))
        });
        let items: Vec<u32> = stream.try_collect().await.unwrap();
        assert_eq!(items, vec![1]);
    }
}
