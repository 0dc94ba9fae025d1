//! A forwarded TCP connection as one duplex stream: reads come from the helper's stdout,
//! writes go to its stdin.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, DuplexStream, ReadBuf, WriteHalf};

use crate::exec::AbortOnDrop;
use crate::hijack::EngineStream;

/// The byte stream of one forwarded connection.
pub struct ExecStream {
    reader: DuplexStream,
    writer: WriteHalf<EngineStream>,
    _demux: AbortOnDrop,
}

impl ExecStream {
    pub(crate) fn new(
        reader: DuplexStream,
        writer: WriteHalf<EngineStream>,
        demux: AbortOnDrop,
    ) -> Self {
        Self {
            reader,
            writer,
            _demux: demux,
        }
    }
}

impl AsyncRead for ExecStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().reader).poll_read(cx, buf)
    }
}

impl AsyncWrite for ExecStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().writer).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().writer).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().writer).poll_shutdown(cx)
    }
}
