//! Google Drive and Google Cloud Storage for cloudsync, as [`cloudsync_core::Remote`]s.
//!
//! ```no_run
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> cloudsync_core::Result<()> {
//! # #[cfg(feature = "gcs")] {
//! use cloudsync_core::{bytes_stream, Remote, RemotePath, WriteMeta};
//! use cloudsync_gdrive::GcsConfig;
//!
//! let remote = GcsConfig::new("my-bucket").with_prefix("backups").build()?;
//! let path = RemotePath::new("notes/hello.txt")?;
//! remote.write(&path, bytes_stream("hello"), WriteMeta::default()).await?;
//! assert_eq!(remote.stat(&path).await?.size, 5);
//! # }
//! # Ok(())
//! # }
//! ```
#![doc = include_str!("docs.md")]
#![deny(missing_docs)]
#![warn(unreachable_pub)]

#[cfg(feature = "gcs")]
mod gcs;

#[cfg(feature = "gcs")]
pub use gcs::{GcsConfig, GcsFactory};
