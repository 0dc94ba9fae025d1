//! OpenSSH user certificates: the trusted CA list (`TrustedUserCAKeys`), the principals files
//! (`AuthorizedPrincipalsFile`) and the checks of the certificate itself.
//!
//! russh has already checked the certificate's signature and that the client holds its key.
//! Everything else is decided here: type, validity window, principals, critical options
//! (`force-command`, `source-address`; any other makes the certificate unusable, as in OpenSSH)
//! and the `permit-*` extensions.

use std::net::IpAddr;
use std::path::PathBuf;

use russh::keys::ssh_key::public::KeyData;
use russh::keys::ssh_key::{Certificate, Fingerprint, HashAlg};
use tracing::warn;

use crate::address;
use crate::authorized_keys::{expand_pattern, parse_key, parse_options};
use crate::file::{self, Line};
use crate::policy::Refusal;
use crate::{Error, KeyOptions, Restrictions, UserName};

/// A `TrustedUserCAKeys` file: CA public keys, one per line (`keytype base64 [comment]`),
/// re-read on every check. Lines that are not keys are skipped with a warning.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustedCaKeys {
    path: PathBuf,
}

impl TrustedCaKeys {
    /// CA keys from the file at `path`.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into() }
    }

    /// Whether `ca` is listed. A missing file is an error (the operator configured it).
    /// Blocking: file I/O.
    pub fn trusts(&self, ca: &KeyData) -> Result<bool, Error> {
        let contents = file::read_required(&self.path)?;
        for Line { number, text } in file::lines(&contents) {
            match text.ok().map(parse_key) {
                Some(Ok(key)) if key.key_data() == ca => return Ok(true),
                Some(Ok(_)) => {}
                _ => warn!(
                    file = %self.path.display(),
                    line = number,
                    "skipping a line of the trusted CA keys file that is not a public key"
                ),
            }
        }
        Ok(false)
    }
}

/// `AuthorizedPrincipalsFile`: one file per user (`%u` in the pattern), listing the certificate
/// principals that may log in as that user, one per line, optionally preceded by
/// authorized_keys-style options (`from=`, `command=`, `no-pty`, `restrict`, ...).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthorizedPrincipals {
    pattern: String,
}

impl AuthorizedPrincipals {
    /// Principals from the file `pattern` names (`%u`: login name, `%%`: `%`).
    pub fn new(pattern: impl Into<String>) -> Self {
        Self {
            pattern: pattern.into(),
        }
    }

    /// Checks the pattern without touching the file system.
    pub fn validate_pattern(&self) -> Result<(), Error> {
        expand_pattern(&self.pattern, "user").map(drop)
    }

    /// The options of the first usable line naming one of `principals` whose `from=` allows
    /// `peer`; `Ok(None)` when there is none or the file does not exist. Blocking: file I/O.
    pub fn find(
        &self,
        user: &UserName,
        principals: &[String],
        peer: IpAddr,
    ) -> Result<Option<KeyOptions>, Error> {
        let path = expand_pattern(&self.pattern, user.as_str())?;
        let Some(contents) = file::read_optional(&path)? else {
            return Ok(None);
        };
        for Line { number, text } in file::lines(&contents) {
            let Ok(text) = text else {
                warn!(file = %path.display(), line = number, "skipping a line that is not UTF-8");
                continue;
            };
            let (options, principal) = match text.rfind([' ', '\t']) {
                Some(at) => (text[..at].trim(), text[at..].trim()),
                None => ("", text),
            };
            if !principals.iter().any(|p| p == principal) {
                continue;
            }
            let options = if options.is_empty() {
                KeyOptions::default()
            } else {
                match parse_options(options) {
                    Ok((options, None))
                        if !options.cert_authority && options.principals.is_none() =>
                    {
                        options
                    }
                    Ok(_) => {
                        warn!(
                            file = %path.display(),
                            line = number,
                            "principals line has an option sshpod cannot enforce there; refusing it"
                        );
                        continue;
                    }
                    Err(reason) => {
                        warn!(file = %path.display(), line = number, %reason, "skipping malformed principals line");
                        continue;
                    }
                }
            };
            if let Some(from) = &options.from {
                if !address::from_pattern_allows(from, peer) {
                    tracing::info!(
                        file = %path.display(),
                        line = number,
                        %peer,
                        "principals line matches but its from= does not allow this address"
                    );
                    continue;
                }
            }
            return Ok(Some(options));
        }
        Ok(None)
    }
}

/// What the logs say about an accepted certificate. Nothing in it is secret.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct CertificateInfo {
    /// The key id the CA wrote into the certificate.
    pub key_id: String,
    /// The serial number (0: none).
    pub serial: u64,
    /// SHA-256 fingerprint of the signing CA's key.
    pub ca_fingerprint: Fingerprint,
}

impl From<&Certificate> for CertificateInfo {
    fn from(certificate: &Certificate) -> Self {
        Self {
            key_id: certificate.key_id().to_owned(),
            serial: certificate.serial(),
            ca_fingerprint: certificate.signature_key().fingerprint(HashAlg::Sha256),
        }
    }
}

/// Checks what the certificate says about itself, whoever trusts its CA: a user certificate,
/// inside its validity window at `now` (Unix seconds), with principals, only known critical
/// options, and a `source-address` that allows `peer`. Returns its restrictions
/// (`force-command`, `permit-*`).
pub(crate) fn check_itself(
    certificate: &Certificate,
    peer: IpAddr,
    now: u64,
) -> Result<Restrictions, Refusal> {
    if !certificate.cert_type().is_user() {
        return Err(Refusal::NotUserCertificate);
    }
    if now < certificate.valid_after() {
        return Err(Refusal::NotYetValid);
    }
    if now >= certificate.valid_before() {
        return Err(Refusal::Expired);
    }
    if certificate.valid_principals().is_empty() {
        return Err(Refusal::NoPrincipals);
    }
    let mut force_command = None;
    for (name, value) in certificate.critical_options().iter() {
        match name.as_str() {
            "force-command" => force_command = Some(value.clone()),
            "source-address" => match address::source_address_allows(value, peer) {
                Ok(true) => {}
                Ok(false) => return Err(Refusal::SourceAddress(address::canonical(peer))),
                Err(_) => return Err(Refusal::BadSourceAddress),
            },
            other => return Err(Refusal::UnknownCriticalOption(other.to_owned())),
        }
    }
    Ok(Restrictions::from_certificate_extensions(
        certificate.extensions().keys().map(String::as_str),
        force_command,
    ))
}
