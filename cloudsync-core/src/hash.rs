//! Content hashes: the kinds backends expose, a set of known values, and a streaming hasher.

use std::fmt;

use futures::TryStreamExt as _;
use md5::Digest as _;
use serde::{Deserialize, Serialize};

use crate::error::{Error, ErrorKind, Result};
use crate::remote::ByteStream;

/// A kind of content hash a backend may know about a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum HashKind {
    /// MD5 (hex).
    Md5,
    /// SHA-1 (hex).
    Sha1,
    /// SHA-256 (hex).
    Sha256,
    /// CRC-32C (Castagnoli), 8 hex digits, big-endian.
    Crc32c,
    /// Dropbox's `content_hash`: SHA-256 of the concatenated SHA-256s of each 4 MiB block (hex).
    Dropbox,
}

impl HashKind {
    /// Every hash kind, in preference order for comparisons (strongest and cheapest first).
    pub const ALL: [HashKind; 5] = [
        HashKind::Sha256,
        HashKind::Sha1,
        HashKind::Md5,
        HashKind::Dropbox,
        HashKind::Crc32c,
    ];

    /// The lowercase name (`"md5"`, `"sha1"`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            HashKind::Md5 => "md5",
            HashKind::Sha1 => "sha1",
            HashKind::Sha256 => "sha256",
            HashKind::Crc32c => "crc32c",
            HashKind::Dropbox => "dropbox",
        }
    }
}

impl fmt::Display for HashKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The hashes known for one file: at most one lowercase-hex value per [`HashKind`].
///
/// ```
/// use cloudsync_core::{Hashes, HashKind};
/// let mut h = Hashes::default();
/// h.insert(HashKind::Md5, "D41D8CD98F00B204E9800998ECF8427E");
/// assert_eq!(h.get(HashKind::Md5), Some("d41d8cd98f00b204e9800998ecf8427e"));
/// assert_eq!(h.get(HashKind::Sha1), None);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Hashes(Vec<(HashKind, String)>);

impl Hashes {
    /// The value for `kind`, if known.
    pub fn get(&self, kind: HashKind) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| *k == kind)
            .map(|(_, v)| v.as_str())
    }

    /// Sets the value for `kind` (stored as lowercase hex).
    pub fn insert(&mut self, kind: HashKind, value: impl Into<String>) {
        let mut value: String = value.into();
        value.make_ascii_lowercase();
        match self.0.iter_mut().find(|(k, _)| *k == kind) {
            Some(slot) => slot.1 = value,
            None => self.0.push((kind, value)),
        }
    }

    /// Builder-style [`Hashes::insert`].
    pub fn with(mut self, kind: HashKind, value: impl Into<String>) -> Self {
        self.insert(kind, value);
        self
    }

    /// Whether no hash is known.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The known `(kind, value)` pairs.
    pub fn iter(&self) -> impl Iterator<Item = (HashKind, &str)> {
        self.0.iter().map(|(k, v)| (*k, v.as_str()))
    }

    /// Merges `other` in; values already present are kept.
    pub fn merge(&mut self, other: &Hashes) {
        for (k, v) in other.iter() {
            if self.get(k).is_none() {
                self.insert(k, v);
            }
        }
    }

    /// Compares the hashes both sides know. `None` when they share no kind.
    pub fn matches(&self, other: &Hashes) -> Option<bool> {
        let mut shared = false;
        for (k, v) in self.iter() {
            if let Some(o) = other.get(k) {
                shared = true;
                if o != v {
                    return Some(false);
                }
            }
        }
        shared.then_some(true)
    }
}

/// Size of a block in Dropbox's content hash.
pub const DROPBOX_BLOCK: usize = 4 * 1024 * 1024;

#[derive(Clone)]
enum One {
    Md5(md5::Md5),
    Sha1(sha1::Sha1),
    Sha256(sha2::Sha256),
    Crc32c(u32),
    Dropbox {
        overall: sha2::Sha256,
        block: sha2::Sha256,
        in_block: usize,
    },
}

/// Reads `body` to its end and returns its `kind` hash: what [`Remote::hash`] does by default,
/// for a backend that overrides `hash` (a server-side hash first) and falls back to reading.
///
/// ```
/// use cloudsync_core::{HashKind, bytes_stream, hash_stream};
/// let md5 = futures::executor::block_on(hash_stream(bytes_stream("hello world"), HashKind::Md5));
/// assert_eq!(md5.unwrap(), "5eb63bbbe01eeed093cb22bb8f5acdc3");
/// ```
///
/// [`Remote::hash`]: crate::Remote::hash
pub async fn hash_stream(mut body: ByteStream, kind: HashKind) -> Result<String> {
    let mut h = MultiHasher::new(&[kind]);
    while let Some(chunk) = body.try_next().await? {
        h.update(&chunk);
    }
    h.finish()
        .get(kind)
        .map(str::to_owned)
        .ok_or_else(|| Error::new(ErrorKind::Unexpected, "hasher produced no value"))
}

/// Computes several hash kinds in one pass over a stream of bytes.
///
/// ```
/// use cloudsync_core::{HashKind, MultiHasher};
/// let mut h = MultiHasher::new(&[HashKind::Md5, HashKind::Sha1]);
/// h.update(b"hello ");
/// h.update(b"world");
/// let hashes = h.finish();
/// assert_eq!(hashes.get(HashKind::Md5), Some("5eb63bbbe01eeed093cb22bb8f5acdc3"));
/// ```
#[derive(Clone)]
pub struct MultiHasher {
    parts: Vec<One>,
}

