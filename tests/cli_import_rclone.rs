//! `cloudsync config import-rclone` against config files written by the real `rclone config
//! create` (the Debian package): every remote of a type we have a backend for comes out as a
//! section our loader accepts, each backend's config struct deserialises it, its options equal
//! the rclone ones (computed here from the rclone file), its passwords and tokens are in the
//! secrets file and decode to what was given to rclone, and no secret is ever printed.

mod cli_support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use cli_support::{Out, cs_cmd};
use serde_json::{Map, Value, json};

/// The rclone binary; fails with how to install it.
fn rclone_bin() -> PathBuf {
    let found = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|d| d.join("rclone"))
        .chain([PathBuf::from("/usr/bin/rclone")])
        .find(|p| p.is_file());
    found.unwrap_or_else(|| {
        panic!(
            "rclone is needed to write the configs this test imports: install it with \
             `apt-get install rclone` (or `bash scripts/install-test-deps.sh`)"
        )
    })
}

/// `rclone config create NAME TYPE KEY=VALUE... --config FILE --non-interactive [--obscure]`.
fn rclone_create(conf: &Path, name: &str, rtype: &str, opts: &[(&str, &str)], obscure: bool) {
    let mut cmd = Command::new(rclone_bin());
    cmd.args(["config", "create", name, rtype])
        .args(opts.iter().map(|(k, v)| format!("{k}={v}")))
        .arg("--config")
        .arg(conf)
        .arg("--non-interactive")
        .env_remove("RCLONE_CONFIG");
    if obscure {
        cmd.arg("--obscure");
    }
    let o = cmd.output().expect("run rclone");
    assert!(
        o.status.success(),
        "rclone config create {name} failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

fn run(cmd: &mut Command) -> Out {
    let o = cmd.output().expect("run cloudsync");
    Out {
        code: o.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
    }
}

/// The rclone file as rclone's reader sees it: section -> key -> value.
fn read_ini(path: &Path) -> BTreeMap<String, BTreeMap<String, String>> {
    let mut out: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    let mut cur = String::new();
    for line in std::fs::read_to_string(path).unwrap().lines() {
        let l = line.trim();
        if l.is_empty() || l.starts_with('#') || l.starts_with(';') {
            continue;
        }
        if let Some(name) = l.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            cur = name.to_owned();
            out.entry(cur.clone()).or_default();
        } else {
            let (k, v) = l.split_once('=').expect("key = value");
            out.get_mut(&cur)
                .unwrap()
                .insert(k.trim().to_owned(), v.trim().to_owned());
        }
    }
    out
}

/// `VARIABLE='value'` lines of the secrets file (sh single quoting).
fn read_secrets(path: &Path) -> BTreeMap<String, String> {
    let text = std::fs::read_to_string(path).unwrap();
    let mut out = BTreeMap::new();
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let (var, quoted) = line.split_once('=').unwrap();
        let inner = quoted
            .strip_prefix('\'')
            .unwrap()
            .strip_suffix('\'')
            .unwrap();
        out.insert(var.to_owned(), inner.replace("'\\''", "'"));
    }
    out
}

/// How an rclone option maps to one of ours.
#[derive(Clone, Copy)]
enum How {
    Text,
    Int,
    Bool,
    /// An rclone size (plain number = KiB).
    Size,
    /// Obscured password: ours holds the revealed value (through the secrets file).
    Obscured,
    /// A secret rclone keeps as it is.
    Secret,
    /// OAuth token JSON: ours holds its refresh token.
    RefreshToken,
}

