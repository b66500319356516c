//! Listing transfers (`MLSD`, `LIST`) and the absence check built on them.
//!
//! The data connection of a listing is run here rather than through suppaftp's `mlsd`/`list`,
//! for two reasons: suppaftp reads a listing into memory without any bound on its lines or its
//! length, and it discards the text of the final reply, where vsftpd reports a directory it
//! could not read as `226 Transfer done (but failed to open directory).` with no data, which
//! must not pass for an empty directory.
//!
//! FTP answers 550 both for a missing path and for one we may not use, so [`Pooled::absent`](crate::pool::Pooled::absent)
//! confirms absence from the parent's listing before anything is reported as not found.

use std::net::SocketAddr;

use cloudsync_core::{Error, ErrorKind, Result};
use suppaftp::Status;
use suppaftp::tokio::AsyncTlsConnector;
use time::OffsetDateTime;
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncRead, BufReader};
use tokio::net::TcpStream;

use crate::core::Conn;
use crate::parse::{parse_list_line, parse_mlsd_line};

/// Longest listing line accepted (a name is at most a few KiB on any file system).
pub(crate) const MAX_LINE: usize = 16 * 1024;
/// Most bytes one directory listing may have.
pub(crate) const MAX_LISTING_BYTES: usize = 128 * 1024 * 1024;
/// Most lines one directory listing may have.
pub(crate) const MAX_LISTING_LINES: usize = 1_000_000;

/// One line of a listing: text, or the raw bytes when they are not UTF-8.
pub(crate) type Line = std::result::Result<String, Vec<u8>>;

fn protocol(msg: String, path: &str) -> Error {
    Error::new(ErrorKind::Protocol, msg).with_path(path)
}

impl Conn {
    /// `MLSD path` or (`CWD path` + `LIST -a`): the lines of a directory listing, at most
    /// [`MAX_LISTING_LINES`] lines of at most [`MAX_LINE`] bytes, [`MAX_LISTING_BYTES`] in all.
    pub(crate) async fn list_lines(&mut self, path: &str, mlsd: bool) -> Result<Vec<Line>> {
        if mlsd {
            // Pure-FTPd changes into `path` for MLSD and back to the working directory after;
            // when that directory was removed since (by another connection), the listing
            // fails with 421. Start from `/`, which always exists.
            if self.moved {
                self.cwd("/").await?;
            }
            self.listing(&format!("MLSD {path}"), path).await
        } else {
            // CWD first: it fails cleanly for a missing directory, and `LIST -a` (which shows
            // dot files on vsftpd) then needs no path argument that could be read as options.
            self.cwd(path).await?;
            self.listing("LIST -a", path).await
        }
    }

    /// Runs one listing command over a passive data connection and reads its lines and final
    /// reply. A final reply that reports a failure (even with code 226) is an error.
    async fn listing(&mut self, command: &str, path: &str) -> Result<Vec<Line>> {
        let t = self.timeout;
        let addr = self.passive_addr().await?;
        let tcp = match tokio::time::timeout(t, TcpStream::connect(addr)).await {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => {
                // The server waits for a connection that will not come.
                self.broken = true;
                return Err(Error::from(e).set_temporary(true).with_path(path));
            }
            Err(_) => {
                self.broken = true;
                return Err(
                    Error::new(ErrorKind::Transient, "data connection timed out").with_path(path),
                );
            }
        };
        let r = tokio::time::timeout(
            t,
            self.ftp
                .custom_command(command, &[Status::from(150), Status::from(125)]),
        )
        .await;
        self.check(r, "list", path)?;
        // Until the final reply is read, the connection is out of step.
        self.broken = true;
        let data: Box<dyn AsyncRead + Send + Unpin> = match &self.data_tls {
            None => Box::new(tcp),
            Some((tls, domain)) => match tokio::time::timeout(t, tls.connect(domain, tcp)).await {
                Ok(Ok(s)) => Box::new(s),
                Ok(Err(e)) => return Err(crate::core::parse_error(e).with_path(path)),
                Err(_) => {
                    return Err(
                        Error::new(ErrorKind::Transient, "TLS handshake timed out").with_path(path)
                    );
                }
            },
        };
        let lines = read_lines(BufReader::new(data), t, path).await?;
        let r = tokio::time::timeout(
            t,
            self.ftp
                .read_response_in(&[Status::from(226), Status::from(250)]),
        )
        .await;
        let done = self.check(r, "list", path)?;
        self.broken = false;
        let text = String::from_utf8_lossy(&done.body).to_ascii_lowercase();
        if ["fail", "error", "denied", "cannot", "can't"]
            .iter()
            .any(|w| text.contains(w))
        {
            return Err(Error::new(
                ErrorKind::PermissionDenied,
                format!(
                    "the server could not list the directory: {:?}",
                    String::from_utf8_lossy(&done.body).trim()
                ),
            )
            .with_path(path));
        }
        Ok(lines)
    }

    /// `EPSV` or `PASV` (as chosen at login): where to open the data connection. The host is
    /// always the control connection's (see `set_passive_nat_workaround` in `connect`).
    async fn passive_addr(&mut self) -> Result<SocketAddr> {
        let (text, port) = if self.epsv {
            let text = self.custom("EPSV", &[229]).await?;
            let port = parse_epsv(&text);
            (text, port)
        } else {
            let text = self.custom("PASV", &[227]).await?;
            let port = parse_pasv(&text);
            (text, port)
        };
        let port = port.ok_or_else(|| {
            Error::new(
                ErrorKind::Protocol,
                format!("malformed passive reply {text:?}"),
            )
        })?;
        let peer = self.ftp.get_ref().await.peer_addr().map_err(Error::from)?;
        Ok(SocketAddr::new(peer.ip(), port))
    }
}

