//! Password authentication from an Apache-style `htpasswd` file.
//!
//! Each line is `user:hash`; blank lines and lines starting with `#` are ignored, and the first
//! line for a user wins. Supported hashes are bcrypt (`$2y$`, `$2b$`, `$2a$`, as written by
//! `htpasswd -B`), SHA-512-crypt (`$6$`, with or without `rounds=`, as written by
//! `mkpasswd -m sha-512` or `openssl passwd -6`) and Argon2id PHC strings (`$argon2id$`). Any
//! other scheme (`{SHA}`, `$apr1$`, DES crypt, plain text, ...) never matches.
//!
//! Every attempt spends the time of one hash verification of the file's own kind, whether or not
//! the user exists: for an unknown user the password is checked against another user's hash
//! (and the answer thrown away), so response times reveal neither which users exist nor which
//! scheme is in use, and an unknown user costs no more than a real one.

use std::hint::black_box;
use std::path::{Path, PathBuf};

use argon2::password_hash::phc::PasswordHash;
use argon2::{Argon2, PasswordVerifier};
use sha_crypt::ShaCrypt;
use tracing::warn;

use crate::file::{self, Line};
use crate::{Error, Password, UserName};

/// A bcrypt hash (cost 10) of a password nobody uses, verified when the user is unknown and the
/// file has no usable hash to stand in. Made with libxcrypt's `crypt(3)`.
const DUMMY_BCRYPT_HASH: &str = "$2b$10$c3NocG9kLWR1bW15LXNhb.96JMQy80ELTCIGYk.y.zvebifRT.oG.";

/// Largest Argon2 memory cost accepted, in KiB (1 GiB). A larger value in the file is refused
/// rather than allocated on every login attempt.
const MAX_ARGON2_MEMORY_KIB: u32 = 1024 * 1024;

/// Password authentication from an htpasswd file (`user:hash` lines).
///
/// The file is re-read on every check, so edits take effect at the next login. Checks are
/// blocking and CPU-heavy by design: call them from `tokio::task::spawn_blocking`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Htpasswd {
    path: PathBuf,
}

impl Htpasswd {
    /// Reads users and password hashes from the file at `path`.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into() }
    }

    /// The file this reads.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `Ok(true)` when `password` matches `user`'s hash.
    ///
    /// An unknown user, or a line with an unsupported or malformed hash, gives `Ok(false)` after
    /// a dummy verification, so the attempt costs the same time. A file that cannot be read
    /// (including a missing one) is an error. Blocking and CPU-heavy: use `spawn_blocking`.
    pub fn verify(&self, user: &UserName, password: &Password) -> Result<bool, Error> {
        let contents = file::read_required(&self.path)?;
        let Some((line, hash)) = find_user(&self.path, &contents, user) else {
            spend_dummy_verification(password, &contents);
            return Ok(false);
        };
        match verify_hash(password, hash) {
            Verdict::Match => Ok(true),
            Verdict::Mismatch => Ok(false),
            Verdict::Unsupported => {
                warn!(
                    file = %self.path.display(),
                    line,
                    "unsupported password hash scheme (use bcrypt, SHA-512-crypt or Argon2id); \
                     this line never matches"
                );
                spend_dummy_verification(password, &contents);
                Ok(false)
            }
            Verdict::Malformed(reason) => {
                warn!(
                    file = %self.path.display(),
                    line,
                    %reason,
                    "malformed password hash; this line never matches"
                );
                spend_dummy_verification(password, &contents);
                Ok(false)
            }
        }
    }
}

/// The hash on the first line for `user`, with its line number.
pub(crate) fn find_user<'a>(
    path: &Path,
    contents: &'a [u8],
    user: &UserName,
) -> Option<(usize, &'a str)> {
    for Line { number, text } in file::lines(contents) {
        let Ok(text) = text else {
            warn!(file = %path.display(), line = number, "skipping htpasswd line that is not valid UTF-8");
            continue;
        };
        let Some((name, hash)) = text.split_once(':') else {
            warn!(file = %path.display(), line = number, "skipping htpasswd line without ':'");
            continue;
        };
        if name == user.as_str() {
            return Some((number, hash));
        }
    }
    None
}

