//! Google Cloud Storage (type `gcs`, URLs `gs://bucket/prefix`) over the JSON API.
//!
//! - Listings are `objects.list` pages (prefix, `delimiter=/`), streamed one page at a time;
//!   entries carry the size, MD5 and CRC32C (hex) and the modtime.
//! - Modtimes live in custom metadata as rclone and gsutil keep them: `mtime` (RFC 3339 with
//!   nanoseconds) and `goog-reserved-file-mtime` (seconds). Both are read (`mtime` first,
//!   then the upload time `updated`), both are written on upload and by `set_modtime` (a
//!   metadata PATCH).
//! - Uploads are one multipart request up to `upload_cutoff`, else a resumable session in
//!   `chunk_size` chunks, resumed from the committed offset after a transient failure. An
//!   object appears whole; what the service reports for it is compared with what was sent.
//! - Copies are `objects.rewrite` (repeated until done), renames a rewrite and a delete.
//! - Directories are implicit (a prefix with objects below it), as in rclone: `mkdir` does
//!   nothing, empty directories do not exist.
//! - Auth: bearer tokens from a service-account key, a gcloud user login or the metadata server
//!   ([`crate::auth`], shared with Drive), refreshed once on 401 by core's
//!   `send_authorized`; or none (`anonymous`).
//!
//! The modules follow the backend-crate layout: [`config`] (settings, `build`, the factory),
//! [`backend`] (capabilities and the `Remote`), [`core`] (wire calls, `parse_error`),
//! [`reader`], [`writer`], [`lister`], [`deleter`], [`mover`].

mod backend;
mod config;
mod core;
mod deleter;
mod lister;
mod mover;
mod reader;
mod writer;

#[allow(deprecated)]
pub use backend::{GcsBackend, GcsRemote};
pub use config::GcsFactory;
pub use config::{
    DEFAULT_GCS_CHUNK_SIZE, DEFAULT_GCS_UPLOAD_CUTOFF, DEFAULT_GCS_URL, GCS_CHUNK_QUANTUM,
    GcsConfig,
};
