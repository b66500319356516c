//! The embeddable engine of cloudsync: one small [`Remote`] trait that every storage backend
//! implements, and the operations (copy, sync, move, check, list, delete, purge, cleanup) that
//! run between any two remotes.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> cloudsync_core::Result<()> {
//! use cloudsync_core::{bytes_stream, memory, Remote, RemotePath, WriteMeta};
//!
//! let remote = memory();
//! let path = RemotePath::new("greeting.txt")?;
//! remote.write(&path, bytes_stream("hello"), WriteMeta::default()).await?;
//! assert_eq!(remote.stat(&path).await?.size, 5);
//! # Ok(())
//! # }
//! ```
#![deny(missing_docs)]
#![warn(unreachable_pub)]

mod bwlimit;
mod config;
mod entry;
mod error;
mod exec;
mod filter;
mod hash;
#[cfg(feature = "http")]
pub mod http;
pub mod ingest;
mod layers;
mod location;
mod lock;
mod objstore;
pub mod ops;
mod paginate;
mod path;
pub mod plan;
mod prefix;
pub mod queue;
mod remote;
mod report;
pub mod resume_state;
mod retry;
mod secret;
mod temp;
mod timeout;

#[cfg(any(test, feature = "testkit"))]
pub mod testkit;

pub use bwlimit::{
    BandwidthLimited, BandwidthLimiter, BwLimit, BwTimetable, SystemClock, WallClock,
};
/// Importing rclone config files (feature `rclone`).
#[cfg(feature = "rclone")]
pub use config::rclone;
pub use config::{
    BackendFactory, Config, QueryKind, Registry, RemoteSpec, parse_config, query_flag,
    query_number, query_to_config,
};
pub use entry::{Entry, EntryKind, Usage, WriteMeta};
pub use error::{Error, ErrorKind, Result, cut_text};
pub use filter::{
    AgeLimit, FilterBuilder, FilterSet, FilterSpec, RuleKind, parse_age, parse_duration, parse_size,
};
pub use hash::{DROPBOX_BLOCK, HashKind, Hashes, MultiHasher, hash_stream};
pub use layers::{ErrorContext, LayerOptions, Limited, MAX_RETRY_AFTER, Retrying, Throttled};
pub use location::Location;
pub use objstore::{ObjectStoreRemote, memory, memory_named};
pub use paginate::stream_paginated;
pub use path::RemotePath;
pub use plan::{Action, Decision, DirPair, Mode, Plan, Reason};
pub use prefix::Prefix;
pub use remote::{
    ByteStream, Capabilities, EntryStream, Remote, SmallFileSlots, bytes_stream, collect_bytes,
};
pub use report::{CheckItem, CheckReport, ErrorRecord, Event, EventSink, Summary};
pub use resume_state::{SessionStore, SessionToken};
pub use retry::RetryPolicy;
pub use secret::{REDACTED, Secret, location_has_secret, redact_location};
pub use temp::{
    PART_PREFIX, TEMP_PREFIX, is_temp_bytes, is_temp_name, part_key, part_name, part_of, temp_age,
    temp_name,
};
pub use timeout::{DEFAULT_TIMEOUT, Timeout};

/// Re-exports of the crates that appear in this crate's public API.
pub mod deps {
    pub use async_trait;
    pub use bytes;
    pub use futures;
    pub use object_store;
    pub use serde_json;
    pub use time;
}
