//! Listeners inside the container (`ssh -R`): one `sshpod-agent listen` per listener, which
//! reports each connection it accepts on its stdout and parks it; each is then taken over its
//! own exec (`sshpod-agent take`), so every forwarded connection has its own stream and flow
//! control. Dropping the listener tells the helper to stop listening; it exits once its
//! connections end. A taken connection dropped while the helper still relays it (its client
//! is gone, the process inside keeps it open) is closed inside, as sshd closes the socket of a
//! closed channel, so a disconnect leaves no helper behind in a container that stays
//! (`mode: user`).

use sshpod_core::{
    Accepted, BackendError, ForwardedStream, ListenFuture, Listener, ListenerControl,
    ListenerReport as Report,
};
use tokio::io::{BufReader, DuplexStream};

use crate::agent;
use crate::engine::Engine;
use crate::exec::AbortOnDrop;

/// A listening helper in one container.
pub(crate) struct DockerListener {
    engine: Engine,
    container_id: String,
    /// Who the helpers run as: takers must be able to enter the listener's directory.
    user: Option<String>,
    port: u16,
    /// The agent socket's path, for an agent listener.
    socket: Option<String>,
    dir: String,
    reports: tokio::sync::Mutex<BufReader<DuplexStream>>,
    /// The helper's input; dropped with the listener, it tells the helper to stop listening.
    control: ListenerControl,
    _demux: AbortOnDrop,
}

/// Where a listener listens.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Bind<'a> {
    /// A TCP address and port (0: any free port).
    Tcp(&'a str, u16),
    /// A Unix socket's path.
    Unix(&'a str),
    /// The forwarded agent's socket, in a private directory of the helper's choosing.
    Agent,
}

/// Starts `sshpod-agent listen host port` (or `listen-unix path`) and waits until it is bound.
pub(crate) async fn listen(
    engine: &Engine,
    container_id: &str,
    bind: Bind<'_>,
    user: Option<&str>,
) -> Result<DockerListener, BackendError> {
    let (host, port) = match bind {
        Bind::Tcp(host, port) => (host, port),
        Bind::Unix(path) => (path, 0),
        Bind::Agent => ("the agent socket", 0),
    };
    let listen_error = |source: Box<dyn std::error::Error + Send + Sync>| BackendError::Listen {
        host: host.to_owned(),
        port,
        source,
    };
    let port_arg = port.to_string();
    let args: &[&str] = match bind {
        Bind::Tcp(..) => &["listen", host, &port_arg],
        Bind::Unix(path) => &["listen-unix", path],
        Bind::Agent => &["listen-agent"],
    };
    let agent::Running {
        stdout,
        mut stderr,
        stdin,
        demux,
    } = agent::run_as(engine, container_id, args, user)
        .await
        .map_err(listen_error)?;
    let mut reports = BufReader::new(stdout);
    let (port, dir) = match Report::read_next(&mut reports).await {
        Some(Report::Listening { port, dir }) => (port, dir),
        _ => return Err(listen_error(agent::reason(&mut stderr).await.into())),
    };
    let (control, writing) = ListenerControl::new(stdin);
    // Ends once the listener and every connection taken from it are gone; the helper's input
    // stays open until then, for `close`.
    tokio::spawn(writing);
    let socket = matches!(bind, Bind::Agent).then(|| format!("{dir}/agent.sock"));
    Ok(DockerListener {
        engine: engine.clone(),
        container_id: container_id.to_owned(),
        user: user.map(str::to_owned),
        port,
        socket,
        dir,
        reports: tokio::sync::Mutex::new(reports),
        control,
        _demux: demux,
    })
}

impl Listener for DockerListener {
    fn port(&self) -> u16 {
        self.port
    }

    fn socket_path(&self) -> Option<&str> {
        self.socket.as_deref()
    }

    fn accept(&self) -> ListenFuture<'_, Accepted> {
        Box::pin(async move {
            let mut reports = self.reports.lock().await;
            match Report::read_next(&mut *reports).await {
                Some(Report::Accept(accepted)) => Ok(accepted),
                _ => Err(BackendError::Refused {
                    what: "listening inside your container",
                    source: "the listener ended".into(),
                }),
            }
        })
    }

    fn take(&self, id: u64) -> ListenFuture<'_, Box<dyn ForwardedStream>> {
        Box::pin(async move {
            let path = format!("{}/{id}.sock", self.dir);
            let stream = agent::take(
                &self.engine,
                &self.container_id,
                &path,
                self.user.as_deref(),
            )
            .await?;
            Ok(Box::new(self.control.taken(stream, id)) as Box<dyn ForwardedStream>)
        })
    }

    fn refuse(&self, id: u64) {
        self.control.refuse(id);
    }
}
