//! The network fault matrix (DESIGN.md §5) against vsftpd and ProFTPD: local -> FTP through a
//! [`ChaosProxy`] that resets and stalls connections, then a calm rerun; nothing may be lost,
//! corrupted, partially visible or left behind. The proxy rewrites the servers' `PASV`/`EPSV`
//! replies, so the data connections go through it (and break) too.
//!
//! `CLOUDSYNC_FAULT_RUNS` sets the runs per server (default [`DEFAULT_RUNS`]),
//! `CLOUDSYNC_FAULT_SEED` the seed (printed with the matrix line; run with `--nocapture`).

mod common;

use std::sync::{Arc, LazyLock};
use std::time::Duration;

use cloudsync_core::Remote;
use cloudsync_core::testkit::{
    ChaosProxy, Matrix, ProxyOptions, Side, assert_matrix, matrix_runs, matrix_seed, run_matrix,
};
use cloudsync_local::LocalConfig;
use common::{Ftpd, Kind};

static VSFTPD: LazyLock<Ftpd> = LazyLock::new(|| Ftpd::start(Kind::Vsftpd));
static PROFTPD: LazyLock<Ftpd> = LazyLock::new(|| Ftpd::start(Kind::Proftpd));

/// Runs per server when `CLOUDSYNC_FAULT_RUNS` is not set: the whole matrix (every backend
/// crate) takes about 2.5 minutes on 2 cores.
const DEFAULT_RUNS: usize = 100;

/// Resets and some stalls.
fn faults(seed: u64) -> ProxyOptions {
    ProxyOptions::new(seed)
        .fault_rate(0.4)
        .stall_share(0.1)
        .stall_for(Duration::from_secs(4))
        .ftp(true)
}

async fn matrix(server: &Ftpd, name: &str, opts: fn(u64) -> ProxyOptions) {
    let seed = matrix_seed();
    let target = std::net::SocketAddr::from(([127, 0, 0, 1], server.server.port()));
    let proxy = ChaosProxy::start(target, opts(seed)).await.unwrap();
    let sub = format!("matrix-{:08x}", fastrand::u32(..));
    // A stalled request fails after 2 s rather than the default.
    let cfg = server.config(&sub).with_port(proxy.port()).with_timeout(2);
    let remote = Side::new(server.data.join(&sub), move || {
        let cfg = cfg.clone();
        async move { Ok(Arc::new(cfg.build().await?) as Arc<dyn Remote>) }
    });
    let local = tempfile::tempdir().unwrap();
    let dir = local.path().to_owned();
    let source = Side::new(local.path(), move || {
        let d = dir.clone();
        async move { Ok(Arc::new(LocalConfig::new(&d).build()?) as Arc<dyn Remote>) }
    });
    let matrix = Matrix {
        name: name.into(),
        source,
        destination: remote,
        runs: matrix_runs(DEFAULT_RUNS),
        seed,
        sync_timeout: Duration::from_secs(60),
    };
    let report = run_matrix(&matrix, &proxy).await;
    let stats = proxy.stats();
    assert!(
        stats.data_connections > 0,
        "no data connection went through the proxy: {stats:?}"
    );
    assert_matrix(&report);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_matrix_vsftpd() {
    matrix(&VSFTPD, "ftp/vsftpd local->remote", faults).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_matrix_proftpd() {
    matrix(&PROFTPD, "ftp/ProFTPD local->remote", faults).await;
}

/// Connections closed cleanly (FIN) mid-stream instead of reset. An FTP server takes a data
/// connection closed early for the end of the file (stream mode has no other end marker)
/// and answers `226`; only the client knows it sent more. The upload must then not be
/// committed: a short temporary file renamed over the final name is a partial file visible.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_matrix_vsftpd_clean_closes() {
    matrix(&VSFTPD, "ftp/vsftpd clean closes", |seed| {
        faults(seed).stall_share(0.0).cut_share(1.0)
    })
    .await;
}
