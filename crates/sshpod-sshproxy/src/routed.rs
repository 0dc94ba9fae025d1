//! One process, two backends: containers for most logins, the SSH proxy for those a config
//! server sends elsewhere (`backend: sshproxy` in its answer).

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use sshpod_config::Backend as BackendKind;
use sshpod_core::{
    Backend, BackendError, Closed, ConnectionContext, Container, ContainerInfo, Process,
    ProcessSpec,
};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::{ProxiedConnection, SshProxyBackend};

/// The file's backend `B`, plus the SSH proxy for logins whose configuration (a config
/// server's answer) selects `sshproxy`.
#[derive(Debug)]
pub struct WithSshProxy<B> {
    containers: B,
    proxy: SshProxyBackend,
}

impl<B: Backend> WithSshProxy<B> {
    /// Routes to `proxy` the logins whose configuration selects `sshproxy`, the others to
    /// `containers`.
    pub fn new(containers: B, proxy: SshProxyBackend) -> Self {
        Self { containers, proxy }
    }
}

/// Whether this login's configuration sends it to another SSH server.
fn proxied(ctx: &ConnectionContext) -> bool {
    ctx.config
        .as_ref()
        .is_some_and(|config| config.backend == BackendKind::SshProxy)
}

impl<B: Backend> Backend for WithSshProxy<B> {
    type Container = Either<B::Container, ProxiedConnection>;

    async fn connect(&self, ctx: &ConnectionContext) -> Result<Self::Container, BackendError> {
        if proxied(ctx) {
            self.proxy.connect(ctx).await.map(Either::Right)
        } else {
            self.containers.connect(ctx).await.map(Either::Left)
        }
    }

    async fn remove_orphans(&self) -> Result<usize, BackendError> {
        self.containers.remove_orphans().await
    }

    async fn check(&self) -> Result<(), BackendError> {
        self.containers.check().await
    }

    async fn shutdown(&self) {
        self.containers.shutdown().await;
        self.proxy.shutdown().await;
    }
}

/// One of two containers (or streams), as [`WithSshProxy`] chose.
#[derive(Debug)]
pub enum Either<L, R> {
    /// The file's backend's.
    Left(L),
    /// The proxy's.
    Right(R),
}

impl<L: Container, R: Container> Container for Either<L, R> {
    type Stream = Either<L::Stream, R::Stream>;

    async fn exec(&self, spec: ProcessSpec) -> Result<Process, BackendError> {
        match self {
            Either::Left(c) => c.exec(spec).await,
            Either::Right(c) => c.exec(spec).await,
        }
    }

    async fn dial(&self, host: &str, port: u16) -> Result<Self::Stream, BackendError> {
        match self {
            Either::Left(c) => c.dial(host, port).await.map(Either::Left),
            Either::Right(c) => c.dial(host, port).await.map(Either::Right),
        }
    }

    fn info(&self) -> ContainerInfo {
        match self {
            Either::Left(c) => c.info(),
            Either::Right(c) => c.info(),
        }
    }

    async fn close(&self) -> Result<Closed, BackendError> {
        match self {
            Either::Left(c) => c.close().await,
            Either::Right(c) => c.close().await,
        }
    }
}

impl<L: AsyncRead + Unpin, R: AsyncRead + Unpin> AsyncRead for Either<L, R> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Either::Left(s) => Pin::new(s).poll_read(cx, buf),
            Either::Right(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl<L: AsyncWrite + Unpin, R: AsyncWrite + Unpin> AsyncWrite for Either<L, R> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Either::Left(s) => Pin::new(s).poll_write(cx, buf),
            Either::Right(s) => Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Either::Left(s) => Pin::new(s).poll_flush(cx),
            Either::Right(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Either::Left(s) => Pin::new(s).poll_shutdown(cx),
            Either::Right(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}
