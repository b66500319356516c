//! Real WebDAV servers for the tests: Apache httpd (mod_dav_fs), nginx (dav + dav_ext, with a
//! small lua snippet that honours Nextcloud's `X-OC-MTime`) and `rclone serve webdav`, each on
//! 127.0.0.1 with a free port and a temp root, stopped when the test binary exits.
#![allow(dead_code)]

pub mod checks;
pub mod memdav;
pub mod nextcloud;
pub mod scripted;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use cloudsync_core::Remote;
use cloudsync_core::testkit::server::{TestServer, free_port, require_program};
use cloudsync_webdav::{Vendor, WebdavConfig, WebdavRemote};

/// Test credentials.
pub const USER: &str = "synctest";
pub const PASSWORD: &str = "synctest-pass";

/// A started server and where its files live.
pub struct DavServer {
    pub server: TestServer,
    /// The URL of the served root collection (ends with `/`).
    pub url: String,
    /// The directory on disk that the root collection serves.
    pub data: PathBuf,
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// As root the servers' workers run as www-data: let them reach and own their directories.
fn open_up(dir: &Path, owned: &[&Path]) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    if is_root() {
        for p in owned {
            let ok = Command::new("chown")
                .arg("-R")
                .arg("www-data:www-data")
                .arg(p)
                .status()
                .map(|s| s.success())
                .unwrap_or(false);
            assert!(ok, "cannot chown {} to www-data", p.display());
        }
    }
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
    String::from_utf8_lossy(&out.stdout).into_owned()
}

const HOW_APACHE: &str = "install Apache httpd: `apt-get install apache2 apache2-utils`";
const HOW_NGINX: &str = "install nginx with dav_ext and lua: `apt-get install nginx-extras`";
const HOW_RCLONE: &str = "install rclone: `apt-get install rclone`";

/// Apache httpd 2.4 with mod_dav_fs, Basic auth, serving `/dav/` over HTTP.
pub fn start_apache() -> DavServer {
    start_apache_with(false)
}

/// Apache as [`start_apache`], over HTTPS only, with a certificate for 127.0.0.1 signed by a
/// fresh test CA (`dir()/ca.pem`).
pub fn start_apache_tls() -> DavServer {
    start_apache_with(true)
}

