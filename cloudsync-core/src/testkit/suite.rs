//! The conformance checks (placeholder: filled in by the foundation work).

use std::sync::Arc;

use crate::remote::Remote;

/// Runs every conformance check against `remote` (an empty directory on the backend), each in
/// its own random sub-directory, and panics listing every check that failed.
pub async fn conformance(remote: Arc<dyn Remote>) {
    let _ = remote;
}
