//! Real server programs for backend tests: start one on 127.0.0.1 with a free port and a temp
//! directory, wait until it accepts connections, and make sure it stops when the test binary
//! exits (even if it crashes).
//!
//! The server runs under a small `sh` "lifeline": the test process holds the write end of the
//! lifeline's stdin; when the process exits, for any reason, the pipe closes and the lifeline
//! sends SIGTERM to the server, waits for it and removes the server's temp directory. So a
//! server kept in a `static` for the whole test binary (never dropped, so its `TempDir` is
//! never dropped either) outlives it neither as a process nor as files. A server stopped by
//! [`TestServer::stop`] keeps its directory for the test to look at, until the `TempDir` goes.

use std::io::Read;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

/// A server process started for tests.
#[derive(Debug)]
pub struct TestServer {
    name: String,
    port: u16,
    dir: tempfile::TempDir,
    child: Child,
    // Closing this (the lifeline's stdin) stops the server.
    lifeline: Option<ChildStdin>,
}

/// A port that was free a moment ago on 127.0.0.1 (for servers that cannot bind port 0).
///
/// It is picked at random below Linux's ephemeral range (32768 and up), so that neither the
/// outgoing connections of concurrent tests nor the readiness probe itself (which can connect
/// to itself on an ephemeral port nobody listens on) can hold it by the time the server binds.
pub fn free_port() -> u16 {
    for _ in 0..1000 {
        let port = fastrand::u16(10_000..32_000);
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port between 10000 and 32000 on 127.0.0.1")
}

/// Panics with a message saying how to get `program` when it is not installed.
///
/// Tests call this first so a missing server is a loud failure, never a silent skip.
pub fn require_program(program: &str, how_to_get: &str) -> PathBuf {
    let candidates: Vec<PathBuf> = if program.contains('/') {
        vec![PathBuf::from(program)]
    } else {
        std::env::var_os("PATH")
            .map(|p| std::env::split_paths(&p).map(|d| d.join(program)).collect())
            .unwrap_or_default()
    };
    candidates
        .into_iter()
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "test server program `{program}` is not installed: {how_to_get} \
                 (scripts/test.sh installs every test server)"
            )
        })
}

impl TestServer {
    /// Creates the temp directory a server's config and data go in, before starting it.
    pub fn prepare(name: &str) -> tempfile::TempDir {
        tempfile::Builder::new()
            .prefix(&format!("cloudsync-{name}-"))
            .tempdir()
            .unwrap_or_else(|e| panic!("cannot create a temp dir for {name}: {e}"))
    }

    /// Starts `command` (which must stay in the foreground) and waits up to 20 s until
    /// 127.0.0.1:`port` accepts TCP connections. Its output goes to `dir/server.log`, whose
    /// tail is shown if it fails to start.
    pub fn start(name: &str, dir: tempfile::TempDir, command: &mut Command, port: u16) -> Self {
        Self::start_within(name, dir, command, port, Duration::from_secs(20))
    }

    /// [`TestServer::start`] with another readiness timeout.
    pub fn start_within(
        name: &str,
        dir: tempfile::TempDir,
        command: &mut Command,
        port: u16,
        ready_within: Duration,
    ) -> Self {
        let log_path = dir.path().join("server.log");
        let log = std::fs::File::create(&log_path)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", log_path.display()));
        let log2 = log
            .try_clone()
            .unwrap_or_else(|e| panic!("cannot dup log file: {e}"));
        let program = command.get_program().to_owned();
        let args: Vec<_> = command.get_args().map(|a| a.to_owned()).collect();
        let mut lifeline = Command::new("sh");
        lifeline
            .arg("-c")
            .arg(r#"keep=; gone() { kill $child 2>/dev/null; wait $child; [ -n "$keep" ] || case "$CLOUDSYNC_LIFELINE_DIR" in */cloudsync-*) rm -rf -- "$CLOUDSYNC_LIFELINE_DIR";; esac; }; "$@" </dev/null & child=$!; trap 'gone; exit 0' TERM INT HUP; if read -r _; then keep=1; fi; gone"#)
            .arg("lifeline")
            .arg(&program)
            .args(&args)
            .stdin(Stdio::piped())
            .stdout(log)
            .stderr(log2);
        // What the lifeline removes once the server has stopped (only a path of ours).
        lifeline.env("CLOUDSYNC_LIFELINE_DIR", dir.path());
        for (k, v) in command.get_envs() {
            match v {
                Some(v) => lifeline.env(k, v),
                None => lifeline.env_remove(k),
            };
        }
        if let Some(d) = command.get_current_dir() {
            lifeline.current_dir(d);
        }
        let mut child = lifeline
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name} ({program:?}): {e}"));
        let stdin = child
            .stdin
            .take()
            .unwrap_or_else(|| panic!("no stdin pipe for {name}"));
        let server = TestServer {
            name: name.to_owned(),
            port,
            dir,
            child,
            lifeline: Some(stdin),
        };
        server.wait_ready(ready_within);
        server
    }

