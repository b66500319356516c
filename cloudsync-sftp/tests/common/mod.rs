//! Test harness: OpenSSH's sshd in the foreground on 127.0.0.1 with a temp host key, an
//! authorized test key and a temp data directory; it stops when the test binary exits.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

use cloudsync_core::testkit::server::{TestServer, free_port, require_program};
use cloudsync_sftp::SftpConfig;

/// A running sshd and the files a client needs.
pub struct Sshd {
    pub server: TestServer,
    pub port: u16,
    pub state: PathBuf,
    /// The directory SFTP sessions start in (`internal-sftp -d`).
    pub data: PathBuf,
    pub client_key: PathBuf,
    pub host_key_pub: PathBuf,
    /// A known_hosts file listing the server's key as `[127.0.0.1]:port`.
    pub known_hosts: PathBuf,
}

const HOW: &str = "install the Debian packages openssh-server and openssh-client \
                   (scripts/install-test-deps.sh does it)";

pub fn keygen(path: &Path, comment: &str) {
    let _ = std::fs::remove_file(path);
    let status = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", comment, "-f"])
        .arg(path)
        .status()
        .expect("run ssh-keygen");
    assert!(status.success(), "ssh-keygen failed for {}", path.display());
}

/// The `SHA256:...` fingerprint ssh-keygen prints for a public key file.
pub fn fingerprint(pub_key: &Path) -> String {
    let out = Command::new("ssh-keygen")
        .arg("-lf")
        .arg(pub_key)
        .output()
        .expect("run ssh-keygen -lf");
    let text = String::from_utf8(out.stdout).unwrap();
    text.split_whitespace()
        .nth(1)
        .unwrap_or_else(|| panic!("no fingerprint in {text:?}"))
        .to_owned()
}

/// `type base64` of a public key file.
pub fn key_line(pub_key: &Path) -> String {
    let text = std::fs::read_to_string(pub_key).unwrap();
    text.split_whitespace()
        .take(2)
        .collect::<Vec<_>>()
        .join(" ")
}

impl Sshd {
    /// Starts sshd. Root logs in with the client key; `shell = true` allows exec channels
    /// (for `shell_hashes`), otherwise only the SFTP subsystem is allowed.
    pub fn start(shell: bool) -> Sshd {
        let sshd = require_program("/usr/sbin/sshd", HOW);
        require_program("ssh-keygen", HOW);
        let dir = TestServer::prepare("sshd");
        let state = dir.path().to_path_buf();
        let data = state.join("data");
        std::fs::create_dir_all(&data).unwrap();
        // sshd refuses to start without its privilege separation directory.
        if !Path::new("/run/sshd").is_dir() {
            std::fs::create_dir_all("/run/sshd")
                .unwrap_or_else(|e| panic!("cannot create /run/sshd (sshd needs root): {e}"));
        }
        let host_key = state.join("host_key");
        let client_key = state.join("client_key");
        keygen(&host_key, "cloudsync-test-host");
        keygen(&client_key, "cloudsync-test-client");
        std::fs::copy(
            client_key.with_extension("pub"),
            state.join("authorized_keys"),
        )
        .unwrap();
        let port = free_port();
        let host_key_pub = host_key.with_extension("pub");
        let known_hosts = state.join("known_hosts");
        std::fs::write(
            &known_hosts,
            format!("[127.0.0.1]:{port} {}\n", key_line(&host_key_pub)),
        )
        .unwrap();
        let force = if shell {
            String::new()
        } else {
            format!("ForceCommand internal-sftp -d {}\n", data.display())
        };
        let config = format!(
            "Port {port}\nListenAddress 127.0.0.1\nHostKey {hk}\nPidFile {st}/sshd.pid\n\
             AuthorizedKeysFile {st}/authorized_keys\nStrictModes no\n\
             PermitRootLogin prohibit-password\nPubkeyAuthentication yes\n\
             PasswordAuthentication yes\nKbdInteractiveAuthentication no\nUsePAM no\nUseDNS no\n\
             MaxStartups 100:30:200\nMaxSessions 64\nMaxAuthTries 20\n\
             Subsystem sftp internal-sftp -d {data}\n{force}\
             X11Forwarding no\nAllowTcpForwarding no\nLogLevel INFO\n",
            hk = host_key.display(),
            st = state.display(),
            data = data.display(),
        );
        let config_path = state.join("sshd_config");
        std::fs::write(&config_path, config).unwrap();
        let mut cmd = Command::new(sshd);
        cmd.arg("-D").arg("-e").arg("-f").arg(&config_path);
        let server = TestServer::start("sshd", dir, &mut cmd, port);
        Sshd {
            server,
            port,
            state,
            data,
            client_key,
            host_key_pub,
            known_hosts,
        }
    }

    /// A config logging in as root with the client key, rooted at `root` (below `data`).
    pub fn config(&self, root: &str) -> SftpConfig {
        let dir = self.data.join(root);
        std::fs::create_dir_all(&dir).unwrap();
        SftpConfig::new("127.0.0.1", "root")
            .with_port(self.port)
            .with_key_file(self.client_key.display().to_string())
            .with_known_hosts(self.known_hosts.display().to_string())
            .with_use_agent(false)
            .with_root(dir.display().to_string())
    }

    /// The pid of the listening sshd.
    pub fn listener_pid(&self) -> u32 {
        let text = std::fs::read_to_string(self.state.join("sshd.pid")).unwrap();
        text.trim().parse().unwrap()
    }

    /// Kills (SIGKILL) every sshd process serving a connection, leaving the listener up.
    /// Returns how many were killed.
    pub fn kill_sessions(&self) -> usize {
        let victims = descendants(self.listener_pid());
        for pid in &victims {
            let _ = Command::new("kill").arg("-9").arg(pid.to_string()).status();
        }
        victims.len()
    }
}

/// Pids of every process below `root` (from /proc).
fn descendants(root: u32) -> Vec<u32> {
    let mut parent_of = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // pid (comm) state ppid ...: comm may contain spaces, so split after the last ')'.
        let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
            continue;
        };
        if let Some(ppid) = rest
            .split_whitespace()
            .nth(1)
            .and_then(|p| p.parse::<u32>().ok())
        {
            parent_of.push((pid, ppid));
        }
    }
    let mut out = Vec::new();
    let mut frontier = vec![root];
    while let Some(p) = frontier.pop() {
        for &(pid, ppid) in &parent_of {
            if ppid == p {
                out.push(pid);
                frontier.push(pid);
            }
        }
    }
    out
}
