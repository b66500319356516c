//! [`DeleteQueue`]: the destination files a sync deletes after every transfer succeeded.
//!
//! Deletions are decided during the march but run last, and only when the run recorded no
//! error. Two things make the queue more than a `Vec`:
//! - a directory walked again by a retry pass is decided again, so whatever an earlier pass
//!   queued below it is void ([`DeleteQueue::void_below`]): a stale decision never runs;
//! - a tree of ten million files may queue millions of deletions, so past a bound the queue
//!   spills to a temporary file (JSON lines) and memory stays flat.

use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::PathBuf;

use crate::entry::Entry;
use crate::error::{Error, Result};
use crate::path::RemotePath;

/// Entries kept in memory before the queue spills to disk.
const SPILL_AT: usize = 50_000;

#[derive(serde::Serialize, serde::Deserialize)]
struct Queued {
    pass: u32,
    entry: Entry,
}

/// Deletions waiting for the end of the run.
pub(crate) struct DeleteQueue {
    pass: u32,
    mem: Vec<Queued>,
    spill: Option<Spill>,
    /// Entries queued in passes up to `.0` at or below `.1` are void.
    voided: Vec<(u32, RemotePath)>,
    spill_at: usize,
}

struct Spill {
    path: PathBuf,
    out: BufWriter<File>,
}

impl Drop for Spill {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

impl DeleteQueue {
    pub(crate) fn new() -> Self {
        DeleteQueue {
            pass: 0,
            mem: Vec::new(),
            spill: None,
            voided: Vec::new(),
            spill_at: SPILL_AT,
        }
    }

    #[cfg(test)]
    fn with_spill_at(mut self, n: usize) -> Self {
        self.spill_at = n.max(1);
        self
    }

    /// Whether nothing was ever queued.
    pub(crate) fn is_empty(&self) -> bool {
        self.mem.is_empty() && self.spill.is_none()
    }

    /// Starts a new pass: what it queues is not voided by what was voided before.
    pub(crate) fn next_pass(&mut self) {
        self.pass += 1;
    }

    /// Queues the deletion of `entry`.
    pub(crate) fn push(&mut self, entry: Entry) -> Result<()> {
        self.mem.push(Queued {
            pass: self.pass,
            entry,
        });
        if self.mem.len() >= self.spill_at {
            self.flush()?;
        }
        Ok(())
    }

    /// Voids every deletion queued so far at or below `dir` (it is about to be decided again).
    pub(crate) fn void_below(&mut self, dir: &RemotePath) {
        self.voided.push((self.pass, dir.clone()));
    }

    fn flush(&mut self) -> Result<()> {
        if self.spill.is_none() {
            let path = std::env::temp_dir().join(format!(
                "cloudsync-deletes-{}-{:016x}.jsonl",
                std::process::id(),
                fastrand::u64(..)
            ));
            let file = File::options()
                .write(true)
                .create_new(true)
                .open(&path)
                .map_err(|e| Error::from(e).with_path(path.display()))?;
            self.spill = Some(Spill {
                path,
                out: BufWriter::new(file),
            });
        }
        let Some(spill) = self.spill.as_mut() else {
            return Ok(());
        };
        for q in self.mem.drain(..) {
            serde_json::to_writer(&mut spill.out, &q)
                .map_err(|e| Error::new(crate::ErrorKind::Io, e.to_string()))?;
            spill.out.write_all(b"\n").map_err(Error::from)?;
        }
        Ok(())
    }

    fn live(voided: &[(u32, RemotePath)], q: &Queued) -> bool {
        !voided
            .iter()
            .any(|(pass, dir)| q.pass <= *pass && q.entry.path.starts_with(dir))
    }

    /// Every deletion still valid, in the order queued. Reading a spilled queue back can fail
    /// (the temporary file is gone); that is an error, never a shorter list of deletions.
    pub(crate) fn drain(mut self) -> Result<impl Iterator<Item = Result<Entry>>> {
        let voided = std::mem::take(&mut self.voided);
        let mem = std::mem::take(&mut self.mem);
        let spilled: Box<dyn Iterator<Item = Result<Queued>> + Send> = match self.spill.take() {
            None => Box::new(std::iter::empty()),
            Some(mut spill) => {
                spill.out.flush().map_err(Error::from)?;
                let file = File::open(&spill.path).map_err(Error::from)?;
                let lines = BufReader::new(file).lines();
                // `spill` moves into the iterator so the file is removed when it is dropped.
                Box::new(lines.map(move |line| {
                    let _keep = &spill;
                    let line = line.map_err(Error::from)?;
                    serde_json::from_str::<Queued>(&line)
                        .map_err(|e| Error::new(crate::ErrorKind::Io, e.to_string()))
                }))
            }
        };
        let v2 = voided.clone();
        Ok(spilled
            .filter(move |r| r.as_ref().map_or(true, |q| Self::live(&voided, q)))
            .chain(mem.into_iter().filter(move |q| Self::live(&v2, q)).map(Ok))
            .map(|r| r.map(|q| q.entry)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(p: &str) -> Entry {
        Entry::file(RemotePath::new(p).unwrap(), 1)
    }

    fn drained(q: DeleteQueue) -> Vec<String> {
        q.drain()
            .unwrap()
            .map(|r| r.unwrap().path.to_string())
            .collect()
    }

    #[test]
    fn voiding_drops_earlier_passes_below_a_directory_only() {
        let mut q = DeleteQueue::new();
        q.push(file("a/1")).unwrap();
        q.push(file("ab/2")).unwrap();
        q.void_below(&RemotePath::new("a").unwrap());
        q.next_pass();
        q.push(file("a/3")).unwrap();
        assert_eq!(drained(q), ["ab/2", "a/3"]);
    }

    #[test]
    fn spills_to_disk_and_cleans_up() {
        let mut q = DeleteQueue::new().with_spill_at(3);
        for i in 0..10 {
            q.push(file(&format!("d/{i}"))).unwrap();
        }
        let path = q.spill.as_ref().map(|s| s.path.clone()).unwrap();
        assert!(path.exists());
        assert!(q.mem.len() < 3, "memory stays bounded");
        q.void_below(&RemotePath::new("d/5").unwrap());
        let got = drained(q);
        assert_eq!(got.len(), 9);
        assert!(!got.contains(&"d/5".to_owned()));
        assert!(!path.exists(), "the spill file is removed");
    }
}
