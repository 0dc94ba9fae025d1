//! Host keys: loaded from files or inline PEM (OpenSSH's format, or an Ed25519 key in PKCS#8
//! as `openssl genpkey` and Helm's `genPrivateKey` write it); a missing key file is created as a fresh
//! Ed25519 key (mode 0600) and its fingerprint logged. The configuration file is never
//! rewritten. Host certificates (`ssh.hostCertificates`) are loaded beside them and must each
//! certify one of the host keys.

use std::io::Write;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use russh::keys::ssh_key::private::Ed25519Keypair;
use russh::keys::ssh_key::{Certificate, LineEnding};
use russh::keys::{HashAlg, PrivateKey};

/// The key file used when `ssh.hostkeys` is empty: beside the configuration file.
pub(crate) fn default_path(config_path: &Path) -> PathBuf {
    config_path
        .parent()
        .unwrap_or_else(|| Path::new("."))
        .join("ssh_host_ed25519_key")
}

/// Loads every configured key, generating missing key files.
pub(crate) fn load(entries: &[String], config_path: &Path) -> Result<Vec<PrivateKey>> {
    let default = [default_path(config_path).to_string_lossy().into_owned()];
    let entries = if entries.is_empty() {
        &default[..]
    } else {
        entries
    };
    entries
        .iter()
        .map(|entry| {
            let key = if entry.trim_start().starts_with("-----") {
                parse(entry.trim()).context("parsing an inline host key")?
            } else {
                load_or_generate(Path::new(entry))?
            };
            tracing::info!(
                code = sshpod::log_codes::HOST_KEY,
                algorithm = %key.algorithm(),
                fingerprint = %key.public_key().fingerprint(HashAlg::Sha256),
                "host key"
            );
            Ok(key)
        })
        .collect()
}

/// Loads the host certificates. Each must be a host certificate for one of `keys`: anything
/// else is a configuration mistake, reported at start-up rather than at the first client.
pub(crate) fn load_certificates(paths: &[String], keys: &[PrivateKey]) -> Result<Vec<Certificate>> {
    paths
        .iter()
        .map(|path| {
            let certificate = Certificate::read_file(Path::new(path))
                .with_context(|| format!("reading host certificate {path}"))?;
            if !certificate.cert_type().is_host() {
                bail!(
                    "{path} is a user certificate; a host certificate is made with `ssh-keygen -h`"
                );
            }
            if !keys
                .iter()
                .any(|k| k.public_key().key_data() == certificate.public_key())
            {
                bail!(
                    "host certificate {path} does not certify any of the host keys (ssh.hostkeys)"
                );
            }
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            if now < certificate.valid_after() || now >= certificate.valid_before() {
                tracing::warn!(
                    code = sshpod::log_codes::HOST_KEY,
                    path,
                    "host certificate is outside its validity period; clients will reject it"
                );
            }
            tracing::info!(
                code = sshpod::log_codes::HOST_KEY,
                path,
                key_id = certificate.key_id(),
                serial = certificate.serial(),
                principals = ?certificate.valid_principals(),
                ca = %certificate.signature_key().fingerprint(HashAlg::Sha256),
                "host certificate"
            );
            Ok(certificate)
        })
        .collect()
}

/// This process's user id (the owner of `/proc/self`).
fn own_uid() -> Option<u32> {
    std::fs::metadata("/proc/self").ok().map(|m| m.uid())
}

fn load_or_generate(path: &Path) -> Result<PrivateKey> {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let meta = std::fs::metadata(path)?;
            let mode = meta.permissions().mode();
            // OpenSSH's rule: a key of our own must not be readable by others. A key owned by
            // another user (a Kubernetes Secret mounted with fsGroup is root's, mode 0440) can
            // only be shared as its owner decided.
            if mode & 0o077 != 0 && Some(meta.uid()) == own_uid() {
                bail!(
                    "host key {} is readable by others (mode {:o}); run chmod 600 on it",
                    path.display(),
                    mode & 0o777
                );
            }
            parse(&text).with_context(|| format!("parsing host key {}", path.display()))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => generate(path),
        Err(e) => Err(e).with_context(|| format!("reading host key {}", path.display())),
    }
}

/// The DER of an Ed25519 PKCS#8 v1 private key (RFC 8410) up to its 32-byte seed:
/// `SEQUENCE { INTEGER 0, SEQUENCE { OID 1.3.101.112 }, OCTET STRING { OCTET STRING seed } }`.
const PKCS8_ED25519_PREFIX: [u8; 16] = [
    0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
];

