//! Serving a router on a bound listener: at most [`MAX_CONNECTIONS`] connections at once, the
//! TLS handshake when configured, HTTP/1.1 with a header deadline, and a graceful stop when the
//! server's lifecycle is cancelled.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use sshpod_core::Lifecycle;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

/// Connections served at once; more wait in the listen queue.
const MAX_CONNECTIONS: usize = 64;
/// A TLS handshake or a request's headers must arrive within this.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long open requests may take to finish once the server stops.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Accepts connections until `connections` is cancelled, then waits for the open ones. `name`
/// says which server it is in the log.
pub(crate) async fn accept(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    router: Router,
    connections: Lifecycle,
    name: &'static str,
) {
    let stop = connections.token().clone();
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let permit = tokio::select! {
            () = stop.cancelled() => break,
            permit = Arc::clone(&slots).acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
        };
        let (socket, peer) = tokio::select! {
            () = stop.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors and the like: let some close before trying again.
                    tracing::warn!(error = &e as &dyn std::error::Error, "{name}: accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        connections.spawn(connection(
            socket,
            peer,
            tls.clone(),
            router.clone(),
            stop.clone(),
            permit,
            name,
        ));
    }
    drop(listener);
    connections.wait().await;
}

/// One connection: the TLS handshake when configured, then HTTP/1.1.
async fn connection(
    socket: TcpStream,
    peer: SocketAddr,
    tls: Option<TlsAcceptor>,
    router: Router,
    stop: CancellationToken,
    _permit: OwnedSemaphorePermit,
    name: &'static str,
) {
    let _ = socket.set_nodelay(true);
    match tls {
        None => http(socket, peer, router, stop, name).await,
        Some(acceptor) => {
            match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(socket)).await {
                Ok(Ok(stream)) => http(stream, peer, router, stop, name).await,
                // A client without a valid certificate ends here.
                Ok(Err(e)) => tracing::debug!(%peer, error = %e, "{name}: TLS handshake"),
                Err(_) => tracing::debug!(%peer, "{name}: TLS handshake timed out"),
            }
        }
    }
}

async fn http<S>(
    stream: S,
    peer: SocketAddr,
    router: Router,
    stop: CancellationToken,
    name: &'static str,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
        router.clone().oneshot(request.map(axum::body::Body::new))
    });
    let connection = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HANDSHAKE_TIMEOUT)
        .serve_connection(TokioIo::new(stream), service);
    tokio::pin!(connection);
    let result = tokio::select! {
        result = connection.as_mut() => result,
        () = stop.cancelled() => {
            connection.as_mut().graceful_shutdown();
            match tokio::time::timeout(SHUTDOWN_GRACE, connection).await {
                Ok(result) => result,
                Err(_) => return,
            }
        }
    };
    if let Err(e) = result {
        tracing::debug!(%peer, error = &e as &dyn std::error::Error, "{name}: connection");
    }
}
