//! The `health` section: ContainerSSH's health endpoint (`enable`, the HTTP server block with
//! `listen` defaulting to `0.0.0.0:7000`) and `client`, the HTTP client block with which
//! `sshpod healthcheck` asks it (`url` defaulting to `http://127.0.0.1:7000/`).
//!
//! ContainerSSH listens on 7000 even with `enable: false`; sshpod serves the endpoint only when
//! it is enabled. As there, a section that is off is not validated beyond its shape.

use std::net::SocketAddr;

use serde::Serialize;

use crate::check::Checker;
use crate::http::{HttpClientConfig, RawHealthClient};
use crate::http_server::{raw_http_server, HttpServerConfig};
use crate::metrics::MetricsConfig;

/// ContainerSSH's default `health.listen`.
pub const DEFAULT_HEALTH_LISTEN: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED), 7000);

/// `health`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HealthConfig {
    /// Whether the endpoint is served.
    pub enable: bool,
    /// Where and how it is served.
    #[serde(flatten)]
    pub server: HttpServerConfig,
    /// How `sshpod healthcheck` reaches it.
    pub client: HttpClientConfig,
}

impl Default for HealthConfig {
    /// ContainerSSH's defaults: off.
    fn default() -> Self {
        Checker::quietly(|quiet| RawHealth::default().resolve(quiet, &MetricsConfig::default()))
    }
}

raw_http_server!(
    /// `health` as written.
    RawHealth {
        enable: bool = false,
        client: RawHealthClient = RawHealthClient::default(),
    }
);

impl RawHealth {
    /// Validates `health`; sharing `metrics`' address, it must ask for the same TLS (they are
    /// one server).
    pub(crate) fn resolve(&self, check: &mut Checker<'_>, metrics: &MetricsConfig) -> HealthConfig {
        let (server, client) = if self.enable {
            (
                self.server(check, "health", DEFAULT_HEALTH_LISTEN),
                self.client.clone().resolve(check),
            )
        } else {
            (
                self.server_unchecked(DEFAULT_HEALTH_LISTEN),
                Checker::quietly(|quiet| self.client.clone().resolve(quiet)),
            )
        };
        let shared = self.enable && metrics.enable && server.listen == metrics.server.listen;
        if shared && server.listen.port() != 0 && server != metrics.server {
            check.error(
                "health.listen",
                "is `metrics.listen` too, so one server answers both: their TLS settings \
                 (`cert`, `key`, `clientcacert`, `tlsVersion`, `curves`, `cipher`) must be the same",
            );
        }
        HealthConfig {
            enable: self.enable,
            server,
            client,
        }
    }
}
