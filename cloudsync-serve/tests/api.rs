//! The HTTP API against a real service on a loopback port: jobs, events, cancel, the report
//! queue, authentication, limits, field errors and secrets.

mod support;

use std::collections::HashMap;
use std::sync::Arc;

use cloudsync_core::{BandwidthLimiter, Config, Remote, Secret, Summary, memory_named};
use cloudsync_serve::{Auth, ServeError, Service, ServiceConfig, check_bind};
use serde_json::{Value, json};
use support::{loc, read_events, start, tree, two_folders};

fn local() -> Arc<dyn cloudsync_core::queue::OpenRemote> {
    support::local_opener(Config::default())
}

/// A sync job started, polled and finished: its Summary is the CLI's `--json` Summary and
/// says what the folders show.
#[tokio::test]
async fn a_sync_job_runs_and_its_summary_matches_the_folders() {
    let run = start(local(), Auth::None).await;
    let (src, dst) = two_folders();
    let (status, body) = run
        .post(
            "/api/v1/jobs",
            json!({"op": "sync", "src": loc(&src), "dst": loc(&dst)}),
        )
        .await;
    assert_eq!(status, 202, "{body}");
    let id = body["id"].as_str().unwrap().to_owned();
    let job = run.wait_job(&id).await;
    assert_eq!(job["state"], "done", "{job}");
    assert_eq!(job["op"], "sync");
    let summary: Summary = serde_json::from_value(job["summary"].clone()).unwrap();
    // changed.txt replaced, three new files, extra.txt deleted, same.txt left.
    assert_eq!(
        (summary.transferred, summary.deleted, summary.errors.len()),
        (4, 1, 0),
        "{job}"
    );
    assert_eq!(summary.bytes, (11 + 6 + 7 + 8) as u64);
    assert_eq!(tree(dst.path()), tree(src.path()));
    assert_eq!(job["progress"]["done_files"], 4);
    assert_eq!(job["progress"]["deleted"], 1);
    // The same JSON `cloudsync sync --json` prints: Summary serialised as it is.
    assert_eq!(job["summary"], serde_json::to_value(&summary).unwrap());

    let (status, all) = run.get("/api/v1/jobs").await;
    assert_eq!(status, 200);
    assert_eq!(all["jobs"][0]["id"], id.as_str());
}

/// Remotes whose destination takes 100 KiB/s, for jobs that last long enough to watch.
fn slow_remotes(
    files: usize,
    kib: usize,
) -> (
    Arc<dyn cloudsync_core::queue::OpenRemote>,
    Arc<dyn Remote>,
    Arc<dyn Remote>,
) {
    let src = memory_named("slow-src");
    let dst = memory_named("slow-dst");
    let limited = BandwidthLimiter::new("100k".parse().unwrap(), None).wrap(dst.clone());
    let map: HashMap<String, Arc<dyn Remote>> = [
        ("src".to_owned(), src.clone()),
        ("dst".to_owned(), limited),
        ("queue".to_owned(), memory_named("queue")),
    ]
    .into();
    let setup = src.clone();
    let fill = async move {
        for i in 0..files {
            let body = "x".repeat(kib * 1024);
            cloudsync_core::testkit::put_text(&setup, &format!("f{i}"), &body, None).await;
        }
    };
    futures::executor::block_on(fill);
    (Arc::new(map), src, dst)
}

async fn start_slow(
    files: usize,
    kib: usize,
) -> (support::Running, Arc<dyn Remote>, Arc<dyn Remote>) {
    let (opener, src, dst) = slow_remotes(files, kib);
    let run = support::start_with(opener, Auth::None, |c| c.queue_location = "queue".into()).await;
    (run, src, dst)
}

