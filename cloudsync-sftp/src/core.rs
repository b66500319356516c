//! SFTP protocol calls shared by the operations, and [`parse_error`], which turns SFTP status
//! codes and session failures into [`ErrorKind`]s.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use cloudsync_core::{Entry, Error, ErrorKind, HashKind, Location, RemotePath, Result, Usage};
use russh_sftp::client::error::Error as SftpError;
use russh_sftp::protocol::{FileAttributes, Packet, StatusCode};
use time::OffsetDateTime;

use crate::config::Settings;
use crate::pool::Pool;
use crate::ssh::{Connection, ServerFeatures};

/// The state one remote shares between its operations.
#[derive(Debug)]
pub(crate) struct SftpCore {
    pub(crate) pool: Pool,
    /// Absolute directory on the server that is the remote's root (no trailing `/` except for
    /// `/` itself).
    pub(crate) root: String,
    pub(crate) describe: String,
    /// Where the root is (see [`location`]).
    pub(crate) location: Location,
    /// List what symlinks point to (`follow_symlinks`) instead of skipping them.
    pub(crate) follow_symlinks: bool,
    /// Offer MD5 and SHA-1 through `md5sum`/`sha1sum` on the server.
    pub(crate) shell_hashes: bool,
    /// What the server's SFTP subsystem supports (read on the first connection).
    pub(crate) features: ServerFeatures,
    /// Test hook: behave as if the server lacked `posix-rename@openssh.com`.
    pub(crate) posix_rename_off: std::sync::atomic::AtomicBool,
}

/// The canonical place of the absolute directory `root` on `host:port`: host case and the
/// user do not matter (two logins may see one directory; refusing a false overlap is safer
/// than missing a true one).
pub(crate) fn location(host: &str, port: u16, root: &str) -> Location {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    Location::network("sftp", host, Some(port), root)
}

/// `S_IFMT` and the types we care about.
const S_IFMT: u32 = 0o170000;
const S_IFDIR: u32 = 0o040000;
const S_IFREG: u32 = 0o100000;
const S_IFLNK: u32 = 0o120000;

/// What a server-side object is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    File,
    Dir,
    Symlink,
    Other,
}

/// The object type in `attrs` (file when the server sent no permissions).
pub(crate) fn kind_of(attrs: &FileAttributes) -> Kind {
    match attrs.permissions.map(|p| p & S_IFMT) {
        Some(S_IFDIR) => Kind::Dir,
        Some(S_IFREG) | None => Kind::File,
        Some(S_IFLNK) => Kind::Symlink,
        Some(_) => Kind::Other,
    }
}

/// The modtime in `attrs` (whole seconds).
pub(crate) fn modtime_of(attrs: &FileAttributes) -> Option<OffsetDateTime> {
    attrs
        .mtime
        .and_then(|t| OffsetDateTime::from_unix_timestamp(i64::from(t)).ok())
}

/// Attributes that set atime and mtime to `t` (whole seconds; SFTPv3 has 32-bit times).
pub(crate) fn mtime_attrs(t: OffsetDateTime) -> Result<FileAttributes> {
    let secs = u32::try_from(t.unix_timestamp()).map_err(|_| {
        Error::new(
            ErrorKind::InvalidInput,
            format!("modtime {t} cannot be stored over SFTP (1970..2106 only)"),
        )
    })?;
    Ok(FileAttributes {
        atime: Some(secs),
        mtime: Some(secs),
        ..FileAttributes::empty()
    })
}

/// An entry for `path` from its attributes; `None` for symlinks and special files.
pub(crate) fn entry_of(path: RemotePath, attrs: &FileAttributes) -> Option<Entry> {
    match kind_of(attrs) {
        Kind::File => {
            Some(Entry::file(path, attrs.size.unwrap_or(0)).with_modtime(modtime_of(attrs)))
        }
        Kind::Dir => Some(Entry::dir(path).with_modtime(modtime_of(attrs))),
        Kind::Symlink | Kind::Other => None,
    }
}

