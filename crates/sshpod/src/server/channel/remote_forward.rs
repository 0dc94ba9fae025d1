//! Remote forwarding (`ssh -R`, `tcpip-forward` and `streamlocal-forward@openssh.com`): a
//! listener inside the container for each forward, and a `forwarded-tcpip` (or
//! `forwarded-streamlocal@openssh.com`) channel to the client for each connection it accepts.
//! The forwarded agent's socket and sessions' X11 displays are served the same way, with
//! `auth-agent@openssh.com` and `x11` channels, and so are the X11 connections a backend that
//! passes X11 forwarding on reports.
//!
//! A client holds at most [`MAX_LISTENERS`] forwards, and each forward at most
//! [`MAX_PENDING`] connections the client has not yet taken: more are closed at once inside the
//! container, so a flood of connections costs the server nothing.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use russh::server::{Handle, Msg};
use russh::{Channel, ChannelMsg};
use sshpod_core::{Accepted, Backend, ChannelKind, EventKind, Listener};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::{CancellationToken, DropGuard};

use crate::server::channel::direct_tcpip::relay;
use crate::server::connection::ConnectionState;
use crate::server::io::input;

/// The most remote forwards one connection may hold at once.
pub(crate) const MAX_LISTENERS: usize = 16;

/// The most connections one forward may have waiting for the client to take them.
pub(crate) const MAX_PENDING: usize = 32;

/// What a remote forward listens on, as the client names it when it cancels and as its
/// channels name it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum ForwardTarget {
    /// `tcpip-forward`: the address the client asked for, and the port bound.
    Tcp {
        /// As the client asked.
        address: String,
        /// As bound.
        port: u16,
    },
    /// `streamlocal-forward@openssh.com`: the socket's path.
    Unix {
        /// As the client asked.
        path: String,
    },
    /// The forwarded agent's socket (`ssh -A`), at the path the backend chose.
    Agent {
        /// Where it is.
        path: String,
    },
    /// A session's X11 display (`ssh -X`), listening on `127.0.0.1:6000+display`.
    X11 {
        /// The display number.
        display: u16,
        /// Whether it takes one connection only (the client's `single_connection`).
        once: bool,
    },
    /// The X11 connections to displays another SSH server made for the connection's sessions
    /// (`ssh -X` passed on by the backend), shared by them all.
    X11PassedOn,
}

/// The remote forwards of one connection. Dropping one stops its listener.
#[derive(Debug, Default)]
pub(crate) struct RemoteForwards {
    open: HashMap<ForwardTarget, DropGuard>,
}

/// A forward over the connection's limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TooMany;

impl RemoteForwards {
    /// Whether one more forward fits.
    pub(crate) fn room(&self) -> Result<(), TooMany> {
        if self.open.len() >= MAX_LISTENERS {
            Err(TooMany)
        } else {
            Ok(())
        }
    }

    /// Keeps a forward's listener running until it is cancelled or the connection ends.
    pub(crate) fn add(&mut self, target: ForwardTarget, stop: CancellationToken) {
        self.open.insert(target, stop.drop_guard());
    }

    /// Stops the forward on `target`; whether there was one.
    pub(crate) fn cancel(&mut self, target: &ForwardTarget) -> bool {
        self.open.remove(target).is_some()
    }

    /// Stops the TCP forward on `address:port` (the port bound); whether there was one.
    pub(crate) fn cancel_tcp(&mut self, address: &str, port: u32) -> bool {
        u16::try_from(port).is_ok_and(|port| {
            self.cancel(&ForwardTarget::Tcp {
                address: address.to_owned(),
                port,
            })
        })
    }
}

