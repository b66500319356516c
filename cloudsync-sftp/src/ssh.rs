//! One SSH connection: TCP connect, host-key verification, authentication, the SFTP channel,
//! and `exec` channels for server-side hashes.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cloudsync_core::{Error, ErrorKind, Result, Secret};
use russh::client::{self, Handle};
use russh::keys::ssh_key::PublicKey;
use russh::keys::{HashAlg, PrivateKeyWithHashAlg, PublicKeyOrCertificate};
use russh::{Disconnect, cipher};
use russh_sftp::client::RawSftpSession;
use russh_sftp::client::rawsession::Limits;

use crate::config::Settings;
use crate::exec::ExecOutput;
use crate::known_hosts::{self, Verdict};

/// Largest SFTP packet we accept from the server (a DATA reply carries at most the read size).
const MAX_INCOMING_PACKET: u32 = 1024 * 1024;
/// SSH channel window: how much the server may send before we acknowledge (bounds downloads
/// in flight per connection).
const WINDOW_SIZE: u32 = 32 * 1024 * 1024;

/// The SSH client callbacks: only host-key verification matters here.
pub(crate) struct Client {
    host: String,
    port: u16,
    known_hosts: Option<std::path::PathBuf>,
    insecure: bool,
    /// Why the host key was refused, for the error message.
    refusal: Arc<Mutex<Option<Error>>>,
}

impl Client {
    fn verify(&self, key: &PublicKey) -> Result<()> {
        if self.insecure {
            return Ok(());
        }
        let name = known_hosts::host_key_name(&self.host, self.port);
        let fp = known_hosts::fingerprint(key);
        let algo = key.algorithm();
        let Some(path) = &self.known_hosts else {
            return Err(Error::new(
                ErrorKind::Auth,
                "no known_hosts file configured",
            ));
        };
        let verdict = known_hosts::check_file(path, &self.host, self.port, key).map_err(|e| {
            Error::new(
                ErrorKind::Auth,
                format!("cannot read known_hosts file {}: {e}", path.display()),
            )
        })?;
        let file = path.display();
        match verdict {
            Verdict::Known => Ok(()),
            Verdict::Unknown => Err(Error::new(
                ErrorKind::Auth,
                format!(
                    "host key of {name} is not known: {algo} {fp} is not in {file}; check the \
                     fingerprint with the server's administrator and add the key to that file \
                     (or set `known_hosts`)"
                ),
            )),
            Verdict::Changed(lines) => Err(Error::new(
                ErrorKind::Auth,
                format!(
                    "HOST KEY MISMATCH for {name}: the server offered {algo} {fp}, which differs \
                     from the key recorded in {file} (line {}); someone may be intercepting the \
                     connection, or the server's key was replaced",
                    lines
                        .iter()
                        .map(usize::to_string)
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            )),
            Verdict::Revoked(line) => Err(Error::new(
                ErrorKind::Auth,
                format!("host key of {name} ({algo} {fp}) is revoked in {file} (line {line})"),
            )),
        }
    }
}

impl client::Handler for Client {
    type Error = russh::Error;

    async fn check_server_key(
        &mut self,
        server_public_key: &PublicKeyOrCertificate,
    ) -> std::result::Result<bool, Self::Error> {
        // A host certificate is checked as its plain key (no @cert-authority support).
        let key = match server_public_key {
            PublicKeyOrCertificate::PublicKey { key, .. } => key.clone(),
            PublicKeyOrCertificate::Certificate(cert) => PublicKey::from(cert.public_key().clone()),
        };
        match self.verify(&key) {
            Ok(()) => Ok(true),
            Err(e) => {
                if let Ok(mut slot) = self.refusal.lock() {
                    *slot = Some(e);
                }
                Ok(false)
            }
        }
    }
}

/// What the server's SFTP subsystem offers.
#[derive(Debug, Clone, Default)]
pub(crate) struct ServerFeatures {
    pub(crate) posix_rename: bool,
    pub(crate) copy_data: bool,
    pub(crate) statvfs: bool,
    pub(crate) limits: Option<Limits>,
}

/// An authenticated SSH connection with one SFTP channel.
pub(crate) struct Connection {
    pub(crate) ssh: Handle<Client>,
    pub(crate) sftp: RawSftpSession,
    pub(crate) features: ServerFeatures,
    /// Set when a request failed in a way that leaves the session unusable.
    broken: std::sync::atomic::AtomicBool,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("features", &self.features)
            .finish_non_exhaustive()
    }
}

