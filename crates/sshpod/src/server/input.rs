//! Client-to-process data, taken off the SSH connection at once.
//!
//! The handler moves each packet into its channel's queue straight away, so russh never has
//! to queue (and never stops its loop); a pump feeds the process from the queue. The queues
//! do not bound memory themselves: the connection's [`FlowGate`] does, by pausing the socket
//! (see `flow`).

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;

use crate::server::flow::FlowGate;

/// Packets are copied into blocks of this size; a block is reused once the pump has written
/// all of its packets, so a transfer does not allocate (and fault in) memory per packet.
const BLOCK_BYTES: usize = 256 * 1024;

/// The sending side, kept by the handler. Dropping it is EOF.
pub(crate) struct InputSender {
    sender: mpsc::UnboundedSender<Bytes>,
    gate: Arc<FlowGate>,
    /// Where the next packets are copied to; empty until the first packet.
    block: BytesMut,
}

/// The receiving side, consumed by the pump. Whatever it still holds when dropped is
/// released from the connection's budget.
pub(crate) struct InputReceiver {
    receiver: mpsc::UnboundedReceiver<Bytes>,
    gate: Arc<FlowGate>,
}

/// A fresh queue accounted against `gate`.
pub(crate) fn queue(gate: &Arc<FlowGate>) -> (InputSender, InputReceiver) {
    let (sender, receiver) = mpsc::unbounded_channel();
    (
        InputSender {
            sender,
            gate: Arc::clone(gate),
            block: BytesMut::new(),
        },
        InputReceiver {
            receiver,
            gate: Arc::clone(gate),
        },
    )
}

impl InputSender {
    /// Queues a copy of one packet. Data for a process that has ended is dropped, as a
    /// closed pipe would drop it.
    pub(crate) fn push(&mut self, data: &[u8]) {
        if self.sender.is_closed() {
            return;
        }
        if self.block.capacity() < data.len() {
            // Takes the block back when every packet in it has been written; a new one
            // otherwise.
            self.block.reserve(BLOCK_BYTES.max(data.len()));
        }
        self.block.extend_from_slice(data);
        let packet = self.block.split().freeze();
        let len = packet.len();
        if self.sender.send(packet).is_ok() {
            self.gate.queued(len);
        }
    }
}

impl InputReceiver {
    async fn recv(&mut self) -> Option<Bytes> {
        self.receiver.recv().await
    }
}

impl Drop for InputReceiver {
    fn drop(&mut self) {
        self.receiver.close();
        while let Ok(data) = self.receiver.try_recv() {
            self.gate.consumed(data.len());
        }
    }
}

/// What the client's EOF means for the process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OnEof {
    /// Close the process's stdin (a pipe).
    Close,
    /// Leave it open: with a terminal, input and output are one device, and closing it
    /// would cut the output too (OpenSSH's sshd does the same).
    KeepOpen,
}

/// Feeds `sink` from the queue until EOF (the sender dropped), then closes the sink if
/// `on_eof` says so.
pub(crate) async fn pump<W: AsyncWrite + Unpin>(
    mut queue: InputReceiver,
    mut sink: W,
    on_eof: OnEof,
) {
    while let Some(data) = queue.recv().await {
        let written = sink.write_all(&data).await;
        queue.gate.consumed(data.len());
        if written.is_err() {
            return;
        }
        // Interactive input must not sit in a buffer.
        if queue.receiver.is_empty() && sink.flush().await.is_err() {
            return;
        }
    }
    match on_eof {
        OnEof::Close => {
            let _ = sink.shutdown().await;
        }
        OnEof::KeepOpen => {
            let _ = sink.flush().await;
            // Hold the sink: dropping it would close the process's input all the same.
            std::future::pending::<()>().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    #[tokio::test]
    async fn pumps_in_order_and_forwards_eof() {
        let gate = Arc::new(FlowGate::default());
        let (mut tx, rx) = queue(&gate);
        let (w, mut r) = tokio::io::duplex(1024);
        let pumping = tokio::spawn(pump(rx, w, OnEof::Close));
        tx.push(b"ab");
        tx.push(b"cd");
        drop(tx);
        let mut out = Vec::new();
        r.read_to_end(&mut out).await.unwrap();
        assert_eq!(out, b"abcd");
        pumping.await.unwrap();
    }

    #[tokio::test]
    async fn blocks_are_reused_once_their_packets_are_written() {
        let gate = Arc::new(FlowGate::default());
        let (mut tx, mut rx) = queue(&gate);
        tx.push(b"first");
        let first = rx.recv().await.unwrap();
        let block = first.as_ptr();
        drop(first);
        tx.push(&[7u8; BLOCK_BYTES]);
        let second = rx.recv().await.unwrap();
        assert_eq!(second.as_ptr(), block, "the written block is taken back");
        tx.push(b"third");
        let third = rx.recv().await.unwrap();
        assert_ne!(
            third.as_ptr(),
            block,
            "a block still in use is not overwritten"
        );
        assert_eq!((&second[..3], &third[..]), (&[7u8; 3][..], &b"third"[..]));
    }

    #[tokio::test]
    async fn unread_data_is_released_when_the_process_goes_away() {
        let gate = Arc::new(FlowGate::default());
        let (mut tx, rx) = queue(&gate);
        tx.push(&vec![0u8; flow_budget()]);
        let waker = futures_util::task::noop_waker();
        let mut cx = std::task::Context::from_waker(&waker);
        assert!(!gate.poll_open(&mut cx), "over budget");
        drop(rx);
        assert!(gate.poll_open(&mut cx), "released");
        tx.push(b"late");
        assert!(gate.poll_open(&mut cx), "late data is not counted");
    }

    fn flow_budget() -> usize {
        crate::server::flow::INPUT_BUDGET
    }
}
