//! The built-in public-key decision: authorized_keys files, trusted user CAs, principals files
//! and revoked keys, combined the way sshd combines them.
//!
//! Order, for a plain key: revoked keys, then the user's authorized_keys (lines that are not
//! `cert-authority`). For a certificate: revoked keys (the certificate, its key, its CA), the
//! certificate's own checks (type, validity, principals present, critical options,
//! `source-address`), then `trustedUserCAKeys` (with `authorizedPrincipalsFile` when set, else
//! the login name must be a principal), then the user's `cert-authority` lines.

use std::fmt;
use std::net::IpAddr;

use russh::keys::ssh_key::{Certificate, PublicKey};

use crate::certificate::{self, AuthorizedPrincipals, CertificateInfo, TrustedCaKeys};
use crate::restrictions::CommandConflict;
use crate::revoked::{Revocation, RevokedKeys};
use crate::{AuthorizedKeys, Error, Restrictions, UserName};

/// Built-in public-key and certificate authentication. Every check is blocking (file I/O):
/// call it from `tokio::task::spawn_blocking`.
#[derive(Debug, Clone, Default)]
pub struct KeyPolicy {
    authorized_keys: Option<AuthorizedKeys>,
    trusted_cas: Option<TrustedCaKeys>,
    principals: Option<AuthorizedPrincipals>,
    revoked: Option<RevokedKeys>,
}

/// The outcome of a check that could be made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// The key may log in, with these restrictions.
    Accept(Grant),
    /// The key may not log in; the reason is for the log only.
    Refuse(Refusal),
}

/// An accepted key or certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Grant {
    /// What the session may do.
    pub restrictions: Restrictions,
    /// What accepted it.
    pub via: Via,
    /// The certificate's identity, when a certificate was accepted.
    pub certificate: Option<CertificateInfo>,
}

/// What accepted a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    /// A line of the user's authorized_keys file (a key, or a `cert-authority`).
    AuthorizedKeys,
    /// `trustedUserCAKeys` (with the principals file, if configured).
    TrustedUserCaKeys,
}

impl fmt::Display for Via {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::AuthorizedKeys => "authorized_keys",
            Self::TrustedUserCaKeys => "trustedUserCAKeys",
        })
    }
}

/// Why a key or certificate was refused. For sshpod's log; the client only learns "no".
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Refusal {
    /// No usable line lists the key for this user (or its `from=` does not allow the client).
    #[error("the key is not authorized for this user")]
    KeyNotAuthorized,
    /// The key, the certificate or its CA is in the revoked keys file.
    #[error("{}", match .0 {
        Revocation::Key => "the key is revoked",
        Revocation::Certificate => "the certificate is revoked",
        Revocation::CertificateAuthority => "the certificate's CA key is revoked",
    })]
    Revoked(Revocation),
    /// A host certificate presented for a user login.
    #[error("the certificate is not a user certificate")]
    NotUserCertificate,
    /// Neither `trustedUserCAKeys` nor a `cert-authority` line trusts the CA.
    #[error("the certificate's CA is not trusted for this user")]
    UntrustedCa,
    /// The certificate's validity starts in the future.
    #[error("the certificate is not valid yet")]
    NotYetValid,
    /// The certificate's validity has ended.
    #[error("the certificate has expired")]
    Expired,
    /// A certificate without principals (OpenSSH refuses those for user logins too).
    #[error("the certificate has no principals")]
    NoPrincipals,
    /// The CA is trusted, but no principal of the certificate may log in as this user.
    #[error("no principal of the certificate is allowed for this user")]
    PrincipalNotAllowed,
    /// The certificate's `source-address` does not include the client.
    #[error("the certificate's source-address does not allow {0}")]
    SourceAddress(IpAddr),
    /// The certificate's `source-address` cannot be parsed.
    #[error("the certificate's source-address is malformed")]
    BadSourceAddress,
    /// A critical option sshpod does not know: the certificate cannot be honoured.
    #[error("the certificate has the unsupported critical option {0:?}")]
    UnknownCriticalOption(String),
    /// The certificate and the line that accepted it force different commands.
    #[error(transparent)]
    CommandConflict(#[from] CommandConflict),
}

impl KeyPolicy {
    /// A policy that accepts nothing; add sources with the `with_*` methods.
    pub fn new() -> Self {
        Self::default()
    }

