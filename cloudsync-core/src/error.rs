//! The one public [`Error`] type, its [`ErrorKind`] and retry classification.
//!
//! Backends classify protocol failures into a kind from typed codes (status codes, reply codes,
//! error tags), never from message text, and mark the error temporary when a retry may succeed.
//! The executor retries only errors for which [`Error::is_retryable`] is true.

use std::borrow::Cow;
use std::fmt;
use std::time::Duration;

/// Longest message, remote or path (in characters) that [`Error`]'s `Display` shows whole.
///
/// A longer one is cut in the middle with `…` (keeping its start and its end, where a file
/// name's extension or a message's reason is): a hostile server can send a 5,000-byte name,
/// and an error line should still fit a terminal and a log. [`Error::path`] and
/// [`Error::message`] keep the full value.
const DISPLAY_MAX_CHARS: usize = 200;

/// `s` cut to at most `max_chars` characters, with `…` at the end when something was cut (on a
/// character boundary): server text quoted in an error message stays readable however long the
/// server made it.
///
/// ```
/// use cloudsync_core::cut_text;
/// assert_eq!(cut_text("abcdef", 3), "abc…");
/// assert_eq!(cut_text("ab", 3), "ab");
/// ```
pub fn cut_text(s: &str, max_chars: usize) -> Cow<'_, str> {
    match s.char_indices().nth(max_chars) {
        None => Cow::Borrowed(s),
        Some((i, _)) => Cow::Owned(format!("{}…", &s[..i])),
    }
}

/// `s` cut to at most `DISPLAY_MAX_CHARS` characters, with `…` in the middle when it is
/// longer; cuts fall on character boundaries.
fn shorten(s: &str) -> Cow<'_, str> {
    // A string of at most that many bytes has at most that many characters.
    if s.len() <= DISPLAY_MAX_CHARS {
        return Cow::Borrowed(s);
    }
    let chars = s.chars().count();
    if chars <= DISPLAY_MAX_CHARS {
        return Cow::Borrowed(s);
    }
    let keep = DISPLAY_MAX_CHARS - 1;
    let head = keep / 2 + keep % 2;
    let tail = keep / 2;
    let head_end = s.char_indices().nth(head).map_or(s.len(), |(i, _)| i);
    let tail_start = s
        .char_indices()
        .nth(chars - tail)
        .map_or(s.len(), |(i, _)| i);
    let mut out = String::with_capacity(head_end + 3 + (s.len() - tail_start));
    out.push_str(&s[..head_end]);
    out.push('…');
    out.push_str(&s[tail_start..]);
    Cow::Owned(out)
}

/// Result with the crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong, in terms an application can act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The file or directory does not exist.
    NotFound,
    /// The target exists and the operation will not replace it.
    AlreadyExists,
    /// The server refused access to this path.
    PermissionDenied,
    /// Authentication failed (bad credentials, expired token, unknown host key).
    Auth,
    /// The server asked us to slow down; see [`Error::retry_after`].
    RateLimited,
    /// A temporary failure (dropped connection, timeout, 5xx); retrying may succeed.
    Transient,
    /// The backend does not support this operation.
    Unsupported,
    /// Input from a user or server is not valid (path, glob, duration, URL, response body).
    InvalidInput,
    /// Configuration is missing, contradictory or malformed.
    ConfigInvalid,
    /// The operation conflicts with the current state (missing parent, non-empty directory,
    /// file where a directory was expected, ...).
    Conflict,
    /// A precondition (size, hash, modtime) did not hold, e.g. a source changed since planning.
    ConditionNotMatch,
    /// The destination is out of space or over quota.
    QuotaExceeded,
    /// The server broke the protocol (malformed or truncated response).
    Protocol,
    /// A local I/O error without a more specific kind.
    Io,
    /// The operation was cancelled.
    Cancelled,
    /// The run stopped because it transferred as much as allowed (`--max-transfer`); nothing
    /// was deleted.
    MaxTransferReached,
    /// The run stopped because it ran as long as allowed (`--max-duration`); nothing was
    /// deleted.
    MaxDurationReached,
    /// Anything else.
    Unexpected,
}

