//! DESIGN.md §5, "the client killed with SIGKILL mid-transfer": the `cloudsync` command
//! syncing multi-MB files to a real OpenSSH server is killed with SIGKILL while it uploads;
//! nothing partial is visible under a final name, and a rerun with a short `--leftover-age`
//! leaves the destination exactly equal to the source, with none of our temporary files.
//!
//! The upload goes through a calm [`ChaosProxy`] with a bandwidth limit, so that it lasts
//! long enough to be killed in the middle, whatever the machine's speed.

mod cli_support;
#[path = "../cloudsync-sftp/tests/common/mod.rs"]
mod sshd;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Stdio;
use std::sync::LazyLock;
use std::time::{Duration, Instant};

use cli_support::{Out, cs_cmd};
use cloudsync_core::is_temp_name;
use cloudsync_core::testkit::{ChaosProxy, ProxyOptions};

static SSHD: LazyLock<sshd::Sshd> = LazyLock::new(|| sshd::Sshd::start(false));

/// Every regular file below `root`: relative path to content.
fn files(root: &Path) -> BTreeMap<String, Vec<u8>> {
    cloudsync_core::testkit::disk_tree(root)
        .into_iter()
        .map(|(k, (body, _))| (k, body))
        .collect()
}

fn is_temp(rel: &str) -> bool {
    is_temp_name(rel.rsplit('/').next().unwrap_or(rel))
}

