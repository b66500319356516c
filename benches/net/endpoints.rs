//! One started server and the commands that upload to it or download from it: ours, rclone's
//! and the protocol's reference client. Paths on the server are relative to [`Endpoint::data`],
//! the local directory the server serves, so the harness can check results on disk.

use std::any::Any;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::tree::TreeSpec;
use crate::util::slug;
use crate::{dav, ftpd, setup, sshd, tree};

/// The environment variable our CLI reads the FTP/WebDAV password from.
const PASSWORD_ENV: &str = "CLOUDSYNC_BENCH_PASSWORD";

/// Which way the bytes go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Local source, server destination.
    Up,
    /// Server source, local destination.
    Down,
}

impl Direction {
    pub fn label(self) -> &'static str {
        match self {
            Direction::Up => "up",
            Direction::Down => "down",
        }
    }
}

/// Builds the command of one run from its source and destination.
pub type CommandFn = dyn Fn(&str, &str) -> Command;

/// A program that copies `src` to `dst` (a local path and a path relative to the server's data
/// directory, in the order of the direction).
pub struct Tool {
    pub name: &'static str,
    pub command: Box<CommandFn>,
}

/// What the server is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Sftp,
    Ftp { tls: bool },
    Dav { tls: bool },
}

/// A running server with everything the three clients need to reach it.
pub struct Endpoint {
    kind: Kind,
    /// The local directory the server serves (paths given to the tools are relative to it).
    pub data: PathBuf,
    ours: PathBuf,
    /// Another build of our CLI to compare with (`--baseline`).
    pub baseline: Option<PathBuf>,
    /// Our config file: one remote `bench` rooted at `data`.
    config: PathBuf,
    /// rclone's on-the-fly remote, up to and including the `:` before the path.
    rclone_remote: String,
    /// Extra rclone flags (a CA certificate).
    rclone_flags: Vec<String>,
    /// The password for FTP/WebDAV (test credentials of the harness's servers).
    password: &'static str,
    user: &'static str,
    port: u16,
    /// Base URL of WebDAV (ends with `/`).
    url: String,
    /// SFTP: client key and known_hosts.
    key: PathBuf,
    known_hosts: PathBuf,
    /// FTP: make directories the FTP user can write.
    ftp: Option<&'static ftpd::Ftpd>,
    transfers: usize,
    /// Keeps the server running.
    _server: Box<dyn Any>,
}

