//! HTTPS for sshpod's HTTP servers (the recordings page, metrics, health): the server's
//! certificate and key, the lowest TLS version, the cipher suites and curves, and client
//! certificates required and verified against `clientcacert` when it is set (a client without
//! one is turned away during the handshake, before any request is read).
//!
//! Each PEM value is inline text or a file name, as in the rest of the configuration.

use std::sync::Arc;

use anyhow::{anyhow, bail, Context, Result};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig, SupportedProtocolVersion};
use sshpod_config::{HttpServerConfig, TlsVersion};
use sshpod_webhook::NothingOffered;

/// The TLS settings of one server, with the configuration section they come from (for
/// messages).
#[derive(Debug, Clone, Copy)]
pub(crate) struct ServerTls<'a> {
    /// The section, such as `metrics` or `audit.web`.
    pub(crate) section: &'a str,
    pub(crate) cert: &'a str,
    pub(crate) key: &'a str,
    pub(crate) clientcacert: &'a str,
    /// The lowest version; `None`: rustls's safe defaults (1.2 and 1.3).
    pub(crate) tls_version: Option<TlsVersion>,
    /// Curves by canonical name; empty: the provider's.
    pub(crate) curves: &'a [String],
    /// Cipher suites by IANA name; empty: the provider's.
    pub(crate) cipher: &'a [String],
}

impl<'a> ServerTls<'a> {
    /// The settings of ContainerSSH's HTTP server block in `section`.
    pub(crate) fn of_block(section: &'a str, block: &'a HttpServerConfig) -> Self {
        Self {
            section,
            cert: &block.cert,
            key: &block.key,
            clientcacert: &block.clientcacert,
            tls_version: Some(block.tls_version),
            curves: &block.curves,
            cipher: &block.cipher,
        }
    }
}

/// Reads a PEM value that is either inline text or a file name.
fn pem(value: &str, section: &str, what: &str) -> Result<Vec<u8>> {
    if value.contains("-----BEGIN") {
        return Ok(value.as_bytes().to_vec());
    }
    std::fs::read(value).with_context(|| format!("reading {section}.{what} from {value}"))
}

fn certificates(value: &str, section: &str, what: &str) -> Result<Vec<CertificateDer<'static>>> {
    let certificates = CertificateDer::pem_slice_iter(&pem(value, section, what)?)
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("{section}.{what}: reading PEM certificates"))?;
    if certificates.is_empty() {
        bail!("{section}.{what}: no certificate found");
    }
    Ok(certificates)
}

/// The crypto provider restricted to the configured suites and curves.
fn provider(settings: &ServerTls<'_>) -> Result<CryptoProvider> {
    sshpod_webhook::restricted_provider(settings.cipher, settings.curves).map_err(|nothing| {
        match nothing {
            NothingOffered::Cipher => anyhow!(
                "{}.cipher: none of the configured cipher suites is available",
                settings.section
            ),
            NothingOffered::Curves => anyhow!(
                "{}.curves: none of the configured curves is available",
                settings.section
            ),
        }
    })
}

/// The protocol versions the suites and the lowest version allow.
fn versions(
    provider: &CryptoProvider,
    settings: &ServerTls<'_>,
) -> Result<Vec<&'static SupportedProtocolVersion>> {
    // Unset: TLS 1.2 and newer, as the suites allow.
    let lowest = settings.tls_version.unwrap_or(TlsVersion::Tls12);
    let versions = sshpod_webhook::protocol_versions(provider, lowest);
    if versions.is_empty() {
        bail!(
            "{}: no configured cipher suite works with the configured TLS version",
            settings.section
        );
    }
    Ok(versions)
}

/// The TLS configuration `settings` ask for; `None` for plain HTTP (no `cert` and `key`).
pub(crate) fn server_config(settings: &ServerTls<'_>) -> Result<Option<Arc<ServerConfig>>> {
    let section = settings.section;
    match (settings.cert.is_empty(), settings.key.is_empty()) {
        (true, true) if settings.clientcacert.is_empty() => return Ok(None),
        (true, true) => bail!(
            "{section}.clientcacert needs cert and key: client certificates are checked over HTTPS"
        ),
        (false, false) => {}
        _ => bail!("{section} needs both cert and key for HTTPS (only one is set)"),
    }
    let provider = Arc::new(provider(settings)?);
    let builder = ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_protocol_versions(&versions(&provider, settings)?)
        .with_context(|| format!("{section}: TLS versions"))?;
    let builder = if settings.clientcacert.is_empty() {
        builder.with_no_client_auth()
    } else {
        let mut roots = RootCertStore::empty();
        for certificate in certificates(settings.clientcacert, section, "clientcacert")? {
            roots
                .add(certificate)
                .with_context(|| format!("{section}.clientcacert: not a usable CA certificate"))?;
        }
        let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
            .build()
            .with_context(|| {
                format!("{section}.clientcacert: building the client certificate check")
            })?;
        builder.with_client_cert_verifier(verifier)
    };
    let chain = certificates(settings.cert, section, "cert")?;
    let key = PrivateKeyDer::from_pem_slice(&pem(settings.key, section, "key")?)
        .with_context(|| format!("{section}.key: reading a PEM private key"))?;
    let mut tls = builder
        .with_single_cert(chain, key)
        .with_context(|| format!("{section}: the certificate does not go with the key"))?;
    tls.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Some(Arc::new(tls)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings<'a>(cipher: &'a [String], version: Option<TlsVersion>) -> ServerTls<'a> {
        ServerTls {
            section: "metrics",
            cert: "",
            key: "",
            clientcacert: "",
            tls_version: version,
            curves: &[],
            cipher,
        }
    }

    #[test]
    fn suites_and_the_lowest_version_decide_the_versions() {
        let only12 = ["TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256".to_owned()];
        let both = [
            "TLS_AES_128_GCM_SHA256".to_owned(),
            "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256".to_owned(),
        ];
        let count = |cipher: &[String], version| {
            let s = settings(cipher, version);
            provider(&s).and_then(|p| versions(&p, &s)).map(|v| v.len())
        };
        assert_eq!(count(&both, Some(TlsVersion::Tls13)).ok(), Some(1));
        assert_eq!(count(&both, Some(TlsVersion::Tls12)).ok(), Some(2));
        assert_eq!(count(&both, None).ok(), Some(2));
        let refused = count(&only12, Some(TlsVersion::Tls13))
            .err()
            .map(|e| e.to_string());
        assert_eq!(
            refused.as_deref(),
            Some("metrics: no configured cipher suite works with the configured TLS version")
        );
    }

    #[test]
    fn plain_http_without_a_certificate() {
        assert!(matches!(server_config(&settings(&[], None)), Ok(None)));
    }
}
