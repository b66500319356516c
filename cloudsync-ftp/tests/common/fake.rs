//! A scripted FTP server on 127.0.0.1 for faults the real servers cannot be made to show: an
//! in-memory tree behind just enough FTP (USER, PASS, FEAT, TYPE, PWD, CWD, EPSV, PASV, MLSD,
//! SIZE, STOR, RETR, RNFR, RNTO, DELE, MKD, RMD, NOOP, QUIT), where a hook may answer any
//! command line first with a scripted reply.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cloudsync_ftp::FtpConfig;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

/// The server's tree: absolute paths.
#[derive(Debug, Default)]
pub struct State {
    pub files: BTreeMap<String, Vec<u8>>,
    pub dirs: BTreeSet<String>,
    /// The source named by the last `RNFR`.
    pub rnfr: Option<String>,
    /// Every command received.
    pub log: Vec<String>,
}

/// What the server answers.
pub enum Reply {
    /// One reply line (or several, CRLF-separated, for a multi-line reply).
    Line(String),
    /// `start`, then `body` on the data connection, then `end`.
    Data {
        start: String,
        body: Body,
        end: String,
    },
}

/// What a data connection carries.
pub enum Body {
    Bytes(Vec<u8>),
    /// These bytes over and over, until the client hangs up.
    Endless(Vec<u8>),
}

/// A hook sees each command line first; `Some` replaces the default answer.
pub type Hook = Arc<dyn Fn(&str, &mut State) -> Option<Reply> + Send + Sync>;

/// A running fake server.
pub struct FakeFtp {
    pub port: u16,
    pub state: Arc<Mutex<State>>,
}

fn parent(p: &str) -> &str {
    match p.rsplit_once('/') {
        Some(("", _)) | None => "/",
        Some((d, _)) => d,
    }
}

fn name(p: &str) -> &str {
    p.rsplit_once('/').map_or(p, |x| x.1)
}

impl FakeFtp {
    /// Starts the server (on the current tokio runtime) with `hook`.
    pub async fn start(hook: Hook) -> FakeFtp {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let state = Arc::new(Mutex::new(State::default()));
        let st = state.clone();
        tokio::spawn(async move {
            while let Ok((sock, _)) = listener.accept().await {
                tokio::spawn(session(sock, st.clone(), hook.clone()));
            }
        });
        FakeFtp { port, state }
    }

    /// A config for this server (root `/`, short timeout, one connection).
    pub fn config(&self) -> FtpConfig {
        FtpConfig::new("127.0.0.1")
            .with_port(self.port)
            .with_user("u")
            .with_password("p")
            .with_root("/")
            .with_timeout(5)
    }

    /// Adds a file (and its parent directories).
    pub fn put(&self, path: &str, content: &[u8]) {
        let mut s = self.state.lock().unwrap();
        let mut d = parent(path).to_owned();
        while d != "/" {
            s.dirs.insert(d.clone());
            d = parent(&d).to_owned();
        }
        s.files.insert(path.to_owned(), content.to_vec());
    }

    pub fn files(&self) -> BTreeMap<String, Vec<u8>> {
        self.state.lock().unwrap().files.clone()
    }
}

fn mlsd_lines(s: &State, dir: &str) -> Vec<u8> {
    let mut out = String::new();
    for (p, c) in &s.files {
        if parent(p) == dir {
            out += &format!(
                "type=file;size={};modify=20200101000000; {}\r\n",
                c.len(),
                name(p)
            );
        }
    }
    for p in &s.dirs {
        if parent(p) == dir {
            out += &format!("type=dir;modify=20200101000000; {}\r\n", name(p));
        }
    }
    out.into_bytes()
}

