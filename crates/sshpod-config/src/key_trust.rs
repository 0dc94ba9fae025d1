//! `auth.publicKey` settings named after sshd_config's: trusted user CAs
//! (`trustedUserCAKeys`), principals files (`authorizedPrincipalsFile`) and revoked keys
//! (`revokedKeys`); and how long a login lasts with them: sessions end when their certificate
//! expires (`disconnectExpiredCert`, Teleport's name) or their key is revoked (checked again
//! every `revokedKeysCheckInterval`). They are sshpod additions; ContainerSSH has no
//! certificate support.

use std::time::Duration;

use serde::Serialize;

use crate::check::Checker;
use crate::duration;

/// Default `auth.publicKey.revokedKeysCheckInterval`: an edited revocation list ends the
/// sessions it revokes within seconds, for the cost of one `stat` of the file.
pub const DEFAULT_REVOKED_KEYS_CHECK_INTERVAL: Duration = Duration::from_secs(5);

/// Certificate trust and key revocation for public-key logins (`auth.publicKey`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KeyTrust {
    /// `trustedUserCAKeys`: a file of CA public keys (OpenSSH `TrustedUserCAKeys` format);
    /// user certificates they signed may log in. Empty: no CA is trusted.
    #[serde(rename = "trustedUserCAKeys")]
    pub trusted_user_ca_keys: String,
    /// `authorizedPrincipalsFile`: path pattern (`%u` = user name) of the file listing the
    /// certificate principals that may log in as the user. Empty: the user name must be a
    /// principal of the certificate.
    #[serde(rename = "authorizedPrincipalsFile")]
    pub authorized_principals_file: String,
    /// `revokedKeys`: an OpenSSH KRL (`ssh-keygen -k`) or a list of public keys; listed keys,
    /// certificates and CAs are refused. Empty: nothing is revoked.
    #[serde(rename = "revokedKeys")]
    pub revoked_keys: String,
    /// `disconnectExpiredCert`: a connection that logged in with a certificate sshpod checked
    /// (`trustedUserCAKeys`, `cert-authority`) ends when the certificate expires, its
    /// terminals warned `ssh.limitWarning` ahead. Default on: the certificate's `valid before`
    /// is the end of the user's access.
    #[serde(rename = "disconnectExpiredCert")]
    pub disconnect_expired_cert: bool,
    /// `revokedKeysCheckInterval`: how often the `revokedKeys` file is looked at (its size,
    /// time and inode) for changes that end running sessions; zero: only on reload (SIGHUP,
    /// `sshpod reload`).
    #[serde(
        rename = "revokedKeysCheckInterval",
        serialize_with = "duration::serialize"
    )]
    pub revoked_keys_check_interval: Duration,
}

impl Default for KeyTrust {
    fn default() -> Self {
        Self {
            trusted_user_ca_keys: String::new(),
            authorized_principals_file: String::new(),
            revoked_keys: String::new(),
            disconnect_expired_cert: true,
            revoked_keys_check_interval: DEFAULT_REVOKED_KEYS_CHECK_INTERVAL,
        }
    }
}

impl KeyTrust {
    pub(crate) fn resolve(self, check: &mut Checker<'_>) -> Self {
        if !self.authorized_principals_file.trim().is_empty() {
            if self.trusted_user_ca_keys.trim().is_empty() {
                check.error(
                    "auth.publicKey.authorizedPrincipalsFile",
                    "has no effect without `auth.publicKey.trustedUserCAKeys`",
                );
            }
            if let Some(position) = bad_token(&self.authorized_principals_file) {
                check.error(
                    "auth.publicKey.authorizedPrincipalsFile",
                    format!(
                        "has an unknown %-token at byte {position}; only %u (user name) and %% \
                         are known"
                    ),
                );
            }
        }
        self
    }

    /// Whether certificates can log in.
    pub fn trusts_certificates(&self) -> bool {
        !self.trusted_user_ca_keys.trim().is_empty()
    }
}

/// The byte offset of a `%` not followed by `u` or `%`.
fn bad_token(pattern: &str) -> Option<usize> {
    let mut chars = pattern.char_indices();
    while let Some((position, c)) = chars.next() {
        if c == '%' && !matches!(chars.next(), Some((_, 'u' | '%'))) {
            return Some(position);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pattern_tokens() {
        assert_eq!(bad_token("/etc/principals/%u"), None);
        assert_eq!(bad_token("/x/100%%/%u"), None);
        assert_eq!(bad_token("/x/%h"), Some(3));
        assert_eq!(bad_token("/x/%"), Some(3));
    }
}
