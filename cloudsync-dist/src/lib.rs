//! Runs one cloudsync copy or sync across many worker processes (on one machine or many),
//! with PostgreSQL as the durable work queue.
//!
//! A job is one row; its work is many shards, each one directory pair planned one level deep
//! by the engine ([`cloudsync_core::ops::plan_dir`]); a directory with more files to act on
//! than [`JobOptions::batch_size`] hands its planned transfers to batch shards, which any
//! worker runs through `apply` (both sides checked again before each action). A move removes
//! each source file only once its copy is verified. Workers claim shards with
//! `FOR UPDATE SKIP LOCKED` under a lease carrying a fencing token, keep the lease alive with
//! heartbeats guarded by the token, and commit each completion together with its child shards,
//! delete candidates and report in one transaction guarded by the token: the work may run
//! twice (a worker that lost its lease), the bookkeeping counts once.
//!
//! Deletions stay safe: no worker deletes during the copy phase. When no shard is left and
//! none failed, one conditional transition opens the delete phase: its candidates go to delete
//! shards of `batch_size` each, which any worker runs, each candidate re-checked before it is
//! deleted; once all of them succeeded, one last shard removes directories (those a sync
//! found only on the destination, and for a move with `delete_empty_src_dirs` the source's
//! emptied ones). `max_delete` applies to the whole job; a job with any error deletes
//! nothing. A batch whose source file changed since it was planned transfers its new content.
//!
//! Everything lives in the database (schema `cloudsync`, created and migrated by
//! [`Db::connect`]): after a worker, a coordinator or the database restarts, any worker
//! continues, and [`resume`] puts a job whose run was cut (given-up shards, a failed delete
//! phase, a transition nobody made) back on its way. No secret is stored: jobs name remotes, and each worker opens them from its own
//! config.
//!
//! ```no_run
//! # async fn f() -> Result<(), cloudsync_dist::DistError> {
//! use cloudsync_dist::{Db, DistMode, JobSpec, Remotes, WorkerOptions};
//!
//! let db = Db::new("postgres://sync@db.example:5432/queue")?;
//! let job = cloudsync_dist::submit(&db, &JobSpec::new(DistMode::Sync, "/data", "/backup")).await?;
//! // On each machine:
//! let remotes = Remotes { registry: cloudsync_core::Registry::new(), config: Default::default() };
//! cloudsync_dist::run_worker(&db, &remotes, &WorkerOptions::default().until_idle(true)).await?;
//! let summary = cloudsync_dist::report(&db, job).await?;
//! println!("{} files transferred", summary.transferred);
//! # Ok(())
//! # }
//! ```

#![deny(missing_docs)]

mod db;
mod error;
mod job;
mod resume;
mod worker;

pub use db::{Db, SCHEMA_VERSION};
pub use error::{DistError, Result};
pub use job::{
    DEFAULT_BATCH_SIZE, DistMode, FilterFile, FilterFileFlag, JobId, JobOptions, JobSpec, JobState,
    JobStatus, ShardCounts, cancel, report, status, submit,
};
pub use resume::{Resumed, resume};
pub use worker::{Remotes, WorkerOptions, WorkerStats, run_worker};

#[cfg(feature = "testkit")]
pub mod testkit;
