//! Google Drive and Google Cloud Storage for cloudsync, as [`cloudsync_core::Remote`]s.
//!
//! ```no_run
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> cloudsync_core::Result<()> {
//! # #[cfg(feature = "gcs")] {
//! use cloudsync_core::{bytes_stream, Remote, RemotePath, WriteMeta};
//! use cloudsync_gdrive::{GcsConfig, GdriveConfig};
//!
//! // Google Drive, with a refresh token from the environment variable GDRIVE_REFRESH_TOKEN.
//! let drive = GdriveConfig::oauth("123.apps.googleusercontent.com", "GDRIVE_REFRESH_TOKEN")
//!     .build()?;
//! let path = RemotePath::new("notes/hello.txt")?;
//! drive.write(&path, bytes_stream("hello"), WriteMeta::default()).await?;
//! assert_eq!(drive.stat(&path).await?.size, 5);
//!
//! // Cloud Storage (feature `gcs`), with Application Default Credentials.
//! let gcs = GcsConfig::new("my-bucket").with_prefix("backups").build()?;
//! gcs.write(&path, bytes_stream("hello"), WriteMeta::default()).await?;
//! # }
//! # Ok(())
//! # }
//! ```
#![doc = include_str!("docs.md")]
#![deny(missing_docs)]
#![warn(unreachable_pub)]

mod auth;
mod backend;
mod config;
mod core;
mod deleter;
#[cfg(feature = "emulator")]
pub mod emulator;
#[cfg(feature = "gcs")]
mod gcs;
mod google;
mod lister;
mod mover;
mod reader;
mod writer;

#[allow(deprecated)]
pub use backend::{DriveRemote, GdriveBackend};
pub use config::GdriveFactory;
pub use config::{
    CHUNK_QUANTUM, DEFAULT_API_URL, DEFAULT_CHUNK_SIZE, DEFAULT_TOKEN_URL, DEFAULT_UPLOAD_URL,
    GdriveConfig,
};

#[cfg(feature = "gcs")]
#[allow(deprecated)]
pub use gcs::{
    DEFAULT_GCS_CHUNK_SIZE, DEFAULT_GCS_UPLOAD_CUTOFF, DEFAULT_GCS_URL, GCS_CHUNK_QUANTUM,
    GcsBackend, GcsConfig, GcsFactory, GcsRemote,
};
