//! The `auth` section: which built-in authentication methods are on and where their data lives.
//!
//! Only file-based methods exist so far; ContainerSSH's webhook, Kerberos, OAuth2 and GSSAPI
//! methods are recognised and rejected with "not supported yet" rather than "unknown key".

use serde::{Deserialize, Serialize};

use crate::check::Checker;
use crate::http::{RawWebhook, WebhookConfig};
use crate::key_trust::KeyTrust;
use crate::unsupported::Present;
use crate::webhook_auth::{RawAuthz, RawKeyboardInteractive, WebhookAuth};

/// `auth.publicKey.method` as written in the file.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
enum RawPublicKeyMethod {
    #[default]
    #[serde(rename = "")]
    Off,
    #[serde(rename = "authorizedKeys")]
    AuthorizedKeys,
    #[serde(rename = "webhook")]
    Webhook,
}

/// `auth.password.method` as written in the file.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
enum RawPasswordMethod {
    #[default]
    #[serde(rename = "")]
    Off,
    #[serde(rename = "htpasswd")]
    Htpasswd,
    #[serde(rename = "webhook")]
    Webhook,
    #[serde(rename = "kerberos")]
    Kerberos,
}

/// A `{file: …}` block.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FileSource {
    /// Path of the file; empty when unset.
    pub file: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase", default)]
struct RawPublicKey {
    method: RawPublicKeyMethod,
    authorized_keys: FileSource,
    webhook: RawWebhook,
    #[serde(rename = "trustedUserCAKeys")]
    trusted_user_ca_keys: String,
    authorized_principals_file: String,
    revoked_keys: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawPassword {
    method: RawPasswordMethod,
    htpasswd: FileSource,
    webhook: RawWebhook,
    kerberos: Present,
}

/// The `auth` section as written in the file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase", default)]
pub(crate) struct RawAuth {
    public_key: RawPublicKey,
    password: RawPassword,
    keyboard_interactive: RawKeyboardInteractive,
    gssapi: Present,
    authz: RawAuthz,
}

/// How public keys are checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub enum PublicKeyMethod {
    /// Public-key authentication is off.
    #[default]
    #[serde(rename = "")]
    Off,
    /// Keys are read from an OpenSSH `authorized_keys` file per user.
    #[serde(rename = "authorizedKeys")]
    AuthorizedKeys,
    /// Keys are checked by the `/pubkey` webhook.
    #[serde(rename = "webhook")]
    Webhook,
}

/// How passwords are checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub enum PasswordMethod {
    /// Password authentication is off.
    #[default]
    #[serde(rename = "")]
    Off,
    /// Passwords are checked against an Apache htpasswd file (bcrypt, SHA-crypt, Argon2).
    #[serde(rename = "htpasswd")]
    Htpasswd,
    /// Passwords are checked by the `/password` webhook.
    #[serde(rename = "webhook")]
    Webhook,
}

/// `auth.publicKey`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PublicKeyAuth {
    /// The method; `""` is off.
    pub method: PublicKeyMethod,
    /// `authorizedKeys.file`: the file to read, with `%u` replaced by the user name. Required
    /// when `method` is `authorizedKeys`.
    pub authorized_keys: FileSource,
    /// Trusted user CAs, principals files and revoked keys; they apply whatever `method` is.
    #[serde(flatten)]
    pub trust: KeyTrust,
    /// The webhook; present exactly when `method` is `webhook`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub webhook: Option<WebhookConfig>,
}

/// `auth.password`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PasswordAuth {
    /// The method; `""` is off.
    pub method: PasswordMethod,
    /// `htpasswd.file`: required when `method` is `htpasswd`.
    pub htpasswd: FileSource,
    /// The webhook; present exactly when `method` is `webhook`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub webhook: Option<WebhookConfig>,
}

/// Authentication settings (`auth`). At least one method is on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AuthConfig {
    /// Public-key authentication.
    pub public_key: PublicKeyAuth,
    /// Password authentication.
    pub password: PasswordAuth,
    /// Keyboard-interactive authentication (sshpod's webhook extension).
    pub keyboard_interactive: WebhookAuth,
    /// The authorization webhook, called after every successful authentication.
    pub authz: WebhookAuth,
}

impl RawAuth {
    pub(crate) fn resolve(self, check: &mut Checker<'_>) -> AuthConfig {
        for (present, key) in [
            (self.gssapi, "auth.gssapi"),
            (self.password.kerberos, "auth.password.kerberos"),
        ] {
            if present.0 {
                check.error_at_key(key, "is not supported yet by this version of sshpod");
            }
        }

        let public_key_method = match self.public_key.method {
            RawPublicKeyMethod::Off => PublicKeyMethod::Off,
            RawPublicKeyMethod::AuthorizedKeys => PublicKeyMethod::AuthorizedKeys,
            RawPublicKeyMethod::Webhook => PublicKeyMethod::Webhook,
        };
        let public_key_webhook = (public_key_method == PublicKeyMethod::Webhook).then(|| {
            self.public_key
                .webhook
                .resolve(check, "auth.publicKey.webhook")
        });
        if public_key_method == PublicKeyMethod::AuthorizedKeys
            && self.public_key.authorized_keys.file.trim().is_empty()
        {
            check.error(
                "auth.publicKey.authorizedKeys.file",
                "is required when `auth.publicKey.method` is `authorizedKeys`",
            );
        }

        let password_method = match self.password.method {
            RawPasswordMethod::Off => PasswordMethod::Off,
            RawPasswordMethod::Htpasswd => PasswordMethod::Htpasswd,
            RawPasswordMethod::Webhook => PasswordMethod::Webhook,
            RawPasswordMethod::Kerberos => unsupported_password(check, "kerberos"),
        };
        if password_method == PasswordMethod::Htpasswd
            && self.password.htpasswd.file.trim().is_empty()
        {
            check.error(
                "auth.password.htpasswd.file",
                "is required when `auth.password.method` is `htpasswd`",
            );
        }

        let trust = KeyTrust {
            trusted_user_ca_keys: self.public_key.trusted_user_ca_keys,
            authorized_principals_file: self.public_key.authorized_principals_file,
            revoked_keys: self.public_key.revoked_keys,
        }
        .resolve(check);

        let password_webhook = (password_method == PasswordMethod::Webhook).then(|| {
            self.password
                .webhook
                .resolve(check, "auth.password.webhook")
        });

        let any_requested = !matches!(self.public_key.method, RawPublicKeyMethod::Off)
            || !matches!(self.password.method, RawPasswordMethod::Off)
            || trust.trusts_certificates()
            || self.keyboard_interactive.requested();
        if !any_requested {
            check.error(
                "auth",
                "no authentication method is configured; set auth.publicKey, auth.password \
                 or auth.keyboardInteractive",
            );
        }

        AuthConfig {
            public_key: PublicKeyAuth {
                method: public_key_method,
                authorized_keys: self.public_key.authorized_keys,
                trust,
                webhook: public_key_webhook,
            },
            password: PasswordAuth {
                method: password_method,
                htpasswd: self.password.htpasswd,
                webhook: password_webhook,
            },
            keyboard_interactive: self.keyboard_interactive.resolve(check),
            authz: self.authz.resolve(check),
        }
    }
}

fn unsupported_password(check: &mut Checker<'_>, name: &str) -> PasswordMethod {
    check.error(
        "auth.password.method",
        format!("`{name}` is not supported yet; use `htpasswd` or `webhook`"),
    );
    PasswordMethod::Off
}
