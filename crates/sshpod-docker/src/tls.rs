//! TLS to a Docker engine on TCP started with `--tlsverify`: the configured CA is the only
//! trust anchor (no system roots), and sshpod authenticates with its client certificate.
//!
//! One `rustls` configuration serves both paths to the engine: bollard's API calls (through a
//! custom hyper transport) and the hijacked exec/attach streams.

use std::io;
use std::sync::Arc;

use bollard::Docker;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, RootCertStore};
use sshpod_config::DockerConnection;
use sshpod_core::BackendError;
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

/// The TLS side of an engine address: who the engine must prove to be, and how we prove who
/// we are.
#[derive(Clone)]
pub(crate) struct EngineTls {
    config: Arc<ClientConfig>,
    server_name: ServerName<'static>,
}

impl std::fmt::Debug for EngineTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EngineTls")
            .field("server_name", &self.server_name)
            .finish_non_exhaustive()
    }
}

impl EngineTls {
    /// Builds the client configuration from `docker.connection` for the engine at
    /// `authority` (`host:port`).
    pub(crate) fn new(conn: &DockerConnection, authority: &str) -> Result<Self, BackendError> {
        let (Some(cacert), Some(cert), Some(key)) = (&conn.cacert, &conn.cert, &conn.key) else {
            return Err(settings_error(
                "docker.connection",
                "TLS needs `cacert`, `cert` and `key` together".to_owned(),
            ));
        };
        let roots = root_store(&pem_bytes("docker.connection.cacert", cacert)?)?;
        let chain = certificate_chain(&pem_bytes("docker.connection.cert", cert)?)?;
        let key = private_key(&pem_bytes("docker.connection.key", key.expose_secret())?)?;
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| settings_error("docker.connection", e.to_string()))?
            .with_root_certificates(roots)
            .with_client_auth_cert(chain, key)
            .map_err(|e| {
                settings_error(
                    "docker.connection.key",
                    format!("does not match the client certificate: {e}"),
                )
            })?;
        // No session resumption: OpenSSL-based TLS fronts that verify client certificates
        // abort resumed handshakes unless configured with a session id context, and a full
        // handshake per exec costs well under a millisecond.
        config.resumption = rustls::client::Resumption::disabled();
        Ok(Self {
            config: Arc::new(config),
            server_name: server_name(authority)?,
        })
    }

    /// Wraps a connected TCP socket in TLS, verifying the engine's certificate.
    pub(crate) async fn connect(&self, tcp: TcpStream) -> io::Result<TlsStream<TcpStream>> {
        TlsConnector::from(Arc::clone(&self.config))
            .connect(self.server_name.clone(), tcp)
            .await
    }

    /// A bollard client that speaks HTTPS to `authority` with this configuration.
    pub(crate) fn docker_client(
        &self,
        authority: &str,
        timeout_secs: u64,
    ) -> Result<Docker, bollard::errors::Error> {
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config((*self.config).clone())
            .https_only()
            .enable_http1()
            .wrap_connector(http);
        let client = Arc::new(Client::builder(TokioExecutor::new()).build(https));
        Docker::connect_with_custom_transport(
            move |request: bollard::BollardRequest| {
                let client = Arc::clone(&client);
                async move {
                    client
                        .request(request)
                        .await
                        .map_err(bollard::errors::Error::from)
                }
            },
            Some(format!("https://{authority}")),
            timeout_secs,
            bollard::API_DEFAULT_VERSION,
        )
    }
}

fn settings_error(setting: &'static str, reason: String) -> BackendError {
    BackendError::Settings { setting, reason }
}

/// The PEM text of a setting that holds either the PEM itself or a path to a file with it
/// (as in ContainerSSH).
fn pem_bytes(setting: &'static str, value: &str) -> Result<Vec<u8>, BackendError> {
    if value.contains("-----BEGIN ") {
        return Ok(value.as_bytes().to_vec());
    }
    std::fs::read(value).map_err(|e| settings_error(setting, format!("cannot read `{value}`: {e}")))
}

