//! Copies one file between local disk and an SFTP server and prints the throughput; used to
//! compare with OpenSSH's `sftp` client.
//!
//! ```text
//! cargo run --release -p cloudsync-sftp --example transfer -- up   LOCAL_FILE URL NAME
//! cargo run --release -p cloudsync-sftp --example transfer -- down LOCAL_FILE URL NAME
//! ```
//! where URL is an `sftp://` URL of the remote directory, for example
//! `sftp://root@127.0.0.1:2222//srv/data?key_file=/tmp/key&known_hosts=/tmp/known_hosts`.

use std::path::PathBuf;
use std::time::Instant;

use cloudsync_core::{BackendFactory, RemotePath, WriteMeta};
use cloudsync_sftp::SftpFactory;
use futures::TryStreamExt;
use tokio::io::AsyncWriteExt;

#[tokio::main]
async fn main() -> cloudsync_core::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [dir, local, url, name] = args.as_slice() else {
        eprintln!("usage: transfer up|down LOCAL_FILE SFTP_URL NAME");
        std::process::exit(2);
    };
    let local = PathBuf::from(local);
    let url = url::Url::parse(url).map_err(|e| {
        cloudsync_core::Error::new(cloudsync_core::ErrorKind::InvalidInput, e.to_string())
    })?;
    let remote = SftpFactory.open(SftpFactory.config_from_url(&url)?).await?;
    let path = RemotePath::new(name)?;
    let start = Instant::now();
    let bytes = match dir.as_str() {
        "up" => {
            let meta = WriteMeta {
                size: Some(std::fs::metadata(&local)?.len()),
                ..Default::default()
            };
            remote.write_from_file(&path, &local, meta).await?.size
        }
        "down" => {
            let mut body = remote.read(&path, None).await?;
            let mut file = tokio::fs::File::create(&local).await?;
            let mut n = 0u64;
            while let Some(chunk) = body.try_next().await? {
                n += chunk.len() as u64;
                file.write_all(&chunk).await?;
            }
            file.flush().await?;
            n
        }
        other => {
            eprintln!("unknown direction {other:?} (up or down)");
            std::process::exit(2);
        }
    };
    let secs = start.elapsed().as_secs_f64();
    println!(
        "{dir} {bytes} bytes in {secs:.3} s = {:.1} MiB/s",
        bytes as f64 / secs / 1024.0 / 1024.0
    );
    Ok(())
}
