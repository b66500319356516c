//! The local-disk backend of cloudsync: a [`Remote`](cloudsync_core::Remote) over a directory,
//! with atomic writes, nanosecond modtimes and kernel-side local copies.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> cloudsync_core::Result<()> {
//! use cloudsync_core::{bytes_stream, Remote, RemotePath, WriteMeta};
//! use cloudsync_local::LocalConfig;
//!
//! let dir = std::env::temp_dir().join(format!("cloudsync-local-doc-{}", std::process::id()));
//! let remote = LocalConfig::new(&dir).build()?;
//! let path = RemotePath::new("notes/hello.txt")?;
//! let entry = remote.write(&path, bytes_stream("hello"), WriteMeta::default()).await?;
//! assert_eq!(entry.size, 5);
//! assert_eq!(std::fs::read(dir.join("notes/hello.txt"))?, b"hello");
//! remote.purge(&RemotePath::root()).await?;
//! # Ok(())
//! # }
//! ```
//!
#![doc = include_str!("docs.md")]
#![deny(missing_docs)]
#![warn(unreachable_pub)]

mod backend;
mod config;
mod core;
mod deleter;
mod dirsync;
mod lane;
mod lister;
mod mover;
mod reader;
mod staging;
mod writer;

pub use backend::LocalRemote;
pub use config::{LocalConfig, LocalFactory};
