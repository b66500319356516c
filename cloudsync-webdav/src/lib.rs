//! WebDAV for cloudsync: any RFC 4918 server (Apache mod_dav, nginx, IIS, rclone serve
//! webdav, ...) plus the Nextcloud and ownCloud extensions (modtimes, checksums, chunked
//! uploads, trash bin), as a [`cloudsync_core::Remote`].
//!
//! ```no_run
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> cloudsync_core::Result<()> {
//! use cloudsync_core::{bytes_stream, Remote, RemotePath, WriteMeta};
//! use cloudsync_webdav::{WebdavConfig, WebdavRemote};
//!
//! // The password is read from the environment variable DAV_PASSWORD.
//! let remote: WebdavRemote = WebdavConfig::new("https://dav.example.com/backups/")
//!     .with_user("me", "DAV_PASSWORD")
//!     .build()?;
//! let path = RemotePath::new("notes/hello.txt")?;
//! remote.write(&path, bytes_stream("hello"), WriteMeta::default()).await?;
//! assert_eq!(remote.stat(&path).await?.size, 5);
//! # Ok(())
//! # }
//! ```
//!
//! Register [`WebdavFactory`] and [`NextcloudFactory`] with a [`cloudsync_core::Registry`] to
//! open `webdav://`, `webdavs://` URLs and `type = "webdav"` / `type = "nextcloud"` config
//! sections.
#![doc = include_str!("docs.md")]
#![deny(missing_docs)]
#![warn(unreachable_pub)]

mod backend;
mod config;
mod core;
mod deleter;
mod lister;
mod mover;
mod multistatus;
mod ranged;
mod reader;
mod sessions;
mod writer;

#[allow(deprecated)]
pub use backend::{WebdavBackend, WebdavRemote};
pub use config::{
    DEFAULT_CHUNK_SIZE, DEFAULT_TIMEOUT_SECS, MIN_CHUNK_SIZE, NextcloudConfig, NextcloudFactory,
    Vendor, WebdavConfig, WebdavFactory,
};

/// The backend's type name in configuration files.
pub const TYPE_NAME: &str = "webdav";
