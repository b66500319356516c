//! vsftpd: no MLSD, MLST or MFMT, so this runs the `LIST` parser with `MDTM` times and the
//! `MDTM time path` form of setting times, over explicit FTPS with `require_ssl_reuse=YES`.

mod common;

use std::sync::{Arc, LazyLock};

use cloudsync_core::Remote;
use cloudsync_core::testkit;
use common::{Ftpd, Kind};

static SERVER: LazyLock<Ftpd> = LazyLock::new(|| Ftpd::start(Kind::Vsftpd));

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vsftpd_explicit_ftps_passes_conformance() {
    let remote: Arc<dyn Remote> = Arc::new(SERVER.tls_config("tls").build().await.unwrap());
    let caps = remote.capabilities();
    assert!(
        caps.write_modtime && caps.set_modtime,
        "MDTM-write expected to be detected: {caps:?}"
    );
    testkit::conformance(remote).await;
}