impl fmt::Debug for MultiHasher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MultiHasher")
            .field("kinds", &self.parts.len())
            .finish()
    }
}

impl MultiHasher {
    /// A hasher computing each of `kinds`.
    pub fn new(kinds: &[HashKind]) -> Self {
        let parts = kinds
            .iter()
            .map(|k| match k {
                HashKind::Md5 => One::Md5(md5::Md5::new()),
                HashKind::Sha1 => One::Sha1(sha1::Sha1::new()),
                HashKind::Sha256 => One::Sha256(sha2::Sha256::new()),
                HashKind::Crc32c => One::Crc32c(0),
                HashKind::Dropbox => One::Dropbox {
                    overall: sha2::Sha256::new(),
                    block: sha2::Sha256::new(),
                    in_block: 0,
                },
            })
            .collect();
        MultiHasher { parts }
    }

    /// Feeds bytes.
    pub fn update(&mut self, mut data: &[u8]) {
        for p in &mut self.parts {
            match p {
                One::Md5(h) => h.update(data),
                One::Sha1(h) => h.update(data),
                One::Sha256(h) => h.update(data),
                One::Crc32c(c) => *c = crc32c::crc32c_append(*c, data),
                One::Dropbox { .. } => {}
            }
        }
        for p in &mut self.parts {
            if let One::Dropbox {
                overall,
                block,
                in_block,
            } = p
            {
                while !data.is_empty() {
                    let take = (DROPBOX_BLOCK - *in_block).min(data.len());
                    block.update(&data[..take]);
                    *in_block += take;
                    data = &data[take..];
                    if *in_block == DROPBOX_BLOCK {
                        let done = std::mem::take(block).finalize();
                        overall.update(done);
                        *in_block = 0;
                    }
                }
            }
        }
    }

    /// The finished hashes.
    pub fn finish(self) -> Hashes {
        let mut out = Hashes::default();
        for p in self.parts {
            match p {
                One::Md5(h) => out.insert(HashKind::Md5, hex::encode(h.finalize())),
                One::Sha1(h) => out.insert(HashKind::Sha1, hex::encode(h.finalize())),
                One::Sha256(h) => out.insert(HashKind::Sha256, hex::encode(h.finalize())),
                One::Crc32c(c) => out.insert(HashKind::Crc32c, format!("{c:08x}")),
                One::Dropbox {
                    mut overall,
                    block,
                    in_block,
                } => {
                    if in_block > 0 {
                        overall.update(block.finalize());
                    }
                    out.insert(HashKind::Dropbox, hex::encode(overall.finalize()));
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_vectors() {
        let mut h = MultiHasher::new(&[
            HashKind::Md5,
            HashKind::Sha1,
            HashKind::Sha256,
            HashKind::Crc32c,
        ]);
        h.update(b"123456789");
        let out = h.finish();
        assert_eq!(
            out.get(HashKind::Md5),
            Some("25f9e794323b453885f5181f1b624d0b")
        );
        assert_eq!(
            out.get(HashKind::Sha1),
            Some("f7c3bc1d808e04732adf679965ccc34ca7ae3441")
        );
        assert_eq!(
            out.get(HashKind::Sha256),
            Some("15e2b0d3c33891ebb0f1ef609ec419420c20e320ce94c65fbc8c3312448eb225")
        );
        // The CRC-32C check value.
        assert_eq!(out.get(HashKind::Crc32c), Some("e3069283"));
    }

    #[test]
    fn dropbox_hash_of_empty_and_block_boundaries() {
        // Empty content: SHA-256 of nothing (no blocks).
        let h = MultiHasher::new(&[HashKind::Dropbox]).finish();
        assert_eq!(
            h.get(HashKind::Dropbox),
            Some("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        );
        // Feeding in odd pieces gives the same result as one piece.
        let data: Vec<u8> = (0..(DROPBOX_BLOCK * 2 + 17))
            .map(|i| (i % 251) as u8)
            .collect();
        let mut a = MultiHasher::new(&[HashKind::Dropbox]);
        a.update(&data);
        let mut b = MultiHasher::new(&[HashKind::Dropbox]);
        for chunk in data.chunks(1_000_003) {
            b.update(chunk);
        }
        let (a, b) = (a.finish(), b.finish());
        assert_eq!(a, b);
        // And it is the SHA-256 of the block SHA-256s.
        let mut overall = sha2::Sha256::new();
        for block in data.chunks(DROPBOX_BLOCK) {
            overall.update(sha2::Sha256::digest(block));
        }
        assert_eq!(
            a.get(HashKind::Dropbox),
            Some(hex::encode(overall.finalize()).as_str())
        );
    }

    #[test]
    fn matches_only_on_shared_kinds() {
        let a = Hashes::default().with(HashKind::Md5, "aa");
        let b = Hashes::default().with(HashKind::Sha1, "bb");
        assert_eq!(a.matches(&b), None);
        let c = Hashes::default().with(HashKind::Md5, "AA");
        assert_eq!(a.matches(&c), Some(true));
        let d = Hashes::default().with(HashKind::Md5, "ab");
        assert_eq!(a.matches(&d), Some(false));
    }
}
