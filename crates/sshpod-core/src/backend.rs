//! The backend contract: "a container for this connection".

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncWrite};

use crate::{ConnectionId, Process, ProcessSpec};

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

    /// Gives up what the backend holds for the whole process. Called once, after every
    /// connection has been closed at shutdown.
    fn shutdown(&self) -> impl Future<Output = ()> + Send {
        async {}
    }
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

    /// Tears the container down. Called once, when the connection ends.
    fn close(&self) -> impl Future<Output = Result<(), BackendError>> + Send;
}

/// Why a backend operation failed. `Display` is short and safe to show to the SSH user;
/// the cause (for the log) is in `source()`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BackendError {
    /// The image is not on the engine and could not be pulled.
    #[error("cannot start your container: image `{image}` is not available on this server")]
    ImageUnavailable {
        /// The image reference from the configuration.
        image: String,
        /// What the engine said.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The container could not be created or started.
    #[error("cannot start your container (image `{image}`): {reason}")]
    StartContainer {
        /// The image reference from the configuration.
        image: String,
        /// A short reason fit for the user.
        reason: String,
        /// What the engine said.
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
    /// The container did not become ready within the configured time.
    #[error("cannot start your container (image `{image}`): it did not start within {seconds} s")]
    StartTimeout {
        /// The image reference from the configuration.
        image: String,
        /// The configured limit.
        seconds: u64,
    },
    /// The container engine could not be reached or answered with an error.
    #[error("the container engine is unavailable")]
    Engine(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// A process could not be started.
    #[error("cannot run `{program}` in your container")]
    Exec {
        /// The program that was asked for.
        program: String,
        /// What the engine said.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A file the login brought (webhook `files`) could not be put into the container.
    #[error("cannot write {path} in your container")]
    WriteFile {
        /// Where the file was to go (several, comma-separated, when written at once).
        path: String,
        /// What the engine said.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The backend's own settings cannot be used (an unreadable certificate, say). Reported at
    /// start-up, never to SSH users.
    #[error("{setting}: {reason}")]
    Settings {
        /// The configuration key, such as `docker.connection.cacert`.
        setting: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// The request is not possible in this configuration (for example, port forwarding in
    /// session mode, or an unknown subsystem).
    #[error("{0}")]
    Unsupported(String),
    /// Dialling a port inside the container failed.
    #[error("cannot connect to {host}:{port} inside your container")]
    Dial {
        /// The host asked for.
        host: String,
        /// The port asked for.
        port: u16,
        /// The cause.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}
