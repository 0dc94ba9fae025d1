//! The SSH server: accept loop, connection limits, login grace time and graceful shutdown.
//!
//! Knows SSH and the backend contract; never how a container is made.

mod admission;
mod auth;
mod channel;
mod connection;
mod drain;
mod events;
mod handler;
mod io;
mod limits;
mod revocations;
mod transport;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::Arc;

use russh::keys::ssh_key::Certificate;
use russh::keys::PrivateKey;
use sshpod_config::Config;
use sshpod_core::{Backend, ConnectionRefusal, EventSink, Lifecycle};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tracing::Instrument;

use admission::penalties::Penalties;
use admission::startups::{self, Startups};
pub(crate) use auth::Authenticator;
use auth::Webhooks;
use connection::ConnectionState;
pub use drain::Drain;
pub use events::LogEvents;
use events::Subscribers;
use revocations::{RevocationList, Revocations};
use transport::proxy_header::{self, ProxyHeader};
use transport::russh_config;

/// Why the accept loop turned a connection away.
enum Refusal {
    Penalised { left: std::time::Duration },
    Startups(startups::Refused),
    Draining,
    ProxyHeader(proxy_header::ReadError),
}

/// A connection from a trusted proxy, once its header is read: the socket; the client's
/// address and the one it connected to (the header's, or the socket's for `LOCAL`); the
/// proxy's address.
type Proxied = (
    TcpStream,
    Result<(SocketAddr, SocketAddr), proxy_header::ReadError>,
    SocketAddr,
);

/// What every connection shares: one snapshot of the configuration and what is built from it.
/// A reload makes a new one for the connections accepted after it; a connection keeps the one
/// it was accepted with.
pub(crate) struct Shared<B: Backend> {
    pub(crate) backend: Arc<B>,
    pub(crate) auth: Authenticator,
    pub(crate) webhooks: Webhooks,
    pub(crate) config: Arc<Config>,
    /// Subsystem names the backend can run, to refuse unknown ones at request time.
    pub(crate) subsystems: BTreeSet<String>,
    /// The authentication methods offered, to offer again after a failed attempt.
    pub(crate) methods: russh::MethodSet,
    /// Who is told about each connection's events.
    pub(crate) subscribers: Subscribers,
    /// The configuration for the backend when it is not the one the backend started with
    /// (after a reload): given to it in each connection's context.
    pub(crate) reloaded: Option<Arc<Config>>,
    /// The drain after SIGTERM, which connections announce in their terminals (one for the
    /// server, whatever the snapshot).
    pub(crate) drain: Drain,
}

/// The snapshot new connections are accepted with.
struct Snapshot<B: Backend> {
    shared: Arc<Shared<B>>,
    russh: Arc<russh::server::Config>,
}

impl<B: Backend> Clone for Snapshot<B> {
    fn clone(&self) -> Self {
        Self {
            shared: Arc::clone(&self.shared),
            russh: Arc::clone(&self.russh),
        }
    }
}

impl<B: Backend> Snapshot<B> {
    /// Everything built from `config`, for `backend`.
    fn build(
        config: Arc<Config>,
        backend: Arc<B>,
        host_keys: Vec<PrivateKey>,
        host_certificates: Vec<Certificate>,
        subscribers: Subscribers,
        drain: Drain,
        reloaded: bool,
    ) -> anyhow::Result<Self> {
        let auth = Authenticator::from_config(&config.auth);
        let webhooks = Webhooks::from_config(&config)?;
        let mut methods = auth.methods();
        webhooks.add_methods(&mut methods);
        let russh = Arc::new(russh_config::build(
            &config,
            host_keys,
            host_certificates,
            methods.clone(),
        ));
        let subsystems = config.subsystems().keys().cloned().collect();
        Ok(Self {
            shared: Arc::new(Shared {
                backend,
                auth,
                webhooks,
                reloaded: reloaded.then(|| Arc::clone(&config)),
                config,
                subsystems,
                methods,
                subscribers,
                drain,
            }),
            russh,
        })
    }
}

