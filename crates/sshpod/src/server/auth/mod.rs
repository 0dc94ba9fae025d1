//! Deciding logins, in one place: which check answers each method, in which order, and what an
//! accepted answer goes through before the login is accepted.
//!
//! For keys and certificates: the built-in checks first (`authorized_keys`, trusted CAs; they
//! consult `revokedKeys` themselves); a key they do not accept goes to the public-key webhook,
//! if there is one, unless it is revoked. For passwords: the webhook if there is one, else the
//! htpasswd file. Keyboard-interactive is the webhook's alone. Every accepted answer then goes
//! through [`accept::finish`] (authorization webhook, config server), which accepts the login.
//! A refused attempt is logged with its reason; the client learns only "no".

mod accept;
mod builtin;
mod certificate_info;
mod login_key;
mod outcome;
mod webhook;

use russh::keys::ssh_key::Certificate;
use russh::keys::HashAlg;
use russh::keys::PublicKey;
use russh::server::Auth;
use sshpod_auth::{Grant, Restrictions};
use sshpod_config::Secret;
use sshpod_core::event::Cause;
use sshpod_core::{AuthMethod, Backend, Credential, EventKind};
use sshpod_webhook::protocol::{AuthResponse, Metadata};

pub(crate) use builtin::Authenticator;
pub(crate) use login_key::LoginKey;
pub(crate) use outcome::Outcome;
pub(crate) use webhook::{LoginState, Webhooks};

use crate::server::connection::ConnectionState;

/// The result of one authentication check.
#[derive(Debug, Clone)]
pub(crate) enum Step {
    /// Authenticated, as `username`, with what the webhook added.
    Accepted {
        username: String,
        metadata: Metadata,
    },
    /// Wrong credentials (or an unknown user).
    Rejected,
    /// The webhook could not answer.
    Unavailable(Cause),
}

impl Step {
    fn from_response(user: &str, mut response: AuthResponse) -> Self {
        if !response.success {
            return Step::Rejected;
        }
        let metadata = response.take_metadata();
        let username = response
            .authenticated_as()
            .unwrap_or_else(|| user.to_owned());
        Step::Accepted { username, metadata }
    }

    fn accepted(user: &str) -> Self {
        Step::Accepted {
            username: user.to_owned(),
            metadata: Metadata::default(),
        }
    }
}

/// One authentication attempt: how, and with what (for the record).
pub(crate) struct Attempt {
    pub(crate) method: AuthMethod,
    pub(crate) credential: Credential,
    /// The key or certificate, for the checks that last as long as the connection.
    pub(crate) key: Option<LoginKey>,
}

impl Attempt {
    fn key(key: &PublicKey) -> Self {
        Self {
            method: AuthMethod::PublicKey,
            credential: Credential {
                key: Some(key.fingerprint(HashAlg::Sha256).to_string()),
                ..Credential::default()
            },
            key: Some(LoginKey::plain(key)),
        }
    }

    fn certificate(certificate: &Certificate) -> Self {
        Self {
            method: AuthMethod::Certificate,
            credential: Credential {
                key: Some(
                    certificate
                        .public_key()
                        .fingerprint(HashAlg::Sha256)
                        .to_string(),
                ),
                certificate: Some((certificate.key_id().to_owned(), certificate.serial())),
                ..Credential::default()
            },
            key: Some(LoginKey::certificate(certificate)),
        }
    }

    fn password(password: &str) -> Self {
        Self {
            method: AuthMethod::Password,
            credential: Credential {
                password: Some(Secret::new(password.to_owned())),
                ..Credential::default()
            },
            key: None,
        }
    }

    fn keyboard_interactive() -> Self {
        Self {
            method: AuthMethod::KeyboardInteractive,
            credential: Credential::default(),
            key: None,
        }
    }
}

/// The answer to one authentication request, and what an accepted key or certificate
/// restricts.
pub(crate) struct Decided {
    pub(crate) auth: Auth,
    pub(crate) restrictions: Option<Restrictions>,
}

impl From<Auth> for Decided {
    fn from(auth: Auth) -> Self {
        Self {
            auth,
            restrictions: None,
        }
    }
}

/// Whether to tell the client that `key` would do, before it signs.
pub(crate) async fn public_key_offered<B: Backend>(
    conn: &ConnectionState<B>,
    user: &str,
    key: &PublicKey,
) -> bool {
    // The webhook decides after the signature, when it can also be told whether the key came
    // in a certificate (an offer does not say).
    conn.shared.webhooks.has_public_key()
        || conn
            .shared
            .auth
            .public_key_offered(user, key, conn.peer.ip())
            .await
}