/// Accepts connections on `listener` until `stop`, passing each to the client.
pub(crate) async fn serve<B: Backend>(
    conn: Arc<ConnectionState<B>>,
    handle: Handle,
    listener: Arc<dyn Listener>,
    target: ForwardTarget,
    stop: CancellationToken,
) {
    let (address, port) = target.for_log();
    let pending = Arc::new(Semaphore::new(MAX_PENDING));
    loop {
        let accepted = tokio::select! {
            () = stop.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        let accepted = match accepted {
            Ok(a) => a,
            Err(e) => {
                tracing::info!(
                    address,
                    port,
                    error = &e as &dyn std::error::Error,
                    "remote forward's listener ended"
                );
                break;
            }
        };
        let Ok(permit) = Arc::clone(&pending).try_acquire_owned() else {
            listener.refuse(accepted.id);
            tracing::info!(
                address,
                port,
                originator = accepted.originator,
                limit = MAX_PENDING,
                "remote forward connection closed: too many are waiting for the client"
            );
            continue;
        };
        conn.spawn(pass_to_client(
            Arc::clone(&conn),
            handle.clone(),
            Arc::clone(&listener),
            target.clone(),
            accepted,
            permit,
        ));
        if let ForwardTarget::X11 { once: true, .. } = target {
            // The client asked for one connection: the display stops listening.
            break;
        }
    }
    conn.events.emit(EventKind::ListenerClosed {
        address: address.to_owned(),
        port,
    });
}

impl ForwardTarget {
    /// The address (or path) and port for the log and events (a socket's port is 0).
    pub(crate) fn for_log(&self) -> (&str, u16) {
        match self {
            ForwardTarget::Tcp { address, port } => (address, *port),
            ForwardTarget::Unix { path } | ForwardTarget::Agent { path } => (path, 0),
            ForwardTarget::X11 { display, .. } => (
                "127.0.0.1",
                crate::server::channel::x11::X11_BASE_PORT + display,
            ),
            ForwardTarget::X11PassedOn => ("x11 (passed on)", 0),
        }
    }

    /// The channel type's name for `ssh.channelTimeout`.
    fn timeout_name(&self) -> &'static str {
        match self {
            ForwardTarget::X11 { .. } | ForwardTarget::X11PassedOn => "x11-connection",
            ForwardTarget::Tcp { .. }
            | ForwardTarget::Unix { .. }
            | ForwardTarget::Agent { .. } => "forwarded-tcpip",
        }
    }
}

