//! Exit codes, as rclone documents them, and how errors map to them.

use cloudsync::{Error, ErrorKind, ErrorRecord};

/// Success.
pub const OK: u8 = 0;
/// Syntax or usage error (bad flags, bad config), and errors not otherwise categorised (as
/// rclone 1.60 does).
pub const USAGE: u8 = 1;
/// Source or destination directory not found.
pub const DIR_NOT_FOUND: u8 = 3;
/// Source or destination file not found.
pub const FILE_NOT_FOUND: u8 = 4;
/// Temporary errors: running again may succeed.
pub const RETRY: u8 = 5;
/// Less serious errors: some files failed in a way retrying did not fix.
pub const NO_RETRY: u8 = 6;
/// Fatal errors: retrying will not help (authentication, quota).
pub const FATAL: u8 = 7;
/// The run stopped at the limit set by `--max-transfer`.
pub const TRANSFER_EXCEEDED: u8 = 8;
/// Everything succeeded but no file was transferred (`--error-on-no-transfer`).
pub const NO_FILES_TRANSFERRED: u8 = 9;
/// The run stopped at the limit set by `--max-duration`.
pub const DURATION_EXCEEDED: u8 = 10;

/// A failure that ends the command: the message printed and the exit code.
#[derive(Debug)]
pub struct Failure {
    pub code: u8,
    pub message: String,
}

impl Failure {
    pub fn usage(message: impl Into<String>) -> Self {
        Failure {
            code: USAGE,
            message: message.into(),
        }
    }
}

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        let code = match e.kind() {
            ErrorKind::NotFound => DIR_NOT_FOUND,
            ErrorKind::Auth | ErrorKind::QuotaExceeded => FATAL,
            _ if e.is_retryable() => RETRY,
            _ => USAGE,
        };
        Failure {
            code,
            message: e.chain(),
        }
    }
}

impl From<std::io::Error> for Failure {
    fn from(e: std::io::Error) -> Self {
        Failure::from(Error::from(e))
    }
}

/// The exit code for a run that finished with per-file `errors`.
pub fn for_records(errors: &[ErrorRecord]) -> u8 {
    let has = |kind| errors.iter().any(|e| e.kind == kind);
    if errors.is_empty() {
        OK
    } else if has(ErrorKind::MaxTransferReached) {
        TRANSFER_EXCEEDED
    } else if has(ErrorKind::MaxDurationReached) {
        DURATION_EXCEEDED
    } else if errors
        .iter()
        .any(|e| matches!(e.kind, ErrorKind::Auth | ErrorKind::QuotaExceeded))
    {
        FATAL
    } else if errors.iter().all(|e| e.temporary) {
        RETRY
    } else {
        NO_RETRY
    }
}
