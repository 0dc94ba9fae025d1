//! The `auth` section: which built-in authentication methods are on and where their data lives.
//!
//! Besides sshpod's file-based methods, ContainerSSH's webhooks are supported; its Kerberos,
//! OAuth2 and GSSAPI methods are recognised and refused with "not supported yet" when selected
//! (their settings are accepted otherwise, see [`crate::inert`]).
//!
//! ContainerSSH 0.4's layout is accepted too: one webhook written on `auth` itself (`url`,
//! `timeout`, TLS keys, `authTimeout`) with `password: true` and `pubkey: true`. Like
//! ContainerSSH 0.5 and 0.6 (`internal/config/compat.go`), sshpod moves it onto the password and
//! public-key webhooks and warns that the layout is deprecated.

use std::fmt;
use std::time::Duration;

use serde::de::value::MapAccessDeserializer;
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::{Deserialize, Serialize};

use crate::check::Checker;
use crate::duration;
use crate::http::{
    default_auth_timeout, default_timeout, NameList, RawDuration, RawWebhook, WebhookConfig,
};
use crate::inert::{RawGssapi, RawKerberos};
use crate::key_trust::{KeyTrust, DEFAULT_REVOKED_KEYS_CHECK_INTERVAL};
use crate::secret::Secret;
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
    disconnect_expired_cert: Option<bool>,
    revoked_keys_check_interval: Option<RawDuration>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawPassword {
    method: RawPasswordMethod,
    htpasswd: FileSource,
    webhook: RawWebhook,
    kerberos: RawKerberos,
}

/// The keys of [`RawPassword`], for reading it by hand in [`PasswordField`].
const PASSWORD_KEYS: &[&str] = &["method", "htpasswd", "webhook", "kerberos"];

/// `auth.password`: the settings, or ContainerSSH 0.4's `true`/`false` switch.
#[derive(Debug, Clone)]
enum PasswordField {
    Switch(bool),
    Settings(Box<RawPassword>),
}

impl Default for PasswordField {
    fn default() -> Self {
        Self::Settings(Box::default())
    }
}

impl<'de> Deserialize<'de> for PasswordField {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct FieldVisitor;
        impl<'de> Visitor<'de> for FieldVisitor {
            type Value = PasswordField;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("the password settings, or `true`/`false` (ContainerSSH 0.4)")
            }
            fn visit_bool<E: de::Error>(self, on: bool) -> Result<PasswordField, E> {
                Ok(PasswordField::Switch(on))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<PasswordField, A::Error> {
                RawPassword::deserialize(MapAccessDeserializer::new(map))
                    .map(|settings| PasswordField::Settings(Box::new(settings)))
            }
        }
        // A struct request, so that `null` handling applies inside the settings; the
        // configuration's deserializer answers it with whatever the value is (see `nulls`).
        deserializer.deserialize_struct("RawPassword", PASSWORD_KEYS, FieldVisitor)
    }
}

