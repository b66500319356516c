//! Retry with exponential backoff and decorrelated jitter, written once for every backend and
//! operation.
//!
//! Only errors for which [`Error::is_retryable`] is true are retried; a server's
//! `Retry-After` ([`Error::retry_after`]) is honoured when it asks for longer than the backoff.

use std::future::Future;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};

/// How often and how long to retry.
///
/// ```
/// use std::time::Duration;
/// use cloudsync_core::RetryPolicy;
/// let p = RetryPolicy { max_retries: 2, base: Duration::from_millis(1), ..Default::default() };
/// assert_eq!(p.max_retries, 2);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Retries after the first attempt (so `max_retries + 1` attempts in all).
    pub max_retries: u32,
    /// First backoff.
    pub base: Duration,
    /// Longest single backoff.
    pub max_backoff: Duration,
    /// Give up when this much time has passed since the first attempt.
    pub max_elapsed: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_retries: 10,
            base: Duration::from_millis(100),
            max_backoff: Duration::from_secs(15),
            max_elapsed: Duration::from_secs(300),
        }
    }
}

impl RetryPolicy {
    /// No retries at all.
    pub fn none() -> Self {
        RetryPolicy {
            max_retries: 0,
            ..Default::default()
        }
    }

    /// The next backoff after `prev` ("decorrelated jitter": uniform in `base ..= 3 * prev`,
    /// capped at `max_backoff`).
    pub fn next_backoff(&self, prev: Duration) -> Duration {
        let lo = self.base.as_secs_f64();
        let hi = (prev.as_secs_f64() * 3.0).max(lo);
        let pick = lo + fastrand::f64() * (hi - lo);
        // Huge bases (a config value) must not overflow `Duration`.
        Duration::try_from_secs_f64(pick)
            .unwrap_or(self.max_backoff)
            .min(self.max_backoff)
    }

    /// Runs `attempt` until it succeeds, fails with a non-retryable error, or the policy is
    /// exhausted. `on_retry` is told about each retry (for logs and events).
    pub async fn run<T, F, Fut>(
        &self,
        mut attempt: F,
        mut on_retry: impl FnMut(&Error, u32),
    ) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        let start = Instant::now();
        let mut backoff = self.base;
        let mut n = 0;
        loop {
            match attempt().await {
                Ok(v) => return Ok(v),
                Err(e) => {
                    if !e.is_retryable() || n >= self.max_retries {
                        return Err(e);
                    }
                    backoff = self.next_backoff(backoff);
                    let wait = e.retry_after().map_or(backoff, |ra| ra.max(backoff));
                    // A server's Retry-After may be anything, up to `Duration::MAX`.
                    if start.elapsed().saturating_add(wait) > self.max_elapsed {
                        return Err(e);
                    }
                    n += 1;
                    on_retry(&e, n);
                    tracing::debug!(error = %e, attempt = n, ?wait, "retrying");
                    tokio::time::sleep(wait).await;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[tokio::test]
    async fn extreme_values_do_not_panic() {
        let huge = RetryPolicy {
            base: Duration::MAX,
            max_backoff: Duration::MAX,
            ..Default::default()
        };
        assert!(huge.next_backoff(Duration::MAX) <= Duration::MAX);
        let r: Result<()> = RetryPolicy::default()
            .run(
                || async { Err(Error::rate_limited("slow down", Some(Duration::MAX))) },
                |_, _| {},
            )
            .await;
        assert!(
            r.is_err(),
            "a Retry-After beyond the budget gives up at once"
        );
    }

    fn fast(n: u32) -> RetryPolicy {
        RetryPolicy {
            max_retries: n,
            base: Duration::from_millis(1),
            max_backoff: Duration::from_millis(5),
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn retries_transient_until_success() {
        let calls = AtomicU32::new(0);
        let mut retries = 0;
        let v = fast(5)
            .run(
                || async {
                    if calls.fetch_add(1, Ordering::SeqCst) < 3 {
                        Err(Error::new(ErrorKind::Transient, "flaky"))
                    } else {
                        Ok(7)
                    }
                },
                |_, _| retries += 1,
            )
            .await
            .unwrap();
        assert_eq!(v, 7);
        assert_eq!(retries, 3);
    }

    #[tokio::test]
    async fn does_not_retry_permanent_errors() {
        let calls = AtomicU32::new(0);
        let e = fast(5)
            .run(
                || async {
                    calls.fetch_add(1, Ordering::SeqCst);
                    Err::<(), _>(Error::new(ErrorKind::NotFound, "gone"))
                },
                |_, _| {},
            )
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::NotFound);
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn gives_up_after_max_retries() {
        let calls = AtomicU32::new(0);
        let e = fast(2)
            .run(
                || async {
                    calls.fetch_add(1, Ordering::SeqCst);
                    Err::<(), _>(Error::new(ErrorKind::Transient, "down"))
                },
                |_, _| {},
            )
            .await
            .unwrap_err();
        assert!(e.is_retryable());
        assert_eq!(calls.load(Ordering::SeqCst), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn honours_retry_after() {
        let calls = AtomicU32::new(0);
        let t0 = tokio::time::Instant::now();
        fast(1)
            .run(
                || async {
                    if calls.fetch_add(1, Ordering::SeqCst) == 0 {
                        Err(Error::rate_limited(
                            "slow down",
                            Some(Duration::from_secs(2)),
                        ))
                    } else {
                        Ok(())
                    }
                },
                |_, _| {},
            )
            .await
            .unwrap();
        assert!(t0.elapsed() >= Duration::from_secs(2));
    }
}
