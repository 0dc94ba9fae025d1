//! OpenSSH's `RevokedKeys`: a file that is either a KRL (`ssh-keygen -k`) or a list of public
//! keys, one per line. It applies to plain keys, to certificates (by serial or key id, and by
//! their key) and to CA keys.
//!
//! The file is parsed once and parsed again when its size, modification time or inode change,
//! so an operator can revoke a key without restarting sshpod. When the file cannot be read or
//! parsed, every key is treated as revoked (OpenSSH does the same): a broken revocation list
//! must not let a revoked key in.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use russh::keys::ssh_key::public::KeyData;
use russh::keys::ssh_key::Certificate;
use tracing::info;

use crate::authorized_keys::parse_key;
use crate::file::{self, Line};
use crate::krl::{self, Krl};
use crate::Error;

/// A revoked-keys file, re-read when it changes. Cheap to clone; clones share the cache.
#[derive(Debug, Clone)]
pub struct RevokedKeys {
    path: PathBuf,
    cache: Arc<Mutex<Option<Cached>>>,
}

#[derive(Debug)]
struct Cached {
    stamp: Stamp,
    list: Arc<List>,
}

/// What identifies a version of the file without reading it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Stamp {
    modified: Option<SystemTime>,
    len: u64,
    inode: u64,
    device: u64,
    ctime: (i64, i64),
}

#[derive(Debug)]
enum List {
    Krl(Krl),
    Keys(Vec<KeyData>),
}

/// One version of a revoked-keys file (see [`RevokedKeys::version`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListVersion(Stamp);

/// What is revoked about a key or certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Revocation {
    /// The key itself (for a certificate: the certified key).
    Key,
    /// The certificate, by serial number or key id.
    Certificate,
    /// The key of the CA that signed the certificate.
    CertificateAuthority,
}

impl RevokedKeys {
    /// Revocations from the file at `path`.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            cache: Arc::default(),
        }
    }

    /// The configured path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether the plain key `key` is revoked. Blocking: may re-read the file.
    pub fn check_key(&self, key: &KeyData) -> Result<Option<Revocation>, Error> {
        let list = self.current()?;
        Ok(list.is_key_revoked(key).then_some(Revocation::Key))
    }

    /// Whether `certificate`, its key or its CA is revoked. Blocking: may re-read the file.
    pub fn check_certificate(
        &self,
        certificate: &Certificate,
    ) -> Result<Option<Revocation>, Error> {
        let list = self.current()?;
        Ok(if list.is_key_revoked(certificate.public_key()) {
            Some(Revocation::Key)
        } else if list.is_key_revoked(certificate.signature_key()) {
            Some(Revocation::CertificateAuthority)
        } else if matches!(&*list, List::Krl(krl) if krl.is_certificate_revoked(certificate)) {
            Some(Revocation::Certificate)
        } else {
            None
        })
    }

    /// The version of the list in force, reading the file again if it changed: two calls give
    /// equal versions exactly when the file did not change between them (by size, times and
    /// inode). Blocking. For a watcher that ends the sessions a new list revokes.
    pub fn version(&self) -> Result<ListVersion, Error> {
        self.load().map(|(_, stamp)| ListVersion(stamp))
    }

    /// The list as the file is now: the cached one when the file has not changed.
    fn current(&self) -> Result<Arc<List>, Error> {
        self.load().map(|(list, _)| list)
    }

    /// The list as the file is now, and the stamp of that version of the file.
    fn load(&self) -> Result<(Arc<List>, Stamp), Error> {
        let read_error = |source| Error::ReadFile {
            path: self.path.clone(),
            source,
        };
        let metadata = std::fs::metadata(&self.path).map_err(read_error)?;
        let stamp = Stamp {
            modified: metadata.modified().ok(),
            len: metadata.len(),
            inode: metadata.ino(),
            device: metadata.dev(),
            ctime: (metadata.ctime(), metadata.ctime_nsec()),
        };
        let mut cache = self
            .cache
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(cached) = cache.as_ref().filter(|c| c.stamp == stamp) {
            return Ok((Arc::clone(&cached.list), stamp));
        }
        let contents = file::read_required(&self.path)?;
        let list = Arc::new(parse(&self.path, &contents)?);
        info!(path = %self.path.display(), entries = list.len(), "revoked keys loaded");
        *cache = Some(Cached {
            stamp: stamp.clone(),
            list: Arc::clone(&list),
        });
        Ok((list, stamp))
    }
}

