//! Sync the photos of one folder into another (paths or URLs), printing progress as it goes:
//! `cargo run --example embed -- ./camera ./backup`
use std::sync::Arc;

use cloudsync::{Event, FilterSet, ops};

#[tokio::main]
async fn main() -> cloudsync::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [src, dst] = args.as_slice() else {
        eprintln!("usage: embed SRC DST");
        std::process::exit(2);
    };
    let (src, dst) = (cloudsync::open(src).await?, cloudsync::open(dst).await?);
    let opts = ops::SyncOptions {
        filter: FilterSet::builder().include("*.{jpg,png}").build()?,
        events: Some(Arc::new(|e: &Event| match e {
            Event::Progress { path, bytes, size } => println!("{path}: {bytes}/{size} bytes"),
            Event::TransferDone { path, .. } => println!("copied {path}"),
            Event::Failed { path, error, .. } => eprintln!("failed {path}: {error}"),
            _ => {}
        })),
        ..Default::default()
    };
    let summary = ops::sync(&src, &dst, &opts).await?;
    println!(
        "{} copied, {} errors",
        summary.transferred,
        summary.errors.len()
    );
    Ok(())
}