fn default_reply(line: &str, s: &mut State) -> Reply {
    let (verb, arg) = line.split_once(' ').unwrap_or((line, ""));
    let ok = |t: &str| Reply::Line(t.to_owned());
    let data = |body: Vec<u8>| Reply::Data {
        start: "150 Here it comes.".into(),
        body: Body::Bytes(body),
        end: "226 Transfer complete.".into(),
    };
    let is_dir = |s: &State, p: &str| p == "/" || s.dirs.contains(p);
    match verb.to_ascii_uppercase().as_str() {
        "USER" => ok("331 Password please."),
        "PASS" => ok("230 Logged in."),
        "FEAT" => ok("211-Features:\r\n MLSD\r\n SIZE\r\n EPSV\r\n211 End"),
        "OPTS" | "TYPE" | "NOOP" => ok("200 OK."),
        "PWD" => ok("257 \"/\" is the current directory"),
        "CWD" if is_dir(s, arg) => ok("250 OK."),
        "MKD" => {
            s.dirs.insert(arg.to_owned());
            ok(&format!("257 \"{arg}\" created"))
        }
        "RMD" if s.dirs.remove(arg) => ok("250 Removed."),
        "MLSD" if is_dir(s, arg) => data(mlsd_lines(s, arg)),
        "SIZE" if s.files.contains_key(arg) => ok(&format!("213 {}", s.files[arg].len())),
        "RETR" if s.files.contains_key(arg) => data(s.files[arg].clone()),
        "STOR" => Reply::Data {
            start: format!("150 STOR {arg}"),
            body: Body::Bytes(Vec::new()),
            end: "226 Stored.".into(),
        },
        "DELE" if s.files.remove(arg).is_some() => ok("250 Deleted."),
        "RNFR" if s.files.contains_key(arg) || s.dirs.contains(arg) => {
            s.rnfr = Some(arg.to_owned());
            ok("350 Ready for RNTO.")
        }
        "RNTO" => match s.rnfr.take() {
            Some(from) => {
                if let Some(c) = s.files.remove(&from) {
                    s.files.insert(arg.to_owned(), c);
                } else {
                    s.dirs.remove(&from);
                    s.dirs.insert(arg.to_owned());
                }
                ok("250 Renamed.")
            }
            None => ok("503 RNFR first."),
        },
        "QUIT" => ok("221 Bye."),
        "CWD" | "RMD" | "MLSD" | "SIZE" | "RETR" | "DELE" | "RNFR" => ok("550 Failed to do that."),
        _ => ok("502 Not implemented."),
    }
}

async fn session(sock: TcpStream, state: Arc<Mutex<State>>, hook: Hook) {
    let (r, mut w) = sock.into_split();
    let mut r = BufReader::new(r);
    let mut passive: Option<TcpListener> = None;
    let _ = w.write_all(b"220 fake ready\r\n").await;
    let mut line = String::new();
    loop {
        line.clear();
        match r.read_line(&mut line).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let cmd = line.trim_end_matches(['\r', '\n']).to_owned();
        let (verb, arg) = cmd.split_once(' ').unwrap_or((&cmd, ""));
        let verb = verb.to_ascii_uppercase();
        if verb == "EPSV" || verb == "PASV" {
            let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let p = l.local_addr().unwrap().port();
            passive = Some(l);
            let reply = if verb == "EPSV" {
                format!("229 Entering Extended Passive Mode (|||{p}|)\r\n")
            } else {
                format!(
                    "227 Entering Passive Mode (127,0,0,1,{},{})\r\n",
                    p >> 8,
                    p & 255
                )
            };
            let _ = w.write_all(reply.as_bytes()).await;
            continue;
        }
        let reply = {
            let mut s = state.lock().unwrap();
            s.log.push(cmd.clone());
            match hook(&cmd, &mut s) {
                Some(r) => r,
                None => default_reply(&cmd, &mut s),
            }
        };
        match reply {
            Reply::Line(t) => {
                let _ = w.write_all(format!("{t}\r\n").as_bytes()).await;
                if verb == "QUIT" {
                    return;
                }
            }
            Reply::Data { start, body, end } => {
                let Some(l) = passive.take() else {
                    let _ = w.write_all(b"425 Use PASV first.\r\n").await;
                    continue;
                };
                let _ = w.write_all(format!("{start}\r\n").as_bytes()).await;
                let Ok(Ok((mut data, _))) =
                    tokio::time::timeout(Duration::from_secs(5), l.accept()).await
                else {
                    let _ = w.write_all(b"425 No data connection.\r\n").await;
                    continue;
                };
                if verb == "STOR" {
                    let mut buf = Vec::new();
                    let _ = data.read_to_end(&mut buf).await;
                    state.lock().unwrap().files.insert(arg.to_owned(), buf);
                } else {
                    match body {
                        Body::Bytes(b) => {
                            let _ = data.write_all(&b).await;
                        }
                        Body::Endless(b) => while data.write_all(&b).await.is_ok() {},
                    }
                }
                drop(data);
                let _ = w.write_all(format!("{end}\r\n").as_bytes()).await;
            }
        }
    }
}
