//! [`ApiError`]: what a request that fails gets back, `{"error": "...", "field": "..."}` with a
//! 4xx or 5xx status, and [`ServeError`], what starting the service can fail with.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use cloudsync_core::{Error, ErrorKind};
use serde::Serialize;

/// Why the service could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    /// A non-loopback address was given without authentication.
    #[error(
        "refusing to listen on {addr} without authentication: only loopback addresses may be \
         used without it (give a user and password, or a token file)"
    )]
    Unauthenticated {
        /// The address asked for.
        addr: std::net::SocketAddr,
    },
    /// The engine refused something (the state folder, a schedule of the config file, ...).
    #[error(transparent)]
    Engine(#[from] Error),
    /// The socket could not be bound or served.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The cause.
        source: std::io::Error,
    },
}

/// A failed request: the status, a message, and the request field it concerns.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct ApiError {
    #[serde(skip)]
    pub(crate) status: StatusCode,
    pub(crate) error: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) field: Option<String>,
}

impl ApiError {
    /// `400` about `field`.
    pub(crate) fn field(field: impl Into<String>, error: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            error: error.into(),
            field: Some(field.into()),
        }
    }

    /// `404`.
    pub(crate) fn not_found(error: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::NOT_FOUND,
            error: error.into(),
            field: None,
        }
    }

    /// An engine error about `field` (a location that cannot be opened, a bad filter): a
    /// 4xx for what the request said, 502 for a server that failed.
    pub(crate) fn engine(field: &str, e: &Error) -> Self {
        let status = match e.kind() {
            ErrorKind::InvalidInput
            | ErrorKind::ConfigInvalid
            | ErrorKind::NotFound
            | ErrorKind::Unsupported
            | ErrorKind::AlreadyExists => StatusCode::BAD_REQUEST,
            ErrorKind::Conflict => StatusCode::CONFLICT,
            _ => StatusCode::BAD_GATEWAY,
        };
        ApiError {
            status,
            error: e.chain(),
            field: Some(field.to_owned()),
        }
    }

    /// `500` for a failure of the service itself.
    pub(crate) fn internal(e: &Error) -> Self {
        ApiError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            error: e.chain(),
            field: None,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(&self)).into_response()
    }
}
