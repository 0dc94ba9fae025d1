//! The Kubernetes clients of the process, built from `kubernetes.connection`: one for the
//! connections, one for the instance Lease.
//!
//! Sources, in order: `kubeconfig` (with an optional context) when set; in-cluster
//! configuration when running in a pod and the connection names no credentials; otherwise the
//! ContainerSSH keys (host, CA, client certificate, bearer token, basic auth).

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use hyper_timeout::TimeoutConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use kube::client::retry::RetryPolicy;
use kube::client::{Body, ClientBuilder, ConfigExt};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::Client;
use secrecy::SecretString;
use sshpod_config::{KubernetesConnection, DEFAULT_KUBERNETES_HOST};
use sshpod_core::BackendError;
use tower::retry::RetryLayer;
use tower::util::BoxService;
use tower::{BoxError, ServiceBuilder, ServiceExt as _};

use crate::limiter::{RateLimitLayer, TokenBucket};
use crate::token_file::{TokenFile, TokenFileLayer};

/// The process's two clients, from one reading of the configuration.
pub(crate) struct Clients {
    /// For the connections' requests, which wait their turn in one `qps`/`burst` bucket.
    pub(crate) connections: Client,
    /// For the instance Lease's few requests a minute, outside the bucket: a renewal queued
    /// behind a burst of logins could come too late and cost the instance its pods.
    pub(crate) lease: Client,
}

/// What one of the process's clients sends its requests through.
type ConnectionStack =
    BoxService<http::Request<Body>, http::Response<hyper::body::Incoming>, BoxError>;

/// Builds the clients. Reads files named in the configuration; talks to nobody yet.
pub(crate) async fn build(
    conn: &KubernetesConnection,
    request_timeout: Duration,
) -> Result<Clients, BackendError> {
    let mut config = client_config(conn).await?;
    config.connect_timeout = Some(request_timeout);
    config.write_timeout = Some(request_timeout);
    let token_file = match (&conn.kubeconfig, &conn.bearer_token_file) {
        (None, Some(path)) => {
            let file = Arc::new(TokenFile::new(path));
            file.header().map_err(|e| {
                setting(
                    "kubernetes.connection.bearerTokenFile",
                    format!("cannot read `{path}`: {e}"),
                )
            })?;
            Some(file)
        }
        _ => None,
    };
    let bucket = Arc::new(TokenBucket::new(conn.qps, conn.burst));
    Ok(Clients {
        connections: client(config.clone(), Some(bucket), token_file.clone())?,
        lease: client(config, None, token_file)?,
    })
}

fn client(
    config: kube::Config,
    bucket: Option<Arc<TokenBucket>>,
    token_file: Option<Arc<TokenFile>>,
) -> Result<Client, BackendError> {
    let builder = ClientBuilder::new(stack(&config)?, config.default_namespace.clone())
        .with_layer(&RateLimitLayer::new(bucket));
    Ok(match token_file {
        Some(file) => builder.with_layer(&TokenFileLayer(file)).build(),
        None => builder.build(),
    })
}

/// kube's own stack (what `ClientBuilder::try_from` builds: base URI, retries of 429/503/504,
/// authentication, extra headers, TLS, timeouts), with one difference: its TCP connections
/// send each write at once. kube's connector leaves Nagle's algorithm on, so a small write
/// (a keystroke, an sftp request) behind one not yet acknowledged waited for the API server's
/// delayed acknowledgement, on every exec socket. Go's clients (`kubectl`) and the API server
/// itself turn it off.
fn stack(config: &kube::Config) -> Result<ConnectionStack, BackendError> {
    let settings = |e: kube::Error| setting("kubernetes.connection", format!("{e}"));
    if let Some(proxy) = &config.proxy_url {
        return Err(setting(
            "kubernetes.connection",
            format!("the kubeconfig names a proxy (`{proxy}`); sshpod connects to the API server directly"),
        ));
    }
    let tls = config
        .rustls_https_connector_with_connector(tcp_connector())
        .map_err(settings)?;
    let mut connector = TimeoutConnector::new(tls);
    connector.set_connect_timeout(config.connect_timeout);
    connector.set_read_timeout(config.read_timeout);
    connector.set_write_timeout(config.write_timeout);
    connector.set_reset_reader_on_write(config.reset_reader_on_write);
    let http = hyper_util::client::legacy::Builder::new(TokioExecutor::new()).build(connector);
    let retry = config
        .default_retry
        .then(|| RetryLayer::new(RetryPolicy::server_retry()));
    Ok(ServiceBuilder::new()
        .layer(config.base_uri_layer())
        .option_layer(retry)
        .option_layer(config.auth_layer().map_err(settings)?)
        .layer(config.extra_headers_layer().map_err(settings)?)
        .map_err(BoxError::from)
        .service(http)
        .boxed())
}