/// The first of our temporary files below `dir` holding at least `min` bytes, as (path
/// relative to `root`, size). The upload is running while this looks, so entries that vanish
/// between the directory read and the stat (a temporary file renamed to its final name) are
/// passed over rather than taken for errors.
fn large_temp_file(root: &Path, dir: &Path, min: u64) -> Option<(String, u64)> {
    for entry in std::fs::read_dir(dir).ok()?.flatten() {
        let path = entry.path();
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        if meta.is_dir() {
            if let Some(found) = large_temp_file(root, &path, min) {
                return Some(found);
            }
            continue;
        }
        let rel = path.strip_prefix(root).unwrap_or(&path).to_string_lossy();
        if is_temp(&rel) && meta.len() >= min {
            return Some((rel.into_owned(), meta.len()));
        }
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_mid_upload_then_rerun_is_exact_and_clean() {
    let src = tempfile::tempdir().unwrap();
    for (i, rel) in ["big1.bin", "dir/big2.bin", "dir/sub/big3.bin"]
        .iter()
        .enumerate()
    {
        let body = cloudsync_core::testkit::random_bytes(6 * 1024 * 1024 + i * 4099, i as u64 + 1);
        cloudsync_core::testkit::put_disk_file(src.path(), rel, &body, 1_700_000_000);
    }
    cloudsync_core::testkit::put_disk_file(src.path(), "small.txt", b"small", 1_700_000_000);
    let expected = files(src.path());

    // 2 MB/s per connection: the 18 MiB take several seconds.
    let target = std::net::SocketAddr::from(([127, 0, 0, 1], SSHD.port));
    let proxy = ChaosProxy::start(target, ProxyOptions::new(1).bandwidth(Some(2_000_000)))
        .await
        .unwrap();
    let known_hosts = SSHD.state.join(format!("known_hosts-{}", proxy.port()));
    std::fs::write(
        &known_hosts,
        format!(
            "[127.0.0.1]:{} {}\n",
            proxy.port(),
            sshd::key_line(&SSHD.host_key_pub)
        ),
    )
    .unwrap();
    let dest = SSHD.data.join("killed");
    std::fs::create_dir_all(&dest).unwrap();
    let url = format!(
        "sftp://root@127.0.0.1:{}{}?key_file={}&known_hosts={}&use_agent=false",
        proxy.port(),
        dest.display(),
        SSHD.client_key.display(),
        known_hosts.display()
    );
    let src_arg = src.path().display().to_string();

    // Kill it once a temporary file on the server holds at least 1 MiB.
    let mut child = cs_cmd(&["sync", &src_arg, &url])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    let mut seen = None;
    while started.elapsed() < Duration::from_secs(30) {
        if let Some(status) = child.try_wait().unwrap() {
            let out = child.wait_with_output().unwrap();
            panic!(
                "cloudsync finished ({status}) before it could be killed mid-upload:\n{}\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        if let Some(found) = large_temp_file(&dest, &dest, 1 << 20) {
            seen = Some(found);
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    child.kill().unwrap(); // SIGKILL
    let _ = child.wait();
    let (temp, len) = seen.expect("no temporary upload file reached 1 MiB within 30 s");
    println!("killed while {temp} held {len} bytes");

    // Nothing partial under a final name; our temporary files are what is left.
    let after_kill = files(&dest);
    for (rel, body) in &after_kill {
        if is_temp(rel) {
            continue;
        }
        assert_eq!(
            Some(body),
            expected.get(rel),
            "{rel} is visible but not the source's"
        );
    }
    assert!(
        after_kill.keys().any(|k| is_temp(k)),
        "the kill left no temporary file: {:?}",
        after_kill.keys().collect::<Vec<_>>()
    );

    // The rerun, once the leftovers are older than --leftover-age.
    proxy.set_bandwidth(None);
    std::thread::sleep(Duration::from_millis(1100));
    let o = cs_cmd(&["sync", &src_arg, &url, "--leftover-age", "1s"])
        .output()
        .unwrap();
    let out = Out {
        code: o.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
    };
    out.expect(0);
    let after = files(&dest);
    let temps: Vec<&String> = after.keys().filter(|k| is_temp(k)).collect();
    assert!(temps.is_empty(), "temporary files left: {temps:?}");
    assert!(
        after == expected,
        "the destination differs from the source after the rerun"
    );
}

/// The partial file of a resumable transfer below `dir` (our `.cloudsync-part-` name) and its
/// size.
fn partial_file(dir: &Path) -> Option<(String, u64)> {
    std::fs::read_dir(dir).ok()?.flatten().find_map(|e| {
        let name = e.file_name().to_string_lossy().into_owned();
        let len = e.metadata().ok()?.len();
        name.starts_with(cloudsync_core::PART_PREFIX)
            .then_some((name, len))
    })
}

/// Issue 19: the `cloudsync` command uploading a large file to OpenSSH is killed with SIGKILL
/// mid-upload; the bytes the server received stay in a partial file (nothing under the final
/// name), and the rerun sends only the rest: its JSON summary reports the kept bytes as
/// resumed, and the result is exact with no file of ours left.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_mid_upload_of_a_large_file_then_rerun_resumes() {
    let src = tempfile::tempdir().unwrap();
    let size = 12 * 1024 * 1024 + 77;
    let body = cloudsync_core::testkit::random_bytes(size, 19);
    cloudsync_core::testkit::put_disk_file(src.path(), "video.mkv", &body, 1_700_000_000);
    let expected = files(src.path());

    // 2 MB/s: the 12 MiB take about 6 s.
    let target = std::net::SocketAddr::from(([127, 0, 0, 1], SSHD.port));
    let proxy = ChaosProxy::start(target, ProxyOptions::new(2).bandwidth(Some(2_000_000)))
        .await
        .unwrap();
    let known_hosts = SSHD.state.join(format!("known_hosts-{}", proxy.port()));
    std::fs::write(
        &known_hosts,
        format!(
            "[127.0.0.1]:{} {}\n",
            proxy.port(),
            sshd::key_line(&SSHD.host_key_pub)
        ),
    )
    .unwrap();
    let dest = SSHD.data.join("killed-resume");
    std::fs::create_dir_all(&dest).unwrap();
    let url = format!(
        "sftp://root@127.0.0.1:{}{}?key_file={}&known_hosts={}&use_agent=false",
        proxy.port(),
        dest.display(),
        SSHD.client_key.display(),
        known_hosts.display()
    );
    let src_arg = src.path().display().to_string();
    let args = ["copy", &src_arg, &url, "--resume-above", "1M", "--json"];

    // Kill it at a random point between 2 and 8 MiB.
    let at = fastrand::u64(2 << 20..8 << 20);
    let mut child = cs_cmd(&args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    let mut seen = None;
    while started.elapsed() < Duration::from_secs(60) {
        if let Some(status) = child.try_wait().unwrap() {
            let out = child.wait_with_output().unwrap();
            panic!(
                "cloudsync finished ({status}) before it could be killed mid-upload:\n{}\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        if let Some((name, len)) = partial_file(&dest).filter(|(_, len)| *len >= at) {
            seen = Some((name, len));
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    child.kill().unwrap(); // SIGKILL
    let _ = child.wait();
    let (name, len) = seen.expect("the partial file did not grow within 60 s");
    // The server writes what it still received, then its session ends.
    std::thread::sleep(Duration::from_millis(1000));
    let kept = partial_file(&dest).map_or(0, |(_, n)| n);
    println!("killed while {name} held {len} bytes; it keeps {kept}");
    assert!(
        !dest.join("video.mkv").exists(),
        "a partial file under the final name"
    );
    assert!(kept >= len && kept < size as u64, "kept {kept} of {size}");

    proxy.set_bandwidth(None);
    let o = cs_cmd(&args).output().unwrap();
    let out = Out {
        code: o.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
    };
    out.expect(0);
    let summary: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let (bytes, resumed) = (
        summary["bytes"].as_u64().unwrap(),
        summary["bytes_resumed"].as_u64().unwrap(),
    );
    assert_eq!(bytes, size as u64, "{}", out.stdout);
    assert_eq!(
        resumed, kept,
        "the rerun resumed {resumed} bytes of the {kept} kept"
    );
    let sent = bytes - resumed;
    assert!(
        sent <= size as u64 - kept + (1 << 20),
        "the rerun sent {sent} bytes; {} were missing",
        size as u64 - kept
    );
    let after = files(&dest);
    let temps: Vec<&String> = after.keys().filter(|k| is_temp(k)).collect();
    assert!(temps.is_empty(), "temporary files left: {temps:?}");
    assert!(
        after == expected,
        "the destination differs from the source after the rerun"
    );
}
