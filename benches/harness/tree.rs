//! Reproducible source trees: the same parameters always give the same names, sizes and bytes.

use std::io::Write;
use std::path::{Path, PathBuf};

/// One tree to generate.
#[derive(Debug, Clone)]
pub struct TreeSpec {
    /// Short name used in the table and the directory name.
    pub name: &'static str,
    /// Number of files.
    pub files: usize,
    /// Size of each file in bytes (each file gets `size ± size/2`, deterministic).
    pub size: u64,
    /// Files per directory.
    pub per_dir: usize,
}

impl TreeSpec {
    /// The directory holding this tree below `work`.
    pub fn dir(&self, work: &Path) -> PathBuf {
        work.join("src").join(format!(
            "{}-{}x{}-{}",
            self.name, self.files, self.size, self.per_dir
        ))
    }

    /// Total bytes of the tree.
    pub fn total_bytes(&self) -> u64 {
        (0..self.files).map(|i| self.file_size(i)).sum()
    }

    fn file_size(&self, i: usize) -> u64 {
        if self.size < 2 {
            return self.size;
        }
        let half = self.size / 2;
        half + splitmix(i as u64) % (self.size + 1)
    }

    /// Checks that `dir` holds exactly this tree's number of files and bytes (a tool that
    /// failed at once would otherwise look fast).
    pub fn check(&self, dir: &Path) -> Result<(), String> {
        fn walk(p: &Path, files: &mut usize, bytes: &mut u64) -> std::io::Result<()> {
            for e in std::fs::read_dir(p)? {
                let e = e?;
                let m = e.metadata()?;
                if m.is_dir() {
                    walk(&e.path(), files, bytes)?;
                } else {
                    *files += 1;
                    *bytes += m.len();
                }
            }
            Ok(())
        }
        let (mut files, mut bytes) = (0, 0);
        walk(dir, &mut files, &mut bytes).map_err(|e| format!("{}: {e}", dir.display()))?;
        if (files, bytes) != (self.files, self.total_bytes()) {
            return Err(format!(
                "{} has {files} files / {bytes} bytes, expected {} / {}",
                dir.display(),
                self.files,
                self.total_bytes()
            ));
        }
        Ok(())
    }

    /// Creates the tree unless a complete one is already there (marked by `.complete`).
    pub fn ensure(&self, work: &Path) -> std::io::Result<PathBuf> {
        let dir = self.dir(work);
        let marker = work.join("src").join(format!(
            "{}.complete",
            dir.file_name().unwrap_or_default().to_string_lossy()
        ));
        if marker.exists() {
            return Ok(dir);
        }
        if dir.exists() {
            // An interrupted generation: move it aside rather than deleting many files now.
            let aside = work.join("trash").join(format!("partial-{}", unique()));
            std::fs::create_dir_all(aside.parent().unwrap_or(work))?;
            std::fs::rename(&dir, aside)?;
        }
        eprintln!(
            "generating {} ({} files, {:.1} MiB) in {}",
            self.name,
            self.files,
            self.total_bytes() as f64 / 1048576.0,
            dir.display()
        );
        let mut buf = Vec::new();
        for i in 0..self.files {
            let sub = dir.join(format!("d{:04}", i / self.per_dir.max(1)));
            if i % self.per_dir.max(1) == 0 {
                std::fs::create_dir_all(&sub)?;
            }
            let size = self.file_size(i);
            let mut f = std::fs::File::create(sub.join(format!("f{i:07}.dat")))?;
            let mut state = splitmix(i as u64 ^ 0x5eed);
            let mut left = size;
            while left > 0 {
                let n = left.min(1 << 20) as usize;
                buf.clear();
                while buf.len() < n {
                    state = splitmix(state);
                    buf.extend_from_slice(&state.to_le_bytes());
                }
                buf.truncate(n);
                f.write_all(&buf)?;
                left -= n as u64;
            }
        }
        std::fs::write(&marker, b"")?;
        Ok(dir)
    }
}

/// A 64-bit mixing function (SplitMix64): cheap, deterministic pseudo-random numbers.
fn splitmix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A name unique within this machine and run.
pub fn unique() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    format!(
        "{}-{t}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}
