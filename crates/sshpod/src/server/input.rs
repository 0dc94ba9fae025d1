//! Client-to-process data, taken off the SSH connection at once.
//!
//! The handler moves each packet into its channel's queue straight away, so russh never has
//! to queue (and never stops its loop); a pump feeds the process from the queue. The queues
//! do not bound memory themselves: the connection's [`FlowGate`] does, by pausing the socket
//! (see `flow`).

use std::sync::Arc;

use bytes::Bytes;
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;

use crate::server::flow::FlowGate;

/// The sending side, kept by the handler. Dropping it is EOF.
pub(crate) struct InputSender {
    sender: mpsc::UnboundedSender<Bytes>,
    gate: Arc<FlowGate>,
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
        },
        InputReceiver {
            receiver,
            gate: Arc::clone(gate),
        },
    )
}

impl InputSender {
    /// Queues one packet. Data for a process that has ended is dropped, as a closed pipe
    /// would drop it.
    pub(crate) fn push(&self, data: Bytes) {
        let len = data.len();
        if self.sender.send(data).is_ok() {
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
        let (tx, rx) = queue(&gate);
        let (w, mut r) = tokio::io::duplex(1024);
        let pumping = tokio::spawn(pump(rx, w, OnEof::Close));
        tx.push(Bytes::from_static(b"ab"));
        tx.push(Bytes::from_static(b"cd"));
        drop(tx);
        let mut out = Vec::new();
        r.read_to_end(&mut out).await.unwrap();
        assert_eq!(out, b"abcd");
        pumping.await.unwrap();
    }

    #[tokio::test]
    async fn unread_data_is_released_when_the_process_goes_away() {
        let gate = Arc::new(FlowGate::default());
        let (tx, rx) = queue(&gate);
        tx.push(Bytes::from(vec![0u8; flow_budget()]));
        let waker = futures_util::task::noop_waker();
        let mut cx = std::task::Context::from_waker(&waker);
        assert!(!gate.poll_open(&mut cx), "over budget");
        drop(rx);
        assert!(gate.poll_open(&mut cx), "released");
        tx.push(Bytes::from_static(b"late"));
        assert!(gate.poll_open(&mut cx), "late data is not counted");
    }

    fn flow_budget() -> usize {
        crate::server::flow::INPUT_BUDGET
    }
}