/// rclone type -> (our type, [(rclone key, our key, how)]).
fn table(rtype: &str) -> (&'static str, Vec<(&'static str, &'static str, How)>) {
    use How::*;
    match rtype {
        "local" => ("local", vec![("copy_links", "follow_symlinks", Bool)]),
        "sftp" => (
            "sftp",
            vec![
                ("host", "host", Text),
                ("port", "port", Int),
                ("user", "user", Text),
                ("pass", "password_env", Obscured),
                ("key_file", "key_file", Text),
                ("key_file_pass", "key_passphrase_env", Obscured),
                ("known_hosts_file", "known_hosts", Text),
            ],
        ),
        "ftp" => (
            "ftp",
            vec![
                ("host", "host", Text),
                ("port", "port", Int),
                ("user", "user", Text),
                ("pass", "password_env", Obscured),
                ("no_check_certificate", "no_check_certificate", Bool),
                ("disable_epsv", "disable_epsv", Bool),
                ("disable_mlsd", "disable_mlsd", Bool),
                ("concurrency", "connections", Int),
            ],
        ),
        "webdav" => (
            "webdav",
            vec![
                ("url", "url", Text),
                ("user", "user", Text),
                ("pass", "password_env", Obscured),
                ("bearer_token", "bearer_token_env", Secret),
            ],
        ),
        "dropbox" => (
            "dropbox",
            vec![
                ("client_id", "app_key", Text),
                ("client_secret", "app_secret_env", Secret),
                ("token", "refresh_token_env", RefreshToken),
                ("chunk_size", "chunk_size", Size),
            ],
        ),
        "drive" => (
            "gdrive",
            vec![
                ("client_id", "client_id", Text),
                ("client_secret", "client_secret_env", Secret),
                ("token", "refresh_token_env", RefreshToken),
                ("service_account_file", "service_account_file", Text),
                ("root_folder_id", "root_folder_id", Text),
                ("team_drive", "drive_id", Text),
                ("use_trash", "use_trash", Bool),
                ("chunk_size", "chunk_size", Size),
            ],
        ),
        "google cloud storage" => (
            "gcs",
            vec![
                ("service_account_file", "service_account_file", Text),
                ("anonymous", "anonymous", Bool),
                ("endpoint", "base_url", Text),
            ],
        ),
        other => panic!("no table for {other}"),
    }
}

/// Our section expected from an rclone section, secrets as their values (what the `*_env`
/// variables must hold), plus the keys our mapping derives from rclone's differently.
fn expected(rclone: &BTreeMap<String, String>, passwords: &BTreeMap<String, String>) -> Value {
    let rtype = rclone["type"].as_str();
    let (ours, rows) = table(rtype);
    let mut m = Map::new();
    m.insert("type".into(), json!(ours));
    for (rk, ok, how) in rows {
        // An empty value is no value, for rclone as for us (rclone writes `team_drive = `).
        let Some(v) = rclone.get(rk).filter(|v| !v.is_empty()) else {
            continue;
        };
        let value = match how {
            How::Text => json!(v),
            How::Int => json!(v.parse::<u64>().unwrap()),
            How::Bool => json!(v.parse::<bool>().unwrap()),
            How::Size => json!(cloudsync::parse_size(v).unwrap().unwrap()),
            How::Obscured => {
                // The value given to rclone, not one computed by the code under test.
                let given = &passwords[&format!("{rtype}/{rk}")];
                assert_ne!(v, given, "rclone was asked to obscure {rk}");
                json!(given)
            }
            How::Secret => json!(v),
            How::RefreshToken => {
                let t: Value = serde_json::from_str(v).unwrap();
                t["refresh_token"].clone()
            }
        };
        m.insert(ok.into(), value);
    }
    match rtype {
        "local" => {
            m.insert("root".into(), json!("/"));
        }
        "sftp" if rclone.get("md5sum_command").map(String::as_str) == Some("md5sum") => {
            m.insert("shell_hashes".into(), json!(true));
        }
        "ftp" if rclone.get("explicit_tls").map(String::as_str) == Some("true") => {
            m.insert("tls".into(), json!("explicit"));
        }
        "webdav" if rclone["vendor"] != "other" => {
            m.insert("vendor".into(), json!(rclone["vendor"]));
        }
        _ => {}
    }
    Value::Object(m)
}