impl ErrorKind {
    /// A short lowercase name, as used in messages and reports.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::NotFound => "not found",
            ErrorKind::AlreadyExists => "already exists",
            ErrorKind::PermissionDenied => "permission denied",
            ErrorKind::Auth => "authentication failed",
            ErrorKind::RateLimited => "rate limited",
            ErrorKind::Transient => "temporary failure",
            ErrorKind::Unsupported => "unsupported",
            ErrorKind::InvalidInput => "invalid input",
            ErrorKind::ConfigInvalid => "invalid configuration",
            ErrorKind::Conflict => "conflict",
            ErrorKind::ConditionNotMatch => "condition not met",
            ErrorKind::QuotaExceeded => "quota exceeded",
            ErrorKind::Protocol => "protocol error",
            ErrorKind::Io => "i/o error",
            ErrorKind::Cancelled => "cancelled",
            ErrorKind::MaxTransferReached => "max transfer reached",
            ErrorKind::MaxDurationReached => "max duration reached",
            ErrorKind::Unexpected => "unexpected error",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

type Source = Box<dyn std::error::Error + Send + Sync + 'static>;

/// An error from a remote, the engine or the configuration, with its context.
///
/// ```
/// use cloudsync_core::{Error, ErrorKind};
/// let e = Error::new(ErrorKind::NotFound, "no such file")
///     .with_operation("stat")
///     .with_remote("sftp://me@host/base")
///     .with_path("a/b.txt");
/// assert_eq!(e.kind(), ErrorKind::NotFound);
/// assert!(!e.is_retryable());
/// assert_eq!(
///     e.to_string(),
///     "not found: no such file (stat sftp://me@host/base: a/b.txt)"
/// );
/// ```
///
/// `Display` cuts a message, remote or path longer than 200 characters in the middle (`…`),
/// so a hostile server's 5,000-byte name does not flood a terminal or a log; the accessors
/// ([`Error::message`], [`Error::path`]) return them whole.
pub struct Error {
    inner: Box<Inner>,
}

/// The fields of an [`Error`], boxed so that `Result<T, Error>` stays one pointer wide.
struct Inner {
    kind: ErrorKind,
    message: String,
    operation: Option<&'static str>,
    remote: Option<String>,
    path: Option<String>,
    retry_after: Option<Duration>,
    temporary: bool,
    source: Option<Source>,
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.inner
            .source
            .as_deref()
            .map(|s| s as &(dyn std::error::Error + 'static))
    }
}

impl Error {
    /// A new error of `kind`. Errors of kind `Transient` and `RateLimited` are temporary.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error {
            inner: Box::new(Inner {
                kind,
                message: message.into(),
                operation: None,
                remote: None,
                path: None,
                retry_after: None,
                temporary: matches!(kind, ErrorKind::Transient | ErrorKind::RateLimited),
                source: None,
            }),
        }
    }

    /// Shorthand for `Error::new(ErrorKind::Unsupported, ..)` naming the operation and backend.
    pub fn unsupported(operation: &'static str, backend: &str) -> Self {
        Error::new(
            ErrorKind::Unsupported,
            format!("{backend} does not support {operation}"),
        )
        .with_operation(operation)
    }

    /// A rate-limit error that asks the caller to wait `retry_after` (when known).
    pub fn rate_limited(message: impl Into<String>, retry_after: Option<Duration>) -> Self {
        let mut e = Error::new(ErrorKind::RateLimited, message);
        e.inner.retry_after = retry_after;
        e
    }

    /// Sets the operation (`"list"`, `"write"`, ...).
    pub fn with_operation(mut self, operation: &'static str) -> Self {
        self.inner.operation = Some(operation);
        self
    }

    /// Sets the remote's description (never containing secrets).
    pub fn with_remote(mut self, remote: impl Into<String>) -> Self {
        self.inner.remote = Some(remote.into());
        self
    }

    /// Sets the path the error concerns (kept whole; `Display` shortens a very long one).
    pub fn with_path(mut self, path: impl fmt::Display) -> Self {
        self.inner.path = Some(path.to_string());
        self
    }

    /// Sets the operation unless the error names one already: a wrapper that adds context
    /// ([`ErrorContext`](crate::ErrorContext)) keeps what the backend said more precisely
    /// (`"connect"` inside a `"list"`).
    ///
    /// ```
    /// use cloudsync_core::{Error, ErrorKind};
    /// let e = Error::new(ErrorKind::Transient, "reset").with_operation("connect");
    /// assert_eq!(e.or_operation("list").operation(), Some("connect"));
    /// ```
    pub fn or_operation(mut self, operation: &'static str) -> Self {
        self.inner.operation.get_or_insert(operation);
        self
    }

    /// Sets the remote's description (never containing secrets) unless the error names one
    /// already; nothing is copied when it does.
    pub fn or_remote(mut self, remote: &str) -> Self {
        if self.inner.remote.is_none() {
            self.inner.remote = Some(remote.to_owned());
        }
        self
    }