    /// Accept keys (and `cert-authority` lines) from authorized_keys files.
    #[must_use]
    pub fn with_authorized_keys(mut self, keys: AuthorizedKeys) -> Self {
        self.authorized_keys = Some(keys);
        self
    }

    /// Accept certificates signed by these CAs.
    #[must_use]
    pub fn with_trusted_user_ca_keys(mut self, cas: TrustedCaKeys) -> Self {
        self.trusted_cas = Some(cas);
        self
    }

    /// For certificates of trusted CAs: the principals that may log in as each user.
    #[must_use]
    pub fn with_authorized_principals(mut self, principals: AuthorizedPrincipals) -> Self {
        self.principals = Some(principals);
        self
    }

    /// Refuse keys, certificates and CAs listed in this file.
    #[must_use]
    pub fn with_revoked_keys(mut self, revoked: RevokedKeys) -> Self {
        self.revoked = Some(revoked);
        self
    }

    /// Whether any source of keys is configured.
    pub fn accepts_keys(&self) -> bool {
        self.authorized_keys.is_some() || self.trusted_cas.is_some()
    }

    /// Whether answering "this key would do" to a client's probe is right. russh gives a
    /// probe for a certificate only the certificate's key, so while certificates can be
    /// accepted at all, every key that is not revoked gets "yes"; the signed attempt that
    /// follows is checked in full. Blocking: file I/O.
    pub fn may_accept(
        &self,
        user: &UserName,
        key: &PublicKey,
        peer: IpAddr,
    ) -> Result<bool, Error> {
        if let Some(revoked) = &self.revoked {
            if revoked.check_key(key.key_data())?.is_some() {
                return Ok(false);
            }
        }
        if self.trusted_cas.is_some() {
            return Ok(true);
        }
        let Some(keys) = &self.authorized_keys else {
            return Ok(false);
        };
        Ok(keys.has_authorities(user)? || keys.is_authorized(user, key, peer)?)
    }

    /// Checks a plain key (its ownership already proven). Blocking: file I/O.
    pub fn check_key(
        &self,
        user: &UserName,
        key: &PublicKey,
        peer: IpAddr,
    ) -> Result<Decision, Error> {
        if let Some(revoked) = &self.revoked {
            if let Some(what) = revoked.check_key(key.key_data())? {
                return Ok(Decision::Refuse(Refusal::Revoked(what)));
            }
        }
        let Some(keys) = &self.authorized_keys else {
            return Ok(Decision::Refuse(Refusal::KeyNotAuthorized));
        };
        Ok(match keys.authorized_options(user, key, peer)? {
            Some(options) => Decision::Accept(Grant {
                restrictions: Restrictions::from(&options),
                via: Via::AuthorizedKeys,
                certificate: None,
            }),
            None => Decision::Refuse(Refusal::KeyNotAuthorized),
        })
    }

    /// Checks a certificate (its signature and key ownership already proven by russh) at
    /// `now`, in Unix seconds. Blocking: file I/O.
    pub fn check_certificate(
        &self,
        user: &UserName,
        certificate: &Certificate,
        peer: IpAddr,
        now: u64,
    ) -> Result<Decision, Error> {
        if let Some(revoked) = &self.revoked {
            if let Some(what) = revoked.check_certificate(certificate)? {
                return Ok(Decision::Refuse(Refusal::Revoked(what)));
            }
        }
        let own = match certificate::check_itself(certificate, peer, now) {
            Ok(restrictions) => restrictions,
            Err(refusal) => return Ok(Decision::Refuse(refusal)),
        };
        let ca = certificate.signature_key();
        let principals = certificate.valid_principals();
        let grant = |line: Restrictions, via| -> Decision {
            match own.clone().merge(line) {
                Ok(restrictions) => Decision::Accept(Grant {
                    restrictions,
                    via,
                    certificate: Some(CertificateInfo::from(certificate)),
                }),
                Err(conflict) => Decision::Refuse(conflict.into()),
            }
        };
        let mut refusal = Refusal::UntrustedCa;
        if let Some(cas) = &self.trusted_cas {
            if cas.trusts(ca)? {
                let line = match &self.principals {
                    Some(file) => file
                        .find(user, principals, peer)?
                        .map(|o| Restrictions::from(&o)),
                    None => principals
                        .iter()
                        .any(|p| p == user.as_str())
                        .then(Restrictions::default),
                };
                match line {
                    Some(line) => return Ok(grant(line, Via::TrustedUserCaKeys)),
                    None => refusal = Refusal::PrincipalNotAllowed,
                }
            }
        }
        if let Some(keys) = &self.authorized_keys {
            if let Some(options) = keys.authority_options(user, ca, principals, peer)? {
                return Ok(grant(Restrictions::from(&options), Via::AuthorizedKeys));
            }
        }
        Ok(Decision::Refuse(refusal))
    }
}

