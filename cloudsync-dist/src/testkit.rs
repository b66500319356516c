//! Test harness (feature `testkit`): a throw-away PostgreSQL 15 server on a free loopback
//! port, run as the unprivileged `postgres` user (initdb and the server refuse root), stopped
//! when dropped. A missing server is a test failure that says how to install it.

use std::path::{Path, PathBuf};
use std::process::Command;

pub use crate::worker::{claim_for_test, complete_for_test, run_one_shard_for_test};

/// Where Debian's postgresql-15 puts the server programs.
const BIN: &str = "/usr/lib/postgresql/15/bin";

/// The password of the `postgres` user in every test server.
pub const PASSWORD: &str = "test-secret";

/// A running test server.
pub struct Pg {
    dir: tempfile::TempDir,
    port: u16,
    /// Whether the server speaks TLS (certificates under `tls/`).
    tls: bool,
}

/// A server program; panics with the install command when it is missing.
fn bin(name: &str) -> PathBuf {
    let p = Path::new(BIN).join(name);
    assert!(
        p.exists(),
        "{} not found: the cloudsync-dist tests need PostgreSQL 15 \
         (apt-get install postgresql-15, or run scripts/install-test-deps.sh)",
        p.display()
    );
    p
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// Runs a server program as `postgres` (when we are root) and panics with its output if it
/// fails.
fn run_as_postgres(program: &Path, args: &[&str]) {
    let mut cmd = if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(program);
        c
    } else {
        Command::new(program)
    };
    cmd.args(args);
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("running {}: {e}", program.display()));
    assert!(
        out.status.success(),
        "{} {:?} failed: {}\n{}",
        program.display(),
        args,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

impl Pg {
    /// initdb (password authentication) and start; panics when PostgreSQL 15 is missing or
    /// does not start.
    pub fn start() -> Pg {
        Self::start_inner(false)
    }

    /// The same with TLS on (`ssl=on`): a CA and a server certificate for 127.0.0.1 made by
    /// `openssl` for this server; [`Pg::ca_file`] is the CA to trust. Plain connections are
    /// still accepted (a URL's `sslmode=require` insists on TLS).
    pub fn start_tls() -> Pg {
        Self::start_inner(true)
    }

    /// The PEM file of the CA that signed a TLS server's certificate.
    pub fn ca_file(&self) -> PathBuf {
        self.dir.path().join("tls").join("ca.crt")
    }

    fn start_inner(tls: bool) -> Pg {
        let initdb = bin("initdb");
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(dir.path().join("pw"), format!("{PASSWORD}\n")).expect("password file");
        if tls {
            make_certificates(&dir.path().join("tls"));
        }
        if is_root() {
            let st = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(dir.path())
                .status()
                .expect("chown");
            assert!(st.success(), "chown of the test server's directory failed");
        }
        let data = dir.path().join("data");
        let pw = dir.path().join("pw");
        run_as_postgres(
            &initdb,
            &[
                "-D",
                data.to_str().expect("utf-8 path"),
                "-U",
                "postgres",
                "-A",
                "scram-sha-256",
                "--pwfile",
                pw.to_str().expect("utf-8 path"),
                "--no-sync",
                "-E",
                "UTF8",
                "--locale=C",
            ],
        );
        let pg = Pg {
            dir,
            port: free_port(),
            tls,
        };
        pg.start_again();
        pg
    }

    fn data(&self) -> String {
        self.dir.path().join("data").display().to_string()
    }

    /// Starts the server (again, after [`Pg::crash`]).
    pub fn start_again(&self) {
        let mut opts = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=50 \
             -c shared_buffers=16MB",
            self.port,
            self.dir.path().display()
        );
        if self.tls {
            let tls = self.dir.path().join("tls");
            opts.push_str(&format!(
                " -c ssl=on -c ssl_cert_file={} -c ssl_key_file={}",
                tls.join("server.crt").display(),
                tls.join("server.key").display()
            ));
        }
        let log = self.dir.path().join("log").display().to_string();
        run_as_postgres(
            &bin("pg_ctl"),
            &[
                "-D",
                &self.data(),
                "-l",
                &log,
                "-w",
                "-t",
                "30",
                "-o",
                &opts,
                "start",
            ],
        );
    }

    /// `pg_ctl stop -m immediate`: every connection is cut, no clean shutdown.
    pub fn crash(&self) {
        run_as_postgres(
            &bin("pg_ctl"),
            &["-D", &self.data(), "-m", "immediate", "-w", "stop"],
        );
    }

    /// The URL of the `postgres` database with the right password.
    pub fn url(&self) -> String {
        format!(
            "postgres://postgres:{PASSWORD}@127.0.0.1:{}/postgres",
            self.port
        )
    }

    /// The same with another password.
    pub fn url_with_password(&self, password: &str) -> String {
        format!(
            "postgres://postgres:{password}@127.0.0.1:{}/postgres",
            self.port
        )
    }

    /// The server's port.
    pub fn port(&self) -> u16 {
        self.port
    }
}

/// A CA and a server certificate for 127.0.0.1 signed by it (`ca.crt`, `server.crt`,
/// `server.key` with mode 0600) in `dir`, made with `openssl`.
fn make_certificates(dir: &Path) {
    std::fs::create_dir_all(dir).expect("tls dir");
    let openssl = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .unwrap_or_else(|e| {
                panic!("openssl is needed for the TLS test (apt-get install openssl): {e}")
            });
        assert!(
            out.status.success(),
            "openssl {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
    ];
    let mut ca = vec!["req", "-x509"];
    ca.extend(ec);
    ca.extend([
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
        "-days",
        "2",
        "-subj",
        "/CN=cloudsync test CA",
    ]);
    openssl(&ca);
    let mut csr = vec!["req"];
    csr.extend(ec);
    csr.extend([
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=127.0.0.1",
    ]);
    openssl(&csr);
    std::fs::write(
        dir.join("ext.cnf"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n\
         keyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n",
    )
    .expect("ext.cnf");
    openssl(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.crt",
        "-days",
        "2",
        "-extfile",
        "ext.cnf",
    ]);
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(
        dir.join("server.key"),
        std::fs::Permissions::from_mode(0o600),
    )
    .expect("chmod server.key");
}

/// Creates the schema as version `version` of this crate wrote it (an older database, to test
/// the upgrade that [`Db::connect`](crate::Db::connect) makes).
pub async fn create_schema_version(db: &crate::Db, version: i32) -> crate::Result<()> {
    let mut client = db.connect_raw().await?;
    crate::db::migrate_to(&mut client, version).await
}

impl Drop for Pg {
    fn drop(&mut self) {
        let _ = Command::new(if is_root() { "runuser" } else { "sh" })
            .args(if is_root() {
                vec!["-u", "postgres", "--"]
            } else {
                vec!["-c", "exec \"$0\" \"$@\""]
            })
            .arg(bin("pg_ctl"))
            .args(["-D", &self.data(), "-m", "immediate", "stop"])
            .output();
    }
}