impl Endpoint {
    /// Starts the server named `backend`.
    pub fn start(
        backend: &str,
        ours: &Path,
        work: &Path,
        transfers: usize,
    ) -> Result<Endpoint, String> {
        let config = work.join(format!("net-{backend}.toml"));
        let mut ep = Endpoint {
            kind: Kind::Sftp,
            data: PathBuf::new(),
            ours: ours.to_owned(),
            baseline: None,
            config: config.clone(),
            rclone_remote: String::new(),
            rclone_flags: Vec::new(),
            password: "",
            user: "",
            port: 0,
            url: String::new(),
            key: PathBuf::new(),
            known_hosts: PathBuf::new(),
            ftp: None,
            transfers,
            _server: Box::new(()),
        };
        let toml = match backend {
            "sftp" => {
                let s = sshd::Sshd::start(false);
                ep.kind = Kind::Sftp;
                ep.data = s.data.clone();
                ep.port = s.port;
                ep.key = s.client_key.clone();
                ep.known_hosts = s.known_hosts.clone();
                ep.rclone_remote = format!(
                    ":sftp,host=127.0.0.1,port={},user=root,key_file='{}',known_hosts_file='{}':{}/",
                    s.port,
                    s.client_key.display(),
                    s.known_hosts.display(),
                    s.data.display()
                );
                let toml = format!(
                    "[remotes.bench]\ntype = \"sftp\"\nhost = \"127.0.0.1\"\nport = {}\nuser = \"root\"\n\
                     key_file = {:?}\nknown_hosts = {:?}\nuse_agent = false\nroot = {:?}\n",
                    s.port,
                    s.client_key.display().to_string(),
                    s.known_hosts.display().to_string(),
                    s.data.display().to_string()
                );
                ep._server = Box::new(s);
                toml
            }
            "ftp" | "ftps" => {
                let tls = backend == "ftps";
                // Leaked: the server lives as long as the process (its lifeline stops it).
                // FTPS on Pure-FTPd: ProFTPD and vsftpd insist on TLS session reuse on data
                // connections, which rclone's FTP client cannot do ("425 Unable to build data
                // connection").
                let server = if tls {
                    ftpd::Kind::Pureftpd
                } else {
                    ftpd::Kind::Proftpd
                };
                let f: &'static ftpd::Ftpd = Box::leak(Box::new(ftpd::Ftpd::start(server)));
                ep.kind = Kind::Ftp { tls };
                ep.data = f.data.clone();
                ep.port = f.server.port();
                ep.user = ftpd::USER;
                ep.password = ftpd::PASSWORD;
                ep.ftp = Some(f);
                let obscured = setup(Command::new("rclone").args(["obscure", ftpd::PASSWORD]))?;
                let tls_opts = if tls {
                    ",explicit_tls=true,no_check_certificate=true"
                } else {
                    ""
                };
                ep.rclone_remote = format!(
                    ":ftp,host=127.0.0.1,port={},user={},pass={obscured}{tls_opts}:",
                    ep.port,
                    ftpd::USER
                );
                let tls_toml = if tls {
                    format!(
                        "tls = \"explicit\"\nca_file = {:?}\n",
                        f.cert.display().to_string()
                    )
                } else {
                    String::new()
                };
                format!(
                    "[remotes.bench]\ntype = \"ftp\"\nhost = \"127.0.0.1\"\nport = {}\nuser = {:?}\n\
                     password_env = \"{PASSWORD_ENV}\"\n{tls_toml}",
                    ep.port,
                    ftpd::USER
                )
            }
            "webdav" | "webdavs" => {
                let tls = backend == "webdavs";
                let d = if tls {
                    dav::start_apache_tls()
                } else {
                    dav::start_apache()
                };
                ep.kind = Kind::Dav { tls };
                ep.data = d.data.clone();
                ep.url = d.url.clone();
                ep.user = dav::USER;
                ep.password = dav::PASSWORD;
                let obscured = setup(Command::new("rclone").args(["obscure", dav::PASSWORD]))?;
                ep.rclone_remote = format!(
                    ":webdav,url='{}',vendor=other,user={},pass={obscured}:",
                    d.url,
                    dav::USER
                );
                let ca = d.server.dir().join("ca.pem");
                let ca_toml = if tls {
                    ep.rclone_flags = vec!["--ca-cert".into(), ca.display().to_string()];
                    format!("ca_file = {:?}\n", ca.display().to_string())
                } else {
                    String::new()
                };
                let toml = format!(
                    "[remotes.bench]\ntype = \"webdav\"\nurl = {:?}\nuser = {:?}\n\
                     password_env = \"{PASSWORD_ENV}\"\n{ca_toml}",
                    d.url,
                    dav::USER
                );
                ep._server = Box::new(d);
                toml
            }
            other => {
                return Err(format!(
                    "unknown backend {other:?} (sftp, ftp, ftps, webdav, webdavs)"
                ));
            }
        };
        // Downloads also into a local remote without flushes: what rclone and cp do.
        let toml =
            format!("{toml}\n[remotes.nofsync]\ntype = \"local\"\nroot = \"/\"\nfsync = false\n");
        std::fs::write(&config, toml).map_err(|e| format!("{}: {e}", config.display()))?;
        Ok(ep)
    }

