//! Scheduled jobs: interval runs with their Summaries kept, no two runs of one schedule at
//! once, the config file's `[schedules.NAME]`, and the state surviving a restart.

mod support;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use cloudsync_core::{BandwidthLimiter, Config, Remote, memory_named};
use cloudsync_serve::{Auth, Schedule};
use serde_json::{Value, json};
use support::{loc, start, start_with, tree, two_folders};

fn local() -> Arc<dyn cloudsync_core::queue::OpenRemote> {
    support::local_opener(Config::default())
}

/// Polls `GET /schedules/{name}` until `ok` holds (20 s at most).
async fn wait_schedule(run: &support::Running, name: &str, ok: impl Fn(&Value) -> bool) -> Value {
    for _ in 0..400 {
        let (status, s) = run.get(&format!("/api/v1/schedules/{name}")).await;
        assert_eq!(status, 200, "{s}");
        if ok(&s) {
            return s;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("schedule {name} never got there");
}

fn history_has(s: &Value, state: &str) -> bool {
    s["history"]
        .as_array()
        .is_some_and(|h| h.iter().any(|r| r["state"] == state))
}

/// An interval schedule made through the API runs the job and keeps its Summary.
#[tokio::test]
async fn an_interval_schedule_runs_and_keeps_the_summary() {
    let run = start(local(), Auth::None).await;
    let (src, dst) = two_folders();
    let (status, s) = run
        .post(
            "/api/v1/schedules",
            json!({"name": "pull", "op": "sync", "src": loc(&src), "dst": loc(&dst), "every": "1s"}),
        )
        .await;
    assert_eq!(status, 201, "{s}");
    assert_eq!((&s["origin"], &s["every"]), (&json!("api"), &json!("1s")));
    assert!(s["next"].is_string());
    let s = wait_schedule(&run, "pull", |s| history_has(s, "done")).await;
    let first = &s["history"][0];
    assert_eq!(first["state"], "done", "{s}");
    assert_eq!(first["summary"]["transferred"], 4, "{s}");
    assert_eq!(first["summary"]["deleted"], 1);
    assert_eq!(tree(dst.path()), tree(src.path()));
    // The job is a job like the others, named by its schedule.
    let (_, job) = run
        .get(&format!("/api/v1/jobs/{}", first["job"].as_str().unwrap()))
        .await;
    assert_eq!(job["schedule"], "pull");
    // A second run finds nothing to do.
    let s = wait_schedule(&run, "pull", |s| {
        s["history"].as_array().unwrap().len() >= 2
    })
    .await;
    assert_eq!(s["history"][1]["summary"]["transferred"], 0, "{s}");
    let (status, _) = run
        .client
        .delete(run.url("/api/v1/schedules/pull"))
        .send()
        .await
        .map(|r| (r.status().as_u16(), ()))
        .unwrap();
    assert_eq!(status, 204);
    let (status, _) = run.get("/api/v1/schedules/pull").await;
    assert_eq!(status, 404);
}

/// A run that lasts longer than the interval is never doubled: the due runs are skipped and
/// recorded.
#[tokio::test]
async fn a_run_still_going_is_not_doubled() {
    let src = memory_named("src");
    let dst = BandwidthLimiter::new("100k".parse().unwrap(), None).wrap(memory_named("dst"));
    for i in 0..3 {
        let body = "x".repeat(100 * 1024);
        cloudsync_core::testkit::put_text(&src, &format!("f{i}"), &body, None).await;
    }
    let map: HashMap<String, Arc<dyn Remote>> = [
        ("src".to_owned(), src),
        ("dst".to_owned(), dst),
        ("queue".to_owned(), memory_named("queue")),
    ]
    .into();
    let run = start_with(Arc::new(map), Auth::None, |c| {
        c.queue_location = "queue".into()
    })
    .await;
    let (status, s) = run
        .post(
            "/api/v1/schedules",
            json!({"name": "slow", "op": "copy", "src": "src", "dst": "dst",
                   "options": {"transfers": 1}, "every": "1s"}),
        )
        .await;
    assert_eq!(status, 201, "{s}");
    // While it runs (about 3 s), never two jobs of the schedule at once.
    let mut max_running = 0;
    let s = loop {
        let (_, jobs) = run.get("/api/v1/jobs").await;
        let running = jobs["jobs"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|j| j["schedule"] == "slow" && j["state"] == "running")
            .count();
        max_running = max_running.max(running);
        let (_, s) = run.get("/api/v1/schedules/slow").await;
        if history_has(&s, "done") {
            break s;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(max_running, 1, "{s}");
    assert!(s["skipped"].as_u64().unwrap() >= 1, "{s}");
    let h = s["history"].as_array().unwrap();
    let skipped = h.iter().filter(|r| r["state"] == "skipped").count();
    assert!(skipped >= 1, "{s}");
    assert!(
        h.iter()
            .filter(|r| r["state"] == "skipped")
            .all(|r| r["job"].is_null())
    );
    let done = h.iter().find(|r| r["state"] == "done").unwrap();
    assert_eq!(done["summary"]["transferred"], 3, "{s}");
}

/// `[schedules.NAME]` of the config file: shown with its next time, changed only there;
/// mistakes are refused with the schedule and key named.
#[tokio::test]
async fn config_file_schedules() {
    let (src, dst) = two_folders();
    let config = Config::from_toml_str(&format!(
        r#"
        [schedules.nightly]
        op = "copy"
        src = "{}"
        dst = "{}"
        cron = "0 3 * * *"
        options = {{ dry_run = true, filters = {{ include = ["*.jpg"] }} }}
        "#,
        loc(&src),
        loc(&dst)
    ))
    .unwrap();
    let schedules = Schedule::from_config(&config).unwrap();
    assert_eq!(schedules.len(), 1);
    assert!(schedules[0].job.options.dry_run);
    let run = start_with(local(), Auth::None, |c| c.schedules = schedules).await;
    let (_, s) = run.get("/api/v1/schedules/nightly").await;
    assert_eq!(s["origin"], "config", "{s}");
    let next = time::OffsetDateTime::parse(
        s["next"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    assert_eq!((next.hour(), next.minute()), (3, 0));
    assert!(next > time::OffsetDateTime::now_utc());
    let r = run
        .client
        .delete(run.url("/api/v1/schedules/nightly"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 409);
    let (status, _) = run
        .post(
            "/api/v1/schedules",
            json!({"name": "nightly", "op": "copy", "src": loc(&src), "dst": loc(&dst), "every": "1h"}),
        )
        .await;
    assert_eq!(status, 409);

    for (section, key) in [
        (
            r#"op = "copy"
            src = "/a"
            dst = "/b"
            every = "soon""#,
            "every",
        ),
        (
            r#"op = "copy"
            src = "/a"
            dst = "/b"
            cron = "0 0 3 * * *""#,
            "cron",
        ),
        (
            r#"op = "copy"
            src = "/a"
            dst = "/b"
            every = "1h"
            cron = "0 3 * * *""#,
            "cron",
        ),
        (
            r#"op = "copy"
            src = "/a"
            dst = "/b""#,
            "every",
        ),
        (
            r#"op = "mirror"
            src = "/a"
            dst = "/b"
            every = "1h""#,
            "op",
        ),
        (
            r#"op = "copy"
            src = "/a"
            dst = "/b"
            every = "1h"
            when = "now""#,
            "when",
        ),
    ] {
        let cfg = Config::from_toml_str(&format!("[schedules.bad]\n{section}\n")).unwrap();
        let e = Schedule::from_config(&cfg).unwrap_err();
        assert!(
            e.message().contains("schedule \"bad\"") && e.message().contains(&format!("key {key}")),
            "{section}: {}",
            e.message()
        );
    }
}

/// Bad schedules through the API name the field.
#[tokio::test]
async fn api_schedule_errors_name_the_field() {
    let run = start(local(), Auth::None).await;
    let (src, dst) = two_folders();
    let (s, d) = (loc(&src), loc(&dst));
    for (body, field) in [
        (
            json!({"name": "x", "op": "copy", "src": s, "dst": d, "cron": "61 * * * *"}),
            "cron",
        ),
        (
            json!({"name": "x", "op": "copy", "src": s, "dst": d, "every": "0s"}),
            "every",
        ),
        (
            json!({"name": "x y", "op": "copy", "src": s, "dst": d, "every": "1h"}),
            "name",
        ),
        (
            json!({"op": "copy", "src": s, "dst": d, "every": "1h"}),
            "name",
        ),
        (
            json!({"name": "x", "op": "copy", "src": "nosuch:a", "dst": d, "every": "1h"}),
            "src",
        ),
    ] {
        let (status, answer) = run.post("/api/v1/schedules", body.clone()).await;
        assert_eq!(
            (status, &answer["field"]),
            (400, &json!(field)),
            "{body}: {answer}"
        );
    }
}

/// Schedules made through the API and every schedule's history survive a restart.
#[tokio::test]
async fn schedules_and_history_survive_a_restart() {
    let state = tempfile::tempdir().unwrap();
    let (src, dst) = two_folders();
    let dir = state.path().to_owned();
    let first = start_with(local(), Auth::None, |c| c.state_dir = dir.clone()).await;
    let (status, _) = first
        .post(
            "/api/v1/schedules",
            json!({"name": "pull", "op": "copy", "src": loc(&src), "dst": loc(&dst), "every": "1s"}),
        )
        .await;
    assert_eq!(status, 201);
    let before = wait_schedule(&first, "pull", |s| history_has(s, "done")).await;
    drop(first);
    let file: Value =
        serde_json::from_slice(&std::fs::read(state.path().join("schedules.json")).unwrap())
            .unwrap();
    assert!(
        file["schedules"]["pull"]["history"]
            .as_array()
            .is_some_and(|h| !h.is_empty())
    );

    let second = start_with(local(), Auth::None, |c| {
        c.state_dir = dir.clone();
        c.schedules = Vec::new();
    })
    .await;
    let (status, after) = second.get("/api/v1/schedules/pull").await;
    assert_eq!(status, 200, "{after}");
    assert_eq!(after["origin"], "api");
    assert_eq!(after["history"][0], before["history"][0], "{after}");
}
