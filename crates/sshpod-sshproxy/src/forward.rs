//! Remote and socket forwarding passed on upstream. `ssh -R` becomes `tcpip-forward` (or
//! `streamlocal-forward@openssh.com`) on the upstream connection; each channel the upstream
//! server then opens for it is held, unanswered, in this side's [`Listener`] until sshpod's
//! server has opened the matching channel to its client and takes it, or refuses it. So the
//! upstream server learns a connection was refused exactly when sshpod's client refused it.
//! `ssh -L` to a socket becomes `direct-streamlocal@openssh.com`. The channels the upstream
//! server opens to the client's agent (`ssh -A`) and to its X server (`ssh -X`) are held and
//! passed on the same way.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use russh::client::{ChannelOpenHandle, Msg};
use russh::Channel;
use sshpod_core::{Accepted, BackendError, ForwardedStream, Lifecycle, ListenFuture, Listener};
use tokio::sync::mpsc;

use crate::connect::Upstream;

/// The most channels one forward may have waiting to be taken; more are refused upstream at
/// once (sshpod's server holds as many per forward).
const PENDING: usize = 32;

/// What the upstream server names when it opens a channel for a forward.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum Route {
    /// A TCP forward, by the port bound upstream.
    Tcp(u32),
    /// A socket forward, by its path upstream.
    Unix(String),
    /// The client's agent, which the upstream server's sessions reach.
    Agent,
    /// The client's X server, which the upstream server's sessions' displays reach.
    X11,
}

/// A channel the upstream server opened for a forward, not answered yet.
pub(crate) struct Incoming {
    channel: Channel<Msg>,
    reply: ChannelOpenHandle,
    originator: String,
    originator_port: u16,
}

/// Where the upstream connection's handler passes the channels opened for each forward.
#[derive(Default)]
pub(crate) struct Routes(Mutex<HashMap<Route, mpsc::Sender<Incoming>>>);

impl Routes {
    fn lock(&self) -> MutexGuard<'_, HashMap<Route, mpsc::Sender<Incoming>>> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Passes a channel the upstream server opened to its forward's listener. One for no
    /// forward of this login, or one over the forward's limit, is refused (the reply dropped).
    pub(crate) fn deliver(
        &self,
        route: &Route,
        channel: Channel<Msg>,
        reply: ChannelOpenHandle,
        originator: &str,
        originator_port: u32,
    ) {
        let Some(sender) = self.lock().get(route).cloned() else {
            tracing::debug!(?route, "upstream opened a channel for no forward; refused");
            return;
        };
        let incoming = Incoming {
            channel,
            reply,
            originator: originator.to_owned(),
            originator_port: u16::try_from(originator_port).unwrap_or(0),
        };
        if sender.try_send(incoming).is_err() {
            tracing::info!(
                ?route,
                limit = PENDING,
                "upstream forward connection refused: too many are waiting"
            );
        }
    }
}

/// Forwards `host:port` on the upstream server (`ssh -R`); port 0 lets it choose.
pub(crate) async fn listen_tcp(
    upstream: &Arc<Upstream>,
    routes: &Arc<Routes>,
    lifecycle: &Lifecycle,
    host: &str,
    port: u16,
) -> Result<Box<dyn Listener>, BackendError> {
    let bound = upstream
        .tcpip_forward(host, u32::from(port))
        .await
        .map_err(|e| refused(&format!("listen on {host}:{port}"), e))?;
    // The server names the port it bound only when it chose one.
    let bound = if port == 0 { bound } else { u32::from(port) };
    let Ok(bound_port) = u16::try_from(bound) else {
        return Err(refused(
            &format!("listen on {host}:{port}"),
            russh::Error::RequestDenied,
        ));
    };
    // Registered once the port is known: a connection the server passes on in between is
    // refused, as one made before the listener existed would be.
    Ok(Box::new(ProxiedListener::new(
        Arc::clone(upstream),
        Arc::clone(routes),
        lifecycle.clone(),
        Forwarded::Tcp {
            host: host.to_owned(),
            port: bound,
        },
        bound_port,
    )))
}

/// Forwards the socket `path` on the upstream server (`ssh -R /path:...`).
pub(crate) async fn listen_unix(
    upstream: &Arc<Upstream>,
    routes: &Arc<Routes>,
    lifecycle: &Lifecycle,
    path: &str,
) -> Result<Box<dyn Listener>, BackendError> {
    upstream
        .streamlocal_forward(path)
        .await
        .map_err(|e| refused(&format!("listen on {path}"), e))?;
    Ok(Box::new(ProxiedListener::new(
        Arc::clone(upstream),
        Arc::clone(routes),
        lifecycle.clone(),
        Forwarded::Unix(path.to_owned()),
        0,
    )))
}

/// What a proxied session's `SSH_AUTH_SOCK` says when its client forwarded the agent: the
/// upstream server makes the socket and sets the variable itself, once the session asks it to
/// (`auth-agent-req@openssh.com`, see `process.rs`).
pub(crate) const AGENT_ON_UPSTREAM: &str = "(made by the SSH server behind this one)";

/// Channels the upstream server opens on its own, for the sessions that asked it to: to the
/// client's agent (`ssh -A`) or to its X server (`ssh -X`).
#[derive(Debug, Clone, Copy)]
pub(crate) enum ServerOpened {
    Agent,
    X11,
}