    /// Sets the path unless the error names one already (the entry of a listing that could
    /// not be read is more precise than the directory listed); `path` is formatted only when
    /// it is used.
    pub fn or_path(mut self, path: impl fmt::Display) -> Self {
        if self.inner.path.is_none() {
            self.inner.path = Some(path.to_string());
        }
        self
    }

    /// Sets the underlying cause.
    pub fn with_source(mut self, source: impl Into<Source>) -> Self {
        self.inner.source = Some(source.into());
        self
    }

    /// Marks this error as temporary (retrying may succeed) or not.
    pub fn set_temporary(mut self, temporary: bool) -> Self {
        self.inner.temporary = temporary;
        self
    }

    /// Sets how long the server asked us to wait.
    pub fn with_retry_after(mut self, after: Duration) -> Self {
        self.inner.retry_after = Some(after);
        self
    }

    /// What went wrong.
    pub fn kind(&self) -> ErrorKind {
        self.inner.kind
    }

    /// The message without context.
    pub fn message(&self) -> &str {
        &self.inner.message
    }

    /// The operation, when known.
    pub fn operation(&self) -> Option<&'static str> {
        self.inner.operation
    }

    /// The remote's description, when known.
    pub fn remote(&self) -> Option<&str> {
        self.inner.remote.as_deref()
    }

    /// The path the error concerns, when known.
    pub fn path(&self) -> Option<&str> {
        self.inner.path.as_deref()
    }

    /// How long the server asked us to wait before retrying.
    pub fn retry_after(&self) -> Option<Duration> {
        self.inner.retry_after
    }

    /// Whether the executor may retry the operation that failed.
    pub fn is_retryable(&self) -> bool {
        self.inner.temporary
    }

    /// The message followed by every cause in the source chain, `: `-separated.
    ///
    /// This is what a command-line program prints for one failure.
    pub fn chain(&self) -> String {
        let mut out = self.to_string();
        let mut cur: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(self);
        while let Some(e) = cur {
            let s = e.to_string();
            if !out.contains(&s) {
                out.push_str(": ");
                out.push_str(&s);
            }
            cur = e.source();
        }
        out
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.inner.kind, shorten(&self.inner.message))?;
        let ctx = (
            self.inner.operation,
            self.inner.remote.as_deref(),
            self.inner.path.as_deref(),
        );
        match ctx {
            (None, None, None) => Ok(()),
            (op, remote, path) => {
                f.write_str(" (")?;
                let mut sep = "";
                if let Some(op) = op {
                    f.write_str(op)?;
                    sep = " ";
                }
                if let Some(r) = remote {
                    write!(f, "{sep}{}", shorten(r))?;
                    sep = ": ";
                } else if !sep.is_empty() {
                    sep = " ";
                }
                if let Some(p) = path {
                    write!(f, "{sep}{}", shorten(p))?;
                }
                f.write_str(")")
            }
        }
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let i = &self.inner;
        let mut d = f.debug_struct("Error");
        d.field("kind", &i.kind).field("message", &i.message);
        if let Some(op) = i.operation {
            d.field("operation", &op);
        }
        if let Some(r) = &i.remote {
            d.field("remote", r);
        }
        if let Some(p) = &i.path {
            d.field("path", p);
        }
        if let Some(r) = i.retry_after {
            d.field("retry_after", &r);
        }
        d.field("temporary", &i.temporary);
        if let Some(s) = &i.source {
            d.field("source", s);
        }
        d.finish()
    }
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        use std::io::ErrorKind as K;
        let kind = match e.kind() {
            K::NotFound => ErrorKind::NotFound,
            K::PermissionDenied => ErrorKind::PermissionDenied,
            K::AlreadyExists => ErrorKind::AlreadyExists,
            K::InvalidInput | K::InvalidData => ErrorKind::InvalidInput,
            K::StorageFull | K::QuotaExceeded => ErrorKind::QuotaExceeded,
            K::DirectoryNotEmpty | K::NotADirectory | K::IsADirectory => ErrorKind::Conflict,
            K::Unsupported => ErrorKind::Unsupported,
            K::TimedOut
            | K::Interrupted
            | K::ConnectionReset
            | K::ConnectionAborted
            | K::ConnectionRefused
            | K::BrokenPipe
            | K::UnexpectedEof
            | K::WouldBlock => ErrorKind::Transient,
            _ => ErrorKind::Io,
        };
        let message = e.to_string();
        Error::new(kind, message).with_source(e)
    }
}

