//! Test harness: starts vsftpd, ProFTPD or Pure-FTPd in the foreground on 127.0.0.1 with a free
//! control port, kernel-chosen passive ports, a temp root, a test user and a freshly generated
//! self-signed certificate (explicit FTPS available on all three).
//!
//! `scripts/install-test-deps.sh` installs the servers (see `scripts/install.d/ftp.sh`).
#![allow(dead_code)]

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

pub mod fake;

use cloudsync_core::testkit::server::{TestServer, free_port, require_program};
use cloudsync_ftp::{FtpConfig, Tls};

pub const USER: &str = "cloudsync-ftp";
pub const PASSWORD: &str = "cloudsync-ftp-pass";
const INSTALL: &str = "run scripts/install-test-deps.sh as root (it installs proftpd with apt and \
                       unpacks vsftpd and pure-ftpd into /opt/cloudsync-ftp-servers)";

/// Which server program.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Vsftpd,
    Proftpd,
    Pureftpd,
}

/// A running FTP server for tests.
#[derive(Debug)]
pub struct Ftpd {
    pub server: TestServer,
    pub kind: Kind,
    /// The directory the test user logs into.
    pub data: PathBuf,
    /// The server's self-signed certificate (PEM).
    pub cert: PathBuf,
    /// uid/gid owning the files the server writes.
    owner: (u32, u32),
    /// A second port speaking implicit FTPS (ProFTPD only).
    pub implicit_port: Option<u16>,
}

fn servers_dir() -> PathBuf {
    std::env::var_os("FTP_SERVERS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/opt/cloudsync-ftp-servers"))
}