/// Writes the rclone config of every supported type (and one we lack); returns the
/// passwords given to rclone (by `type/key`) and every secret value it holds.
fn write_rclone_config(conf: &Path) -> (BTreeMap<String, String>, Vec<String>) {
    let n = fastrand::u32(..);
    let pw = |what: &str| format!("{what}-Pw'\"=: {n} ü");
    let passwords: BTreeMap<String, String> = [
        ("sftp/pass", pw("sftp")),
        ("sftp/key_file_pass", pw("keyfile")),
        ("ftp/pass", pw("ftp")),
        ("webdav/pass", pw("dav")),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    let token = |who: &str| {
        format!(
            r#"{{"access_token":"AT-{who}-{n}","token_type":"bearer","refresh_token":"RT-{who}-{n}","expiry":"2030-01-02T03:04:05Z"}}"#
        )
    };
    let (db_token, gd_token) = (token("db"), token("gd"));
    let (db_secret, gd_secret, bearer) = (
        format!("db-client-secret-{n}"),
        format!("gd-client-secret-{n}"),
        format!("bearer-{n}"),
    );
    let key_pem = format!("-----BEGIN KEY-{n}-----");
    rclone_create(
        conf,
        "nas",
        "sftp",
        &[
            ("host", "nas.example.com"),
            ("port", "2222"),
            ("user", "backup"),
            ("pass", &passwords["sftp/pass"]),
            ("key_file", "/etc/cloudsync/id_ed25519"),
            ("key_file_pass", &passwords["sftp/key_file_pass"]),
            ("known_hosts_file", "/etc/cloudsync/known_hosts"),
            ("md5sum_command", "md5sum"),
            ("sha1sum_command", "sha1sum"),
            ("set_modtime", "false"),
            ("key_pem", &key_pem),
        ],
        true,
    );
    rclone_create(
        conf,
        "ftp1",
        "ftp",
        &[
            ("host", "ftp.example.com"),
            ("port", "2121"),
            ("user", "me"),
            ("pass", &passwords["ftp/pass"]),
            ("explicit_tls", "true"),
            ("no_check_certificate", "true"),
            ("disable_epsv", "true"),
            ("concurrency", "3"),
        ],
        true,
    );
    rclone_create(
        conf,
        "nc",
        "webdav",
        &[
            ("url", "https://cloud.example.com/remote.php/dav/files/me"),
            ("vendor", "nextcloud"),
            ("user", "me"),
            ("pass", &passwords["webdav/pass"]),
        ],
        true,
    );
    rclone_create(
        conf,
        "dav",
        "webdav",
        &[
            ("url", "http://127.0.0.1:8080/dav"),
            ("vendor", "other"),
            ("bearer_token", &bearer),
        ],
        false,
    );
    rclone_create(
        conf,
        "db",
        "dropbox",
        &[
            ("client_id", "my-app-key"),
            ("client_secret", &db_secret),
            ("token", &db_token),
            ("chunk_size", "64Mi"),
            ("config_refresh_token", "false"),
        ],
        false,
    );
    rclone_create(
        conf,
        "gd",
        "drive",
        &[
            ("client_id", "123.apps.googleusercontent.com"),
            ("client_secret", &gd_secret),
            ("token", &gd_token),
            ("root_folder_id", "1AbCdEf"),
            ("use_trash", "false"),
            ("chunk_size", "16Mi"),
            ("scope", "drive"),
            ("config_refresh_token", "false"),
            ("config_change_team_drive", "false"),
        ],
        false,
    );
    rclone_create(
        conf,
        "gcs1",
        "google cloud storage",
        &[
            ("service_account_file", "/etc/cloudsync/sa.json"),
            ("endpoint", "http://127.0.0.1:4443"),
            ("bucket_policy_only", "true"),
        ],
        false,
    );
    rclone_create(conf, "loc", "local", &[("copy_links", "true")], false);
    rclone_create(conf, "s3x", "s3", &[("provider", "Minio")], false);
    let mut secrets: Vec<String> = passwords.values().cloned().collect();
    secrets.extend([
        db_token.clone(),
        gd_token.clone(),
        db_secret,
        gd_secret,
        bearer,
    ]);
    secrets.extend([key_pem, format!("RT-db-{n}"), format!("RT-gd-{n}")]);
    secrets.extend([format!("AT-db-{n}"), format!("AT-gd-{n}")]);
    // The obscured forms are secrets too (anyone can reveal them).
    let ini = read_ini(conf);
    for sec in ini.values() {
        for k in ["pass", "key_file_pass"] {
            if let Some(v) = sec.get(k) {
                secrets.push(v.clone());
            }
        }
    }
    (passwords, secrets)
}

#[track_caller]
fn assert_no_secret(what: &str, o: &Out, secrets: &[String]) {
    for s in secrets {
        for text in [&o.stdout, &o.stderr] {
            assert!(
                !text.contains(s.as_str()),
                "{what}: a secret was printed\nstdout:\n{}\nstderr:\n{}",
                o.stdout,
                o.stderr
            );
        }
    }
    assert!(!o.stderr.contains("panicked"), "{what}: {}", o.stderr);
}

/// Deserialises a section into the backend's config struct (unknown keys are refused there).
fn backend_accepts(our_type: &str, section: &Value) {
    let mut cfg = section.clone();
    cfg.as_object_mut().unwrap().remove("type");
    let r = match our_type {
        "local" => cloudsync::parse_config::<cloudsync_local::LocalConfig>("local", cfg).map(drop),
        "sftp" => cloudsync::parse_config::<cloudsync_sftp::SftpConfig>("sftp", cfg).map(drop),
        "ftp" => cloudsync::parse_config::<cloudsync_ftp::FtpConfig>("ftp", cfg).map(drop),
        "webdav" => {
            cloudsync::parse_config::<cloudsync_webdav::WebdavConfig>("webdav", cfg).map(drop)
        }
        "dropbox" => {
            cloudsync::parse_config::<cloudsync_dropbox::DropboxConfig>("dropbox", cfg).map(drop)
        }
        "gdrive" => {
            cloudsync::parse_config::<cloudsync_gdrive::GdriveConfig>("gdrive", cfg).map(drop)
        }
        "gcs" => cloudsync::parse_config::<cloudsync_gdrive::GcsConfig>("gcs", cfg).map(drop),
        other => panic!("unexpected type {other}"),
    };
    r.unwrap_or_else(|e| panic!("{our_type} refuses {section}: {e}"));
}

#[test]
fn rclone_written_configs_import_with_options_and_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("rclone.conf");
    let (passwords, secrets) = write_rclone_config(&conf);
    let sec_file = dir.path().join("secrets.env");
    let o = run(cs_cmd(&["config", "import-rclone"])
        .arg(&conf)
        .arg("--secrets-file")
        .arg(&sec_file));
    o.expect(0);
    assert_no_secret("import with --secrets-file", &o, &secrets);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&sec_file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "secrets file mode");
    }
    let cfg = cloudsync::Config::from_toml_str(&o.stdout)
        .unwrap_or_else(|e| panic!("our loader refuses the output: {e}\n{}", o.stdout));
    let values = read_secrets(&sec_file);
    let ini = read_ini(&conf);

    let mut imported: Vec<&str> = cfg.names().collect();
    imported.sort();
    assert_eq!(
        imported,
        ["dav", "db", "ftp1", "gcs1", "gd", "loc", "nas", "nc"]
    );
    for name in imported {
        let rc = &ini[name];
        let section = cfg.remote(name).unwrap();
        let our_type = section["type"].as_str().unwrap().to_owned();
        backend_accepts(&our_type, section);
        // Each `*_env` reference resolved through the secrets file.
        let mut resolved = section.clone();
        for (k, v) in resolved.as_object_mut().unwrap() {
            if k.ends_with("_env") {
                let var = v.as_str().unwrap().to_owned();
                *v = json!(
                    values
                        .get(&var)
                        .unwrap_or_else(|| panic!("{name}: {var} not in the secrets file"))
                );
            }
        }
        assert_eq!(
            resolved,
            expected(rc, &passwords),
            "remote {name}: our section does not carry the rclone options"
        );
    }
    // Every password given to rclone is in the secrets file, revealed.
    for pw in passwords.values() {
        assert!(values.values().any(|v| v == pw), "a password is missing");
    }
    // Options with no equivalent are listed (secret ones by name only), on stderr and in the
    // TOML; the type we lack is reported.
    for shown in [&o.stderr, &o.stdout] {
        assert!(shown.contains("set_modtime = false"), "{shown}");
        assert!(shown.contains("bucket_policy_only = true"), "{shown}");
        assert!(
            shown.contains("key_pem (a secret; value left out)"),
            "{shown}"
        );
        assert!(shown.contains("[s3x] not imported"), "{shown}");
    }

    // Without a secrets file: the same sections; stderr names every variable to set.
    let o2 = run(cs_cmd(&["config", "import-rclone"]).arg(&conf));
    o2.expect(0);
    assert_no_secret("import without --secrets-file", &o2, &secrets);
    let cfg2 = cloudsync::Config::from_toml_str(&o2.stdout).unwrap();
    assert_eq!(cfg2, cfg);
    for var in values.keys() {
        assert!(o2.stderr.contains(&format!("set {var} ")), "{}", o2.stderr);
    }

    // --output writes the file and prints no TOML.
    let out_file = dir.path().join("cloudsync.toml");
    let o3 = run(cs_cmd(&["config", "import-rclone"])
        .arg(&conf)
        .arg("--output")
        .arg(&out_file));
    o3.expect(0);
    assert_no_secret("import --output", &o3, &secrets);
    assert!(o3.stdout.is_empty(), "{}", o3.stdout);
    let written = std::fs::read_to_string(&out_file).unwrap();
    assert_eq!(cloudsync::Config::from_toml_str(&written).unwrap(), cfg);
}

