//! DESIGN.md §4 rule 8 for the command line: a password given in a URL
//! (`ftp://me:PASSWORD@host/dir`) appears in no message, no log line (at `-vvv`, TRACE) and no
//! saved report, whichever way the command fails.

mod cli_support;

use cli_support::{Out, cs_in, put};

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
    // The connection failure names the server, so hiding the password hid nothing else.
    let o = cs_in(root, &["ls", &ftp]);
    assert!(o.stderr.contains("127.0.0.1"), "{}", o.stderr);
}