fn run(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

fn id(args: &[&str]) -> u32 {
    run(Command::new("id").args(args)).parse().unwrap()
}

fn is_root() -> bool {
    id(&["-u"]) == 0
}

fn sha512_crypt(password: &str) -> String {
    run(Command::new("openssl").args(["passwd", "-6", password]))
}

/// A self-signed P-256 certificate for localhost and 127.0.0.1 in `dir`.
fn make_cert(dir: &Path) -> (PathBuf, PathBuf) {
    require_program("openssl", "apt-get install openssl");
    let cert = dir.join("cert.pem");
    let key = dir.join("key.pem");
    run(Command::new("openssl").args([
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-days",
        "30",
        "-subj",
        "/CN=localhost",
        "-addext",
        "subjectAltName=DNS:localhost,IP:127.0.0.1",
        "-keyout",
        key.to_str().unwrap(),
        "-out",
        cert.to_str().unwrap(),
    ]));
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    (cert, key)
}

fn prepare(name: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = TestServer::prepare(name);
    // Servers drop privileges (nobody, the test user) and must reach the data directory.
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    (dir, data)
}

impl Ftpd {
    pub fn start(kind: Kind) -> Ftpd {
        match kind {
            Kind::Proftpd => start_proftpd(),
            Kind::Vsftpd => start_vsftpd(),
            Kind::Pureftpd => start_pureftpd(),
        }
    }

    /// A config for a fresh, empty directory `name` below the login directory.
    pub fn config(&self, name: &str) -> FtpConfig {
        let dir = self.data.join(name);
        std::fs::create_dir(&dir).unwrap();
        std::os::unix::fs::chown(&dir, Some(self.owner.0), Some(self.owner.1)).unwrap();
        FtpConfig::new("127.0.0.1")
            .with_port(self.server.port())
            .with_user(USER)
            .with_password(PASSWORD)
            .with_root(name)
            .with_timeout(20)
    }

    /// Like [`Ftpd::config`], with explicit FTPS trusting the server's certificate.
    pub fn tls_config(&self, name: &str) -> FtpConfig {
        self.config(name)
            .with_tls(Tls::Explicit)
            .with_ca_file(&self.cert)
    }

    /// Stops the server hard: SIGKILL to the server and every process it forked (the sessions),
    /// as a crash or power cut would.
    pub fn kill(&mut self) {
        let lifeline = self.lifeline_pid();
        if lifeline == 0 {
            return;
        }
        let mut pids = descendants(lifeline);
        pids.retain(|p| *p != lifeline);
        if !pids.is_empty() {
            let mut cmd = Command::new("kill");
            cmd.arg("-KILL");
            for p in &pids {
                cmd.arg(p.to_string());
            }
            let _ = cmd.status();
        }
        self.server.stop();
    }

    fn lifeline_pid(&self) -> u32 {
        // TestServer does not expose the pid; find the lifeline by the port-specific config dir
        // in its command line.
        let marker = self.server.dir().to_string_lossy().into_owned();
        let me = std::process::id();
        for p in descendants(me) {
            let cmdline = std::fs::read(format!("/proc/{p}/cmdline")).unwrap_or_default();
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            if cmdline.starts_with("sh -c") && cmdline.contains(&marker) {
                return p;
            }
        }
        // Already gone (killed by the test).
        0
    }
}

impl Drop for Ftpd {
    /// Ends the lifeline's `cat` first, so the lifeline stops the server and exits on its own
    /// (it only runs its TERM trap after `cat` returns, which `TestServer::stop` waits for).
    fn drop(&mut self) {
        let lifeline = self.lifeline_pid();
        if lifeline == 0 {
            return;
        }
        for p in descendants(lifeline) {
            let comm = std::fs::read_to_string(format!("/proc/{p}/comm")).unwrap_or_default();
            if comm.trim() == "cat" {
                let _ = Command::new("kill").arg(p.to_string()).status();
            }
        }
    }
}

/// `root` and every process below it.
fn descendants(root: u32) -> Vec<u32> {
    let mut parent_of = Vec::new();
    if let Ok(rd) = std::fs::read_dir("/proc") {
        for e in rd.flatten() {
            let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
                continue;
            };
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
                continue;
            };
            // pid (comm) state ppid ...
            let Some(rest) = stat.rsplit_once(')').map(|x| x.1) else {
                continue;
            };
            let ppid: u32 = rest
                .split_whitespace()
                .nth(1)
                .and_then(|s| s.parse().ok())
                .unwrap_or(0);
            parent_of.push((pid, ppid));
        }
    }
    let mut out = vec![root];
    let mut i = 0;
    while i < out.len() {
        let cur = out[i];
        for (pid, ppid) in &parent_of {
            if *ppid == cur && !out.contains(pid) {
                out.push(*pid);
            }
        }
        i += 1;
    }
    out
}

