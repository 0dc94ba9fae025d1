//! sshpod's HTTP servers, on the lifecycle root: metrics (`metrics`) and health (`health`),
//! one listener per distinct address; two sections on one address are one server with both
//! sets of routes, so they must ask for the same TLS. The recordings page (`crate::web`)
//! shares the TLS and connection handling.
//!
//! `tls.rs` builds HTTPS from a section's settings, `serve.rs` accepts and serves connections,
//! `health.rs` answers probes from a [`Readiness`].

mod health;
pub(crate) mod serve;
pub(crate) mod tls;

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use axum::http::header;
use axum::routing::get;
use axum::Router;
use sshpod_config::{Config, HttpServerConfig};
use sshpod_core::Lifecycle;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

pub use health::{BackendCheck, NotReady, Readiness};

use crate::metrics::{Metrics, CONTENT_TYPE};
use tls::ServerTls;

/// One bound HTTP server.
#[derive(Debug, Clone)]
pub struct BoundServer {
    /// The sections it serves (`metrics`, `health`).
    pub sections: Vec<&'static str>,
    /// Where it listens (with the port chosen when the configuration asked for port 0).
    pub local_addr: SocketAddr,
    /// Whether it speaks HTTPS.
    pub tls: bool,
}

/// One server to start: its address, its settings and its routes.
struct Planned<'a> {
    sections: Vec<&'static str>,
    block: &'a HttpServerConfig,
    router: Router,
}

/// Starts the servers `config` enables, with `metrics` (when `metrics.enable`) and
/// `readiness` (when `health.enable`), until `lifecycle` is cancelled. Binds every address
/// before serving any, so a taken port fails the start.
pub async fn serve(
    config: &Config,
    metrics: Option<Arc<Metrics>>,
    readiness: &Readiness,
    lifecycle: &Lifecycle,
) -> Result<Vec<BoundServer>> {
    let mut planned: Vec<Planned<'_>> = Vec::new();
    if let (true, Some(metrics)) = (config.metrics.enable, metrics) {
        add(
            &mut planned,
            "metrics",
            &config.metrics.server,
            metrics_router(&config.metrics.path, metrics),
        )?;
    }
    if config.health.enable {
        add(
            &mut planned,
            "health",
            &config.health.server,
            health::router(readiness.clone()),
        )?;
    }
    let mut bound = Vec::new();
    let mut started = Vec::new();
    for server in planned {
        let section = server.sections[0];
        let tls = tls::server_config(&ServerTls::of_block(section, server.block))?;
        let listener = TcpListener::bind(server.block.listen)
            .await
            .with_context(|| format!("listening on {} ({section}.listen)", server.block.listen))?;
        let local_addr = listener
            .local_addr()
            .with_context(|| format!("reading the address of {section}"))?;
        bound.push(BoundServer {
            sections: server.sections,
            local_addr,
            tls: tls.is_some(),
        });
        started.push((listener, tls, server.router));
    }
    for ((listener, tls, router), server) in started.into_iter().zip(&bound) {
        lifecycle.spawn(serve::accept(
            listener,
            tls.map(TlsAcceptor::from),
            router,
            lifecycle.child(),
            if server.sections.contains(&"metrics") {
                "metrics"
            } else {
                "health"
            },
        ));
        let scheme = if server.tls { "https" } else { "http" };
        tracing::info!(
            sections = server.sections.join(","),
            url = format!("{scheme}://{}/", server.local_addr),
            "HTTP server listening"
        );
    }
    Ok(bound)
}

/// Adds `section`'s routes: to the server already planned on its address, or as a new one.
fn add<'a>(
    planned: &mut Vec<Planned<'a>>,
    section: &'static str,
    block: &'a HttpServerConfig,
    router: Router,
) -> Result<()> {
    let Some(shared) = planned
        .iter_mut()
        .find(|p| p.block.listen == block.listen && block.listen.port() != 0)
    else {
        planned.push(Planned {
            sections: vec![section],
            block,
            router,
        });
        return Ok(());
    };
    if shared.block != block {
        bail!(
            "{section}.listen is {}, as {}.listen: one server serves both, so their TLS settings \
             (cert, key, clientcacert, tlsVersion, curves, cipher) must be the same",
            block.listen,
            shared.sections[0]
        );
    }
    shared.sections.push(section);
    // The metrics path wins over health's any-path answer.
    let routes = std::mem::take(&mut shared.router);
    shared.router = routes.merge(router);
    Ok(())
}

