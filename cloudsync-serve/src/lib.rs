//! cloudsync as an HTTP service (`cloudsync serve`): a JSON API to start copy, sync, move,
//! check and ingest jobs and follow them as Server-Sent Events, the compare-report queue
//! (create, list, read page by page, re-run & sync), scheduled jobs, and a web page over the
//! same API — so that applications in any language can drive the engine.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use std::collections::HashMap;
//! use std::sync::Arc;
//! use cloudsync_core::{memory_named, Remote};
//! use cloudsync_serve::{Service, ServiceConfig};
//!
//! let state = tempfile::tempdir()?;
//! let remotes: HashMap<String, Arc<dyn Remote>> = [
//!     ("a".to_owned(), memory_named("a")),
//!     ("b".to_owned(), memory_named("b")),
//!     ("queue".to_owned(), memory_named("queue")),
//! ].into();
//! let mut config = ServiceConfig::new(Arc::new(remotes), state.path());
//! config.queue_location = "queue".to_owned();
//! let service = Service::start(config).await?;
//! let app = service.router(); // an axum::Router: serve it, or call it in tests
//! # let _ = app;
//! # Ok(())
//! # }
//! ```
#![deny(missing_docs)]
#![warn(unreachable_pub)]

mod api;
mod auth;
mod error;
mod jobs;
mod page;
mod reports;
mod run;
mod schedule;
mod spec;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use cloudsync_core::RemotePath;
use cloudsync_core::queue::{OpenRemote, ReportQueue};
use tokio::sync::Notify;

pub use auth::{Auth, check_bind};
pub use error::ServeError;
pub use jobs::{JobInfo, JobState, Progress};
pub use schedule::{HISTORY, Origin, RunRecord, Schedule};
pub use spec::{JobOptions, JobSpec, Op};

/// The largest request body accepted (larger ones get 413).
pub const BODY_LIMIT: usize = 1 << 20;

/// How to set up a [`Service`].
#[non_exhaustive]
pub struct ServiceConfig {
    /// Opens the locations named in requests (the facade's registry with the config file).
    pub opener: Arc<dyn OpenRemote>,
    /// Where the service keeps its state (the report queue, schedules and their history).
    pub state_dir: PathBuf,
    /// Where the report queue lives, as a location `opener` opens; default: the `queue`
    /// folder of `state_dir`.
    pub queue_location: String,
    /// Who may call it.
    pub auth: Auth,
    /// Schedules of the config file ([`Schedule::from_config`]); those made through the API
    /// are kept in the state folder.
    pub schedules: Vec<Schedule>,
}

impl std::fmt::Debug for ServiceConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceConfig")
            .field("state_dir", &self.state_dir)
            .field("queue_location", &self.queue_location)
            .field("auth", &self.auth)
            .finish_non_exhaustive()
    }
}

impl ServiceConfig {
    /// A service opening locations with `opener` and keeping its state in `state_dir`,
    /// without authentication (loopback only).
    pub fn new(opener: Arc<dyn OpenRemote>, state_dir: impl AsRef<Path>) -> Self {
        let state_dir = state_dir.as_ref().to_owned();
        let queue_location = state_dir.join("queue").display().to_string();
        ServiceConfig {
            opener,
            state_dir,
            queue_location,
            auth: Auth::None,
            schedules: Vec::new(),
        }
    }
}

/// Runs a task of the engine in the background. Some of the engine's futures are not `Send`
/// for every lifetime (closures over borrowed report items), so they cannot go to
/// `tokio::spawn`; each runs on a thread of the blocking pool, driven by the runtime's handle.
pub(crate) fn spawn_task<F, Fut, T>(make: F) -> tokio::task::JoinHandle<T>
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = T>,
    T: Send + 'static,
{
    let handle = tokio::runtime::Handle::current();
    tokio::task::spawn_blocking(move || handle.block_on(make()))
}

/// What the handlers share.
pub(crate) struct Inner {
    pub(crate) opener: Arc<dyn OpenRemote>,
    pub(crate) jobs: jobs::Jobs,
    pub(crate) queue: ReportQueue,
    pub(crate) queue_wake: Arc<Notify>,
    pub(crate) auth: Arc<Auth>,
    pub(crate) schedules: schedule::Schedules,
}

/// The running service: jobs, the report queue's worker, and the router that serves them.
#[derive(Clone)]
pub struct Service {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Service {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Service").finish_non_exhaustive()
    }
}

impl Service {
    /// Opens the state, starts the report queue's worker.
    pub async fn start(config: ServiceConfig) -> Result<Service, ServeError> {
        tokio::fs::create_dir_all(&config.state_dir)
            .await
            .map_err(|source| ServeError::Io {
                context: format!("cannot create {}", config.state_dir.display()),
                source,
            })?;
        let schedules = schedule::Schedules::load(&config.state_dir, config.schedules).await?;
        let queue_remote = config.opener.open(&config.queue_location).await?;
        let queue = ReportQueue::new(queue_remote, RemotePath::root(), config.opener.clone());
        let inner = Arc::new(Inner {
            opener: config.opener,
            jobs: jobs::Jobs::default(),
            queue,
            queue_wake: Arc::new(Notify::new()),
            auth: Arc::new(config.auth),
            schedules,
        });
        tokio::spawn(reports::worker(Arc::downgrade(&inner)));
        tokio::spawn(schedule::runner(Arc::downgrade(&inner)));
        Ok(Service { inner })
    }

    /// The HTTP API, the OpenAPI document and the web page, behind the configured
    /// authentication, with request bodies limited to [`BODY_LIMIT`].
    pub fn router(&self) -> axum::Router {
        api::router(self.inner.clone())
    }

    /// Serves on `addr` until `shutdown` resolves; a non-loopback address without
    /// authentication is refused ([`check_bind`]).
    pub async fn serve(
        &self,
        addr: SocketAddr,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> Result<(), ServeError> {
        check_bind(addr, &self.inner.auth)?;
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|source| ServeError::Io {
                context: format!("cannot listen on {addr}"),
                source,
            })?;
        self.serve_on(listener, shutdown).await
    }

    /// Serves on a listener bound by the caller (a free port in tests); the same rule about
    /// authentication applies to its address.
    pub async fn serve_on(
        &self,
        listener: tokio::net::TcpListener,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> Result<(), ServeError> {
        let addr = listener.local_addr().map_err(|source| ServeError::Io {
            context: "cannot read the listening address".to_owned(),
            source,
        })?;
        check_bind(addr, &self.inner.auth)?;
        tracing::info!(%addr, "serving");
        axum::serve(listener, self.router())
            .with_graceful_shutdown(shutdown)
            .await
            .map_err(|source| ServeError::Io {
                context: format!("serving on {addr}"),
                source,
            })
    }
}
