//! ContainerSSH's `sshproxy` section: the SSH server a login is passed on to instead of a
//! container (`backend: sshproxy`, in the file or in a config server's answer).
//!
//! Keys and defaults are ContainerSSH's. Algorithm names are checked here, against the names
//! the proxy can negotiate, so a typo is an error with file, line and key rather than a failed
//! login later. Host keys are trusted only by fingerprint: there is no "trust on first use".

use std::collections::BTreeMap;
use std::sync::LazyLock;
use std::time::Duration;

use serde::{Deserialize, Serialize, Serializer};

use crate::check::Checker;
use crate::secret::{is_empty_secret, Secret};
use crate::ssh::algorithms;
use crate::{Backend, Cipher, Kex, Mac};

/// The default `sshproxy.port`.
pub const DEFAULT_SSHPROXY_PORT: u16 = 22;
/// The default `sshproxy.timeout`: how long connecting and logging in upstream may take.
pub const DEFAULT_SSHPROXY_TIMEOUT: Duration = Duration::from_secs(60);
/// The default `sshproxy.clientVersion`, ContainerSSH's.
pub const DEFAULT_SSHPROXY_CLIENT_VERSION: &str = "SSH-2.0-ContainerSSH";

/// A host key algorithm the proxy may accept from the upstream server (`sshproxy.hostKeyAlgos`).
///
/// The names are ContainerSSH's. `ssh-rsa` means an RSA host key; it is negotiated with SHA-2
/// signatures (`rsa-sha2-512`, `rsa-sha2-256`), never SHA-1. DSA names are accepted, because
/// ContainerSSH's default list holds them, but never offered: DSA keys are broken and OpenSSH
/// no longer has them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum HostKeyAlgo {
    /// `ssh-ed25519`
    Ed25519,
    /// `ecdsa-sha2-nistp256`
    EcdsaNistp256,
    /// `ecdsa-sha2-nistp384`
    EcdsaNistp384,
    /// `ecdsa-sha2-nistp521`
    EcdsaNistp521,
    /// `rsa-sha2-512`
    RsaSha512,
    /// `rsa-sha2-256`
    RsaSha256,
    /// `ssh-rsa`: an RSA key, with SHA-2 signatures.
    Rsa,
    /// `ssh-dss`: accepted, never offered.
    Dss,
    /// `ssh-ed25519-cert-v01@openssh.com`
    Ed25519Cert,
    /// `ecdsa-sha2-nistp256-cert-v01@openssh.com`
    EcdsaNistp256Cert,
    /// `ecdsa-sha2-nistp384-cert-v01@openssh.com`
    EcdsaNistp384Cert,
    /// `ecdsa-sha2-nistp521-cert-v01@openssh.com`
    EcdsaNistp521Cert,
    /// `ssh-rsa-cert-v01@openssh.com`
    RsaCert,
    /// `ssh-dss-cert-v01@openssh.com`: accepted, never offered.
    DssCert,
}

