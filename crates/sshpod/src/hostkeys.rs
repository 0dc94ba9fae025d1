//! Host keys: loaded from files or inline PEM; a missing key file is created as a fresh
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
                PrivateKey::from_openssh(entry.trim()).context("parsing an inline host key")?
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
            PrivateKey::from_openssh(&text)
                .with_context(|| format!("parsing host key {}", path.display()))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => generate(path),
        Err(e) => Err(e).with_context(|| format!("reading host key {}", path.display())),
    }
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