    /// Puts a copy of the local tree `src` on the server (the source of the downloads) and
    /// returns its path relative to [`Endpoint::data`].
    pub fn seed(&self, src: &Path, name: &str) -> Result<String, String> {
        let rel = format!("seed-{name}");
        let at = self.data.join(&rel);
        if !at.exists() {
            setup(Command::new("cp").arg("-r").arg(src).arg(&at))?;
            setup(Command::new("chmod").arg("-R").arg("a+rX").arg(&at))?;
        }
        Ok(rel)
    }

    /// Removes the copies [`Endpoint::seed`] made.
    pub fn remove_seeds(&self) {
        if let Ok(rd) = std::fs::read_dir(&self.data) {
            for e in rd.flatten() {
                if e.file_name().to_string_lossy().starts_with("seed-") {
                    let _ = std::fs::remove_dir_all(e.path());
                }
            }
        }
    }

    /// A fresh empty directory on the server the server's user can write, relative to `data`.
    pub fn fresh_dir(&self, tool: &str) -> Result<String, String> {
        let rel = format!("up-{}-{}", slug(tool), tree::unique());
        match (self.kind, self.ftp) {
            (Kind::Ftp { .. }, Some(f)) => {
                // Creates the directory owned by the FTP user.
                let _ = f.config(&rel);
            }
            _ => {
                let at = self.data.join(&rel);
                std::fs::create_dir_all(&at).map_err(|e| format!("{}: {e}", at.display()))?;
                if matches!(self.kind, Kind::Dav { .. }) {
                    // Apache runs as www-data when we are root.
                    let _ = Command::new("chown")
                        .arg("www-data:www-data")
                        .arg(&at)
                        .status();
                }
            }
        }
        Ok(rel)
    }

    /// Ours, rclone and the reference client for `dir`; the reference client only where it can
    /// do the job (`curl` moves one file).
    pub fn tools(&self, spec: &TreeSpec, dir: Direction) -> Vec<Tool> {
        let mut tools = vec![self.ours("cloudsync", &self.ours, dir), self.rclone(dir)];
        if let Some(b) = &self.baseline {
            tools.push(self.ours("baseline", b, dir));
        }
        if dir == Direction::Down {
            tools.push(self.ours("cloudsync fsync=false", &self.ours, dir));
        }
        match self.kind {
            Kind::Sftp => tools.push(self.sftp(dir)),
            Kind::Ftp { tls } => tools.push(self.lftp(dir, tls)),
            Kind::Dav { tls } if spec.files == 1 => tools.push(self.curl(spec, dir, tls)),
            Kind::Dav { .. } => {}
        }
        tools
    }

    /// Our CLI at `program`, in the table as `name`.
    fn ours(&self, name: &'static str, program: &Path, dir: Direction) -> Tool {
        let (ours, config, t, password) = (
            program.to_owned(),
            self.config.clone(),
            self.transfers.to_string(),
            self.password,
        );
        Tool {
            name,
            command: Box::new(move |src, dst| {
                let (src, dst) = match dir {
                    Direction::Up => (src.to_owned(), format!("bench:{dst}")),
                    Direction::Down if name.ends_with("fsync=false") => (
                        format!("bench:{src}"),
                        format!("nofsync:{}", dst.trim_start_matches('/')),
                    ),
                    Direction::Down => (format!("bench:{src}"), dst.to_owned()),
                };
                let mut cmd = Command::new(&ours);
                cmd.env(PASSWORD_ENV, password).arg("--config").arg(&config);
                cmd.args(["sync", &src, &dst, "-q", "--transfers", &t]);
                cmd
            }),
        }
    }

    fn rclone(&self, dir: Direction) -> Tool {
        let (remote, flags, t) = (
            self.rclone_remote.clone(),
            self.rclone_flags.clone(),
            self.transfers.to_string(),
        );
        Tool {
            name: "rclone",
            command: Box::new(move |src, dst| {
                let (src, dst) = match dir {
                    Direction::Up => (src.to_owned(), format!("{remote}{dst}")),
                    Direction::Down => (format!("{remote}{src}"), dst.to_owned()),
                };
                let mut cmd = Command::new("rclone");
                cmd.args(["--config", "/dev/null", "sync", &src, &dst, "-q"]);
                cmd.args(["--transfers", &t]).args(&flags);
                cmd
            }),
        }
    }