fn root_store(pem: &[u8]) -> Result<RootCertStore, BackendError> {
    let mut roots = RootCertStore::empty();
    for cert in certificates("docker.connection.cacert", pem)? {
        roots.add(cert).map_err(|e| {
            settings_error(
                "docker.connection.cacert",
                format!("not a usable CA certificate: {e}"),
            )
        })?;
    }
    Ok(roots)
}

fn certificate_chain(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, BackendError> {
    certificates("docker.connection.cert", pem)
}

fn certificates(
    setting: &'static str,
    pem: &[u8],
) -> Result<Vec<CertificateDer<'static>>, BackendError> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| settings_error(setting, format!("not valid PEM: {e}")))?;
    if certs.is_empty() {
        return Err(settings_error(
            setting,
            "contains no PEM certificate".to_owned(),
        ));
    }
    Ok(certs)
}

fn private_key(pem: &[u8]) -> Result<PrivateKeyDer<'static>, BackendError> {
    // The error text of a failed key parse may quote key material: say only what failed.
    PrivateKeyDer::from_pem_slice(pem).map_err(|_| {
        settings_error(
            "docker.connection.key",
            "contains no PEM private key (PKCS#8, PKCS#1 or SEC1)".to_owned(),
        )
    })
}

/// The name the engine's certificate must carry: the host part of `host:port` (an IP
/// address or a DNS name; brackets around IPv6 addresses are removed).
fn server_name(authority: &str) -> Result<ServerName<'static>, BackendError> {
    let host = match authority.rsplit_once(':') {
        Some((host, port)) if port.chars().all(|c| c.is_ascii_digit()) => host,
        _ => authority,
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    ServerName::try_from(host.to_owned()).map_err(|_| {
        settings_error(
            "docker.connection.host",
            format!("`{host}` is not a valid host name for TLS"),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_names_come_from_the_host_part() {
        assert_eq!(
            format!("{:?}", server_name("127.0.0.1:2376").unwrap()),
            format!("{:?}", ServerName::try_from("127.0.0.1").unwrap())
        );
        assert_eq!(
            format!("{:?}", server_name("docker.example:2376").unwrap()),
            format!("{:?}", ServerName::try_from("docker.example").unwrap())
        );
        assert_eq!(
            format!("{:?}", server_name("[::1]:2376").unwrap()),
            format!("{:?}", ServerName::try_from("::1").unwrap())
        );
        assert!(server_name("bad host:1").is_err());
    }

    #[test]
    fn pem_settings_accept_inline_text_or_a_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ca.pem");
        std::fs::write(&path, "-----BEGIN CERTIFICATE-----\n").unwrap();
        let inline = "-----BEGIN CERTIFICATE-----\nabc\n-----END CERTIFICATE-----\n";
        assert_eq!(
            pem_bytes("docker.connection.cacert", inline).unwrap(),
            inline.as_bytes()
        );
        assert_eq!(
            pem_bytes("docker.connection.cacert", path.to_str().unwrap()).unwrap(),
            b"-----BEGIN CERTIFICATE-----\n"
        );
        let missing = pem_bytes("docker.connection.cacert", "/nonexistent/ca.pem").unwrap_err();
        assert!(missing
            .to_string()
            .starts_with("docker.connection.cacert: cannot read `/nonexistent/ca.pem`"));
    }

    #[test]
    fn unusable_pem_is_named_by_its_setting() {
        let err = certificates("docker.connection.cert", b"no pem here").unwrap_err();
        assert_eq!(
            err.to_string(),
            "docker.connection.cert: contains no PEM certificate"
        );
        let err = private_key(b"-----BEGIN CERTIFICATE-----\n").unwrap_err();
        assert!(err.to_string().starts_with("docker.connection.key: "));
    }
}
