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

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::process::Command;
    use std::time::{Duration, UNIX_EPOCH};

    use super::*;

    fn keygen(dir: &Path, args: &[&str]) {
        let status = Command::new("ssh-keygen")
            .args(args)
            .current_dir(dir)
            .stdin(std::process::Stdio::null())
            .status()
            .unwrap_or_else(|e| panic!("ssh-keygen: {e}"));
        assert!(status.success(), "ssh-keygen {args:?}");
    }

    /// A fresh key `name` certified by `ca` for `validity` (`ssh-keygen -V`), with serial 7.
    fn certificate(dir: &Path, name: &str, validity: &str) -> Certificate {
        keygen(dir, &["-q", "-t", "ed25519", "-N", "", "-f", name]);
        let public = format!("{name}.pub");
        let args = ["-q", "-s", "ca", "-I", name, "-n", "alice", "-z", "7"];
        let mut args = args.to_vec();
        args.extend(["-V", validity, &public]);
        keygen(dir, &args);
        Certificate::read_file(&dir.join(format!("{name}-cert.pub")))
            .unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn a_certificate_ends_the_connection_at_its_valid_before_if_asked() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let d = dir.path();
        keygen(d, &["-q", "-t", "ed25519", "-N", "", "-f", "ca"]);
        let dated = certificate(d, "dated", "20300101000000Z:20300601000000Z");
        let mut key = LoginKey::certificate(&dated);
        assert_eq!(key.expires(), None, "only when the configuration asks");
        key.end_at_expiry();
        // 2030-06-01T00:00:00Z
        assert_eq!(
            key.expires(),
            Some(UNIX_EPOCH + Duration::from_secs(1_906_502_400))
        );

        let forever = certificate(d, "forever", "always:forever");
        let mut key = LoginKey::certificate(&forever);
        key.end_at_expiry();
        assert_eq!(key.expires(), None, "a certificate valid forever");

        let plain = PublicKey::from(dated.public_key().clone());
        let mut key = LoginKey::plain(&plain);
        key.end_at_expiry();
        assert_eq!(key.expires(), None, "a plain key");
    }

    #[test]
    fn a_revoked_serial_or_key_is_found_and_named() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let d = dir.path();
        keygen(d, &["-q", "-t", "ed25519", "-N", "", "-f", "ca"]);
        let cert = certificate(d, "student", "-1h:+1h");
        let list = RevokedKeys::new(d.join("revoked.krl"));
        keygen(d, &["-q", "-k", "-f", "revoked.krl"]);
        let by_certificate = LoginKey::certificate(&cert);
        let by_key = LoginKey::plain(&PublicKey::from(cert.public_key().clone()));
        for key in [&by_certificate, &by_key] {
            assert_eq!(
                key.revocation(&list).unwrap_or_else(|e| panic!("{e}")),
                None
            );
        }

        std::fs::write(d.join("spec"), "serial: 7\n").unwrap_or_else(|e| panic!("{e}"));
        keygen(
            d,
            &[
                "-q",
                "-k",
                "-u",
                "-s",
                "ca.pub",
                "-f",
                "revoked.krl",
                "spec",
            ],
        );
        let revocation = by_certificate
            .revocation(&list)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(revocation, Some(Revocation::Certificate));
        assert_eq!(
            by_certificate.revoked_message(Revocation::Certificate),
            "your certificate has been revoked"
        );
        assert_eq!(
            by_key.revocation(&list).unwrap_or_else(|e| panic!("{e}")),
            None,
            "the serial revokes the certificate, not its key used alone"
        );

        keygen(d, &["-q", "-k", "-u", "-f", "revoked.krl", "student.pub"]);
        assert_eq!(
            by_key.revocation(&list).unwrap_or_else(|e| panic!("{e}")),
            Some(Revocation::Key)
        );
        assert_eq!(
            by_key.revoked_message(Revocation::Key),
            "your key has been revoked"
        );
        assert_eq!(
            by_certificate.revoked_message(Revocation::CertificateAuthority),
            "the authority that signed your certificate has been revoked"
        );
    }
}
