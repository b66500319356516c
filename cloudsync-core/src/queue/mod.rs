//! Compare reports that outlive the process: [`SavedReport`] (a
//! [`CheckReport`](crate::CheckReport) with its source, destination, options and time, as
//! JSON), [`ReportQueue`] (compare requests and finished reports in a folder of any remote,
//! processed one after another) and [`resync`] ("re-run & sync": transfer exactly what a
//! report says is missing, then check again).
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> cloudsync_core::Result<()> {
//! use cloudsync_core::queue::{compare, resync, CompareSpec, ResyncOptions};
//! use cloudsync_core::{bytes_stream, memory_named, Remote, RemotePath, WriteMeta};
//!
//! let (cam, server) = (memory_named("cam"), memory_named("server"));
//! cam.write(&RemotePath::new("0001.jpg")?, bytes_stream("jpeg"), WriteMeta::default()).await?;
//! let report = compare(&cam, &server, &CompareSpec::default()).await?;
//! assert_eq!(report.counts().missing_on_dst, 1);
//!
//! let follow_up = resync(&report, &cam, &server, &ResyncOptions::default()).await?;
//! assert_eq!(follow_up.resync.as_ref().map(|r| r.transferred), Some(1));
//! assert!(follow_up.check.is_identical());
//! # Ok(())
//! # }
//! ```

mod resync;
mod saved;
mod store;

pub use crate::report::{
    CompareSpec, REPORT_FORMAT, ReportCounts, ResyncOutcome, ResyncSkip, SavedReport,
};
pub use resync::{ResyncOptions, resync};
pub use saved::compare;
pub use store::{Job, JobRequest, JobState, OpenRemote, ReportQueue};

#[cfg(test)]
mod tests;
