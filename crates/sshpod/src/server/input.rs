//! Client-to-process data, drained from the SSH connection at once.
//!
//! russh refills a channel's window when data arrives, not when it is consumed, and stops the
//! whole connection while one channel's queue is full (see the dependency notes). So sshpod
//! never lets russh queue: the handler moves each packet into this per-channel queue straight
//! away, and a pump feeds the process from it. The queue is bounded; when a process stops
//! reading for longer than [`STALL_LIMIT`] while its queue is full, the connection is torn
//! down instead of freezing.

use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;

/// Packets a channel may hold before the sender waits (at most 32 KiB each: 16 MiB).
pub(crate) const QUEUE_PACKETS: usize = 512;

/// How long the connection may wait for a process to take its input before it is declared
/// stuck.
pub(crate) const STALL_LIMIT: Duration = Duration::from_secs(60);

/// The sending side, kept by the handler. Dropping it is EOF.
pub(crate) type InputSender = mpsc::Sender<Bytes>;
/// The receiving side, consumed by the pump.
pub(crate) type InputReceiver = mpsc::Receiver<Bytes>;

/// A fresh queue.
pub(crate) fn queue() -> (InputSender, InputReceiver) {
    mpsc::channel(QUEUE_PACKETS)
}

/// The process stopped taking input for [`STALL_LIMIT`].
#[derive(Debug, thiserror::Error)]
#[error("a process did not read its input for {} s", STALL_LIMIT.as_secs())]
pub(crate) struct Stalled;

/// Queues one packet: immediately when there is room, else waits up to [`STALL_LIMIT`]. A
/// queue whose pump has gone (the process ended) drops the data, as a closed pipe would.
pub(crate) async fn push(sender: &InputSender, data: Bytes) -> Result<(), Stalled> {
    match sender.try_send(data) {
        Ok(()) | Err(mpsc::error::TrySendError::Closed(_)) => Ok(()),
        Err(mpsc::error::TrySendError::Full(data)) => {
            match tokio::time::timeout(STALL_LIMIT, sender.send(data)).await {
                Ok(_) => Ok(()),
                Err(_) => Err(Stalled),
            }
        }
    }
}

/// Feeds `sink` from the queue until EOF (all senders dropped), then shuts the sink down so
/// the process sees EOF too.
pub(crate) async fn pump<W: AsyncWrite + Unpin>(mut queue: InputReceiver, mut sink: W) {
    while let Some(data) = queue.recv().await {
        if sink.write_all(&data).await.is_err() {
            return;
        }
        // Interactive input must not sit in a buffer.
        if queue.is_empty() && sink.flush().await.is_err() {
            return;
        }
    }
    let _ = sink.shutdown().await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    #[tokio::test]
    async fn pumps_in_order_and_forwards_eof() {
        let (tx, rx) = queue();
        let (w, mut r) = tokio::io::duplex(1024);
        let pumping = tokio::spawn(pump(rx, w));
        push(&tx, Bytes::from_static(b"ab")).await.unwrap();
        push(&tx, Bytes::from_static(b"cd")).await.unwrap();
        drop(tx);
        let mut out = Vec::new();
        r.read_to_end(&mut out).await.unwrap();
        assert_eq!(out, b"abcd");
        pumping.await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_queue_that_never_drains_is_reported_as_stalled() {
        let (tx, _rx) = queue();
        for _ in 0..QUEUE_PACKETS {
            push(&tx, Bytes::from_static(b"x")).await.unwrap();
        }
        let r = push(&tx, Bytes::from_static(b"x")).await;
        assert!(r.is_err());
    }

    #[tokio::test]
    async fn data_for_a_finished_process_is_dropped() {
        let (tx, rx) = queue();
        drop(rx);
        push(&tx, Bytes::from_static(b"late")).await.unwrap();
    }
}