    fn wait_ready(&self, timeout: Duration) {
        let addr = SocketAddr::from(([127, 0, 0, 1], self.port));
        let start = Instant::now();
        while start.elapsed() < timeout {
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!(
            "{} did not accept connections on {addr} within {timeout:?}; log:\n{}",
            self.name,
            self.log_tail()
        );
    }

    /// The last 4 KiB of the server's log.
    pub fn log_tail(&self) -> String {
        let mut s = String::new();
        if let Ok(mut f) = std::fs::File::open(self.dir.path().join("server.log")) {
            let _ = f.read_to_string(&mut s);
        }
        let mut cut = s.len().saturating_sub(4096);
        while !s.is_char_boundary(cut) {
            cut += 1;
        }
        s[cut..].to_owned()
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Its temp directory (config, state, data).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Stops the server now (SIGTERM from the lifeline) and waits for it; used by tests that
    /// stop a server mid-transfer, and on drop.
    pub fn stop(&mut self) {
        // A line on its stdin makes the lifeline stop the server and exit, keeping the
        // directory (EOF alone, when the test process exits, also removes it). A signal would
        // not do: `sh` runs its traps only after the foreground `read` returns.
        if let Some(mut stdin) = self.lifeline.take() {
            let _ = std::io::Write::write_all(&mut stdin, b"keep\n");
        }
        let _ = self.child.wait();
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_server_that_never_listens_fails_fast_and_is_stopped() {
        let started = Instant::now();
        let r = std::panic::catch_unwind(|| {
            // `sleep` never listens: start panics after its wait, and the drop while unwinding
            // must stop it rather than hang.
            let mut cmd = Command::new("sleep");
            cmd.arg("600");
            let dir = TestServer::prepare("sleeper");
            TestServer::start_within(
                "sleeper",
                dir,
                &mut cmd,
                free_port(),
                Duration::from_millis(300),
            )
        });
        assert!(r.is_err());
        assert!(started.elapsed() < Duration::from_secs(20));
    }

    /// A server that listens on `port` until it is stopped.
    fn listener(port: u16) -> TestServer {
        let python = require_program("python3", "install python3: `apt-get install python3`");
        let mut cmd = Command::new(python);
        cmd.arg("-c").arg(format!(
            "import socket, time\ns = socket.socket()\ns.bind(('127.0.0.1', {port}))\n\
             s.listen()\ntime.sleep(600)"
        ));
        TestServer::start("listener", TestServer::prepare("listener"), &mut cmd, port)
    }

    /// When the test process goes without stopping a server (a `static` one is never dropped),
    /// the lifeline removes the server's directory once the server is gone; a server stopped
    /// on purpose keeps it for the test until its `TempDir` is dropped.
    #[test]
    fn the_lifeline_removes_the_directory_only_when_the_process_goes() {
        let mut kept = listener(free_port());
        let dir = kept.dir().to_owned();
        kept.stop();
        assert!(
            dir.join("server.log").exists(),
            "stop() removed {}",
            dir.display()
        );
        drop(kept);
        assert!(!dir.exists(), "the TempDir was not removed");

        let mut orphan = listener(free_port());
        let dir = orphan.dir().to_owned();
        // What the exit of the test process does: the lifeline's stdin closes, no line sent.
        drop(orphan.lifeline.take());
        let _ = orphan.child.wait();
        assert!(!dir.exists(), "the lifeline left {}", dir.display());
    }
}