/// `GET path`: the metrics.
fn metrics_router(path: &str, metrics: Arc<Metrics>) -> Router {
    Router::new().route(
        path,
        get(move || {
            let metrics = Arc::clone(&metrics);
            async move { ([(header::CONTENT_TYPE, CONTENT_TYPE)], metrics.encode()) }
        }),
    )
}

/// A GET of `path` with `accept`, answered by `router` in-process: the status and the body.
#[cfg(test)]
pub(crate) async fn request(
    router: &Router,
    path: &str,
    accept: &str,
) -> (axum::http::StatusCode, String) {
    use tower::ServiceExt;

    let request = axum::http::Request::get(path)
        .header(header::ACCEPT, accept)
        .body(axum::body::Body::empty())
        .unwrap_or_else(|e| panic!("{e}"));
    let response = router
        .clone()
        .oneshot(request)
        .await
        .unwrap_or_else(|e| match e {});
    let status = response.status();
    let body = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    (status, String::from_utf8_lossy(&body).into_owned())
}

#[cfg(test)]
mod tests {
    use axum::http::StatusCode;

    use super::*;
    use crate::geoip::GeoIp;

    async fn get(router: &Router, path: &str) -> (StatusCode, String) {
        request(router, path, "*/*").await
    }

    #[tokio::test]
    async fn sections_on_one_address_are_one_server_with_both_sets_of_paths() {
        let mut block = test_config().metrics.server;
        block.listen = "127.0.0.1:9100".parse().unwrap_or_else(|e| panic!("{e}"));
        let metrics = Arc::new(Metrics::new("docker", GeoIp::Dummy));
        let readiness = Readiness::new();
        let mut planned = Vec::new();
        add(
            &mut planned,
            "metrics",
            &block,
            metrics_router("/metrics", metrics),
        )
        .unwrap_or_else(|e| panic!("{e:#}"));
        add(
            &mut planned,
            "health",
            &block,
            health::router(readiness.clone()),
        )
        .unwrap_or_else(|e| panic!("{e:#}"));
        assert_eq!(planned.len(), 1);
        assert_eq!(planned[0].sections, ["metrics", "health"]);
        let router = &planned[0].router;
        let (status, body) = get(router, "/metrics").await;
        assert_eq!(status, StatusCode::OK);
        assert!(body.ends_with("# EOF\n"), "{body}");
        assert_eq!(
            get(router, "/healthz").await,
            (StatusCode::OK, "ok\n".into())
        );
        assert_eq!(
            get(router, "/elsewhere").await,
            (StatusCode::SERVICE_UNAVAILABLE, "not ok".into())
        );
        readiness.mark_swept();
        assert_eq!(
            get(router, "/elsewhere").await,
            (StatusCode::OK, "ok".into())
        );

        // Another TLS setting on the same address cannot be one server.
        let mut other = block.clone();
        other.tls_version = sshpod_config::TlsVersion::Tls12;
        let refused = add(&mut planned, "health", &other, Router::new())
            .err()
            .map(|e| e.to_string());
        assert!(
            refused.as_deref().is_some_and(
                |e| e.starts_with("health.listen is 127.0.0.1:9100, as metrics.listen")
            ),
            "{refused:?}"
        );
    }

    /// A loaded minimal configuration.
    fn test_config() -> Config {
        sshpod_config::parse_str(
            "auth:\n  password:\n    method: htpasswd\n    htpasswd:\n      file: /etc/htpasswd\n",
            sshpod_config::Format::Yaml,
            "test.yaml",
        )
        .unwrap_or_else(|e| panic!("{e}"))
        .config
    }
}
