//! The HTTPS listener: TLS (client certificates requested, not required), HTTP/1.1 with
//! upgrades (WebSocket), one task per connection, graceful stop on cancellation.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;

use crate::auth::{Identity, PeerIdentity};
use crate::tls::identity_of;

/// Serves `router` on `listener` until `cancel` fires.
pub async fn serve(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    identities: Arc<HashMap<Vec<u8>, Identity>>,
    router: Router,
    cancel: CancellationToken,
    tracker: TaskTracker,
) {
    let acceptor = TlsAcceptor::from(tls);
    loop {
        let (stream, peer) = tokio::select! {
            () = cancel.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "accept");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let acceptor = acceptor.clone();
        let identities = identities.clone();
        let router = router.clone();
        let cancel = cancel.clone();
        tracker.spawn(async move {
            let _ = stream.set_nodelay(true);
            let tls = match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(stream))
                .await
            {
                Ok(Ok(tls)) => tls,
                Ok(Err(e)) => {
                    tracing::debug!(%peer, error = %e, "TLS handshake");
                    return;
                }
                Err(_) => return,
            };
            let identity = PeerIdentity(identity_of(
                &identities,
                tls.get_ref().1.peer_certificates(),
            ));
            let service =
                hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
                    request.extensions_mut().insert(identity.clone());
                    router.clone().oneshot(request.map(axum::body::Body::new))
                });
            let connection = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(tls), service)
                .with_upgrades();
            tokio::pin!(connection);
            tokio::select! {
                result = connection.as_mut() => {
                    if let Err(e) = result {
                        tracing::debug!(%peer, error = %e, "connection");
                    }
                }
                () = cancel.cancelled() => {
                    connection.as_mut().graceful_shutdown();
                    let _ = tokio::time::timeout(Duration::from_secs(2), connection).await;
                }
            }
        });
    }
}
