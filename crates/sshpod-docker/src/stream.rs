//! A forwarded TCP connection as one duplex stream: reads come from the helper's stdout,
//! writes go to its stdin.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use sshpod_core::WindDown;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt as _, DuplexStream, ReadBuf, WriteHalf};

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

impl WindDown for ExecStream {
    async fn wind_down(self, grace: Duration) -> bool {
        let ExecStream {
            reader,
            mut writer,
            _demux: mut demux,
        } = self;
        // Its output has nowhere to go any more; the engine's stream is still read to its
        // end, which comes when the helper exits.
        drop(reader);
        let _ = writer.shutdown().await;
        tokio::time::timeout(grace, demux.finished()).await.is_ok()
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
