//! The TLS settings of a webhook client, built with rustls (aws-lc-rs): custom CA, client
//! certificate, lowest version, cipher suites and key-exchange groups. Server certificates are
//! always verified: against `cacert` when given, else against the system's trust store.

use std::sync::Arc;

use rustls::crypto::{aws_lc_rs, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ClientConfig, RootCertStore, SupportedCipherSuite};
use sshpod_config::{HttpClientConfig, TlsVersion};

use crate::BuildError;

/// Reads a PEM value that is either inline text or a file name.
fn pem_source(value: &str, what: &'static str) -> Result<Vec<u8>, BuildError> {
    if value.contains("-----BEGIN") {
        return Ok(value.as_bytes().to_vec());
    }
    std::fs::read(value).map_err(|source| BuildError::ReadFile {
        what,
        path: value.to_owned(),
        source,
    })
}

fn certificates(
    value: &str,
    what: &'static str,
) -> Result<Vec<CertificateDer<'static>>, BuildError> {
    let pem = pem_source(value, what)?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| BuildError::Pem {
            what,
            reason: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(BuildError::Pem {
            what,
            reason: "no certificate found".to_owned(),
        });
    }
    Ok(certs)
}

/// Whether a rustls suite is the one named (IANA name, `TLS_...`).
fn suite_named(suite: &SupportedCipherSuite, name: &str) -> bool {
    let own = format!("{:?}", suite.suite());
    own == name || own.replacen("TLS13_", "TLS_", 1) == name
}

/// A key-exchange group by its ContainerSSH name; `None` for one rustls does not offer
/// (secp521r1 is in ContainerSSH's default list).
fn group_named(name: &str) -> Option<&'static dyn rustls::crypto::SupportedKxGroup> {
    match name {
        "x25519" => Some(aws_lc_rs::kx_group::X25519),
        "secp256r1" => Some(aws_lc_rs::kx_group::SECP256R1),
        "secp384r1" => Some(aws_lc_rs::kx_group::SECP384R1),
        _ => None,
    }
}

/// Which list of [`restricted_provider`]'s leaves nothing rustls offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NothingOffered {
    /// None of the cipher suites.
    Cipher,
    /// None of the curves.
    Curves,
}

/// The aws-lc-rs crypto provider restricted to the named cipher suites (IANA names) and
/// curves, as ContainerSSH's `cipher` and `curves` settings name them, for TLS clients and
/// servers alike. An empty list keeps the provider's own; names rustls does not offer are
/// skipped, and a list of which none is offered is refused.
pub fn restricted_provider(
    cipher: &[String],
    curves: &[String],
) -> Result<CryptoProvider, NothingOffered> {
    let base = aws_lc_rs::default_provider();
    let cipher_suites: Vec<SupportedCipherSuite> = if cipher.is_empty() {
        base.cipher_suites.clone()
    } else {
        cipher
            .iter()
            .filter_map(|name| {
                aws_lc_rs::ALL_CIPHER_SUITES
                    .iter()
                    .find(|s| suite_named(s, name))
                    .copied()
            })
            .collect()
    };
    let kx_groups = if curves.is_empty() {
        base.kx_groups.clone()
    } else {
        curves.iter().filter_map(|name| group_named(name)).collect()
    };
    if cipher_suites.is_empty() {
        return Err(NothingOffered::Cipher);
    }
    if kx_groups.is_empty() {
        return Err(NothingOffered::Curves);
    }
    Ok(CryptoProvider {
        cipher_suites,
        kx_groups,
        ..base
    })
}

/// The crypto provider restricted to the configured suites and groups.
fn provider(config: &HttpClientConfig) -> Result<CryptoProvider, BuildError> {
    restricted_provider(&config.cipher, &config.curves).map_err(|nothing| {
        BuildError::Tls(match nothing {
            NothingOffered::Cipher => "none of the configured cipher suites is available".into(),
            NothingOffered::Curves => "none of the configured curves is available".into(),
        })
    })
}

