//! The sftp backend of cloudsync (not implemented yet: this crate is a placeholder so the
//! workspace has its final shape).
#![deny(missing_docs)]

/// The backend's type name in configuration files.
pub const TYPE_NAME: &str = "sftp";
