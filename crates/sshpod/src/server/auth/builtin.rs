//! Built-in authentication: authorized keys files, user certificates, revoked keys and
//! htpasswd files, run off the async threads because file reads block and hashing is slow on
//! purpose.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use russh::keys::ssh_key::Certificate;
use russh::keys::PublicKey;
use russh::MethodSet;
use sshpod_auth::{
    AuthorizedKeys, AuthorizedPrincipals, Decision, Grant, Htpasswd, KeyPolicy, Password,
    RevokedKeys, TrustedCaKeys, UserName,
};
use sshpod_config::{AuthConfig, PasswordMethod, PublicKeyMethod};
use tokio::sync::Semaphore;

/// Decides logins. An unknown user and a wrong credential give the same answer.
#[derive(Debug, Clone)]
pub(crate) struct Authenticator {
    keys: Option<KeyPolicy>,
    passwords: Option<Htpasswd>,
    /// `revokedKeys`, also for keys and certificates that webhooks decide on.
    revoked: Option<RevokedKeys>,
    /// Password hashing is slow on purpose: at most one verification per CPU runs at once, so a
    /// crowd of guessers queues behind itself instead of taking every blocking thread.
    hashing: Arc<Semaphore>,
}

impl Authenticator {
    pub(crate) fn from_config(config: &AuthConfig) -> Self {
        // One value for both checks: clones share the parsed file.
        let revoked = (!config.public_key.trust.revoked_keys.is_empty())
            .then(|| RevokedKeys::new(&config.public_key.trust.revoked_keys));
        let keys = key_policy(config, revoked.clone());
        let passwords = match config.password.method {
            PasswordMethod::Htpasswd => Some(Htpasswd::new(config.password.htpasswd.file.clone())),
            _ => None,
        };
        let cpus = std::thread::available_parallelism().map_or(1, usize::from);
        Self {
            keys,
            passwords,
            revoked,
            hashing: Arc::new(Semaphore::new(cpus)),
        }
    }

    /// Whether `key` (or, for a certificate, it, its key or its CA) is revoked. An unreadable
    /// revocation list revokes everything, as for built-in keys.
    pub(crate) async fn is_revoked(
        &self,
        key: &russh::keys::ssh_key::public::KeyData,
        certificate: Option<&Certificate>,
    ) -> bool {
        let Some(revoked) = self.revoked.clone() else {
            return false;
        };
        let key = key.clone();
        let certificate = certificate.cloned();
        let verdict = tokio::task::spawn_blocking(move || match &certificate {
            Some(c) => revoked.check_certificate(c),
            None => revoked.check_key(&key),
        })
        .await;
        match verdict {
            Ok(Ok(None)) => false,
            Ok(Ok(Some(revocation))) => {
                tracing::info!(?revocation, "login refused: the key is revoked");
                true
            }
            Ok(Err(e)) => {
                tracing::warn!(
                    error = &e as &dyn std::error::Error,
                    "revoked keys cannot be read; refusing the key"
                );
                true
            }
            Err(_) => true,
        }
    }

    /// The revoked keys file, if one is configured (clones share its parsed copy).
    pub(crate) fn revoked_keys(&self) -> Option<RevokedKeys> {
        self.revoked.clone()
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

    /// Whether to tell a client that `key` would do, before it signs (see
    /// [`KeyPolicy::may_accept`]).
    pub(crate) async fn public_key_offered(
        &self,
        user: &str,
        key: &PublicKey,
        peer: IpAddr,
    ) -> bool {
        let (Some(keys), Ok(user)) = (self.keys.clone(), UserName::try_from(user)) else {
            return false;
        };
        let key = key.clone();
        run_check("public key", move || keys.may_accept(&user, &key, peer)).await
    }

    /// Whether `key` may log in as `user` from `peer`, and with what restrictions.
    pub(crate) async fn public_key(
        &self,
        user: &str,
        key: &PublicKey,
        peer: IpAddr,
    ) -> Option<Grant> {
        let (Some(keys), Ok(user)) = (self.keys.clone(), UserName::try_from(user)) else {
            return None;
        };
        let key = key.clone();
        run_decision("public key", move || keys.check_key(&user, &key, peer)).await
    }

    /// Whether `certificate` may log in as `user` from `peer`, and with what restrictions.
    pub(crate) async fn certificate(
        &self,
        user: &str,
        certificate: &Certificate,
        peer: IpAddr,
    ) -> Option<Grant> {
        let (Some(keys), Ok(user)) = (self.keys.clone(), UserName::try_from(user)) else {
            return None;
        };
        let certificate = certificate.clone();
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        run_decision("certificate", move || {
            keys.check_certificate(&user, &certificate, peer, now)
        })
        .await
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
        let Ok(slot) = Arc::clone(&self.hashing).acquire_owned().await else {
            return false;
        };
        // The slot goes with the verification: a client that leaves does not free it early.
        run_check("password", move || {
            let _slot = slot;
            passwords.verify(&user, &password)
        })
        .await
    }
}

/// The built-in public-key policy, if any source of keys is configured.
fn key_policy(config: &AuthConfig, revoked: Option<RevokedKeys>) -> Option<KeyPolicy> {
    let public_key = &config.public_key;
    let mut policy = KeyPolicy::new();
    if public_key.method == PublicKeyMethod::AuthorizedKeys {
        policy = policy
            .with_authorized_keys(AuthorizedKeys::new(public_key.authorized_keys.file.clone()));
    }
    let trust = &public_key.trust;
    if trust.trusts_certificates() {
        policy = policy.with_trusted_user_ca_keys(TrustedCaKeys::new(&trust.trusted_user_ca_keys));
        if !trust.authorized_principals_file.is_empty() {
            policy = policy.with_authorized_principals(AuthorizedPrincipals::new(
                trust.authorized_principals_file.clone(),
            ));
        }
    }
    if let Some(revoked) = revoked {
        policy = policy.with_revoked_keys(revoked);
    }
    policy.accepts_keys().then_some(policy)
}

/// Runs a blocking key check off the async threads. A refusal is logged with its reason (for
/// the operator; the client learns nothing more than "no"); an error refuses too.
async fn run_decision<F>(what: &'static str, check: F) -> Option<Grant>
where
    F: FnOnce() -> Result<Decision, sshpod_auth::Error> + Send + 'static,
{
    match tokio::task::spawn_blocking(check).await {
        Ok(Ok(Decision::Accept(grant))) => Some(grant),
        Ok(Ok(Decision::Refuse(reason))) => {
            tracing::info!(check = what, %reason, "key refused");
            None
        }
        Ok(Err(e)) => {
            tracing::warn!(
                check = what,
                error = &e as &dyn std::error::Error,
                "credential check failed"
            );
            None
        }
        Err(_) => None,
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