/// The TLS versions `provider`'s suites allow, from `lowest` up (newest first); empty when
/// none does. For TLS clients and servers alike.
pub fn protocol_versions(
    provider: &CryptoProvider,
    lowest: TlsVersion,
) -> Vec<&'static rustls::SupportedProtocolVersion> {
    let offers = |tls13: bool| {
        provider
            .cipher_suites
            .iter()
            .any(|s| matches!(s, SupportedCipherSuite::Tls13(_)) == tls13)
    };
    let mut versions = Vec::new();
    if offers(true) {
        versions.push(&rustls::version::TLS13);
    }
    if offers(false) && lowest == TlsVersion::Tls12 {
        versions.push(&rustls::version::TLS12);
    }
    versions
}

/// The rustls client configuration for `config`.
pub(crate) fn client_config(config: &HttpClientConfig) -> Result<ClientConfig, BuildError> {
    let provider = Arc::new(provider(config)?);
    let versions = protocol_versions(&provider, config.tls_version);
    if versions.is_empty() {
        return Err(BuildError::Tls(
            "no configured cipher suite works with the configured TLS version".into(),
        ));
    }
    let builder = ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_protocol_versions(&versions)
        .map_err(|e| BuildError::Tls(e.to_string()))?;
    let builder = if config.cacert.is_empty() {
        use rustls_platform_verifier::BuilderVerifierExt;
        builder
            .with_platform_verifier()
            .map_err(|e| BuildError::Tls(e.to_string()))?
    } else {
        let mut roots = RootCertStore::empty();
        for cert in certificates(&config.cacert, "cacert")? {
            roots.add(cert).map_err(|e| BuildError::Pem {
                what: "cacert",
                reason: e.to_string(),
            })?;
        }
        builder.with_root_certificates(roots)
    };
    let mut tls = if config.cert.is_empty() {
        builder.with_no_client_auth()
    } else {
        let chain = certificates(&config.cert, "cert")?;
        let key_pem = pem_source(config.key.expose_secret(), "key")?;
        let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| BuildError::Pem {
            what: "key",
            reason: e.to_string(),
        })?;
        builder
            .with_client_auth_cert(chain, key)
            .map_err(|e| BuildError::Tls(format!("client certificate: {e}")))?
    };
    tls.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(tls)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> HttpClientConfig {
        HttpClientConfig {
            url: sshpod_config::ServiceUrl::new("https://x"),
            allow_redirects: false,
            timeout: std::time::Duration::from_secs(2),
            cacert: String::new(),
            cert: String::new(),
            key: sshpod_config::Secret::default(),
            tls_version: TlsVersion::Tls13,
            curves: vec!["x25519".into(), "secp521r1".into()],
            cipher: vec![
                "TLS_AES_128_GCM_SHA256".into(),
                "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256".into(),
            ],
        }
    }

    #[test]
    fn restricts_suites_and_groups() {
        let provider = provider(&base()).unwrap();
        let names: Vec<String> = provider
            .cipher_suites
            .iter()
            .map(|s| format!("{:?}", s.suite()))
            .collect();
        assert_eq!(
            names,
            [
                "TLS13_AES_128_GCM_SHA256",
                "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"
            ]
        );
        assert_eq!(provider.kx_groups.len(), 1);
    }

    #[test]
    fn version_and_suites_must_fit() {
        let mut config = base();
        config.cipher = vec!["TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256".into()];
        assert!(client_config(&config).is_err());
        config.tls_version = TlsVersion::Tls12;
        assert!(client_config(&config).is_ok());
    }

    #[test]
    fn unreadable_ca_is_an_error() {
        let mut config = base();
        config.cacert = "/nonexistent/ca.pem".into();
        let error = client_config(&config).unwrap_err();
        assert!(error.to_string().contains("/nonexistent/ca.pem"), "{error}");
    }
}
