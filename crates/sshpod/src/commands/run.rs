//! `sshpod run`: load the configuration, connect the backend, serve until SIGTERM/SIGINT;
//! reload on SIGHUP and on `sshpod reload`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result};
use sshpod_core::{Backend, EventSink, Lifecycle};
use sshpod_docker::DockerBackend;
use sshpod_kube::KubeBackend;
use tokio::signal::unix::{signal, SignalKind};

use crate::logging::LogControl;
use crate::reload::{self, Reloader};
use crate::{control, hostkeys, recording};
use sshpod::log_codes;
use sshpod::server::{self, Server};

/// What the running server is operated with besides its configuration.
pub(crate) struct Operations {
    /// The log's level and file, changed by reloads.
    pub(crate) log: LogControl,
    /// Where `sshpod reload` finds the server.
    pub(crate) control_socket: PathBuf,
}

pub(crate) async fn run(
    config: sshpod_config::Config,
    config_path: &Path,
    operations: Operations,
) -> Result<()> {
    // First: SIGHUP's default action ends the process, and an operator may send one at any time.
    let hangup = signal(SignalKind::hangup()).context("installing the SIGHUP handler")?;
    let operations = Running {
        operations,
        hangup,
        config_path: config_path.to_owned(),
    };
    let config = Arc::new(config);
    let host_keys = hostkeys::load(&config.ssh.hostkeys, config_path)?;
    let host_certificates = hostkeys::load_certificates(&config.ssh.host_certificates, &host_keys)?;
    // Before the backend: a port that is taken must not leave anything behind (such as the
    // Kubernetes backend's instance Lease). Listening waits until the backend is ready.
    let socket = server::bind(config.ssh.listen)
        .with_context(|| format!("listening on {}", config.ssh.listen))?;
    // The root of the process's background work: backends run theirs on children of it.
    let lifecycle = Lifecycle::new();
    match config.backend {
        sshpod_config::Backend::Docker => {
            let seat = seat(&socket);
            let backend = DockerBackend::connect(&config.docker, seat.as_deref(), &lifecycle)
                .await
                .with_context(|| {
                    format!(
                        "connecting to the Docker engine at {}",
                        config.docker.connection.host
                    )
                })?;
            tracing::info!(
                code = log_codes::BACKEND_CONNECTED,
                instance = backend.instance(),
                "connected to the Docker engine"
            );
            serve(
                config,
                socket,
                backend,
                host_keys,
                host_certificates,
                &lifecycle,
                operations,
            )
            .await
        }
        sshpod_config::Backend::Kubernetes => {
            let backend = KubeBackend::connect(&config.kubernetes, &lifecycle)
                .await
                .context("connecting to the Kubernetes API server")?;
            tracing::info!(
                code = log_codes::BACKEND_CONNECTED,
                instance = backend.instance(),
                namespace = config.kubernetes.pod.namespace(),
                "connected to the Kubernetes API server"
            );
            serve(
                config,
                socket,
                backend,
                host_keys,
                host_certificates,
                &lifecycle,
                operations,
            )
            .await
        }
        other => anyhow::bail!("backend `{other:?}` is not available in this build"),
    }
}

/// Where this process serves from, the same across its restarts: a hash of the host's name and
/// the bound address. Two listening processes cannot share it (they cannot bind the same
/// address on one host).
fn seat(socket: &tokio::net::TcpSocket) -> Option<String> {
    use sha2::{Digest, Sha256};
    let addr = socket.local_addr().ok()?;
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").ok()?;
    let digest = Sha256::digest(format!("{}|{addr}", host.trim()));
    Some(hex::encode(&digest[..8]))
}

/// [`Operations`] with the SIGHUP stream installed at start.
struct Running {
    operations: Operations,
    hangup: tokio::signal::unix::Signal,
    config_path: PathBuf,
}

