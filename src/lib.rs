//! rclone-class file synchronisation as a library: copy, sync, move, check, list and delete
//! files between local disk, FTP, SFTP, WebDAV, Dropbox, Google Drive and Cloud Storage.
//!
//! This facade re-exports the engine ([`cloudsync_core`]) and opens remotes of every backend
//! enabled by cargo features (`local` is on by default).
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> cloudsync::Result<()> {
//! let remote = cloudsync::open("memory://demo").await?;
//! assert_eq!(remote.describe(), "memory://demo");
//! # Ok(())
//! # }
//! ```
#![deny(missing_docs)]

use std::sync::Arc;

pub use cloudsync_core::*;

/// The HTTP service (`cloudsync serve`): a JSON API for jobs and the compare-report queue,
/// Server-Sent Events, schedules and a web page (cargo feature `serve`).
#[cfg(feature = "serve")]
pub use cloudsync_serve as serve;

/// A [`Registry`] with every backend this build enables.
pub fn registry() -> Registry {
    #[allow(unused_mut)]
    let mut r = Registry::new();
    #[cfg(feature = "local")]
    r.register(Arc::new(cloudsync_local::LocalFactory));
    #[cfg(feature = "ftp")]
    r.register(Arc::new(cloudsync_ftp::FtpFactory));
    #[cfg(feature = "sftp")]
    r.register(Arc::new(cloudsync_sftp::SftpFactory));
    #[cfg(feature = "webdav")]
    r.register(Arc::new(cloudsync_webdav::WebdavFactory));
    #[cfg(feature = "webdav")]
    r.register(Arc::new(cloudsync_webdav::NextcloudFactory));
    #[cfg(feature = "dropbox")]
    r.register(Arc::new(cloudsync_dropbox::DropboxFactory));
    #[cfg(feature = "gcs")]
    r.register(Arc::new(cloudsync_gdrive::GcsFactory));
    #[cfg(feature = "gdrive")]
    r.register(Arc::new(cloudsync_gdrive::GdriveFactory));
    r
}

/// Opens a location (`/some/dir`, `sftp://user@host/dir`, `memory://name`) with the backends of
/// this build and no config file.
pub async fn open(location: &str) -> Result<Arc<dyn Remote>> {
    registry().open(location, &Config::default()).await
}
