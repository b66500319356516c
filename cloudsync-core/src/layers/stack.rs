//! [`LayerOptions`]: which wrappers the [`Registry`](crate::Registry) puts around the network
//! remotes it opens.

use std::sync::Arc;
use std::time::Duration;

use crate::error::Result;
use crate::layers::{Limited, Retrying, Throttled};
use crate::remote::Remote;
use crate::retry::RetryPolicy;
use crate::timeout::{DEFAULT_TIMEOUT, Timeout};

/// The layers of every network remote a [`Registry`](crate::Registry) opens (local
/// directories are left bare), with rclone's defaults.
///
/// ```
/// use std::time::Duration;
/// use cloudsync_core::{LayerOptions, Registry};
/// let mut opts = LayerOptions::default();
/// opts.tps_limit = Some(10.0); // --tpslimit 10
/// opts.retry.max_retries = 3; // --low-level-retries 3
/// let mut registry = Registry::new();
/// registry.set_layers(opts)?;
/// # Ok::<(), cloudsync_core::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct LayerOptions {
    /// Idle limit of each call ([`Timeout`]; `--timeout`, default five minutes); `None`: none.
    pub timeout: Option<Duration>,
    /// How calls that fail temporarily are retried ([`Retrying`]; `--low-level-retries`,
    /// default 10); [`RetryPolicy::none`] turns the layer off.
    pub retry: RetryPolicy,
    /// Calls per second over all the remotes opened ([`Throttled`]; `--tpslimit`); `None`:
    /// no limit.
    pub tps_limit: Option<f64>,
    /// Calls allowed at once after a quiet spell (`--tpslimit-burst`, default 1).
    pub tps_burst: u32,
    /// Calls in flight on each remote ([`Limited`]); `None`: no limit.
    pub max_in_flight: Option<usize>,
}

impl Default for LayerOptions {
    fn default() -> Self {
        LayerOptions {
            timeout: Some(DEFAULT_TIMEOUT),
            retry: RetryPolicy::default(),
            tps_limit: None,
            tps_burst: 1,
            max_in_flight: None,
        }
    }
}

/// The options, with the one token bucket shared by every remote.
#[derive(Debug, Clone, Default)]
pub(crate) struct Stack {
    pub(crate) opts: LayerOptions,
    throttle: Option<Throttled>,
}

impl Stack {
    /// Checks `opts` and builds the shared parts.
    pub(crate) fn new(opts: LayerOptions) -> Result<Self> {
        let throttle = match opts.tps_limit {
            Some(tps) => Some(Throttled::new(tps, opts.tps_burst)?),
            None => None,
        };
        Ok(Stack { opts, throttle })
    }

    /// `remote` inside the layers, innermost first: Timeout, Limited, Throttled, Retrying.
    pub(crate) fn apply(&self, mut remote: Arc<dyn Remote>) -> Arc<dyn Remote> {
        if let Some(t) = self.opts.timeout {
            remote = Timeout::wrap(remote, t);
        }
        if let Some(n) = self.opts.max_in_flight {
            remote = Limited::wrap(remote, n);
        }
        if let Some(t) = &self.throttle {
            remote = t.wrap(remote);
        }
        if self.opts.retry.max_retries > 0 {
            remote = Retrying::wrap(remote, self.opts.retry);
        }
        remote
    }
}
