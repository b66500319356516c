//! The network fault matrix (DESIGN.md §5) against OpenSSH: syncs through a
//! [`ChaosProxy`] that resets and stalls connections, then a calm rerun; nothing may be lost,
//! corrupted, partially visible or left behind. Both directions: local -> SFTP and
//! SFTP -> local.
//!
//! `CLOUDSYNC_FAULT_RUNS` sets the runs per direction (default [`DEFAULT_RUNS`]),
//! `CLOUDSYNC_FAULT_SEED` the seed (printed with the matrix line; run with `--nocapture`).

mod common;

use std::sync::{Arc, LazyLock};
use std::time::Duration;

use cloudsync_core::Remote;
use cloudsync_core::testkit::{
    ChaosProxy, Matrix, ProxyOptions, Side, assert_matrix, matrix_runs, matrix_seed, run_matrix,
};
use cloudsync_local::LocalConfig;
use cloudsync_sftp::SftpRemote;

static SSHD: LazyLock<common::Sshd> = LazyLock::new(|| common::Sshd::start(false));

/// Runs per direction when `CLOUDSYNC_FAULT_RUNS` is not set: the whole matrix (every backend
/// crate) takes about 2.5 minutes on 2 cores.
const DEFAULT_RUNS: usize = 100;

/// A proxy in front of the test sshd, and the SFTP side reached through it, rooted at `root`.
async fn sftp_side(root: &str, opts: ProxyOptions) -> (ChaosProxy, Side) {
    let target = std::net::SocketAddr::from(([127, 0, 0, 1], SSHD.port));
    let proxy = ChaosProxy::start(target, opts).await.unwrap();
    // The host key as seen at the proxy's port.
    let known_hosts = SSHD.state.join(format!("known_hosts-{}", proxy.port()));
    std::fs::write(
        &known_hosts,
        format!(
            "[127.0.0.1]:{} {}\n",
            proxy.port(),
            common::key_line(&SSHD.host_key_pub)
        ),
    )
    .unwrap();
    let mut cfg = SSHD
        .config(root)
        .with_port(proxy.port())
        .with_known_hosts(known_hosts.display().to_string())
        .with_connections(2);
    // A stalled request fails after 2 s rather than the default.
    cfg.timeout = 2;
    let dir = SSHD.data.join(root);
    let side = Side::new(dir, move || {
        let cfg = cfg.clone();
        async move { Ok(Arc::new(SftpRemote::connect(cfg).await?) as Arc<dyn Remote>) }
    });
    (proxy, side)
}

/// Resets and some stalls.
fn faults(seed: u64) -> ProxyOptions {
    ProxyOptions::new(seed)
        .fault_rate(0.4)
        .stall_share(0.1)
        .stall_for(Duration::from_secs(4))
}

fn local_side(dir: &std::path::Path) -> Side {
    let d = dir.to_owned();
    Side::new(dir, move || {
        let d = d.clone();
        async move { Ok(Arc::new(LocalConfig::new(&d).build()?) as Arc<dyn Remote>) }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_matrix_upload_sftp() {
    let seed = matrix_seed();
    let local = tempfile::tempdir().unwrap();
    let (proxy, remote) = sftp_side("matrix-up", faults(seed)).await;
    let matrix = Matrix {
        name: "sftp/OpenSSH local->remote".into(),
        source: local_side(local.path()),
        destination: remote,
        runs: matrix_runs(DEFAULT_RUNS),
        seed,
        sync_timeout: Duration::from_secs(60),
    };
    assert_matrix(&run_matrix(&matrix, &proxy).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_matrix_download_sftp() {
    let seed = matrix_seed();
    let local = tempfile::tempdir().unwrap();
    let (proxy, remote) = sftp_side("matrix-down", faults(seed)).await;
    let matrix = Matrix {
        name: "sftp/OpenSSH remote->local".into(),
        source: remote,
        destination: local_side(local.path()),
        runs: matrix_runs(DEFAULT_RUNS),
        seed,
        sync_timeout: Duration::from_secs(60),
    };
    assert_matrix(&run_matrix(&matrix, &proxy).await);
}

/// Connections closed cleanly (FIN) mid-stream instead of reset.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_matrix_upload_sftp_clean_closes() {
    let seed = matrix_seed();
    let local = tempfile::tempdir().unwrap();
    let opts = faults(seed).stall_share(0.0).cut_share(1.0);
    let (proxy, remote) = sftp_side("matrix-cut", opts).await;
    let matrix = Matrix {
        name: "sftp/OpenSSH clean closes".into(),
        source: local_side(local.path()),
        destination: remote,
        runs: matrix_runs(DEFAULT_RUNS).div_ceil(4),
        seed,
        sync_timeout: Duration::from_secs(60),
    };
    assert_matrix(&run_matrix(&matrix, &proxy).await);
}
