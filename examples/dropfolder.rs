//! Pull the files another system drops into a folder into the managed area, the way a
//! scheduled job does (cron, systemd timer): skip files still being written, keep an archive
//! copy of each file and a report of each run, never run twice at once.
//!
//! ```sh
//! cargo run --example dropfolder -- sftp://erp@files.example.com/outbox /srv/platform/inbox
//! cargo run --example dropfolder -- ./drop ./managed 0   # settle 0 s: take files at once
//! ```
//!
//! Exit code 0 when every eligible file was ingested, 1 when some failed (they stay in the drop
//! folder for the next run), 2 when the run did not happen (another run holds the lock, the
//! drop folder cannot be read).

use std::process::ExitCode;
use std::time::Duration;

use cloudsync::ingest::{IngestOptions, ingest};
use cloudsync::{ErrorKind, FilterSet};

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [drop, target, rest @ ..] = args.as_slice() else {
        eprintln!("usage: dropfolder DROP TARGET [SETTLE_SECS]");
        return ExitCode::from(2);
    };
    let settle = rest.first().and_then(|s| s.parse().ok()).unwrap_or(60);
    match run(drop, target, Duration::from_secs(settle)).await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) if e.kind() == ErrorKind::Conflict => {
            eprintln!("not running: {e}");
            ExitCode::from(2)
        }
        Err(e) => {
            eprintln!("ingest failed: {}", e.chain());
            ExitCode::from(2)
        }
    }
}

async fn run(drop: &str, target: &str, settle: Duration) -> cloudsync::Result<bool> {
    let drop = cloudsync::open(drop).await?;
    let target = cloudsync::open(target).await?;
    let opts = IngestOptions {
        // The ERP writes `*.part` files and renames them when complete.
        filter: FilterSet::builder().exclude("*.part").build()?,
        settle,
        // Archives in `<drop>/archives/<date>/`, reports in `<drop>/reports/` (the defaults).
        ..Default::default()
    };
    let report = ingest(&drop, &target, &opts).await?;
    print!("{}", report.to_text());
    if let Some(json) = report.report_files.first() {
        println!("report: {json}");
    }
    Ok(report.is_ok())
}
