//! The `metrics` section: ContainerSSH's Prometheus endpoint (`enable`, the HTTP server block
//! with `listen` defaulting to `0.0.0.0:9100`, and `path`, default `/metrics`).
//!
//! As in ContainerSSH, a section that is off is not validated beyond its shape.

use std::net::SocketAddr;

use serde::Serialize;

use crate::check::Checker;
use crate::http_server::{raw_http_server, HttpServerConfig};

/// ContainerSSH's default `metrics.listen`.
pub const DEFAULT_METRICS_LISTEN: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED), 9100);
/// ContainerSSH's default `metrics.path`.
pub const DEFAULT_METRICS_PATH: &str = "/metrics";

/// `metrics`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MetricsConfig {
    /// Whether the endpoint is served.
    pub enable: bool,
    /// Where and how it is served.
    #[serde(flatten)]
    pub server: HttpServerConfig,
    /// The path the metrics are served at.
    pub path: String,
}

impl Default for MetricsConfig {
    /// ContainerSSH's defaults: off.
    fn default() -> Self {
        Checker::quietly(|quiet| RawMetrics::default().resolve(quiet))
    }
}

raw_http_server!(
    /// `metrics` as written.
    RawMetrics {
        enable: bool = false,
        path: String = String::new(),
    }
);

impl RawMetrics {
    pub(crate) fn resolve(&self, check: &mut Checker<'_>) -> MetricsConfig {
        if !self.enable {
            return MetricsConfig {
                enable: false,
                server: self.server_unchecked(DEFAULT_METRICS_LISTEN),
                path: path_or_default(&self.path),
            };
        }
        let server = self.server(check, "metrics", DEFAULT_METRICS_LISTEN);
        let path = path_or_default(&self.path);
        if !path.starts_with('/') || path.contains(['?', '#', ' ']) {
            check.error(
                "metrics.path",
                format!("`{path}` is not a URL path; write it like `/metrics`"),
            );
        }
        MetricsConfig {
            enable: true,
            server,
            path,
        }
    }
}

