//! `tcpip-forward` requests (`ssh -R`): every check, then a listener inside the container.

use std::sync::Arc;
use std::time::Duration;

use russh::server::Session;
use sshpod_core::{Backend, Container, EventKind, RequestRefusal};

use super::ConnectionHandler;
use crate::server::channel::remote_forward::{self, MAX_LISTENERS};
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
        let refuse = |rule: &'static str, message: String| {
            self.conn.events.emit_on(
                None,
                EventKind::RequestRefused {
                    reason: RequestRefusal::RemoteForward {
                        address: address.to_owned(),
                        port: requested,
                        rule,
                        message,
                    },
                },
            );
            false
        };
        let Ok(port16) = u16::try_from(requested) else {
            return refuse("tcpip-forward", format!("{requested} is not a port"));
        };
        let bind = match self.security.remote_forward(address) {
            Ok(bind) => bind,
            Err(refused) => return refuse(refused.rule, refused.message),
        };
        if !self.restrictions.port_forwarding {
            return refuse(
                "no-port-forwarding",
                "the login's key or certificate does not permit port forwarding".to_owned(),
            );
        }
        if !self.restrictions.may_listen(address, port16) {
            return refuse(
                "permitlisten",
                format!("the login's key does not permit listening on {address}:{requested}"),
            );
        }
        if self.remote_forwards.room().is_err() {
            return refuse(
                "remote forward limit",
                format!("a connection may hold at most {MAX_LISTENERS} remote forwards"),
            );
        }
        let conn = Arc::clone(&self.conn);
        let listening = tokio::time::timeout(LISTEN_TIMEOUT, async {
            let container = match conn.container().await {
                Ok(c) => c,
                Err(NoContainer::Failed(e)) => return Err(Some(e)),
                Err(_) => return Err(None),
            };
            container
                .listen(&bind, port16)
                .await
                .map_err(|e| Some(Arc::new(e)))
        });
        let listener = tokio::select! {
            () = self.conn.token.cancelled() => return false,
            listening = listening => listening,
        };
        let listener = match listener {
            Ok(Ok(listener)) => listener,
            Ok(Err(Some(error))) => {
                self.conn.events.emit(EventKind::ListenFailed {
                    address: address.to_owned(),
                    port: port16,
                    error,
                });
                return false;
            }
            Ok(Err(None)) => return false,
            Err(_) => {
                tracing::info!(
                    address,
                    port = requested,
                    "remote forward did not start in time"
                );
                return false;
            }
        };
        let bound = listener.port();
        *port = u32::from(bound);
        let stop = self.conn.token.child_token();
        self.remote_forwards.add(address, bound, stop.clone());
        self.conn.events.emit(EventKind::ListenerOpened {
            address: address.to_owned(),
            port: bound,
        });
        self.conn.spawn(remote_forward::serve(
            Arc::clone(&self.conn),
            session.handle(),
            Arc::from(listener),
            address.to_owned(),
            stop,
        ));
        true
    }
}
