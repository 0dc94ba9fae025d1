//! The key or certificate a login was made with, kept for the checks that last as long as the
//! connection: the certificate's expiry (`auth.publicKey.disconnectExpiredCert`) and the
//! revocation list (`auth.publicKey.revokedKeys`), which may change while the user works.

use std::time::SystemTime;

use russh::keys::ssh_key::public::KeyData;
use russh::keys::ssh_key::Certificate;
use russh::keys::PublicKey;
use sshpod_auth::{Revocation, RevokedKeys};

/// A login's key, and its certificate if it came in one.
#[derive(Debug, Clone)]
pub(crate) struct LoginKey {
    key: KeyData,
    certificate: Option<Box<Certificate>>,
    /// When the connection ends with its certificate (the certificate's `valid before`), if it
    /// does.
    expires: Option<SystemTime>,
}

impl LoginKey {
    /// A plain key.
    pub(crate) fn plain(key: &PublicKey) -> Self {
        Self {
            key: key.key_data().clone(),
            certificate: None,
            expires: None,
        }
    }

    /// A certificate (and the key it certifies).
    pub(crate) fn certificate(certificate: &Certificate) -> Self {
        Self {
            key: certificate.public_key().clone(),
            certificate: Some(Box::new(certificate.clone())),
            expires: None,
        }
    }

    /// The connection ends when the certificate expires (nothing for a plain key or a
    /// certificate valid forever).
    pub(crate) fn end_at_expiry(&mut self) {
        self.expires = self
            .certificate
            .as_ref()
            .filter(|c| c.valid_before() != u64::MAX)
            .and_then(|c| c.valid_before_time());
    }

    /// When the connection ends with its certificate, if it does.
    pub(crate) fn expires(&self) -> Option<SystemTime> {
        self.expires
    }

    /// What `list` revokes of this key or certificate (its key, the certificate by serial or
    /// key id, its CA). Blocking: may read the file.
    pub(crate) fn revocation(
        &self,
        list: &RevokedKeys,
    ) -> Result<Option<Revocation>, sshpod_auth::Error> {
        match &self.certificate {
            Some(certificate) => list.check_certificate(certificate),
            None => list.check_key(&self.key),
        }
    }

    /// What the user is told when `revocation` ends the connection.
    pub(crate) fn revoked_message(&self, revocation: Revocation) -> &'static str {
        match revocation {
            Revocation::CertificateAuthority => {
                "the authority that signed your certificate has been revoked"
            }
            _ if self.certificate.is_some() => "your certificate has been revoked",
            _ => "your key has been revoked",
        }
    }
}