fn start_apache_with(tls: bool) -> DavServer {
    let apache = require_program("/usr/sbin/apache2", HOW_APACHE);
    let htpasswd = require_program("htpasswd", HOW_APACHE);
    let dir = TestServer::prepare("apache-dav");
    let state = dir.path().to_owned();
    let data = state.join("data");
    let lock = state.join("lock");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::create_dir_all(&lock).unwrap();
    run(Command::new(htpasswd)
        .arg("-bc")
        .arg(state.join("htpasswd"))
        .arg(USER)
        .arg(PASSWORD));
    open_up(&state, &[&data, &lock]);
    let port = free_port();
    let m = "/usr/lib/apache2/modules";
    let user_lines = if is_root() {
        "User www-data\nGroup www-data\n"
    } else {
        ""
    };
    let s = state.display();
    let d = data.display();
    let conf = format!(
        r#"ServerRoot {s}
ServerName localhost
Listen 127.0.0.1:{port}
PidFile {s}/httpd.pid
ErrorLog {s}/error.log
LogLevel warn
LoadModule mpm_event_module {m}/mod_mpm_event.so
LoadModule authz_core_module {m}/mod_authz_core.so
LoadModule authz_user_module {m}/mod_authz_user.so
LoadModule authn_core_module {m}/mod_authn_core.so
LoadModule authn_file_module {m}/mod_authn_file.so
LoadModule auth_basic_module {m}/mod_auth_basic.so
LoadModule alias_module {m}/mod_alias.so
LoadModule dav_module {m}/mod_dav.so
LoadModule dav_fs_module {m}/mod_dav_fs.so
{user_lines}StartServers 1
ServerLimit 2
ThreadsPerChild 16
MaxRequestWorkers 32
KeepAliveTimeout 30
MaxKeepAliveRequests 0
Mutex file:{s}/lock
DAVLockDB {s}/lock/DAVLock
DocumentRoot {d}
Alias /dav {d}
<Directory {d}>
    Dav On
    AuthType Basic
    AuthName "sync-test"
    AuthUserFile {s}/htpasswd
    Require valid-user
    Options None
    AllowOverride None
</Directory>
"#
    );
    let mut conf = conf;
    if tls {
        let openssl = require_program("openssl", "install openssl: `apt-get install openssl`");
        // A throwaway CA (`ca.pem`, what a client trusts) and a server certificate it signed.
        let ec = [
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
        ];
        run(Command::new(&openssl)
            .args([
                "req",
                "-x509",
                "-days",
                "2",
                "-subj",
                "/CN=cloudsync test CA",
            ])
            .args(ec)
            .arg("-keyout")
            .arg(state.join("ca.key"))
            .arg("-out")
            .arg(state.join("ca.pem")));
        run(Command::new(&openssl)
            .args(["req", "-subj", "/CN=localhost"])
            .args(ec)
            .arg("-keyout")
            .arg(state.join("key.pem"))
            .arg("-out")
            .arg(state.join("server.csr")));
        std::fs::write(
            state.join("server.ext"),
            "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n",
        )
        .unwrap();
        run(Command::new(&openssl)
            .args(["x509", "-req", "-days", "2", "-CAcreateserial"])
            .arg("-in")
            .arg(state.join("server.csr"))
            .arg("-CA")
            .arg(state.join("ca.pem"))
            .arg("-CAkey")
            .arg(state.join("ca.key"))
            .arg("-extfile")
            .arg(state.join("server.ext"))
            .arg("-out")
            .arg(state.join("cert.pem")));
        // Serve HTTPS only, on the port the harness waits for.
        conf = conf.replace(&format!("Listen 127.0.0.1:{port}\n"), "");
        conf.push_str(&format!(
            r#"LoadModule socache_shmcb_module {m}/mod_socache_shmcb.so
LoadModule ssl_module {m}/mod_ssl.so
Listen 127.0.0.1:{port}
SSLSessionCache shmcb:{s}/lock/ssl_scache(512000)
<VirtualHost 127.0.0.1:{port}>
    SSLEngine on
    SSLCertificateFile {s}/cert.pem
    SSLCertificateKeyFile {s}/key.pem
</VirtualHost>
"#
        ));
    }
    std::fs::write(state.join("httpd.conf"), conf).unwrap();
    let mut cmd = Command::new(apache);
    cmd.arg("-f")
        .arg(state.join("httpd.conf"))
        .arg("-DFOREGROUND");
    let server = TestServer::start("apache-dav", dir, &mut cmd, port);
    let scheme = if tls { "https" } else { "http" };
    DavServer {
        server,
        url: format!("{scheme}://127.0.0.1:{port}/dav/"),
        data,
    }
}

