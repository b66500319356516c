//! The web page in a real browser: headless Chromium (Debian's `chromium` and
//! `chromium-driver`, installed by `scripts/install.d/serve.sh`) driven through chromedriver
//! with the WebDriver protocol. The client is the few WebDriver calls below over reqwest, so
//! that no WebDriver crate (and its TLS stack) is needed.
//!
//! The test creates a compare report between two folders, reads the counts the page shows
//! against the folders' real difference, clicks Re-run & Sync, watches the progress complete
//! and checks that the destination equals the source. Screenshots go to
//! `<target>/screenshots/`.

mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use base64::Engine as _;
use cloudsync_core::Config;
use cloudsync_serve::Auth;
use serde_json::{Value, json};
use support::{loc, start, tree};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// chromedriver on a free port. When dropped (also when the test fails part-way), it ends
/// its browser sessions first — killing chromedriver alone would leave Chromium running —
/// and then itself.
struct Driver {
    child: Child,
    port: u16,
    base: String,
    http: reqwest::Client,
    sessions: std::sync::Mutex<Vec<String>>,
    /// The browsers' profiles, one folder per session, removed after the driver has ended
    /// them (left to itself, chromedriver leaves a profile in /tmp for each session).
    profiles: tempfile::TempDir,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let sessions =
            std::mem::take(&mut *self.sessions.lock().unwrap_or_else(|p| p.into_inner()));
        for id in sessions {
            delete_session_blocking(self.port, &id);
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `DELETE /session/{id}` without an async runtime (from `Drop`).
fn delete_session_blocking(port: u16, id: &str) {
    use std::io::{Read, Write};
    let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let request = format!(
        "DELETE /session/{id} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\
         Content-Length: 0\r\nConnection: close\r\n\r\n"
    );
    if stream.write_all(request.as_bytes()).is_ok() {
        let mut answer = Vec::new();
        let _ = stream.read_to_end(&mut answer);
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Driver {
    async fn start() -> Driver {
        for program in [CHROMIUM, CHROMEDRIVER] {
            assert!(
                Path::new(program).exists(),
                "{program} is missing: the browser test needs Debian's chromium and \
                 chromium-driver; run `bash scripts/install-test-deps.sh` (it runs \
                 scripts/install.d/serve.sh)"
            );
        }
        let port = free_port();
        let child = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let driver = Driver {
            child,
            port,
            base: format!("http://127.0.0.1:{port}"),
            http: reqwest::Client::new(),
            sessions: std::sync::Mutex::new(Vec::new()),
            profiles: tempfile::Builder::new()
                .prefix("cloudsync-chromium-")
                .tempdir()
                .expect("a temp dir for browser profiles"),
        };
        for _ in 0..100 {
            if let Ok(r) = driver
                .http
                .get(format!("{}/status", driver.base))
                .send()
                .await
            {
                if let Ok(v) = r.json::<Value>().await {
                    if v["value"]["ready"] == true {
                        return driver;
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("chromedriver did not become ready");
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r = req.send().await.expect("chromedriver answers");
        let status = r.status();
        let v: Value = r.json().await.expect("WebDriver JSON");
        assert!(status.is_success(), "WebDriver {path}: {status} {v}");
        v["value"].clone()
    }

    async fn session(&self) -> Session<'_> {
        let n = self.sessions.lock().unwrap().len();
        let profile = self.profiles.path().join(format!("session-{n}"));
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                         "--disable-dev-shm-usage", "--window-size=1280,1800",
                         format!("--user-data-dir={}", profile.display())]
            }
        }}});
        let v = self
            .call(reqwest::Method::POST, "/session", Some(caps))
            .await;
        let id = v["sessionId"].as_str().expect("a session id").to_owned();
        self.sessions.lock().unwrap().push(id.clone());
        Session { driver: self, id }
    }
}

struct Session<'a> {
    driver: &'a Driver,
    id: String,
}

impl Session<'_> {
    async fn post(&self, path: &str, body: Value) -> Value {
        let path = format!("/session/{}{path}", self.id);
        self.driver
            .call(reqwest::Method::POST, &path, Some(body))
            .await
    }

    async fn get(&self, path: &str) -> Value {
        let path = format!("/session/{}{path}", self.id);
        self.driver.call(reqwest::Method::GET, &path, None).await
    }

    async fn goto(&self, url: &str) {
        self.post("/url", json!({ "url": url })).await;
    }

    async fn find(&self, css: &str) -> String {
        let v = self
            .post("/element", json!({"using": "css selector", "value": css}))
            .await;
        match v[ELEMENT].as_str() {
            Some(e) => e.to_owned(),
            None => panic!("no element {css:?}: {v}"),
        }
    }

    async fn click(&self, css: &str) {
        let e = self.find(css).await;
        self.post(&format!("/element/{e}/click"), json!({})).await;
    }

    async fn type_into(&self, css: &str, text: &str) {
        let e = self.find(css).await;
        self.post(&format!("/element/{e}/value"), json!({ "text": text }))
            .await;
    }

    async fn text(&self, css: &str) -> String {
        let e = self.find(css).await;
        self.get(&format!("/element/{e}/text"))
            .await
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// Runs `script` in the page and returns its value.
    async fn js(&self, script: &str) -> Value {
        self.post("/execute/sync", json!({"script": script, "args": []}))
            .await
    }

    /// Waits (20 s at most) until `script` returns true.
    async fn wait_for(&self, what: &str, script: &str) {
        for _ in 0..200 {
            if self.js(script).await == true {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("the page never showed: {what}");
    }

    async fn screenshot(&self, name: &str) -> PathBuf {
        let data = self.get("/screenshot").await;
        let png = base64::engine::general_purpose::STANDARD
            .decode(data.as_str().expect("base64 PNG"))
            .unwrap();
        let dir = target_dir().join("screenshots");
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, png).unwrap();
        println!("screenshot: {}", path.display());
        path
    }

    async fn close(self) {
        let path = format!("/session/{}", self.id);
        self.driver.call(reqwest::Method::DELETE, &path, None).await;
        self.driver
            .sessions
            .lock()
            .unwrap()
            .retain(|s| *s != self.id);
    }
}

/// The build's target directory (`CARGO_TARGET_DIR` or the workspace's `target`).
fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"))
}

