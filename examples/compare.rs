//! Check that every picture of a camera reached the server, keep the report, and later copy
//! exactly what the report says is missing ("re-run & sync"), through a report queue kept in
//! a folder (any location: local, SFTP, WebDAV, ...).
//!
//! ```sh
//! # queue a compare and process the queue; prints the report
//! cargo run --example compare -- check ./camera sftp://me@server/pictures
//! # queue a re-run & sync of an earlier report (by id) and process it
//! cargo run --example compare -- resync 3f2a9c01b7de
//! # list the jobs and their state
//! cargo run --example compare -- jobs
//! ```
//!
//! The queue lives in `./compare-queue` (set `COMPARE_QUEUE` to use another location).

use std::sync::Arc;

use cloudsync::RemotePath;
use cloudsync::queue::{CompareSpec, JobRequest, JobState, ReportQueue};

#[tokio::main]
async fn main() -> cloudsync::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let location = std::env::var("COMPARE_QUEUE").unwrap_or_else(|_| "./compare-queue".into());
    if !location.contains("://") {
        std::fs::create_dir_all(&location)?;
    }
    let queue = ReportQueue::new(
        cloudsync::open(&location).await?,
        RemotePath::root(),
        Arc::new(cloudsync::registry()),
    );
    match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["check", src, dst] => {
            let spec = CompareSpec {
                one_way: true, // extra files on the server do not matter here
                ..Default::default()
            };
            let job = queue
                .enqueue(JobRequest::Compare {
                    source: (*src).to_owned(),
                    destination: (*dst).to_owned(),
                    options: Box::new(spec),
                })
                .await?;
            process(&queue).await?;
            print!("{}", queue.report(&job.id).await?.to_text(false));
        }
        ["resync", id] => {
            let job = queue.enqueue_resync(id, false).await?;
            process(&queue).await?;
            print!("{}", queue.report(&job.id).await?.to_text(false));
        }
        ["jobs"] => {
            for j in queue.jobs().await? {
                let what = match &j.request {
                    JobRequest::Compare {
                        source,
                        destination,
                        ..
                    } => format!("compare {source} -> {destination}"),
                    JobRequest::Resync { report, .. } => format!("resync of {report}"),
                    _ => "other".to_owned(),
                };
                println!("{} {:7} {what}", j.id, j.state.to_string());
            }
        }
        _ => eprintln!("usage: compare check SRC DST | compare resync ID | compare jobs"),
    }
    Ok(())
}

/// Runs every queued job, one after another.
async fn process(queue: &ReportQueue) -> cloudsync::Result<()> {
    for job in queue.process_all().await? {
        if job.state == JobState::Failed {
            eprintln!("job {} failed: {}", job.id, job.error.unwrap_or_default());
        }
    }
    Ok(())
}