impl HostKeyAlgo {
    /// Every name `sshproxy.hostKeyAlgos` accepts.
    pub const ALL: &'static [HostKeyAlgo] = &[
        HostKeyAlgo::Ed25519,
        HostKeyAlgo::EcdsaNistp256,
        HostKeyAlgo::EcdsaNistp384,
        HostKeyAlgo::EcdsaNistp521,
        HostKeyAlgo::RsaSha512,
        HostKeyAlgo::RsaSha256,
        HostKeyAlgo::Rsa,
        HostKeyAlgo::Dss,
        HostKeyAlgo::Ed25519Cert,
        HostKeyAlgo::EcdsaNistp256Cert,
        HostKeyAlgo::EcdsaNistp384Cert,
        HostKeyAlgo::EcdsaNistp521Cert,
        HostKeyAlgo::RsaCert,
        HostKeyAlgo::DssCert,
    ];

    /// ContainerSSH's default list, in its order.
    pub const DEFAULT: &'static [HostKeyAlgo] = &[
        HostKeyAlgo::RsaCert,
        HostKeyAlgo::DssCert,
        HostKeyAlgo::EcdsaNistp256Cert,
        HostKeyAlgo::EcdsaNistp384Cert,
        HostKeyAlgo::EcdsaNistp521Cert,
        HostKeyAlgo::Ed25519Cert,
        HostKeyAlgo::Rsa,
        HostKeyAlgo::Dss,
        HostKeyAlgo::Ed25519,
    ];

    /// The name in the configuration file and in SSH negotiation.
    pub fn name(self) -> &'static str {
        match self {
            HostKeyAlgo::Ed25519 => "ssh-ed25519",
            HostKeyAlgo::EcdsaNistp256 => "ecdsa-sha2-nistp256",
            HostKeyAlgo::EcdsaNistp384 => "ecdsa-sha2-nistp384",
            HostKeyAlgo::EcdsaNistp521 => "ecdsa-sha2-nistp521",
            HostKeyAlgo::RsaSha512 => "rsa-sha2-512",
            HostKeyAlgo::RsaSha256 => "rsa-sha2-256",
            HostKeyAlgo::Rsa => "ssh-rsa",
            HostKeyAlgo::Dss => "ssh-dss",
            HostKeyAlgo::Ed25519Cert => "ssh-ed25519-cert-v01@openssh.com",
            HostKeyAlgo::EcdsaNistp256Cert => "ecdsa-sha2-nistp256-cert-v01@openssh.com",
            HostKeyAlgo::EcdsaNistp384Cert => "ecdsa-sha2-nistp384-cert-v01@openssh.com",
            HostKeyAlgo::EcdsaNistp521Cert => "ecdsa-sha2-nistp521-cert-v01@openssh.com",
            HostKeyAlgo::RsaCert => "ssh-rsa-cert-v01@openssh.com",
            HostKeyAlgo::DssCert => "ssh-dss-cert-v01@openssh.com",
        }
    }

    /// Looks up a name as written in the configuration file.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|a| a.name() == name)
    }

    /// Whether this names a DSA key, which is accepted in the file and never offered.
    pub fn is_dsa(self) -> bool {
        matches!(self, HostKeyAlgo::Dss | HostKeyAlgo::DssCert)
    }

    fn names() -> Vec<&'static str> {
        Self::ALL.iter().map(|a| a.name()).collect()
    }
}

impl std::fmt::Display for HostKeyAlgo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl Serialize for HostKeyAlgo {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.name())
    }
}

/// A host key fingerprint as `ssh-keygen -l` prints it: `SHA256:` and 43 characters of
/// unpadded base64.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Fingerprint(String);

impl Fingerprint {
    /// Reads a fingerprint; a trailing `=` (padded base64) is accepted and dropped.
    pub fn parse(text: &str) -> Result<Self, String> {
        let help = "write it as `ssh-keygen -lf KEY` prints it, such as \
                    `SHA256:uNiVztksCsDhcc0u9e8BujQXVUpKZIDTMczCvj3tD2s`";
        let Some(digest) = text.trim().strip_prefix("SHA256:") else {
            return Err(format!("`{text}` is not a SHA256 fingerprint; {help}"));
        };
        let digest = digest.trim_end_matches('=');
        let base64 = |b: u8| b.is_ascii_alphanumeric() || b == b'+' || b == b'/';
        if digest.len() != 43 || !digest.bytes().all(base64) {
            return Err(format!("`{text}` is not a SHA256 fingerprint; {help}"));
        }
        Ok(Self(format!("SHA256:{digest}")))
    }

    /// The fingerprint, `SHA256:` and unpadded base64.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The validated `sshproxy` section.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SshProxyConfig {
    /// The upstream server's host name or address.
    pub server: String,
    /// Its port.
    pub port: u16,
    /// Log in upstream as the login's own user instead of `username`.
    pub username_pass_through: bool,
    /// The user to log in upstream as (without `usernamePassThrough`).
    pub username: String,
    /// The password offered upstream; empty for none.
    #[serde(skip_serializing_if = "is_empty_secret")]
    pub password: Secret<String>,
    /// The private key offered upstream: a file name or the key itself (PEM or OpenSSH
    /// format); empty for none. Secret either way, so `Debug` never prints a key.
    #[serde(skip_serializing_if = "is_empty_secret")]
    pub private_key: Secret<String>,
    /// The upstream host keys trusted, by fingerprint.
    pub allowed_host_key_fingerprints: Vec<Fingerprint>,
    /// Ciphers offered upstream.
    pub ciphers: Vec<Cipher>,
    /// Key exchanges offered upstream.
    pub kex: Vec<Kex>,
    /// MACs offered upstream.
    pub macs: Vec<Mac>,
    /// Host key algorithms accepted from upstream.
    pub host_key_algos: Vec<HostKeyAlgo>,
    /// How long connecting and logging in upstream may take.
    #[serde(with = "crate::duration")]
    pub timeout: Duration,
    /// The identification string sent upstream.
    pub client_version: String,
}

