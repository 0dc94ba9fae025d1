//! Built-in authentication: authorized keys files and htpasswd files, run off the async
//! threads because hashing is slow on purpose.

use russh::keys::PublicKey;
use russh::MethodSet;
use sshpod_auth::{AuthorizedKeys, Htpasswd, Password, UserName};
use sshpod_config::{AuthConfig, PasswordMethod, PublicKeyMethod};

/// Decides logins. An unknown user and a wrong credential give the same answer.
#[derive(Debug, Clone)]
pub(crate) struct Authenticator {
    keys: Option<AuthorizedKeys>,
    passwords: Option<Htpasswd>,
}

impl Authenticator {
    pub(crate) fn from_config(config: &AuthConfig) -> Self {
        let keys = match config.public_key.method {
            PublicKeyMethod::AuthorizedKeys => Some(AuthorizedKeys::new(
                config.public_key.authorized_keys.file.clone(),
            )),
            _ => None,
        };
        let passwords = match config.password.method {
            PasswordMethod::Htpasswd => Some(Htpasswd::new(config.password.htpasswd.file.clone())),
            _ => None,
        };
        Self { keys, passwords }
    }

    /// The methods to offer clients.
    pub(crate) fn methods(&self) -> MethodSet {
        let mut methods = MethodSet::empty();
        if self.keys.is_some() {
            methods.push(russh::MethodKind::PublicKey);
        }
        if self.passwords.is_some() {
            methods.push(russh::MethodKind::Password);
        }
        methods
    }

    /// Whether `key` may log in as `user`.
    pub(crate) async fn public_key(&self, user: &str, key: &PublicKey) -> bool {
        let (Some(keys), Ok(user)) = (self.keys.clone(), UserName::try_from(user)) else {
            return false;
        };
        let key = key.clone();
        run_check("public key", move || keys.is_authorized(&user, &key)).await
    }

    /// Whether `password` is `user`'s password.
    pub(crate) async fn password(&self, user: &str, password: &str) -> bool {
        let Some(passwords) = self.passwords.clone() else {
            return false;
        };
        let Ok(user) = UserName::try_from(user) else {
            return false;
        };
        let password = Password::new(password);
        run_check("password", move || passwords.verify(&user, &password)).await
    }
}

/// Runs a blocking credential check off the async threads. An error (an unreadable file)
/// refuses the login and is logged; it never reveals more to the client than a refusal.
async fn run_check<F>(what: &'static str, check: F) -> bool
where
    F: FnOnce() -> Result<bool, sshpod_auth::Error> + Send + 'static,
{
    match tokio::task::spawn_blocking(check).await {
        Ok(Ok(accepted)) => accepted,
        Ok(Err(e)) => {
            tracing::warn!(
                check = what,
                error = &e as &dyn std::error::Error,
                "credential check failed"
            );
            false
        }
        Err(_) => false,
    }
}