/// The real difference of two folders, in the report's categories.
fn difference(src: &Path, dst: &Path) -> BTreeMap<&'static str, usize> {
    let (s, d) = (tree(src), tree(dst));
    let only_src = s.keys().filter(|k| !d.contains_key(*k)).count();
    let only_dst = d.keys().filter(|k| !s.contains_key(*k)).count();
    let differ = s
        .iter()
        .filter(|(k, v)| d.get(*k).is_some_and(|w| w != *v))
        .count();
    let same = s.iter().filter(|(k, v)| d.get(*k) == Some(*v)).count();
    [
        ("missing_on_dst", only_src),
        ("missing_on_src", only_dst),
        ("differ", differ),
        ("matched", same),
    ]
    .into()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_creates_a_report_and_re_runs_and_syncs_it() {
    use cloudsync_core::testkit::put_disk_file;
    let (src, dst) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let t = 1_700_000_000;
    for (i, name) in [
        "cam1/0001.jpg",
        "cam1/0002.jpg",
        "cam1/0003.jpg",
        "cam2/0001.jpg",
        "cam2/0002.jpg",
        "index.txt",
    ]
    .iter()
    .enumerate()
    {
        let body = format!("{name} {}", "x".repeat(1000 * (i + 1)));
        put_disk_file(src.path(), name, body.as_bytes(), t);
        if i % 3 == 0 {
            put_disk_file(dst.path(), name, body.as_bytes(), t);
        }
    }
    let expected = difference(src.path(), dst.path());
    assert_eq!(expected["missing_on_dst"], 4);

    let run = start(support::local_opener(Config::default()), Auth::None).await;
    let driver = Driver::start().await;
    let page = driver.session().await;
    page.goto(&format!("{}/", run.base)).await;
    page.wait_for(
        "the form",
        "return !!document.getElementById('report-form')",
    )
    .await;
    page.type_into("#src", &loc(&src)).await;
    page.type_into("#dst", &loc(&dst)).await;
    page.click("#create-report").await;
    page.wait_for(
        "the report done in the queue",
        "const r = document.querySelector('#queue tbody tr'); return !!r && r.dataset.state === 'done';",
    )
    .await;
    page.screenshot("serve-1-queue").await;

    page.click("#queue tbody tr button").await;
    page.wait_for(
        "the report's analysis",
        "return !document.getElementById('report').hidden && \
         document.querySelectorAll('#report-list tbody tr').length > 0",
    )
    .await;
    for (key, want) in &expected {
        let shown = page.text(&format!("#count-{key}")).await;
        assert_eq!(shown, want.to_string(), "count {key}");
    }
    let rows = page
        .js("return [...document.querySelectorAll('#report-list tbody tr td:first-child')].map(td => td.textContent)")
        .await;
    assert_eq!(
        rows,
        json!([
            "cam1/0002.jpg",
            "cam1/0003.jpg",
            "cam2/0002.jpg",
            "index.txt"
        ])
    );
    page.screenshot("serve-2-report").await;

    page.click("#resync").await;
    page.wait_for(
        "the re-run done",
        "return document.getElementById('resync-status').dataset.state === 'done'",
    )
    .await;
    let bar = page
        .js("const p = document.getElementById('resync-progress'); return [p.value, p.max];")
        .await;
    assert_eq!(bar, json!([4, 4]), "the progress bar is complete");
    page.wait_for(
        "the follow-up report in the queue",
        "return [...document.querySelectorAll('#queue tbody tr td')].some(td => td.textContent === 'resync')",
    )
    .await;
    page.screenshot("serve-3-resynced").await;
    assert_eq!(
        tree(dst.path()),
        tree(src.path()),
        "the destination equals the source"
    );
    let jobs = page
        .js("return [...document.querySelectorAll('#jobs tbody tr')].map(r => r.dataset.state)")
        .await;
    assert_eq!(jobs, json!(["done"]));
    page.close().await;
}
