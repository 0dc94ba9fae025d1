//! The client socket as russh sees it: it can be cut from outside, and its reading pauses
//! while the connection's flow gate is closed (see `flow`), for as long as the gate says.
//!
//! russh runs each session on its own task and offers no abort, so sshpod hands it a stream
//! that fails every read and write once the connection's token is cancelled: the session loop
//! ends, and everything it owned is dropped.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};

use crate::server::io::flow::FlowGate;

/// At most one "paused" line per connection per this long.
const PAUSE_LOG_INTERVAL: std::time::Duration = std::time::Duration::from_secs(60);

/// A stream that errors once `token` is cancelled and reads only while `gate` is open.
pub(crate) struct KillableStream<S> {
    inner: S,
    cancelled: Pin<Box<WaitForCancellationFutureOwned>>,
    gate: Arc<FlowGate>,
    /// Whether reading is paused now.
    paused: bool,
    /// When a pause was last logged: a connection that hovers at the limit pauses and resumes
    /// many times a second, and one line a minute says all there is to say.
    pause_logged: Option<tokio::time::Instant>,
}

impl<S> KillableStream<S> {
    pub(crate) fn new(inner: S, token: CancellationToken, gate: Arc<FlowGate>) -> Self {
        Self {
            inner,
            cancelled: Box::pin(token.cancelled_owned()),
            gate,
            paused: false,
            pause_logged: None,
        }
    }

    /// Whether reading may go on. A pause lasts as long as the processes take: the client is
    /// still there, and closing its connection would end every session on it.
    fn poll_gate(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let open = self.gate.poll_open(cx);
        if open == self.paused {
            self.paused = !open;
            let now = tokio::time::Instant::now();
            let quiet = self
                .pause_logged
                .is_some_and(|at| now.duration_since(at) < PAUSE_LOG_INTERVAL);
            if self.paused && !quiet {
                self.pause_logged = Some(now);
                tracing::info!(
                    held_mib = self.gate.held_bytes() / (1024 * 1024),
                    "reading from the client paused: its processes have not read the input they were sent"
                );
            }
        }
        if open {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }

    fn check(&mut self, cx: &mut Context<'_>) -> io::Result<()> {
        match self.cancelled.as_mut().poll(cx) {
            Poll::Ready(()) => Err(io::Error::new(
                io::ErrorKind::ConnectionAborted,
                "connection closed by sshpod",
            )),
            Poll::Pending => Ok(()),
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for KillableStream<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        this.check(cx)?;
        match this.poll_gate(cx) {
            Poll::Ready(()) => Pin::new(&mut this.inner).poll_read(cx, buf),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for KillableStream<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        this.check(cx)?;
        Pin::new(&mut this.inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        this.check(cx)?;
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn a_blocked_read_fails_once_cancelled() {
        let (a, _b) = tokio::io::duplex(64);
        let token = CancellationToken::new();
        let mut s = KillableStream::new(a, token.clone(), Arc::default());
        let reader = tokio::spawn(async move {
            let mut buf = [0u8; 8];
            s.read(&mut buf).await
        });
        token.cancel();
        let err = reader.await.unwrap().unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::ConnectionAborted);
    }

    #[tokio::test]
    async fn passes_data_until_cancelled() {
        let (a, mut b) = tokio::io::duplex(64);
        let token = CancellationToken::new();
        let mut s = KillableStream::new(a, token.clone(), Arc::default());
        s.write_all(b"hi").await.unwrap();
        let mut buf = [0u8; 2];
        b.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"hi");
        token.cancel();
        assert!(s.write_all(b"x").await.is_err());
    }
}
