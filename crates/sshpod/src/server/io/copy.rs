//! Process output to the client: read in packet-sized pieces and written to the channel,
//! waiting for the client's window, with the wait made visible to the flow gate.

use std::time::Duration;

use futures_util::FutureExt;
use russh::server::Msg;
use russh::ChannelWriteHalf;
use sshpod_core::{ReadBuffer, TapRecord};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::server::events::{tap_data, Taps};
use crate::server::io::flow::{noting_a_long_wait, FlowGate};
use crate::server::limits::Activity;

/// Copies process output to the channel (`ext` 1 is stderr). The channel writer waits for
/// the client's window (and, during a key exchange, for the exchange to end), so a slow
/// client slows the process down instead of filling memory; while a write waits, for
/// whatever reason, the flow gate keeps the client's socket read, because what it waits for
/// arrives there. Each piece is noted on the channel's `activity` clock (for the idle limits).
pub(crate) async fn copy_to_channel<R>(
    mut from: R,
    channel: &ChannelWriteHalf<Msg>,
    ext: Option<u32>,
    gate: &FlowGate,
    taps: Option<&Taps>,
    activity: &Activity,
) where
    R: AsyncRead + Unpin,
{
    let mut to = channel.make_writer_ext(ext);
    let mut buf = ReadBuffer::new(OUTPUT_CHUNK);
    loop {
        let n = match from.read(buf.space()).await {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) => {
                tracing::debug!(error = &e as &dyn std::error::Error, "output ended");
                break;
            }
        };
        activity.touch();
        let data = buf.filled(n);
        if taps.is_some() {
            let record = match ext {
                None => TapRecord::Output(data),
                Some(_) => TapRecord::ErrorOutput(data),
            };
            tap_data(taps, record).await;
        }
        if write_noting_waits(&mut to, data, gate).await.is_err() {
            break;
        }
        buf.record(n);
    }
    let _ = to.flush().await;
}

/// Writes `data` to the channel. A write that cannot finish at once is marked as waiting on
/// the client for the flow gate, and one that waits long is mentioned in the log: then it is
/// the client, not the process, that is not taking data.
async fn write_noting_waits<W: AsyncWrite + Unpin>(
    to: &mut W,
    data: &[u8],
    gate: &FlowGate,
) -> std::io::Result<()> {
    let write = to.write_all(data);
    tokio::pin!(write);
    if let Some(result) = (&mut write).now_or_never() {
        return result;
    }
    let _waiting = gate.output_waiting();
    noting_a_long_wait(
        write,
        SLOW_CLIENT_NOTICE,
        || {
            tracing::info!(
                "the client has not taken this session's output for {}s; the process waits for it",
                SLOW_CLIENT_NOTICE.as_secs()
            )
        },
        || tracing::info!("the client takes output again"),
    )
    .await
}

/// A write to the client that waits this long is mentioned in the log.
const SLOW_CLIENT_NOTICE: Duration = Duration::from_secs(30);

/// Output is read and sent in pieces of up to this size (one SSH packet's worth).
const OUTPUT_CHUNK: usize = 32 * 1024;

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_output_write_that_waits_keeps_the_socket_read() {
        let gate = FlowGate::default();
        gate.held(crate::server::io::flow::HELD_LIMIT, false);
        let waker = futures_util::task::noop_waker();
        let mut cx = std::task::Context::from_waker(&waker);
        assert!(!gate.poll_open(&mut cx), "input at its limit");
        // A client that takes 16 bytes and then nothing (a closed window, a key exchange).
        let (mut to_client, mut client) = tokio::io::duplex(16);
        let data = [7u8; 64];
        let write = write_noting_waits(&mut to_client, &data, &gate);
        tokio::pin!(write);
        assert!((&mut write).now_or_never().is_none(), "the write waits");
        assert!(gate.poll_open(&mut cx), "so the socket is read");
        let mut got = vec![0u8; 64];
        let (written, read) = tokio::join!(write, client.read_exact(&mut got));
        written.unwrap();
        read.unwrap();
        assert!(
            !gate.poll_open(&mut cx),
            "done waiting: the limit holds again"
        );
    }
}