/// The `auth` section as written in the file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase", default)]
pub(crate) struct RawAuth {
    public_key: RawPublicKey,
    password: PasswordField,
    keyboard_interactive: RawKeyboardInteractive,
    gssapi: RawGssapi,
    authz: RawAuthz,
    // ContainerSSH 0.4's layout: one webhook for both methods, written on `auth` itself.
    // ContainerSSH still writes these keys (empty) when it saves a file.
    url: String,
    allow_redirects: bool,
    #[serde(
        deserialize_with = "duration::deserialize",
        default = "default_timeout"
    )]
    timeout: Duration,
    cacert: String,
    cert: String,
    key: Secret<String>,
    tls_version: Option<String>,
    curves: NameList,
    cipher: NameList,
    #[serde(
        deserialize_with = "duration::deserialize",
        default = "default_auth_timeout"
    )]
    auth_timeout: Duration,
    pubkey: Option<bool>,
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
    pub(crate) fn resolve(mut self, check: &mut Checker<'_>) -> AuthConfig {
        self.gssapi.check(check);
        let legacy = self.legacy(check);
        let (password_switch, password) = match std::mem::take(&mut self.password) {
            PasswordField::Switch(on) => (Some(on), RawPassword::default()),
            PasswordField::Settings(settings) => (None, *settings),
        };

        let mut public_key_method = match self.public_key.method {
            RawPublicKeyMethod::Off => PublicKeyMethod::Off,
            RawPublicKeyMethod::AuthorizedKeys => PublicKeyMethod::AuthorizedKeys,
            RawPublicKeyMethod::Webhook => PublicKeyMethod::Webhook,
        };
        let mut public_key_webhook = (public_key_method == PublicKeyMethod::Webhook).then(|| {
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

        let mut password_method = match password.method {
            RawPasswordMethod::Off => PasswordMethod::Off,
            RawPasswordMethod::Htpasswd => PasswordMethod::Htpasswd,
            RawPasswordMethod::Webhook => PasswordMethod::Webhook,
            RawPasswordMethod::Kerberos => unsupported_password(check, "kerberos"),
        };
        if password_method == PasswordMethod::Htpasswd && password.htpasswd.file.trim().is_empty() {
            check.error(
                "auth.password.htpasswd.file",
                "is required when `auth.password.method` is `htpasswd`",
            );
        }

        let trust = KeyTrust {
            trusted_user_ca_keys: self.public_key.trusted_user_ca_keys,
            authorized_principals_file: self.public_key.authorized_principals_file,
            revoked_keys: self.public_key.revoked_keys,
            disconnect_expired_cert: self.public_key.disconnect_expired_cert.unwrap_or(true),
            revoked_keys_check_interval: self
                .public_key
                .revoked_keys_check_interval
                .map_or(DEFAULT_REVOKED_KEYS_CHECK_INTERVAL, |d| d.0),
        }
        .resolve(check);

        let mut password_webhook = (password_method == PasswordMethod::Webhook)
            .then(|| password.webhook.resolve(check, "auth.password.webhook"));

        let new_layout = !matches!(self.public_key.method, RawPublicKeyMethod::Off)
            || !matches!(password.method, RawPasswordMethod::Off);
        if let Some(webhook) = legacy {
            if new_layout {
                check.warn(
                    "auth.url",
                    "`auth.url` is ContainerSSH 0.4's webhook layout and is ignored because \
                     `auth.password` or `auth.publicKey` chooses a method; remove it",
                );
            } else {
                check.warn(
                    "auth.url",
                    "`auth.url` is ContainerSSH 0.4's webhook layout, deprecated since \
                     ContainerSSH 0.5; it is used as `auth.password.webhook` and \
                     `auth.publicKey.webhook`: write it there",
                );
                // ContainerSSH 0.4's switches, both on unless written `false`.
                if password_switch.unwrap_or(true) {
                    password_method = PasswordMethod::Webhook;
                    password_webhook = Some(webhook.clone());
                }
                if self.pubkey.unwrap_or(true) {
                    public_key_method = PublicKeyMethod::Webhook;
                    public_key_webhook = Some(webhook);
                }
            }
        }

        let any_requested = public_key_method != PublicKeyMethod::Off
            || password_method != PasswordMethod::Off
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
                htpasswd: password.htpasswd,
                webhook: password_webhook,
            },
            keyboard_interactive: self.keyboard_interactive.resolve(check),
            authz: self.authz.resolve(check),
        }
    }
}

impl RawAuth {
    /// The 0.4 layout's webhook, validated with its keys on `auth`; `None` without `auth.url`.
    /// Without a URL the other 0.4 keys mean nothing (ContainerSSH writes them empty, and
    /// `pubkey: true`, into every file it saves).
    fn legacy(&self, check: &mut Checker<'_>) -> Option<WebhookConfig> {
        if self.url.trim().is_empty() {
            return None;
        }
        let raw = RawWebhook {
            url: self.url.clone(),
            allow_redirects: self.allow_redirects,
            timeout: self.timeout,
            cacert: self.cacert.clone(),
            cert: self.cert.clone(),
            key: self.key.clone(),
            tls_version: self.tls_version.clone(),
            curves: self.curves.clone(),
            cipher: self.cipher.clone(),
            auth_timeout: RawDuration(self.auth_timeout),
        };
        Some(raw.resolve(check, "auth"))
    }
}

fn unsupported_password(check: &mut Checker<'_>, name: &str) -> PasswordMethod {
    check.error(
        "auth.password.method",
        format!("`{name}` is not supported yet; use `htpasswd` or `webhook`"),
    );
    PasswordMethod::Off
}
