//! Remote forwarding (`ssh -R`, `tcpip-forward`): a listener inside the container for each
//! forward, and a `forwarded-tcpip` channel to the client for each connection it accepts.
//!
//! A client holds at most [`MAX_LISTENERS`] forwards, and each forward at most
//! [`MAX_PENDING`] connections the client has not yet taken: more are closed at once inside the
//! container, so a flood of connections costs the server nothing.

use std::collections::HashMap;
use std::sync::Arc;

use russh::server::Handle;
use russh::ChannelMsg;
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

/// The remote forwards of one connection, by the address the client asked for and the port
/// bound (what a client names when it cancels). Dropping one stops its listener.
#[derive(Debug, Default)]
pub(crate) struct RemoteForwards {
    open: HashMap<(String, u32), DropGuard>,
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
    pub(crate) fn add(&mut self, address: &str, port: u16, stop: CancellationToken) {
        self.open
            .insert((address.to_owned(), u32::from(port)), stop.drop_guard());
    }

    /// Stops the forward on `address:port`; whether there was one.
    pub(crate) fn cancel(&mut self, address: &str, port: u32) -> bool {
        self.open.remove(&(address.to_owned(), port)).is_some()
    }
}

/// Accepts connections on `listener` until `stop`, passing each to the client.
pub(crate) async fn serve<B: Backend>(
    conn: Arc<ConnectionState<B>>,
    handle: Handle,
    listener: Arc<dyn Listener>,
    address: String,
    stop: CancellationToken,
) {
    let port = listener.port();
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
            (address.clone(), port),
            accepted,
            permit,
        ));
    }
    conn.events
        .emit(EventKind::ListenerClosed { address, port });
}

/// Opens a `forwarded-tcpip` channel for one accepted connection and relays it; a client that
/// refuses the channel gets the connection closed inside the container.
async fn pass_to_client<B: Backend>(
    conn: Arc<ConnectionState<B>>,
    handle: Handle,
    listener: Arc<dyn Listener>,
    (address, port): (String, u16),
    accepted: Accepted,
    permit: OwnedSemaphorePermit,
) {
    let kind = ChannelKind::ForwardedTcpip {
        address: address.clone(),
        port,
        originator: accepted.originator.clone(),
        originator_port: accepted.originator_port,
    };
    let opened = tokio::select! {
        () = conn.token.cancelled() => None,
        opened = handle.channel_open_forwarded_tcpip(
            address.clone(),
            u32::from(port),
            accepted.originator.clone(),
            u32::from(accepted.originator_port),
        ) => Some(opened),
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
    let stream = match stream {
        Ok(s) => s,
        Err(e) => {
            conn.events.emit_on(
                Some(id),
                EventKind::ForwardFailed {
                    host: address,
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
    let limits = conn.channels.opened(id, "forwarded-tcpip", &conn.token);
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
            forwards.add("localhost", port, token.clone());
        }
        assert_eq!(forwards.room(), Err(TooMany));
        assert!(!forwards.cancel("127.0.0.1", 8000), "the address as asked");
        assert!(!tokens[0].is_cancelled());
        assert!(forwards.cancel("localhost", 8000));
        assert!(tokens[0].is_cancelled(), "cancelling stops the listener");
        assert!(!forwards.cancel("localhost", 8000), "only once");
        assert_eq!(forwards.room(), Ok(()));
        drop(forwards);
        assert!(
            tokens.iter().all(CancellationToken::is_cancelled),
            "every listener ends with the connection"
        );
    }
}
