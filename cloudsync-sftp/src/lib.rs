//! The SFTP backend of cloudsync: a directory on any SSH server as a [`Remote`], in pure Rust
//! (no `ssh` binary, no OpenSSL), with host-key checking, pipelined transfers and atomic
//! uploads.
//!
//! ```no_run
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> cloudsync_core::Result<()> {
//! use cloudsync_core::{Remote, RemotePath, WriteMeta, bytes_stream};
//! use cloudsync_sftp::{SftpConfig, SftpRemote};
//!
//! let config = SftpConfig::new("nas.local", "backup")
//!     .with_key_file("~/.ssh/id_ed25519")
//!     .with_root("backups");
//! let remote: SftpRemote = config.build().await?;
//! let path = RemotePath::new("notes/today.txt")?;
//! remote.write(&path, bytes_stream("hello"), WriteMeta::default()).await?;
//! assert_eq!(remote.stat(&path).await?.size, 5);
//! # Ok(())
//! # }
//! ```
//!
//! Through the registry it is the `sftp` type and the `sftp://user@host:port/path` scheme
//! (see [`SftpFactory`]).
//!
#![doc = include_str!("docs.md")]
#![deny(missing_docs)]
#![warn(unreachable_pub)]

mod backend;
mod config;
mod core;
mod deleter;
mod exec;
mod known_hosts;
mod lister;
mod mover;
mod pool;
mod reader;
mod ssh;
mod writer;

pub use backend::SftpRemote;
pub use config::{DEFAULT_CONNECTIONS, DEFAULT_TIMEOUT_SECS, SftpConfig, SftpFactory};

#[doc(no_inline)]
pub use cloudsync_core::Remote;

/// The backend's type name in configuration files.
pub const TYPE_NAME: &str = "sftp";
