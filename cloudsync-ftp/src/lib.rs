//! The FTP and FTPS backend of cloudsync: a [`Remote`](cloudsync_core::Remote) on any FTP
//! server, with pooled sessions, exact listings where the server allows and atomic uploads.
//!
//! ```no_run
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> cloudsync_core::Result<()> {
//! use cloudsync_core::{bytes_stream, Remote, RemotePath, WriteMeta};
//! use cloudsync_ftp::{FtpConfig, Tls};
//!
//! let remote = FtpConfig::new("ftp.example.com")
//!     .with_user("backup")
//!     .with_password_env("FTP_PASSWORD")
//!     .with_tls(Tls::Explicit)
//!     .build()
//!     .await?;
//! let path = RemotePath::new("notes/hello.txt")?;
//! let entry = remote.write(&path, bytes_stream("hello"), WriteMeta::default()).await?;
//! assert_eq!(entry.size, 5);
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
mod lister;
mod listing;
mod mover;
mod pool;
mod reader;
mod tls;
mod writer;

pub mod parse;

pub use backend::FtpRemote;
pub use config::{FtpConfig, FtpFactory, Tls};

/// The backend's type name in configuration files.
pub const TYPE_NAME: &str = "ftp";
