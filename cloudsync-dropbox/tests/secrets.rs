//! DESIGN.md §4 rule 8 for Dropbox: real operations against the emulator with known
//! credentials (app secret, refresh token, every access token the token endpoint issues),
//! then every `Debug` string, the config as JSON, error texts, all tracing output at TRACE
//! and a saved report are searched for them.

use std::sync::{Arc, Mutex};

use cloudsync_core::queue::{CompareSpec, compare};
use cloudsync_core::testkit::{MemFs, capture_logs};
use cloudsync_core::{
    ErrorContext, Remote, RemotePath, WriteMeta, bytes_stream, collect_bytes, ops,
};
use cloudsync_dropbox::emulator::{Emulator, EmulatorOptions, Fault};
use cloudsync_dropbox::{DropboxConfig, DropboxRemote, TokenInfo};
use futures::TryStreamExt;

const APP_SECRET: &str = "dbx-app-secret-2718";

fn p(s: &str) -> RemotePath {
    RemotePath::new(s).unwrap()
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
    let emu = Emulator::start_with(EmulatorOptions::default().with_app_secret(APP_SECRET)).unwrap();
    let issued: Arc<Mutex<Vec<TokenInfo>>> = Arc::default();
    let seen = issued.clone();
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token.json");
    let cfg = emu
        .config()
        .with_chunk_size(4 * 1024 * 1024)
        .with_token_callback(Arc::new(move |t: &TokenInfo| {
            seen.lock().unwrap().push(t.clone())
        }));
    // Errors are shown as the registry's layers give them: naming the remote.
    let dbx = ErrorContext::wrap(Arc::new(DropboxRemote::new(cfg.clone()).unwrap()));
    let remote: Arc<dyn Remote> = Arc::new(DropboxRemote::new(cfg.clone()).unwrap());
    let mut shown: Vec<String> = Vec::new();

    // Real work: writes (one through an upload session), reads, listings, copy, check.
    dbx.write(
        &p("a/small.txt"),
        bytes_stream("hello"),
        WriteMeta::default(),
    )
    .await
    .unwrap();
    remote
        .write(
            &p("a/big.bin"),
            bytes_stream(vec![3u8; 5 * 1024 * 1024]),
            WriteMeta::default(),
        )
        .await
        .unwrap();
    let body = collect_bytes(dbx.read(&p("a/small.txt"), None).await.unwrap())
        .await
        .unwrap();
    assert_eq!(&body[..], b"hello");
    let listed: Vec<_> = dbx
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

    // Expired tokens are refreshed (debug logs); failures of every kind.
    emu.expire_tokens();
    dbx.stat(&p("a/small.txt")).await.unwrap();
    emu.inject("files/get_metadata", Fault::ExpireToken, 1);
    dbx.stat(&p("a/small.txt")).await.unwrap();
    let missing = dbx.stat(&p("missing")).await.unwrap_err();
    assert_eq!(missing.remote(), Some(dbx.describe().as_str()), "{missing}");
    show_err(&mut shown, missing);
    emu.inject("files/get_metadata", Fault::Status(503), 1);
    show_err(&mut shown, dbx.stat(&p("a/small.txt")).await.unwrap_err());
    emu.inject("files/get_metadata", Fault::Drop, 1);
    show_err(&mut shown, dbx.stat(&p("a/small.txt")).await.unwrap_err());
    emu.inject("oauth2/token", Fault::Status(500), 1);
    emu.expire_tokens();
    show_err(&mut shown, dbx.stat(&p("a/small.txt")).await.unwrap_err());
    let wrong = cfg
        .clone()
        .with_app_secret(format!("{APP_SECRET}-wrong"))
        .with_refresh_token(format!("{}-wrong", emu.refresh_token()));
    let bad = ErrorContext::wrap(Arc::new(DropboxRemote::new(wrong.clone()).unwrap()));
    show_err(&mut shown, bad.stat(&p("a")).await.unwrap_err());
    shown.push(format!("{wrong:?}"));
    shown.push(serde_json::to_string(&wrong).unwrap());

    // A token file written back on refresh; its remote is shown too.
    std::fs::write(
        &token_file,
        serde_json::json!({ "refresh_token": emu.refresh_token() }).to_string(),
    )
    .unwrap();
    let mut from_file = DropboxConfig::new(emu.app_key())
        .with_app_secret(APP_SECRET)
        .with_urls(emu.api_url(), emu.content_url(), emu.token_url());
    from_file.token_file = Some(token_file.clone());
    let filed = ErrorContext::wrap(Arc::new(DropboxRemote::new(from_file.clone()).unwrap()));
    filed.stat(&p("a/small.txt")).await.unwrap();
    shown.push(format!("{filed:?}"));
    shown.push(format!("{from_file:?}"));

    // Debug and JSON of everything holding a credential, after tokens were cached.
    shown.push(format!("{dbx:?}"));
    shown.push(format!("{dbx:#?}"));
    shown.push(format!("{remote:?}"));
    shown.push(format!("{cfg:?}"));
    shown.push(format!("{:?}", cfg.refresh_token));
    shown.push(format!("{:?}", cfg.app_secret));
    shown.push(serde_json::to_string(&cfg).unwrap());
    let issued = issued.lock().unwrap().clone();
    assert!(issued.len() >= 3, "tokens were refreshed");
    shown.push(format!("{issued:?}"));
    let logs = logs.text();
    assert!(
        logs.contains("refreshing the Dropbox access token"),
        "{logs}"
    );
    shown.push(logs);

    let mut secrets = vec![APP_SECRET.to_owned(), emu.refresh_token().to_owned()];
    secrets.extend(issued.iter().map(|t| t.access_token.expose().to_owned()));
    for text in &shown {
        for secret in &secrets {
            assert!(
                !text.contains(secret.as_str()),
                "{secret:?} leaked in:\n{text}"
            );
        }
    }
}