impl Default for SshProxyConfig {
    fn default() -> Self {
        Checker::quietly(|check| RawSshProxy::default().resolve(check))
    }
}

/// The subsystems a proxied session may ask for: passed upstream by name.
pub(crate) static PROXIED_SUBSYSTEMS: LazyLock<BTreeMap<String, String>> =
    LazyLock::new(|| BTreeMap::from([("sftp".to_owned(), "sftp".to_owned())]));

/// `sshproxy` as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase", default)]
pub(crate) struct RawSshProxy {
    server: String,
    port: u16,
    username_pass_through: bool,
    username: String,
    password: Secret<String>,
    private_key: Secret<String>,
    allowed_host_key_fingerprints: Vec<String>,
    ciphers: Vec<String>,
    kex: Vec<String>,
    macs: Vec<String>,
    host_key_algos: Vec<String>,
    #[serde(deserialize_with = "crate::duration::deserialize")]
    timeout: Duration,
    client_version: String,
}

impl Default for RawSshProxy {
    fn default() -> Self {
        let names = |list: &[&str]| list.iter().map(|n| (*n).to_owned()).collect();
        Self {
            server: String::new(),
            port: DEFAULT_SSHPROXY_PORT,
            username_pass_through: false,
            username: String::new(),
            password: Secret::default(),
            private_key: Secret::default(),
            allowed_host_key_fingerprints: Vec::new(),
            ciphers: names(&Cipher::ALL.iter().map(|c| c.name()).collect::<Vec<_>>()),
            kex: names(&[
                Kex::Curve25519Sha256Libssh.name(),
                Kex::EcdhSha2Nistp521.name(),
                Kex::EcdhSha2Nistp384.name(),
                Kex::EcdhSha2Nistp256.name(),
            ]),
            macs: names(&[Mac::HmacSha256Etm.name(), Mac::HmacSha256.name()]),
            host_key_algos: names(
                &HostKeyAlgo::DEFAULT
                    .iter()
                    .map(|a| a.name())
                    .collect::<Vec<_>>(),
            ),
            timeout: DEFAULT_SSHPROXY_TIMEOUT,
            client_version: DEFAULT_SSHPROXY_CLIENT_VERSION.to_owned(),
        }
    }
}

impl RawSshProxy {
    pub(crate) fn resolve(self, check: &mut Checker<'_>) -> SshProxyConfig {
        check.backend_section(Backend::SshProxy, |check| self.resolve_selected(check))
    }

    fn resolve_selected(self, check: &mut Checker<'_>) -> SshProxyConfig {
        if self.server.trim().is_empty() {
            check.error(
                "sshproxy.server",
                "the SSH server to pass logins to is required",
            );
        }
        if self.port == 0 {
            check.error("sshproxy.port", "must be a port number from 1 to 65535");
        }
        if !self.username_pass_through && self.username.is_empty() {
            check.error(
                "sshproxy.username",
                "required unless `usernamePassThrough` is true",
            );
        }
        if self.allowed_host_key_fingerprints.is_empty() {
            check.error(
                "sshproxy.allowedHostKeyFingerprints",
                "list the SHA256 fingerprints of the server's host keys (`ssh-keygen -lf KEY`); \
                 sshpod never trusts a host key it has not been told about",
            );
        }
        let mut fingerprints = Vec::with_capacity(self.allowed_host_key_fingerprints.len());
        for (index, text) in self.allowed_host_key_fingerprints.iter().enumerate() {
            match Fingerprint::parse(text) {
                Ok(fingerprint) => fingerprints.push(fingerprint),
                Err(message) => check.error(
                    &format!("sshproxy.allowedHostKeyFingerprints[{index}]"),
                    message,
                ),
            }
        }
        let ciphers = algorithms(
            check,
            "sshproxy.ciphers",
            &self.ciphers,
            Cipher::from_name,
            &Cipher::ALL.iter().map(|c| c.name()).collect::<Vec<_>>(),
        );
        let kex = algorithms(
            check,
            "sshproxy.kex",
            &self.kex,
            Kex::from_name,
            &Kex::ALL.iter().map(|k| k.name()).collect::<Vec<_>>(),
        );
        let macs = algorithms(
            check,
            "sshproxy.macs",
            &self.macs,
            Mac::from_name,
            &Mac::ALL.iter().map(|m| m.name()).collect::<Vec<_>>(),
        );
        let host_key_algos = algorithms(
            check,
            "sshproxy.hostKeyAlgos",
            &self.host_key_algos,
            HostKeyAlgo::from_name,
            &HostKeyAlgo::names(),
        );
        if !host_key_algos.is_empty() && host_key_algos.iter().all(|a| a.is_dsa()) {
            check.error(
                "sshproxy.hostKeyAlgos",
                "lists only DSA, which sshpod never offers; add `ssh-ed25519`, \
                 `ecdsa-sha2-nistp256` or `ssh-rsa`",
            );
        }
        if self.timeout.is_zero() {
            check.error("sshproxy.timeout", "must be greater than 0");
        }
        if let Err(message) = check_client_version(&self.client_version) {
            check.error("sshproxy.clientVersion", message);
        }
        SshProxyConfig {
            server: self.server.trim().to_owned(),
            port: self.port,
            username_pass_through: self.username_pass_through,
            username: self.username,
            password: self.password,
            private_key: self.private_key,
            allowed_host_key_fingerprints: fingerprints,
            ciphers,
            kex,
            macs,
            host_key_algos,
            timeout: self.timeout,
            client_version: self.client_version,
        }
    }
}

