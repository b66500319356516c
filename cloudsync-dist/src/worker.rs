//! The worker: claims shards under a lease with a fencing token, runs them with the engine,
//! and commits each completion in one transaction guarded by the token.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use cloudsync_core::ops::{self, SyncOptions};
use cloudsync_core::{
    Action, Config, Decision, DirPair, ErrorKind, Plan, Reason, Registry, Remote, RemotePath,
    Summary,
};
use tokio_postgres::Client;

use crate::db::Db;
use crate::error::{DistError, Result};
use crate::job::{DistMode, JobId, JobOptions};

/// How a worker runs.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct WorkerOptions {
    /// Return when no job is left running (`--until-idle`); otherwise run until stopped.
    pub until_idle: bool,
    /// How long a claimed shard stays ours without a heartbeat.
    pub lease: Duration,
    /// How often the lease is extended (well below `lease`).
    pub heartbeat: Duration,
    /// Wait between looks for work when there is none.
    pub poll: Duration,
    /// A shard that failed (or whose lease expired) this many times is dead: an error of
    /// its job.
    pub max_attempts: i32,
    /// This worker's name in the leases (host and process id by default).
    pub name: String,
    /// How long to keep reconnecting to a database that went away before giving up.
    pub reconnect_for: Duration,
    /// Work on this job only (`dist resume`); with `until_idle`, return when it is finished.
    pub only_job: Option<JobId>,
    /// Shards this worker runs at once (each with its own lease and two database
    /// connections); 1 by default.
    pub shards: usize,
}

impl Default for WorkerOptions {
    fn default() -> Self {
        let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "worker".into());
        WorkerOptions {
            until_idle: false,
            lease: Duration::from_secs(60),
            heartbeat: Duration::from_secs(15),
            poll: Duration::from_secs(1),
            max_attempts: 3,
            name: format!("{host}:{}", std::process::id()),
            reconnect_for: Duration::from_secs(120),
            only_job: None,
            shards: 1,
        }
    }
}

impl WorkerOptions {
    /// With `until_idle` set.
    pub fn until_idle(mut self, yes: bool) -> Self {
        self.until_idle = yes;
        self
    }

    /// Working on `job` only.
    pub fn only_job(mut self, job: JobId) -> Self {
        self.only_job = Some(job);
        self
    }
}

/// How a worker opens the remotes a job names: a registry of backends and this worker's own
/// config (where credentials live).
#[derive(Debug)]
pub struct Remotes {
    /// The backends.
    pub registry: Registry,
    /// Named remotes with their credentials.
    pub config: Config,
}

/// What a worker did, for its caller.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WorkerStats {
    /// Shards completed (their bookkeeping committed).
    pub completed: u64,
    /// Shard attempts that failed (retried later, or dead).
    pub failed: u64,
    /// Shards given up because the lease was lost or a completion refused.
    pub lost: u64,
}

/// One claimed shard.
#[derive(Debug, Clone)]
pub(crate) struct Claim {
    pub(crate) id: i64,
    pub(crate) job: JobId,
    pub(crate) kind: String,
    pub(crate) pair: DirPair,
    pub(crate) token: i64,
    pub(crate) attempts: i32,
    /// A batch shard's planned decisions.
    pub(crate) decisions: Option<serde_json::Value>,
}

/// What running a shard produced, to be committed with its completion.
#[derive(Debug, Default)]
pub(crate) struct Outcome {
    pub(crate) children: Vec<DirPair>,
    /// Batches of planned transfers (JSON arrays of decisions) for batch shards.
    pub(crate) batches: Vec<serde_json::Value>,
    pub(crate) candidates: Vec<Decision>,
    pub(crate) summary: Option<Summary>,
}

/// A job as a worker runs it: opened remotes and options.
struct OpenJob {
    mode: DistMode,
    src: Arc<dyn Remote>,
    dst: Arc<dyn Remote>,
    opts: SyncOptions,
    batch_size: usize,
    delete_empty_src_dirs: bool,
}

/// Runs shards of any job until stopped, or with `until_idle` until no job is running.
pub async fn run_worker(db: &Db, remotes: &Remotes, opts: &WorkerOptions) -> Result<WorkerStats> {
    // `shards` loops, each claiming and running one shard at a time with its own connections,
    // so that listing and planning one directory overlaps the transfers of others.
    let loops = (0..opts.shards.max(1)).map(|i| {
        let mut opts = opts.clone();
        if i > 0 {
            opts.name = format!("{}/{i}", opts.name);
        }
        async move {
            let mut w = Worker {
                db: db.clone(),
                remotes,
                opts,
                client: None,
                heartbeat: None,
                jobs: HashMap::new(),
                skipped: Vec::new(),
                stats: WorkerStats::default(),
            };
            w.run().await?;
            Ok::<_, DistError>(w.stats)
        }
    });
    let mut total = WorkerStats::default();
    for stats in futures::future::try_join_all(loops).await? {
        total.completed += stats.completed;
        total.failed += stats.failed;
        total.lost += stats.lost;
    }
    Ok(total)
}

struct Worker<'a> {
    db: Db,
    remotes: &'a Remotes,
    opts: WorkerOptions,
    client: Option<Client>,
    /// The heartbeats' own connection (a transaction on `client` must not carry them).
    heartbeat: Option<Arc<Client>>,
    jobs: HashMap<JobId, Arc<OpenJob>>,
    /// Jobs whose remotes this worker cannot open (not in its config, a backend it was built
    /// without): left to the other workers.
    skipped: Vec<JobId>,
    stats: WorkerStats,
}

