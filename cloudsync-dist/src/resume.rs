//! [`resume`]: puts a job whose run was cut (a crashed coordinator or workers, shards given
//! up, a delete phase that died) back on its way, without losing a committed completion and
//! without opening a deletion the gate would not open.

use serde::{Deserialize, Serialize};

use crate::db::Db;
use crate::error::{DistError, Result};
use crate::job::{JobId, JobState, status_with};

/// What [`resume`] changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Resumed {
    /// Shards whose lease had expired, given back to the queue (their owner's late completion
    /// is refused: the fencing token moved on).
    pub requeued: u64,
    /// Shards that had been given up (dead), queued again with their attempts reset.
    pub revived: u64,
    /// The phase the job was put back into when it had failed: `Running` (the copy phase: its
    /// failed shards run again, and the delete gate is decided again when they are done) or
    /// `Deleting` (the delete phase, which had been opened by the gate, runs again).
    pub reopened: Option<JobState>,
    /// The job's state afterwards.
    pub state: JobState,
}

/// Continues a job after a crash: expired leases are requeued, dead shards queued again, a
/// failed copy phase reopened (its deletions stay behind the gate: they run only once every
/// shard is done without error) and a failed delete phase run again (every candidate is
/// checked again before it is deleted); a job whose shards are all finished but which never
/// made its transition makes it now. Workers (any, or [`run_worker`](crate::run_worker))
/// then carry it on.
///
/// Refused with [`DistError::InvalidInput`] for a job that is done or cancelled, and for one
/// that failed by its `max_delete` limit (running it again would find the same deletions).
pub async fn resume(db: &Db, job: JobId) -> Result<Resumed> {
    let mut client = db.connect().await?;
    let tx = client.transaction().await?;
    let row = tx
        .query_opt(
            "SELECT state FROM cloudsync.jobs WHERE id = $1 FOR UPDATE",
            &[&job],
        )
        .await?
        .ok_or(DistError::NoSuchJob(job))?;
    let before = JobState::parse(row.get(0))?;
    match before {
        JobState::Done => {
            return Err(DistError::InvalidInput(format!(
                "job {job} is done: nothing to resume"
            )));
        }
        JobState::Cancelled => {
            return Err(DistError::InvalidInput(format!(
                "job {job} was cancelled: submit it again to run it"
            )));
        }
        _ => {}
    }
    // Leases whose owner stopped heartbeating: back to the queue, token moved on.
    let requeued = tx
        .execute(
            "UPDATE cloudsync.shards SET state = 'pending', lease_owner = NULL,
                    lease_until = NULL, token = token + 1
             WHERE job = $1 AND state = 'running' AND lease_until < now()",
            &[&job],
        )
        .await?;
    let copy_errors = tx
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM cloudsync.shards
                            WHERE job = $1 AND kind IN ('walk', 'batch') AND state = 'dead')",
            &[&job],
        )
        .await?
        .get::<_, bool>(0);
    // The delete phase's shards (file deletions, then directories), if it was opened.
    let delete_shards: i64 = tx
        .query_one(
            "SELECT count(*) FROM cloudsync.shards
             WHERE job = $1 AND kind IN ('delete', 'rmdir')",
            &[&job],
        )
        .await?
        .get(0);
    let mut reopened = None;
    let mut revived = 0;
    match before {
        JobState::Failed if copy_errors => {
            revived = revive_walks(&tx, job).await?;
            reopen(&tx, job, "running").await?;
            reopened = Some(JobState::Running);
        }
        JobState::Failed if delete_shards > 0 => {
            revived = revive_deletes(&tx, job).await?;
            reopen(&tx, job, "deleting").await?;
            reopened = Some(JobState::Deleting);
        }
        JobState::Failed => {
            return Err(DistError::InvalidInput(format!(
                "job {job} failed by its max-delete limit (nothing was deleted); resuming \
                 would find the same deletions: submit it again with a higher limit"
            )));
        }
        JobState::Running => revived = revive_walks(&tx, job).await?,
        JobState::Deleting if delete_shards > 0 => revived = revive_deletes(&tx, job).await?,
        JobState::Deleting => {
            // The gate opened but its shards are missing: the phase is queued again.
            revived = crate::worker::open_delete_phase(&tx, job).await?;
        }
        JobState::Done | JobState::Cancelled => {}
    }
    tx.commit().await?;
    // All shards finished but the transition never happened (its worker died before it):
    // the one gated transition, made now.
    crate::worker::finish_job(&mut client, job).await?;
    let state = status_with(&client, job).await?.state;
    tracing::info!(job, requeued, revived, ?reopened, ?state, "job resumed");
    Ok(Resumed {
        requeued,
        revived,
        reopened,
        state,
    })
}

/// Dead walk and batch shards queued again, attempts reset; their error reports stay until their new
/// run replaces them (so the gate still sees them as errors until then).
async fn revive_walks(tx: &tokio_postgres::Transaction<'_>, job: JobId) -> Result<u64> {
    Ok(tx
        .execute(
            "UPDATE cloudsync.shards SET state = 'pending', attempts = 0, error = NULL,
                    lease_owner = NULL, lease_until = NULL, token = token + 1
             WHERE job = $1 AND kind IN ('walk', 'batch') AND state = 'dead'",
            &[&job],
        )
        .await?)
}

/// The delete phase's given-up (or cancelled) shards queued again, attempts reset: each
/// checks its candidates again before deleting them, and one already deleted is done.
async fn revive_deletes(tx: &tokio_postgres::Transaction<'_>, job: JobId) -> Result<u64> {
    Ok(tx
        .execute(
            "UPDATE cloudsync.shards SET state = 'pending', attempts = 0, error = NULL,
                    lease_owner = NULL, lease_until = NULL, token = token + 1
             WHERE job = $1 AND kind IN ('delete', 'rmdir') AND state IN ('dead', 'cancelled')",
            &[&job],
        )
        .await?)
}

async fn reopen(tx: &tokio_postgres::Transaction<'_>, job: JobId, state: &str) -> Result<()> {
    tx.execute(
        "UPDATE cloudsync.jobs SET state = $2, error = NULL, finished = NULL WHERE id = $1",
        &[&job, &state],
    )
    .await?;
    Ok(())
}
