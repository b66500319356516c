//! The connection to PostgreSQL (TLS through rustls) and the versioned schema.

use std::sync::Arc;

use tokio_postgres::Client;
use tokio_postgres::config::Host;
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::error::{DistError, Result};

/// The newest schema version this crate writes and reads.
pub const SCHEMA_VERSION: i32 = 3;

/// Where the queue lives: a PostgreSQL URL (`postgres://user:password@host:port/db`, or the
/// key=value form). TLS follows the URL's `sslmode` (`prefer` by default: TLS when the server
/// offers it; `require` to insist), verified against the system's root certificates.
///
/// The URL may hold a password: it is used to log in and never shown; errors and `Debug` name
/// only user, host, port and database.
#[derive(Clone)]
pub struct Db {
    config: tokio_postgres::Config,
    tls: MakeRustlsConnect,
    target: String,
}

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Db")
            .field("target", &self.target)
            .finish_non_exhaustive()
    }
}

impl Db {
    /// Reads a database URL; nothing is contacted yet.
    ///
    /// Besides what tokio-postgres reads, `sslrootcert=FILE` (as in libpq) names a PEM file
    /// of CA certificates to trust besides the system's (a private CA, a test server).
    pub fn new(url: &str) -> Result<Self> {
        let (url, root_cert) = take_param(url, "sslrootcert");
        let config: tokio_postgres::Config = url
            .parse()
            // The parser's message may quote the URL (and its password): keep it out.
            .map_err(|_| DistError::InvalidUrl("expected postgres://user@host:port/db".into()))?;
        let target = describe(&config);
        Ok(Db {
            config,
            tls: MakeRustlsConnect::new(tls_config(root_cert.as_deref())?),
            target,
        })
    }

    /// `user@host:port/db`, for messages.
    pub fn target(&self) -> &str {
        &self.target
    }

    /// Opens a connection (its driver runs as a task) without touching the schema.
    pub(crate) async fn connect_raw(&self) -> Result<Client> {
        let (client, conn) = self
            .config
            .connect(self.tls.clone())
            .await
            .map_err(|e| self.classify(e))?;
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "database connection ended");
            }
        });
        Ok(client)
    }

    /// Opens a connection and makes sure the schema is there and current (creating or
    /// migrating it; refusing one from a newer version).
    pub async fn connect(&self) -> Result<Client> {
        let mut client = self.connect_raw().await?;
        migrate(&mut client).await?;
        Ok(client)
    }

    fn classify(&self, e: tokio_postgres::Error) -> DistError {
        let target = self.target.clone();
        match e.as_db_error() {
            Some(db) if matches!(db.code().code(), "28P01" | "28000") => DistError::Auth {
                target,
                cause: db.message().to_string(),
            },
            Some(_) => DistError::Db(e),
            None => DistError::Unreachable {
                target,
                cause: source_text(&e),
            },
        }
    }
}

/// The error with its causes, for a message.
fn source_text(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        text.push_str(": ");
        text.push_str(&s.to_string());
        cur = s.source();
    }
    text
}

fn describe(c: &tokio_postgres::Config) -> String {
    let host = match c.get_hosts().first() {
        Some(Host::Tcp(h)) => h.clone(),
        #[cfg(unix)]
        Some(Host::Unix(p)) => p.display().to_string(),
        None => "localhost".to_string(),
    };
    let port = c.get_ports().first().copied().unwrap_or(5432);
    let user = c.get_user().unwrap_or("");
    let db = c.get_dbname().unwrap_or("");
    format!("{user}@{host}:{port}/{db}")
}

/// `url` without the parameter `key` (in a URL's query or the key=value form), and its value
/// (percent-decoded in a URL).
fn take_param(url: &str, key: &str) -> (String, Option<String>) {
    let prefix = format!("{key}=");
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let Some((base, query)) = url.split_once('?') else {
            return (url.to_owned(), None);
        };
        let mut value = None;
        let kept: Vec<&str> = query
            .split('&')
            .filter(|p| match p.strip_prefix(&prefix) {
                Some(v) => {
                    let decoded = percent_encoding::percent_decode_str(v).decode_utf8_lossy();
                    value = Some(decoded.into_owned());
                    false
                }
                None => true,
            })
            .collect();
        let rest = if kept.is_empty() {
            base.to_owned()
        } else {
            format!("{base}?{}", kept.join("&"))
        };
        (rest, value)
    } else {
        let mut value = None;
        let kept: Vec<&str> = url
            .split_whitespace()
            .filter(|p| match p.strip_prefix(&prefix) {
                Some(v) => {
                    value = Some(v.trim_matches('\'').to_owned());
                    false
                }
                None => true,
            })
            .collect();
        (kept.join(" "), value)
    }
}

