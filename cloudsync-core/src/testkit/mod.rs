//! The conformance suite every backend runs against its real server or emulator, and the
//! helpers to start those servers (feature `testkit`), and in-memory remotes for engine tests:
//! [`MemFs`] (a full-featured filesystem), [`Faulty`] (fails chosen calls at their start) and
//! [`Chaos`] (a seeded [`FaultPlan`] that can hit any call at any point); and for network
//! faults against real servers, [`ChaosProxy`] (a TCP proxy that resets, stalls or cuts the
//! connections it forwards) and the fault matrix driven by [`run_matrix`].
//!
//! A backend crate's `tests/conformance.rs` starts its server and calls
//! [`conformance`] once with a remote rooted at an empty directory:
//!
//! ```no_run
//! # async fn demo(remote: std::sync::Arc<dyn cloudsync_core::Remote>) {
//! cloudsync_core::testkit::conformance(remote).await;
//! # }
//! ```

mod chaos;
#[cfg(test)]
pub(crate) mod corrupting;
mod cut_proxy;
mod fault_matrix;
mod faulty;
mod fixtures;
mod logs;
mod memfs;
mod named;
mod proxy;
pub mod server;
mod suite;

pub use chaos::{Chaos, Fault, FaultPlan, Mutation, Op, Rule};
pub use cut_proxy::CuttingProxy;
pub use fault_matrix::{
    Matrix, MatrixReport, RemoteFactory, Side, assert_matrix, matrix_runs, matrix_seed, run_matrix,
};
pub use faulty::{FaultOp, Faulty};
pub use fixtures::{disk_temp_files, disk_tree, put_disk_file, put_text, random_bytes, text_tree};
pub use logs::{CapturedLogs, capture_logs};
pub use memfs::{MEM_SESSION_CHUNK, MemFs};
pub use named::{assert_error_names, assert_missing_paths_named};
pub use proxy::{ChaosProxy, ProxyOptions, ProxyStats};
pub use suite::*;
