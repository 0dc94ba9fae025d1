//! One process, two backends: containers for most logins, the SSH proxy for those a config
//! server sends elsewhere (`backend: sshproxy` in its answer).

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use sshpod_config::Backend as BackendKind;
use sshpod_core::{
    Backend, BackendError, Closed, ConnectionContext, Container, ContainerInfo, ForwardedStream,
    Listener, Process, ProcessSpec, X11Forwarding,
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

    async fn listen(&self, host: &str, port: u16) -> Result<Box<dyn Listener>, BackendError> {
        match self {
            Either::Left(c) => c.listen(host, port).await,
            Either::Right(c) => c.listen(host, port).await,
        }
    }

    async fn listen_unix(&self, path: &str) -> Result<Box<dyn Listener>, BackendError> {
        match self {
            Either::Left(c) => c.listen_unix(path).await,
            Either::Right(c) => c.listen_unix(path).await,
        }
    }

    async fn listen_agent(&self) -> Result<Box<dyn Listener>, BackendError> {
        match self {
            Either::Left(c) => c.listen_agent().await,
            Either::Right(c) => c.listen_agent().await,
        }
    }

    async fn forward_x11(&self) -> Result<X11Forwarding, BackendError> {
        match self {
            Either::Left(c) => c.forward_x11().await,
            Either::Right(c) => c.forward_x11().await,
        }
    }

    async fn dial_unix(&self, path: &str) -> Result<Box<dyn ForwardedStream>, BackendError> {
        match self {
            Either::Left(c) => c.dial_unix(path).await,
            Either::Right(c) => c.dial_unix(path).await,
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

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;
    use std::sync::Arc;

    use sshpod_config::{parse_str, Format};
    use sshpod_core::{ConnectionId, Lifecycle, NotPossible};

    use super::*;

    /// A container backend that refuses every login, recognisably.
    struct Refusing;

    impl Backend for Refusing {
        type Container = ProxiedConnection;

        async fn connect(&self, _: &ConnectionContext) -> Result<ProxiedConnection, BackendError> {
            Err(NotPossible::CommandsDisabled.into())
        }

        async fn remove_orphans(&self) -> Result<usize, BackendError> {
            Ok(7)
        }
    }

    fn context(config: Option<&str>) -> ConnectionContext {
        let addr: SocketAddr = ([127, 0, 0, 1], 2222).into();
        let mut ctx = ConnectionContext::new(ConnectionId::random(), "alice".to_owned(), addr);
        ctx.config = config.map(|text| {
            let text =
                format!("{text}auth: {{password: {{method: htpasswd, htpasswd: {{file: /h}}}}}}\n");
            match parse_str(&text, Format::Yaml, "answer.yaml") {
                Ok(loaded) => Arc::new(loaded.config),
                Err(e) => panic!("{e}"),
            }
        });
        ctx
    }

    #[tokio::test]
    async fn logins_go_where_their_configuration_says() {
        let lifecycle = Lifecycle::new();
        let backend = WithSshProxy::new(
            Refusing,
            SshProxyBackend::new(&sshpod_config::SshProxyConfig::default(), &lifecycle),
        );
        let message =
            |result: Result<Either<ProxiedConnection, ProxiedConnection>, BackendError>| {
                match result {
                    Ok(_) => panic!("connected"),
                    Err(error) => error.to_string(),
                }
            };
        // The file's backend, and an answer that keeps it.
        let refused = "running commands is disabled on this server; log in for a shell";
        assert_eq!(message(backend.connect(&context(None)).await), refused);
        assert_eq!(message(backend.connect(&context(Some(""))).await), refused);
        // An answer that sends the login elsewhere: the proxy dials the server it names
        // (here one that is down).
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
        let port = listener
            .local_addr()
            .map(|a| a.port())
            .unwrap_or_else(|e| panic!("{e}"));
        drop(listener);
        let answer = format!(
            "backend: sshproxy\nsshproxy: {{server: 127.0.0.1, port: {port}, username: x, timeout: 1s, \
             allowedHostKeyFingerprints: [\"SHA256:MbGuM3U0iq9MGi0aCrY12m1iStLpXHtR9TSbGJLGmiE\"]}}\n"
        );
        assert_eq!(
            message(backend.connect(&context(Some(&answer))).await),
            "the SSH server behind this one is not reachable"
        );
        // The sweep is the containers' own.
        assert!(matches!(backend.remove_orphans().await, Ok(7)));
    }
}