#[test]
fn default_location_follows_rclone_order() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    let xdg = dir.path().join("xdg");
    let put = |p: &Path, remote: &str| {
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, format!("[{remote}]\ntype = local\n")).unwrap();
    };
    let env_file = dir.path().join("env.conf");
    put(&env_file, "fromenv");
    put(&xdg.join("rclone/rclone.conf"), "fromxdg");
    put(&home.join(".config/rclone/rclone.conf"), "fromdotconfig");
    put(&home.join(".rclone.conf"), "fromhidden");
    let import = |rclone_config: Option<&Path>| {
        let mut cmd = cs_cmd(&["config", "import-rclone"]);
        cmd.env("HOME", &home).env("XDG_CONFIG_HOME", &xdg);
        match rclone_config {
            Some(p) => cmd.env("RCLONE_CONFIG", p),
            None => cmd.env_remove("RCLONE_CONFIG"),
        };
        run(&mut cmd)
    };
    let first_remote = |o: &Out| {
        o.expect(0);
        let cfg = cloudsync::Config::from_toml_str(&o.stdout).unwrap();
        cfg.names().next().unwrap().to_owned()
    };
    assert_eq!(first_remote(&import(Some(&env_file))), "fromenv");
    assert_eq!(first_remote(&import(None)), "fromxdg");
    std::fs::remove_file(xdg.join("rclone/rclone.conf")).unwrap();
    assert_eq!(first_remote(&import(None)), "fromdotconfig");
    std::fs::remove_file(home.join(".config/rclone/rclone.conf")).unwrap();
    assert_eq!(first_remote(&import(None)), "fromhidden");
    std::fs::remove_file(home.join(".rclone.conf")).unwrap();
    let o = import(None);
    assert_eq!(o.code, 3, "{}", o.stderr);
    assert!(
        o.stderr.contains("no rclone config file found"),
        "{}",
        o.stderr
    );
    assert!(o.stderr.contains(".rclone.conf"), "{}", o.stderr);
}

