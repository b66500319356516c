//! `cloudsync serve`: the HTTP service of `cloudsync::serve` over this program's backends and
//! config file, until Ctrl-C.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use clap::Args;
use cloudsync::deps::async_trait::async_trait;
use cloudsync::queue::OpenRemote;
use cloudsync::serve::{Auth, Schedule, Service, ServiceConfig, check_bind};
use cloudsync::{Remote, Result, Secret};

use crate::exit::{self, Failure};
use crate::location::Opener;

/// `cloudsync serve [--addr] [--user U --password-env VAR | --token-file F] [--state-dir D]`.
#[derive(Debug, Args)]
pub struct ServeCmd {
    /// Address to listen on; any other than a loopback address needs --user or --token-file
    #[arg(long, default_value = "127.0.0.1:5572", value_name = "IP:PORT")]
    pub addr: SocketAddr,
    /// User name for HTTP Basic authentication (with --password-env)
    #[arg(long, requires = "password_env", conflicts_with = "token_file")]
    pub user: Option<String>,
    /// Environment variable holding the Basic authentication password
    #[arg(long, requires = "user", value_name = "VAR")]
    pub password_env: Option<String>,
    /// File holding a Bearer token (its first line)
    #[arg(long, value_name = "FILE")]
    pub token_file: Option<PathBuf>,
    /// Where the report queue, schedules and their history are kept [default:
    /// $XDG_STATE_HOME/cloudsync/serve, else ~/.local/state/cloudsync/serve]
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
}

/// The CLI's opener, for the service (its errors name the config file).
struct CliOpener(Opener);

#[async_trait]
impl OpenRemote for CliOpener {
    async fn open(&self, location: &str) -> Result<Arc<dyn Remote>> {
        self.0.open(location).await
    }
}

fn auth(c: &ServeCmd) -> Result<Auth, Failure> {
    if let (Some(user), Some(var)) = (&c.user, &c.password_env) {
        let password = std::env::var(var).map_err(|_| {
            Failure::usage(format!("--password-env {var}: the variable is not set"))
        })?;
        if password.is_empty() {
            return Err(Failure::usage(format!(
                "--password-env {var}: the variable is empty"
            )));
        }
        return Ok(Auth::Basic {
            user: user.clone(),
            password: Secret::new(password),
        });
    }
    if let Some(file) = &c.token_file {
        let text = std::fs::read_to_string(file)
            .map_err(|e| Failure::usage(format!("--token-file {}: {e}", file.display())))?;
        let token = text.lines().next().unwrap_or("").trim().to_owned();
        if token.is_empty() {
            return Err(Failure::usage(format!(
                "--token-file {}: the file holds no token",
                file.display()
            )));
        }
        return Ok(Auth::Bearer {
            token: Secret::new(token),
        });
    }
    Ok(Auth::None)
}

fn default_state_dir() -> PathBuf {
    std::env::var_os("XDG_STATE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local").join("state")))
        .unwrap_or_else(|| PathBuf::from(".local/state"))
        .join("cloudsync")
        .join("serve")
}

pub async fn run(opener: Opener, c: ServeCmd) -> Result<u8, Failure> {
    let auth = auth(&c)?;
    check_bind(c.addr, &auth).map_err(|e| Failure::usage(e.to_string()))?;
    let state_dir = c.state_dir.clone().unwrap_or_else(default_state_dir);
    let schedules = Schedule::from_config(&opener.config).map_err(|e| {
        Failure::usage(format!("{}: {}", opener.config_path.display(), e.message()))
    })?;
    let mut config = ServiceConfig::new(Arc::new(CliOpener(opener)), &state_dir);
    config.auth = auth;
    config.schedules = schedules;
    let service = Service::start(config)
        .await
        .map_err(|e| Failure::usage(e.to_string()))?;
    eprintln!(
        "cloudsync serve: listening on http://{} (state in {})",
        c.addr,
        state_dir.display()
    );
    let shutdown = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    service.serve(c.addr, shutdown).await.map_err(|e| Failure {
        code: exit::FATAL,
        message: e.to_string(),
    })?;
    Ok(exit::OK)
}
