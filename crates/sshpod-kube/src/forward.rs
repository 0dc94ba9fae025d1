//! `ssh -L` through the pods/portforward API: a byte stream to a port on the pod's loopback.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use kube::api::Portforwarder;
use tokio::io::{AsyncRead, AsyncWrite, DuplexStream, ReadBuf};

/// One forwarded connection. Owns the port-forward session, which ends when this is dropped.
pub struct ForwardStream {
    stream: DuplexStream,
    _forwarder: Portforwarder,
}

impl ForwardStream {
    pub(crate) fn new(mut forwarder: Portforwarder, port: u16) -> Option<Self> {
        let stream = forwarder.take_stream(port)?;
        Some(Self {
            stream,
            _forwarder: forwarder,
        })
    }
}

impl AsyncRead for ForwardStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for ForwardStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}