/// A host key in OpenSSH's format, or an Ed25519 key in PKCS#8 PEM (`BEGIN PRIVATE KEY`), the
/// form a Helm chart can generate (Sprig's `genPrivateKey "ed25519"`).
fn parse(text: &str) -> Result<PrivateKey> {
    let trimmed = text.trim();
    let Some(body) = trimmed
        .strip_prefix("-----BEGIN PRIVATE KEY-----")
        .and_then(|rest| rest.strip_suffix("-----END PRIVATE KEY-----"))
    else {
        return Ok(PrivateKey::from_openssh(trimmed)?);
    };
    use base64::Engine as _;
    let compact: String = body.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    let der = base64::engine::general_purpose::STANDARD
        .decode(compact)
        .context("the PKCS#8 key is not valid base64")?;
    let seed = der
        .strip_prefix(&PKCS8_ED25519_PREFIX[..])
        .and_then(|seed| <[u8; 32]>::try_from(seed).ok())
        .context("a PKCS#8 host key must be an Ed25519 key (RFC 8410, without a public key)")?;
    Ok(PrivateKey::from(Ed25519Keypair::from_seed(&seed)))
}

fn generate(path: &Path) -> Result<PrivateKey> {
    // rand's thread RNG is a CSPRNG seeded from the operating system.
    let key = PrivateKey::from(Ed25519Keypair::from_seed(&rand::random::<[u8; 32]>()));
    let pem = key
        .to_openssh(LineEnding::LF)
        .context("encoding the host key")?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("creating the directory for host key {}", path.display()))?;
    }
    // create_new: never overwrite a key another process just wrote.
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("creating host key {}", path.display()))?;
    file.write_all(pem.as_bytes())
        .with_context(|| format!("writing host key {}", path.display()))?;
    tracing::info!(
        code = sshpod::log_codes::HOST_KEY,
        path = %path.display(),
        "generated a new Ed25519 host key"
    );
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;
    use russh::keys::Algorithm;

    #[test]
    fn generates_a_private_key_file_once_and_reuses_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys/host");
        let entries = [path.to_string_lossy().into_owned()];
        let first = load(&entries, Path::new("/nonexistent/config.yaml")).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let second = load(&entries, Path::new("/nonexistent/config.yaml")).unwrap();
        assert_eq!(first[0].public_key(), second[0].public_key());
        assert_eq!(first[0].algorithm(), Algorithm::Ed25519);
    }

    #[test]
    fn reads_an_ed25519_key_in_pkcs8_as_helm_generates_it() {
        // `openssl genpkey -algorithm ed25519`; the public key is openssl's, in OpenSSH form.
        let pem = "-----BEGIN PRIVATE KEY-----\n\
                   MC4CAQAwBQYDK2VwBCIEIIGN778ihYTqwWg17q3iC8QqtW+/sKc8aD1/KtaiiVrA\n\
                   -----END PRIVATE KEY-----\n";
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("host");
        std::fs::write(&path, pem).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let from_file = load(&[path.to_string_lossy().into_owned()], &path).unwrap();
        let inline = load(&[pem.to_owned()], &path).unwrap();
        let public =
            "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIERAZaiQezeZydxNnEgTVGLb1JHcmaOYdx93VMGBSdyt";
        assert_eq!(from_file[0].public_key().to_openssh().unwrap(), public);
        assert_eq!(inline[0].public_key(), from_file[0].public_key());
        // Other PKCS#8 keys (here a P-256 key's first bytes) are refused with a reason.
        let p256 = "-----BEGIN PRIVATE KEY-----\nMIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg\n-----END PRIVATE KEY-----";
        let err = load(&[p256.to_owned()], &path).unwrap_err();
        assert!(
            format!("{err:#}").contains("must be an Ed25519 key"),
            "{err:#}"
        );
    }

    #[test]
    fn refuses_a_key_others_can_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("host");
        load(&[path.to_string_lossy().into_owned()], &path).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = load(&[path.to_string_lossy().into_owned()], &path).unwrap_err();
        assert!(format!("{err:#}").contains("chmod 600"));
    }

    #[test]
    fn the_default_key_lives_beside_the_config() {
        assert_eq!(
            default_path(Path::new("/etc/sshpod/config.yaml")),
            Path::new("/etc/sshpod/ssh_host_ed25519_key")
        );
    }
}
