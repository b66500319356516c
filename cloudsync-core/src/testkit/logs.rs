//! [`capture_logs`]: everything a test binary logs through `tracing`, kept for inspection (a
//! test that no secret reaches a log line greps it).

use std::io::Write;
use std::sync::{Arc, Mutex};

/// The tracing output of a test binary, at TRACE level.
#[derive(Clone, Default)]
pub struct CapturedLogs(Arc<Mutex<Vec<u8>>>);

impl CapturedLogs {
    /// Everything logged so far, as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap_or_else(|p| p.into_inner())).into_owned()
    }
}

impl Write for CapturedLogs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Installs a TRACE-level subscriber for the whole test binary that writes into the returned
/// buffer. Panics if the binary already has a subscriber (call it once, from the one test
/// that needs it).
///
/// ```no_run
/// let logs = cloudsync_core::testkit::capture_logs();
/// tracing::info!("hello");
/// assert!(logs.text().contains("hello"));
/// ```
pub fn capture_logs() -> CapturedLogs {
    use tracing_subscriber::util::SubscriberInitExt as _;
    let buf = CapturedLogs::default();
    let writer = buf.clone();
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish()
        .try_init()
        .unwrap_or_else(|e| panic!("capture_logs: the test binary has a subscriber already: {e}"));
    buf
}