/// Sweeps orphans, then serves SSH until SIGTERM or SIGINT, reloading on SIGHUP and on
/// requests to the control socket.
async fn serve<B: Backend>(
    config: Arc<sshpod_config::Config>,
    socket: tokio::net::TcpSocket,
    backend: B,
    host_keys: Vec<russh::keys::PrivateKey>,
    host_certificates: Vec<russh::keys::Certificate>,
    lifecycle: &Lifecycle,
    running: Running,
) -> Result<()> {
    match backend.remove_orphans().await {
        Ok(0) => {}
        Ok(n) => tracing::info!(
            code = log_codes::ORPHANS_REMOVED,
            removed = n,
            "removed containers left by instances that died"
        ),
        Err(e) => tracing::warn!(
            code = log_codes::ORPHANS_UNKNOWN,
            error = &e as &dyn std::error::Error,
            "could not look for orphaned containers"
        ),
    }
    let listener =
        server::listen(socket).with_context(|| format!("listening on {}", config.ssh.listen))?;
    let addr = listener
        .local_addr()
        .context("reading the listening address")?;
    let mut subscribers: Vec<Arc<dyn EventSink>> = vec![Arc::new(server::LogEvents)];
    let recording = recording::start(&config, lifecycle).await?;
    if let Some(recording) = &recording {
        subscribers.push(recording.sink());
    }
    let server = Arc::new(Server::new(
        Arc::clone(&config),
        backend,
        host_keys,
        host_certificates,
        subscribers,
    )?);
    let recorder = if recording.is_some() {
        reload::Recording::On
    } else {
        reload::Recording::Off
    };
    start_reloads(&server, running, recorder, lifecycle);

    let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    let on_signal = lifecycle.clone();
    lifecycle.spawn(async move {
        tokio::select! {
            _ = term.recv() => tracing::info!(code = log_codes::SERVICE_STOPPING, "SIGTERM received"),
            _ = int.recv() => tracing::info!(code = log_codes::SERVICE_STOPPING, "SIGINT received"),
            // Stopped for another reason: nothing to wait for.
            () = on_signal.token().cancelled() => return,
        }
        on_signal.cancel();
    });
    tracing::info!(code = log_codes::SSH_AVAILABLE, "listening on {addr}");
    server.serve(listener, lifecycle).await;
    // Every connection has closed: its recording is written (and uploaded) before the
    // background work (the uploader among it) stops.
    if let Some(recording) = recording {
        recording.finish().await;
    }
    // The server and the backend have stopped their own work; whatever else runs on the root
    // (the signal watcher) ends here.
    lifecycle.cancel();
    if tokio::time::timeout(config.ssh.shutdown_timeout, lifecycle.wait())
        .await
        .is_err()
    {
        tracing::warn!(
            code = log_codes::SHUTDOWN_LATE,
            "shutdown deadline passed with background work still running"
        );
    }
    tracing::info!(code = log_codes::SERVICE_STOPPED, "stopped");
    Ok(())
}

/// Reloads on SIGHUP and on requests to the control socket, until `lifecycle` ends.
fn start_reloads<B: Backend>(
    server: &Arc<Server<B>>,
    running: Running,
    recording: reload::Recording,
    lifecycle: &Lifecycle,
) {
    let Running {
        operations,
        mut hangup,
        config_path,
    } = running;
    let reloader = Arc::new(Reloader::new(
        Arc::clone(server),
        config_path,
        operations.log,
        recording,
    ));
    match control::bind(&operations.control_socket) {
        Ok(socket) => {
            let reloader = Arc::clone(&reloader);
            let answer = Arc::new(move || reloader.reload().answer());
            lifecycle.spawn(socket.serve(answer, lifecycle.token().clone()));
        }
        Err(e) => tracing::warn!(
            code = log_codes::CONTROL_SOCKET,
            error = &e as &dyn std::error::Error,
            "no control socket: `sshpod reload` cannot reach this server; SIGHUP still reloads"
        ),
    }
    let token = lifecycle.token().clone();
    lifecycle.spawn(async move {
        loop {
            tokio::select! {
                () = token.cancelled() => return,
                received = hangup.recv() => if received.is_none() { return },
            }
            tracing::info!(
                code = log_codes::RELOAD_REQUESTED,
                "SIGHUP received: reopening the log and reloading the configuration"
            );
            let reloader = Arc::clone(&reloader);
            // Reading files: off the runtime's threads.
            let _ = tokio::task::spawn_blocking(move || reloader.reload()).await;
        }
    });
}
