//! The router: every route in one table ([`routes`]), which the OpenAPI document
//! (`openapi.json`, served at `/openapi.json`) describes route for route; the job handlers.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, FromRequest, Path, Request, State};
use axum::http::{StatusCode, header};
use axum::response::sse::{KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get, post};
use axum::{Json, Router};
use serde_json::Value;

use crate::error::ApiError;
use crate::spec::JobSpec;
use crate::{BODY_LIMIT, Inner, reports, run, schedule};

/// The OpenAPI 3.1 description of the API.
pub(crate) const OPENAPI: &str = include_str!("../openapi.json");

/// One route: its path and the handlers of its methods.
pub(crate) struct Route {
    pub(crate) path: &'static str,
    pub(crate) handler: MethodRouter<Arc<Inner>>,
}

/// Every route of the service.
pub(crate) fn routes() -> Vec<Route> {
    let r = |path, handler| Route { path, handler };
    vec![
        r("/", get(crate::page::index)),
        r("/page.css", get(crate::page::css)),
        r("/page.js", get(crate::page::js)),
        r("/openapi.json", get(openapi)),
        r("/api/v1/jobs", get(list_jobs).post(create_job)),
        r("/api/v1/jobs/{id}", get(read_job)),
        r("/api/v1/jobs/{id}/events", get(job_events)),
        r("/api/v1/jobs/{id}/cancel", post(cancel_job)),
        r("/api/v1/reports", get(reports::list).post(reports::create)),
        r("/api/v1/reports/{id}", get(reports::read)),
        r("/api/v1/reports/{id}/resync", post(reports::resync)),
        r(
            "/api/v1/schedules",
            get(schedule::list).post(schedule::create),
        ),
        r(
            "/api/v1/schedules/{name}",
            get(schedule::read).delete(schedule::delete),
        ),
    ]
}

/// The whole application: routes, JSON 404s, body limit, authentication.
pub(crate) fn router(inner: Arc<Inner>) -> Router {
    let mut app = Router::new();
    for route in routes() {
        app = app.route(route.path, route.handler);
    }
    let auth = inner.auth.clone();
    app.fallback(not_found)
        .with_state(inner)
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(axum::middleware::from_fn_with_state(
            auth,
            crate::auth::require,
        ))
}

async fn not_found() -> ApiError {
    ApiError::not_found("no such route")
}

async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI).into_response()
}

/// A JSON request body: too large is 413, not JSON is 400 naming `body`; an empty body is
/// `null`.
pub(crate) struct JsonBody(pub(crate) Value);

impl<S: Send + Sync> FromRequest<S> for JsonBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let bytes: Result<Bytes, BytesRejection> = Bytes::from_request(req, state).await;
        let bytes = bytes.map_err(|e| {
            let status = e.status();
            let error = if status == StatusCode::PAYLOAD_TOO_LARGE {
                format!("the request body is larger than {BODY_LIMIT} bytes")
            } else {
                e.body_text()
            };
            ApiError {
                status,
                error,
                field: Some("body".to_owned()),
            }
        })?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(JsonBody(Value::Null));
        }
        serde_json::from_slice(&bytes)
            .map(JsonBody)
            .map_err(|e| ApiError::field("body", format!("the body is not valid JSON: {e}")))
    }
}

/// `POST /jobs` -> 202 `{id}`.
async fn create_job(
    State(inner): State<Arc<Inner>>,
    body: JsonBody,
) -> Result<impl IntoResponse, ApiError> {
    let spec = JobSpec::from_json(&body.0)?;
    let pair = run::open_pair(&inner, &spec).await?;
    let (entry, _) = run::spawn(&inner, spec, pair, None);
    let info = entry.info();
    Ok((
        StatusCode::ACCEPTED,
        Json(serde_json::json!({ "id": info.id, "state": info.state })),
    ))
}

/// `GET /jobs`: every job of this run of the service, newest first.
async fn list_jobs(State(inner): State<Arc<Inner>>) -> impl IntoResponse {
    let mut jobs = inner.jobs.all();
    jobs.reverse();
    Json(serde_json::json!({ "jobs": jobs }))
}

fn entry(inner: &Inner, id: &str) -> Result<Arc<crate::jobs::JobEntry>, ApiError> {
    inner
        .jobs
        .get(id)
        .ok_or_else(|| ApiError::not_found(format!("no job {id:?}")))
}

/// `GET /jobs/{id}`.
async fn read_job(
    State(inner): State<Arc<Inner>>,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    Ok(Json(entry(&inner, &id)?.info()))
}

/// `GET /jobs/{id}/events`: Server-Sent Events until the job ends.
async fn job_events(
    State(inner): State<Arc<Inner>>,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let stream = entry(&inner, &id)?.events();
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}

/// `POST /jobs/{id}/cancel` -> 202: the job stops as soon as the engine can (nothing more is
/// started, nothing deleted); its state becomes `cancelled`.
async fn cancel_job(
    State(inner): State<Arc<Inner>>,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let job = entry(&inner, &id)?;
    job.cancel.cancel();
    let info = job.info();
    Ok((
        StatusCode::ACCEPTED,
        Json(serde_json::json!({ "id": info.id, "state": info.state })),
    ))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    /// Every route of the router is in `openapi.json` with exactly its methods, and every
    /// path of the document is a route: each documented method is answered by the router
    /// (not 405, not the fallback), each other method is 405.
    #[tokio::test]
    async fn the_openapi_document_describes_every_route_and_only_those() {
        let doc: Value = serde_json::from_str(OPENAPI).unwrap();
        assert_eq!(doc["openapi"], "3.1.0");
        let documented: BTreeSet<String> =
            doc["paths"].as_object().unwrap().keys().cloned().collect();
        let routed: BTreeSet<String> = routes().iter().map(|r| r.path.to_owned()).collect();
        assert_eq!(documented, routed);

        let state = tempfile::tempdir().unwrap();
        let remotes: std::collections::HashMap<String, Arc<dyn cloudsync_core::Remote>> =
            [("queue".to_owned(), cloudsync_core::memory_named("q"))].into();
        let mut config = crate::ServiceConfig::new(Arc::new(remotes), state.path());
        config.queue_location = "queue".to_owned();
        let service = crate::Service::start(config).await.unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { service.serve_on(listener, std::future::pending()).await });
        let client = reqwest::Client::new();
        for (path, item) in doc["paths"].as_object().unwrap() {
            let url = format!(
                "{base}{}",
                path.replace("{id}", "nosuch").replace("{name}", "nosuch")
            );
            for method in ["get", "post", "put", "delete", "patch"] {
                let m = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
                let r = client.request(m, &url).send().await.unwrap();
                let status = r.status().as_u16();
                let body = r.text().await.unwrap();
                if item.get(method).is_some() {
                    assert_ne!(status, 405, "{method} {path}");
                    assert!(!body.contains("no such route"), "{method} {path}: {body}");
                    let documented = item[method]["responses"]
                        .as_object()
                        .unwrap()
                        .contains_key(&status.to_string());
                    assert!(documented, "{method} {path}: {status} is not documented");
                } else {
                    assert_eq!(status, 405, "{method} {path} is not documented");
                }
            }
        }
    }
}