impl From<object_store::Error> for Error {
    fn from(e: object_store::Error) -> Self {
        use object_store::Error as E;
        let (kind, temporary) = match &e {
            E::NotFound { .. } => (ErrorKind::NotFound, false),
            E::AlreadyExists { .. } => (ErrorKind::AlreadyExists, false),
            E::Precondition { .. } | E::NotModified { .. } => (ErrorKind::ConditionNotMatch, false),
            E::NotSupported { .. } | E::NotImplemented { .. } => (ErrorKind::Unsupported, false),
            E::PermissionDenied { .. } => (ErrorKind::PermissionDenied, false),
            E::Unauthenticated { .. } => (ErrorKind::Auth, false),
            E::InvalidPath { .. } | E::UnknownConfigurationKey { .. } => {
                (ErrorKind::InvalidInput, false)
            }
            // Generic errors are mostly transport failures that the store already retried.
            _ => (ErrorKind::Unexpected, false),
        };
        let message = e.to_string();
        Error::new(kind, message)
            .set_temporary(temporary)
            .with_source(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_with_and_without_context() {
        assert_eq!(
            Error::new(ErrorKind::Conflict, "x").to_string(),
            "conflict: x"
        );
        assert_eq!(
            Error::new(ErrorKind::Conflict, "x")
                .with_path("a")
                .to_string(),
            "conflict: x (a)"
        );
        assert_eq!(
            Error::new(ErrorKind::Conflict, "x")
                .with_operation("write")
                .with_path("a")
                .to_string(),
            "conflict: x (write a)"
        );
    }

    #[test]
    fn retry_classification() {
        assert!(Error::new(ErrorKind::Transient, "").is_retryable());
        assert!(Error::rate_limited("slow", Some(Duration::from_secs(2))).is_retryable());
        assert!(!Error::new(ErrorKind::NotFound, "").is_retryable());
        assert!(
            Error::new(ErrorKind::Unexpected, "")
                .set_temporary(true)
                .is_retryable()
        );
        let io: Error = std::io::Error::from(std::io::ErrorKind::ConnectionReset).into();
        assert!(io.is_retryable());
        let io: Error = std::io::Error::from(std::io::ErrorKind::NotFound).into();
        assert_eq!(io.kind(), ErrorKind::NotFound);
    }

    #[test]
    fn display_cuts_absurd_names_and_keeps_them_in_path() {
        let name = format!("{}.txt", "n".repeat(4_996));
        assert_eq!(name.len(), 5_000);
        let e = Error::new(
            ErrorKind::InvalidInput,
            format!("invalid name {name:?}: too long"),
        )
        .with_operation("list")
        .with_path(&name);
        let shown = e.to_string();
        assert!(
            shown.chars().count() < 2 * DISPLAY_MAX_CHARS + 40,
            "{}",
            shown.len()
        );
        assert_eq!(shown.matches('…').count(), 2, "{shown}");
        // The start and the end of each value survive: the reason and the extension.
        assert!(
            shown.starts_with("invalid input: invalid name \"nnn"),
            "{shown}"
        );
        assert!(shown.contains("\": too long (list nnn"), "{shown}");
        assert!(shown.ends_with("nnn.txt)"), "{shown}");
        assert_eq!(e.path(), Some(name.as_str()));
        assert!(e.message().contains(&name));
    }

    #[test]
    fn display_cuts_multibyte_names_on_char_boundaries() {
        // 1 + 2 + 4-byte characters, so no fixed byte offset is a boundary.
        for name in [
            "é".repeat(2_500),
            format!("a{}", "😀".repeat(1_250)),
            format!("ab{}", "日本".repeat(900)),
        ] {
            let e = Error::new(ErrorKind::NotFound, name.clone()).with_path(&name);
            let shown = e.to_string();
            let path_part = shown
                .rsplit_once(" (")
                .map(|(_, p)| p.trim_end_matches(')'))
                .unwrap_or_default();
            assert_eq!(path_part.chars().count(), DISPLAY_MAX_CHARS, "{shown}");
            assert!(name.starts_with(path_part.split('…').next().unwrap_or("?")));
            assert!(name.ends_with(path_part.rsplit('…').next().unwrap_or("?")));
            assert_eq!(e.path(), Some(name.as_str()));
        }
        // At the limit nothing is cut.
        let exact = "ü".repeat(DISPLAY_MAX_CHARS);
        let shown = Error::new(ErrorKind::NotFound, "x")
            .with_path(&exact)
            .to_string();
        assert!(shown.contains(&exact) && !shown.contains('…'), "{shown}");
    }

    #[test]
    fn chain_includes_sources_once() {
        let e = Error::new(ErrorKind::Io, "write failed")
            .with_source(std::io::Error::other("disk on fire"));
        assert_eq!(e.chain(), "i/o error: write failed: disk on fire");
    }
}