/// ContainerSSH's rule for `clientVersion`: `SSH-2.0-` and letters and digits, then optionally
/// a space and a comment of letters, digits, `-`, ` `, `_` and `.`.
fn check_client_version(version: &str) -> Result<(), String> {
    const HELP: &str = "must look like `SSH-2.0-software` or `SSH-2.0-software comment` \
                        (letters and digits in the software name)";
    let Some(rest) = version.strip_prefix("SSH-2.0-") else {
        return Err(format!("`{version}` {HELP}"));
    };
    let (software, comment) = match rest.split_once(' ') {
        Some((software, comment)) => (software, Some(comment)),
        None => (rest, None),
    };
    let software_ok = !software.is_empty() && software.bytes().all(|b| b.is_ascii_alphanumeric());
    let comment_ok = comment.is_none_or(|c| {
        !c.is_empty()
            && c.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b' ' | b'_' | b'.'))
    });
    if software_ok && comment_ok && version.len() <= 253 {
        Ok(())
    } else {
        Err(format!("`{version}` {HELP}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{parse_str, ConfigErrors, Format, Loaded};

    const FINGERPRINT: &str = "SHA256:uNiVztksCsDhcc0u9e8BujQXVUpKZIDTMczCvj3tD2s";

    /// Parses `text` plus a login method (at the end, so line numbers stay those of `text`).
    fn yaml(text: &str) -> Result<Loaded, ConfigErrors> {
        let text =
            format!("{text}auth: {{password: {{method: htpasswd, htpasswd: {{file: /h}}}}}}\n");
        parse_str(&text, Format::Yaml, "test.yaml")
    }

    fn messages(result: Result<Loaded, ConfigErrors>) -> Vec<String> {
        match result {
            Ok(_) => panic!("expected errors"),
            Err(errors) => errors.0.iter().map(ToString::to_string).collect(),
        }
    }

    #[test]
    fn a_minimal_section_gets_containerssh_defaults() {
        let text = format!(
            "backend: sshproxy\nsshproxy:\n  server: 10.0.0.5\n  username: guest\n  \
             allowedHostKeyFingerprints: [\"{FINGERPRINT}\"]\n"
        );
        let config = match yaml(&text) {
            Ok(loaded) => loaded.config,
            Err(e) => panic!("{e}"),
        };
        assert_eq!(config.backend, Backend::SshProxy);
        let proxy = &config.sshproxy;
        assert_eq!((proxy.server.as_str(), proxy.port), ("10.0.0.5", 22));
        assert_eq!(proxy.timeout, Duration::from_secs(60));
        assert_eq!(proxy.client_version, "SSH-2.0-ContainerSSH");
        assert_eq!(proxy.ciphers, Cipher::ALL);
        assert_eq!(
            proxy.kex,
            [
                Kex::Curve25519Sha256Libssh,
                Kex::EcdhSha2Nistp521,
                Kex::EcdhSha2Nistp384,
                Kex::EcdhSha2Nistp256
            ]
        );
        assert_eq!(proxy.macs, [Mac::HmacSha256Etm, Mac::HmacSha256]);
        assert_eq!(proxy.host_key_algos, HostKeyAlgo::DEFAULT);
        assert_eq!(proxy.allowed_host_key_fingerprints[0].as_str(), FINGERPRINT);
        // Proxied sessions ask upstream for sftp by name.
        assert_eq!(
            config.subsystems().get("sftp").map(String::as_str),
            Some("sftp")
        );
    }

    #[test]
    fn errors_name_file_line_and_key() {
        let text = "backend: sshproxy\nsshproxy:\n  server: \"\"\n  port: 0\n  \
                    allowedHostKeyFingerprints: [\"MD5:aa:bb\"]\n  ciphers: [aes128-cbc]\n  \
                    kex: [curve448]\n  macs: [hmac-md5]\n  hostKeyAlgos: [ssh-dss]\n  \
                    timeout: 0s\n  clientVersion: \"OpenSSH\"\n";
        let all = messages(yaml(text));
        let expected = [
            "test.yaml:3:11: key `sshproxy.server`",
            "test.yaml:4:9: key `sshproxy.port`",
            "key `sshproxy.username`: required unless `usernamePassThrough` is true",
            "test.yaml:5:32: key `sshproxy.allowedHostKeyFingerprints[0]`: `MD5:aa:bb` is not \
             a SHA256 fingerprint",
            "test.yaml:6:13: key `sshproxy.ciphers[0]`: `aes128-cbc` is considered insecure",
            "test.yaml:7:9: key `sshproxy.kex[0]`",
            "test.yaml:8:10: key `sshproxy.macs[0]`",
            "test.yaml:9:17: key `sshproxy.hostKeyAlgos`: lists only DSA",
            "test.yaml:10:12: key `sshproxy.timeout`",
            "test.yaml:11:18: key `sshproxy.clientVersion`",
        ];
        assert_eq!(all.len(), expected.len(), "{all:#?}");
        for (message, expected) in all.iter().zip(expected) {
            assert!(message.contains(expected), "{message} lacks {expected}");
        }
    }

    #[test]
    fn an_unselected_section_is_only_read() {
        // ContainerSSH writes the section, empty, into every file it saves.
        let loaded = yaml("sshproxy:\n  server: \"\"\n  port: 22\n");
        assert!(loaded.is_ok());
        // Unknown keys are errors even so.
        let all = messages(yaml("sshproxy:\n  allowedHostKeys: []\n"));
        assert!(all[0].contains("sshproxy.allowedHostKeys"), "{all:?}");
    }

    #[test]
    fn fingerprints_as_ssh_keygen_prints_them() {
        let padded = format!("{FINGERPRINT}=");
        assert_eq!(
            Fingerprint::parse(&padded).map(|f| f.0),
            Ok(FINGERPRINT.to_owned())
        );
        assert!(Fingerprint::parse("SHA256:short").is_err());
        assert!(Fingerprint::parse("uNiVztksCsDhcc0u9e8BujQXVUpKZIDTMczCvj3tD2s").is_err());
        assert!(Fingerprint::parse(&FINGERPRINT.replace('u', "%")).is_err());
    }

    #[test]
    fn client_versions_follow_containerssh() {
        assert!(check_client_version("SSH-2.0-ContainerSSH").is_ok());
        assert!(check_client_version("SSH-2.0-sshpod 1.0_beta-x").is_ok());
        assert!(check_client_version("SSH-2.0-ssh_pod").is_err());
        assert!(check_client_version("SSH-1.99-x").is_err());
        assert!(check_client_version("SSH-2.0-x ").is_err());
    }

    #[test]
    fn the_effective_configuration_loads_back() {
        let text = format!(
            "backend: sshproxy\nsshproxy:\n  server: upstream\n  usernamePassThrough: true\n  \
             password: hunter2\n  privateKey: \"-----BEGIN OPENSSH PRIVATE KEY-----\\nhunter2\"\n  \
             allowedHostKeyFingerprints: [\"{FINGERPRINT}\"]\n  \
             hostKeyAlgos: [ssh-ed25519]\n  timeout: 5s\n"
        );
        let config = match yaml(&text) {
            Ok(loaded) => loaded.config,
            Err(e) => panic!("{e}"),
        };
        let again = match parse_str(&config.to_yaml(), Format::Yaml, "again.yaml") {
            Ok(loaded) => loaded.config,
            Err(e) => panic!("{e}\n{}", config.to_yaml()),
        };
        assert_eq!(again, config);
        assert!(!config.to_yaml_redacted().contains("hunter2"));
        assert!(!format!("{config:?}").contains("hunter2"));
    }
}
