//! Issue 19 for the cloud backends: the `cloudsync` command uploading a large file to Dropbox
//! (our emulator, behind a bandwidth-limited proxy) is killed with SIGKILL mid-upload. The
//! service keeps the appends it acknowledged in the upload session and nothing appears under
//! the final name; the rerun, reading the same `--upload-state` file, continues the session:
//! its JSON summary reports the kept bytes as resumed, it appends at most the missing bytes
//! plus one chunk, and the result is exact with no session and no record left.

mod cli_support;

use std::process::Stdio;
use std::time::{Duration, Instant};

use cli_support::{Out, cs_cmd};
use cloudsync_core::testkit::{ChaosProxy, ProxyOptions};
use cloudsync_dropbox::emulator::Emulator;

const APPEND: &str = "files/upload_session/append_v2";
const FINISH: &str = "files/upload_session/finish";
const CHUNK: u64 = 1 << 20;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_mid_session_upload_then_rerun_resumes_the_session() {
    let emu = Emulator::start().expect("emulator");
    // 2 MB/s: the 12 MiB take about 6 s.
    let proxy = ChaosProxy::start(emu.addr(), ProxyOptions::new(3).bandwidth(Some(2_000_000)))
        .await
        .expect("proxy");
    let base = format!("http://127.0.0.1:{}", proxy.port());
    let work = tempfile::tempdir().expect("tmp");
    let src = work.path().join("src");
    let size = 12 * 1024 * 1024 + 77;
    let body = cloudsync_core::testkit::random_bytes(size, 23);
    cloudsync_core::testkit::put_disk_file(&src, "video.mkv", &body, 1_700_000_000);
    let config = work.path().join("cloudsync.toml");
    std::fs::write(
        &config,
        format!(
            "[remotes.box]\ntype = \"dropbox\"\napp_key = \"{}\"\nrefresh_token_env = \
             \"TEST_DROPBOX_REFRESH\"\napi_url = \"{base}\"\ncontent_url = \"{base}\"\n\
             token_url = \"{base}/oauth2/token\"\nsession_chunk_size = {CHUNK}\n",
            emu.app_key()
        ),
    )
    .expect("config");
    let state = work.path().join("uploads.json");
    let (cfg, st, src_arg) = (
        config.display().to_string(),
        state.display().to_string(),
        src.display().to_string(),
    );
    let args = [
        "--config",
        &cfg,
        "copy",
        &src_arg,
        "box:/camera",
        "--resume-above",
        "1M",
        "--upload-state",
        &st,
        "--json",
    ];
    let cmd = || {
        let mut c = cs_cmd(&args);
        c.env("TEST_DROPBOX_REFRESH", emu.refresh_token());
        c
    };

    // Kill it once the session holds a random 2..8 MiB.
    let at = fastrand::u64(2 * CHUNK..8 * CHUNK);
    let mut child = cmd()
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let started = Instant::now();
    let mut seen = None;
    while started.elapsed() < Duration::from_secs(60) {
        if let Some(status) = child.try_wait().expect("wait") {
            let out = child.wait_with_output().expect("output");
            panic!(
                "cloudsync finished ({status}) before it could be killed mid-upload:\n{}\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        if let Some(n) = emu.session_offsets().into_iter().find(|n| *n >= at) {
            seen = Some(n);
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    child.kill().expect("kill"); // SIGKILL
    let _ = child.wait();
    let seen = seen.expect("the upload session did not grow within 60 s");
    std::thread::sleep(Duration::from_millis(500));
    let kept = emu.session_offsets().into_iter().max().unwrap_or(0);
    println!("killed while the session held {seen} bytes; it keeps {kept}");
    assert!(
        emu.file("/camera/video.mkv").is_none(),
        "a partial file under the final name"
    );
    assert!(kept >= seen && kept < size as u64, "kept {kept} of {size}");
    let recorded = std::fs::read_to_string(&state).expect("the session was not recorded");
    assert!(
        recorded.contains("\"video.mkv\"") && !recorded.contains(emu.refresh_token()),
        "the record must name the upload and hold no credential: {recorded}"
    );

    proxy.set_bandwidth(None);
    let appended_before = emu.bytes_received(APPEND) + emu.bytes_received(FINISH);
    let o = cmd().output().expect("rerun");
    let out = Out {
        code: o.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
    };
    out.expect(0);
    let summary: serde_json::Value = serde_json::from_str(&out.stdout).expect("json summary");
    let resumed = summary["bytes_resumed"].as_u64().expect("bytes_resumed");
    assert_eq!(
        resumed, kept,
        "the rerun resumed {resumed} of the {kept} bytes kept"
    );
    let appended = emu.bytes_received(APPEND) + emu.bytes_received(FINISH) - appended_before;
    let missing = size as u64 - kept;
    assert!(
        appended <= missing + CHUNK,
        "the rerun appended {appended} bytes; {missing} were missing"
    );
    assert_eq!(
        emu.file("/camera/video.mkv").as_deref(),
        Some(&body[..]),
        "the uploaded file is not the source"
    );
    assert_eq!(emu.open_sessions(), 0, "an upload session was left open");
    let records = std::fs::read_to_string(&state).unwrap_or_default();
    assert!(
        !records.contains("\"video.mkv\""),
        "the finished upload's record was left in {st}: {records}"
    );
}
