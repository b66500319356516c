//! DESIGN.md §4 rule 8 for the command line: a password given in a URL
//! (`ftp://me:PASSWORD@host/dir`) appears in no message, no log line (at `-vvv`, TRACE) and no
//! saved report, whichever way the command fails. (FTP and SFTP refuse such a URL at once;
//! memory:// keeps it, hidden, in saved reports.)

mod cli_support;

use cli_support::{Out, cs_cmd, cs_in, put};

const PASSWORD: &str = "Cli-Pw-4242";

/// A port on 127.0.0.1 nothing listens on (bound, then released).
fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

fn assert_clean(what: &str, o: &Out) {
    for text in [&o.stdout, &o.stderr] {
        assert!(
            !text.contains(PASSWORD),
            "{what}: the password leaked\nstdout:\n{}\nstderr:\n{}",
            o.stdout,
            o.stderr
        );
    }
}

#[test]
fn url_passwords_never_reach_messages_logs_or_reports() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    put(root, "src/a.txt", "alpha", 0);
    let port = closed_port();
    let ftp = format!("ftp://me:{PASSWORD}@127.0.0.1:{port}/data");
    let mem = format!("memory://me:{PASSWORD}@cam");
    let drop = format!("{ftp}/drop");
    let runs: Vec<(&str, Vec<String>)> = vec![
        ("ls", vec!["ls".into(), ftp.clone()]),
        ("copy", vec!["copy".into(), "src".into(), ftp.clone()]),
        (
            "sync --backup-dir",
            vec![
                "sync".into(),
                "src".into(),
                ftp.clone(),
                "--backup-dir".into(),
                format!("ftp://me:{PASSWORD}@127.0.0.1:{port}/elsewhere"),
            ],
        ),
        (
            "cat root",
            vec![
                "cat".into(),
                format!("ftp://me:{PASSWORD}@127.0.0.1:{port}"),
            ],
        ),
        ("cat", vec!["cat".into(), format!("{ftp}/a.txt")]),
        (
            "invalid URL",
            vec!["ls".into(), format!("ftp://me:{PASSWORD}@[broken/x")],
        ),
        (
            "bad port",
            vec![
                "ls".into(),
                format!("ftp://me:{PASSWORD}@127.0.0.1:99999/x"),
            ],
        ),
        (
            "ingest",
            vec![
                "ingest".into(),
                drop.clone(),
                "dst".into(),
                "--archive-dir".into(),
                drop.clone(),
            ],
        ),
        ("check ftp", vec!["check".into(), "src".into(), ftp.clone()]),
        (
            "check --save-report",
            vec![
                "check".into(),
                "src".into(),
                mem.clone(),
                "--save-report".into(),
                "r.json".into(),
            ],
        ),
        (
            "report show",
            vec!["report".into(), "show".into(), "r.json".into()],
        ),
        (
            "report show --json",
            vec![
                "--json".into(),
                "report".into(),
                "show".into(),
                "r.json".into(),
            ],
        ),
        (
            "report resync",
            vec!["report".into(), "resync".into(), "r.json".into()],
        ),
    ];
    for (what, args) in &runs {
        for verbosity in [None, Some("-vvv")] {
            let mut full: Vec<&str> = verbosity.into_iter().collect();
            full.extend(args.iter().map(String::as_str));
            let o = cs_in(root, &full);
            if !what.starts_with("report") {
                assert_ne!(o.code, 0, "{what} should fail: {o:?}");
            }
            assert_clean(what, &o);
        }
    }
    // The saved report keeps the location, with the password hidden.
    let saved = std::fs::read_to_string(root.join("r.json")).expect("report saved");
    assert!(!saved.contains(PASSWORD), "{saved}");
    assert!(saved.contains("memory://me:***@cam"), "{saved}");
    // A password in an FTP URL is refused, and the refusal says what to do instead.
    let o = cs_in(root, &["ls", &ftp]);
    assert!(
        o.stderr.contains("a password in the URL is not accepted")
            && o.stderr.contains("password_env"),
        "{}",
        o.stderr
    );
    // The same password from the environment reaches the login attempt, whose failure names
    // the server (hiding the password hid nothing else) and never the password.
    let by_env = format!("ftp://me@127.0.0.1:{port}/data?password_env=CS_TEST_FTP_PASSWORD");
    for verbosity in [None, Some("-vvv")] {
        let mut args: Vec<&str> = verbosity.into_iter().collect();
        args.extend(["ls", by_env.as_str()]);
        let o = cs_cmd(&args)
            .current_dir(root)
            .env("CS_TEST_FTP_PASSWORD", PASSWORD)
            .output()
            .unwrap();
        let o = Out {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        };
        assert_ne!(o.code, 0, "nothing listens on {port}: {o:?}");
        assert_clean("password from the environment", &o);
        assert!(o.stderr.contains("127.0.0.1"), "{}", o.stderr);
    }
}