/// Classifies an SFTP failure, marking the connection broken when the session itself failed.
///
/// Only typed information is used: the status code of a STATUS reply, or the kind of local
/// failure (timeout, closed session). `SSH_FX_FAILURE` is `Unexpected` here; callers that know
/// what it means for their request (mkdir of an existing directory, rmdir of a non-empty one)
/// look again before reporting it.
pub(crate) fn parse_error(conn: &Connection, e: SftpError) -> Error {
    let (kind, temporary, broken) = match &e {
        SftpError::Status(st) => match st.status_code {
            StatusCode::NoSuchFile => (ErrorKind::NotFound, false, false),
            StatusCode::PermissionDenied => (ErrorKind::PermissionDenied, false, false),
            StatusCode::OpUnsupported => (ErrorKind::Unsupported, false, false),
            StatusCode::BadMessage => (ErrorKind::Protocol, false, false),
            StatusCode::NoConnection | StatusCode::ConnectionLost => {
                (ErrorKind::Transient, true, true)
            }
            StatusCode::Eof | StatusCode::Failure | StatusCode::Ok => {
                (ErrorKind::Unexpected, false, false)
            }
        },
        SftpError::Timeout => (ErrorKind::Transient, true, true),
        // The session task ended (connection dropped, channel closed) or I/O failed.
        SftpError::IO(_) | SftpError::UnexpectedBehavior(_) => (ErrorKind::Transient, true, true),
        SftpError::UnexpectedPacket => (ErrorKind::Protocol, true, true),
        SftpError::Limited(_) => (ErrorKind::Unexpected, false, false),
    };
    if broken {
        conn.mark_broken();
    }
    let message = match &e {
        SftpError::Status(st) if !st.error_message.is_empty() => {
            format!("{} ({})", st.status_code, st.error_message)
        }
        SftpError::UnexpectedBehavior(m) => format!("connection lost: {m}"),
        other => other.to_string(),
    };
    Error::new(kind, message)
        .set_temporary(temporary)
        .with_source(e)
}

/// The status code of a STATUS reply, if `e` is one.
pub(crate) fn status_of(e: &SftpError) -> Option<StatusCode> {
    match e {
        SftpError::Status(st) => Some(st.status_code),
        _ => None,
    }
}

/// A hidden temporary name next to the absolute path `to` (where a replaced file waits).
fn aside_name(to: &str) -> String {
    let (dir, name) = to.rsplit_once('/').unwrap_or(("", to));
    format!("{dir}/{}", crate::writer::temp_name(name))
}

/// Appends an SSH `string` (u32 length + bytes).
fn put_string(buf: &mut Vec<u8>, s: &[u8]) {
    buf.extend_from_slice(&(s.len() as u32).to_be_bytes());
    buf.extend_from_slice(s);
}

/// Turns the reply to an extended request that answers with a STATUS into a result.
fn status_reply(reply: Packet) -> std::result::Result<(), SftpError> {
    match reply {
        Packet::Status(st) if st.status_code == StatusCode::Ok => Ok(()),
        Packet::Status(st) => Err(SftpError::Status(st)),
        _ => Err(SftpError::UnexpectedPacket),
    }
}