/// rustls with the aws-lc-rs provider (as every crate of the workspace), the system roots and
/// the CA certificates of `root_cert` (a PEM file).
fn tls_config(root_cert: Option<&str>) -> Result<rustls::ClientConfig> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    let (mut added, _) = roots.add_parsable_certificates(native.certs);
    if let Some(path) = root_cert {
        let bad = |why: String| DistError::InvalidUrl(format!("sslrootcert {path}: {why}"));
        let certs = CertificateDer::pem_file_iter(path)
            .map_err(|e| bad(e.to_string()))?
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| bad(e.to_string()))?;
        if certs.is_empty() {
            return Err(bad("no certificate in it".into()));
        }
        for c in certs {
            roots.add(c).map_err(|e| bad(e.to_string()))?;
            added += 1;
        }
    }
    if added == 0 {
        tracing::debug!("no system root certificates: TLS database servers cannot be verified");
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| DistError::InvalidInput(format!("TLS configuration: {e}")))?;
    Ok(builder.with_root_certificates(roots).with_no_client_auth())
}

/// The migrations, in order: `MIGRATIONS[i]` takes the schema from version `i` to `i + 1`.
const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE cloudsync.jobs (
    id          bigserial PRIMARY KEY,
    mode        text NOT NULL CHECK (mode IN ('copy', 'sync')),
    source      text NOT NULL,
    destination text NOT NULL,
    options     jsonb NOT NULL,
    state       text NOT NULL DEFAULT 'running'
                CHECK (state IN ('running', 'deleting', 'done', 'failed', 'cancelled')),
    max_delete  bigint,
    error       text,
    created     timestamptz NOT NULL DEFAULT now(),
    finished    timestamptz
);
CREATE TABLE cloudsync.shards (
    id          bigserial PRIMARY KEY,
    job         bigint NOT NULL REFERENCES cloudsync.jobs (id) ON DELETE CASCADE,
    kind        text NOT NULL DEFAULT 'walk' CHECK (kind IN ('walk', 'delete')),
    path        text NOT NULL,
    src_path    text NOT NULL,
    src         boolean NOT NULL,
    dst         boolean NOT NULL,
    state       text NOT NULL DEFAULT 'pending'
                CHECK (state IN ('pending', 'running', 'done', 'dead', 'cancelled')),
    lease_owner text,
    lease_until timestamptz,
    token       bigint NOT NULL DEFAULT 0,
    attempts    integer NOT NULL DEFAULT 0,
    error       text
);
CREATE INDEX shards_claimable ON cloudsync.shards (id) WHERE state IN ('pending', 'running');
CREATE INDEX shards_by_job ON cloudsync.shards (job, state);
CREATE TABLE cloudsync.delete_candidates (
    id          bigserial PRIMARY KEY,
    job         bigint NOT NULL REFERENCES cloudsync.jobs (id) ON DELETE CASCADE,
    shard       bigint NOT NULL REFERENCES cloudsync.shards (id) ON DELETE CASCADE,
    path        text NOT NULL,
    is_dir      boolean NOT NULL,
    decision    jsonb NOT NULL
);
CREATE INDEX delete_candidates_by_job ON cloudsync.delete_candidates (job);
CREATE TABLE cloudsync.shard_reports (
    shard       bigint PRIMARY KEY REFERENCES cloudsync.shards (id) ON DELETE CASCADE,
    job         bigint NOT NULL REFERENCES cloudsync.jobs (id) ON DELETE CASCADE,
    summary     jsonb NOT NULL,
    errors      integer NOT NULL
);
CREATE INDEX shard_reports_by_job ON cloudsync.shard_reports (job);
"#,
    r#"