/// Takes the channels of `kind` the upstream server opens, for every session that asked (see
/// `process.rs`). Nothing is made upstream for it, so nothing is cancelled there.
pub(crate) fn listen_server_opened(
    upstream: &Arc<Upstream>,
    routes: &Arc<Routes>,
    lifecycle: &Lifecycle,
    kind: ServerOpened,
) -> Box<dyn Listener> {
    let forwarded = match kind {
        ServerOpened::Agent => Forwarded::Agent,
        ServerOpened::X11 => Forwarded::X11,
    };
    Box::new(ProxiedListener::new(
        Arc::clone(upstream),
        Arc::clone(routes),
        lifecycle.clone(),
        forwarded,
        0,
    ))
}

/// Connects to the socket `path` on the upstream server (`ssh -L ...:/path`).
pub(crate) async fn dial_unix(
    upstream: &Upstream,
    path: &str,
) -> Result<Box<dyn ForwardedStream>, BackendError> {
    let channel = upstream
        .channel_open_direct_streamlocal(path)
        .await
        .map_err(|e| refused(&format!("open {path}"), e))?;
    Ok(Box::new(channel.into_stream()))
}

fn refused(what: &str, error: russh::Error) -> BackendError {
    BackendError::Upstream {
        reason: format!("the SSH server behind this one would not {what}"),
        source: Some(Box::new(error)),
    }
}

/// What a listener forwards upstream, to cancel it by.
enum Forwarded {
    Tcp {
        host: String,
        port: u32,
    },
    Unix(String),
    /// Nothing to cancel: the upstream server's agent sockets end with their sessions.
    Agent,
    /// Nothing to cancel: the upstream server's displays end with their sessions.
    X11,
}

impl Forwarded {
    fn route(&self) -> Route {
        match self {
            Forwarded::Tcp { port, .. } => Route::Tcp(*port),
            Forwarded::Unix(path) => Route::Unix(path.clone()),
            Forwarded::Agent => Route::Agent,
            Forwarded::X11 => Route::X11,
        }
    }
}

/// One forward on the upstream server. Dropping it cancels the forward there; channels
/// already taken carry on until they end.
struct ProxiedListener {
    upstream: Arc<Upstream>,
    routes: Arc<Routes>,
    lifecycle: Lifecycle,
    forwarded: Forwarded,
    port: u16,
    incoming: tokio::sync::Mutex<mpsc::Receiver<Incoming>>,
    waiting: Mutex<HashMap<u64, Incoming>>,
    next: AtomicU64,
}

impl ProxiedListener {
    fn new(
        upstream: Arc<Upstream>,
        routes: Arc<Routes>,
        lifecycle: Lifecycle,
        forwarded: Forwarded,
        port: u16,
    ) -> Self {
        let (sender, receiver) = mpsc::channel(PENDING);
        routes.lock().insert(forwarded.route(), sender);
        Self {
            upstream,
            routes,
            lifecycle,
            forwarded,
            port,
            incoming: tokio::sync::Mutex::new(receiver),
            waiting: Mutex::default(),
            next: AtomicU64::new(1),
        }
    }

    fn waiting(&self) -> MutexGuard<'_, HashMap<u64, Incoming>> {
        self.waiting
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Listener for ProxiedListener {
    fn port(&self) -> u16 {
        self.port
    }

    fn socket_path(&self) -> Option<&str> {
        matches!(self.forwarded, Forwarded::Agent).then_some(AGENT_ON_UPSTREAM)
    }

    fn accept(&self) -> ListenFuture<'_, Accepted> {
        Box::pin(async move {
            let incoming =
                self.incoming
                    .lock()
                    .await
                    .recv()
                    .await
                    .ok_or_else(|| BackendError::Upstream {
                        reason: "the connection to the SSH server behind this one was lost"
                            .to_owned(),
                        source: None,
                    })?;
            let id = self.next.fetch_add(1, Ordering::Relaxed);
            let accepted = Accepted {
                id,
                originator: incoming.originator.clone(),
                originator_port: incoming.originator_port,
            };
            self.waiting().insert(id, incoming);
            Ok(accepted)
        })
    }

    fn take(&self, id: u64) -> ListenFuture<'_, Box<dyn ForwardedStream>> {
        Box::pin(async move {
            let incoming = self
                .waiting()
                .remove(&id)
                .ok_or_else(|| BackendError::Upstream {
                    reason: "the forwarded connection is gone".to_owned(),
                    source: None,
                })?;
            incoming.reply.accept().await;
            Ok(Box::new(incoming.channel.into_stream()) as Box<dyn ForwardedStream>)
        })
    }

    fn refuse(&self, id: u64) {
        // Dropping the reply refuses the channel upstream.
        drop(self.waiting().remove(&id));
    }
}

impl Drop for ProxiedListener {
    fn drop(&mut self) {
        self.routes.lock().remove(&self.forwarded.route());
        let upstream = Arc::clone(&self.upstream);
        let forwarded = std::mem::replace(&mut self.forwarded, Forwarded::Agent);
        // A connection already gone has nothing to cancel.
        self.lifecycle.spawn(async move {
            let _ = match forwarded {
                Forwarded::Tcp { host, port } => upstream.cancel_tcpip_forward(host, port).await,
                Forwarded::Unix(path) => upstream.cancel_streamlocal_forward(path).await,
                Forwarded::Agent | Forwarded::X11 => Ok(()),
            };
        });
    }
}