impl List {
    fn is_key_revoked(&self, key: &KeyData) -> bool {
        match self {
            Self::Krl(krl) => krl.is_key_revoked(key),
            Self::Keys(keys) => keys.contains(key),
        }
    }

    /// For the log: how much the file holds.
    fn len(&self) -> usize {
        match self {
            Self::Krl(krl) => krl.len(),
            Self::Keys(keys) => keys.len(),
        }
    }
}

fn parse(path: &Path, contents: &[u8]) -> Result<List, Error> {
    if contents.starts_with(krl::MAGIC) {
        return Krl::parse(contents)
            .map(List::Krl)
            .map_err(|e| Error::BadFile {
                path: path.to_owned(),
                reason: format!("not a valid KRL: {e}"),
            });
    }
    let mut keys = Vec::new();
    for Line { number, text } in file::lines(contents) {
        let key = text.ok().and_then(|text| parse_key(text).ok());
        match key {
            Some(key) => keys.push(key.key_data().clone()),
            None => {
                // Unlike authorized_keys, skipping a line here would let a key in.
                return Err(Error::BadFile {
                    path: path.to_owned(),
                    reason: format!("line {number} is not a public key"),
                });
            }
        }
    }
    Ok(List::Keys(keys))
}

#[cfg(test)]
mod tests {
    use std::fs;
    use std::process::Command;

    use russh::keys::ssh_key::PublicKey;

    use super::*;

    /// Runs ssh-keygen (installed with the OpenSSH client) in `dir`.
    fn keygen(dir: &Path, args: &[&str]) {
        let status = Command::new("ssh-keygen")
            .args(args)
            .current_dir(dir)
            .stdin(std::process::Stdio::null())
            .status()
            .unwrap();
        assert!(status.success(), "ssh-keygen {args:?}");
    }

    fn new_key(dir: &Path, name: &str) -> KeyData {
        keygen(
            dir,
            &["-q", "-t", "ed25519", "-N", "", "-C", name, "-f", name],
        );
        public(dir, &format!("{name}.pub"))
    }

    fn public(dir: &Path, file: &str) -> KeyData {
        PublicKey::read_openssh_file(dir.join(file))
            .unwrap()
            .key_data()
            .clone()
    }

    /// Signs `name.pub` with `ca` as a user certificate with this serial and key id.
    fn certify(dir: &Path, ca: &str, name: &str, serial: &str, id: &str) -> Certificate {
        keygen(
            dir,
            &[
                "-q",
                "-s",
                ca,
                "-I",
                id,
                "-n",
                "alice",
                "-z",
                serial,
                &format!("{name}.pub"),
            ],
        );
        Certificate::read_file(&dir.join(format!("{name}-cert.pub"))).unwrap()
    }

    #[test]
    fn krl_from_ssh_keygen_revokes_keys_certificates_and_cas() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let _ca = new_key(d, "ca");
        let other_ca = new_key(d, "other_ca");
        let plain = new_key(d, "plain");
        let by_hash = new_key(d, "by_hash");
        let innocent = new_key(d, "innocent");
        let _ = (
            new_key(d, "u1"),
            new_key(d, "u2"),
            new_key(d, "u3"),
            new_key(d, "u4"),
        );
        let serial_5 = certify(d, "ca", "u1", "5", "u1");
        let serial_6 = certify(d, "ca", "u2", "6", "u2");
        let by_id = certify(d, "ca", "u3", "0", "revoked-id");
        let other = certify(d, "other_ca", "u4", "5", "u4");

        let hash_line = String::from_utf8(
            Command::new("ssh-keygen")
                .args(["-l", "-f", "by_hash.pub"])
                .current_dir(d)
                .output()
                .unwrap()
                .stdout,
        )
        .unwrap();
        let fingerprint = hash_line.split_whitespace().nth(1).unwrap().to_owned();
        fs::write(
            d.join("spec"),
            format!("serial: 5\nserial: 100-200\nid: revoked-id\nhash: {fingerprint}\n"),
        )
        .unwrap();
        keygen(
            d,
            &["-k", "-q", "-s", "ca.pub", "-f", "revoked.krl", "spec"],
        );
        // Add plain keys with -u (update): by blob.
        keygen(d, &["-k", "-q", "-u", "-f", "revoked.krl", "plain.pub"]);

