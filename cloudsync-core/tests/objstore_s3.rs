//! The object_store adapter ([`ObjectStoreRemote`]) against a real S3 implementation: moto's
//! server, through object_store's S3 client: multipart uploads and credentials kept out of
//! `Debug`. (The conformance suite runs against it in `conformance.rs`.)

use std::sync::Arc;

use cloudsync_core::{ObjectStoreRemote, Remote, RemotePath};
use object_store::ObjectStore;
use object_store::aws::AmazonS3Builder;

mod common;

use common::{create_bucket, store};

/// A body larger than the adapter's single-put limit goes up as an S3 multipart upload.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_file_goes_up_in_parts() {
    create_bucket("multipart").await;
    let remote = ObjectStoreRemote::new(store("multipart"), "s3://multipart");
    let data: Vec<u8> = (0..20 * 1024 * 1024 + 7u32)
        .map(|i| (i % 251) as u8)
        .collect();
    let path = RemotePath::new("big/file.bin").unwrap();
    let chunks: Vec<cloudsync_core::Result<bytes::Bytes>> = data
        .chunks(1_000_003)
        .map(|c| Ok(bytes::Bytes::copy_from_slice(c)))
        .collect();
    let e = remote
        .write(
            &path,
            futures::StreamExt::boxed(futures::stream::iter(chunks)),
            cloudsync_core::WriteMeta {
                size: Some(data.len() as u64),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(e.size, data.len() as u64);
    let got = cloudsync_core::collect_bytes(remote.read(&path, None).await.unwrap())
        .await
        .unwrap();
    assert!(got[..] == data[..], "content differs");
    // S3 marks multipart ETags with `-<parts>`.
    let etag = remote.stat(&path).await.unwrap().etag.unwrap_or_default();
    assert!(etag.contains('-'), "not a multipart upload: etag {etag}");
}

/// The adapter's `Debug` shows the store by its `Display`: a store's own `Debug` may print its
/// credentials.
#[test]
fn debug_never_prints_the_store_credentials() {
    let store: Arc<dyn ObjectStore> = Arc::new(
        AmazonS3Builder::new()
            .with_endpoint("http://127.0.0.1:1")
            .with_allow_http(true)
            .with_region("us-east-1")
            .with_bucket_name("bkt")
            .with_access_key_id("AKIA-visible")
            .with_secret_access_key("s3-secret-5521")
            .build()
            .unwrap(),
    );
    let shown = format!("{:?}", ObjectStoreRemote::new(store, "s3://bkt"));
    assert!(!shown.contains("s3-secret-5521"), "{shown}");
    assert!(shown.contains("bkt"), "{shown}");
}