/// The outcome of checking a password against one stored hash.
#[derive(Debug, PartialEq)]
enum Verdict {
    Match,
    Mismatch,
    Unsupported,
    /// The hash has a supported prefix but cannot be used. Holds a short reason for the log,
    /// never the hash itself.
    Malformed(String),
}

/// Verifies in constant time with respect to the hash contents (each library compares with a
/// constant-time equality).
fn verify_hash(password: &Password, hash: &str) -> Verdict {
    let password = password.expose();
    if ["$2y$", "$2b$", "$2a$"].iter().any(|p| hash.starts_with(p)) {
        match bcrypt::verify(password, hash) {
            Ok(true) => Verdict::Match,
            Ok(false) => Verdict::Mismatch,
            Err(e) => Verdict::Malformed(e.to_string()),
        }
    } else if hash.starts_with("$6$") {
        password_hash_verdict(ShaCrypt::SHA512.verify_password(password.as_bytes(), hash))
    } else if hash.starts_with("$argon2id$") {
        verify_argon2id(password, hash)
    } else {
        Verdict::Unsupported
    }
}

fn verify_argon2id(password: &str, hash: &str) -> Verdict {
    let parsed = match PasswordHash::new(hash) {
        Ok(parsed) => parsed,
        Err(e) => return Verdict::Malformed(e.to_string()),
    };
    match argon2::Params::try_from(&parsed) {
        Ok(params) if params.m_cost() > MAX_ARGON2_MEMORY_KIB => {
            return Verdict::Malformed(format!(
                "memory cost m={} KiB is above the limit of {MAX_ARGON2_MEMORY_KIB} KiB",
                params.m_cost()
            ))
        }
        Ok(_) => {}
        Err(e) => return Verdict::Malformed(e.to_string()),
    }
    password_hash_verdict(Argon2::default().verify_password(password.as_bytes(), &parsed))
}

fn password_hash_verdict(result: Result<(), argon2::password_hash::Error>) -> Verdict {
    match result {
        Ok(()) => Verdict::Match,
        Err(argon2::password_hash::Error::PasswordInvalid) => Verdict::Mismatch,
        Err(e) => Verdict::Malformed(e.to_string()),
    }
}

/// Spends the time of a real verification of the file's kind: against the first usable hash
/// in `contents` (another user's), else a bcrypt hash of cost 10. The result is thrown away.
fn spend_dummy_verification(password: &Password, contents: &[u8]) {
    let stand_in = stand_in_hash(contents);
    // black_box keeps the compiler from dropping a computation whose result is unused.
    let _ = black_box(verify_hash(black_box(password), black_box(stand_in)));
}

/// The first hash of a supported scheme in `contents`, else [`DUMMY_BCRYPT_HASH`].
pub(crate) fn stand_in_hash(contents: &[u8]) -> &str {
    file::lines(contents)
        .filter_map(|Line { text, .. }| text.ok())
        .filter_map(|text| text.split_once(':').map(|(_, hash)| hash.trim()))
        .find(|hash| {
            ["$2y$", "$2b$", "$2a$", "$6$", "$argon2id$"]
                .iter()
                .any(|p| hash.starts_with(p))
        })
        .unwrap_or(DUMMY_BCRYPT_HASH)
}

#[cfg(test)]
mod tests {
    use std::fs;

    use argon2::PasswordHasher;

    use super::*;

    const PASSWORD: &str = "correct horse";

    fn user(name: &str) -> UserName {
        UserName::try_from(name).unwrap()
    }

