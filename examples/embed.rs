//! The shortest useful embedding: sync the photos of one folder into another, printing
//! progress events as they come.
//!
//! `cargo run --example embed -- ./camera ./backup`
use std::{sync::Arc, time::Duration};

use cloudsync::{Event, FilterSet, ops};

#[tokio::main]
async fn main() -> cloudsync::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [src, dst] = args.as_slice() else {
        eprintln!("usage: embed SOURCE DEST   (local paths, sftp://..., memory://...)");
        std::process::exit(1);
    };
    let (src, dst) = (cloudsync::open(src).await?, cloudsync::open(dst).await?);

    let opts = ops::SyncOptions {
        filter: FilterSet::builder()
            .include("*.{jpg,png}")
            .max_age(Duration::from_secs(30 * 86400))
            .build()?,
        events: Some(Arc::new(|e: &Event| match e {
            Event::TransferDone { path, bytes, .. } => println!("copied {path} ({bytes} bytes)"),
            Event::Deleted { path, .. } => println!("deleted {path}"),
            Event::Failed { path, error, .. } => eprintln!("failed {path}: {error}"),
            _ => {}
        })),
        ..Default::default()
    };
    let summary = ops::sync(&src, &dst, &opts).await?;
    println!(
        "{} files copied, {} deleted, {} errors",
        summary.transferred,
        summary.deleted,
        summary.errors.len()
    );
    Ok(())
}