#[cfg(test)]
mod tests {
    use std::fs;
    use std::path::Path;

    use russh::keys::ssh_key::certificate::{Builder, CertType};
    use russh::keys::ssh_key::private::Ed25519Keypair;
    use russh::keys::ssh_key::PrivateKey;

    use super::*;

    const NOW: u64 = 1_800_000_000;
    const PEER: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 10));

    fn private(seed: u8) -> PrivateKey {
        PrivateKey::from(Ed25519Keypair::from_seed(&[seed; 32]))
    }

    fn public_line(seed: u8) -> String {
        private(seed).public_key().to_openssh().unwrap()
    }

    fn alice() -> UserName {
        UserName::try_from("alice").unwrap()
    }

    /// A certificate for key 1, signed by CA `ca`, adjusted by `edit`.
    fn cert(ca: u8, edit: impl FnOnce(&mut Builder)) -> Certificate {
        let key = private(1);
        let mut builder = Builder::new(
            [7; 16],
            key.public_key().key_data().clone(),
            NOW - 60,
            NOW + 3600,
        )
        .unwrap();
        // The type defaults to user; `edit` may set it.
        builder.key_id("alice@laptop").unwrap();
        builder.serial(42).unwrap();
        builder.valid_principal("alice").unwrap();
        for ext in ["permit-pty", "permit-port-forwarding"] {
            builder.extension(ext, "").unwrap();
        }
        edit(&mut builder);
        builder.sign(&private(ca)).unwrap()
    }

    /// A directory with a trusted CA file (CA 100), authorized_keys for alice and a policy.
    struct Setup {
        dir: tempfile::TempDir,
    }

    impl Setup {
        fn new(authorized_keys: &str) -> Self {
            let dir = tempfile::tempdir().unwrap();
            fs::write(
                dir.path().join("ca.pub"),
                format!("# CAs\n{}\n", public_line(100)),
            )
            .unwrap();
            fs::create_dir(dir.path().join("keys")).unwrap();
            fs::write(dir.path().join("keys/alice"), authorized_keys).unwrap();
            Self { dir }
        }

        fn path(&self) -> &Path {
            self.dir.path()
        }

        fn policy(&self) -> KeyPolicy {
            KeyPolicy::new()
                .with_authorized_keys(AuthorizedKeys::new(format!(
                    "{}/keys/%u",
                    self.path().display()
                )))
                .with_trusted_user_ca_keys(TrustedCaKeys::new(self.path().join("ca.pub")))
        }
    }

    fn refusal(decision: Decision) -> Refusal {
        match decision {
            Decision::Refuse(r) => r,
            Decision::Accept(g) => panic!("accepted: {g:?}"),
        }
    }

    fn grant(decision: Decision) -> Grant {
        match decision {
            Decision::Accept(g) => g,
            Decision::Refuse(r) => panic!("refused: {r}"),
        }
    }

    #[test]
    fn trusted_ca_certificate_with_the_login_as_principal() {
        let setup = Setup::new("");
        let policy = setup.policy();
        let g = grant(
            policy
                .check_certificate(&alice(), &cert(100, |_| {}), PEER, NOW)
                .unwrap(),
        );
        assert_eq!(g.via, Via::TrustedUserCaKeys);
        assert!(g.restrictions.pty && g.restrictions.port_forwarding);
        assert!(!g.restrictions.agent_forwarding && !g.restrictions.x11_forwarding);
        let info = g.certificate.unwrap();
        assert_eq!((info.key_id.as_str(), info.serial), ("alice@laptop", 42));
        assert_eq!(
            info.ca_fingerprint,
            private(100)
                .public_key()
                .fingerprint(russh::keys::HashAlg::Sha256)
        );

        let bob = UserName::try_from("bob").unwrap();
        assert_eq!(
            refusal(
                policy
                    .check_certificate(&bob, &cert(100, |_| {}), PEER, NOW)
                    .unwrap()
            ),
            Refusal::PrincipalNotAllowed
        );
        assert_eq!(
            refusal(
                policy
                    .check_certificate(&alice(), &cert(101, |_| {}), PEER, NOW)
                    .unwrap()
            ),
            Refusal::UntrustedCa
        );
    }

    #[test]
    fn certificate_checks_of_its_own() {
        let setup = Setup::new("");
        let policy = setup.policy();
        let check = |c: Certificate, now| {
            refusal(policy.check_certificate(&alice(), &c, PEER, now).unwrap())
        };
        assert_eq!(check(cert(100, |_| {}), NOW - 61), Refusal::NotYetValid);
        assert_eq!(check(cert(100, |_| {}), NOW + 3600), Refusal::Expired);
        assert_eq!(
            check(
                cert(100, |b| {
                    b.cert_type(CertType::Host).unwrap();
                }),
                NOW
            ),
            Refusal::NotUserCertificate
        );
        let key = private(1);
        let mut no_principals = Builder::new(
            [7; 16],
            key.public_key().key_data().clone(),
            NOW - 60,
            NOW + 60,
        )
        .unwrap();
        no_principals.cert_type(CertType::User).unwrap();
        no_principals.all_principals_valid().unwrap();
        assert_eq!(
            check(no_principals.sign(&private(100)).unwrap(), NOW),
            Refusal::NoPrincipals
        );
        assert_eq!(
            check(
                cert(100, |b| {
                    b.critical_option("verify-required", "").unwrap();
                }),
                NOW
            ),
            Refusal::UnknownCriticalOption("verify-required".into())
        );
        assert_eq!(
            check(
                cert(100, |b| {
                    b.critical_option("source-address", "10.0.0.0/8").unwrap();
                }),
                NOW
            ),
            Refusal::SourceAddress(PEER)
        );
        assert_eq!(
            check(
                cert(100, |b| {
                    b.critical_option("source-address", "10.0.0.1/8").unwrap();
                }),
                NOW
            ),
            Refusal::BadSourceAddress
        );
        let ok = cert(100, |b| {
            b.critical_option("source-address", "10.0.0.0/8,192.0.2.0/24")
                .unwrap();
            b.critical_option("force-command", "uptime").unwrap();
        });
        let g = grant(policy.check_certificate(&alice(), &ok, PEER, NOW).unwrap());
        assert_eq!(g.restrictions.force_command.as_deref(), Some("uptime"));
    }

    #[test]
    fn principals_file_decides_which_principals_log_in() {
        let setup = Setup::new("");
        fs::create_dir(setup.path().join("principals")).unwrap();
        fs::write(
            setup.path().join("principals/alice"),
            "# who may be alice\nstudents\ncommand=\"date\",no-pty ops\nfrom=\"10.0.0.0/8\" remote\n",
        )
        .unwrap();
        let policy = setup
            .policy()
            .with_authorized_principals(AuthorizedPrincipals::new(format!(
                "{}/principals/%u",
                setup.path().display()
            )));
        let with = |name: &'static str| {
            cert(100, move |b| {
                b.valid_principal(name).unwrap();
            })
        };
        // "alice" alone is not enough once a principals file is configured.
        assert_eq!(
            refusal(
                policy
                    .check_certificate(&alice(), &cert(100, |_| {}), PEER, NOW)
                    .unwrap()
            ),
            Refusal::PrincipalNotAllowed
        );
        let g = grant(
            policy
                .check_certificate(&alice(), &with("students"), PEER, NOW)
                .unwrap(),
        );
        assert!(g.restrictions.is_unrestricted() || g.restrictions.force_command.is_none());
        let g = grant(
            policy
                .check_certificate(&alice(), &with("ops"), PEER, NOW)
                .unwrap(),
        );
        assert_eq!(g.restrictions.force_command.as_deref(), Some("date"));
        assert!(!g.restrictions.pty);
        assert_eq!(
            refusal(
                policy
                    .check_certificate(&alice(), &with("remote"), PEER, NOW)
                    .unwrap()
            ),
            Refusal::PrincipalNotAllowed
        );
        // No file for bob: no principal may be bob.
        let bob = UserName::try_from("bob").unwrap();
        let for_bob = cert(100, |b| {
            b.valid_principal("bob").unwrap();
        });
        assert_eq!(
            refusal(policy.check_certificate(&bob, &for_bob, PEER, NOW).unwrap()),
            Refusal::PrincipalNotAllowed
        );
    }

    #[test]
    fn cert_authority_lines_and_merged_restrictions() {
        let setup = Setup::new(&format!(
            "cert-authority,no-port-forwarding {}\ncert-authority,principals=\"team\",command=\"id\" {}\n",
            public_line(101),
            public_line(102)
        ));
        let policy = setup.policy();
        let g = grant(
            policy
                .check_certificate(&alice(), &cert(101, |_| {}), PEER, NOW)
                .unwrap(),
        );
        assert_eq!(g.via, Via::AuthorizedKeys);
        assert!(g.restrictions.pty && !g.restrictions.port_forwarding);

        assert_eq!(
            refusal(
                policy
                    .check_certificate(&alice(), &cert(102, |_| {}), PEER, NOW)
                    .unwrap()
            ),
            Refusal::UntrustedCa
        );
        let team = cert(102, |b| {
            b.valid_principal("team").unwrap();
        });
        let g = grant(
            policy
                .check_certificate(&alice(), &team, PEER, NOW)
                .unwrap(),
        );
        assert_eq!(g.restrictions.force_command.as_deref(), Some("id"));
        let conflicting = cert(102, |b| {
            b.valid_principal("team").unwrap();
            b.critical_option("force-command", "date").unwrap();
        });
        assert_eq!(
            refusal(
                policy
                    .check_certificate(&alice(), &conflicting, PEER, NOW)
                    .unwrap()
            ),
            Refusal::CommandConflict(CommandConflict)
        );
        // A CA key is not a login key.
        assert_eq!(
            refusal(
                policy
                    .check_key(&alice(), private(101).public_key(), PEER)
                    .unwrap()
            ),
            Refusal::KeyNotAuthorized
        );
    }

    #[test]
    fn plain_keys_and_revocation() {
        let setup = Setup::new(&format!("no-pty {}\n{}\n", public_line(1), public_line(2)));
        let revoked = setup.path().join("revoked");
        fs::write(&revoked, format!("{}\n", public_line(2))).unwrap();
        let policy = setup.policy().with_revoked_keys(RevokedKeys::new(&revoked));
        let g = grant(
            policy
                .check_key(&alice(), private(1).public_key(), PEER)
                .unwrap(),
        );
        assert_eq!(g.via, Via::AuthorizedKeys);
        assert!(!g.restrictions.pty && g.certificate.is_none());
        assert_eq!(
            refusal(
                policy
                    .check_key(&alice(), private(2).public_key(), PEER)
                    .unwrap()
            ),
            Refusal::Revoked(Revocation::Key)
        );
        assert!(!policy
            .may_accept(&alice(), private(2).public_key(), PEER)
            .unwrap());
        // With a trusted CA, any key that is not revoked may be a certificate's key.
        assert!(policy
            .may_accept(&alice(), private(3).public_key(), PEER)
            .unwrap());

        // Revoking the CA, then the certificate's key.
        fs::write(&revoked, format!("{}\n", public_line(100))).unwrap();
        assert_eq!(
            refusal(
                policy
                    .check_certificate(&alice(), &cert(100, |_| {}), PEER, NOW)
                    .unwrap()
            ),
            Refusal::Revoked(Revocation::CertificateAuthority)
        );
        fs::write(
            &revoked,
            format!("# now the user's key\n{}\n", public_line(1)),
        )
        .unwrap();
        assert_eq!(
            refusal(
                policy
                    .check_certificate(&alice(), &cert(100, |_| {}), PEER, NOW)
                    .unwrap()
            ),
            Refusal::Revoked(Revocation::Key)
        );
        // An unreadable revocation list refuses everything.
        fs::remove_file(&revoked).unwrap();
        assert!(policy
            .check_key(&alice(), private(1).public_key(), PEER)
            .is_err());
    }

    #[test]
    fn probes_without_certificates() {
        let setup = Setup::new(&format!("{}\n", public_line(1)));
        let keys_only = KeyPolicy::new().with_authorized_keys(AuthorizedKeys::new(format!(
            "{}/keys/%u",
            setup.path().display()
        )));
        assert!(keys_only
            .may_accept(&alice(), private(1).public_key(), PEER)
            .unwrap());
        assert!(!keys_only
            .may_accept(&alice(), private(2).public_key(), PEER)
            .unwrap());
        assert!(!KeyPolicy::new().accepts_keys());
    }
}