fn start_proftpd() -> Ftpd {
    let proftpd = require_program(
        &std::env::var("CLOUDSYNC_PROFTPD").unwrap_or_else(|_| "/usr/sbin/proftpd".into()),
        INSTALL,
    );
    let (dir, data) = prepare("proftpd");
    let state = dir.path().to_path_buf();
    let (cert, key) = make_cert(&state);
    let root = is_root();
    let (uid, gid, run_user, run_group, chroot) = if root {
        (
            id(&["-u", "nobody"]),
            id(&["-g", "nobody"]),
            "nobody".to_owned(),
            "nogroup".to_owned(),
            "DefaultRoot ~",
        )
    } else {
        (
            id(&["-u"]),
            id(&["-g"]),
            run(Command::new("id").arg("-un")),
            run(Command::new("id").arg("-gn")),
            "",
        )
    };
    std::os::unix::fs::chown(&data, Some(uid), Some(gid)).unwrap();
    let passwd = state.join("ftpd.passwd");
    std::fs::write(
        &passwd,
        format!(
            "{USER}:{}:{uid}:{gid}::{}:/bin/sh\n",
            sha512_crypt(PASSWORD),
            data.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&passwd, std::fs::Permissions::from_mode(0o600)).unwrap();
    std::fs::write(state.join("ftpd.group"), format!("{USER}:x:{gid}:\n")).unwrap();
    let port = free_port();
    let s = state.display();
    let conf = format!(
        r#"ServerName "cloudsync-test"
ServerType standalone
DefaultServer on
Port {port}
DefaultAddress 127.0.0.1
SocketBindTight on
UseIPv6 off
User {run_user}
Group {run_group}
PidFile {s}/proftpd.pid
ScoreboardFile {s}/proftpd.scoreboard
DelayTable none
WtmpLog off
UseReverseDNS off
SystemLog {s}/system.log
TransferLog none
MaxInstances 200
AuthPAM off
AuthOrder mod_auth_file.c
AuthUserFile {s}/ftpd.passwd
AuthGroupFile {s}/ftpd.group
RequireValidShell off
{chroot}
Umask 022 022
AllowOverwrite on
AllowStoreRestart on
AllowRetrieveRestart on
UseSendfile off
ListOptions "-a"
ModulePath /usr/lib/proftpd
<IfModule mod_dso.c>
  LoadModule mod_tls.c
</IfModule>
<IfModule mod_ctrls.c>
  ControlsEngine off
</IfModule>
<IfModule mod_tls.c>
  TLSEngine on
  TLSLog {s}/tls.log
  TLSProtocol TLSv1.2 TLSv1.3
  TLSECCertificateFile {cert}
  TLSECCertificateKeyFile {key}
  TLSRequired off
  TLSVerifyClient off
  TLSRenegotiate none
</IfModule>
"#,
        cert = cert.display(),
        key = key.display(),
    );
    let implicit_port = free_port();
    let conf = format!(
        r#"{conf}
<VirtualHost 127.0.0.1>
  Port {implicit_port}
  AuthOrder mod_auth_file.c
  AuthUserFile {s}/ftpd.passwd
  AuthGroupFile {s}/ftpd.group
  RequireValidShell off
  {chroot}
  Umask 022 022
  AllowOverwrite on
  AllowStoreRestart on
  AllowRetrieveRestart on
  TLSEngine on
  TLSLog {s}/tls-implicit.log
  TLSProtocol TLSv1.2 TLSv1.3
  TLSECCertificateFile {cert}
  TLSECCertificateKeyFile {key}
  TLSRequired on
  TLSOptions UseImplicitSSL
  TLSVerifyClient off
  TLSRenegotiate none
</VirtualHost>
"#,
        cert = cert.display(),
        key = key.display(),
    );
    std::fs::write(state.join("proftpd.conf"), conf).unwrap();
    // Check the configuration first, so a bad one fails here with proftpd's message.
    run(Command::new(&proftpd)
        .args(["-t", "-q", "-c"])
        .arg(state.join("proftpd.conf")));
    let mut cmd = Command::new(proftpd);
    cmd.args(["-n", "-q", "-c"]).arg(state.join("proftpd.conf"));
    let server = TestServer::start("proftpd", dir, &mut cmd, port);
    Ftpd {
        server,
        kind: Kind::Proftpd,
        data,
        cert,
        owner: (uid, gid),
        implicit_port: Some(implicit_port),
    }
}

fn start_vsftpd() -> Ftpd {
    let vsftpd = std::env::var("CLOUDSYNC_VSFTPD")
        .map(PathBuf::from)
        .unwrap_or_else(|_| servers_dir().join("vsftpd/usr/sbin/vsftpd"));
    let vsftpd = require_program(vsftpd.to_str().unwrap(), INSTALL);
    assert!(
        is_root(),
        "vsftpd tests need root (vsftpd logs system users in through PAM)"
    );
    let uid = id(&["-u", USER]);
    let gid = id(&["-g", USER]);
    let (dir, data) = prepare("vsftpd");
    let state = dir.path().to_path_buf();
    let (cert, key) = make_cert(&state);
    std::os::unix::fs::chown(&data, Some(uid), Some(gid)).unwrap();
    let empty = state.join("empty");
    std::fs::create_dir(&empty).unwrap();
    let port = free_port();
    let s = state.display();
    let conf = format!(
        "listen=YES
listen_ipv6=NO
listen_address=127.0.0.1
listen_port={port}
background=NO
anonymous_enable=NO
local_enable=YES
write_enable=YES
local_umask=022
local_root={data}
chroot_local_user=NO
pam_service_name=cloudsync-vsftpd
userlist_enable=NO
check_shell=NO
pasv_enable=YES
pasv_address=127.0.0.1
connect_from_port_20=NO
secure_chroot_dir={s}/empty
nopriv_user=nobody
seccomp_sandbox=NO
mdtm_write=YES
use_localtime=NO
force_dot_files=NO
max_clients=200
max_per_ip=200
xferlog_enable=YES
xferlog_std_format=NO
log_ftp_protocol=YES
vsftpd_log_file={s}/vsftpd.log
ssl_enable=YES
rsa_cert_file={cert}
rsa_private_key_file={key}
force_local_logins_ssl=NO
force_local_data_ssl=NO
allow_anon_ssl=NO
require_ssl_reuse=YES
ssl_tlsv1=NO
ssl_sslv2=NO
ssl_sslv3=NO
ssl_ciphers=HIGH
",
        data = data.display(),
        cert = cert.display(),
        key = key.display(),
    );
    std::fs::write(state.join("vsftpd.conf"), conf).unwrap();
    let mut cmd = Command::new(vsftpd);
    cmd.arg(state.join("vsftpd.conf"));
    let server = TestServer::start("vsftpd", dir, &mut cmd, port);
    Ftpd {
        server,
        kind: Kind::Vsftpd,
        data,
        cert,
        owner: (uid, gid),
        implicit_port: None,
    }
}

fn start_pureftpd() -> Ftpd {
    let base = servers_dir().join("pureftpd");
    let pure_ftpd = std::env::var("CLOUDSYNC_PUREFTPD")
        .map(PathBuf::from)
        .unwrap_or_else(|_| base.join("usr/sbin/pure-ftpd"));
    let pure_ftpd = require_program(pure_ftpd.to_str().unwrap(), INSTALL);
    let pure_pw = require_program(base.join("usr/bin/pure-pw").to_str().unwrap(), INSTALL);
    assert!(
        is_root(),
        "pure-ftpd tests need root (pure-ftpd refuses to run without it)"
    );
    let uid = id(&["-u", "nobody"]);
    let gid = id(&["-g", "nobody"]);
    let (dir, data) = prepare("pureftpd");
    let state = dir.path().to_path_buf();
    let (cert, key) = make_cert(&state);
    std::os::unix::fs::chown(&data, Some(uid), Some(gid)).unwrap();
    // A $6$ hash written directly: pure-pw's default argon2id makes each login take seconds.
    let passwd = state.join("pureftpd.passwd");
    std::fs::write(
        &passwd,
        format!(
            "{USER}:{}:{uid}:{gid}::{}/./::::::::::::\n",
            sha512_crypt(PASSWORD),
            data.display()
        ),
    )
    .unwrap();
    let pdb = state.join("pureftpd.pdb");
    run(Command::new(pure_pw)
        .arg("mkdb")
        .arg(&pdb)
        .arg("-f")
        .arg(&passwd));
    let port = free_port();
    let mut cmd = Command::new(pure_ftpd);
    cmd.arg("-S")
        .arg(format!("127.0.0.1,{port}"))
        .args(["-4", "-H", "-E", "-A"])
        .arg("-l")
        .arg(format!("puredb:{}", pdb.display()))
        .args(["-P", "127.0.0.1", "-Y", "1", "-2"])
        .arg(format!("{},{}", cert.display(), key.display()))
        .args(["-U", "133:022", "-u", "1", "-c", "200", "-C", "200", "-g"])
        .arg(state.join("pure-ftpd.pid"));
    let server = TestServer::start("pure-ftpd", dir, &mut cmd, port);
    Ftpd {
        server,
        kind: Kind::Pureftpd,
        data,
        cert,
        owner: (uid, gid),
        implicit_port: None,
    }
}