    /// OpenSSH's `sftp` in batch mode (`put -r` / `get -r`).
    fn sftp(&self, dir: Direction) -> Tool {
        let (data, key, known_hosts, port) = (
            self.data.clone(),
            self.key.clone(),
            self.known_hosts.clone(),
            self.port,
        );
        Tool {
            name: "sftp",
            command: Box::new(move |src, dst| {
                let batch = match dir {
                    Direction::Up => format!("put -r {src}/. {}/{dst}\n", data.display()),
                    Direction::Down => {
                        format!("lmkdir {dst}\nget -r {}/{src}/. {dst}\n", data.display())
                    }
                };
                let mut cmd = Command::new("sh");
                cmd.arg("-c").arg(format!(
                    "printf '%s' \"$1\" | sftp -q -b - -i {} -o UserKnownHostsFile={} \
                     -o BatchMode=yes -o IdentitiesOnly=yes -P {port} root@127.0.0.1",
                    key.display(),
                    known_hosts.display()
                ));
                cmd.arg("sh").arg(batch);
                cmd
            }),
        }
    }

    /// `lftp`'s `mirror` with as many parallel transfers as ours.
    fn lftp(&self, dir: Direction, tls: bool) -> Tool {
        let (user, password, port, t) = (self.user, self.password, self.port, self.transfers);
        let settings = if tls {
            "set ftp:ssl-force true; set ftp:ssl-protect-data true; set ssl:verify-certificate no;"
        } else {
            "set ftp:ssl-allow no;"
        };
        Tool {
            name: "lftp",
            command: Box::new(move |src, dst| {
                let mirror = match dir {
                    Direction::Up => format!("mirror -R --parallel={t} {src} {dst}"),
                    Direction::Down => format!("mirror --parallel={t} {src} {dst}"),
                };
                let mut cmd = Command::new("lftp");
                cmd.args(["-u", &format!("{user},{password}"), "-p", &port.to_string()]);
                cmd.arg("-e")
                    .arg(format!("{settings} {mirror}; quit"))
                    .arg("127.0.0.1");
                cmd
            }),
        }
    }

    /// `curl -T` / `curl -o` for the one file of `spec`.
    fn curl(&self, spec: &TreeSpec, dir: Direction, tls: bool) -> Tool {
        let (url, user, password) = (self.url.clone(), self.user, self.password);
        let ca = tls.then(|| {
            let data_parent = self
                .data
                .parent()
                .map(Path::to_path_buf)
                .unwrap_or_default();
            data_parent.join("ca.pem")
        });
        // The tree's one file: d0000/f0000000.dat.
        let file = format!("d{:04}/f{:07}.dat", 0, 0);
        debug_assert_eq!(spec.files, 1);
        Tool {
            name: "curl",
            command: Box::new(move |src, dst| {
                let auth = format!("{user}:{password}");
                let ca_arg = ca
                    .as_ref()
                    .map(|c| format!("--cacert {}", c.display()))
                    .unwrap_or_default();
                let script = match dir {
                    Direction::Up => format!(
                        "curl -sf {ca_arg} -u {auth} -X MKCOL {url}{dst}/d0000/ && \
                         curl -sf {ca_arg} -u {auth} -T {src}/{file} {url}{dst}/{file} -o /dev/null"
                    ),
                    Direction::Down => format!(
                        "curl -sf {ca_arg} -u {auth} --create-dirs -o {dst}/{file} {url}{src}/{file}"
                    ),
                };
                let mut cmd = Command::new("sh");
                cmd.arg("-c").arg(script);
                cmd
            }),
        }
    }
}
