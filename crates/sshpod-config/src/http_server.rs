//! ContainerSSH's HTTP server block (`listen`, `cert`, `key`, `clientcacert`, `tlsVersion`,
//! `curves`, `cipher`), used by `metrics` and `health`.
//!
//! As for the client block (`http.rs`), each section's raw struct repeats the block's fields
//! instead of flattening them, because serde cannot combine `flatten` with
//! `deny_unknown_fields`.

use std::net::SocketAddr;
use std::path::Path;

use serde::Serialize;

use crate::check::Checker;
use crate::http::{
    cipher_name, curve_name, resolve_names, resolve_tls_version, NameList, DEFAULT_CIPHERS,
    DEFAULT_CURVES,
};
use crate::secret::serialize_key_text;
use crate::ssh::parse_listen;
use crate::TlsVersion;

/// An HTTP server's settings, validated: where it listens and, with `cert` and `key`, HTTPS.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HttpServerConfig {
    /// The address to listen on.
    pub listen: SocketAddr,
    /// PEM certificate chain of the server, inline or a file name; empty: plain HTTP.
    pub cert: String,
    /// PEM private key of the server, inline or a file name. `sshpod check-config` shows it as
    /// `<secret>` when it is written inline.
    #[serde(serialize_with = "serialize_key_text")]
    pub key: String,
    /// PEM CA certificate(s) that client certificates must chain to; when set, a client without
    /// such a certificate is refused during the TLS handshake.
    pub clientcacert: String,
    /// The lowest TLS version accepted.
    pub tls_version: TlsVersion,
    /// Key-exchange groups, canonical names (`x25519`, `secp256r1`, ...).
    pub curves: Vec<String>,
    /// Cipher suites, IANA names.
    pub cipher: Vec<String>,
}

impl HttpServerConfig {
    /// Whether the server speaks HTTPS.
    pub fn tls(&self) -> bool {
        !self.cert.is_empty()
    }
}

/// Declares a section's raw struct: the HTTP server block plus the section's own keys, each
/// with its default.
macro_rules! raw_http_server {
    ($(#[$meta:meta])* $name:ident { $($extra:ident : $extra_ty:ty = $extra_default:expr),* $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, serde::Deserialize)]
        #[serde(deny_unknown_fields, rename_all = "camelCase", default)]
        pub(crate) struct $name {
            listen: String,
            cert: String,
            key: String,
            clientcacert: String,
            tls_version: Option<String>,
            curves: $crate::http::NameList,
            cipher: $crate::http::NameList,
            $($extra: $extra_ty,)*
        }

        impl Default for $name {
            fn default() -> Self {
                Self {
                    listen: String::new(),
                    cert: String::new(),
                    key: String::new(),
                    clientcacert: String::new(),
                    tls_version: None,
                    curves: $crate::http::NameList::default(),
                    cipher: $crate::http::NameList::default(),
                    $($extra: $extra_default,)*
                }
            }
        }

        impl $name {
            /// The server block, validated at `key` (the section's name).
            fn server(
                &self,
                check: &mut $crate::check::Checker<'_>,
                key: &str,
                default_listen: std::net::SocketAddr,
            ) -> $crate::http_server::HttpServerConfig {
                $crate::http_server::resolve(
                    $crate::http_server::RawServerFields {
                        listen: &self.listen,
                        cert: &self.cert,
                        key: &self.key,
                        clientcacert: &self.clientcacert,
                        tls_version: self.tls_version.as_deref(),
                        curves: &self.curves,
                        cipher: &self.cipher,
                    },
                    check,
                    key,
                    default_listen,
                )
            }

            /// The server block with its values unchecked (a section that is off is not
            /// validated, as in ContainerSSH), every bad value replaced by its default.
            fn server_unchecked(
                &self,
                default_listen: std::net::SocketAddr,
            ) -> $crate::http_server::HttpServerConfig {
                $crate::check::Checker::quietly(|quiet| self.server(quiet, "", default_listen))
            }
        }
    };
}

pub(crate) use raw_http_server;

/// The block's fields as written, borrowed from a section's raw struct.
pub(crate) struct RawServerFields<'a> {
    pub(crate) listen: &'a str,
    pub(crate) cert: &'a str,
    pub(crate) key: &'a str,
    pub(crate) clientcacert: &'a str,
    pub(crate) tls_version: Option<&'a str>,
    pub(crate) curves: &'a NameList,
    pub(crate) cipher: &'a NameList,
}

/// Validates the block of section `key`; every error names its key.
pub(crate) fn resolve(
    raw: RawServerFields<'_>,
    check: &mut Checker<'_>,
    key: &str,
    default_listen: SocketAddr,
) -> HttpServerConfig {
    let listen = match raw.listen.trim() {
        "" => default_listen,
        text => parse_listen(text).unwrap_or_else(|message| {
            check.error(&format!("{key}.listen"), message);
            default_listen
        }),
    };
    let (cert, private_key, clientcacert) = (
        raw.cert.trim().to_owned(),
        raw.key.trim().to_owned(),
        raw.clientcacert.trim().to_owned(),
    );
    match (cert.is_empty(), private_key.is_empty()) {
        (false, true) => check.error(
            &format!("{key}.key"),
            "`cert` and `key` go together: give both for HTTPS, or neither",
        ),
        (true, false) => check.error(
            &format!("{key}.cert"),
            "`cert` and `key` go together: give both for HTTPS, or neither",
        ),
        _ => {}
    }
    if !clientcacert.is_empty() && (cert.is_empty() || private_key.is_empty()) {
        check.error(
            &format!("{key}.clientcacert"),
            "client certificates need HTTPS: set `cert` and `key` too",
        );
    }
    for (name, value) in [
        ("cert", &cert),
        ("key", &private_key),
        ("clientcacert", &clientcacert),
    ] {
        if let Err(message) = check_pem_source(value) {
            check.error(&format!("{key}.{name}"), message);
        }
    }
    HttpServerConfig {
        listen,
        cert,
        key: private_key,
        clientcacert,
        tls_version: resolve_tls_version(raw.tls_version, check, key),
        curves: resolve_names(
            raw.curves,
            DEFAULT_CURVES,
            check,
            &format!("{key}.curves"),
            curve_name,
        ),
        cipher: resolve_names(
            raw.cipher,
            DEFAULT_CIPHERS,
            check,
            &format!("{key}.cipher"),
            cipher_name,
        ),
    }
}

/// A PEM setting is inline text or the name of a file that must be readable now: a typo
/// shows when the file is checked, not when the server first needs it.
fn check_pem_source(value: &str) -> Result<(), String> {
    if value.is_empty() || value.contains("-----BEGIN") {
        return Ok(());
    }
    std::fs::File::open(Path::new(value))
        .map(drop)
        .map_err(|error| format!("cannot read `{value}`: {error}"))
}