ALTER TABLE cloudsync.jobs DROP CONSTRAINT jobs_mode_check;
ALTER TABLE cloudsync.jobs ADD CONSTRAINT jobs_mode_check
    CHECK (mode IN ('copy', 'sync', 'move'));
ALTER TABLE cloudsync.shards DROP CONSTRAINT shards_kind_check;
ALTER TABLE cloudsync.shards ADD CONSTRAINT shards_kind_check
    CHECK (kind IN ('walk', 'delete', 'batch'));
-- A batch shard's planned decisions (a JSON array), re-validated when it runs.
ALTER TABLE cloudsync.shards ADD COLUMN decisions jsonb;
"#,
    r#"
-- The delete phase in parallel: 'delete' shards each hold a range of candidate ids
-- (`decisions` = {"from": id, "to": id}; NULL: the whole phase, as version 2 ran it), and one
-- 'rmdir' shard removes directories once every file deletion is done.
ALTER TABLE cloudsync.shards DROP CONSTRAINT shards_kind_check;
ALTER TABLE cloudsync.shards ADD CONSTRAINT shards_kind_check
    CHECK (kind IN ('walk', 'delete', 'batch', 'rmdir'));
-- The worker whose completion was committed (for status and for finding stragglers).
ALTER TABLE cloudsync.shards ADD COLUMN finished_by text;
"#,
];

/// Creates or migrates the schema, under an advisory lock so that workers starting together
/// migrate once.
pub(crate) async fn migrate(client: &mut Client) -> Result<()> {
    migrate_to(client, SCHEMA_VERSION).await
}

/// [`migrate`] up to `target` (older versions only for tests of the upgrade path).
pub(crate) async fn migrate_to(client: &mut Client, target: i32) -> Result<()> {
    let tx = client.transaction().await?;
    // An arbitrary fixed key: "cloudsync" in ASCII, truncated to 63 bits.
    tx.execute("SELECT pg_advisory_xact_lock(7164793146757155689)", &[])
        .await?;
    tx.batch_execute(
        "CREATE SCHEMA IF NOT EXISTS cloudsync;
         CREATE TABLE IF NOT EXISTS cloudsync.schema_version (version integer NOT NULL)",
    )
    .await?;
    let found: i32 = tx
        .query_opt("SELECT max(version) FROM cloudsync.schema_version", &[])
        .await?
        .and_then(|r| r.get::<_, Option<i32>>(0))
        .unwrap_or(0);
    if found > SCHEMA_VERSION {
        return Err(DistError::SchemaTooNew {
            found,
            supported: SCHEMA_VERSION,
        });
    }
    if found >= target {
        return Ok(());
    }
    let steps = usize::try_from(target).unwrap_or(0);
    for (i, sql) in MIGRATIONS
        .iter()
        .enumerate()
        .take(steps)
        .skip(found.max(0) as usize)
    {
        tracing::info!(from = i, to = i + 1, "migrating the cloudsync-dist schema");
        tx.batch_execute(sql).await?;
    }
    tx.execute("DELETE FROM cloudsync.schema_version", &[])
        .await?;
    tx.execute(
        "INSERT INTO cloudsync.schema_version (version) VALUES ($1)",
        &[&target],
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::take_param;

    #[test]
    fn sslrootcert_is_taken_out_of_both_url_forms() {
        let (rest, v) = take_param(
            "postgres://u:p@h:5/db?sslmode=require&sslrootcert=%2Ftmp%2Fca%20x.pem",
            "sslrootcert",
        );
        assert_eq!(rest, "postgres://u:p@h:5/db?sslmode=require");
        assert_eq!(v.as_deref(), Some("/tmp/ca x.pem"));
        let (rest, v) = take_param("postgresql://h/db?sslrootcert=/ca.pem", "sslrootcert");
        assert_eq!(
            (rest.as_str(), v.as_deref()),
            ("postgresql://h/db", Some("/ca.pem"))
        );
        let (rest, v) = take_param("host=h sslrootcert='/ca.pem' user=u", "sslrootcert");
        assert_eq!(
            (rest.as_str(), v.as_deref()),
            ("host=h user=u", Some("/ca.pem"))
        );
        let (rest, v) = take_param("postgres://h/db", "sslrootcert");
        assert_eq!((rest.as_str(), v), ("postgres://h/db", None));
    }
}
