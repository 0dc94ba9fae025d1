//! `sshpod audit serve`: the recordings page for the recordings `--dir` (or the configuration)
//! names, without running the SSH server: to browse recordings offline, or a copy of them.
//! Serves until SIGTERM or SIGINT.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use clap::Args;
use sshpod::web;
use sshpod_audit::store::Store;
use sshpod_config::{AuditWebConfig, Secret, DEFAULT_PLAYER_ASSETS};
use sshpod_core::Lifecycle;
use tokio::signal::unix::{signal, SignalKind};
use tracing_subscriber::EnvFilter;

use super::Outcome;

/// Arguments of `sshpod audit serve`.
#[derive(Debug, Args)]
pub(crate) struct ServeArgs {
    /// `host:port` to listen on (port 0: any free port; the address is printed at start).
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: String,
    /// A file whose first line is the bearer token (at least 16 characters). A file rather than
    /// an argument: arguments are visible to every user of the machine.
    #[arg(long, value_name = "FILE")]
    token_file: Option<PathBuf>,
    /// The directory with asciinema-player's script and style (in a source tree,
    /// `web/node_modules/asciinema-player/dist/bundle` after `npm ci` in `web/`). Without
    /// them recordings are listed but not played.
    #[arg(long, value_name = "DIR", env = "SSHPOD_PLAYER_ASSETS", default_value = DEFAULT_PLAYER_ASSETS)]
    assets: PathBuf,
    /// The server's certificate (PEM file): HTTPS.
    #[arg(long, value_name = "FILE", requires = "key")]
    cert: Option<PathBuf>,
    /// The server's private key (PEM file).
    #[arg(long, value_name = "FILE", requires = "cert")]
    key: Option<PathBuf>,
    /// CA certificate(s) (PEM file) client certificates must chain to: clients without one
    /// are refused. Needs `--cert` and `--key`.
    #[arg(long, value_name = "FILE")]
    client_ca: Option<PathBuf>,
}

fn path_text(path: Option<PathBuf>) -> String {
    path.map(|p| p.display().to_string()).unwrap_or_default()
}

impl ServeArgs {
    /// The page's settings, as `audit.web` would give them.
    fn web_config(self) -> Result<AuditWebConfig> {
        let token = match &self.token_file {
            Some(file) => {
                let text = std::fs::read_to_string(file)
                    .with_context(|| format!("reading the token from {}", file.display()))?;
                let token = text.lines().next().unwrap_or_default().trim().to_owned();
                if token.is_empty() {
                    bail!("{} holds no token", file.display());
                }
                token
            }
            None => String::new(),
        };
        Ok(AuditWebConfig {
            listen: self.listen,
            token: Secret::new(token),
            cert: path_text(self.cert),
            key: path_text(self.key),
            clientcacert: path_text(self.client_ca),
            assets: self.assets,
        })
    }
}

/// Serves `store` until a signal; prints `listening on URL` to `out` once it listens.
pub(super) async fn run(
    store: Arc<dyn Store>,
    args: ServeArgs,
    out: &mut impl Write,
) -> Result<Outcome> {
    // The page's warnings and errors go to stderr: stdout carries the address line.
    let filter = EnvFilter::try_from_env("SSHPOD_LOG")
        .unwrap_or_else(|_| EnvFilter::new("warn,sshpod=info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(false)
        .with_writer(std::io::stderr)
        .try_init();
    let config = args.web_config()?;
    let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    let lifecycle = Lifecycle::new();
    let bound = web::serve(&config, store, &lifecycle).await?;
    writeln!(out, "listening on {}", bound.url()).context("writing to standard output")?;
    out.flush().context("writing to standard output")?;
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM received"),
        _ = int.recv() => tracing::info!("SIGINT received"),
    }
    lifecycle.cancel();
    lifecycle.wait().await;
    Ok(Outcome::Success)
}