    fn setup(contents: &str) -> (tempfile::TempDir, Htpasswd) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("htpasswd");
        fs::write(&path, contents).unwrap();
        (dir, Htpasswd::new(path))
    }

    /// Checks that `hash` accepts PASSWORD and rejects others, through a file.
    fn assert_scheme_works(hash: &str) {
        let (_dir, htpasswd) = setup(&format!("# users\n\nbob:$2y$04$invalid\nalice:{hash}\n"));
        let alice = user("alice");
        assert!(htpasswd.verify(&alice, &PASSWORD.into()).unwrap(), "{hash}");
        assert!(!htpasswd.verify(&alice, &"wrong".into()).unwrap(), "{hash}");
        assert!(!htpasswd.verify(&alice, &"".into()).unwrap(), "{hash}");
    }

    #[test]
    fn an_unknown_user_is_checked_against_a_hash_of_the_files_own_kind() {
        // SHA-512-crypt with the default 5,000 rounds: much cheaper than bcrypt of cost 10, which
        // an unknown user used to cost (18 times a real user's attempt).
        let sha = "$6$saltsalt$hRM5XZ86KXEw9UOmjigeVqFgULtFB2sgpC9lXQDfMib3Zgw7mEiUvBJI2EplzfAqxL5Vvwp2scFtv/uamSo5z0";
        let contents = format!("# users\nbob:{{SHA}}abc\nalice:{sha}\ncarol:$2y$12$x\n");
        assert_eq!(stand_in_hash(contents.as_bytes()), sha);
        assert_eq!(stand_in_hash(b"bob:{SHA}abc\n"), DUMMY_BCRYPT_HASH);
        assert_eq!(stand_in_hash(b""), DUMMY_BCRYPT_HASH);
        let (_dir, htpasswd) = setup(&contents);
        assert!(
            !htpasswd.verify(&user("mallory"), &PASSWORD.into()).unwrap(),
            "never a match"
        );
    }

    #[test]
    fn bcrypt_hashes() {
        let parts = bcrypt::hash_with_result(PASSWORD, 4).unwrap();
        for version in [
            bcrypt::Version::TwoY,
            bcrypt::Version::TwoB,
            bcrypt::Version::TwoA,
        ] {
            assert_scheme_works(&parts.format_for_version(version));
        }
        // As `htpasswd -B -C 5` writes it (made with libxcrypt's crypt(3)).
        assert_scheme_works("$2y$05$abcdefghijklmnopqrstuuHNbAKRhpaujgo33bRWs.NLUTJO3lOy2");
    }

    #[test]
    fn sha512_crypt_hashes() {
        let params = sha_crypt::Params::new(sha_crypt::Params::ROUNDS_MIN).unwrap();
        let hasher = ShaCrypt::new(sha_crypt::Algorithm::Sha512Crypt, params);
        let hash = sha_crypt::PasswordHasher::hash_password_with_salt(
            &hasher,
            PASSWORD.as_bytes(),
            b"saltsalt",
        )
        .unwrap();
        assert!(hash.as_str().starts_with("$6$rounds=1000$"), "{hash}");
        assert_scheme_works(hash.as_str());
        // Made with libxcrypt's crypt(3): with rounds=, and with the default 5000 rounds.
        assert_scheme_works(
            "$6$rounds=1000$saltsaltsalt$Dt0JGUnDdc4DdUjlyySCHRPx7U2pABqWbPrinz5ntgKXqDPocxu0xlsHum4.yrEVleQdkaDZxTsKnM8ZF88Lz1",
        );
        assert_scheme_works(
            "$6$saltsaltsalt$Cy2drr8kDRji6smvDcT28wkqtq0R0VzVL5CkrjPQCITc5d/31j94knt9rGTcVSyjLXfjsiIsBh5ee8qR/3QDx1",
        );
    }

    #[test]
    fn sha256_crypt_is_not_accepted() {
        let hasher = ShaCrypt::new(
            sha_crypt::Algorithm::Sha256Crypt,
            sha_crypt::Params::new(sha_crypt::Params::ROUNDS_MIN).unwrap(),
        );
        let hash = sha_crypt::PasswordHasher::hash_password_with_salt(
            &hasher,
            PASSWORD.as_bytes(),
            b"saltsalt",
        )
        .unwrap();
        assert_eq!(
            verify_hash(&PASSWORD.into(), hash.as_str()),
            Verdict::Unsupported
        );
    }

    #[test]
    fn argon2id_hashes() {
        let hash = Argon2::default()
            .hash_password(PASSWORD.as_bytes())
            .unwrap()
            .to_string();
        assert!(hash.starts_with("$argon2id$"), "{hash}");
        assert_scheme_works(&hash);
    }

    #[test]
    fn argon2_memory_cost_is_capped() {
        let hash =
            "$argon2id$v=19$m=4194304,t=1,p=1$c2FsdHNhbHQ$YWJjZGVmZ2hpamtsbW5vcHFyc3R1dnd4eXo";
        match verify_hash(&PASSWORD.into(), hash) {
            Verdict::Malformed(reason) => assert!(reason.contains("memory cost"), "{reason}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn unknown_user_is_rejected() {
        let hash = bcrypt::hash(PASSWORD, 4).unwrap();
        let (_dir, htpasswd) = setup(&format!("alice:{hash}\n"));
        assert!(!htpasswd.verify(&user("mallory"), &PASSWORD.into()).unwrap());
        // Prefix of an existing name, and a name that only differs in case.
        assert!(!htpasswd.verify(&user("alic"), &PASSWORD.into()).unwrap());
        assert!(!htpasswd.verify(&user("Alice"), &PASSWORD.into()).unwrap());
    }

    #[test]
    fn dummy_hash_is_a_valid_cost_10_bcrypt_hash() {
        let parts: bcrypt::HashParts = DUMMY_BCRYPT_HASH.parse().unwrap();
        assert_eq!(parts.get_cost(), 10);
        assert!(bcrypt::verify("sshpod-dummy-password", DUMMY_BCRYPT_HASH).unwrap());
    }

    #[test]
    fn unsupported_schemes_never_match() {
        let lines = [
            // The password itself.
            PASSWORD.to_owned(),
            // htpasswd -s (SHA-1), htpasswd -m (APR1-MD5), htpasswd -d (DES crypt).
            "{SHA}not-checked=".to_owned(),
            "$apr1$salt$hash".to_owned(),
            "rl0bd9Kqe4iSE".to_owned(),
            "$argon2i$v=19$m=16,t=2,p=1$c2FsdHNhbHQ$aGFzaA".to_owned(),
            String::new(),
        ];
        for hash in lines {
            let (_dir, htpasswd) = setup(&format!("alice:{hash}\n"));
            assert!(
                !htpasswd.verify(&user("alice"), &PASSWORD.into()).unwrap(),
                "{hash:?}"
            );
            assert!(
                !htpasswd
                    .verify(&user("alice"), &hash.as_str().into())
                    .unwrap(),
                "{hash:?}"
            );
        }
    }

    #[test]
    fn malformed_hashes_and_lines_never_match() {
        let contents = "no colon here\nalice:$2y$05$tooshort\nbob:$6$\ncarol:$argon2id$garbage\n";
        let (_dir, htpasswd) = setup(contents);
        for name in ["alice", "bob", "carol"] {
            assert!(!htpasswd.verify(&user(name), &PASSWORD.into()).unwrap());
        }
    }

    #[test]
    fn first_line_for_a_user_wins_and_crlf_is_accepted() {
        let first = bcrypt::hash("first", 4).unwrap();
        let second = bcrypt::hash("second", 4).unwrap();
        let (_dir, htpasswd) = setup(&format!("alice:{first}\r\nalice:{second}\r\n"));
        assert!(htpasswd.verify(&user("alice"), &"first".into()).unwrap());
        assert!(!htpasswd.verify(&user("alice"), &"second".into()).unwrap());
    }

    #[test]
    fn file_is_reread_on_every_attempt() {
        let (dir, htpasswd) = setup("");
        assert!(!htpasswd.verify(&user("alice"), &PASSWORD.into()).unwrap());
        let hash = bcrypt::hash(PASSWORD, 4).unwrap();
        fs::write(dir.path().join("htpasswd"), format!("alice:{hash}\n")).unwrap();
        assert!(htpasswd.verify(&user("alice"), &PASSWORD.into()).unwrap());
    }

    #[test]
    fn missing_file_is_an_error_naming_it() {
        let htpasswd = Htpasswd::new("/nonexistent/sshpod/htpasswd");
        let err = htpasswd
            .verify(&user("alice"), &PASSWORD.into())
            .unwrap_err();
        assert!(matches!(err, Error::ReadFile { .. }), "{err:?}");
        assert_eq!(err.to_string(), "cannot read /nonexistent/sshpod/htpasswd");
    }
}
