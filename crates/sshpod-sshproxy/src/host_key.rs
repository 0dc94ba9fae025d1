//! Trusting the upstream server: its host key must be one of `sshproxy.allowedHostKeyFingerprints`.
//! There is no trust on first use and no known_hosts file; a certificate is judged by the key it
//! certifies, since the fingerprint pins that key.

use std::sync::{Arc, OnceLock};

use russh::keys::PublicKeyOrCertificate;
use russh::keys::{HashAlg, PublicKey};
use sshpod_config::Fingerprint;

/// The SHA256 fingerprint of a key as `ssh-keygen -l` prints it.
pub(crate) fn fingerprint(key: &PublicKey) -> String {
    key.fingerprint(HashAlg::Sha256).to_string()
}

/// The key a server presented: the key itself, or the one its certificate certifies.
fn presented_key(presented: &PublicKeyOrCertificate) -> PublicKey {
    match presented {
        PublicKeyOrCertificate::PublicKey { key, .. } => key.clone(),
        PublicKeyOrCertificate::Certificate(certificate) => {
            PublicKey::from(certificate.public_key().clone())
        }
    }
}

/// Judges the host key the upstream server presents.
#[derive(Debug)]
pub(crate) struct HostKeyCheck {
    allowed: Vec<Fingerprint>,
    /// The fingerprint of a key that was refused, for the error the login gets.
    refused: Arc<OnceLock<String>>,
}

impl HostKeyCheck {
    /// A check against `allowed`, and where it leaves the fingerprint of a refused key.
    pub(crate) fn new(allowed: Vec<Fingerprint>) -> (Self, Arc<OnceLock<String>>) {
        let refused = Arc::new(OnceLock::new());
        let check = Self {
            allowed,
            refused: Arc::clone(&refused),
        };
        (check, refused)
    }

    /// Whether the presented key is trusted; a refused key's fingerprint is kept.
    pub(crate) fn judge(&self, presented: &PublicKeyOrCertificate) -> bool {
        let fingerprint = fingerprint(&presented_key(presented));
        let trusted = self.allowed.iter().any(|f| f.as_str() == fingerprint);
        if !trusted {
            let _ = self.refused.set(fingerprint);
        }
        trusted
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two Ed25519 keys made for these tests; the first's fingerprint as `ssh-keygen -l`
    /// prints it.
    const TRUSTED: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGAFctpXVDZxTj+KzhBVR06RuhZE9AofoQy+PMyloEL+";
    const TRUSTED_FINGERPRINT: &str = "SHA256:MbGuM3U0iq9MGi0aCrY12m1iStLpXHtR9TSbGJLGmiE";
    const OTHER: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIG1KS1868r5pd/zOWPK7A/SCL0VAY2HPHJRJYnx75TKz";

    fn key(text: &str) -> PublicKey {
        PublicKey::from_openssh(text).unwrap_or_else(|e| panic!("{e}"))
    }

    fn presented(key: &PublicKey) -> PublicKeyOrCertificate {
        PublicKeyOrCertificate::PublicKey {
            key: key.clone(),
            hash_alg: None,
        }
    }

    fn allowed(key: &PublicKey) -> Fingerprint {
        match Fingerprint::parse(&fingerprint(key)) {
            Ok(f) => f,
            Err(e) => panic!("{e}"),
        }
    }

    #[test]
    fn only_listed_keys_are_trusted() {
        let (trusted, other) = (key(TRUSTED), key(OTHER));
        let (check, refused) = HostKeyCheck::new(vec![allowed(&trusted)]);
        assert!(check.judge(&presented(&trusted)));
        assert_eq!(refused.get(), None);
        assert!(!check.judge(&presented(&other)));
        assert_eq!(refused.get(), Some(&fingerprint(&other)));
    }

    #[test]
    fn nothing_is_trusted_on_first_use() {
        let (check, _) = HostKeyCheck::new(Vec::new());
        assert!(!check.judge(&presented(&key(TRUSTED))));
    }

    #[test]
    fn fingerprints_read_as_ssh_keygen_prints_them() {
        assert_eq!(fingerprint(&key(TRUSTED)), TRUSTED_FINGERPRINT);
    }
}
