//! Logging in with a key held by ssh-agent (`SSH_AUTH_SOCK`), and with a password.
//!
//! Its own binary because it sets `SSH_AUTH_SOCK` for the process.

mod common;

use std::process::{Child, Command};
use std::sync::LazyLock;
use std::time::Duration;

use cloudsync_core::testkit::server::require_program;
use cloudsync_core::{Remote, RemotePath};
use cloudsync_sftp::{SftpConfig, SftpRemote};
use futures::TryStreamExt;

static SSHD: LazyLock<common::Sshd> = LazyLock::new(|| common::Sshd::start(false));

/// Kills the agent when the test ends, even on panic.
struct Agent(Child);

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn agent_and_password_logins() {
    let how = "install the Debian package openssh-client";
    let agent_bin = require_program("ssh-agent", how);
    let add_bin = require_program("ssh-add", how);
    let sock = SSHD.state.join("agent.sock");
    let _agent = Agent(
        Command::new(agent_bin)
            .arg("-D")
            .arg("-a")
            .arg(&sock)
            .spawn()
            .unwrap(),
    );
    for _ in 0..100 {
        if sock.exists() {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let added = Command::new(add_bin)
        .arg(&SSHD.client_key)
        .env("SSH_AUTH_SOCK", &sock)
        .output()
        .unwrap();
    assert!(added.status.success(), "ssh-add: {added:?}");
    // SAFETY: the only test of this binary sets it before starting any runtime thread.
    unsafe { std::env::set_var("SSH_AUTH_SOCK", &sock) };

    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        // No key file: only the agent can log us in.
        let mut cfg = SSHD.config("agent").with_use_agent(true);
        cfg.key_file = None;
        let remote = SftpRemote::connect(cfg).await.unwrap();
        let listed: Vec<_> = remote
            .list(&RemotePath::root())
            .await
            .unwrap()
            .try_collect()
            .await
            .unwrap();
        assert!(listed.is_empty());

        // The same without the agent fails with Auth.
        let mut cfg = SSHD.config("agent").with_use_agent(false);
        cfg.key_file = None;
        let e = SftpRemote::connect(cfg).await.unwrap_err();
        assert_eq!(e.kind(), cloudsync_core::ErrorKind::Auth, "{e}");

        // Password login needs a system user; the test user is created if missing (with the
        // password the other test servers use).
        ensure_test_user();
        let mut cfg = SftpConfig::new("127.0.0.1", "synctest")
            .with_port(SSHD.port)
            .with_known_hosts(SSHD.known_hosts.display().to_string())
            .with_use_agent(false)
            .with_root("/");
        cfg.password = Some("synctest-pass".into());
        let remote = SftpRemote::connect(cfg).await.unwrap();
        let e = remote.stat(&RemotePath::new("etc").unwrap()).await.unwrap();
        assert!(e.is_dir());
    });
}

fn ensure_test_user() {
    let exists = Command::new("id").arg("synctest").output().unwrap();
    if !exists.status.success() {
        let ok = Command::new("useradd")
            .args(["-M", "-s", "/bin/sh", "synctest"])
            .status()
            .unwrap();
        assert!(ok.success(), "useradd synctest failed (needs root)");
    }
    let mut chpasswd = Command::new("chpasswd")
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    chpasswd
        .stdin
        .take()
        .unwrap()
        .write_all(b"synctest:synctest-pass\n")
        .unwrap();
    assert!(
        chpasswd.wait().unwrap().success(),
        "chpasswd failed (needs root)"
    );
}
