//! The certificate authority kube-sim generates at start-up, the server certificate it signs
//! (localhost, 127.0.0.1, ::1, plus the listen address), client certificates for kubeconfig
//! users, and the rustls configuration: client certificates requested, not required.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose, SanType,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};

use crate::auth::Identity;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("generating a certificate")]
    Generate(#[from] rcgen::Error),
    #[error("building the TLS configuration")]
    Config(#[from] rustls::Error),
    #[error("building the client certificate verifier")]
    Verifier(#[from] rustls::server::VerifierBuilderError),
}

/// A client certificate issued for a kubeconfig user.
pub struct ClientCert {
    pub cert_pem: String,
    pub key_pem: String,
}

/// The CA, the server's TLS configuration, and who each issued client certificate belongs to.
pub struct Pki {
    pub ca_pem: String,
    pub server_config: Arc<ServerConfig>,
    /// DER of every client certificate kube-sim issued, mapped to its subject.
    pub client_identities: HashMap<Vec<u8>, Identity>,
    issuer: CertifiedIssuer<'static, KeyPair>,
}

impl Pki {
    /// A CA with `ca_key` (a fresh key, or the one kept across restarts: the same key and
    /// name make a CA the clients' old copy still verifies) and a server certificate valid
    /// for `extra_ips` too.
    pub fn generate(extra_ips: &[IpAddr], ca_key: KeyPair) -> Result<Self, TlsError> {
        let mut ca = CertificateParams::default();
        ca.distinguished_name
            .push(DnType::CommonName, "kube-sim-ca");
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let issuer = CertifiedIssuer::self_signed(ca, ca_key)?;
        let ca_pem = issuer.pem();
        let ca_der = issuer.der().clone();

        let mut sans = vec![
            "localhost".to_owned(),
            "127.0.0.1".to_owned(),
            "::1".to_owned(),
        ];
        for ip in extra_ips {
            if !ip.is_unspecified() && !sans.contains(&ip.to_string()) {
                sans.push(ip.to_string());
            }
        }
        let mut server = CertificateParams::new(Vec::<String>::new())?;
        server.subject_alt_names = sans
            .iter()
            .map(|s| match s.parse::<IpAddr>() {
                Ok(ip) => Ok(SanType::IpAddress(ip)),
                Err(_) => s.clone().try_into().map(SanType::DnsName),
            })
            .collect::<Result<_, rcgen::Error>>()?;
        server
            .distinguished_name
            .push(DnType::CommonName, "kube-apiserver");
        server.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        server.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        let server_key = KeyPair::generate()?;
        let server_cert = server.signed_by(&server_key, &issuer)?;

        let mut roots = RootCertStore::empty();
        roots.add(ca_der.clone())?;
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let verifier =
            WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                .allow_unauthenticated()
                .build()?;
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_client_cert_verifier(verifier)
            .with_single_cert(
                vec![server_cert.der().clone(), ca_der],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(server_key.serialize_der())),
            )?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Self {
            ca_pem,
            server_config: Arc::new(config),
            client_identities: HashMap::new(),
            issuer,
        })
    }

    /// Issues a client certificate (CN = user, O = groups) and remembers whom it names.
    pub fn issue_client(&mut self, identity: Identity) -> Result<ClientCert, TlsError> {
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params
            .distinguished_name
            .push(DnType::CommonName, identity.user.as_str());
        for group in &identity.groups {
            params
                .distinguished_name
                .push(DnType::OrganizationName, group.as_str());
        }
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &self.issuer)?;
        self.client_identities.insert(cert.der().to_vec(), identity);
        Ok(ClientCert {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }
}

/// The identity of a verified peer certificate, if kube-sim issued it.
pub fn identity_of(
    identities: &HashMap<Vec<u8>, Identity>,
    peer: Option<&[CertificateDer<'_>]>,
) -> Option<Identity> {
    let leaf = peer?.first()?;
    identities.get(leaf.as_ref()).cloned()
}
