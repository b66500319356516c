//! [`Entry`]: what a listing or `stat` says about one file or directory.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::hash::Hashes;
use crate::path::RemotePath;

/// Whether an entry is a file or a directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EntryKind {
    /// A regular file with content.
    File,
    /// A directory (or, on object stores, a common prefix).
    Dir,
}

/// One file or directory on a remote.
///
/// ```
/// use cloudsync_core::{Entry, RemotePath};
/// let e = Entry::file(RemotePath::new("a/b.txt")?, 42);
/// assert!(e.is_file());
/// assert_eq!(e.name(), "b.txt");
/// # Ok::<(), cloudsync_core::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// Path relative to the remote's root.
    pub path: RemotePath,
    /// File or directory.
    pub kind: EntryKind,
    /// Size in bytes (0 for directories).
    pub size: u64,
    /// Last modification time, when the backend knows one.
    #[serde(with = "time::serde::rfc3339::option", default)]
    pub modtime: Option<OffsetDateTime>,
    /// Content hashes the backend returned cheaply with the listing.
    #[serde(default, skip_serializing_if = "Hashes::is_empty")]
    pub hashes: Hashes,
    /// The backend's own identifier (Drive file id, Dropbox id), when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The server's entity tag, when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etag: Option<String>,
}

impl Entry {
    /// A file entry of `size` bytes with no modtime or hashes yet.
    pub fn file(path: RemotePath, size: u64) -> Self {
        Entry {
            path,
            kind: EntryKind::File,
            size,
            modtime: None,
            hashes: Hashes::default(),
            id: None,
            etag: None,
        }
    }

    /// A directory entry.
    pub fn dir(path: RemotePath) -> Self {
        Entry {
            kind: EntryKind::Dir,
            ..Entry::file(path, 0)
        }
    }

    /// Sets the modtime.
    pub fn with_modtime(mut self, modtime: Option<OffsetDateTime>) -> Self {
        self.modtime = modtime;
        self
    }

    /// Sets the hashes.
    pub fn with_hashes(mut self, hashes: Hashes) -> Self {
        self.hashes = hashes;
        self
    }

    /// Whether this is a file.
    pub fn is_file(&self) -> bool {
        self.kind == EntryKind::File
    }

    /// Whether this is a directory.
    pub fn is_dir(&self) -> bool {
        self.kind == EntryKind::Dir
    }

    /// The last path segment.
    pub fn name(&self) -> &str {
        self.path.name()
    }
}

/// What the source knows about a file being written, so a backend can set the modtime in the
/// same request and let the server verify a checksum.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WriteMeta {
    /// The exact size of the content, when known in advance.
    pub size: Option<u64>,
    /// The modtime to give the new file.
    pub modtime: Option<OffsetDateTime>,
    /// Hashes of the content, when known.
    pub hashes: Hashes,
    /// The new name may become durable a little after the write returns (a backend that
    /// flushes directories, such as the local one with `fsync`, then syncs each directory
    /// once for many files: at the latest when the last write running on the remote returns,
    /// so a run's names are durable when its last write is).
    /// The content is complete before the name appears either way, so a crash can only lose
    /// the name, never show a partial file. Copies and syncs set it (a lost name is copied
    /// again by the next run); `false`, the default, is for writes that must survive a crash
    /// once they return, such as a move's, whose source is deleted next.
    pub lazy_durability: bool,
}

impl WriteMeta {
    /// The metadata to copy a source entry faithfully.
    pub fn from_entry(e: &Entry) -> Self {
        WriteMeta {
            size: Some(e.size),
            modtime: e.modtime,
            hashes: e.hashes.clone(),
            lazy_durability: false,
        }
    }
}

/// Space used and available on a remote, where the backend can tell.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    /// Total space in bytes.
    pub total: Option<u64>,
    /// Bytes in use.
    pub used: Option<u64>,
    /// Bytes free.
    pub free: Option<u64>,
    /// Bytes in the trash.
    pub trashed: Option<u64>,
}