/// TCP connections for either scheme (TLS goes on top), each write sent at once.
fn tcp_connector() -> HttpConnector {
    let mut tcp = HttpConnector::new();
    tcp.enforce_http(false);
    tcp.set_nodelay(true);
    tcp
}

async fn client_config(conn: &KubernetesConnection) -> Result<kube::Config, BackendError> {
    if let Some(path) = &conn.kubeconfig {
        let kubeconfig = Kubeconfig::read_from(path).map_err(|e| {
            setting(
                "kubernetes.connection.kubeconfig",
                format!("cannot read `{path}`: {e}"),
            )
        })?;
        let options = KubeConfigOptions {
            context: conn.context.clone(),
            ..KubeConfigOptions::default()
        };
        return kube::Config::from_custom_kubeconfig(kubeconfig, &options)
            .await
            .map_err(|e| setting("kubernetes.connection.kubeconfig", format!("{path}: {e}")));
    }
    if names_no_credentials(conn) && std::env::var_os("KUBERNETES_SERVICE_HOST").is_some() {
        return kube::Config::incluster().map_err(|e| {
            setting(
                "kubernetes.connection",
                format!("in-cluster configuration: {e}"),
            )
        });
    }
    explicit_config(conn)
}

/// True when the connection is ContainerSSH's default: no host of its own and no credentials.
fn names_no_credentials(conn: &KubernetesConnection) -> bool {
    conn.host == DEFAULT_KUBERNETES_HOST
        && conn.cacert.is_none()
        && conn.cacert_file.is_none()
        && conn.cert.is_none()
        && conn.cert_file.is_none()
        && conn.bearer_token.is_none()
        && conn.bearer_token_file.is_none()
        && conn.username.is_none()
}

fn explicit_config(conn: &KubernetesConnection) -> Result<kube::Config, BackendError> {
    let url = cluster_url(&conn.host, &conn.path);
    let uri = url.parse::<http::Uri>().map_err(|e| {
        setting(
            "kubernetes.connection.host",
            format!("`{url}` is not a valid URL: {e}"),
        )
    })?;
    let mut config = kube::Config::new(uri);
    if let Some(pem) = &conn.cacert {
        config.root_cert = Some(pem_certificates(
            "kubernetes.connection.cacert",
            pem.as_bytes(),
        )?);
    } else if let Some(path) = &conn.cacert_file {
        let pem = std::fs::read(path).map_err(|e| {
            setting(
                "kubernetes.connection.cacertFile",
                format!("cannot read `{path}`: {e}"),
            )
        })?;
        config.root_cert = Some(pem_certificates("kubernetes.connection.cacertFile", &pem)?);
    }
    let auth = &mut config.auth_info;
    auth.username.clone_from(&conn.username);
    auth.password = conn
        .password
        .as_ref()
        .map(|p| SecretString::from(p.expose_secret().clone()));
    auth.token = conn
        .bearer_token
        .as_ref()
        .map(|t| SecretString::from(t.expose_secret().trim().to_owned()));
    // `bearerTokenFile` is applied by `TokenFileLayer`, which trims and follows rotation.
    let engine = base64::engine::general_purpose::STANDARD;
    auth.client_certificate.clone_from(&conn.cert_file);
    auth.client_certificate_data = conn.cert.as_ref().map(|pem| engine.encode(pem));
    auth.client_key.clone_from(&conn.key_file);
    auth.client_key_data = conn
        .key
        .as_ref()
        .map(|pem| SecretString::from(engine.encode(pem.expose_secret())));
    config.tls_server_name.clone_from(&conn.server_name);
    config.accept_invalid_certs = conn.insecure;
    Ok(config)
}

