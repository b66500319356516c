//! Times listings of a local tree: `list_speed <dir>` lists `<dir>` one level, then walks the
//! whole tree with 8 directories listed concurrently, and prints entries per second.

use std::sync::Arc;
use std::time::Instant;

use cloudsync_core::{Remote, RemotePath};
use cloudsync_local::LocalConfig;
use futures::stream::FuturesUnordered;
use futures::{StreamExt, TryStreamExt};

#[tokio::main]
async fn main() -> cloudsync_core::Result<()> {
    let dir = std::env::args().nth(1).unwrap_or_else(|| ".".to_owned());
    let remote: Arc<dyn Remote> = Arc::new(LocalConfig::new(&dir).build()?);

    let t = Instant::now();
    let n = remote
        .list(&RemotePath::root())
        .await?
        .try_fold(0u64, |n, _| async move { Ok(n + 1) })
        .await?;
    let secs = t.elapsed().as_secs_f64();
    println!(
        "one level: {n} entries in {secs:.3} s ({:.0}/s)",
        n as f64 / secs
    );

    let t = Instant::now();
    let (mut files, mut dirs) = (0u64, 0u64);
    let mut todo = vec![RemotePath::root()];
    let mut running = FuturesUnordered::new();
    loop {
        while running.len() < 8 {
            let Some(d) = todo.pop() else { break };
            let r = remote.clone();
            running.push(async move { r.list(&d).await?.try_collect::<Vec<_>>().await });
        }
        let Some(entries) = running.next().await else {
            break;
        };
        for e in entries? {
            if e.is_dir() {
                dirs += 1;
                todo.push(e.path);
            } else {
                files += 1;
            }
        }
    }
    let secs = t.elapsed().as_secs_f64();
    println!(
        "walk: {files} files, {dirs} dirs in {secs:.3} s ({:.0} entries/s)",
        (files + dirs) as f64 / secs
    );
    Ok(())
}
