//! What the API and browser tests share: a service on a free loopback port, an HTTP client,
//! polling, and folders to sync.

#![allow(dead_code, unreachable_pub)]

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use cloudsync_core::queue::OpenRemote;
use cloudsync_core::{Config, Registry};
use cloudsync_serve::{Auth, Service, ServiceConfig};
use serde_json::Value;

/// A running service.
pub struct Running {
    pub base: String,
    pub client: reqwest::Client,
    pub service: Service,
    pub state: tempfile::TempDir,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

/// Opens local paths and `name:path` of `config`.
pub fn local_opener(config: Config) -> Arc<dyn OpenRemote> {
    let mut registry = Registry::new();
    registry.register(Arc::new(cloudsync_local::LocalFactory));
    registry.register(Arc::new(cloudsync_ftp::FtpFactory));
    Arc::new((registry, config))
}

/// Starts a service with `opener` and `auth` on a free loopback port.
pub async fn start(opener: Arc<dyn OpenRemote>, auth: Auth) -> Running {
    start_with(opener, auth, |_| {}).await
}

/// [`start`], with a last say on the config.
pub async fn start_with(
    opener: Arc<dyn OpenRemote>,
    auth: Auth,
    tweak: impl FnOnce(&mut ServiceConfig),
) -> Running {
    let state = tempfile::tempdir().unwrap();
    let mut config = ServiceConfig::new(opener, state.path());
    config.auth = auth;
    tweak(&mut config);
    let service = Service::start(config).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let s = service.clone();
    tokio::spawn(async move {
        s.serve_on(listener, async {
            let _ = rx.await;
        })
        .await
        .unwrap();
    });
    Running {
        base,
        client: reqwest::Client::new(),
        service,
        state,
        stop: Some(tx),
    }
}

impl Running {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// `POST path` with a JSON body; the status and the JSON answer.
    pub async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        let r = self
            .client
            .post(self.url(path))
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// `GET path`; the status and the JSON answer.
    pub async fn get(&self, path: &str) -> (u16, Value) {
        let r = self.client.get(self.url(path)).send().await.unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// Polls `GET /api/v1/jobs/{id}` until the job has ended (30 s at most).
    pub async fn wait_job(&self, id: &str) -> Value {
        for _ in 0..600 {
            let (status, job) = self.get(&format!("/api/v1/jobs/{id}")).await;
            assert_eq!(status, 200, "{job}");
            if ["done", "failed", "cancelled"].contains(&job["state"].as_str().unwrap_or("")) {
                return job;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("job {id} did not end");
    }

    /// Polls `GET /api/v1/reports/{id}` until its queue job is done or failed.
    pub async fn wait_report(&self, id: &str) -> Value {
        for _ in 0..600 {
            let (status, r) = self.get(&format!("/api/v1/reports/{id}")).await;
            assert_eq!(status, 200, "{r}");
            if ["done", "failed"].contains(&r["job"]["state"].as_str().unwrap_or("")) {
                return r;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("report {id} did not finish");
    }
}

/// Every file under `root`: path to content.
pub fn tree(root: &Path) -> BTreeMap<String, Vec<u8>> {
    cloudsync_core::testkit::disk_tree(root)
        .into_iter()
        .map(|(k, (body, _))| (k, body))
        .collect()
}

/// A source with five files and a destination with part of them: `same.txt` identical,
/// `changed.txt` different, `extra.txt` only there.
pub fn two_folders() -> (tempfile::TempDir, tempfile::TempDir) {
    use cloudsync_core::testkit::put_disk_file;
    let (src, dst) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let t = 1_700_000_000;
    put_disk_file(src.path(), "same.txt", b"same", t);
    put_disk_file(src.path(), "changed.txt", b"new content", t + 60);
    put_disk_file(src.path(), "cam1/0001.jpg", b"jpeg-1", t);
    put_disk_file(src.path(), "cam1/0002.jpg", b"jpeg-22", t);
    put_disk_file(src.path(), "cam2/0001.jpg", b"jpeg-333", t);
    put_disk_file(dst.path(), "same.txt", b"same", t);
    put_disk_file(dst.path(), "changed.txt", b"old", t);
    put_disk_file(dst.path(), "extra.txt", b"only here", t);
    (src, dst)
}

/// The path of a temporary folder as a location.
pub fn loc(dir: &tempfile::TempDir) -> String {
    dir.path().display().to_string()
}

/// One Server-Sent Event.
#[derive(Debug, Clone)]
pub struct Sse {
    pub event: String,
    pub data: Value,
}

/// Reads the whole event stream of a job (it ends when the job does).
pub async fn read_events(run: &Running, id: &str) -> (String, Vec<Sse>) {
    let r = run
        .client
        .get(run.url(&format!("/api/v1/jobs/{id}/events")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let content_type = r.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(
        content_type.starts_with("text/event-stream"),
        "{content_type}"
    );
    let text = tokio::time::timeout(Duration::from_secs(60), r.text())
        .await
        .expect("the event stream ends with the job")
        .unwrap();
    (text.clone(), parse_sse(&text))
}

/// Parses `event:` / `data:` blocks; comments (keep-alives) are skipped.
pub fn parse_sse(text: &str) -> Vec<Sse> {
    let mut out = Vec::new();
    for block in text.split("\n\n") {
        let (mut event, mut data) = (String::new(), String::new());
        for line in block.lines() {
            if let Some(v) = line.strip_prefix("event:") {
                event = v.trim().to_owned();
            } else if let Some(v) = line.strip_prefix("data:") {
                data.push_str(v.trim_start());
            }
        }
        if !event.is_empty() {
            let data = serde_json::from_str(&data).unwrap_or(Value::String(data));
            out.push(Sse { event, data });
        }
    }
    out
}