/// The cluster URL from ContainerSSH's `host` (a name, `name:port` or a URL) and `path` (the
/// core API path, `/api` unless the API server sits under a prefix).
pub(crate) fn cluster_url(host: &str, path: &str) -> String {
    let base = if host.contains("://") {
        host.trim_end_matches('/').to_owned()
    } else {
        format!("https://{host}")
    };
    let prefix = path.trim_end_matches('/');
    let prefix = prefix.strip_suffix("/api").unwrap_or(prefix);
    format!("{base}{prefix}")
}

fn pem_certificates(setting_name: &'static str, pem: &[u8]) -> Result<Vec<Vec<u8>>, BackendError> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::CertificateDer;
    let certs = CertificateDer::pem_slice_iter(pem)
        .map(|c| c.map(|c| c.to_vec()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| setting(setting_name, format!("not valid PEM: {e}")))?;
    if certs.is_empty() {
        return Err(setting(
            setting_name,
            "contains no PEM certificate".to_owned(),
        ));
    }
    Ok(certs)
}

fn setting(setting: &'static str, reason: String) -> BackendError {
    BackendError::Settings { setting, reason }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn connections_send_each_write_at_once() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let uri = format!("http://{}", listener.local_addr().unwrap());
        let io = tower::ServiceExt::oneshot(tcp_connector(), uri.parse().unwrap())
            .await
            .unwrap();
        assert!(io.inner().nodelay().unwrap());
    }

    #[test]
    fn a_kubeconfig_proxy_is_refused_by_name() {
        let mut config = kube::Config::new("https://10.0.0.1".parse().unwrap());
        config.proxy_url = Some("socks5://proxy:1080".parse().unwrap());
        let Err(error) = stack(&config) else {
            panic!("a proxy is refused");
        };
        assert!(error.to_string().contains("socks5://proxy:1080"), "{error}");
    }

    #[test]
    fn cluster_urls_follow_containerssh_host_and_path() {
        assert_eq!(
            cluster_url("kubernetes.default.svc", "/api"),
            "https://kubernetes.default.svc"
        );
        assert_eq!(
            cluster_url("10.0.0.1:6443", "/api"),
            "https://10.0.0.1:6443"
        );
        assert_eq!(
            cluster_url("https://k8s.example/", "/proxy/api"),
            "https://k8s.example/proxy"
        );
        assert_eq!(
            cluster_url("http://127.0.0.1:8001", ""),
            "http://127.0.0.1:8001"
        );
    }

    #[test]
    fn explicit_settings_reach_the_client_configuration() {
        let conn = KubernetesConnection {
            host: "127.0.0.1:6443".into(),
            bearer_token: Some(sshpod_config::Secret::new("abc\n".into())),
            server_name: Some("kubernetes".into()),
            ..KubernetesConnection::default()
        };
        let config = explicit_config(&conn).unwrap();
        assert_eq!(config.cluster_url.to_string(), "https://127.0.0.1:6443/");
        assert_eq!(config.tls_server_name.as_deref(), Some("kubernetes"));
        use secrecy::ExposeSecret;
        assert_eq!(
            config.auth_info.token.as_ref().unwrap().expose_secret(),
            "abc"
        );
        assert!(!config.accept_invalid_certs);
    }

    #[test]
    fn basic_auth_reaches_the_client_configuration() {
        // Kubernetes 1.19 removed basic authentication from the API server (kube-sim follows
        // it), so this is checked here rather than end to end.
        let conn = KubernetesConnection {
            host: "127.0.0.1:6443".into(),
            username: Some("admin".into()),
            password: Some(sshpod_config::Secret::new("pw".into())),
            ..KubernetesConnection::default()
        };
        let config = explicit_config(&conn).unwrap();
        use secrecy::ExposeSecret;
        assert_eq!(config.auth_info.username.as_deref(), Some("admin"));
        assert_eq!(
            config.auth_info.password.as_ref().unwrap().expose_secret(),
            "pw"
        );
    }

    #[test]
    fn a_ca_without_certificates_is_refused() {
        let conn = KubernetesConnection {
            host: "127.0.0.1:6443".into(),
            cacert: Some("not pem".into()),
            ..KubernetesConnection::default()
        };
        let err = explicit_config(&conn).unwrap_err();
        assert_eq!(
            err.to_string(),
            "kubernetes.connection.cacert: contains no PEM certificate"
        );
    }
}