/// A configured server, ready to serve a bound listener.
pub struct Server<B: Backend> {
    /// Replaced whole by [`Server::reload`]; read once per accepted connection.
    current: std::sync::RwLock<Snapshot<B>>,
    startups: Arc<Startups>,
    penalties: Arc<Penalties>,
    /// The drain after SIGTERM (every snapshot's connections share it).
    drain: Drain,
    /// The revocation list in force, which running connections follow.
    revocations: Revocations,
    /// When a refused connection was last logged.
    refusal_logged: std::sync::Mutex<Option<tokio::time::Instant>>,
}

impl<B: Backend> Server<B> {
    /// A server for `backend`, telling `subscribers` (usually [`LogEvents`] at least) what
    /// happens on each connection.
    pub fn new(
        config: Arc<Config>,
        backend: B,
        host_keys: Vec<PrivateKey>,
        host_certificates: Vec<Certificate>,
        subscribers: Vec<Arc<dyn EventSink>>,
    ) -> anyhow::Result<Self> {
        let startups = Startups::new(&config.ssh);
        let penalties = Penalties::new(&config.ssh);
        let drain = Drain::default();
        let snapshot = Snapshot::build(
            config,
            Arc::new(backend),
            host_keys,
            host_certificates,
            subscribers.into(),
            drain.clone(),
            false,
        )?;
        let revocations = Revocations::new(revocation_list(&snapshot.shared));
        Ok(Self {
            current: std::sync::RwLock::new(snapshot),
            drain,
            revocations,
            startups,
            penalties,
            refusal_logged: std::sync::Mutex::new(None),
        })
    }

    /// Serves the connections accepted from now on with `config` (its authenticators,
    /// webhooks, host keys, algorithms and backend settings); connections already accepted
    /// keep theirs, except for the revocation list (`revokedKeys`), which ends those whose key
    /// or certificate it revokes. Settings read only at start (`ssh.listen`, the admission
    /// limits, the backend's connection) are the caller's to refuse: they are not changed
    /// here. On error nothing changes.
    pub fn reload(
        &self,
        config: Arc<Config>,
        host_keys: Vec<PrivateKey>,
        host_certificates: Vec<Certificate>,
    ) -> anyhow::Result<()> {
        let current = self.snapshot();
        let snapshot = Snapshot::build(
            config,
            Arc::clone(&current.shared.backend),
            host_keys,
            host_certificates,
            current.shared.subscribers.clone(),
            self.drain.clone(),
            true,
        )?;
        // Running connections follow the new list (and check their keys against it now).
        self.revocations.replace(revocation_list(&snapshot.shared));
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = snapshot;
        Ok(())
    }

    /// Has every running connection check its key against the revocation list again (a
    /// reload request: the list may have changed even if the configuration did not).
    pub fn recheck_revocations(&self) {
        self.revocations.recheck();
    }

    /// The configuration new connections are accepted with.
    pub fn config(&self) -> Arc<Config> {
        Arc::clone(&self.snapshot().shared.config)
    }

    fn snapshot(&self) -> Snapshot<B> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Asks the backend whether it answers, for readiness probes; holds the backend only while
    /// a check runs.
    pub fn backend_check(
        &self,
    ) -> impl Fn() -> sshpod_core::BoxFuture<'static, Result<(), String>> + Send + Sync + 'static
    {
        let backend = Arc::downgrade(&self.snapshot().shared.backend);
        move || {
            let backend = backend.upgrade();
            Box::pin(async move {
                match backend {
                    Some(backend) => backend.check().await.map_err(|e| e.to_string()),
                    None => Err("the server has stopped".to_owned()),
                }
            })
        }
    }

    /// The drain after SIGTERM: [`Drain::start`] refuses new connections with a message and
    /// warns connected terminal users; the shutdown still comes from `lifecycle`.
    pub fn drain(&self) -> Drain {
        self.drain.clone()
    }