/// The event stream: the state first, typed events as JSON while it runs, `end` last with
/// the finished job; a late subscriber gets the job so far and the end.
#[tokio::test]
async fn events_stream_typed_events_and_end_with_the_job() {
    let (run, _src, dst) = start_slow(3, 20).await;
    let (_, body) = run
        .post(
            "/api/v1/jobs",
            json!({"op": "copy", "src": "src", "dst": "dst", "options": {"transfers": 1}}),
        )
        .await;
    let id = body["id"].as_str().unwrap().to_owned();
    let (_, events) = read_events(&run, &id).await;
    let names: Vec<&str> = events.iter().map(|e| e.event.as_str()).collect();
    assert_eq!(names.first(), Some(&"state"), "{names:?}");
    assert_ne!(events[0].data["state"], "done", "subscribed while it ran");
    assert_eq!(names.last(), Some(&"end"), "{names:?}");
    let end = &events.last().unwrap().data;
    assert_eq!(end["state"], "done");
    assert_eq!(end["summary"]["transferred"], 3);
    let done: Vec<&Value> = events
        .iter()
        .filter(|e| e.event == "transfer_done")
        .map(|e| &e.data)
        .collect();
    assert_eq!(done.len(), 3, "{names:?}");
    for d in &done {
        assert_eq!(d["event"], "transfer_done");
        assert_eq!(d["bytes"], 20 * 1024);
    }
    assert!(names.contains(&"planned") && names.contains(&"transfer_started"));
    assert_eq!(cloudsync_core::testkit::text_tree(&dst).await.len(), 3);

    // Late: the state so far (done), then the end.
    let (_, late) = read_events(&run, &id).await;
    let names: Vec<&str> = late.iter().map(|e| e.event.as_str()).collect();
    assert_eq!(names, ["state", "end"]);
    assert_eq!(late[0].data["state"], "done");
    assert_eq!(late[0].data["progress"]["done_files"], 3);
}

/// A cancelled sync stops: what was transferred stays, nothing more starts, and the file
/// only on the destination is not deleted (the run recorded an error).
#[tokio::test]
async fn a_cancelled_sync_stops_and_deletes_nothing() {
    let (run, _src, dst) = start_slow(5, 100).await;
    cloudsync_core::testkit::put_text(&dst, "extra", "keep me", None).await;
    let (_, body) = run
        .post(
            "/api/v1/jobs",
            json!({"op": "sync", "src": "src", "dst": "dst", "options": {"transfers": 1}}),
        )
        .await;
    let id = body["id"].as_str().unwrap().to_owned();
    let events = run
        .client
        .get(run.url(&format!("/api/v1/jobs/{id}/events")))
        .send()
        .await
        .unwrap();
    // Cancel once the first file is done (each takes about 1 s).
    let mut stream = events.bytes_stream();
    let mut seen = String::new();
    use futures::StreamExt;
    while let Some(chunk) = stream.next().await {
        seen.push_str(&String::from_utf8_lossy(&chunk.unwrap()));
        if seen.contains("event: transfer_done") {
            break;
        }
    }
    let (status, c) = run
        .post(&format!("/api/v1/jobs/{id}/cancel"), Value::Null)
        .await;
    assert_eq!(status, 202, "{c}");
    let job = run.wait_job(&id).await;
    assert_eq!(job["state"], "cancelled", "{job}");
    let summary: Summary = serde_json::from_value(job["summary"].clone()).unwrap();
    assert!(
        summary
            .errors
            .iter()
            .any(|e| e.kind == cloudsync_core::ErrorKind::Cancelled),
        "{job}"
    );
    assert_eq!(summary.deleted, 0);
    assert!(summary.transferred >= 1 && summary.transferred < 5, "{job}");
    let left = cloudsync_core::testkit::text_tree(&dst).await;
    assert!(
        left.contains_key("extra"),
        "nothing deleted: {:?}",
        left.keys()
    );
    assert_eq!(
        left.len() as u64,
        summary.transferred + 1,
        "nothing partial"
    );
    // The rest of the stream ends with the cancelled job.
    let mut rest = seen;
    while let Some(chunk) = stream.next().await {
        rest.push_str(&String::from_utf8_lossy(&chunk.unwrap()));
    }
    let events = support::parse_sse(&rest);
    let last = events.last().unwrap();
    assert_eq!(
        (last.event.as_str(), &last.data["state"]),
        ("end", &json!("cancelled"))
    );
}

