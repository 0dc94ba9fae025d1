//! `sshpod run`: load the configuration, connect the backend, serve until SIGTERM/SIGINT;
//! reload on SIGHUP and on `sshpod reload`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result};
use sshpod_core::{Backend, EventSink, Lifecycle};
use sshpod_docker::DockerBackend;
use sshpod_kube::KubeBackend;
use sshpod_sshproxy::{SshProxyBackend, WithSshProxy};
use tokio::signal::unix::{signal, SignalKind};

use crate::logging::LogControl;
use crate::reload::{self, Reloader};
use crate::{control, hostkeys, recording};
use sshpod::geoip::GeoIp;
use sshpod::http::Readiness;
use sshpod::log_codes;
use sshpod::metrics::Metrics;
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
    let keys = hostkeys::load(&config.ssh.hostkeys, config_path)?;
    let certificates = hostkeys::load_certificates(&config.ssh.host_certificates, &keys)?;
    let identity = HostIdentity { keys, certificates };
    // Before the backend: a port that is taken must not leave anything behind (such as the
    // Kubernetes backend's instance Lease). Listening waits until the backend is ready.
    let socket = server::bind(config.ssh.listen)
        .with_context(|| format!("listening on {}", config.ssh.listen))?;
    // The root of the process's background work: backends run theirs on children of it.
    let lifecycle = Lifecycle::new();
    // Before the backend too; probes see the process alive but not ready until it serves.
    // The endpoints have a root of their own: they answer (not ready) while the server
    // drains, and stop last.
    let endpoints = Endpoints {
        readiness: Readiness::new(),
        metrics: metrics(&config)?,
        http: Lifecycle::new(),
    };
    sshpod::http::serve(
        &config,
        endpoints.metrics.clone(),
        &endpoints.readiness,
        &endpoints.http,
    )
    .await
    .context("starting the metrics and health endpoints")?;
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
            let backend = backend
                .with_homes(config.homes.clone())
                .with_pool(&config.pool, &config.identity);
            tracing::info!(
                code = log_codes::BACKEND_CONNECTED,
                instance = backend.instance(),
                "connected to the Docker engine"
            );
            if let Some(metrics) = &endpoints.metrics {
                let requests = backend.engine_requests();
                metrics.count_api_requests(move || requests.snapshot());
                if let Some(pool) = backend.pool_stats() {
                    metrics.watch_pool(move || pool.snapshot());
                }
            }
            // A config server may send a login to another SSH server (`backend: sshproxy`).
            let backend =
                WithSshProxy::new(backend, SshProxyBackend::new(&config.sshproxy, &lifecycle));
            serve(
                config, socket, backend, identity, endpoints, &lifecycle, operations,
            )
            .await
        }
        sshpod_config::Backend::Kubernetes => {
            let seat = seat(&socket);
            let backend = KubeBackend::connect(&config.kubernetes, seat.as_deref(), &lifecycle)
                .await
                .context("connecting to the Kubernetes API server")?;
            let backend = backend
                .with_homes(config.homes.clone())
                .with_pool(&config.pool, &config.identity);
            tracing::info!(
                code = log_codes::BACKEND_CONNECTED,
                instance = backend.instance(),
                namespace = config.kubernetes.pod.namespace(),
                "connected to the Kubernetes API server"
            );
            if let Some(metrics) = &endpoints.metrics {
                let requests = backend.api_requests();
                metrics.count_api_requests(move || requests.snapshot());
                if let Some(pool) = backend.pool_stats() {
                    metrics.watch_pool(move || pool.snapshot());
                }
            }
            let backend =
                WithSshProxy::new(backend, SshProxyBackend::new(&config.sshproxy, &lifecycle));
            serve(
                config, socket, backend, identity, endpoints, &lifecycle, operations,
            )
            .await
        }
        sshpod_config::Backend::SshProxy => {
            let backend = SshProxyBackend::new(&config.sshproxy, &lifecycle);
            backend
                .check_private_key()
                .await
                .context("reading the key for the SSH server behind this one")?;
            tracing::info!(
                code = log_codes::BACKEND_CONNECTED,
                server = %config.sshproxy.server,
                port = config.sshproxy.port,
                "passing logins on to another SSH server"
            );
            serve(
                config, socket, backend, identity, endpoints, &lifecycle, operations,
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

/// The host keys and certificates the server presents.
struct HostIdentity {
    keys: Vec<russh::keys::PrivateKey>,
    certificates: Vec<russh::keys::Certificate>,
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
    identity: HostIdentity,
    endpoints: Endpoints,
    lifecycle: &Lifecycle,
    running: Running,
) -> Result<()> {
    let Endpoints {
        readiness,
        metrics,
        http,
    } = endpoints;
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
    if let Some(metrics) = &metrics {
        subscribers.push(Arc::clone(metrics) as Arc<dyn EventSink>);
    }
    let recording = recording::start(&config, lifecycle).await?;
    if let Some(recording) = &recording {
        subscribers.push(recording.sink());
        if let Some(metrics) = &metrics {
            metrics.watch_audit_backlog(recording.backlog());
        }
    }
    let server = Arc::new(Server::new(
        Arc::clone(&config),
        backend,
        identity.keys,
        identity.certificates,
        subscribers,
    )?);
    let recorder = if recording.is_some() {
        reload::Recording::On
    } else {
        reload::Recording::Off
    };
    start_reloads(&server, running, recorder, lifecycle);

    readiness.set_backend_check(Arc::new(server.backend_check()));
    readiness.mark_swept();
    let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    let on_signal = lifecycle.clone();
    let draining = readiness.clone();
    let drain = server.drain();
    let draining_server = Arc::clone(&server);
    lifecycle.spawn(async move {
        tokio::select! {
            _ = term.recv() => tracing::info!(code = log_codes::SERVICE_STOPPING, "SIGTERM received"),
            _ = int.recv() => tracing::info!(code = log_codes::SERVICE_STOPPING, "SIGINT received"),
            // Stopped for another reason: nothing to wait for.
            () = on_signal.token().cancelled() => return,
        }
        // Probes say "not ready" before anything else.
        draining.set_draining();
        // As the latest reload says.
        let drain_timeout = draining_server.config().ssh.drain_timeout;
        drop(draining_server);
        if !drain_timeout.is_zero() {
            drain.start(drain_timeout);
            tracing::info!(
                code = log_codes::DRAINING,
                seconds = drain_timeout.as_secs_f64(),
                "draining: new connections are refused, connected users are told (ssh.drainTimeout)"
            );
            tokio::select! {
                () = tokio::time::sleep(drain_timeout) => {}
                _ = term.recv() => tracing::info!(code = log_codes::SERVICE_STOPPING, "SIGTERM received again: shutting down now"),
                _ = int.recv() => tracing::info!(code = log_codes::SERVICE_STOPPING, "SIGINT received again: shutting down now"),
                () = on_signal.token().cancelled() => return,
            }
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
    http.cancel();
    let stopped = async { tokio::join!(lifecycle.wait(), http.wait()) };
    if tokio::time::timeout(config.ssh.shutdown_timeout, stopped)
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

/// What the HTTP endpoints report: readiness, and the metrics when they are on; and the root
/// they run on.
struct Endpoints {
    readiness: Readiness,
    metrics: Option<Arc<Metrics>>,
    http: Lifecycle,
}

/// The metrics, when `metrics.enable` asks for them (with the GeoIP database read now).
fn metrics(config: &sshpod_config::Config) -> Result<Option<Arc<Metrics>>> {
    if !config.metrics.enable {
        return Ok(None);
    }
    let backend = match config.backend {
        sshpod_config::Backend::Kubernetes => "kubernetes",
        sshpod_config::Backend::SshProxy => "sshproxy",
        _ => "docker",
    };
    Ok(Some(Arc::new(Metrics::new(
        backend,
        GeoIp::open(&config.geoip)?,
    ))))
}