/// A signed-for plain key.
pub(crate) async fn public_key<B: Backend>(
    conn: &ConnectionState<B>,
    user: &str,
    key: &PublicKey,
) -> Decided {
    let attempt = Attempt::key(key);
    let grant = conn.shared.auth.public_key(user, key, conn.peer.ip()).await;
    if grant.is_some() || !conn.shared.webhooks.has_public_key() {
        return granted(conn, user, attempt, grant).await;
    }
    let step = if conn.shared.auth.is_revoked(key.key_data(), None).await {
        Step::Rejected
    } else {
        webhook::public_key(conn, user, key).await
    };
    accept::finish(conn, user, attempt, step).await.into()
}

/// A signed-for certificate.
pub(crate) async fn certificate<B: Backend>(
    conn: &ConnectionState<B>,
    user: &str,
    certificate: &Certificate,
) -> Decided {
    let attempt = Attempt::certificate(certificate);
    let grant = conn
        .shared
        .auth
        .certificate(user, certificate, conn.peer.ip())
        .await;
    if grant.is_some() || !conn.shared.webhooks.has_public_key() {
        return granted(conn, user, attempt, grant).await;
    }
    let revoked = conn
        .shared
        .auth
        .is_revoked(certificate.public_key(), Some(certificate))
        .await;
    let step = if revoked {
        Step::Rejected
    } else {
        webhook::certificate(conn, user, certificate).await
    };
    accept::finish(conn, user, attempt, step).await.into()
}

/// A password.
pub(crate) async fn password<B: Backend>(
    conn: &ConnectionState<B>,
    user: &str,
    password: &str,
) -> Auth {
    let attempt = Attempt::password(password);
    let step = if conn.shared.webhooks.has_password() {
        webhook::password(conn, user, password).await
    } else if conn.shared.auth.password(user, password).await {
        Step::accepted(user)
    } else {
        Step::Rejected
    };
    let auth = accept::finish(conn, user, attempt, step).await;
    // The library takes password off the methods after a refusal unless told otherwise; a
    // mistyped password may be typed again, up to ssh.maxAuthTries, as with OpenSSH.
    match auth {
        Auth::Reject {
            proceed_with_methods: None,
            partial_success,
        } => Auth::Reject {
            proceed_with_methods: Some(conn.shared.methods.clone()),
            partial_success,
        },
        other => other,
    }
}

/// One round of keyboard-interactive: the next prompts, or the decision.
pub(crate) async fn keyboard_interactive<B: Backend>(
    conn: &ConnectionState<B>,
    user: &str,
    answers: Option<Vec<String>>,
) -> Auth {
    match webhook::keyboard_interactive(conn, user, answers).await {
        Ok(prompts) => prompts,
        Err(step) => accept::finish(conn, user, Attempt::keyboard_interactive(), step).await,
    }
}

/// The built-in checks' answer for a key or certificate; an accepted one brings its
/// restrictions.
async fn granted<B: Backend>(
    conn: &ConnectionState<B>,
    user: &str,
    mut attempt: Attempt,
    grant: Option<Grant>,
) -> Decided {
    let Some(grant) = grant else {
        return accept::finish(conn, user, attempt, Step::Rejected)
            .await
            .into();
    };
    if let Some(cert) = &grant.certificate {
        // sshpod checked its validity: the session ends with it (a webhook's decision on a
        // certificate is the webhook's, as in ContainerSSH).
        if conn
            .shared
            .config
            .auth
            .public_key
            .trust
            .disconnect_expired_cert
        {
            if let Some(key) = &mut attempt.key {
                key.end_at_expiry();
            }
        }
        conn.events.emit(EventKind::CertificateAccepted {
            key_id: cert.key_id.clone(),
            serial: cert.serial,
            ca: cert.ca_fingerprint.to_string(),
            via: grant.via.to_string(),
        });
    }
    if !grant.restrictions.is_unrestricted() {
        conn.events.emit(EventKind::LoginRestricted {
            restrictions: grant.restrictions.to_string(),
        });
    }
    let auth = accept::finish(conn, user, attempt, Step::accepted(user)).await;
    Decided {
        auth,
        restrictions: Some(grant.restrictions),
    }
}
