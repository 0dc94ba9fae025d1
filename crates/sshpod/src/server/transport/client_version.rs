//! Records the client's SSH version line (`SSH-2.0-OpenSSH_9.2p1 ...`) as it goes by, for the
//! webhooks' `clientVersion`: russh keeps it where authentication callbacks cannot reach it.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// The longest version line RFC 4253 allows, with its CR LF.
const MAX_LINE: usize = 255;

/// A stream that copies the first line the client sends into `version`.
pub(crate) struct VersionSniffer<S> {
    inner: S,
    line: Option<Vec<u8>>,
    version: Arc<OnceLock<String>>,
}

impl<S> VersionSniffer<S> {
    pub(crate) fn new(inner: S, version: Arc<OnceLock<String>>) -> Self {
        Self {
            inner,
            line: Some(Vec::new()),
            version,
        }
    }

    fn observe(&mut self, data: &[u8]) {
        let Some(line) = self.line.as_mut() else {
            return;
        };
        let end = data.iter().position(|b| *b == b'\n');
        let take = end.map_or(data.len(), |e| e + 1);
        line.extend_from_slice(&data[..take.min(data.len())]);
        if end.is_some() || line.len() >= MAX_LINE {
            let text = String::from_utf8_lossy(line).trim_end().to_owned();
            let _ = self.version.set(text);
            self.line = None;
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for VersionSniffer<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let result = Pin::new(&mut this.inner).poll_read(cx, buf);
        if this.line.is_some() {
            let new = buf.filled()[before..].to_vec();
            this.observe(&new);
        }
        result
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for VersionSniffer<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, data)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::AsyncReadExt;

    use super::*;

    #[tokio::test]
    async fn keeps_the_first_line_across_reads() {
        let (mut client, server) = tokio::io::duplex(64);
        let version = Arc::new(OnceLock::new());
        let mut sniffer = VersionSniffer::new(server, Arc::clone(&version));
        tokio::io::AsyncWriteExt::write_all(&mut client, b"SSH-2.0-Open")
            .await
            .unwrap();
        let mut buf = [0u8; 64];
        let n = sniffer.read(&mut buf).await.unwrap();
        assert_eq!(n, 12);
        assert!(version.get().is_none());
        tokio::io::AsyncWriteExt::write_all(&mut client, b"SSH_9.2\r\n\x00\x00binary")
            .await
            .unwrap();
        let _ = sniffer.read(&mut buf).await.unwrap();
        assert_eq!(
            version.get().map(String::as_str),
            Some("SSH-2.0-OpenSSH_9.2")
        );
    }
}
