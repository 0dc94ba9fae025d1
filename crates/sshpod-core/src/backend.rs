//! The backend contract: "a container for this connection".

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncWrite};

use crate::{BackendError, ConnectionId, Process, ProcessSpec};

/// What a backend knows about the connection it serves.
#[derive(Debug, Clone)]
pub struct ConnectionContext {
    /// The connection's identity, used in container labels and logs.
    pub connection_id: ConnectionId,
    /// The authenticated login name.
    pub user: String,
    /// The client's address.
    pub remote_addr: SocketAddr,
    /// Environment for the container and all its processes (from the webhooks).
    pub environment: Vec<(String, String)>,
    /// Labels to add to the container (webhook metadata, where the configuration asks).
    pub labels: BTreeMap<String, String>,
    /// Annotations to add to the pod (Kubernetes; webhook metadata, where the configuration
    /// asks).
    pub annotations: BTreeMap<String, String>,
    /// Files to write into the container once it runs (from the webhooks).
    pub files: Vec<ContainerFile>,
    /// This connection's configuration, when a config server changed the file's; `None` means
    /// the backend's own.
    pub config: Option<Arc<sshpod_config::Config>>,
    /// The user the login runs as inside the container (`identity`); `None` leaves the
    /// image's user.
    pub identity: Option<crate::Identity>,
    /// The container's hostname (`identity.hostname`); `None` leaves the backend's default.
    pub hostname: Option<String>,
    /// Where the backend tells what the start is waiting for (shown to a waiting terminal).
    pub progress: crate::Progress,
}

impl ConnectionContext {
    /// A context with nothing from webhooks.
    pub fn new(connection_id: ConnectionId, user: String, remote_addr: SocketAddr) -> Self {
        Self {
            connection_id,
            user,
            remote_addr,
            environment: Vec::new(),
            labels: BTreeMap::new(),
            annotations: BTreeMap::new(),
            files: Vec::new(),
            config: None,
            identity: None,
            hostname: None,
            progress: crate::Progress::new(),
        }
    }
}

/// A file to write into the container.
#[derive(Clone, PartialEq, Eq)]
pub struct ContainerFile {
    /// Absolute path inside the container.
    pub path: String,
    /// The content.
    pub content: Vec<u8>,
}

impl fmt::Debug for ContainerFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ContainerFile")
            .field("path", &self.path)
            .field("bytes", &self.content.len())
            .finish()
    }
}

/// Makes containers. One value serves the whole process; it is shared by every connection.
pub trait Backend: Send + Sync + 'static {
    /// The per-connection handle this backend returns.
    type Container: Container;

    /// Creates (or claims) the container for one connection and waits until it can run
    /// processes. On error nothing may be left behind.
    fn connect(
        &self,
        ctx: &ConnectionContext,
    ) -> impl Future<Output = Result<Self::Container, BackendError>> + Send;

    /// Removes containers left behind by instances that died without cleaning up, and only
    /// those. Called once at start-up.
    fn remove_orphans(&self) -> impl Future<Output = Result<usize, BackendError>> + Send;

    /// Whether the backend can take new connections now (its engine or API server answers),
    /// for readiness probes. The default says yes.
    fn check(&self) -> impl Future<Output = Result<(), BackendError>> + Send {
        async { Ok(()) }
    }

    /// Gives up what the backend holds for the whole process. Called once, after every
    /// connection has been closed at shutdown.
    fn shutdown(&self) -> impl Future<Output = ()> + Send {
        async {}
    }
}

/// What a connection's container is, for the record.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContainerInfo {
    /// The container's id or the pod's name; `None` where each session gets its own.
    pub id: Option<String>,
    /// The image it runs.
    pub image: String,
}

/// The container (or, in session mode, the factory of per-session containers) of one
/// connection.
pub trait Container: Send + Sync + 'static {
    /// A duplex byte stream to a TCP port, dialled from inside the container.
    type Stream: AsyncRead + AsyncWrite + Send + Unpin + 'static;

    /// Starts a process and returns its streams and controls.
    fn exec(&self, spec: ProcessSpec)
        -> impl Future<Output = Result<Process, BackendError>> + Send;

    /// Opens a TCP connection to `host:port` from inside the container's network namespace,
    /// so `localhost` means the container.
    fn dial(
        &self,
        host: &str,
        port: u16,
    ) -> impl Future<Output = Result<Self::Stream, BackendError>> + Send;

    /// Listens on `host:port` inside the container (`ssh -R`, and X11 displays on
    /// `127.0.0.1:6000+N`); port 0 picks a free port. A port already taken must fail with
    /// [`BackendError::Listen`], so X11 forwarding tries the next display. The default refuses:
    /// the backend cannot listen.
    fn listen(
        &self,
        host: &str,
        port: u16,
    ) -> impl Future<Output = Result<Box<dyn crate::Listener>, BackendError>> + Send {
        let _ = (host, port);
        async { Err(crate::NotPossible::ListeningUnsupported.into()) }
    }

    /// Listens on the Unix socket `path` inside the container (`ssh -R /path:...`). The
    /// default refuses: the backend cannot listen.
    fn listen_unix(
        &self,
        path: &str,
    ) -> impl Future<Output = Result<Box<dyn crate::Listener>, BackendError>> + Send {
        let _ = path;
        async { Err(crate::NotPossible::SocketForwardingUnsupported.into()) }
    }

    /// Listens on a fresh Unix socket inside the container that only the login's user can
    /// reach, for the client's agent (`ssh -A`); its path is the listener's
    /// [`socket_path`](crate::Listener::socket_path). The default refuses.
    fn listen_agent(
        &self,
    ) -> impl Future<Output = Result<Box<dyn crate::Listener>, BackendError>> + Send {
        async { Err(crate::NotPossible::SocketForwardingUnsupported.into()) }
    }

    /// How this container's sessions get X11 forwarding (`ssh -X`); asked once per connection,
    /// at its first `x11-req` the policy allows. The default, [`X11Forwarding::Display`]: the
    /// server makes each session a display inside the container with [`listen`](Self::listen).
    /// A backend whose sessions run on another SSH server passes the requests on instead.
    ///
    /// [`X11Forwarding::Display`]: crate::X11Forwarding::Display
    fn forward_x11(
        &self,
    ) -> impl Future<Output = Result<crate::X11Forwarding, BackendError>> + Send {
        async { Ok(crate::X11Forwarding::Display) }
    }

    /// Connects to the Unix socket `path` inside the container (`ssh -L ...:/path`). The
    /// default refuses.
    fn dial_unix(
        &self,
        path: &str,
    ) -> impl Future<Output = Result<Box<dyn crate::ForwardedStream>, BackendError>> + Send {
        let _ = path;
        async { Err(crate::NotPossible::SocketForwardingUnsupported.into()) }
    }

    /// What the container is (its id and image), for the record.
    fn info(&self) -> ContainerInfo;

    /// Tears the container down, or lets go of it where it outlives the connection. Called
    /// once, when the connection ends.
    fn close(&self) -> impl Future<Output = Result<Closed, BackendError>> + Send;
}

/// What closing a connection's container did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Closed {
    /// The container (or the session's containers) is gone or going.
    Removed,
    /// The container stays: the user's other connections share it, it waits out
    /// `homes.gracePeriod` (`mode: user`), or it is a persistent pod.
    Kept,
}