/// The report queue: create, list with states, read with paging, re-run & sync.
#[tokio::test]
async fn report_queue_create_list_page_and_resync() {
    let run = start(local(), Auth::None).await;
    let (src, dst) = two_folders();
    let (status, body) = run
        .post(
            "/api/v1/reports",
            json!({"src": loc(&src), "dst": loc(&dst)}),
        )
        .await;
    assert_eq!(status, 202, "{body}");
    let id = body["id"].as_str().unwrap().to_owned();
    let r = run.wait_report(&id).await;
    assert_eq!(r["job"]["state"], "done", "{r}");
    let counts = &r["report"]["counts"];
    assert_eq!(
        (
            &counts["missing_on_dst"],
            &counts["missing_on_src"],
            &counts["differ"],
            &counts["matched"]
        ),
        (&json!(3), &json!(1), &json!(1), &json!(1)),
        "{r}"
    );
    let (_, queue) = run.get("/api/v1/reports").await;
    assert_eq!(queue["reports"][0]["id"], id.as_str());
    assert_eq!(queue["reports"][0]["state"], "done");
    assert_eq!(queue["reports"][0]["kind"], "compare");

    // Pages of the missing list, in path order.
    let page =
        |offset: usize| format!("/api/v1/reports/{id}?list=missing_on_dst&offset={offset}&limit=2");
    let (_, p1) = run.get(&page(0)).await;
    let (_, p2) = run.get(&page(2)).await;
    let paths = |p: &Value| -> Vec<String> {
        p["list"]["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["path"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(p1["list"]["total"], 3);
    assert_eq!(paths(&p1), ["cam1/0001.jpg", "cam1/0002.jpg"]);
    assert_eq!(paths(&p2), ["cam2/0001.jpg"]);
    let (_, other) = run
        .get(&format!("/api/v1/reports/{id}?list=missing_on_src"))
        .await;
    assert_eq!(paths(&other), ["extra.txt"]);
    let (_, common) = run.get(&format!("/api/v1/reports/{id}?list=common")).await;
    assert_eq!(paths(&common), ["same.txt"]);
    let (status, bad) = run.get(&format!("/api/v1/reports/{id}?list=nope")).await;
    assert_eq!((status, &bad["field"]), (400, &json!("list")));
    let (status, _) = run.get("/api/v1/reports/nosuch").await;
    assert_eq!(status, 404);

    // Re-run & sync: a job with events; the missing files arrive; a follow-up report.
    let (status, body) = run
        .post(&format!("/api/v1/reports/{id}/resync"), Value::Null)
        .await;
    assert_eq!(status, 202, "{body}");
    let job_id = body["id"].as_str().unwrap().to_owned();
    let job = run.wait_job(&job_id).await;
    assert_eq!(
        (&job["state"], &job["op"]),
        (&json!("done"), &json!("resync")),
        "{job}"
    );
    assert_eq!(job["progress"]["done_files"], 3);
    let after = tree(dst.path());
    for f in ["cam1/0001.jpg", "cam1/0002.jpg", "cam2/0001.jpg"] {
        assert_eq!(after.get(f), tree(src.path()).get(f), "{f}");
    }
    assert_eq!(
        after["changed.txt"], b"old",
        "only the missing files by default"
    );
    let follow = job["report"].as_str().unwrap();
    let (_, queue) = run.get("/api/v1/reports").await;
    let first = &queue["reports"][0];
    assert_eq!(
        (&first["id"], &first["kind"]),
        (&json!(follow), &json!("resync"))
    );
    assert_eq!(first["follows"], id.as_str());
    let (_, f) = run.get(&format!("/api/v1/reports/{follow}")).await;
    assert_eq!(f["report"]["resync"]["transferred"], 3, "{f}");
    assert_eq!(f["report"]["counts"]["matched"], 3);
}

/// Basic: no or wrong credentials are 401 with a challenge; the right ones pass.
#[tokio::test]
async fn basic_auth_rules() {
    let auth = Auth::Basic {
        user: "php".into(),
        password: Secret::new("pa55-word"),
    };
    let run = start(local(), auth).await;
    let url = run.url("/api/v1/jobs");
    let r = run.client.get(&url).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 401);
    assert!(
        r.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .starts_with("Basic")
    );
    let r = run
        .client
        .get(&url)
        .basic_auth("php", Some("wrong"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
    let r = run
        .client
        .get(&url)
        .basic_auth("other", Some("pa55-word"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
    let r = run
        .client
        .get(&url)
        .bearer_auth("pa55-word")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
    let r = run
        .client
        .get(&url)
        .basic_auth("php", Some("pa55-word"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    // The page and the document are behind it too.
    let r = run
        .client
        .get(run.url("/openapi.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
}

/// Bearer: only the token passes.
#[tokio::test]
async fn bearer_auth_rules() {
    let auth = Auth::Bearer {
        token: Secret::new("t0ken-abc"),
    };
    let run = start(local(), auth).await;
    let url = run.url("/api/v1/reports");
    let r = run.client.get(&url).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 401);
    assert!(
        r.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .starts_with("Bearer")
    );
    let r = run
        .client
        .get(&url)
        .bearer_auth("t0ken-ab")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
    let r = run
        .client
        .get(&url)
        .bearer_auth("t0ken-abc")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
}

/// Any address but loopback needs authentication, at start.
#[tokio::test]
async fn a_non_loopback_address_without_auth_is_refused() {
    let any: std::net::SocketAddr = "0.0.0.0:0".parse().unwrap();
    assert!(matches!(
        check_bind(any, &Auth::None),
        Err(ServeError::Unauthenticated { .. })
    ));
    let with = Auth::Bearer {
        token: Secret::new("x"),
    };
    assert!(check_bind(any, &with).is_ok());
    assert!(check_bind("[::1]:5572".parse().unwrap(), &Auth::None).is_ok());
    let state = tempfile::tempdir().unwrap();
    let service = Service::start(ServiceConfig::new(local(), state.path()))
        .await
        .unwrap();
    let err = service.serve(any, async {}).await.unwrap_err();
    assert!(matches!(err, ServeError::Unauthenticated { .. }), "{err}");
    assert!(err.to_string().contains("without authentication"), "{err}");
}

/// Bodies over 1 MiB are 413 with a JSON error.
#[tokio::test]
async fn a_body_over_the_limit_is_413() {
    let run = start(local(), Auth::None).await;
    let big = json!({"op": "sync", "src": "x".repeat(2 << 20), "dst": "/tmp"});
    let (status, body) = run.post("/api/v1/jobs", big).await;
    assert_eq!(status, 413, "{body}");
    assert_eq!(body["field"], "body");
    assert!(body["error"].as_str().unwrap().contains("larger than"));
}

/// Bad input is a 4xx naming the field.
#[tokio::test]
async fn bad_input_names_the_field() {
    let run = start(local(), Auth::None).await;
    let (src, dst) = two_folders();
    let (s, d) = (loc(&src), loc(&dst));
    let cases = [
        (json!({"op": "mirror", "src": s, "dst": d}), "op"),
        (json!({"src": s, "dst": d}), "op"),
        (json!({"op": "sync", "dst": d}), "src"),
        (json!({"op": "sync", "src": s, "dst": 5}), "dst"),
        (json!({"op": "sync", "src": "nosuch:dir", "dst": d}), "src"),
        (json!({"op": "sync", "src": s, "dst": "nosuch:dir"}), "dst"),
        (
            json!({"op": "sync", "src": s, "dst": d, "options": {"filters": {"include": ["a{b"]}}}),
            "options.filters",
        ),
        (
            json!({"op": "sync", "src": s, "dst": d, "options": {"max_duration": "soon"}}),
            "options.max_duration",
        ),
        (
            json!({"op": "ingest", "src": s, "dst": d, "options": {"settle": "1x"}}),
            "options.settle",
        ),
        (
            json!({"op": "sync", "src": s, "dst": d, "options": {"dryrun": true}}),
            "options.dryrun",
        ),
        (
            json!({"op": "sync", "src": s, "dst": d, "options": {"filters": {"files_from": ["/etc/passwd"]}}}),
            "options.filters.files_from",
        ),
        (
            json!({"op": "sync", "src": s, "dst": d, "extra": 1}),
            "extra",
        ),
        (json!(["sync"]), "body"),
    ];
    for (body, field) in cases {
        let (status, answer) = run.post("/api/v1/jobs", body.clone()).await;
        assert!((400..500).contains(&status), "{body}: {status} {answer}");
        assert_eq!(answer["field"], field, "{body}: {answer}");
        assert!(!answer["error"].as_str().unwrap().is_empty());
    }
    let r = run
        .client
        .post(run.url("/api/v1/jobs"))
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    assert_eq!(r.json::<Value>().await.unwrap()["field"], "body");
    let (status, answer) = run
        .post(
            "/api/v1/reports",
            json!({"src": s, "dst": d, "filters": {"exclude": ["[z"]}}),
        )
        .await;
    assert_eq!(
        (status, &answer["field"]),
        (400, &json!("filters")),
        "{answer}"
    );
    let (status, answer) = run.post("/api/v1/reports", json!({"src": s})).await;
    assert_eq!((status, &answer["field"]), (400, &json!("dst")), "{answer}");
    let (status, _) = run.get("/api/v1/jobs/nosuch").await;
    assert_eq!(status, 404);
    let (status, answer) = run.get("/api/v1/nothing").await;
    assert_eq!((status, &answer["error"]), (404, &json!("no such route")));
}

/// A password of the config file, or of a URL, is in no answer, event or error.
#[tokio::test]
async fn secrets_never_show_in_answers_events_or_errors() {
    const PASSWORD: &str = "Zq9-never-shown-8xW";
    let config = Config::from_toml_str(&format!(
        r#"
        [remotes.nas]
        type = "ftp"
        host = "127.0.0.1"
        port = 1
        user = "cam"
        password = "{PASSWORD}"
        "#
    ))
    .unwrap();
    let run = start(support::local_opener(config), Auth::None).await;
    let dst = tempfile::tempdir().unwrap();
    let mut seen = String::new();
    let mut failures = 0;
    for src in [
        "nas:pics".to_owned(),
        format!("ftp://cam:{PASSWORD}@127.0.0.1:1/pics"),
    ] {
        let (status, body) = run
            .post(
                "/api/v1/jobs",
                json!({"op": "sync", "src": src, "dst": loc(&dst)}),
            )
            .await;
        seen.push_str(&body.to_string());
        if status != 202 {
            // Refused at once (the server cannot be reached): the error names the field.
            assert_eq!(body["field"], "src", "{body}");
            failures += 1;
            continue;
        }
        let id = body["id"].as_str().unwrap();
        let job = run.wait_job(id).await;
        seen.push_str(&job.to_string());
        let (text, _) = read_events(&run, id).await;
        seen.push_str(&text);
        if job["state"] == "failed" || !job["errors"].as_array().unwrap().is_empty() {
            failures += 1;
        }
    }
    // Port 1 is closed: both runs failed, with the password at hand.
    assert_eq!(failures, 2, "{seen}");
    let (_, all) = run.get("/api/v1/jobs").await;
    seen.push_str(&all.to_string());
    let (_, reports) = run
        .post(
            "/api/v1/reports",
            json!({"src": format!("ftp://cam:{PASSWORD}@127.0.0.1:1/pics"), "dst": loc(&dst)}),
        )
        .await;
    seen.push_str(&reports.to_string());
    // A schedule is stored: one with a password in a location is refused.
    let (status, schedule) = run
        .post(
            "/api/v1/schedules",
            json!({"name": "cam", "op": "sync", "every": "1h", "dst": loc(&dst),
                   "src": format!("ftp://cam:{PASSWORD}@127.0.0.1:1/pics")}),
        )
        .await;
    assert_eq!(
        (status, &schedule["field"]),
        (400, &json!("src")),
        "{schedule}"
    );
    seen.push_str(&schedule.to_string());
    let state = std::fs::read_to_string(run.state.path().join("schedules.json")).unwrap();
    assert!(!state.contains(PASSWORD), "{state}");
    assert!(!seen.is_empty());
    assert!(!seen.contains(PASSWORD), "{seen}");
    assert!(!seen.contains("never-shown"), "{seen}");
}

/// A check job gives the report's counts; an ingest job moves settled files with its report.
#[tokio::test]
async fn check_and_ingest_jobs() {
    let run = start(local(), Auth::None).await;
    let (src, dst) = two_folders();
    let (_, body) = run
        .post(
            "/api/v1/jobs",
            json!({"op": "check", "src": loc(&src), "dst": loc(&dst)}),
        )
        .await;
    let job = run.wait_job(body["id"].as_str().unwrap()).await;
    assert_eq!(job["state"], "done", "{job}");
    assert_eq!(
        job["counts"],
        json!({"matched": 1, "differ": 1, "missing_on_dst": 3, "missing_on_src": 1, "errors": 0})
    );
    let target = tempfile::tempdir().unwrap();
    let (_, body) = run
        .post(
            "/api/v1/jobs",
            json!({"op": "ingest", "src": loc(&src), "dst": loc(&target),
                   "options": {"settle": "0s", "no_archive": true, "no_report": true}}),
        )
        .await;
    let job = run.wait_job(body["id"].as_str().unwrap()).await;
    assert_eq!(job["state"], "done", "{job}");
    assert_eq!(
        job["ingest"]["ingested"].as_array().unwrap().len(),
        5,
        "{job}"
    );
    assert_eq!(tree(target.path()).len(), 5);
    assert!(tree(src.path()).is_empty());
}