/// Maps a russh error to our error, with `what` describing the step.
pub(crate) fn ssh_error(what: &str, e: russh::Error) -> Error {
    use russh::Error as E;
    let (kind, temporary) = match &e {
        E::IO(io) => {
            let k = Error::from(std::io::Error::new(io.kind(), "")).kind();
            (k, k == ErrorKind::Transient || k == ErrorKind::Io)
        }
        E::NoCommonAlgo { .. }
        | E::KexInit
        | E::Kex
        | E::UnknownAlgo
        | E::Version
        | E::WrongServerSig
        | E::StrictKeyExchangeViolation { .. } => (ErrorKind::Protocol, false),
        E::UnknownKey | E::KeyChanged { .. } => (ErrorKind::Auth, false),
        E::NotAuthenticated | E::NoAuthMethod => (ErrorKind::Auth, false),
        E::Keys(_) | E::SshKey(_) => (ErrorKind::ConfigInvalid, false),
        E::InvalidConfig(_) => (ErrorKind::ConfigInvalid, false),
        E::RequestDenied | E::ChannelOpenFailure(_) => (ErrorKind::PermissionDenied, false),
        // Disconnects, timeouts, closed channels: the connection is gone, a new one may work.
        _ => (ErrorKind::Transient, true),
    };
    Error::new(kind, format!("{what}: {e}"))
        .set_temporary(temporary)
        .with_source(e)
}

fn client_config(settings: &Settings) -> client::Config {
    // AES-GCM first: with AES-NI (aws-lc) it is the fastest cipher; the rest are russh's defaults.
    let mut ciphers: Vec<cipher::Name> = vec![cipher::AES_256_GCM, cipher::AES_128_GCM];
    for c in russh::Preferred::default().cipher.iter() {
        if !ciphers.contains(c) {
            ciphers.push(*c);
        }
    }
    client::Config {
        window_size: WINDOW_SIZE,
        nodelay: true,
        keepalive_interval: Some(Duration::from_secs(15).min(settings.timeout)),
        keepalive_max: 3,
        inactivity_timeout: None,
        preferred: russh::Preferred {
            cipher: Cow::Owned(ciphers),
            ..Default::default()
        },
        ..Default::default()
    }
}

/// Runs `fut` with the configured timeout; an overrun is a temporary error.
pub(crate) async fn within<T>(
    timeout: Duration,
    what: &str,
    fut: impl Future<Output = Result<T>>,
) -> Result<T> {
    match tokio::time::timeout(timeout, fut).await {
        Ok(r) => r,
        Err(_) => Err(Error::new(
            ErrorKind::Transient,
            format!("{what}: no answer within {timeout:?}"),
        )),
    }
}

