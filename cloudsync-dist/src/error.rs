//! [`DistError`]: what the distributed runner reports.

/// A failure of the distributed runner (not of one file: those are in the job's report).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DistError {
    /// The database server could not be reached (`target` names host, port and database,
    /// never a password).
    #[error("cannot reach the database at {target}: {cause}")]
    Unreachable {
        /// Where we tried to connect.
        target: String,
        /// Why it failed.
        cause: String,
    },
    /// The server refused the user name or password.
    #[error("the database at {target} refused the login (wrong user name or password): {cause}")]
    Auth {
        /// Where we tried to connect.
        target: String,
        /// The server's message.
        cause: String,
    },
    /// The database holds a schema written by a newer version of this crate.
    #[error(
        "the database schema is version {found}, newer than the {supported} this program \
         knows; upgrade the program (every worker must run the same or a newer version)"
    )]
    SchemaTooNew {
        /// The version found in the database.
        found: i32,
        /// The newest version this crate knows.
        supported: i32,
    },
    /// The database URL could not be understood.
    #[error("invalid database URL: {0}")]
    InvalidUrl(String),
    /// The job spec or a request cannot be carried out as asked.
    #[error("{0}")]
    InvalidInput(String),
    /// No job has this id.
    #[error("no job {0} in the database")]
    NoSuchJob(i64),
    /// This worker's lease on a shard was taken over (its fencing token is stale): its
    /// completion was refused and another worker owns the shard now.
    #[error("shard {shard}: the lease was lost (token {token} is stale); completion refused")]
    LeaseLost {
        /// The shard.
        shard: i64,
        /// The token this worker held.
        token: i64,
    },
    /// A database request failed.
    #[error("database error: {0}")]
    Db(#[from] tokio_postgres::Error),
    /// Something stored could not be read back.
    #[error("stored data could not be read: {0}")]
    Data(#[from] serde_json::Error),
    /// The engine could not run (a remote could not be opened, a filter is invalid, ...).
    #[error(transparent)]
    Engine(#[from] cloudsync_core::Error),
}

impl DistError {
    /// Whether the failure is the connection to the database (a restart, a network cut):
    /// the work can go on after reconnecting.
    pub fn is_connection(&self) -> bool {
        match self {
            DistError::Unreachable { .. } => true,
            DistError::Db(e) => e.is_closed() || e.as_db_error().is_none_or(is_shutdown),
            _ => false,
        }
    }
}

/// Whether a server error is the server going away (admin shutdown, crash recovery).
fn is_shutdown(e: &tokio_postgres::error::DbError) -> bool {
    let code = e.code().code();
    // 57P01 admin_shutdown, 57P02 crash_shutdown, 57P03 cannot_connect_now, class 08.
    code.starts_with("57P") || code.starts_with("08")
}

/// The crate's result type.
pub type Result<T, E = DistError> = std::result::Result<T, E>;