#[test]
fn encrypted_and_malformed_configs_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            "encrypted",
            "# Encrypted rclone configuration File\n\nRCLONE_ENCRYPT_V0:\nU2VjcmV0LXN0dWZm\n",
            "encrypted",
        ),
        (
            "no equals sign",
            "[nas]\ntype = sftp\nTopSecret-Line-Text\n",
            "line 3",
        ),
        (
            "key before section",
            "pass = TopSecret-Line-Text\n",
            "line 1",
        ),
        (
            "bad obscured password",
            "[nas]\ntype = ftp\nhost = h\npass = TopSecret-Line-Text!\n",
            "line 4",
        ),
        (
            "bad token",
            "[d]\ntype = dropbox\ntoken = {\"refresh_token\":\"TopSecret-Line-Text\"\n",
            "line 3",
        ),
        ("bad port", "[f]\ntype = ftp\nport = twenty-one\n", "line 3"),
    ];
    for (what, text, want) in cases {
        let conf = dir.path().join("bad.conf");
        std::fs::write(&conf, text).unwrap();
        let o = run(cs_cmd(&["config", "import-rclone"]).arg(&conf));
        assert_eq!(o.code, 1, "{what}: exit code\n{}", o.stderr);
        assert!(o.stdout.is_empty(), "{what}: {}", o.stdout);
        assert!(o.stderr.contains(want), "{what}: {}", o.stderr);
        assert_no_secret(what, &o, &["TopSecret-Line-Text".to_owned()]);
    }
}
