//! `direct-tcpip` channels (`ssh -L`): a TCP connection dialled from inside the container.

use std::sync::Arc;

use russh::server::{ChannelOpenHandle, Msg};
use russh::{ChannelOpenFailure, ChannelWriteHalf};
use sshpod_core::{Backend, Container};

use crate::server::connection::ConnectionState;
use crate::server::io::copy::copy_to_channel;
use crate::server::io::input::{self, InputReceiver};

/// Dials the target, then accepts or rejects the channel accordingly and relays bytes.
pub(crate) async fn run<B: Backend>(
    conn: Arc<ConnectionState<B>>,
    reply: ChannelOpenHandle,
    writer: ChannelWriteHalf<Msg>,
    input: InputReceiver,
    host: String,
    port: u16,
) {
    let dialled = async {
        let container = conn.container().await?;
        container.dial(&host, port).await.map_err(|e| {
            tracing::info!(
                host,
                port,
                error = &e as &dyn std::error::Error,
                "forwarding refused"
            );
            e.to_string()
        })
    };
    let channel = writer.id();
    let stream = tokio::select! {
        () = conn.token.cancelled() => return,
        r = dialled => r,
    };
    let stream = match stream {
        Ok(s) => s,
        Err(_) => {
            reply.reject(ChannelOpenFailure::ConnectFailed).await;
            conn.channel_finished(channel);
            return;
        }
    };
    reply.accept().await;
    let (mut from_container, to_container) = tokio::io::split(stream);
    let relay = async {
        let upstream = input::pump(input, to_container, input::OnEof::Close);
        let downstream = async {
            copy_to_channel(&mut from_container, &writer, None, &conn.gate).await;
            let _ = writer.eof().await;
        };
        tokio::join!(upstream, downstream);
    };
    tokio::select! {
        () = conn.token.cancelled() => {}
        () = relay => {}
    }
    let _ = writer.close().await;
    conn.channel_finished(channel);
}
