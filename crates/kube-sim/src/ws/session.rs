//! One exec or attach session: bridges a WebSocket speaking the channel protocol to a hijacked
//! engine stream. Order on the wire: an empty frame on the lowest writable channel, output,
//! then exactly one Status on channel 3, then close(1000).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, WebSocket};
use bytes::{BufMut as _, Bytes, BytesMut};
use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

use super::channel::{self, Incoming, Protocol, ResizeDecoder};
use crate::docker::frames::{Demuxer, Stream};
use crate::docker::raw::Hijacked;
use crate::docker::stdio::{self, Streams, Terminal};
use crate::docker::Engine;
use crate::tasks::Tasks;

/// What one read of the process's output asks for.
const OUTPUT_READ: usize = 32 * 1024;

/// What the session is bridging.
pub struct Bridge {
    pub protocol: Protocol,
    pub streams: Streams,
    pub terminal: Terminal,
    pub engine: Arc<Engine>,
    /// Runs the session's writer and input tasks.
    pub tasks: Tasks,
}

/// Writes channel messages; owns the sending half of the socket.
pub struct Writer {
    tx: mpsc::Sender<Message>,
}

impl Writer {
    pub async fn send(&self, channel: u8, payload: &[u8]) -> bool {
        self.tx
            .send(Message::Binary(Bytes::from(channel::frame(
                channel, payload,
            ))))
            .await
            .is_ok()
    }

    /// Sends a frame that already starts with its channel byte.
    pub async fn send_frame(&self, frame: Bytes) -> bool {
        self.tx.send(Message::Binary(frame)).await.is_ok()
    }

    /// Sends the normal close (1000).
    pub async fn close(&self) {
        let close = CloseFrame {
            code: 1000,
            reason: "".into(),
        };
        let _ = self.tx.send(Message::Close(Some(close))).await;
    }

    /// Resolves once the client can no longer be written to.
    pub async fn closed(&self) {
        self.tx.closed().await;
    }

    /// Sends the status and the normal close.
    pub async fn finish(&self, status: &Value) {
        let _ = self
            .send(channel::ERROR, status.to_string().as_bytes())
            .await;
        let close = CloseFrame {
            code: 1000,
            reason: "".into(),
        };
        let _ = self.tx.send(Message::Close(Some(close))).await;
    }
}

/// Splits a socket into a writer task (spawned on `tasks`) and the reading half.
pub fn split(
    socket: WebSocket,
    tasks: &Tasks,
) -> (
    Writer,
    futures_util::stream::SplitStream<WebSocket>,
    tokio::task::JoinHandle<()>,
) {
    let (mut sink, stream) = socket.split();
    let (tx, mut rx) = mpsc::channel::<Message>(64);
    let writer = tasks.spawn(async move {
        while let Some(message) = rx.recv().await {
            let closing = matches!(message, Message::Close(_));
            // Flushed once nothing more is queued: bulk output goes out in fewer writes.
            if sink.feed(message).await.is_err() || closing {
                break;
            }
            if rx.is_empty() && sink.flush().await.is_err() {
                break;
            }
        }
        let _ = sink.flush().await;
    });
    (Writer { tx }, stream, writer)
}

/// Runs the session; `status` is awaited once output has ended, to produce the Status.
pub async fn run<F>(socket: WebSocket, bridge: Bridge, io: Hijacked, status: impl FnOnce() -> F)
where
    F: Future<Output = Value>,
{
    let Bridge {
        protocol,
        streams,
        terminal,
        engine,
        tasks,
    } = bridge;
    let (writer, mut incoming, writer_task) = split(socket, &tasks);
    let first = if streams.stdout {
        channel::STDOUT
    } else if streams.stderr {
        channel::STDERR
    } else {
        channel::ERROR
    };
    writer.send(first, &[]).await;
    let (mut read, mut write) = tokio::io::split(io);

    // Client -> process: stdin, resize, v5 close; answers pings by reading continuously.
    let input_engine = engine.clone();
    let input_ended = tokio_util::sync::CancellationToken::new();
    let ended = input_ended.clone();
    let input = tasks.spawn(async move {
        let _ended = ended.drop_guard();
        let mut resize = ResizeDecoder::default();
        let mut stdin_open = streams.stdin;
        while let Some(Ok(message)) = incoming.next().await {
            let data = match message {
                Message::Binary(b) => b,
                Message::Text(t) => Bytes::copy_from_slice(t.as_bytes()),
                Message::Close(_) => break,
                _ => continue,
            };
            match channel::parse(protocol, &data) {
                Incoming::Stdin(bytes) if stdin_open && write.write_all(bytes).await.is_err() => {
                    stdin_open = false;
                }
                Incoming::Resize(bytes) if streams.tty => {
                    for (w, h) in resize.push(bytes) {
                        stdio::resize(&input_engine, &terminal, w, h).await;
                    }
                }
                Incoming::Close(channel::STDIN) if stdin_open => {
                    stdin_open = false;
                    let _ = write.shutdown().await;
                }
                Incoming::Invalid(reason) => {
                    tracing::debug!(%reason, "protocol error from client");
                    break;
                }
                _ => {}
            }
        }
        // The client is gone (or closed the socket, v4's way to end stdin).
        let _ = write.shutdown().await;
    });

    // Process -> client. Frames are built in place: with a TTY the read lands after a spare
    // byte for the channel, without one the demultiplexer reuses a header byte.
    let mut buffer = BytesMut::new();
    let mut demux = Demuxer::default();
    let channel_of = |stream: Stream| match stream {
        Stream::Stdout => streams.stdout.then_some(channel::STDOUT),
        Stream::Stderr => streams.stderr.then_some(channel::STDERR),
    };
    let mut client_gone = false;
    loop {
        if streams.tty {
            buffer.reserve(1 + OUTPUT_READ);
            buffer.put_u8(channel::STDOUT);
        }
        let into = if streams.tty {
            &mut buffer
        } else {
            demux.space(OUTPUT_READ)
        };
        let n = tokio::select! {
            r = read.read_buf(into) => match r { Ok(0) | Err(_) => break, Ok(n) => n },
            () = writer.tx.closed() => { client_gone = true; break }
            () = input_ended.cancelled() => { client_gone = true; break }
        };
        if streams.tty {
            let frame = buffer.split_to(1 + n).freeze();
            if streams.stdout && !writer.send_frame(frame).await {
                client_gone = true;
                break;
            }
            continue;
        }
        while let Some(framed) = demux.next_framed(channel_of) {
            if let Some(frame) = framed {
                if !writer.send_frame(frame).await {
                    client_gone = true;
                }
            }
        }
        if client_gone {
            break;
        }
    }
    if !client_gone {
        let status = status().await;
        writer.finish(&status).await;
    }
    drop(writer);
    let _ = writer_task.await;
    // Wait for the client's close (it answers ours), not forever.
    let _ = tokio::time::timeout(Duration::from_secs(5), input).await;
}
