//! Runs one command and measures wall time and peak memory.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The outcome of one timed run.
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    pub wall: Duration,
    /// Peak resident set size in KiB (largest process of the run).
    pub peak_kib: Option<u64>,
    /// CPU time in user mode and in the kernel, from `/usr/bin/time` (the process and the
    /// children it waited for); `None` without it.
    #[allow(dead_code)] // the network table (benches/net, which shares this file) shows none
    pub cpu: Option<(Duration, Duration)>,
}

/// Runs `cmd` (output discarded) once every dirty page is written out, measuring wall time
/// around the whole process and peak RSS
/// through `/usr/bin/time` when installed (it reports the maximum over the process and the
/// children it waited for), else by polling `VmHWM` of the direct child.
pub fn run(mut cmd: Command, scratch: &Path) -> std::io::Result<Sample> {
    let time_bin = Path::new("/usr/bin/time");
    let report = scratch.join(format!("time-{}.txt", crate::tree::unique()));
    let mut cmd = if time_bin.exists() {
        let mut wrapped = Command::new(time_bin);
        wrapped.arg("-f").arg("%M %U %S").arg("-o").arg(&report);
        wrapped.arg(cmd.get_program()).args(cmd.get_args());
        for (key, value) in cmd.get_envs() {
            match value {
                Some(v) => wrapped.env(key, v),
                None => wrapped.env_remove(key),
            };
        }
        wrapped
    } else {
        std::mem::replace(&mut cmd, Command::new("true"))
    };
    cmd.stdout(Stdio::null()).stderr(Stdio::piped());
    flush_page_cache();
    let start = Instant::now();
    let mut child = cmd.spawn()?;
    let pid = child.id();
    let mut hwm = None;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if !time_bin.exists() {
            hwm = read_hwm(pid).or(hwm);
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let wall = start.elapsed();
    if !status.success() {
        let mut err = String::new();
        if let Some(mut e) = child.stderr.take() {
            use std::io::Read;
            let _ = e.read_to_string(&mut err);
        }
        return Err(std::io::Error::other(format!(
            "{:?} failed ({status}): {err}",
            cmd.get_args().collect::<Vec<_>>()
        )));
    }
    let (peak_kib, cpu) = if time_bin.exists() {
        let text = std::fs::read_to_string(&report).unwrap_or_default();
        let _ = std::fs::remove_file(&report);
        parse_time_report(&text)
    } else {
        (hwm, None)
    };
    Ok(Sample {
        wall,
        peak_kib,
        cpu,
    })
}

/// The last line of a `/usr/bin/time -f "%M %U %S"` report: peak KiB, user and system
/// seconds.
fn parse_time_report(text: &str) -> (Option<u64>, Option<(Duration, Duration)>) {
    let Some(line) = text.lines().last() else {
        return (None, None);
    };
    let mut fields = line.split_whitespace();
    let peak = fields.next().and_then(|f| f.parse().ok());
    let secs = |f: Option<&str>| {
        f.and_then(|f| f.parse::<f64>().ok())
            .filter(|s| s.is_finite() && *s >= 0.0)
            .map(Duration::from_secs_f64)
    };
    let user = secs(fields.next());
    let sys = secs(fields.next());
    (peak, user.zip(sys))
}

fn read_hwm(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Writes out every dirty page on the machine (`sync`), so that a timed run starts with no
/// writes of an earlier run pending: a tool that flushes its files (cloudsync's durable
/// default) could otherwise wait behind data that a tool before it left unwritten.
fn flush_page_cache() {
    if let Err(e) = Command::new("sync").status() {
        eprintln!("sync before a timed run failed: {e}");
    }
}

/// Touches and frees `gib` GiB so the host has handed the memory back before timed runs
/// (freed memory costs 1-4 s per GiB to fault in again on these machines).
pub fn warm_memory(gib: u64) {
    if gib == 0 {
        return;
    }
    let available = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find(|l| l.starts_with("MemAvailable:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        })
        .unwrap_or(0)
        * 1024;
    let bytes = (gib << 30).min(available / 2);
    let start = Instant::now();
    let mut v: Vec<u8> = Vec::with_capacity(bytes as usize);
    // One write per page is enough to fault it in.
    let page = 4096;
    fill_pages(&mut v, bytes as usize, page);
    drop(v);
    eprintln!(
        "warmed {:.1} GiB of memory in {:.1}s",
        bytes as f64 / (1u64 << 30) as f64,
        start.elapsed().as_secs_f64()
    );
}

fn fill_pages(v: &mut Vec<u8>, len: usize, page: usize) {
    v.resize(len, 0);
    for i in (0..len).step_by(page) {
        v[i] = 1;
    }
    std::hint::black_box(&v);
}
