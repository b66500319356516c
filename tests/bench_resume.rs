//! Benchmark of issue 19 (resumable transfers), not run by `cargo test` (ignored): a 1 GiB
//! file uploaded to a local OpenSSH server, cut at 50 % by SIGKILL, then
//!
//! - the resumed run of `cloudsync copy` (sends the missing half),
//! - a full re-send by `cloudsync copy --resume-above off` to a fresh directory,
//! - `rclone copy` to a fresh directory (rclone re-sends a cut upload from byte 0).
//!
//! Run it with the release build (`scripts/bench.sh --resume` does both):
//!
//! ```text
//! cargo build --release -p cloudsync --all-features --example cloudsync
//! cargo test --release -p cloudsync --all-features --test bench_resume -- --ignored --nocapture
//! ```
//!
//! `BENCH_RESUME_MIB` changes the size (default 1024).

mod cli_support;
#[path = "../cloudsync-sftp/tests/common/mod.rs"]
mod sshd;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::LazyLock;
use std::time::{Duration, Instant};

use cli_support::cs_cmd;

static SSHD: LazyLock<sshd::Sshd> = LazyLock::new(|| sshd::Sshd::start(false));

/// The size of our partial file in `dir`, if any.
fn partial_size(dir: &Path) -> Option<u64> {
    std::fs::read_dir(dir).ok()?.flatten().find_map(|e| {
        let name = e.file_name().to_string_lossy().into_owned();
        name.starts_with(cloudsync_core::PART_PREFIX)
            .then(|| e.metadata().ok().map(|m| m.len()))
            .flatten()
    })
}

fn url(dir: &Path) -> String {
    format!(
        "sftp://root@127.0.0.1:{}{}?key_file={}&known_hosts={}&use_agent=false",
        SSHD.port,
        dir.display(),
        SSHD.client_key.display(),
        SSHD.known_hosts.display()
    )
}

/// Runs `cmd` to completion; its wall time.
fn timed(mut cmd: Command, what: &str) -> Duration {
    let t = Instant::now();
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{what} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    t.elapsed()
}

#[test]
#[ignore = "benchmark: run with --ignored --nocapture (see the module docs)"]
fn resumed_upload_vs_full_resend_vs_rclone() {
    let mib: u64 = std::env::var("BENCH_RESUME_MIB")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1024);
    let size = mib << 20;
    let src = tempfile::tempdir().unwrap();
    {
        let mut f = std::fs::File::create(src.path().join("big.bin")).unwrap();
        let mut rng = fastrand::Rng::with_seed(19);
        let mut block = vec![0u8; 16 << 20];
        let mut left = size;
        while left > 0 {
            rng.fill(&mut block);
            let n = left.min(block.len() as u64) as usize;
            f.write_all(&block[..n]).unwrap();
            left -= n as u64;
        }
    }
    let src_arg = src.path().display().to_string();
    let stamp = fastrand::u32(..);
    let dir = |name: &str| {
        let d = SSHD.data.join(format!("bench-{stamp:08x}-{name}"));
        std::fs::create_dir_all(&d).unwrap();
        d
    };

    // Cut at 50 %: SIGKILL once the partial file holds half.
    let resumed_dir = dir("resumed");
    let mut child = cs_cmd(&["copy", &src_arg, &url(&resumed_dir)])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while partial_size(&resumed_dir).is_none_or(|n| n < size / 2) {
        assert!(
            child.try_wait().unwrap().is_none(),
            "finished before the cut"
        );
        assert!(start.elapsed() < Duration::from_secs(600), "no progress");
        std::thread::sleep(Duration::from_millis(2));
    }
    child.kill().unwrap();
    let _ = child.wait();
    let to_half = start.elapsed();
    std::thread::sleep(Duration::from_millis(500));
    let kept = partial_size(&resumed_dir).unwrap_or(0);

    let resumed = timed(
        cs_cmd(&["copy", &src_arg, &url(&resumed_dir)]),
        "the resumed run",
    );
    let full_dir = dir("full");
    let full = timed(
        cs_cmd(&["copy", &src_arg, &url(&full_dir), "--resume-above", "off"]),
        "the full re-send",
    );
    let rclone_dir = dir("rclone");
    let mut rclone = Command::new("rclone");
    rclone.args([
        "copy",
        &src_arg,
        &format!(
            ":sftp,host=127.0.0.1,port={},user=root,key_file={},known_hosts_file={}:{}",
            SSHD.port,
            SSHD.client_key.display(),
            SSHD.known_hosts.display(),
            rclone_dir.display()
        ),
        "--config",
        "/dev/null",
    ]);
    let rclone = timed(rclone, "rclone copy");
    for d in [&resumed_dir, &full_dir, &rclone_dir] {
        assert_eq!(
            std::fs::metadata(d.join("big.bin")).unwrap().len(),
            size,
            "{}",
            d.display()
        );
    }
    let secs = |d: Duration| d.as_secs_f64();
    println!(
        "\n{mib} MiB to OpenSSH (127.0.0.1), cut by SIGKILL at {:.0} % ({kept} bytes kept; the \
         cut run took {:.2} s)\n",
        kept as f64 * 100.0 / size as f64,
        secs(to_half)
    );
    println!("| run | wall time (s) | vs full re-send |");
    println!("|---|---|---|");
    for (name, d) in [
        ("cloudsync, resumed after the cut", resumed),
        ("cloudsync, full re-send (--resume-above off)", full),
        ("rclone copy (re-sends from 0)", rclone),
    ] {
        println!("| {name} | {:.2} | {:.2}x |", secs(d), secs(d) / secs(full));
    }
}
