//! Dropbox for cloudsync: the Dropbox HTTP API v2 (OAuth2 refresh tokens, upload sessions,
//! content hashes, server-side copy and move) as a [`cloudsync_core::Remote`], plus an
//! in-process emulator of the API for offline tests (feature `emulator`).
//!
//! ```no_run
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> cloudsync_core::Result<()> {
//! use cloudsync_core::{bytes_stream, Remote, RemotePath, WriteMeta};
//! use cloudsync_dropbox::{DropboxRemote, DropboxConfig};
//!
//! // The refresh token is read from the environment variable DROPBOX_REFRESH_TOKEN.
//! let remote: DropboxRemote = DropboxConfig::new("my-app-key")
//!     .with_refresh_token_env("DROPBOX_REFRESH_TOKEN")
//!     .build()?;
//! let path = RemotePath::new("notes/hello.txt")?;
//! remote.write(&path, bytes_stream("hello"), WriteMeta::default()).await?;
//! assert_eq!(remote.stat(&path).await?.size, 5);
//! # Ok(())
//! # }
//! ```
//!
//! Register [`DropboxFactory`] with a [`cloudsync_core::Registry`] to open `dropbox://` URLs
//! and `type = "dropbox"` config sections.
#![doc = include_str!("docs.md")]
#![deny(missing_docs)]
#![warn(unreachable_pub)]

mod auth;
mod backend;
mod batcher;
mod config;
mod core;
mod deleter;
mod lister;
mod mover;
mod names;
mod reader;
mod sessions;
mod writer;

#[cfg(feature = "emulator")]
pub mod emulator;

pub use auth::{
    AUTHORIZE_URL, TokenCallback, TokenInfo, authorize_url, code_challenge_s256, exchange_code,
    pkce_pair, random_token, write_token_file,
};
#[allow(deprecated)]
pub use backend::{DropboxBackend, DropboxRemote};
pub use config::DropboxFactory;
pub use config::{
    DEFAULT_API_URL, DEFAULT_BATCH_TIMEOUT_MS, DEFAULT_CHUNK_SIZE, DEFAULT_CONTENT_URL,
    DEFAULT_LIST_LIMIT, DEFAULT_TIMEOUT_SECS, DEFAULT_TOKEN_URL, DropboxConfig, MAX_BATCH_SIZE,
    MAX_CHUNK_SIZE,
};

/// The backend's type name in configuration files.
pub const TYPE_NAME: &str = "dropbox";
