//! Checks that errors name what failed: the operation, the remote and the path, as the
//! [`ErrorContext`](crate::ErrorContext) layer and the backend together fill them in. They
//! panic on a mismatch, as test code does.

use std::sync::Arc;

use futures::StreamExt;

use crate::error::{Error, ErrorKind};
use crate::path::RemotePath;
use crate::remote::Remote;
use crate::secret::redact_location;

/// Asserts that `e` is of `kind` and names operation `op`, the remote `described` (as the
/// layered remote's redacted `describe()`) and `path`.
pub fn assert_error_names(e: &Error, kind: ErrorKind, op: &str, described: &str, path: &str) {
    assert_eq!(e.kind(), kind, "{e}");
    assert_eq!(
        (e.operation(), e.remote(), e.path()),
        (Some(op), Some(described), Some(path)),
        "{e}"
    );
}

/// For a remote wrapped as the registry wraps it ([`Registry::layered`]): a missing file's
/// `stat` and `read` and a missing folder's `list` fail with `NotFound` naming the operation,
/// the remote and the path. Returns the redacted description the errors name, for a backend's
/// own further checks with [`assert_error_names`].
///
/// [`Registry::layered`]: crate::Registry::layered
pub async fn assert_missing_paths_named(layered: &Arc<dyn Remote>) -> String {
    let described = redact_location(&layered.describe());
    let p = |s: &str| RemotePath::new(s).expect("a valid path");
    let missing = ErrorKind::NotFound;
    let stat = layered.stat(&p("missing.txt")).await;
    let e = stat.expect_err("stat of a missing file");
    assert_error_names(&e, missing, "stat", &described, "missing.txt");
    let e = layered
        .read(&p("missing.txt"), None)
        .await
        .err()
        .expect("read of a missing file fails");
    assert_error_names(&e, missing, "read", &described, "missing.txt");
    // A missing folder fails in `list` or in the stream's first item (the listing contract).
    let e = match layered.list(&p("nodir")).await {
        Err(e) => e,
        Ok(mut s) => match s.next().await {
            Some(Err(e)) => e,
            other => panic!("list of a missing folder gave {other:?}"),
        },
    };
    assert_error_names(&e, missing, "list", &described, "nodir");
    described
}