impl Worker<'_> {
    async fn run(&mut self) -> Result<()> {
        loop {
            match self.step().await {
                Ok(true) => {}
                Ok(false) => {
                    if self.opts.until_idle && !self.any_active().await? {
                        return Ok(());
                    }
                    tokio::time::sleep(self.opts.poll).await;
                }
                Err(e) if e.is_connection() => {
                    self.client = None;
                    self.reconnect().await?;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Claims and runs one shard; `Ok(false)` when there was none.
    async fn step(&mut self) -> Result<bool> {
        let (opts, skipped) = (self.opts.clone(), self.skipped.clone());
        let claim = {
            let client = self.client().await?;
            claim(client, &opts, &skipped).await?
        };
        let Some(claim) = claim else {
            let client = self.client().await?;
            finish_ready_jobs(client).await?;
            return Ok(false);
        };
        tracing::debug!(shard = claim.id, job = claim.job, path = %claim.pair.path, token = claim.token, "claimed");
        if claim.attempts > self.opts.max_attempts {
            let msg = format!(
                "given up after {} attempts (the last worker's lease expired)",
                claim.attempts - 1
            );
            self.fail(&claim, &msg, None).await?;
            return Ok(true);
        }
        let job = match self.open_job(claim.job).await {
            Ok(j) => j,
            Err(e) if e.is_connection() => return Err(e),
            Err(e) => {
                // This worker's config is the problem, not the shard: hand it back without
                // counting the attempt, and leave the job to workers that can open it.
                tracing::warn!(job = claim.job, error = %e, "cannot open the job's remotes; leaving the job to other workers");
                self.skipped.push(claim.job);
                let c = claim.clone();
                self.with_db(|client| {
                    let c = c.clone();
                    Box::pin(async move { release(client, &c).await })
                })
                .await?;
                return Ok(true);
            }
        };
        match self.run_leased(&claim, job).await? {
            None => {
                self.stats.lost += 1;
                tracing::info!(
                    shard = claim.id,
                    "lease lost; the shard is left to its new owner"
                );
            }
            Some(Ok(outcome)) => {
                let ok = outcome.summary.as_ref().is_none_or(|s| s.errors.is_empty());
                if ok {
                    match self.complete(&claim, outcome).await {
                        Ok(()) => self.stats.completed += 1,
                        Err(e @ DistError::LeaseLost { .. }) => {
                            tracing::info!(error = %e, "lease lost; the completion was refused");
                            self.stats.lost += 1;
                        }
                        Err(e) => return Err(e),
                    }
                } else {
                    let summary = outcome.summary;
                    let first = summary
                        .as_ref()
                        .and_then(|s| s.errors.first())
                        .map(|e| e.to_string())
                        .unwrap_or_default();
                    self.fail(&claim, &first, summary).await?;
                }
            }
            Some(Err(e)) => {
                if e.is_connection() {
                    return Err(e);
                }
                self.fail(&claim, &e.to_string(), None).await?;
            }
        }
        let client = self.client().await?;
        finish_job(client, claim.job).await?;
        Ok(true)
    }

    async fn client(&mut self) -> Result<&mut Client> {
        if self.client.as_ref().is_none_or(|c| c.is_closed()) {
            self.client = Some(self.db.connect().await?);
        }
        self.client.as_mut().ok_or_else(|| {
            DistError::InvalidInput("no database connection".into()) // not reached
        })
    }

    async fn reconnect(&mut self) -> Result<()> {
        let deadline = tokio::time::Instant::now() + self.opts.reconnect_for;
        loop {
            match self.db.connect().await {
                Ok(c) => {
                    self.client = Some(c);
                    return Ok(());
                }
                Err(e) if e.is_connection() && tokio::time::Instant::now() < deadline => {
                    tracing::info!(error = %e, "database unreachable; retrying");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Runs a bookkeeping step, reconnecting (for `reconnect_for`) when the database went
    /// away: the token keeps a late step from counting twice.
    async fn with_db<T, F>(&mut self, mut f: F) -> Result<T>
    where
        F: for<'c> FnMut(
            &'c mut Client,
        ) -> std::pin::Pin<
            Box<dyn std::future::Future<Output = Result<T>> + Send + 'c>,
        >,
    {
        let deadline = tokio::time::Instant::now() + self.opts.reconnect_for;
        loop {
            let r = match self.client().await {
                Ok(c) => f(c).await,
                Err(e) => Err(e),
            };
            match r {
                Err(e) if e.is_connection() && tokio::time::Instant::now() < deadline => {
                    tracing::info!(error = %e, "database connection lost; retrying");
                    self.client = None;
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
                r => return r,
            }
        }
    }

    async fn complete(&mut self, claim: &Claim, outcome: Outcome) -> Result<()> {
        let outcome = Arc::new(outcome);
        self.with_db(|c| {
            let (claim, outcome) = (claim.clone(), outcome.clone());
            Box::pin(async move { complete(c, &claim, &outcome).await })
        })
        .await
    }

    async fn fail(&mut self, claim: &Claim, msg: &str, summary: Option<Summary>) -> Result<()> {
        self.stats.failed += 1;
        tracing::info!(
            shard = claim.id,
            attempt = claim.attempts,
            error = msg,
            "shard failed"
        );
        let max = self.opts.max_attempts;
        let summary = Arc::new(summary);
        let r = self
            .with_db(|c| {
                let (claim, summary, msg) = (claim.clone(), summary.clone(), msg.to_string());
                Box::pin(async move { fail(c, &claim, &msg, summary.as_ref().as_ref(), max).await })
            })
            .await;
        match r {
            Err(DistError::LeaseLost { .. }) => {
                self.stats.lost += 1;
                Ok(())
            }
            r => r,
        }
    }

    async fn any_active(&mut self) -> Result<bool> {
        let (skipped, only) = (self.skipped.clone(), self.opts.only_job);
        let client = self.client().await?;
        Ok(client
            .query_opt(
                "SELECT 1 FROM cloudsync.jobs WHERE state IN ('running', 'deleting')
                 AND NOT (id = ANY($1)) AND ($2::bigint IS NULL OR id = $2) LIMIT 1",
                &[&skipped, &only],
            )
            .await?
            .is_some())
    }

    async fn open_job(&mut self, id: JobId) -> Result<Arc<OpenJob>> {
        if let Some(j) = self.jobs.get(&id) {
            return Ok(j.clone());
        }
        let row = {
            let client = self.client().await?;
            client
                .query_one(
                    "SELECT mode, source, destination, options FROM cloudsync.jobs WHERE id = $1",
                    &[&id],
                )
                .await?
        };
        let mode = DistMode::parse(row.get(0))?;
        let (source, destination): (String, String) = (row.get(1), row.get(2));
        let options: JobOptions = serde_json::from_value(row.get(3))?;
        let opts = options.to_sync_options()?;
        let batch_size = options.batch_size.max(1);
        let delete_empty_src_dirs = mode == DistMode::Move && options.delete_empty_src_dirs;
        let r = &self.remotes;
        let src = r.registry.open(&source, &r.config).await?;
        let dst = r.registry.open(&destination, &r.config).await?;
        let job = Arc::new(OpenJob {
            mode,
            src,
            dst,
            opts,
            batch_size,
            delete_empty_src_dirs,
        });
        self.jobs.insert(id, job.clone());
        Ok(job)
    }

    /// Runs the shard while a heartbeat keeps the lease; stops it when the lease is lost
    /// (`Ok(None)`).
    async fn run_leased(
        &mut self,
        claim: &Claim,
        job: Arc<OpenJob>,
    ) -> Result<Option<Result<Outcome>>> {
        let hb_client = match &self.heartbeat {
            Some(c) if !c.is_closed() => c.clone(),
            _ => {
                let c = Arc::new(self.db.connect_raw().await?);
                self.heartbeat = Some(c.clone());
                c
            }
        };
        let (id, token) = (claim.id, claim.token);
        let (lease, every) = (self.opts.lease, self.opts.heartbeat);
        let db = self.db.clone();
        let heartbeat = async move {
            let mut client = hb_client;
            loop {
                tokio::time::sleep(every).await;
                match extend(&client, id, token, lease).await {
                    Ok(true) => {}
                    Ok(false) => return,
                    // The database went away: the lease may still hold; try again, and let
                    // the token decide at completion.
                    Err(e) => {
                        tracing::debug!(error = %e, "heartbeat failed");
                        if let Ok(c) = db.connect_raw().await {
                            client = Arc::new(c);
                        }
                    }
                }
            }
        };
        let db = self.db.clone();
        let work = async {
            match (claim.kind.as_str(), &claim.decisions) {
                ("delete", None) => delete_phase(&db, claim.job, &job).await,
                ("delete", Some(range)) => delete_range(&db, claim.job, &job, range).await,
                ("rmdir", _) => remove_dirs(&db, claim.job, &job).await,
                ("batch", _) => batch(claim, &job).await,
                _ => walk(claim, &job).await,
            }
        };
        tokio::select! {
            r = work => Ok(Some(r)),
            () = heartbeat => Ok(None),
        }
    }
}

/// Extends the lease if the token is still ours and the job still runs.
async fn extend(client: &Client, id: i64, token: i64, lease: Duration) -> Result<bool> {
    let n = client
        .execute(
            "UPDATE cloudsync.shards s SET lease_until = now() + make_interval(secs => $3)
             WHERE s.id = $1 AND s.token = $2 AND s.state = 'running'
               AND EXISTS (SELECT 1 FROM cloudsync.jobs j WHERE j.id = s.job
                           AND j.state IN ('running', 'deleting'))",
            &[&id, &token, &lease.as_secs_f64()],
        )
        .await?;
    Ok(n == 1)
}

/// Claims the next shard: a pending one, or one whose lease expired; the token goes up by one,
/// so the previous owner's completion will be refused.
pub(crate) async fn claim(
    client: &Client,
    opts: &WorkerOptions,
    skipped: &[JobId],
) -> Result<Option<Claim>> {
    let row = client
        .query_opt(
            "UPDATE cloudsync.shards s
             SET state = 'running', lease_owner = $1,
                 lease_until = now() + make_interval(secs => $2),
                 token = s.token + 1, attempts = s.attempts + 1
             WHERE s.id = (
                 SELECT c.id FROM cloudsync.shards c JOIN cloudsync.jobs j ON j.id = c.job
                 WHERE (c.state = 'pending' OR (c.state = 'running' AND c.lease_until < now()))
                   AND NOT (c.job = ANY($3))
                   AND ($4::bigint IS NULL OR c.job = $4)
                   AND ((c.kind IN ('walk', 'batch') AND j.state = 'running')
                        OR (c.kind IN ('delete', 'rmdir') AND j.state = 'deleting'))
                 ORDER BY c.id
                 LIMIT 1
                 FOR UPDATE OF c SKIP LOCKED)
             RETURNING s.id, s.job, s.kind, s.path, s.src_path, s.src, s.dst, s.token, s.attempts,
                       s.decisions",
            &[
                &opts.name,
                &opts.lease.as_secs_f64(),
                &skipped,
                &opts.only_job,
            ],
        )
        .await?;
    let Some(r) = row else { return Ok(None) };
    let path = |i: usize| -> Result<RemotePath> {
        RemotePath::new(r.get::<_, &str>(i)).map_err(DistError::Engine)
    };
    Ok(Some(Claim {
        id: r.get(0),
        job: r.get(1),
        kind: r.get(2),
        pair: DirPair {
            path: path(3)?,
            src_path: path(4)?,
            src: r.get(5),
            dst: r.get(6),
        },
        token: r.get(7),
        attempts: r.get(8),
        decisions: r.get(9),
    }))
}

/// Files deleted per `apply` of the delete phase: memory stays bounded whatever the job.
const DELETE_PAGE: i64 = 10_000;

/// The whole delete phase in one shard, as the schema's version 2 queued it (a job upgraded in
/// the middle of its delete phase finishes so; newer jobs run [`delete_range`] shards in
/// parallel, then [`remove_dirs`]): the file candidates page by page through `apply`, which checks again,
/// right before each deletion, that the destination file is still the one listed and the
/// source still lacks it; then, only if nothing failed, the directories, deepest first (a
/// directory still holding anything stays). Deleting twice is harmless (a file already gone
/// is done), so a phase taken over from a worker that lost its lease starts again.
async fn delete_phase(db: &Db, job_id: JobId, job: &OpenJob) -> Result<Outcome> {
    let client = db.connect_raw().await?;
    let apply = |decisions: Vec<Decision>| async move {
        let plan = Plan {
            mode: job.mode.engine_mode(),
            source: job.src.describe(),
            destination: job.dst.describe(),
            created: time::OffsetDateTime::now_utc(),
            decisions,
        };
        ops::apply(&job.src, &job.dst, &plan, &job.opts).await
    };
    let mut total: Option<Summary> = None;
    let mut after: i64 = 0;
    loop {
        let rows = client
            .query(
                "SELECT id, decision FROM cloudsync.delete_candidates
                 WHERE job = $1 AND NOT is_dir AND id > $2 ORDER BY id LIMIT $3",
                &[&job_id, &after, &DELETE_PAGE],
            )
            .await?;
        let Some(last) = rows.last() else { break };
        after = last.get(0);
        let page = rows
            .iter()
            .map(|r| serde_json::from_value(r.get(1)).map_err(DistError::from))
            .collect::<Result<Vec<Decision>>>()?;
        let s = apply(page).await?;
        let failed = !s.errors.is_empty();
        crate::job::add_to(&mut total, s);
        if failed {
            return Ok(Outcome {
                summary: total,
                ..Outcome::default()
            });
        }
    }
    let dirs = client
        .query(
            "SELECT decision FROM cloudsync.delete_candidates WHERE job = $1 AND is_dir",
            &[&job_id],
        )
        .await?
        .iter()
        .map(|r| serde_json::from_value(r.get(0)).map_err(DistError::from))
        .collect::<Result<Vec<Decision>>>()?;
    if !dirs.is_empty() {
        crate::job::add_to(&mut total, apply(dirs).await?);
    }
    Ok(Outcome {
        summary: total,
        ..Outcome::default()
    })
}

/// A range of candidate ids (a `delete` shard of the parallel delete phase).
#[derive(Debug, serde::Deserialize)]
struct IdRange {
    from: i64,
    to: i64,
}

/// One delete shard: its candidate files through `apply`, which checks again, right before
/// each deletion, that the destination file is still the one listed and the source still
/// lacks it (a file already gone is done, so a rerun is harmless).
async fn delete_range(
    db: &Db,
    job_id: JobId,
    job: &OpenJob,
    range: &serde_json::Value,
) -> Result<Outcome> {
    let r: IdRange = serde_json::from_value(range.clone())?;
    let client = db.connect_raw().await?;
    let decisions = client
        .query(
            "SELECT decision FROM cloudsync.delete_candidates
             WHERE job = $1 AND NOT is_dir AND id BETWEEN $2 AND $3 ORDER BY id",
            &[&job_id, &r.from, &r.to],
        )
        .await?
        .iter()
        .map(|r| serde_json::from_value(r.get(0)).map_err(DistError::from))
        .collect::<Result<Vec<Decision>>>()?;
    let s = ops::apply(&job.src, &job.dst, &plan_of(job, decisions), &job.opts).await?;
    Ok(Outcome {
        summary: Some(s),
        ..Outcome::default()
    })
}

/// The last step of the delete phase, after every file deletion succeeded: the destination
/// directories a sync removes (through `apply`: only those still empty go), then, for a
/// move with `delete_empty_src_dirs`, the source directories the walks found, deepest first
/// (one still holding anything stays; the source root stays).
async fn remove_dirs(db: &Db, job_id: JobId, job: &OpenJob) -> Result<Outcome> {
    let client = db.connect_raw().await?;
    let dirs = client
        .query(
            "SELECT decision FROM cloudsync.delete_candidates WHERE job = $1 AND is_dir",
            &[&job_id],
        )
        .await?
        .iter()
        .map(|r| serde_json::from_value(r.get(0)).map_err(DistError::from))
        .collect::<Result<Vec<Decision>>>()?;
    let mut total: Option<Summary> = None;
    if !dirs.is_empty() {
        let s = ops::apply(&job.src, &job.dst, &plan_of(job, dirs), &job.opts).await?;
        let failed = !s.errors.is_empty();
        crate::job::add_to(&mut total, s);
        if failed {
            return Ok(Outcome {
                summary: total,
                ..Outcome::default()
            });
        }
    }
    if job.delete_empty_src_dirs {
        let s = remove_empty_src_dirs(&client, job_id, job).await?;
        crate::job::add_to(&mut total, s);
    }
    Ok(Outcome {
        summary: total,
        ..Outcome::default()
    })
}

/// Removes the source directories the job's walks found, children before parents (in byte
/// order a directory comes before everything below it), page by page. A directory that is
/// not empty (a file the filters kept, one that could not move) or already gone is left
/// alone, as the one-process move does.
async fn remove_empty_src_dirs(client: &Client, job_id: JobId, job: &OpenJob) -> Result<Summary> {
    let mut summary = Summary::new(job.src.describe(), job.dst.describe(), false);
    let mut before: Option<String> = None;
    loop {
        let rows = client
            .query(
                "SELECT DISTINCT src_path COLLATE \"C\" AS p FROM cloudsync.shards
                 WHERE job = $1 AND kind = 'walk' AND src AND src_path <> ''
                   AND ($2::text IS NULL OR src_path COLLATE \"C\" < $2)
                 ORDER BY p DESC LIMIT $3",
                &[&job_id, &before, &DELETE_PAGE],
            )
            .await?;
        let Some(last) = rows.last() else { break };
        before = Some(last.get(0));
        for r in &rows {
            let dir = RemotePath::new(r.get::<_, &str>(0)).map_err(DistError::Engine)?;
            match job.src.remove_dir(&dir).await {
                Ok(()) => summary.dirs_deleted += 1,
                Err(e) if matches!(e.kind(), ErrorKind::NotFound | ErrorKind::Conflict) => {}
                Err(e) => summary
                    .errors
                    .push(cloudsync_core::ErrorRecord::new(dir, &e)),
            }
        }
    }
    Ok(summary)
}

/// One directory pair: plan it one level deep with the engine, transfer what the plan says
/// (re-validated by `apply`), keep its deletions as candidates, and hand back its
/// sub-directories as child shards.
async fn walk(claim: &Claim, job: &OpenJob) -> Result<Outcome> {
    let mode = job.mode.engine_mode();
    // The destination side is always listed: a directory its parent did not find there may
    // exist by now (an earlier attempt of this shard, a worker that lost its lease), and a
    // plan that took it for absent would have every transfer refused by `apply`'s checks.
    let pair = DirPair {
        dst: true,
        ..claim.pair.clone()
    };
    let found = ops::plan_dir(&job.src, &job.dst, mode, &pair, &job.opts).await?;
    let (plan, children, errors) = (found.plan, found.subdirs, found.errors);
    let mut candidates = Vec::new();
    let mut act = Vec::new();
    for d in plan.decisions {
        match d.action {
            Action::Delete | Action::Rmdir => candidates.push(d),
            // What failed, with its message, is in `errors`.
            Action::Error => {}
            _ => act.push(d),
        }
    }
    // A huge flat directory: its planned transfers go to batch shards that any worker runs.
    // Only what acts goes there: a file already identical is only counted (here) in a copy
    // or sync, so an unchanged huge directory writes no plan to the database; in a move it
    // still removes its source, so it is work.
    let acts = |d: &Decision| d.action != Action::Skip || job.mode == DistMode::Move;
    let mut batches = Vec::new();
    if act.iter().filter(|d| acts(d)).count() > job.batch_size {
        let (work, counted): (Vec<Decision>, Vec<Decision>) = act.into_iter().partition(acts);
        for chunk in work.chunks(job.batch_size) {
            batches.push(serde_json::to_value(chunk)?);
        }
        act = counted;
    }
    let transfers = Plan {
        decisions: act,
        ..plan
    };
    let mut summary = ops::apply(&job.src, &job.dst, &transfers, &job.opts).await?;
    summary.errors.extend(errors);
    Ok(Outcome {
        children,
        batches,
        candidates,
        summary: Some(summary),
    })
}

/// A batch of planned transfers from a huge directory: `apply` checks both sides again
/// before each action (a source that changed, a destination that changed or appeared since
/// the plan is skipped and reported, never overwritten).
///
/// A source file that changed since the plan (and whose destination is still as planned) is
/// planned again from what is there now and transferred with its new content; anything else
/// that changed stays reported.
async fn batch(claim: &Claim, job: &OpenJob) -> Result<Outcome> {
    let decisions: Vec<Decision> = match &claim.decisions {
        Some(v) => serde_json::from_value(v.clone())?,
        None => Vec::new(),
    };
    let plan = plan_of(job, decisions);
    let mut summary = ops::apply(&job.src, &job.dst, &plan, &job.opts).await?;
    let again = replan_changed_sources(job, &plan.decisions, &mut summary).await;
    if !again.is_empty() {
        tracing::info!(
            shard = claim.id,
            files = again.len(),
            "source files changed since planning: planned again"
        );
        let s = ops::apply(&job.src, &job.dst, &plan_of(job, again), &job.opts).await?;
        summary.absorb(s);
    }
    Ok(Outcome {
        summary: Some(summary),
        ..Outcome::default()
    })
}

/// A plan of `decisions` for this job's remotes (its checks run again in `apply`).
fn plan_of(job: &OpenJob, decisions: Vec<Decision>) -> Plan {
    Plan {
        mode: job.mode.engine_mode(),
        source: job.src.describe(),
        destination: job.dst.describe(),
        created: time::OffsetDateTime::now_utc(),
        decisions,
    }
}

/// The decisions `apply` refused as changed since planning whose source file changed while
/// the destination is still as planned: new decisions from the source as it is now (a
/// transfer of its current content). Their refusals leave `summary` (the new run counts them
/// instead); the rest stay reported. A file that cannot be looked at again stays reported.
async fn replan_changed_sources(
    job: &OpenJob,
    planned: &[Decision],
    summary: &mut Summary,
) -> Vec<Decision> {
    if !summary
        .errors
        .iter()
        .any(|e| e.kind == ErrorKind::ConditionNotMatch)
    {
        return Vec::new();
    }
    let by_path: HashMap<&RemotePath, &Decision> = planned.iter().map(|d| (&d.path, d)).collect();
    let mut again = Vec::new();
    let mut kept = Vec::new();
    for e in std::mem::take(&mut summary.errors) {
        let replanned = match by_path.get(&e.path) {
            Some(d) if e.kind == ErrorKind::ConditionNotMatch => replan(job, d).await,
            _ => None,
        };
        match replanned {
            Some(d) => {
                // `apply` counted the refusal as skipped, and the pair as checked; the new
                // run counts both again.
                summary.skipped = summary.skipped.saturating_sub(1);
                if d.dst.is_some() {
                    summary.checked = summary.checked.saturating_sub(1);
                }
                again.push(d);
            }
            None => kept.push(e),
        }
    }
    summary.errors = kept;
    again
}

/// `d` planned again when its source file changed and its destination did not.
async fn replan(job: &OpenJob, d: &Decision) -> Option<Decision> {
    let then = d.src.as_ref()?;
    if !matches!(d.action, Action::Copy | Action::Update | Action::SetModtime) {
        return None;
    }
    let now = job.src.stat(&then.path).await.ok()?;
    if !now.is_file() || (now.size == then.size && now.modtime == then.modtime) {
        return None;
    }
    let dst_now = match job.dst.stat(&d.path).await {
        Ok(e) => Some(e),
        Err(e) if e.kind() == ErrorKind::NotFound => None,
        Err(_) => return None,
    };
    let dst_as_planned = match (&dst_now, &d.dst) {
        (None, None) => true,
        (Some(n), Some(t)) => n.size == t.size && n.modtime == t.modtime,
        _ => false,
    };
    if !dst_as_planned {
        return None;
    }
    Some(Decision {
        path: d.path.clone(),
        action: if d.dst.is_some() {
            Action::Update
        } else {
            Action::Copy
        },
        reason: if d.dst.is_some() {
            Reason::SourceChanged
        } else {
            Reason::Missing
        },
        src: Some(now),
        dst: d.dst.clone(),
    })
}

/// Commits a shard's completion, its children, delete candidates and report in one
/// transaction, only if the token is still the shard's. A done batch drops its decisions (the
/// database keeps no plan it will not run again).
pub(crate) async fn complete(client: &mut Client, claim: &Claim, outcome: &Outcome) -> Result<()> {
    let tx = client.transaction().await?;
    let n = tx
        .execute(
            "UPDATE cloudsync.shards SET state = 'done', finished_by = lease_owner,
                    lease_owner = NULL, lease_until = NULL, error = NULL, decisions = NULL
             WHERE id = $1 AND token = $2 AND state = 'running'",
            &[&claim.id, &claim.token],
        )
        .await?;
    if n != 1 {
        tx.rollback().await?;
        return Err(DistError::LeaseLost {
            shard: claim.id,
            token: claim.token,
        });
    }
    if !outcome.children.is_empty() {
        let paths: Vec<&str> = outcome.children.iter().map(|c| c.path.as_str()).collect();
        let src_paths: Vec<&str> = outcome
            .children
            .iter()
            .map(|c| c.src_path.as_str())
            .collect();
        let srcs: Vec<bool> = outcome.children.iter().map(|c| c.src).collect();
        let dsts: Vec<bool> = outcome.children.iter().map(|c| c.dst).collect();
        tx.execute(
            "INSERT INTO cloudsync.shards (job, path, src_path, src, dst)
             SELECT $1, * FROM unnest($2::text[], $3::text[], $4::bool[], $5::bool[])",
            &[&claim.job, &paths, &src_paths, &srcs, &dsts],
        )
        .await?;
    }
    if !outcome.batches.is_empty() {
        tx.execute(
            "INSERT INTO cloudsync.shards (job, kind, path, src_path, src, dst, decisions)
             SELECT $1, 'batch', $2, $3, true, true, d FROM unnest($4::jsonb[]) AS d",
            &[
                &claim.job,
                &claim.pair.path.as_str(),
                &claim.pair.src_path.as_str(),
                &outcome.batches,
            ],
        )
        .await?;
    }
    if !outcome.candidates.is_empty() {
        let paths: Vec<&str> = outcome.candidates.iter().map(|d| d.path.as_str()).collect();
        let dirs: Vec<bool> = outcome
            .candidates
            .iter()
            .map(|d| d.action == Action::Rmdir)
            .collect();
        let decisions = outcome
            .candidates
            .iter()
            .map(serde_json::to_value)
            .collect::<std::result::Result<Vec<_>, _>>()?;
        tx.execute(
            "INSERT INTO cloudsync.delete_candidates (job, shard, path, is_dir, decision)
             SELECT $1, $2, * FROM unnest($3::text[], $4::bool[], $5::jsonb[])",
            &[&claim.job, &claim.id, &paths, &dirs, &decisions],
        )
        .await?;
    }
    if let Some(s) = &outcome.summary {
        store_report(&tx, claim, s).await?;
    }
    if claim.kind == "delete" && claim.decisions.is_none() {
        // The whole delete phase in one shard (a job the schema's version 2 opened).
        let errors = outcome.summary.as_ref().map_or(0, |s| s.errors.len());
        tx.execute(
            "UPDATE cloudsync.jobs SET state = CASE WHEN $2 THEN 'failed' ELSE 'done' END,
                    finished = now()
             WHERE id = $1 AND state = 'deleting'",
            &[&claim.job, &(errors > 0)],
        )
        .await?;
    }
    tx.commit().await?;
    Ok(())
}

async fn store_report(
    tx: &tokio_postgres::Transaction<'_>,
    claim: &Claim,
    s: &Summary,
) -> Result<()> {
    let json = serde_json::to_value(s)?;
    let errors = i32::try_from(s.errors.len()).unwrap_or(i32::MAX);
    tx.execute(
        "INSERT INTO cloudsync.shard_reports (shard, job, summary, errors) VALUES ($1, $2, $3, $4)
         ON CONFLICT (shard) DO UPDATE SET summary = EXCLUDED.summary, errors = EXCLUDED.errors",
        &[&claim.id, &claim.job, &json, &errors],
    )
    .await?;
    Ok(())
}

/// Hands a claimed shard back untouched (guarded by the token): pending again, the attempt
/// not counted.
async fn release(client: &mut Client, claim: &Claim) -> Result<()> {
    client
        .execute(
            "UPDATE cloudsync.shards SET state = 'pending', attempts = attempts - 1,
                    lease_owner = NULL, lease_until = NULL
             WHERE id = $1 AND token = $2 AND state = 'running'",
            &[&claim.id, &claim.token],
        )
        .await?;
    Ok(())
}

/// Records a failed attempt (guarded by the token): the shard goes back to pending, or is dead
/// after `max_attempts`; a dead shard keeps its last report (its errors are the job's).
pub(crate) async fn fail(
    client: &mut Client,
    claim: &Claim,
    msg: &str,
    summary: Option<&Summary>,
    max_attempts: i32,
) -> Result<()> {
    let tx = client.transaction().await?;
    let row = tx
        .query_opt(
            "UPDATE cloudsync.shards
             SET state = CASE WHEN attempts >= $3 THEN 'dead' ELSE 'pending' END,
                 error = $4, lease_owner = NULL, lease_until = NULL
             WHERE id = $1 AND token = $2 AND state = 'running'
             RETURNING state",
            &[&claim.id, &claim.token, &max_attempts, &msg],
        )
        .await?;
    let Some(row) = row else {
        tx.rollback().await?;
        return Err(DistError::LeaseLost {
            shard: claim.id,
            token: claim.token,
        });
    };
    let state: &str = row.get(0);
    if state == "dead" {
        if let Some(s) = summary {
            store_report(&tx, claim, s).await?;
        }
        if matches!(claim.kind.as_str(), "delete" | "rmdir") {
            tx.execute(
                "UPDATE cloudsync.jobs SET state = 'failed', finished = now(),
                        error = coalesce(error, 'the delete phase failed')
                 WHERE id = $1 AND state = 'deleting'",
                &[&claim.job],
            )
            .await?;
        }
    }
    tx.commit().await?;
    Ok(())
}

/// Moves every job whose shards are all finished on (see [`finish_job`]).
async fn finish_ready_jobs(client: &mut Client) -> Result<()> {
    let ids: Vec<i64> = client
        .query(
            "SELECT id FROM cloudsync.jobs j WHERE state IN ('running', 'deleting')
               AND NOT EXISTS (SELECT 1 FROM cloudsync.shards s WHERE s.job = j.id
                               AND s.state IN ('pending', 'running'))",
            &[],
        )
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    for id in ids {
        finish_job(client, id).await?;
    }
    Ok(())
}

/// The one conditional transition out of the copy phase, when no shard of the job is pending
/// or running: to `failed` if any shard is dead or reported an error, or the deletions
/// exceed `max_delete` (then nothing is deleted); to `deleting` if a sync has candidates (its
/// delete shards are queued) or a move removes empty source directories; to `done`
/// otherwise. Then the delete phase's own steps (see [`finish_deletes`]).
pub(crate) async fn finish_job(client: &mut Client, job: JobId) -> Result<()> {
    // Checked first on its own (an index lookup): the transition's facts count over every
    // candidate and report of the job, which must not happen after each shard.
    let unfinished = client
        .query_opt(
            "SELECT 1 FROM cloudsync.shards WHERE job = $1 AND state IN ('pending', 'running')
             LIMIT 1",
            &[&job],
        )
        .await?
        .is_some();
    if unfinished {
        return Ok(());
    }
    let tx = client.transaction().await?;
    let row = tx
        .query_opt(
            "WITH facts AS (
                 SELECT EXISTS (SELECT 1 FROM cloudsync.shards s
                                WHERE s.job = $1 AND s.state = 'dead')
                        OR EXISTS (SELECT 1 FROM cloudsync.shard_reports r
                                   WHERE r.job = $1 AND r.errors > 0) AS errors,
                        (SELECT count(*) FROM cloudsync.delete_candidates c
                         WHERE c.job = $1 AND NOT c.is_dir) AS files,
                        EXISTS (SELECT 1 FROM cloudsync.delete_candidates c
                                WHERE c.job = $1) AS any
             ),
             next AS (
                 SELECT f.errors, f.files, CASE
                     WHEN f.errors THEN 'failed'
                     WHEN j.max_delete IS NOT NULL AND f.files > j.max_delete THEN 'failed'
                     WHEN j.mode = 'sync' AND f.any THEN 'deleting'
                     WHEN j.mode = 'move' AND coalesce(
                         (j.options ->> 'delete_empty_src_dirs')::boolean, false) THEN 'deleting'
                     ELSE 'done' END AS state
                 FROM facts f, cloudsync.jobs j WHERE j.id = $1
             )
             UPDATE cloudsync.jobs j SET
                 state = n.state,
                 error = CASE
                     WHEN n.errors THEN 'errors in the copy phase: nothing was deleted'
                     WHEN n.state = 'failed' THEN
                         format('max delete limit (%s) exceeded: %s files to delete; nothing was deleted',
                                j.max_delete, n.files)
                     ELSE NULL END,
                 finished = CASE WHEN n.state = 'deleting' THEN NULL ELSE now() END
             FROM next n
             WHERE j.id = $1 AND j.state = 'running'
               AND NOT EXISTS (SELECT 1 FROM cloudsync.shards s WHERE s.job = $1
                               AND s.state IN ('pending', 'running'))
             RETURNING j.state",
            &[&job],
        )
        .await?;
    if let Some(r) = row {
        let state: &str = r.get(0);
        tracing::info!(job, state, "copy phase finished");
        if state == "deleting" {
            open_delete_phase(&tx, job).await?;
        }
    }
    tx.commit().await?;
    finish_deletes(client, job).await
}

/// Queues the delete phase's file deletions: one `delete` shard per `batch_size` candidates
/// (a range of candidate ids), which any worker runs; returns how many.
pub(crate) async fn open_delete_phase(
    tx: &tokio_postgres::Transaction<'_>,
    job: JobId,
) -> Result<u64> {
    let default = i64::try_from(crate::job::DEFAULT_BATCH_SIZE).unwrap_or(i64::MAX);
    let n = tx
        .execute(
            "INSERT INTO cloudsync.shards (job, kind, path, src_path, src, dst, decisions)
             SELECT $1, 'delete', '', '', false, true,
                    jsonb_build_object('from', min(p.id), 'to', max(p.id))
             FROM (SELECT c.id, (row_number() OVER (ORDER BY c.id) - 1)
                                / (SELECT greatest(coalesce((j.options ->> 'batch_size')::bigint, $2), 1)
                                   FROM cloudsync.jobs j WHERE j.id = $1) AS page
                   FROM cloudsync.delete_candidates c WHERE c.job = $1 AND NOT c.is_dir) p
             GROUP BY p.page ORDER BY p.page",
            &[&job, &default],
        )
        .await?;
    tracing::info!(job, shards = n, "delete phase opened");
    Ok(n)
}

/// The delete phase's steps, once none of its shards is pending or running (under the job's
/// row lock, so that two workers finishing the last shards at once make each step once):
/// after the file deletions, one `rmdir` shard for the directories (the destination's that the
/// sync removes, the source's empty ones a move removes); after it, `done`. A delete shard
/// given up fails the job.
async fn finish_deletes(client: &mut Client, job: JobId) -> Result<()> {
    let tx = client.transaction().await?;
    let Some(row) = tx
        .query_opt(
            "SELECT coalesce((options ->> 'delete_empty_src_dirs')::boolean, false) AND mode = 'move'
             FROM cloudsync.jobs WHERE id = $1 AND state = 'deleting' FOR UPDATE",
            &[&job],
        )
        .await?
    else {
        return Ok(());
    };
    let src_dirs: bool = row.get(0);
    let facts = tx
        .query_one(
            "SELECT count(*) FILTER (WHERE state IN ('pending', 'running')),
                    count(*) FILTER (WHERE state IN ('dead', 'cancelled')),
                    count(*) FILTER (WHERE kind = 'rmdir')
             FROM cloudsync.shards WHERE job = $1 AND kind IN ('delete', 'rmdir')",
            &[&job],
        )
        .await?;
    let (busy, dead, rmdir): (i64, i64, i64) = (facts.get(0), facts.get(1), facts.get(2));
    if busy > 0 {
        return Ok(());
    }
    // Looked up only now: once per job, not after each delete shard.
    let dst_dirs = rmdir == 0
        && dead == 0
        && tx
            .query_one(
                "SELECT EXISTS (SELECT 1 FROM cloudsync.delete_candidates
                                WHERE job = $1 AND is_dir)",
                &[&job],
            )
            .await?
            .get::<_, bool>(0);
    if dead > 0 {
        tx.execute(
            "UPDATE cloudsync.jobs SET state = 'failed', finished = now(),
                    error = coalesce(error, 'the delete phase failed')
             WHERE id = $1",
            &[&job],
        )
        .await?;
    } else if rmdir == 0 && (dst_dirs || src_dirs) {
        tx.execute(
            "INSERT INTO cloudsync.shards (job, kind, path, src_path, src, dst)
             VALUES ($1, 'rmdir', '', '', false, true)",
            &[&job],
        )
        .await?;
    } else {
        tx.execute(
            "UPDATE cloudsync.jobs SET state = 'done', finished = now() WHERE id = $1",
            &[&job],
        )
        .await?;
        tracing::info!(job, "delete phase finished");
    }
    tx.commit().await?;
    Ok(())
}

#[cfg(feature = "testkit")]
/// Test hook: claims the next shard as `owner` with a lease of `lease`; returns the shard id
/// and its fencing token.
pub async fn claim_for_test(db: &Db, owner: &str, lease: Duration) -> Result<Option<(i64, i64)>> {
    let client = db.connect().await?;
    let opts = WorkerOptions {
        name: owner.to_string(),
        lease,
        ..WorkerOptions::default()
    };
    Ok(claim(&client, &opts, &[]).await?.map(|c| (c.id, c.token)))
}

#[cfg(feature = "testkit")]
/// Test hook: commits the completion of walk shard `shard` (no children, no candidates)
/// with `token`; refused with [`DistError::LeaseLost`] when the token is stale.
pub async fn complete_for_test(db: &Db, shard: i64, token: i64) -> Result<()> {
    let mut client = db.connect().await?;
    let job: i64 = client
        .query_one("SELECT job FROM cloudsync.shards WHERE id = $1", &[&shard])
        .await?
        .get(0);
    let claim = Claim {
        id: shard,
        job,
        kind: "walk".into(),
        pair: DirPair::both(RemotePath::root()),
        token,
        attempts: 1,
        decisions: None,
    };
    complete(&mut client, &claim, &Outcome::default()).await
}

#[cfg(feature = "testkit")]
/// Test hook: claims and runs one shard of any job, committing it as a worker does (and
/// making the job's transition when it was the last); returns whether there was one.
pub async fn run_one_shard_for_test(db: &Db, remotes: &Remotes) -> Result<bool> {
    let mut w = Worker {
        db: db.clone(),
        remotes,
        opts: WorkerOptions::default(),
        client: None,
        heartbeat: None,
        jobs: HashMap::new(),
        skipped: Vec::new(),
        stats: WorkerStats::default(),
    };
    w.step().await
}
