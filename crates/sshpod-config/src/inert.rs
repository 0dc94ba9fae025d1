//! ContainerSSH sections that sshpod accepts without acting on them: the Kerberos, GSSAPI and
//! OAuth2 blocks under `auth`.
//!
//! ContainerSSH writes every section back into its file, at its defaults, when it generates a
//! host key, so real files carry all of them. A section that asks nothing of sshpod is accepted
//! and ignored. Only a setting that would need a feature sshpod
//! does not have is refused, with a message saying so, because silently ignoring it would leave
//! the operator believing it works.
//!
//! The key names are still checked (a typo is an error with a suggestion); the values of keys
//! that can have no effect are not, so they are read as [`IgnoredAny`].

use serde::de::IgnoredAny;
use serde::Deserialize;

use crate::check::Checker;

/// The message for a setting that needs a feature sshpod does not have.
fn unsupported(check: &mut Checker<'_>, key: &str, what: &str, instead: &str) {
    check.error(
        key,
        format!("{what} is not supported yet by this version of sshpod; {instead}"),
    );
}

/// The keys of ContainerSSH's HTTP server block (here: the OAuth2 redirect).
macro_rules! http_server_keys {
    ($(#[$meta:meta])* $name:ident { $($extra:ident : $extra_ty:ty),* $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Default, Deserialize)]
        #[serde(deny_unknown_fields, rename_all = "camelCase", default)]
        pub(crate) struct $name {
            listen: IgnoredAny,
            cert: IgnoredAny,
            key: IgnoredAny,
            clientcacert: IgnoredAny,
            tls_version: IgnoredAny,
            curves: IgnoredAny,
            cipher: IgnoredAny,
            $($extra: $extra_ty,)*
        }
    };
}

/// The keys of ContainerSSH's HTTP client block.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase", default)]
struct HttpClientKeys {
    url: IgnoredAny,
    allow_redirects: IgnoredAny,
    timeout: IgnoredAny,
    cacert: IgnoredAny,
    cert: IgnoredAny,
    key: IgnoredAny,
    tls_version: IgnoredAny,
    curves: IgnoredAny,
    cipher: IgnoredAny,
}

/// A `kerberos` block (`auth.password.kerberos`, `auth.gssapi.kerberos`); used only when a method
/// selects Kerberos, which `auth` refuses.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase", default)]
pub(crate) struct RawKerberos {
    keytab: IgnoredAny,
    acceptor: IgnoredAny,
    enforce_username: IgnoredAny,
    credential_cache_path: IgnoredAny,
    config_path: IgnoredAny,
    clock_skew: IgnoredAny,
}

/// `auth.gssapi.method`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
enum GssapiMethod {
    #[default]
    #[serde(rename = "")]
    Off,
    #[serde(rename = "kerberos")]
    Kerberos,
}

/// `auth.gssapi` as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawGssapi {
    method: GssapiMethod,
    kerberos: RawKerberos,
}

impl RawGssapi {
    pub(crate) fn check(&self, check: &mut Checker<'_>) {
        if self.method == GssapiMethod::Kerberos {
            unsupported(
                check,
                "auth.gssapi.method",
                "GSSAPI authentication",
                "remove `auth.gssapi.method`",
            );
        }
    }
}

http_server_keys!(
    /// `auth.keyboardInteractive.oauth2.redirect`.
    OAuth2Redirect {
        webroot: IgnoredAny,
    }
);

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase", default)]
struct OAuth2GitHub {
    url: IgnoredAny,
    apiurl: IgnoredAny,
    cacert: IgnoredAny,
    cert: IgnoredAny,
    key: IgnoredAny,
    tls_version: IgnoredAny,
    curves: IgnoredAny,
    cipher: IgnoredAny,
    enforce_username: IgnoredAny,
    require_org_membership: IgnoredAny,
    #[serde(rename = "require2FA")]
    require_2fa: IgnoredAny,
    extra_scopes: IgnoredAny,
    enforce_scopes: IgnoredAny,
    timeout: IgnoredAny,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase", default)]
struct OAuth2Oidc {
    url: IgnoredAny,
    allow_redirects: IgnoredAny,
    timeout: IgnoredAny,
    cacert: IgnoredAny,
    cert: IgnoredAny,
    key: IgnoredAny,
    tls_version: IgnoredAny,
    curves: IgnoredAny,
    cipher: IgnoredAny,
    device_flow: IgnoredAny,
    authorization_code_flow: IgnoredAny,
    username_field: IgnoredAny,
    #[serde(rename = "redirectURI")]
    redirect_uri: IgnoredAny,
    extra_scopes: IgnoredAny,
    enforce_scopes: IgnoredAny,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase", default)]
struct OAuth2Generic {
    #[serde(rename = "authorizeEndpointURL")]
    authorize_endpoint_url: IgnoredAny,
    token_endpoint: HttpClientKeys,
    #[serde(rename = "redirectURI")]
    redirect_uri: IgnoredAny,
}

/// `auth.keyboardInteractive.oauth2`; used only with `method: oauth2`, which is refused.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase", default)]
pub(crate) struct RawOAuth2 {
    client_id: IgnoredAny,
    client_secret: IgnoredAny,
    provider: IgnoredAny,
    redirect: OAuth2Redirect,
    qr_code_clients: IgnoredAny,
    device_flow_clients: IgnoredAny,
    auth_timeout: IgnoredAny,
    github: OAuth2GitHub,
    oidc: OAuth2Oidc,
    generic: OAuth2Generic,
}
