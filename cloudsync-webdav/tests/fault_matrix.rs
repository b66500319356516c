//! The network fault matrix (DESIGN.md §5) against Apache mod_dav and `rclone serve webdav`:
//! local -> WebDAV through a [`ChaosProxy`] that resets and stalls connections, then a calm
//! rerun; nothing may be lost, corrupted, partially visible or left behind.
//!
//! `CLOUDSYNC_FAULT_RUNS` sets the runs per server (default [`DEFAULT_RUNS`]),
//! `CLOUDSYNC_FAULT_SEED` the seed (printed with the matrix line; run with `--nocapture`).

mod common;

use std::sync::{Arc, LazyLock};
use std::time::Duration;

use cloudsync_core::testkit::{
    ChaosProxy, Matrix, ProxyOptions, Side, assert_matrix, matrix_runs, matrix_seed, run_matrix,
};
use cloudsync_core::{Remote, RemotePath};
use cloudsync_webdav::{Vendor, WebdavConfig, WebdavRemote};
use common::{DavServer, PASSWORD, USER};

static APACHE: LazyLock<DavServer> = LazyLock::new(common::start_apache);
static RCLONE: LazyLock<DavServer> = LazyLock::new(common::start_rclone);

/// Runs per server when `CLOUDSYNC_FAULT_RUNS` is not set: the whole matrix (every backend
/// crate) takes about 2.5 minutes on 2 cores.
const DEFAULT_RUNS: usize = 100;

fn config(url: String) -> WebdavConfig {
    let mut cfg = WebdavConfig::new(url)
        .with_vendor(Vendor::Generic)
        .with_password(USER, PASSWORD);
    // A stalled request fails after 2 s rather than the default.
    cfg.timeout = 2;
    cfg
}

/// Resets and some stalls.
fn faults(seed: u64) -> ProxyOptions {
    ProxyOptions::new(seed)
        .fault_rate(0.4)
        .stall_share(0.1)
        .stall_for(Duration::from_secs(4))
}

/// Clean closes (FIN) mid-stream only: a request body cut short must not be stored.
fn cuts(seed: u64) -> ProxyOptions {
    faults(seed).stall_share(0.0).cut_share(1.0)
}

async fn matrix(server: &DavServer, name: &str, opts: fn(u64) -> ProxyOptions, runs: usize) {
    let seed = matrix_seed();
    let addr = url::Url::parse(&server.url).unwrap();
    let target = std::net::SocketAddr::from(([127, 0, 0, 1], addr.port().unwrap()));
    let proxy = ChaosProxy::start(target, opts(seed)).await.unwrap();
    let sub = format!("matrix-{:08x}", fastrand::u32(..));
    // The directory is made directly (not through the proxy).
    WebdavRemote::new(config(server.url.clone()))
        .unwrap()
        .mkdir(&RemotePath::new(&sub).unwrap())
        .await
        .unwrap();
    let url = format!("http://127.0.0.1:{}{}{sub}/", proxy.port(), addr.path());
    let remote = Side::new(server.data.join(&sub), move || {
        let cfg = config(url.clone());
        async move { Ok(Arc::new(WebdavRemote::new(cfg)?) as Arc<dyn Remote>) }
    });
    let local = tempfile::tempdir().unwrap();
    let dir = local.path().to_owned();
    let source = Side::new(local.path(), move || {
        let d = dir.clone();
        async move { Ok(Arc::new(cloudsync_local::LocalConfig::new(&d).build()?) as Arc<dyn Remote>) }
    });
    let matrix = Matrix {
        name: name.into(),
        source,
        destination: remote,
        runs,
        seed,
        sync_timeout: Duration::from_secs(60),
    };
    assert_matrix(&run_matrix(&matrix, &proxy).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_matrix_apache() {
    matrix(
        &APACHE,
        "webdav/Apache local->remote",
        faults,
        matrix_runs(DEFAULT_RUNS),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_matrix_apache_clean_closes() {
    let runs = matrix_runs(DEFAULT_RUNS).div_ceil(4);
    matrix(&APACHE, "webdav/Apache clean closes", cuts, runs).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_matrix_rclone() {
    matrix(
        &RCLONE,
        "webdav/rclone local->remote",
        faults,
        matrix_runs(DEFAULT_RUNS),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_matrix_rclone_clean_closes() {
    let runs = matrix_runs(DEFAULT_RUNS).div_ceil(4);
    matrix(&RCLONE, "webdav/rclone clean closes", cuts, runs).await;
}
