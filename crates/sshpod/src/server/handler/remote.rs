//! Remote forward requests (`ssh -R`): `tcpip-forward` and `streamlocal-forward@openssh.com`
//! pass every check, then get a listener inside the container.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use russh::server::Session;
use russh::ChannelId;
use sshpod_core::{Backend, BackendError, Container, EventKind, Listener, RequestRefusal};
use tokio_util::sync::CancellationToken;

use super::ConnectionHandler;
use crate::server::channel::remote_forward::{self, ForwardTarget, MAX_LISTENERS};
use crate::server::channel::security::{socket_path, Refused};
use crate::server::connection::NoContainer;

/// How long a forward may take to start listening. The SSH library answers a global request
/// from its callback, so the connection waits that long at most.
const LISTEN_TIMEOUT: Duration = Duration::from_secs(60);

impl<B: Backend> ConnectionHandler<B> {
    /// Starts the remote forward on `address:port`; `port` becomes the port bound. Whether it
    /// listens.
    pub(super) async fn remote_forward(
        &mut self,
        address: &str,
        port: &mut u32,
        session: &mut Session,
    ) -> bool {
        if !self.authenticated() {
            return false;
        }
        let requested = *port;
        let refuse = |rule, message| self.refuse_remote_forward(address, requested, rule, message);
        let Ok(port16) = u16::try_from(requested) else {
            return refuse("tcpip-forward", format!("{requested} is not a port"));
        };
        let bind = match self.security.remote_forward(address) {
            Ok(bind) => bind,
            Err(refused) => return refuse(refused.rule, refused.message),
        };
        if let Err((rule, message)) = self.may_hold_another_forward() {
            return refuse(rule, message);
        }
        if !self.restrictions.may_listen(address, port16) {
            return refuse(
                "permitlisten",
                format!("the login's key does not permit listening on {address}:{requested}"),
            );
        }
        let conn = Arc::clone(&self.conn);
        let listening = async move {
            let container = conn.container().await?;
            Ok(container.listen(&bind, port16).await?)
        };
        let Some(listener) = self.listening(address, port16, listening).await else {
            return false;
        };
        let bound = listener.port();
        *port = u32::from(bound);
        let target = ForwardTarget::Tcp {
            address: address.to_owned(),
            port: bound,
        };
        self.serve_forward(target, listener, session);
        true
    }

    /// Starts the remote socket forward on `path`. Whether it listens.
    pub(super) async fn remote_socket_forward(
        &mut self,
        path: &str,
        session: &mut Session,
    ) -> bool {
        if !self.authenticated() {
            return false;
        }
        let refuse = |rule, message| self.refuse_remote_forward(path, 0, rule, message);
        if let Err(refused) = self.security.socket_listen().and(socket_path(path)) {
            return refuse(refused.rule, refused.message);
        }
        if let Err((rule, message)) = self.may_hold_another_forward() {
            return refuse(rule, message);
        }
        let conn = Arc::clone(&self.conn);
        let owned = path.to_owned();
        let listening = async move {
            let container = conn.container().await?;
            Ok(container.listen_unix(&owned).await?)
        };
        let Some(listener) = self.listening(path, 0, listening).await else {
            return false;
        };
        let target = ForwardTarget::Unix {
            path: path.to_owned(),
        };
        self.serve_forward(target, listener, session);
        true
    }

    /// Forwards the client's agent to the session `channel` (`auth-agent-req@openssh.com`):
    /// one socket inside the container per connection, in `SSH_AUTH_SOCK` of the sessions that
    /// asked. Whether it is forwarded.
    pub(super) async fn forward_agent(
        &mut self,
        channel: ChannelId,
        session: &mut Session,
    ) -> bool {
        if !self.authenticated() {
            return false;
        }
        if let Err(refused) = self.security.agent_forwarding() {
            self.refused_by_policy(channel, refused);
            return false;
        }
        if !self.restrictions.agent_forwarding {
            self.refused_by_policy(
                channel,
                Refused {
                    rule: "no-agent-forwarding",
                    message: "the login's key or certificate does not permit agent forwarding"
                        .to_owned(),
                },
            );
            return false;
        }
        // Only for a session whose program has not started yet: its environment is still open.
        if self
            .sessions
            .get(&channel)
            .is_none_or(|s| s.writer.is_none())
        {
            return false;
        }
        if self.agent_socket.is_none() {
            let conn = Arc::clone(&self.conn);
            let listening = async move {
                let container = conn.container().await?;
                Ok(container.listen_agent().await?)
            };
            let Some(listener) = self.listening("the agent socket", 0, listening).await else {
                return false;
            };
            let Some(path) = listener.socket_path().map(str::to_owned) else {
                return false;
            };
            self.serve_forward(
                ForwardTarget::Agent { path: path.clone() },
                listener,
                session,
            );
            self.agent_socket = Some(path);
        }
        if let Some(state) = self.sessions.get_mut(&channel) {
            state.agent = true;
        }
        true
    }

