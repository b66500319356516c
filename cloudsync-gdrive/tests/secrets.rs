//! DESIGN.md §4 rule 8 for Google Drive: real operations against the emulator with known
//! credentials (refresh token, client secret, service-account key, the access tokens the
//! emulator issues), then every `Debug` string, error text, all tracing output at TRACE and a
//! saved report are searched for them.

use std::sync::Arc;

use cloudsync_core::queue::{CompareSpec, compare};
use cloudsync_core::testkit::{MemFs, capture_logs};
use cloudsync_core::{
    ErrorContext, Remote, RemotePath, WriteMeta, bytes_stream, collect_bytes, ops,
};
use cloudsync_gdrive::emulator::{DriveEmulator, Fault, REFRESH_TOKEN};
use cloudsync_gdrive::{DriveRemote, GdriveConfig};
use futures::TryStreamExt;

const CLIENT_SECRET: &str = "gdrive-client-secret-3141";
/// Every access token the emulator issues starts with this.
const ACCESS_TOKEN_PREFIX: &str = "ya29.emulator-";

fn p(s: &str) -> RemotePath {
    RemotePath::new(s).unwrap()
}

fn pem_key() -> (String, Vec<u8>) {
    use aws_lc_rs::encoding::AsDer;
    use aws_lc_rs::signature::KeyPair as _;
    use base64::Engine as _;
    let key = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).unwrap();
    let der = AsDer::<aws_lc_rs::encoding::Pkcs8V1Der>::as_der(&key).unwrap();
    let b64 = base64::engine::general_purpose::STANDARD.encode(der.as_ref());
    let pem = format!("-----BEGIN PRIVATE KEY-----\n{b64}\n-----END PRIVATE KEY-----\n");
    (pem, key.public_key().as_ref().to_vec())
}

fn show_err(shown: &mut Vec<String>, e: cloudsync_core::Error) {
    shown.push(format!("{e}"));
    shown.push(format!("{e:?}"));
    shown.push(e.chain());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_credential_reaches_a_debug_string_an_error_a_log_or_a_report() {
    let logs = capture_logs();
    tracing::info!("capture check");
    let emu = DriveEmulator::start().await;
    // SAFETY of the environment: this test binary has one test, so no thread reads it now.
    unsafe { std::env::set_var("CLOUDSYNC_TEST_GDRIVE_CLIENT_SECRET", CLIENT_SECRET) };
    let mut cfg = emu.config().with_chunk_size(256 * 1024);
    cfg.client_secret_env = Some("CLOUDSYNC_TEST_GDRIVE_CLIENT_SECRET".into());
    // Errors are shown as the registry's layers give them: naming the remote.
    let drive = ErrorContext::wrap(Arc::new(DriveRemote::new(cfg.clone()).unwrap()));
    let remote: Arc<dyn Remote> = Arc::new(DriveRemote::new(cfg.clone()).unwrap());

    let mut shown: Vec<String> = Vec::new();

    // Real work: writes (one resumable), reads, listings, a copy and a check from memory.
    drive
        .write(
            &p("a/small.txt"),
            bytes_stream("hello"),
            WriteMeta::default(),
        )
        .await
        .unwrap();
    let big = vec![7u8; 600 * 1024];
    remote
        .write(&p("a/big.bin"), bytes_stream(big), WriteMeta::default())
        .await
        .unwrap();
    let body = collect_bytes(drive.read(&p("a/small.txt"), None).await.unwrap())
        .await
        .unwrap();
    assert_eq!(&body[..], b"hello");
    let listed: Vec<_> = drive
        .list(&p("a"))
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    assert_eq!(listed.len(), 2);
    let src: Arc<dyn Remote> = Arc::new(MemFs::new("src"));
    cloudsync_core::testkit::put_text(&src, "s/one.txt", "1", None).await;
    let summary = ops::copy(&src, &remote, &ops::SyncOptions::default())
        .await
        .unwrap();
    shown.push(format!("{summary:?}"));
    let report = compare(&src, &remote, &CompareSpec::default())
        .await
        .unwrap();
    shown.push(report.to_json().unwrap());
    shown.push(report.to_text(true));

    // The token expires and is refreshed on the 401; failures of every kind.
    emu.expire_tokens();
    drive.stat(&p("a/small.txt")).await.unwrap();
    let missing = drive.stat(&p("missing")).await.unwrap_err();
    assert_eq!(
        missing.remote(),
        Some(drive.describe().as_str()),
        "{missing}"
    );
    show_err(&mut shown, missing);
    emu.inject(
        "*",
        "files",
        Fault::Status {
            status: 403,
            reason: "insufficientPermissions".into(),
            retry_after: None,
        },
        1,
    );
    show_err(&mut shown, drive.stat(&p("a/small.txt")).await.unwrap_err());
    emu.inject("*", "files", Fault::Drop, 1);
    show_err(&mut shown, drive.stat(&p("a/small.txt")).await.unwrap_err());
    emu.inject(
        "POST",
        "token",
        Fault::Status {
            status: 400,
            reason: "x".into(),
            retry_after: None,
        },
        1,
    );
    emu.expire_tokens();
    show_err(&mut shown, drive.stat(&p("a/small.txt")).await.unwrap_err());
    let mut wrong = cfg.clone();
    wrong.client_secret_env = Some("CLOUDSYNC_TEST_GDRIVE_UNSET_SECRET".into());
    show_err(&mut shown, DriveRemote::new(wrong).unwrap_err());

    // A service account: its private key must not show either.
    let (pem, public) = pem_key();
    let email = "secrets@project.iam.gserviceaccount.com";
    emu.add_service_account(email, &public);
    let dir = tempfile::tempdir().unwrap();
    let sa_file = dir.path().join("sa.json");
    std::fs::write(
        &sa_file,
        serde_json::json!({ "client_email": email, "private_key": pem }).to_string(),
    )
    .unwrap();
    let sa = ErrorContext::wrap(Arc::new(
        DriveRemote::new(GdriveConfig::service_account(&sa_file).with_endpoint(&emu.url()))
            .unwrap(),
    ));
    sa.write(&p("sa.txt"), bytes_stream("by jwt"), WriteMeta::default())
        .await
        .unwrap();
    show_err(&mut shown, sa.stat(&p("nope")).await.unwrap_err());

    // Debug of everything that holds a credential, after tokens were cached.
    shown.push(format!("{drive:?}"));
    shown.push(format!("{drive:#?}"));
    shown.push(format!("{remote:?}"));
    shown.push(format!("{sa:?}"));
    shown.push(format!("{sa:#?}"));
    shown.push(format!("{cfg:?}"));
    shown.push(serde_json::to_string(&cfg).unwrap());
    let logs = logs.text();
    assert!(logs.contains("capture check"), "tracing is captured");
    shown.push(logs);

    let key_body: String = pem.lines().nth(1).unwrap().chars().take(40).collect();
    assert!(emu.token_requests() >= 3);
    for text in &shown {
        for secret in [
            REFRESH_TOKEN,
            CLIENT_SECRET,
            ACCESS_TOKEN_PREFIX,
            key_body.as_str(),
        ] {
            assert!(!text.contains(secret), "{secret:?} leaked in:\n{text}");
        }
    }
}
