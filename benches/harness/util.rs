//! Small helpers both benchmark programs use: sizes and names for the tables, where the build
//! put things, whether a program is installed.

use std::path::{Path, PathBuf};

/// A byte count as KiB, MiB or GiB with one decimal.
pub fn human(bytes: u64) -> String {
    let b = bytes as f64;
    if b >= (1u64 << 30) as f64 {
        format!("{:.1} GiB", b / (1u64 << 30) as f64)
    } else if b >= (1u64 << 20) as f64 {
        format!("{:.1} MiB", b / (1u64 << 20) as f64)
    } else {
        format!("{:.1} KiB", b / 1024.0)
    }
}

/// A tool name as a file name (letters and digits, `_` for the rest).
pub fn slug(name: &str) -> String {
    name.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect()
}

/// The cargo target directory this program was built in (`target/release/deps/<name>-*`).
pub fn target_dir() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|p| Some(p.parent()?.parent()?.parent()?.to_owned()))
        .unwrap_or_else(|| PathBuf::from("target"))
}

/// Whether `program` can be found on `PATH` (or is a path that exists).
pub fn available(program: &str) -> bool {
    if program.contains('/') {
        return Path::new(program).exists();
    }
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|d| d.join(program).is_file()))
}

/// The working directory (`--work`, else `<target>/bench-work`), with its `dst` folder made.
pub fn work_dir(given: Option<&Path>) -> Result<PathBuf, String> {
    let work = given.map_or_else(|| target_dir().join("bench-work"), Path::to_path_buf);
    std::fs::create_dir_all(work.join("dst")).map_err(|e| format!("{}: {e}", work.display()))?;
    Ok(work)
}

/// Our CLI (`--cloudsync`, else the release build next to this program); `build` says how to
/// make it when it is missing.
pub fn our_cli(given: Option<&Path>, build: &str) -> Result<PathBuf, String> {
    let ours = given.map_or_else(
        || target_dir().join("release/examples/cloudsync"),
        Path::to_path_buf,
    );
    if !ours.exists() {
        return Err(format!(
            "{} is missing: build it with {build}",
            ours.display()
        ));
    }
    Ok(ours)
}