fn path_or_default(path: &str) -> String {
    match path.trim() {
        "" => DEFAULT_METRICS_PATH.to_owned(),
        path => path.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use crate::error::{ConfigError, ConfigErrors};
    use crate::load::{parse_str, Format, Loaded};
    use crate::TlsVersion;

    const MINIMAL: &str =
        "auth:\n  password:\n    method: htpasswd\n    htpasswd:\n      file: /etc/htpasswd\n";

    /// `MINIMAL` is 5 lines long: what follows it starts on line 6.
    fn yaml(sections: &str) -> Result<Loaded, ConfigErrors> {
        parse_str(&format!("{MINIMAL}{sections}"), Format::Yaml, "test.yaml")
    }

    fn loaded(result: Result<Loaded, ConfigErrors>) -> Loaded {
        result.unwrap_or_else(|errors| panic!("{errors}"))
    }

    fn messages(result: Result<Loaded, ConfigErrors>) -> Vec<String> {
        match result {
            Ok(loaded) => panic!("expected errors, got {:#?}", loaded.config.metrics),
            Err(ConfigErrors(errors)) => errors.iter().map(ConfigError::to_string).collect(),
        }
    }

    #[test]
    fn defaults_are_containerssh_s() {
        let config = loaded(yaml("")).config;
        assert!(!config.metrics.enable && !config.health.enable);
        assert_eq!(
            config.metrics.server.listen,
            SocketAddr::from(([0, 0, 0, 0], 9100))
        );
        assert_eq!(config.metrics.path, "/metrics");
        assert_eq!(
            config.health.server.listen,
            SocketAddr::from(([0, 0, 0, 0], 7000))
        );
        assert_eq!(
            config.health.client.url.expose_secret(),
            "http://127.0.0.1:7000/"
        );
        assert_eq!(config.metrics.server.tls_version, TlsVersion::Tls13);
        assert_eq!(
            config.metrics.server.curves,
            ["x25519", "secp256r1", "secp384r1", "secp521r1"]
        );
        assert!(!config.metrics.server.tls());
        assert_eq!(config.metrics, super::MetricsConfig::default());
        assert_eq!(config.health, crate::HealthConfig::default());
    }

    #[test]
    fn enabled_sections_load_with_their_addresses() {
        let config = loaded(yaml(
            "metrics:\n  enable: true\n  listen: ':9200'\n  path: /m\nhealth:\n  enable: true\n  \
             listen: 127.0.0.1:7001\n  client:\n    url: http://127.0.0.1:7001/\n",
        ))
        .config;
        assert!(config.metrics.enable && config.health.enable);
        assert_eq!(
            config.metrics.server.listen,
            SocketAddr::from(([0, 0, 0, 0], 9200))
        );
        assert_eq!(config.metrics.path, "/m");
        assert_eq!(
            config.health.server.listen,
            SocketAddr::from(([127, 0, 0, 1], 7001))
        );
    }

    #[test]
    fn every_bad_server_value_is_refused_where_it_is_written() {
        let all = messages(yaml(
            "metrics:\n  enable: true\n  listen: localhost:9100\n  cert: /nonexistent/c.pem\n  \
             clientcacert: /nonexistent/ca.pem\n  tlsVersion: '1.1'\n  path: metrics\n",
        ));
        assert_eq!(
            all,
            [
                "test.yaml:8:11: key `metrics.listen`: `localhost:9100` is not a socket \
                 address; write it like `0.0.0.0:2222` or `[::]:2222`",
                "test.yaml:7:3: key `metrics.key`: `cert` and `key` go together: give both \
                 for HTTPS, or neither",
                "test.yaml:10:17: key `metrics.clientcacert`: client certificates need HTTPS: \
                 set `cert` and `key` too",
                "test.yaml:9:9: key `metrics.cert`: cannot read `/nonexistent/c.pem`: No such \
                 file or directory (os error 2)",
                "test.yaml:10:17: key `metrics.clientcacert`: cannot read \
                 `/nonexistent/ca.pem`: No such file or directory (os error 2)",
                "test.yaml:11:15: key `metrics.tlsVersion`: unknown TLS version `1.1`; \
                 expected `1.2` or `1.3`",
                "test.yaml:12:9: key `metrics.path`: `metrics` is not a URL path; write it \
                 like `/metrics`",
            ]
        );
        let all = messages(yaml(
            "health:\n  enable: true\n  key: /k.pem\n  cipher: [TLS_RSA_WITH_RC4_128_SHA]\n  \
             client:\n    url: ftp://x\n",
        ));
        assert_eq!(all.len(), 4, "{all:#?}");
        assert!(all[0].starts_with("test.yaml:7:3: key `health.cert`: `cert` and `key`"));
        assert!(all[1].starts_with("test.yaml:8:8: key `health.key`: cannot read `/k.pem`"));
        assert!(all[2].starts_with("test.yaml:9:12: key `health.cipher[0]`:"));
        assert!(all[2].contains("insecure"), "{all:#?}");
        assert!(all[3].starts_with("test.yaml:11:10: key `health.client.url`: `ftp://x`"));
    }

    #[test]
    fn metrics_and_health_on_one_address_must_ask_for_the_same_tls() {
        let directory = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let pem = directory.path().join("server.pem");
        std::fs::write(&pem, "x").unwrap_or_else(|e| panic!("{e}"));
        let tls = format!("cert: {0}, key: {0}", pem.display());
        let all = messages(yaml(&format!(
            "metrics: {{enable: true, listen: '127.0.0.1:9100', {tls}}}\nhealth:\n  enable: true\n  \
             listen: 127.0.0.1:9100\n"
        )));
        assert_eq!(
            all,
            ["test.yaml:9:11: key `health.listen`: is `metrics.listen` too, so one server answers \
              both: their TLS settings (`cert`, `key`, `clientcacert`, `tlsVersion`, `curves`, \
              `cipher`) must be the same"]
        );
        let both = loaded(yaml(&format!(
            "metrics: {{enable: true, listen: '127.0.0.1:9100', {tls}}}\nhealth: {{enable: true, \
             listen: '127.0.0.1:9100', {tls}}}\n"
        )));
        assert!(both.config.health.server.tls());
    }

    #[test]
    fn sections_that_are_off_are_not_validated_but_keys_are_checked() {
        // ContainerSSH writes every section into a file it saves; an off section keeps working.
        let config = loaded(yaml(
            "metrics:\n  enable: false\n  listen: nonsense\n  cert: /nonexistent\nhealth:\n  \
             enable: false\n  client:\n    url: ftp://x\n",
        ))
        .config;
        assert_eq!(
            config.metrics.server.listen,
            SocketAddr::from(([0, 0, 0, 0], 9100))
        );
        let all = messages(yaml("metrics:\n  enabel: true\n"));
        assert_eq!(all.len(), 1);
        assert!(
            all[0].starts_with("test.yaml:7:3: key `metrics.enabel`"),
            "{all:?}"
        );
        assert!(all[0].contains("did you mean `enable`?"), "{all:?}");
    }

    #[test]
    fn the_sections_round_trip_through_check_config() {
        let text = format!(
            "{MINIMAL}metrics:\n  enable: true\n  listen: 127.0.0.1:9101\nhealth:\n  \
             enable: true\n  tlsVersion: '1.2'\n  curves: [X25519]\n"
        );
        let config = loaded(parse_str(&text, Format::Yaml, "test.yaml")).config;
        let printed = config.to_yaml();
        let again = parse_str(&printed, Format::Yaml, "printed.yaml")
            .unwrap_or_else(|errors| panic!("{errors}\n---\n{printed}"));
        assert_eq!(again.config, config);
        assert_eq!(again.config.health.server.curves, ["x25519"]);
        assert_eq!(again.config.health.server.tls_version, TlsVersion::Tls12);
    }
}