/// Opens a `forwarded-tcpip` channel for one accepted connection and relays it; a client that
/// refuses the channel gets the connection closed inside the container.
async fn pass_to_client<B: Backend>(
    conn: Arc<ConnectionState<B>>,
    handle: Handle,
    listener: Arc<dyn Listener>,
    target: ForwardTarget,
    accepted: Accepted,
    permit: OwnedSemaphorePermit,
) {
    let (address, port) = target.for_log();
    type Opening<'a> =
        Pin<Box<dyn Future<Output = Result<Channel<Msg>, russh::Error>> + Send + 'a>>;
    let (kind, open): (ChannelKind, Opening<'_>) = match &target {
        ForwardTarget::Tcp { address, port } => (
            ChannelKind::ForwardedTcpip {
                address: address.clone(),
                port: *port,
                originator: accepted.originator.clone(),
                originator_port: accepted.originator_port,
            },
            Box::pin(handle.channel_open_forwarded_tcpip(
                address.clone(),
                u32::from(*port),
                accepted.originator.clone(),
                u32::from(accepted.originator_port),
            )),
        ),
        ForwardTarget::Unix { path } => (
            ChannelKind::ForwardedStreamlocal { path: path.clone() },
            Box::pin(handle.channel_open_forwarded_streamlocal(path.clone())),
        ),
        ForwardTarget::Agent { .. } => (
            ChannelKind::AuthAgent,
            Box::pin(handle.channel_open_agent()),
        ),
        ForwardTarget::X11 { .. } | ForwardTarget::X11PassedOn => (
            ChannelKind::X11 {
                display: match &target {
                    ForwardTarget::X11 { display, .. } => Some(*display),
                    _ => None,
                },
                originator: accepted.originator.clone(),
                originator_port: accepted.originator_port,
            },
            Box::pin(handle.channel_open_x11(
                accepted.originator.clone(),
                u32::from(accepted.originator_port),
            )),
        ),
    };
    let opened = tokio::select! {
        () = conn.token.cancelled() => None,
        opened = open => Some(opened),
    };
    let channel = match opened {
        Some(Ok(channel)) => channel,
        Some(Err(e)) => {
            tracing::info!(
                address,
                port,
                originator = accepted.originator,
                error = &e as &dyn std::error::Error,
                "remote forward connection closed: the client refused its channel"
            );
            listener.refuse(accepted.id);
            return;
        }
        None => {
            listener.refuse(accepted.id);
            return;
        }
    };
    let id = channel.id();
    let (mut reader, writer) = channel.split();
    let stream = tokio::select! {
        () = conn.token.cancelled() => return,
        stream = listener.take(accepted.id) => stream,
    };
    drop(permit);
    // Taken: a listener that stopped (a single-connection display) may go now.
    drop(listener);
    let stream = match stream {
        Ok(s) => s,
        Err(e) => {
            conn.events.emit_on(
                Some(id),
                EventKind::ForwardFailed {
                    host: address.to_owned(),
                    port,
                    error: Arc::new(e),
                },
            );
            let _ = writer.close().await;
            return;
        }
    };
    let taps = conn.events.taps(id, &kind);
    conn.events
        .emit_on(Some(id), EventKind::ChannelOpened { kind });
    let limits = conn.channels.opened(id, target.timeout_name(), &conn.token);
    let (sender, receiver) = input::queue(&conn.gate);
    let activity = Arc::clone(&limits.activity);
    // The channel was opened here, so its data arrives on its own read half; queued at once,
    // so a slow connection inside the container never holds up the SSH connection.
    let feed = async move {
        while let Some(message) = reader.wait().await {
            match message {
                ChannelMsg::Data { data } => {
                    activity.touch();
                    sender.push(data);
                }
                ChannelMsg::Eof | ChannelMsg::Close => break,
                _ => {}
            }
        }
    };
    let relay = relay(&conn, writer, receiver, stream, taps, limits);
    tokio::pin!(relay);
    tokio::select! {
        () = &mut relay => return,
        () = feed => {}
    }
    relay.await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwards_are_capped_and_cancelled_by_address_and_bound_port() {
        let mut forwards = RemoteForwards::default();
        let tokens: Vec<CancellationToken> = (0..MAX_LISTENERS)
            .map(|_| CancellationToken::new())
            .collect();
        for (n, token) in tokens.iter().enumerate() {
            assert_eq!(forwards.room(), Ok(()));
            let port = 8000 + u16::try_from(n).unwrap_or(0);
            let target = if n == 1 {
                ForwardTarget::Unix {
                    path: "/tmp/8001".to_owned(),
                }
            } else {
                ForwardTarget::Tcp {
                    address: "localhost".to_owned(),
                    port,
                }
            };
            forwards.add(target, token.clone());
        }
        assert_eq!(forwards.room(), Err(TooMany), "sockets count too");
        assert!(
            !forwards.cancel_tcp("127.0.0.1", 8000),
            "the address as asked"
        );
        assert!(
            !forwards.cancel_tcp("localhost", 8001),
            "a socket is not a port"
        );
        assert!(!forwards.cancel_tcp("localhost", 65536 + 8000));
        assert!(!tokens[0].is_cancelled());
        assert!(forwards.cancel_tcp("localhost", 8000));
        assert!(tokens[0].is_cancelled(), "cancelling stops the listener");
        assert!(!forwards.cancel_tcp("localhost", 8000), "only once");
        assert!(forwards.cancel(&ForwardTarget::Unix {
            path: "/tmp/8001".to_owned()
        }));
        assert!(tokens[1].is_cancelled());
        assert_eq!(forwards.room(), Ok(()));
        drop(forwards);
        assert!(
            tokens.iter().all(CancellationToken::is_cancelled),
            "every listener ends with the connection"
        );
    }
}
