//! Wrappers that add one cross-cutting behaviour to any [`Remote`](crate::Remote), and the
//! stack the [`Registry`](crate::Registry) builds from them.
//!
//! From the caller down to the backend, a network remote opened by the registry is
//!
//! ```text
//! Retrying  ->  Throttled  ->  Limited  ->  Timeout  ->  BandwidthLimited  ->  ErrorContext  ->  backend
//! ```
//!
//! (a local directory gets only the last two: the kernel answers or fails, and the per-call
//! layers would cost on every file)
//!
//! - [`Retrying`] repeats a call that failed temporarily, so each retry passes the throttle
//!   again and gets a fresh timeout;
//! - [`Throttled`] spaces calls out (`--tpslimit`); waiting for a token is not counted by the
//!   timeout;
//! - [`Limited`] bounds the calls in flight; waiting for a slot is not counted either;
//! - [`Timeout`](crate::Timeout) turns silence into a temporary error;
//! - [`BandwidthLimited`](crate::BandwidthLimited) paces the bytes read and written
//!   (`--bwlimit`), when configured;
//! - [`ErrorContext`] names the operation, the remote and the path in every error.

mod context;
mod gate;
mod retrying;
mod stack;

pub use context::ErrorContext;
pub use gate::{Limited, Throttled};
pub use retrying::{MAX_RETRY_AFTER, Retrying};
pub use stack::LayerOptions;
pub(crate) use stack::Stack;

#[cfg(test)]
mod tests;