    /// Serves until `lifecycle` is cancelled, then disconnects every client, removes their
    /// containers and shuts the backend down, waiting at most `ssh.shutdownTimeout` for the
    /// connections. Connections run on a child of `lifecycle`.
    pub async fn serve(&self, listener: TcpListener, lifecycle: &Lifecycle) {
        let connections = lifecycle.child();
        let shutdown = connections.token().clone();
        // Read at start, as the admission limits (a reload that changes it is refused).
        let proxy = self.snapshot().shared.config.ssh.proxy_protocol.clone();
        lifecycle.spawn(self.revocations.clone().watch_file(shutdown.clone()));
        // Headers are read off the accept loop, each within its deadline; admission stays here.
        let (proxied_tx, mut proxied_rx) = tokio::sync::mpsc::channel::<Proxied>(64);
        // A connection whose header is not read yet is unauthenticated too: at most
        // `ssh.maxStartups` (its full value) are waited for at once.
        let header_slots = self.snapshot().shared.config.ssh.max_startups.full;
        let header_reads = Arc::new(tokio::sync::Semaphore::new(header_slots as usize));
        loop {
            let (socket, (peer, local), via) = tokio::select! {
                () = shutdown.cancelled() => break,
                Some((socket, client, via)) = proxied_rx.recv() => match client {
                    Ok(addresses) => (socket, addresses, Some(via)),
                    Err(e) => {
                        self.log_refused(via, Refusal::ProxyHeader(e));
                        continue;
                    }
                },
                a = listener.accept() => match a {
                    Ok((socket, peer)) if proxy.trusts(peer.ip()) => {
                        match Arc::clone(&header_reads).try_acquire_owned() {
                            Ok(slot) => {
                                let sender = proxied_tx.clone();
                                let read = read_proxy_header(socket, peer, proxy.header_timeout, sender, slot);
                                connections.spawn(read);
                            }
                            Err(_) => self.log_refused(
                                peer,
                                Refusal::Startups(startups::Refused::Full {
                                    unauthenticated: header_slots,
                                }),
                            ),
                        }
                        continue;
                    }
                    Ok((socket, peer)) => {
                        let local = local_addr(&socket);
                        (socket, (peer, local), None)
                    }
                    Err(e) => {
                        // Out of file descriptors and the like: keep serving the others.
                        tracing::warn!(
                            code = crate::log_codes::ACCEPT_FAILED,
                            error = &e as &dyn std::error::Error,
                            "accept failed"
                        );
                        continue;
                    }
                },
            };
            if self.drain.is_draining() {
                self.log_refused(peer, Refusal::Draining);
                let version = self.snapshot().shared.config.ssh.server_version.clone();
                connections.spawn(async move {
                    drain::refuse(socket, &version, drain::RESTARTING).await;
                });
                continue;
            }
            if let Some(left) = self.penalties.refused(peer.ip()) {
                self.log_refused(peer, Refusal::Penalised { left });
                continue;
            }
            let permit = match self.startups.admit(peer.ip()) {
                Ok(permit) => permit,
                Err(refused) => {
                    self.log_refused(peer, Refusal::Startups(refused));
                    continue;
                }
            };
            // The configuration the connection keeps, whatever reloads come after.
            let Snapshot { shared, russh } = self.snapshot();
            let conn = Arc::new(ConnectionState::new(
                shared,
                (peer, local),
                via,
                permit,
                shutdown.child_token(),
                self.revocations.clone(),
            ));
            let span = conn.span.clone();
            let penalties = Arc::clone(&self.penalties);
            connections.spawn(conn.run(socket, russh, penalties).instrument(span));
        }
        drop(listener);
        drop(proxied_rx);
        let shared = self.snapshot().shared;
        let grace = shared.config.ssh.shutdown_timeout;
        tracing::info!(
            code = crate::log_codes::SERVICE_STOPPING,
            connections = connections.len(),
            "shutting down"
        );
        if tokio::time::timeout(grace, connections.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                code = crate::log_codes::SHUTDOWN_LATE,
                "shutdown deadline passed with connections still closing"
            );
        }
        shared.backend.shutdown().await;
    }

    /// One line per refused connection would let a flood fill the log: one a second is enough.
    /// The subscribers (metrics) hear of every one.
    fn log_refused(&self, peer: SocketAddr, refused: Refusal) {
        let reason = match &refused {
            Refusal::Penalised { .. } => ConnectionRefusal::Penalised,
            Refusal::Startups(startups::Refused::Full { .. }) => ConnectionRefusal::MaxStartups,
            Refusal::Startups(startups::Refused::Source { .. }) => {
                ConnectionRefusal::PerSourceMaxStartups
            }
            Refusal::Draining => ConnectionRefusal::Draining,
            Refusal::ProxyHeader(_) => ConnectionRefusal::ProxyHeader,
        };
        for subscriber in self.snapshot().shared.subscribers.iter() {
            subscriber.refused(peer, reason);
        }
        let now = tokio::time::Instant::now();
        let mut last = self
            .refusal_logged
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if last.is_some_and(|at| now.duration_since(at) < std::time::Duration::from_secs(1)) {
            return;
        }
        *last = Some(now);
        match refused {
            Refusal::Penalised { left } => tracing::warn!(
                code = crate::log_codes::REFUSED_PENALISED,
                %peer,
                refused_for_secs = left.as_secs(),
                "connection dropped: its network failed to log in too often (ssh.perSourcePenalties)"
            ),
            Refusal::Startups(startups::Refused::Full { unauthenticated }) => tracing::warn!(
                code = crate::log_codes::REFUSED_MAX_STARTUPS,
                %peer,
                unauthenticated,
                "connection dropped: too many unauthenticated connections (ssh.maxStartups)"
            ),
            Refusal::Startups(startups::Refused::Source { unauthenticated }) => tracing::warn!(
                code = crate::log_codes::REFUSED_SOURCE_STARTUPS,
                %peer,
                unauthenticated,
                "connection dropped: too many unauthenticated connections from its network (ssh.perSourceMaxStartups)"
            ),
            Refusal::Draining => tracing::info!(
                code = crate::log_codes::REFUSED_DRAINING,
                %peer,
                "connection refused: the server is restarting (draining after SIGTERM)"
            ),
            Refusal::ProxyHeader(e) => tracing::warn!(
                code = crate::log_codes::REFUSED_PROXY_HEADER,
                proxy = %peer,
                error = &e as &dyn std::error::Error,
                "connection dropped: no valid PROXY protocol header from a trusted proxy (ssh.proxyProtocol)"
            ),
        }
    }
}

