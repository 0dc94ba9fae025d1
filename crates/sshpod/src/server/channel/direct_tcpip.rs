//! `direct-tcpip` channels (`ssh -L`): a TCP connection dialled from inside the container;
//! and `direct-streamlocal@openssh.com` (`ssh -L ...:/path`), a Unix socket's.

use std::sync::Arc;

use russh::server::{ChannelOpenHandle, Msg};
use russh::{ChannelOpenFailure, ChannelWriteHalf};
use sshpod_core::{Backend, Container, EventKind};

use crate::server::connection::ConnectionState;
use crate::server::events::Taps;
use crate::server::io::copy::copy_to_channel;
use crate::server::io::input::{self, InputReceiver};
use crate::server::limits::ChannelLimits;

/// Dials the target, then accepts or rejects the channel accordingly and relays bytes.
pub(crate) async fn run<B: Backend>(
    conn: Arc<ConnectionState<B>>,
    reply: ChannelOpenHandle,
    writer: ChannelWriteHalf<Msg>,
    input: InputReceiver,
    taps: Option<Taps>,
    limits: ChannelLimits,
    (host, port): (String, u16),
) {
    let channel = writer.id();
    let dialled = async {
        let container = conn.container().await.ok()?;
        match container.dial(&host, port).await {
            Ok(stream) => Some(stream),
            Err(e) => {
                conn.events.emit_on(
                    Some(channel),
                    EventKind::ForwardFailed {
                        host: host.clone(),
                        port,
                        error: Arc::new(e),
                    },
                );
                None
            }
        }
    };
    let stream = tokio::select! {
        () = conn.token.cancelled() => return,
        r = dialled => r,
    };
    let stream = match stream {
        Some(s) => s,
        None => {
            reply.reject(ChannelOpenFailure::ConnectFailed).await;
            conn.channel_finished(channel);
            return;
        }
    };
    reply.accept().await;
    relay(&conn, writer, input, stream, taps, limits).await;
}

/// Like [`run`], for the Unix socket `path` in the container.
pub(crate) async fn run_unix<B: Backend>(
    conn: Arc<ConnectionState<B>>,
    reply: ChannelOpenHandle,
    writer: ChannelWriteHalf<Msg>,
    input: InputReceiver,
    taps: Option<Taps>,
    limits: ChannelLimits,
    path: String,
) {
    let channel = writer.id();
    let dialled = async {
        let container = conn.container().await.ok()?;
        match container.dial_unix(&path).await {
            Ok(stream) => Some(stream),
            Err(e) => {
                conn.events.emit_on(
                    Some(channel),
                    EventKind::ForwardFailed {
                        host: path.clone(),
                        port: 0,
                        error: Arc::new(e),
                    },
                );
                None
            }
        }
    };
    let stream = tokio::select! {
        () = conn.token.cancelled() => return,
        r = dialled => r,
    };
    let Some(stream) = stream else {
        reply.reject(ChannelOpenFailure::ConnectFailed).await;
        conn.channel_finished(channel);
        return;
    };
    reply.accept().await;
    relay(&conn, writer, input, stream, taps, limits).await;
}

/// Relays a forwarded connection's bytes both ways until either side ends or the channel's
/// limits close it, then closes the channel. Shared with `forwarded-tcpip` channels.
pub(crate) async fn relay<B: Backend, S>(
    conn: &ConnectionState<B>,
    writer: ChannelWriteHalf<Msg>,
    input: InputReceiver,
    stream: S,
    taps: Option<Taps>,
    limits: ChannelLimits,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let channel = writer.id();
    let (mut from_container, to_container) = tokio::io::split(stream);
    let relay = async {
        let upstream = input::pump(input, to_container, input::OnEof::Close, taps.clone());
        let downstream = async {
            copy_to_channel(
                &mut from_container,
                &writer,
                None,
                &conn.gate,
                taps.as_ref(),
                &limits.activity,
            )
            .await;
            let _ = writer.eof().await;
        };
        tokio::join!(upstream, downstream);
    };
    tokio::select! {
        () = limits.closer.cancelled() => {}
        () = relay => {}
    }
    let _ = writer.close().await;
    conn.channel_finished(channel);
}