/// Whether a listing may include `name`: it does, or some line could not be read.
pub(crate) fn may_list(lines: &[Line], name: &str, mlsd: bool) -> bool {
    let now = OffsetDateTime::now_utc();
    lines.iter().any(|line| {
        let Ok(line) = line else { return true };
        let parsed = if mlsd {
            parse_mlsd_line(line)
        } else {
            parse_list_line(line, now)
        };
        match parsed {
            Ok(Some(e)) => e.name == name,
            Ok(None) => false,
            Err(_) => true,
        }
    })
}

/// Reads lines (LF or CRLF) until the end of the data, within the caps; blank lines are left
/// out. Each read has the step timeout.
async fn read_lines<R: AsyncBufRead + Unpin>(
    mut r: R,
    timeout: std::time::Duration,
    path: &str,
) -> Result<Vec<Line>> {
    let mut lines = Vec::new();
    let mut total = 0usize;
    let mut cur: Vec<u8> = Vec::new();
    loop {
        let buf = match tokio::time::timeout(timeout, r.fill_buf()).await {
            Ok(Ok(b)) => b,
            Ok(Err(e)) => {
                return Err(Error::from(e).set_temporary(true).with_path(path));
            }
            Err(_) => {
                return Err(Error::new(
                    ErrorKind::Transient,
                    format!("no listing data for {} s", timeout.as_secs()),
                )
                .with_path(path));
            }
        };
        if buf.is_empty() {
            push_line(&mut lines, &mut cur);
            return Ok(lines);
        }
        let (take, end) = match buf.iter().position(|b| *b == b'\n') {
            Some(i) => (i + 1, true),
            None => (buf.len(), false),
        };
        let room = MAX_LINE + 2 - cur.len().min(MAX_LINE + 2);
        if take > room {
            return Err(protocol(
                format!("listing line longer than {MAX_LINE} bytes"),
                path,
            ));
        }
        cur.extend_from_slice(&buf[..take]);
        r.consume(take);
        total += take;
        if total > MAX_LISTING_BYTES {
            return Err(protocol(
                format!("listing longer than {MAX_LISTING_BYTES} bytes"),
                path,
            ));
        }
        if end {
            push_line(&mut lines, &mut cur);
            if lines.len() > MAX_LISTING_LINES {
                return Err(protocol(
                    format!("listing longer than {MAX_LISTING_LINES} lines"),
                    path,
                ));
            }
        }
    }
}

fn push_line(lines: &mut Vec<Line>, cur: &mut Vec<u8>) {
    let mut bytes = std::mem::take(cur);
    while bytes.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
        bytes.pop();
    }
    if bytes.is_empty() {
        return;
    }
    lines.push(String::from_utf8(bytes).map_err(|e| e.into_bytes()));
}

/// The port in `229 Entering Extended Passive Mode (|||port|)`.
fn parse_epsv(text: &str) -> Option<u16> {
    let inner = text.split_once('(')?.1.split_once(')')?.0;
    let delim = inner.chars().next()?;
    let fields: Vec<&str> = inner.split(delim).collect();
    match fields.as_slice() {
        ["", _, _, port, ""] => port.parse().ok().filter(|p| *p != 0),
        _ => None,
    }
}

/// The port in `227 Entering Passive Mode (h1,h2,h3,h4,p1,p2)` (the address is not used).
fn parse_pasv(text: &str) -> Option<u16> {
    let rest = text.get(3..)?;
    let start = rest.find(|c: char| c.is_ascii_digit())?;
    let nums: Vec<u8> = rest[start..]
        .split(|c: char| !c.is_ascii_digit())
        .take(6)
        .map(|n| n.parse().ok())
        .collect::<Option<_>>()?;
    match nums.as_slice() {
        [_, _, _, _, hi, lo] => Some(u16::from(*hi) << 8 | u16::from(*lo)).filter(|p| *p != 0),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passive_replies() {
        assert_eq!(
            parse_epsv("229 Entering Extended Passive Mode (|||40123|)"),
            Some(40123)
        );
        assert_eq!(parse_epsv("229 x (!!!5!)"), Some(5));
        assert_eq!(parse_epsv("229 x (|||99999|)"), None);
        assert_eq!(parse_epsv("229 x"), None);
        assert_eq!(
            parse_pasv("227 Entering Passive Mode (127,0,0,1,156,64)."),
            Some(40000)
        );
        assert_eq!(parse_pasv("227 =127,0,0,1,1,2"), Some(258));
        assert_eq!(parse_pasv("227 (127,0,0,1,300,1)"), None);
        assert_eq!(parse_pasv("227 (1,2,3)"), None);
        assert_eq!(parse_pasv("22"), None);
    }

    fn read(data: &[u8]) -> Result<Vec<Line>> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(Error::from)?;
        rt.block_on(read_lines(data, std::time::Duration::from_secs(5), "/d"))
    }

    #[test]
    fn lines_are_split_capped_and_checked() {
        let lines = read(b"a\r\n\r\nb\nc").unwrap();
        assert_eq!(lines, [Ok("a".into()), Ok("b".into()), Ok("c".into())]);
        let lines = read(b"ok\n\xff\xfe\n").unwrap();
        assert_eq!(lines, [Ok("ok".into()), Err(vec![0xff, 0xfe])]);
        let mut long = vec![b'x'; MAX_LINE];
        long.extend_from_slice(b"\r\n");
        assert_eq!(read(&long).unwrap().len(), 1);
        let huge = vec![b'x'; 1024 * 1024];
        let e = read(&huge).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Protocol, "{e}");
        let many = b"x\n".repeat(MAX_LISTING_LINES + 1);
        let e = read(&many).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Protocol, "{e}");
    }
}