/// The revocation list `shared`'s configuration puts in force (sharing the authenticator's
/// copy of the file).
fn revocation_list<B: Backend>(shared: &Shared<B>) -> RevocationList {
    RevocationList {
        keys: shared.auth.revoked_keys(),
        check_interval: shared
            .config
            .auth
            .public_key
            .trust
            .revoked_keys_check_interval,
    }
}

/// Reads a trusted proxy's header from `socket` and hands the connection back to the accept
/// loop with the addresses the header gives; `slot` is held while the header is awaited.
async fn read_proxy_header(
    mut socket: TcpStream,
    proxy: SocketAddr,
    timeout: std::time::Duration,
    accept_loop: tokio::sync::mpsc::Sender<Proxied>,
    slot: tokio::sync::OwnedSemaphorePermit,
) {
    let addresses = proxy_header::read(&mut socket, timeout)
        .await
        .map(|header| match header {
            ProxyHeader::Proxied {
                source,
                destination,
            } => (source, destination),
            ProxyHeader::Local => (proxy, local_addr(&socket)),
        });
    // From here on the connection counts in the accept loop's own admission.
    drop(slot);
    let _ = accept_loop.send((socket, addresses, proxy)).await;
}

/// The address a client connected to (for `SSH_CONNECTION`); the unspecified address if the
/// socket cannot say.
fn local_addr(socket: &TcpStream) -> SocketAddr {
    socket
        .local_addr()
        .unwrap_or(SocketAddr::from(([0, 0, 0, 0], 0)))
}

/// Takes the configured address without listening on it yet: a port that is taken shows up
/// here, while clients (and readiness probes) are answered only once [`listen`] runs.
pub fn bind(listen: SocketAddr) -> std::io::Result<TcpSocket> {
    let socket = match listen {
        SocketAddr::V4(_) => TcpSocket::new_v4()?,
        SocketAddr::V6(_) => TcpSocket::new_v6()?,
    };
    socket.set_reuseaddr(true)?;
    socket.bind(listen)?;
    Ok(socket)
}

/// Starts accepting connections on a socket from [`bind`].
pub fn listen(socket: TcpSocket) -> std::io::Result<TcpListener> {
    socket.listen(1024)
}