        let revoked = RevokedKeys::new(d.join("revoked.krl"));
        assert_eq!(revoked.check_key(&plain).unwrap(), Some(Revocation::Key));
        assert_eq!(revoked.check_key(&by_hash).unwrap(), Some(Revocation::Key));
        assert_eq!(revoked.check_key(&innocent).unwrap(), None);
        assert_eq!(revoked.check_key(&other_ca).unwrap(), None);
        assert_eq!(
            revoked.check_certificate(&serial_5).unwrap(),
            Some(Revocation::Certificate)
        );
        assert_eq!(revoked.check_certificate(&serial_6).unwrap(), None);
        assert_eq!(
            revoked.check_certificate(&by_id).unwrap(),
            Some(Revocation::Certificate)
        );
        assert_eq!(
            revoked.check_certificate(&other).unwrap(),
            None,
            "serial 5 of another CA"
        );

        // Revoking the other CA's key revokes its certificates; the file is re-read.
        keygen(d, &["-k", "-q", "-u", "-f", "revoked.krl", "other_ca.pub"]);
        assert_eq!(
            revoked.check_certificate(&other).unwrap(),
            Some(Revocation::CertificateAuthority)
        );
        // Revoking a certificate's key revokes the certificate.
        keygen(d, &["-k", "-q", "-u", "-f", "revoked.krl", "u2.pub"]);
        assert_eq!(
            revoked.check_certificate(&serial_6).unwrap(),
            Some(Revocation::Key)
        );
    }

    #[test]
    fn krl_revoking_a_certificate_file() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        new_key(d, "ca");
        new_key(d, "u1");
        new_key(d, "u2");
        let cert = certify(d, "ca", "u1", "42", "u1");
        let unrevoked = certify(d, "ca", "u2", "43", "u2");
        keygen(d, &["-k", "-q", "-f", "revoked.krl", "u1-cert.pub"]);
        let revoked = RevokedKeys::new(d.join("revoked.krl"));
        assert_eq!(
            revoked.check_certificate(&cert).unwrap(),
            Some(Revocation::Certificate)
        );
        assert_eq!(revoked.check_certificate(&unrevoked).unwrap(), None);
    }

    #[test]
    fn plain_key_list() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let ca = new_key(d, "ca");
        let bad = new_key(d, "bad");
        let good = new_key(d, "good");
        let cert = certify(d, "ca", "good", "1", "good");
        let list = d.join("revoked");
        fs::write(&list, "# revoked\n\n").unwrap();
        let revoked = RevokedKeys::new(&list);
        assert_eq!(revoked.check_key(&bad).unwrap(), None);

        let bad_line = fs::read_to_string(d.join("bad.pub")).unwrap();
        fs::write(&list, format!("# revoked\n{bad_line}")).unwrap();
        assert_eq!(revoked.check_key(&bad).unwrap(), Some(Revocation::Key));
        assert_eq!(revoked.check_key(&good).unwrap(), None);
        assert_eq!(revoked.check_certificate(&cert).unwrap(), None);

        let ca_line = fs::read_to_string(d.join("ca.pub")).unwrap();
        fs::write(&list, &ca_line).unwrap();
        assert_eq!(
            revoked.check_certificate(&cert).unwrap(),
            Some(Revocation::CertificateAuthority)
        );
        assert_eq!(revoked.check_key(&ca).unwrap(), Some(Revocation::Key));
    }

    #[test]
    fn the_version_changes_with_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let key = new_key(d, "k");
        let list = d.join("revoked");
        fs::write(&list, "# nothing yet\n").unwrap();
        let revoked = RevokedKeys::new(&list);
        let first = revoked.version().unwrap();
        assert_eq!(revoked.version().unwrap(), first, "an untouched file");
        fs::write(&list, fs::read(d.join("k.pub")).unwrap()).unwrap();
        let second = revoked.version().unwrap();
        assert_ne!(second, first);
        assert_eq!(revoked.check_key(&key).unwrap(), Some(Revocation::Key));
        fs::remove_file(&list).unwrap();
        assert!(revoked.version().is_err());
    }

    #[test]
    fn unusable_files_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let key = new_key(dir.path(), "k");
        let missing = RevokedKeys::new(dir.path().join("missing"));
        assert!(missing.check_key(&key).is_err());
        let garbage = dir.path().join("garbage");
        fs::write(&garbage, "not a key\n").unwrap();
        assert!(RevokedKeys::new(&garbage).check_key(&key).is_err());
        let broken_krl = dir.path().join("broken.krl");
        fs::write(&broken_krl, b"SSHKRL\n\0\0\0\0\x01").unwrap();
        let err = RevokedKeys::new(&broken_krl).check_key(&key).unwrap_err();
        assert!(err.to_string().contains("not a valid KRL"), "{err}");
    }
}
