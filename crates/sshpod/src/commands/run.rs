//! `sshpod run`: load the configuration, connect the backend, serve until SIGTERM/SIGINT.

use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result};
use sshpod_core::{Backend, EventSink, Lifecycle};
use sshpod_docker::DockerBackend;
use sshpod_kube::KubeBackend;
use tokio::signal::unix::{signal, SignalKind};

use crate::{hostkeys, recording};
use sshpod::server::{self, Server};

pub(crate) async fn run(config: sshpod_config::Config, config_path: &Path) -> Result<()> {
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
            )
            .await
        }
        sshpod_config::Backend::Kubernetes => {
            let backend = KubeBackend::connect(&config.kubernetes, &lifecycle)
                .await
                .context("connecting to the Kubernetes API server")?;
            tracing::info!(
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

/// Sweeps orphans, then serves SSH until SIGTERM or SIGINT.
async fn serve<B: Backend>(
    config: Arc<sshpod_config::Config>,
    socket: tokio::net::TcpSocket,
    backend: B,
    host_keys: Vec<russh::keys::PrivateKey>,
    host_certificates: Vec<russh::keys::Certificate>,
    lifecycle: &Lifecycle,
) -> Result<()> {
    match backend.remove_orphans().await {
        Ok(0) => {}
        Ok(n) => tracing::info!(
            removed = n,
            "removed containers left by instances that died"
        ),
        Err(e) => tracing::warn!(
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
    let server = Server::new(
        Arc::clone(&config),
        backend,
        host_keys,
        host_certificates,
        subscribers,
    )?;

    let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    let on_signal = lifecycle.clone();
    let drain = server.drain();
    let drain_timeout = config.ssh.drain_timeout;
    lifecycle.spawn(async move {
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM received"),
            _ = int.recv() => tracing::info!("SIGINT received"),
            // Stopped for another reason: nothing to wait for.
            () = on_signal.token().cancelled() => return,
        }
        // Readiness goes false here, before anything else (the health endpoint follows
        // `drain.subscribe()`, or is told here).
        if !drain_timeout.is_zero() {
            drain.start(drain_timeout);
            tracing::info!(
                seconds = drain_timeout.as_secs_f64(),
                "draining: new connections are refused, connected users are told (ssh.drainTimeout)"
            );
            tokio::select! {
                () = tokio::time::sleep(drain_timeout) => {}
                _ = term.recv() => tracing::info!("SIGTERM received again: shutting down now"),
                _ = int.recv() => tracing::info!("SIGINT received again: shutting down now"),
                () = on_signal.token().cancelled() => return,
            }
        }
        on_signal.cancel();
    });
    tracing::info!("listening on {addr}");
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
        tracing::warn!("shutdown deadline passed with background work still running");
    }
    tracing::info!("stopped");
    Ok(())
}