    /// The login's key options and the connection's limit, which every remote forward obeys.
    fn may_hold_another_forward(&self) -> Result<(), (&'static str, String)> {
        if !self.restrictions.port_forwarding {
            return Err((
                "no-port-forwarding",
                "the login's key or certificate does not permit port forwarding".to_owned(),
            ));
        }
        if self.remote_forwards.room().is_err() {
            return Err((
                "remote forward limit",
                format!("a connection may hold at most {MAX_LISTENERS} remote forwards"),
            ));
        }
        Ok(())
    }

    fn refuse_remote_forward(
        &self,
        address: &str,
        port: u32,
        rule: &'static str,
        message: String,
    ) -> bool {
        self.conn.events.emit_on(
            None,
            EventKind::RequestRefused {
                reason: RequestRefusal::RemoteForward {
                    address: address.to_owned(),
                    port,
                    rule,
                    message,
                },
            },
        );
        false
    }

    /// Waits (within [`LISTEN_TIMEOUT`], and while the connection lasts) for a listener; a
    /// failure is told to the subscribers.
    pub(super) async fn listening<T>(
        &self,
        address: &str,
        port: u16,
        listening: impl Future<Output = Result<T, Failed>>,
    ) -> Option<T> {
        let listening = tokio::select! {
            () = self.conn.token.cancelled() => return None,
            listening = tokio::time::timeout(LISTEN_TIMEOUT, listening) => listening,
        };
        let error = match listening {
            Ok(Ok(listener)) => return Some(listener),
            Ok(Err(Failed::NoContainer)) => return None,
            Ok(Err(Failed::Backend(error))) => error,
            Err(_) => Arc::new(BackendError::Refused {
                what: "listening inside your container",
                source: format!("no answer within {} s", LISTEN_TIMEOUT.as_secs()).into(),
            }),
        };
        self.conn.events.emit(EventKind::ListenFailed {
            address: address.to_owned(),
            port,
            error,
        });
        None
    }

    /// Keeps the forward until it is cancelled or the connection ends, passing what it accepts
    /// to the client.
    fn serve_forward(
        &mut self,
        target: ForwardTarget,
        listener: Box<dyn Listener>,
        session: &mut Session,
    ) {
        let stop = self.conn.token.child_token();
        self.remote_forwards.add(target.clone(), stop.clone());
        self.serve_listener(target, listener, session, stop);
    }

    /// Passes what `listener` accepts to the client until `stop` (or the connection's end).
    pub(super) fn serve_listener(
        &self,
        target: ForwardTarget,
        listener: Box<dyn Listener>,
        session: &mut Session,
        stop: CancellationToken,
    ) {
        let (address, port) = target.for_log();
        self.conn.events.emit(EventKind::ListenerOpened {
            address: address.to_owned(),
            port,
        });
        self.conn.spawn(remote_forward::serve(
            Arc::clone(&self.conn),
            session.handle(),
            Arc::from(listener),
            target,
            stop,
        ));
    }
}

/// Why no listener came.
pub(super) enum Failed {
    /// The container is not there (it failed to start, which is told already, or the
    /// connection is closing).
    NoContainer,
    /// The backend could not listen.
    Backend(Arc<BackendError>),
}

impl From<NoContainer> for Failed {
    fn from(value: NoContainer) -> Self {
        match value {
            NoContainer::Failed(error) => Failed::Backend(error),
            _ => Failed::NoContainer,
        }
    }
}

impl From<BackendError> for Failed {
    fn from(value: BackendError) -> Self {
        Failed::Backend(Arc::new(value))
    }
}