impl SftpCore {
    /// Connects (one connection, to report bad credentials or an unknown host key at once)
    /// and resolves the root directory.
    pub(crate) async fn connect(settings: Settings) -> Result<SftpCore> {
        let describe_base = {
            let port = if settings.port == 22 {
                String::new()
            } else {
                format!(":{}", settings.port)
            };
            format!("sftp://{}@{}{port}", settings.user, settings.host)
        };
        let (host, port) = (settings.host.clone(), settings.port);
        let shell_hashes = settings.shell_hashes;
        let follow_symlinks = settings.follow_symlinks;
        let configured_root = settings.root.clone();
        let pool = Pool::new(settings);
        let conn = pool.get().await.map_err(|e| {
            e.with_operation("connect")
                .with_remote(describe_base.clone())
        })?;
        let root = resolve_root(&conn, &configured_root).await.map_err(|e| {
            e.with_operation("connect")
                .with_remote(describe_base.clone())
        })?;
        let features = conn.features.clone();
        drop(conn);
        let describe = if root.starts_with('/') {
            format!("{describe_base}{root}")
        } else {
            format!("{describe_base}/{root}")
        };
        Ok(SftpCore {
            location: location(&host, port, &root),
            pool,
            root,
            describe,
            follow_symlinks,
            shell_hashes,
            features,
            posix_rename_off: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// Space on the server's file system (`statvfs@openssh.com`).
    pub(crate) async fn usage(&self) -> Result<Usage> {
        let root = RemotePath::root();
        let conn = self.conn(&root).await?;
        let v = conn
            .sftp
            .statvfs(self.root.clone())
            .await
            .map_err(|e| self.fail(&conn, e, &root))?;
        let unit = v.fragment_size.max(1);
        let total = v.blocks.saturating_mul(unit);
        let free = v.blocks_avail.saturating_mul(unit);
        let used = v.blocks.saturating_sub(v.blocks_free).saturating_mul(unit);
        Ok(Usage {
            total: Some(total),
            used: Some(used),
            free: Some(free),
            trashed: None,
        })
    }

    /// The absolute server path of `path`.
    pub(crate) fn abs(&self, path: &RemotePath) -> String {
        if path.is_root() {
            self.root.clone()
        } else if self.root == "/" {
            format!("/{}", path.as_str())
        } else {
            format!("{}/{}", self.root, path.as_str())
        }
    }

    /// A connection from the pool, with the error context of `op`.
    pub(crate) async fn conn(&self, path: &RemotePath) -> Result<Arc<Connection>> {
        self.pool.get().await.map_err(|e| self.ctx(e, path))
    }

    /// Adds `path` to an error (the operation and the remote are named by the
    /// [`ErrorContext`](cloudsync_core::ErrorContext) layer around every opened remote).
    pub(crate) fn ctx(&self, e: Error, path: &RemotePath) -> Error {
        e.with_path(path)
    }

    /// `parse_error` plus context.
    pub(crate) fn fail(&self, conn: &Connection, e: SftpError, path: &RemotePath) -> Error {
        self.ctx(parse_error(conn, e), path)
    }

    /// STAT of a path, following symlinks.
    pub(crate) async fn stat_on(
        &self,
        conn: &Connection,
        path: &RemotePath,
    ) -> Result<FileAttributes> {
        conn.sftp
            .stat(self.abs(path))
            .await
            .map(|a| a.attrs)
            .map_err(|e| self.fail(conn, e, path))
    }

    /// LSTAT of a path: a symlink is described, not followed.
    pub(crate) async fn lstat_on(
        &self,
        conn: &Connection,
        path: &RemotePath,
    ) -> Result<FileAttributes> {
        conn.sftp
            .lstat(self.abs(path))
            .await
            .map(|a| a.attrs)
            .map_err(|e| self.fail(conn, e, path))
    }

    /// Creates `dir` and its missing parents; succeeds if it exists as a directory.
    ///
    /// Its errors name the step `mkdir` (and the directory), more precise than the write or
    /// copy that needed the directory.
    pub(crate) async fn mkdir_all(&self, conn: &Connection, dir: &RemotePath) -> Result<()> {
        self.mkdir_all_steps(conn, dir)
            .await
            .map_err(|e| e.with_operation("mkdir"))
    }

    async fn mkdir_all_steps(&self, conn: &Connection, dir: &RemotePath) -> Result<()> {
        // Walk up until a directory exists (usually the first try), then create downwards.
        let mut missing = Vec::new();
        let mut cur = Some(dir.clone());
        while let Some(d) = cur {
            match conn.sftp.mkdir(self.abs(&d), FileAttributes::empty()).await {
                Ok(_) => break,
                Err(e) => match status_of(&e) {
                    Some(StatusCode::NoSuchFile) if !d.is_root() => {
                        cur = d.parent();
                        missing.push(d);
                        continue;
                    }
                    // FAILURE is what OpenSSH answers for an existing path: check what is there.
                    Some(StatusCode::Failure) | Some(StatusCode::PermissionDenied) => {
                        let attrs = self.stat_on(conn, &d).await.map_err(|se| {
                            if se.kind() == ErrorKind::NotFound {
                                self.fail(conn, e.clone(), &d)
                            } else {
                                se
                            }
                        })?;
                        if kind_of(&attrs) != Kind::Dir {
                            return Err(self
                                .ctx(Error::new(ErrorKind::Conflict, "a file is in the way"), &d));
                        }
                        break;
                    }
                    _ => return Err(self.fail(conn, e, &d)),
                },
            }
        }
        for d in missing.into_iter().rev() {
            if let Err(e) = conn.sftp.mkdir(self.abs(&d), FileAttributes::empty()).await {
                // A concurrent writer may have created it meanwhile.
                let exists =
                    matches!(self.stat_on(conn, &d).await, Ok(a) if kind_of(&a) == Kind::Dir);
                if !exists {
                    return Err(self.fail(conn, e, &d));
                }
            }
        }
        Ok(())
    }

    /// Renames `from` over `to` (absolute server paths), replacing `to` atomically with
    /// posix-rename@openssh.com.
    ///
    /// Without that extension SFTPv3 RENAME refuses to replace, so an existing file at `to` is
    /// first moved aside to a hidden temporary name, `from` is renamed into place and the old
    /// file is removed; if the rename into place fails, the old file is put back. Between the
    /// calls `to` is briefly absent, but a failure never loses both versions.
    pub(crate) async fn rename_over(
        &self,
        conn: &Connection,
        from: &str,
        to: &str,
    ) -> std::result::Result<(), SftpError> {
        if conn.features.posix_rename && !self.posix_rename_off.load(Ordering::Relaxed) {
            let mut data = Vec::with_capacity(from.len() + to.len() + 8);
            put_string(&mut data, from.as_bytes());
            put_string(&mut data, to.as_bytes());
            let reply = conn.sftp.extended("posix-rename@openssh.com", data).await?;
            return status_reply(reply);
        }
        let first = match conn.sftp.rename(from, to).await {
            Ok(_) => return Ok(()),
            Err(e) => e,
        };
        // Only a file (or link) in the way is moved aside; a directory there, a missing
        // target or an unreadable one: the first answer says what is wrong.
        let in_way = conn.sftp.lstat(to).await.map(|a| kind_of(&a.attrs));
        if !matches!(in_way, Ok(Kind::File | Kind::Symlink | Kind::Other)) {
            return Err(first);
        }
        let aside = aside_name(to);
        if conn.sftp.rename(to, aside.as_str()).await.is_err() {
            return Err(first);
        }
        match conn.sftp.rename(from, to).await {
            Ok(_) => {
                if let Err(e) = conn.sftp.remove(aside.as_str()).await {
                    tracing::warn!(path = %aside, error = %e, "cannot remove the replaced file");
                }
                Ok(())
            }
            Err(e) => {
                if let Err(back) = conn.sftp.rename(aside.as_str(), to).await {
                    tracing::error!(
                        path = %to, kept_as = %aside, error = %back,
                        "rename failed and the old file cannot be put back: it is kept aside"
                    );
                }
                Err(e)
            }
        }
    }

    /// copy-data: copies the whole content of an open read handle into an open write handle.
    pub(crate) async fn copy_data(
        &self,
        conn: &Connection,
        read_handle: &str,
        write_handle: &str,
    ) -> std::result::Result<(), SftpError> {
        let mut data = Vec::new();
        put_string(&mut data, read_handle.as_bytes());
        data.extend_from_slice(&0u64.to_be_bytes()); // read from offset 0
        data.extend_from_slice(&0u64.to_be_bytes()); // length 0: up to the end
        put_string(&mut data, write_handle.as_bytes());
        data.extend_from_slice(&0u64.to_be_bytes()); // write at offset 0
        let reply = conn.sftp.extended("copy-data", data).await?;
        status_reply(reply)
    }

    /// A hash computed by `md5sum`/`sha1sum` on the server.
    pub(crate) async fn shell_hash(&self, path: &RemotePath, kind: HashKind) -> Result<String> {
        let (program, len) = match kind {
            HashKind::Md5 => ("md5sum", 32),
            HashKind::Sha1 => ("sha1sum", 40),
            _ => return Err(Error::unsupported("hash", &self.describe).with_path(path)),
        };
        let conn = self.conn(path).await?;
        let command = format!("{program} {}", shell_quote(&self.abs(path)));
        let out = conn.exec(&command).await.map_err(|e| self.ctx(e, path))?;
        parse_hash_output(&out, len).ok_or_else(|| {
            self.ctx(
                Error::new(
                    ErrorKind::Protocol,
                    format!(
                        "{program} printed no hash: {:?}",
                        String::from_utf8_lossy(&out[..out.len().min(200)])
                    ),
                ),
                path,
            )
        })
    }
}

/// An open SFTP handle that is closed when dropped (in a spawned task) unless closed
/// explicitly with [`OpenHandle::close`], which reports the server's answer.
pub(crate) struct OpenHandle {
    pub(crate) conn: Arc<Connection>,
    handle: Option<String>,
}

impl OpenHandle {
    pub(crate) fn new(conn: Arc<Connection>, handle: String) -> Self {
        OpenHandle {
            conn,
            handle: Some(handle),
        }
    }

    /// The handle string for requests.
    pub(crate) fn handle(&self) -> &str {
        self.handle.as_deref().unwrap_or("")
    }

    /// Takes the handle out: the caller closes it (nothing is sent when this is dropped).
    pub(crate) fn take(&mut self) -> Option<String> {
        self.handle.take()
    }

    /// Closes the handle and waits for the server's status (for writes, the last chance
    /// for the server to report an error).
    ///
    /// On a connection already known to be dead this fails at once: a request sent while the
    /// session is shutting down might otherwise wait for the whole request timeout.
    pub(crate) async fn close(mut self) -> std::result::Result<(), SftpError> {
        match self.handle.take() {
            Some(_) if !self.conn.is_usable() => {
                Err(SftpError::UnexpectedBehavior("session closed".into()))
            }
            Some(h) => self.conn.sftp.close(h).await.map(|_| ()),
            None => Ok(()),
        }
    }
}

impl Drop for OpenHandle {
    fn drop(&mut self) {
        if let Some(h) = self.handle.take()
            && self.conn.is_usable()
            && let Ok(rt) = tokio::runtime::Handle::try_current()
        {
            let conn = self.conn.clone();
            rt.spawn(async move {
                let _ = conn.sftp.close(h).await;
            });
        }
    }
}

/// Quotes a string for a POSIX shell.
pub(crate) fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// The hex digest at the start of `md5sum`-style output (`[\]HEX  name`).
pub(crate) fn parse_hash_output(out: &[u8], len: usize) -> Option<String> {
    let text = std::str::from_utf8(out).ok()?;
    let text = text.strip_prefix('\\').unwrap_or(text);
    let hex = text.get(..len)?;
    let ok = hex.bytes().all(|b| b.is_ascii_hexdigit())
        && text[len..].starts_with(|c: char| c.is_ascii_whitespace());
    ok.then(|| hex.to_ascii_lowercase())
}

/// The absolute root: `configured` if absolute, else below the login directory.
async fn resolve_root(conn: &crate::ssh::Connection, configured: &str) -> Result<String> {
    let configured = configured.strip_prefix("~/").unwrap_or(configured);
    let joined = if configured.starts_with('/') {
        configured.to_owned()
    } else {
        let home = conn
            .sftp
            .realpath(".")
            .await
            .map_err(|e| parse_error(conn, e).with_path("."))?;
        let home = home
            .files
            .into_iter()
            .next()
            .map(|f| f.filename)
            .filter(|h| h.starts_with('/'))
            .ok_or_else(|| {
                Error::new(
                    ErrorKind::Protocol,
                    "the server did not say what its login directory is",
                )
            })?;
        let home = home.trim_end_matches('/');
        if configured.is_empty() {
            if home.is_empty() {
                "/".to_owned()
            } else {
                home.to_owned()
            }
        } else {
            format!("{home}/{configured}")
        }
    };
    let trimmed = joined.trim_end_matches('/');
    Ok(if trimmed.is_empty() {
        "/".to_owned()
    } else {
        trimmed.to_owned()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn location_is_host_port_and_root() {
        let a = location("NAS.local", 22, "/srv/photos");
        assert_eq!(a, location("nas.local.", 22, "/srv/./photos/"));
        assert_eq!(a, location("nas.local", 22, "/srv/x/../photos"));
        assert!(a.contains(&location("nas.local", 22, "/srv/photos/2024")));
        assert_ne!(a, location("nas.local", 2222, "/srv/photos"));
        assert_ne!(a, location("other.local", 22, "/srv/photos"));
        assert_eq!(location("[::1]", 22, "/x"), location("::1", 22, "/x"));
    }

    #[test]
    fn quoting_and_hash_output() {
        assert_eq!(shell_quote("a b'c"), r"'a b'\''c'");
        let md5 = "d41d8cd98f00b204e9800998ecf8427e";
        assert_eq!(
            parse_hash_output(format!("{md5}  /x/y\n").as_bytes(), 32).as_deref(),
            Some(md5)
        );
        assert_eq!(
            parse_hash_output(format!("\\{md5}  /x/new\\nline\n").as_bytes(), 32).as_deref(),
            Some(md5)
        );
        assert_eq!(parse_hash_output(b"md5sum: x: No such file\n", 32), None);
        assert_eq!(parse_hash_output(b"", 32), None);
    }

    #[test]
    fn kinds_and_times() {
        let mut a = FileAttributes::empty();
        a.permissions = Some(0o100644);
        assert_eq!(kind_of(&a), Kind::File);
        a.permissions = Some(0o040755);
        assert_eq!(kind_of(&a), Kind::Dir);
        a.permissions = Some(0o120777);
        assert_eq!(kind_of(&a), Kind::Symlink);
        a.permissions = Some(0o010644);
        assert_eq!(kind_of(&a), Kind::Other);
        let t = OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap();
        let m = mtime_attrs(t).unwrap();
        assert_eq!(modtime_of(&m), Some(t));
        // Extreme values a server may send describe an entry, never panic.
        let mut a = FileAttributes::empty();
        a.permissions = Some(u32::MAX);
        assert_eq!(kind_of(&a), Kind::Other);
        a.permissions = Some(0o100644);
        a.size = Some(u64::MAX);
        a.mtime = Some(u32::MAX);
        let e = entry_of(RemotePath::new("big").unwrap(), &a).unwrap();
        assert_eq!(e.size, u64::MAX);
        assert_eq!(e.modtime.map(|t| t.year()), Some(2106));
        let too_old = OffsetDateTime::from_unix_timestamp(-5).unwrap();
        assert_eq!(
            mtime_attrs(too_old).unwrap_err().kind(),
            ErrorKind::InvalidInput
        );
    }
}
