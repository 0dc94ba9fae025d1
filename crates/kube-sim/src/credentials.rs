//! What kube-sim keeps across a restart when asked (`--credentials DIR`): the CA's key and the
//! admin and restricted users' tokens, so a restarted kube-sim is the same cluster to clients
//! that kept their kubeconfig. Objects are not kept: they live in memory, so a restart is a
//! cluster whose API server lost its state (etcd), and the pods' containers go with the old
//! process.

use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::Path;

use anyhow::Context;
use rcgen::KeyPair;

const CA_KEY: &str = "ca.key";
const TOKENS: &str = "tokens";

/// The CA's key and the users' tokens.
pub struct Credentials {
    pub ca_key: KeyPair,
    pub admin_token: String,
    pub restricted_token: String,
}

impl Credentials {
    /// Fresh credentials, kept nowhere.
    pub fn generate(token: impl Fn() -> String) -> anyhow::Result<Self> {
        Ok(Self {
            ca_key: KeyPair::generate().context("generating the CA key")?,
            admin_token: token(),
            restricted_token: token(),
        })
    }

    /// Those kept in `dir`, or fresh ones written there (the directory is made, mode 0700).
    pub fn load_or_create(dir: &Path, token: impl Fn() -> String) -> anyhow::Result<Self> {
        let key_path = dir.join(CA_KEY);
        let tokens_path = dir.join(TOKENS);
        if key_path.exists() {
            let pem = fs::read_to_string(&key_path)
                .with_context(|| format!("reading {}", key_path.display()))?;
            let ca_key = KeyPair::from_pem(&pem)
                .with_context(|| format!("{}: not a PEM private key", key_path.display()))?;
            let tokens = fs::read_to_string(&tokens_path)
                .with_context(|| format!("reading {}", tokens_path.display()))?;
            let mut lines = tokens.lines().filter(|l| !l.is_empty());
            let (Some(admin), Some(restricted)) = (lines.next(), lines.next()) else {
                anyhow::bail!(
                    "{}: want two lines, the admin's token and the restricted user's",
                    tokens_path.display()
                );
            };
            return Ok(Self {
                ca_key,
                admin_token: admin.to_owned(),
                restricted_token: restricted.to_owned(),
            });
        }
        let fresh = Self::generate(token)?;
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .with_context(|| format!("making {}", dir.display()))?;
        write_private(
            &tokens_path,
            &format!("{}\n{}\n", fresh.admin_token, fresh.restricted_token),
        )
        .with_context(|| format!("writing {}", tokens_path.display()))?;
        // The key last: its presence says the directory is whole.
        write_private(&key_path, &fresh.ca_key.serialize_pem())
            .with_context(|| format!("writing {}", key_path.display()))?;
        Ok(fresh)
    }
}

fn write_private(path: &Path, text: &str) -> io::Result<()> {
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(text.as_bytes())?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_start_finds_the_credentials_the_first_made() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let kept = dir.path().join("credentials");
        let counter = std::sync::atomic::AtomicU32::new(0);
        let token = || {
            let n = counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            format!("token-{n}")
        };
        let first = Credentials::load_or_create(&kept, token)?;
        let second = Credentials::load_or_create(&kept, token)?;
        assert_eq!(second.admin_token, first.admin_token);
        assert_eq!(second.restricted_token, first.restricted_token);
        assert_ne!(first.admin_token, first.restricted_token);
        assert_eq!(second.ca_key.serialize_der(), first.ca_key.serialize_der());
        Ok(())
    }

    #[test]
    fn a_tokens_file_without_two_tokens_is_refused_by_name() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        Credentials::load_or_create(dir.path(), || "t".to_owned())?;
        fs::write(dir.path().join(TOKENS), "only-one\n")?;
        let Err(e) = Credentials::load_or_create(dir.path(), || "t".to_owned()) else {
            panic!("a tokens file with one token was taken");
        };
        assert!(format!("{e:#}").contains("want two lines"), "{e:#}");
        Ok(())
    }
}