impl Connection {
    /// Connects, verifies the host key, logs in and starts the SFTP subsystem.
    pub(crate) async fn open(settings: &Settings) -> Result<Connection> {
        let refusal = Arc::new(Mutex::new(None));
        let handler = Client {
            host: settings.host.clone(),
            port: settings.port,
            known_hosts: settings.known_hosts.clone(),
            insecure: settings.insecure_accept_any_host_key,
            refusal: refusal.clone(),
        };
        let config = Arc::new(client_config(settings));
        let addr = (settings.host.as_str(), settings.port);
        let connected = within(settings.timeout, "connect", async {
            client::connect(config, addr, handler)
                .await
                .map_err(|e| ssh_error("connect", e))
        })
        .await;
        let mut ssh = match connected {
            Ok(h) => h,
            Err(e) => {
                let refused = refusal.lock().ok().and_then(|mut r| r.take());
                return Err(refused.unwrap_or(e));
            }
        };
        within(
            settings.timeout,
            "authenticate",
            authenticate(&mut ssh, settings),
        )
        .await?;
        let (sftp, features) =
            within(settings.timeout, "start sftp", start_sftp(&ssh, settings)).await?;
        Ok(Connection {
            ssh,
            sftp,
            features,
            broken: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// Whether this connection can still be used.
    pub(crate) fn is_usable(&self) -> bool {
        !self.broken.load(std::sync::atomic::Ordering::Relaxed) && !self.ssh.is_closed()
    }

    /// Marks the connection unusable (the pool replaces it on next use).
    pub(crate) fn mark_broken(&self) {
        self.broken
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }

    /// Runs `command` in the server's shell and returns its standard output; a non-zero exit
    /// status is an error carrying the standard error text.
    pub(crate) async fn exec(&self, command: &str) -> Result<Vec<u8>> {
        let mut channel = self
            .ssh
            .channel_open_session()
            .await
            .map_err(|e| ssh_error("open exec channel", e))?;
        channel
            .exec(true, command)
            .await
            .map_err(|e| ssh_error("exec", e))?;
        let mut output = ExecOutput::default();
        while let Some(msg) = channel.wait().await {
            if let Err(e) = output.take(msg) {
                // Stop the command rather than leave it blocked on a full window.
                let _ = channel.close().await;
                return Err(e);
            }
        }
        output.finish()
    }

    /// Closes the connection politely.
    pub(crate) async fn close(&self) {
        let _ = self.sftp.close_session();
        let _ = self
            .ssh
            .disconnect(Disconnect::ByApplication, "", "en")
            .await;
    }
}

async fn authenticate(ssh: &mut Handle<Client>, s: &Settings) -> Result<()> {
    let user = s.user.as_str();
    let mut tried: Vec<String> = Vec::new();
    let auth_err = |e: russh::Error| ssh_error("authenticate", e);
    for path in &s.key_files {
        let key =
            match russh::keys::load_secret_key(path, s.key_passphrase.as_ref().map(Secret::expose))
            {
                Ok(k) => k,
                Err(e) if s.key_file_explicit => {
                    let why = match e {
                        russh::keys::Error::KeyIsEncrypted => {
                            "it is encrypted: set `key_passphrase_env`".to_owned()
                        }
                        other => other.to_string(),
                    };
                    return Err(Error::new(
                        ErrorKind::Auth,
                        format!("cannot load key file {}: {why}", path.display()),
                    ));
                }
                Err(e) => {
                    tracing::debug!(key = %path.display(), "skipping default key: {e}");
                    continue;
                }
            };
        let hash = if key.algorithm().is_rsa() {
            ssh.best_supported_rsa_hash()
                .await
                .map_err(auth_err)?
                .unwrap_or(Some(HashAlg::Sha256))
        } else {
            None
        };
        tried.push(format!("key {}", path.display()));
        let res = ssh
            .authenticate_publickey(user, PrivateKeyWithHashAlg::new(Arc::new(key), hash))
            .await
            .map_err(auth_err)?;
        if res.success() {
            return Ok(());
        }
    }
    if s.use_agent && std::env::var_os("SSH_AUTH_SOCK").is_some() {
        match russh::keys::agent::client::AgentClient::connect_env().await {
            Ok(mut agent) => {
                let ids = agent.request_identities().await.unwrap_or_default();
                tried.push(format!("ssh-agent ({} keys)", ids.len()));
                for id in ids {
                    let russh::keys::agent::AgentIdentity::PublicKey { key, .. } = id else {
                        continue;
                    };
                    let hash = if key.algorithm().is_rsa() {
                        Some(HashAlg::Sha256)
                    } else {
                        None
                    };
                    match ssh
                        .authenticate_publickey_with(user, key, hash, &mut agent)
                        .await
                    {
                        Ok(res) if res.success() => return Ok(()),
                        Ok(_) => {}
                        Err(e) => tracing::debug!("ssh-agent signing failed: {e}"),
                    }
                }
            }
            Err(e) => tracing::debug!("ssh-agent not usable: {e}"),
        }
    }
    if let Some(password) = s.password.as_ref().map(Secret::expose) {
        tried.push("password".into());
        let res = ssh
            .authenticate_password(user, password)
            .await
            .map_err(auth_err)?;
        if res.success() {
            return Ok(());
        }
    }
    let tried = if tried.is_empty() {
        "no credentials: set `key_file`, `password_env` or run an ssh-agent".to_owned()
    } else {
        format!("tried {}", tried.join(", "))
    };
    Err(Error::new(
        ErrorKind::Auth,
        format!(
            "the server refused login as {user}@{} ({tried})",
            known_hosts::host_key_name(&s.host, s.port)
        ),
    ))
}

async fn start_sftp(
    ssh: &Handle<Client>,
    s: &Settings,
) -> Result<(RawSftpSession, ServerFeatures)> {
    let channel = ssh
        .channel_open_session()
        .await
        .map_err(|e| ssh_error("open sftp channel", e))?;
    channel
        .request_subsystem(true, "sftp")
        .await
        .map_err(|e| ssh_error("request sftp subsystem", e))?;
    let cfg = russh_sftp::client::Config {
        max_packet_len: MAX_INCOMING_PACKET,
        request_timeout_secs: s.timeout.as_secs().max(1),
        ..Default::default()
    };
    let mut sftp = RawSftpSession::new_with_config(channel.into_stream(), cfg);
    let version = sftp.init().await.map_err(|e| {
        Error::new(
            ErrorKind::Protocol,
            format!("the server did not start its SFTP subsystem: {e}"),
        )
        .set_temporary(true)
    })?;
    let ext: &HashMap<String, String> = &version.extensions;
    let has = |name: &str| ext.contains_key(name);
    let mut features = ServerFeatures {
        posix_rename: has("posix-rename@openssh.com"),
        copy_data: has("copy-data"),
        statvfs: has("statvfs@openssh.com"),
        limits: None,
    };
    if has("limits@openssh.com") {
        match sftp.limits().await {
            Ok(l) => {
                let limits = Limits::from(l);
                sftp.set_limits(limits);
                features.limits = Some(limits);
            }
            Err(e) => tracing::debug!("limits@openssh.com failed: {e}"),
        }
    }
    tracing::debug!(?features, version = version.version, "sftp session started");
    Ok((sftp, features))
}
