//! HTTPS for the recordings page: the server's certificate and key, and client certificates
//! required and verified against `clientcacert` when it is set (a client without one is turned
//! away during the handshake, before any request is read).
//!
//! Each PEM value is inline text or a file name, as in the rest of the configuration.

use std::sync::Arc;

use anyhow::{bail, Context, Result};
use rustls::crypto::aws_lc_rs;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use sshpod_config::AuditWebConfig;

/// Reads a PEM value that is either inline text or a file name.
fn pem(value: &str, what: &str) -> Result<Vec<u8>> {
    if value.contains("-----BEGIN") {
        return Ok(value.as_bytes().to_vec());
    }
    std::fs::read(value).with_context(|| format!("reading audit.web.{what} from {value}"))
}

fn certificates(value: &str, what: &str) -> Result<Vec<CertificateDer<'static>>> {
    let certificates = CertificateDer::pem_slice_iter(&pem(value, what)?)
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("audit.web.{what}: reading PEM certificates"))?;
    if certificates.is_empty() {
        bail!("audit.web.{what}: no certificate found");
    }
    Ok(certificates)
}

/// The TLS configuration `config` asks for; `None` for plain HTTP (no `cert` and `key`).
pub(super) fn server_config(config: &AuditWebConfig) -> Result<Option<Arc<ServerConfig>>> {
    match (config.cert.is_empty(), config.key.is_empty()) {
        (true, true) if config.clientcacert.is_empty() => return Ok(None),
        (true, true) => bail!(
            "audit.web.clientcacert needs cert and key: client certificates are checked over HTTPS"
        ),
        (false, false) => {}
        _ => bail!("audit.web needs both cert and key for HTTPS (only one is set)"),
    }
    let provider = Arc::new(aws_lc_rs::default_provider());
    let builder = ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .context("audit.web: TLS versions")?;
    let builder = if config.clientcacert.is_empty() {
        builder.with_no_client_auth()
    } else {
        let mut roots = RootCertStore::empty();
        for certificate in certificates(&config.clientcacert, "clientcacert")? {
            roots
                .add(certificate)
                .context("audit.web.clientcacert: not a usable CA certificate")?;
        }
        let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
            .build()
            .context("audit.web.clientcacert: building the client certificate check")?;
        builder.with_client_cert_verifier(verifier)
    };
    let chain = certificates(&config.cert, "cert")?;
    let key = PrivateKeyDer::from_pem_slice(&pem(&config.key, "key")?)
        .context("audit.web.key: reading a PEM private key")?;
    let mut tls = builder
        .with_single_cert(chain, key)
        .context("audit.web: the certificate does not go with the key")?;
    tls.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Some(Arc::new(tls)))
}