/// nginx with the dav and dav_ext modules serving `prefix` (e.g. `/dav/` or Nextcloud's
/// `/remote.php/dav/files/synctest/`). With `ocmtime`, a lua snippet makes a PUT's
/// `X-OC-MTime: <unix seconds>` the file's mtime (nginx takes a PUT's mtime from its `Date`
/// header) and answers `X-OC-MTime: accepted`, as Nextcloud does.
pub fn start_nginx(prefix: &str, ocmtime: bool) -> DavServer {
    let nginx = require_program("/usr/sbin/nginx", HOW_NGINX);
    let openssl = require_program("openssl", "install openssl: `apt-get install openssl`");
    for m in [
        "ngx_http_dav_ext_module.so",
        "ngx_http_lua_module.so",
        "ndk_http_module.so",
    ] {
        require_program(&format!("/usr/lib/nginx/modules/{m}"), HOW_NGINX);
    }
    let dir = TestServer::prepare("nginx-dav");
    let state = dir.path().to_owned();
    let data = state.join("data");
    let tmp = state.join("tmp");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::create_dir_all(&tmp).unwrap();
    let hash = run(Command::new(openssl).args(["passwd", "-apr1", PASSWORD]));
    std::fs::write(state.join("htpasswd"), format!("{USER}:{}\n", hash.trim())).unwrap();
    open_up(&state, &[&data, &tmp]);
    let port = free_port();
    let user_line = if is_root() { "user www-data;" } else { "" };
    let (lua_mods, lua) = if ocmtime {
        (
            "load_module /usr/lib/nginx/modules/ndk_http_module.so;\n\
             load_module /usr/lib/nginx/modules/ngx_http_lua_module.so;",
            r#"rewrite_by_lua_block {
                local m = ngx.var.http_x_oc_mtime
                if m and ngx.req.get_method() == "PUT" and tonumber(m) then
                    ngx.req.set_header("Date", ngx.http_time(math.floor(tonumber(m))))
                    ngx.ctx.ocmtime = true
                end
            }
            header_filter_by_lua_block {
                if ngx.ctx.ocmtime then ngx.header["X-OC-MTime"] = "accepted" end
            }"#,
        )
    } else {
        ("", "")
    };
    let s = state.display();
    let d = data.display();
    let conf = format!(
        r#"load_module /usr/lib/nginx/modules/ngx_http_dav_ext_module.so;
{lua_mods}
daemon off;
master_process on;
worker_processes 1;
pid {s}/nginx.pid;
error_log {s}/error.log warn;
{user_line}
events {{ worker_connections 512; }}
http {{
    access_log off;
    client_body_temp_path {s}/tmp/body;
    proxy_temp_path {s}/tmp/proxy;
    fastcgi_temp_path {s}/tmp/fastcgi;
    uwsgi_temp_path {s}/tmp/uwsgi;
    scgi_temp_path {s}/tmp/scgi;
    client_max_body_size 0;
    keepalive_requests 100000;
    dav_ext_lock_zone zone=davlock:1m;
    server {{
        listen 127.0.0.1:{port};
        server_name localhost;
        location {prefix} {{
            alias {d}/;
            auth_basic "sync-test";
            auth_basic_user_file {s}/htpasswd;
            dav_methods PUT DELETE MKCOL COPY MOVE;
            dav_ext_methods PROPFIND OPTIONS LOCK UNLOCK;
            dav_ext_lock zone=davlock;
            dav_access user:rw group:rw all:r;
            create_full_put_path off;
            {lua}
        }}
    }}
}}
"#
    );
    std::fs::write(state.join("nginx.conf"), conf).unwrap();
    let mut cmd = Command::new(nginx);
    cmd.arg("-p")
        .arg(&state)
        .arg("-e")
        .arg(state.join("error.log"))
        .arg("-c")
        .arg(state.join("nginx.conf"));
    let server = TestServer::start("nginx-dav", dir, &mut cmd, port);
    DavServer {
        server,
        url: format!("http://127.0.0.1:{port}{prefix}"),
        data,
    }
}

/// `rclone serve webdav` serving `/dav/`.
pub fn start_rclone() -> DavServer {
    let rclone = require_program("rclone", HOW_RCLONE);
    let dir = TestServer::prepare("rclone-webdav");
    let state = dir.path().to_owned();
    let data = state.join("data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(state.join("rclone.conf"), "").unwrap();
    let port = free_port();
    let mut cmd = Command::new(rclone);
    cmd.arg("serve")
        .arg("webdav")
        .arg(&data)
        .arg("--config")
        .arg(state.join("rclone.conf"))
        .arg("--addr")
        .arg(format!("127.0.0.1:{port}"))
        .args(["--baseurl", "/dav", "--user", USER, "--pass", PASSWORD])
        .args([
            "--etag-hash",
            "auto",
            "--dir-cache-time",
            "0s",
            "--poll-interval",
            "0",
        ])
        .args(["--log-level", "NOTICE"]);
    let server = TestServer::start("rclone-webdav", dir, &mut cmd, port);
    DavServer {
        server,
        url: format!("http://127.0.0.1:{port}/dav/"),
        data,
    }
}

/// A fresh, empty directory on `server` (one per test, so tests share a server) as a remote.
pub async fn remote_in(server: &DavServer, vendor: Vendor, name: &str) -> Arc<dyn Remote> {
    let sub = format!("{name}-{:08x}", fastrand::u32(..));
    let top = WebdavRemote::new(
        WebdavConfig::new(server.url.clone())
            .with_vendor(vendor)
            .with_password(USER, PASSWORD),
    )
    .unwrap();
    top.mkdir(&cloudsync_core::RemotePath::new(&sub).unwrap())
        .await
        .unwrap();
    let remote = WebdavRemote::new(
        WebdavConfig::new(format!("{}{sub}/", server.url))
            .with_vendor(vendor)
            .with_password(USER, PASSWORD),
    )
    .unwrap();
    Arc::new(remote)
}
