//! The conformance suite every backend runs against its real server or emulator, and the
//! helpers to start those servers (feature `testkit`).
//!
//! A backend crate's `tests/conformance.rs` starts its server and calls
//! [`conformance`] once with a remote rooted at an empty directory:
//!
//! ```no_run
//! # async fn demo(remote: std::sync::Arc<dyn cloudsync_core::Remote>) {
//! cloudsync_core::testkit::conformance(remote).await;
//! # }
//! ```

pub mod server;

mod suite;

pub use suite::*;
