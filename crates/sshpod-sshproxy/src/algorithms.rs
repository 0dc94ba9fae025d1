//! The algorithms the proxy offers upstream, from `sshproxy.ciphers`, `kex`, `macs` and
//! `hostKeyAlgos`: configuration names to russh's, and nothing beyond the lists.

use std::borrow::Cow;

use russh::keys::{Algorithm, EcdsaCurve, HashAlg};
use russh::{kex, Preferred};
use sshpod_config::{HostKeyAlgo, SshProxyConfig};
use sshpod_russh::algorithms;

/// What the proxy offers in its key exchange with the upstream server.
pub(crate) fn preferred(config: &SshProxyConfig) -> Preferred {
    let mut kexes: Vec<kex::Name> = config
        .kex
        .iter()
        .filter_map(|k| algorithms::kex(*k))
        .collect();
    // Not algorithms: markers that ask for extension negotiation and the strict key exchange
    // (the Terrapin fix), which every upstream connection wants.
    kexes.push(kex::EXTENSION_SUPPORT_AS_CLIENT);
    kexes.push(kex::EXTENSION_OPENSSH_STRICT_KEX_AS_CLIENT);
    let (keys, certificates) = host_keys(&config.host_key_algos);
    Preferred {
        kex: Cow::Owned(kexes),
        key: Cow::Owned(keys),
        host_key_certificates: Cow::Owned(certificates),
        cipher: Cow::Owned(
            config
                .ciphers
                .iter()
                .filter_map(|c| algorithms::cipher(*c))
                .collect(),
        ),
        mac: Cow::Owned(
            config
                .macs
                .iter()
                .filter_map(|m| algorithms::mac(*m))
                .collect(),
        ),
        compression: Cow::Borrowed(&[russh::compression::NONE]),
    }
}

/// Plain host key algorithms, and those whose certificates are accepted, in the configured
/// order. `ssh-rsa` stands for an RSA key with SHA-2 signatures; DSA is never offered.
pub(crate) fn host_keys(algos: &[HostKeyAlgo]) -> (Vec<Algorithm>, Vec<Algorithm>) {
    let rsa = |hash| Algorithm::Rsa { hash: Some(hash) };
    let ecdsa = |curve| Algorithm::Ecdsa { curve };
    let mut keys = Vec::new();
    let mut certificates = Vec::new();
    for algo in algos {
        let (list, found): (&mut Vec<Algorithm>, Vec<Algorithm>) = match algo {
            HostKeyAlgo::Ed25519 => (&mut keys, vec![Algorithm::Ed25519]),
            HostKeyAlgo::EcdsaNistp256 => (&mut keys, vec![ecdsa(EcdsaCurve::NistP256)]),
            HostKeyAlgo::EcdsaNistp384 => (&mut keys, vec![ecdsa(EcdsaCurve::NistP384)]),
            HostKeyAlgo::EcdsaNistp521 => (&mut keys, vec![ecdsa(EcdsaCurve::NistP521)]),
            HostKeyAlgo::RsaSha512 => (&mut keys, vec![rsa(HashAlg::Sha512)]),
            HostKeyAlgo::RsaSha256 => (&mut keys, vec![rsa(HashAlg::Sha256)]),
            HostKeyAlgo::Rsa => (&mut keys, vec![rsa(HashAlg::Sha512), rsa(HashAlg::Sha256)]),
            HostKeyAlgo::Ed25519Cert => (&mut certificates, vec![Algorithm::Ed25519]),
            HostKeyAlgo::EcdsaNistp256Cert => {
                (&mut certificates, vec![ecdsa(EcdsaCurve::NistP256)])
            }
            HostKeyAlgo::EcdsaNistp384Cert => {
                (&mut certificates, vec![ecdsa(EcdsaCurve::NistP384)])
            }
            HostKeyAlgo::EcdsaNistp521Cert => {
                (&mut certificates, vec![ecdsa(EcdsaCurve::NistP521)])
            }
            HostKeyAlgo::RsaCert => (
                &mut certificates,
                vec![rsa(HashAlg::Sha512), rsa(HashAlg::Sha256)],
            ),
            // DSA (and any name added later) is accepted in the file and never offered.
            _ => continue,
        };
        for algorithm in found {
            if !list.contains(&algorithm) {
                list.push(algorithm);
            }
        }
    }
    (keys, certificates)
}

#[cfg(test)]
mod tests {
    use super::*;
    use sshpod_config::{Cipher, Kex, Mac};

    #[test]
    fn only_the_configured_algorithms_are_offered() {
        let config = SshProxyConfig {
            ciphers: vec![Cipher::Aes128Ctr],
            kex: vec![Kex::EcdhSha2Nistp256],
            macs: vec![Mac::HmacSha512],
            host_key_algos: vec![HostKeyAlgo::Ed25519],
            ..SshProxyConfig::default()
        };
        let preferred = preferred(&config);
        let names = |list: Vec<&str>| list.join(",");
        assert_eq!(
            names(preferred.kex.iter().map(AsRef::as_ref).collect()),
            "ecdh-sha2-nistp256,ext-info-c,kex-strict-c-v00@openssh.com"
        );
        assert_eq!(
            names(preferred.cipher.iter().map(AsRef::as_ref).collect()),
            "aes128-ctr"
        );
        assert_eq!(
            names(preferred.mac.iter().map(AsRef::as_ref).collect()),
            "hmac-sha2-512"
        );
        assert_eq!(preferred.key.as_ref(), [Algorithm::Ed25519]);
        assert!(preferred.host_key_certificates.is_empty());
    }

    #[test]
    fn containerssh_host_key_defaults_map_to_safe_algorithms() {
        let (keys, certificates) = host_keys(HostKeyAlgo::DEFAULT);
        // `ssh-rsa` is an RSA key with SHA-2 signatures; `ssh-dss` is never offered.
        assert_eq!(
            keys,
            [
                Algorithm::Rsa {
                    hash: Some(HashAlg::Sha512)
                },
                Algorithm::Rsa {
                    hash: Some(HashAlg::Sha256)
                },
                Algorithm::Ed25519,
            ]
        );
        assert!(!keys.iter().any(|k| matches!(k, Algorithm::Dsa)));
        assert_eq!(certificates.len(), 6, "{certificates:?}");
        assert_eq!(certificates.last(), Some(&Algorithm::Ed25519));
    }
}
