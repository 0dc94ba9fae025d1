//! Listeners inside a pod (`ssh -R`, `-R /socket`, `-A`): one exec of `sshpod-agent listen`
//! per listener, which reports each connection it accepts on its stdout and parks it; each is
//! then taken over its own exec (`sshpod-agent take`), as on Docker. Dropping the listener
//! tells the helper to stop listening; it exits once its connections end. A taken connection
//! dropped while the helper still relays it (its client is gone, the process inside keeps it
//! open) is closed inside, as sshd closes the socket of a closed channel, so a disconnect
//! leaves no helper behind in a pod that stays.

use std::time::Duration;

use sshpod_core::{
    Accepted, BackendError, ForwardedStream, Identity, ListenFuture, Listener, ListenerControl,
    ListenerReport as Report,
};
use tokio::io::BufReader;

use crate::exec::Target;
use crate::helper;
use crate::remote::OutputReader;
use crate::requests::PodsApi;

/// How long a stopped listener's exec is kept for its helper to finish: it ends once the
/// connections it relays end.
const WIND_DOWN: Duration = Duration::from_secs(30);

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

/// A listening helper in one pod.
pub(crate) struct KubeListener {
    pods: PodsApi,
    pod: String,
    container: String,
    /// The helper's path in the pod.
    helper: String,
    /// Who the helpers run as: takers must be able to enter the listener's directory.
    identity: Option<Identity>,
    /// How long taking a connection may take.
    take_timeout: Duration,
    port: u16,
    /// The agent socket's path, for an agent listener.
    socket: Option<String>,
    dir: String,
    reports: tokio::sync::Mutex<BufReader<OutputReader>>,
    /// The helper's input; dropped with the listener, it tells the helper to stop listening.
    control: ListenerControl,
}

/// Starts `sshpod-agent listen host port` (or `listen-unix path`, `listen-agent`) in the pod
/// and waits until it is bound.
pub(crate) async fn listen(
    target: &Target<'_>,
    helper_path: &str,
    bind: Bind<'_>,
    identity: Option<&Identity>,
    take_timeout: Duration,
) -> Result<KubeListener, BackendError> {
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
    let mut running = helper::run(target, helper_path, args, identity)
        .await
        .map_err(listen_error)?;
    let mut reports = BufReader::new(running.stdout);
    let (port, dir) = match Report::read_next(&mut reports).await {
        Some(Report::Listening { port, dir }) => (port, dir),
        _ => {
            running.stdout = reports.into_inner();
            return Err(listen_error(running.reason().await.into()));
        }
    };
    let (control, writing) = ListenerControl::new(running.stdin);
    let driver = running.driver;
    // Ends once the listener and every connection taken from it are gone; the helper's input
    // stays open until then, for `close`.
    tokio::spawn(async move {
        writing.await;
        // The exec stays until the helper ends, so that its end of input reaches it.
        let _ = tokio::time::timeout(WIND_DOWN, driver.finished()).await;
    });
    let socket = matches!(bind, Bind::Agent).then(|| format!("{dir}/agent.sock"));
    Ok(KubeListener {
        pods: target.pods.clone(),
        pod: target.pod.to_owned(),
        container: target.container.to_owned(),
        helper: helper_path.to_owned(),
        identity: identity.cloned(),
        take_timeout,
        port,
        socket,
        dir,
        reports: tokio::sync::Mutex::new(reports),
        control,
    })
}

impl Listener for KubeListener {
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
                    what: "listening inside your pod",
                    source: "the listener ended".into(),
                }),
            }
        })
    }

    fn take(&self, id: u64) -> ListenFuture<'_, Box<dyn ForwardedStream>> {
        Box::pin(async move {
            let target = Target {
                pods: &self.pods,
                pod: &self.pod,
                container: &self.container,
            };
            let path = format!("{}/{id}.sock", self.dir);
            let taking = helper::take(&target, &self.helper, &path, self.identity.as_ref());
            let stream = helper::within(self.take_timeout, "sshpod-agent take", taking).await?;
            Ok(Box::new(self.control.taken(stream, id)) as Box<dyn ForwardedStream>)
        })
    }

    fn refuse(&self, id: u64) {
        self.control.refuse(id);
    }
}
