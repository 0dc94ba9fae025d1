//! ContainerSSH's HTTP client block (`url`, `timeout`, `cacert`, `cert`, `key`, `tlsVersion`,
//! `curves`, `cipher`, `allowRedirects`), used by every webhook and by `configserver`.
//!
//! The raw structs repeat the block's fields instead of flattening them, because serde cannot
//! combine `flatten` with `deny_unknown_fields`.

use std::fmt;
use std::time::Duration;

use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};

use crate::check::Checker;
use crate::duration;
use crate::error::unknown_message;
use crate::secret::{is_empty_secret, redact_url, Secret, ServiceUrl};

/// Shortest accepted `timeout` and `authTimeout` (ContainerSSH's minimum).
const MIN_TIMEOUT: Duration = Duration::from_millis(100);

/// TLS cipher suites sshpod can offer: (IANA name, OpenSSL name).
const CIPHERS: &[(&str, &str)] = &[
    ("TLS_AES_128_GCM_SHA256", "TLS_AES_128_GCM_SHA256"),
    ("TLS_AES_256_GCM_SHA384", "TLS_AES_256_GCM_SHA384"),
    (
        "TLS_CHACHA20_POLY1305_SHA256",
        "TLS_CHACHA20_POLY1305_SHA256",
    ),
    (
        "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
        "ECDHE-ECDSA-AES128-GCM-SHA256",
    ),
    (
        "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
        "ECDHE-ECDSA-AES256-GCM-SHA384",
    ),
    (
        "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
        "ECDHE-ECDSA-CHACHA20-POLY1305",
    ),
    (
        "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
        "ECDHE-RSA-AES128-GCM-SHA256",
    ),
    (
        "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
        "ECDHE-RSA-AES256-GCM-SHA384",
    ),
    (
        "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
        "ECDHE-RSA-CHACHA20-POLY1305",
    ),
];

/// Cipher suites Go accepts that sshpod refuses (CBC, RC4, 3DES, static RSA key exchange).
const INSECURE_CIPHER_MARKERS: &[&str] = &[
    "CBC",
    "RC4",
    "3DES",
    "DES-CBC3",
    "TLS_RSA_",
    "AES128-SHA",
    "AES256-SHA",
];

/// ContainerSSH's default `cipher` list.
pub(crate) const DEFAULT_CIPHERS: &[&str] = &[
    "TLS_AES_128_GCM_SHA256",
    "TLS_AES_256_GCM_SHA384",
    "TLS_CHACHA20_POLY1305_SHA256",
    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
];

/// Curves: (canonical name, alias).
const CURVES: &[(&str, &str)] = &[
    ("x25519", "X25519"),
    ("secp256r1", "prime256v1"),
    ("secp384r1", "secp384r1"),
    ("secp521r1", "secp521r1"),
];

/// ContainerSSH's default `curves` list.
pub(crate) const DEFAULT_CURVES: &[&str] = &["x25519", "secp256r1", "secp384r1", "secp521r1"];

/// The lowest TLS version the client accepts (`tlsVersion`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum TlsVersion {
    /// TLS 1.2 and 1.3.
    #[serde(rename = "1.2")]
    Tls12,
    /// TLS 1.3 only (the default).
    #[default]
    #[serde(rename = "1.3")]
    Tls13,
}

/// A list written either as a YAML/JSON list or as one colon-separated string.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct NameList(pub(crate) Option<Vec<String>>);

impl<'de> Deserialize<'de> for NameList {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ListVisitor;
        impl<'de> Visitor<'de> for ListVisitor {
            type Value = NameList;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a list of names or a colon-separated string")
            }
            fn visit_str<E: de::Error>(self, text: &str) -> Result<NameList, E> {
                Ok(NameList(Some(
                    text.split(':')
                        .map(str::trim)
                        .filter(|s| !s.is_empty())
                        .map(str::to_owned)
                        .collect(),
                )))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<NameList, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = seq.next_element::<String>()? {
                    items.push(item);
                }
                Ok(NameList(Some(items)))
            }
            fn visit_unit<E: de::Error>(self) -> Result<NameList, E> {
                Ok(NameList(None))
            }
            fn visit_none<E: de::Error>(self) -> Result<NameList, E> {
                Ok(NameList(None))
            }
        }
        deserializer.deserialize_any(ListVisitor)
    }
}

pub(crate) fn default_timeout() -> Duration {
    Duration::from_secs(2)
}

pub(crate) fn default_auth_timeout() -> Duration {
    Duration::from_secs(60)
}

/// An HTTP client's settings, validated.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HttpClientConfig {
    /// Base URL (`http://` or `https://`); credentials in it never show in logs.
    pub url: ServiceUrl,
    /// Whether redirects are followed (default false).
    pub allow_redirects: bool,
    /// Per-request timeout (default 2s).
    #[serde(serialize_with = "duration::serialize")]
    pub timeout: Duration,
    /// CA certificate(s) to trust instead of the system's, PEM text or a file; empty: system.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub cacert: String,
    /// Client certificate for mTLS, PEM text or a file; empty: none.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub cert: String,
    /// Client key for mTLS, PEM text or a file.
    #[serde(skip_serializing_if = "is_empty_secret")]
    pub key: Secret<String>,
    /// Lowest TLS version.
    pub tls_version: TlsVersion,
    /// Key-exchange groups, canonical names (`x25519`, `secp256r1`, ...).
    pub curves: Vec<String>,
    /// Cipher suites, IANA names.
    pub cipher: Vec<String>,
}

/// A webhook: an HTTP client and the overall deadline of one call, retries included.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WebhookConfig {
    /// The HTTP client.
    #[serde(flatten)]
    pub client: HttpClientConfig,
    /// Overall deadline of one authentication call, retries included (default 60s).
    #[serde(serialize_with = "duration::serialize")]
    pub auth_timeout: Duration,
}

/// `configserver`: the configuration webhook.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ConfigServerConfig {
    /// The HTTP client; `url` is POSTed to exactly as given.
    #[serde(flatten)]
    pub client: HttpClientConfig,
    /// Accepted for compatibility. sshpod never sends sensitive metadata to the config server
    /// (ContainerSSH documents that and never used this key).
    pub transmit_sensitive_metadata: bool,
}

macro_rules! raw_http_client {
    ($(#[$meta:meta])* $name:ident { $($extra:ident : $extra_ty:ty = $extra_default:expr),* $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Deserialize)]
        #[serde(deny_unknown_fields, rename_all = "camelCase", default)]
        pub(crate) struct $name {
            pub(crate) url: String,
            pub(crate) allow_redirects: bool,
            #[serde(deserialize_with = "duration::deserialize")]
            pub(crate) timeout: Duration,
            pub(crate) cacert: String,
            pub(crate) cert: String,
            pub(crate) key: Secret<String>,
            pub(crate) tls_version: Option<String>,
            pub(crate) curves: NameList,
            pub(crate) cipher: NameList,
            $(pub(crate) $extra: $extra_ty,)*
        }

        impl Default for $name {
            fn default() -> Self {
                Self {
                    url: String::new(),
                    allow_redirects: false,
                    timeout: default_timeout(),
                    cacert: String::new(),
                    cert: String::new(),
                    key: Secret::default(),
                    tls_version: None,
                    curves: NameList::default(),
                    cipher: NameList::default(),
                    $($extra: $extra_default,)*
                }
            }
        }

        impl $name {
            fn client(&self, check: &mut Checker<'_>, key: &str) -> HttpClientConfig {
                resolve_client(
                    RawClientFields {
                        url: &self.url,
                        allow_redirects: self.allow_redirects,
                        timeout: self.timeout,
                        cacert: &self.cacert,
                        cert: &self.cert,
                        key: &self.key,
                        tls_version: self.tls_version.as_deref(),
                        curves: &self.curves,
                        cipher: &self.cipher,
                    },
                    check,
                    key,
                )
            }
        }
    };
}

raw_http_client!(
    /// A `*.webhook` block as written.
    RawWebhook {
        auth_timeout: RawDuration = RawDuration(default_auth_timeout()),
    }
);

raw_http_client!(
    /// `health.client` as written: how `sshpod healthcheck` reaches the health endpoint.
    RawHealthClient {}
);

raw_http_client!(
    /// The `configserver` block as written.
    RawConfigServer {
        transmit_sensitive_metadata: bool = false,
    }
);

/// A duration field with its own deserializer (macros cannot carry `deserialize_with`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct RawDuration(pub(crate) Duration);

impl<'de> Deserialize<'de> for RawDuration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        duration::deserialize(deserializer).map(RawDuration)
    }
}

impl RawWebhook {
    /// Validates the block at `key` (for example `auth.password.webhook`).
    pub(crate) fn resolve(&self, check: &mut Checker<'_>, key: &str) -> WebhookConfig {
        let client = self.client(check, key);
        let auth_timeout = self.auth_timeout.0;
        if auth_timeout < MIN_TIMEOUT {
            check.error(&format!("{key}.authTimeout"), "must be at least 100ms");
        }
        WebhookConfig {
            client,
            auth_timeout,
        }
    }
}

/// ContainerSSH's default `health.client.url`.
pub(crate) const DEFAULT_HEALTH_URL: &str = "http://127.0.0.1:7000/";

impl RawHealthClient {
    /// Validates `health.client`; an empty URL is ContainerSSH's default.
    pub(crate) fn resolve(&mut self, check: &mut Checker<'_>) -> HttpClientConfig {
        if self.url.trim().is_empty() {
            DEFAULT_HEALTH_URL.clone_into(&mut self.url);
        }
        self.client(check, "health.client")
    }
}

impl RawConfigServer {
    /// Validates `configserver`; `None` when no URL is set (the config server is off).
    pub(crate) fn resolve(&self, check: &mut Checker<'_>) -> Option<ConfigServerConfig> {
        if self.url.trim().is_empty() {
            return None;
        }
        Some(ConfigServerConfig {
            client: self.client(check, "configserver"),
            transmit_sensitive_metadata: self.transmit_sensitive_metadata,
        })
    }
}

struct RawClientFields<'a> {
    url: &'a str,
    allow_redirects: bool,
    timeout: Duration,
    cacert: &'a str,
    cert: &'a str,
    key: &'a Secret<String>,
    tls_version: Option<&'a str>,
    curves: &'a NameList,
    cipher: &'a NameList,
}

fn resolve_client(
    raw: RawClientFields<'_>,
    check: &mut Checker<'_>,
    key: &str,
) -> HttpClientConfig {
    let url = raw.url.trim().to_owned();
    if url.is_empty() {
        check.error(&format!("{key}.url"), "is required");
    } else if let Err(message) = check_url(&url) {
        check.error(&format!("{key}.url"), message);
    }
    if raw.timeout < MIN_TIMEOUT {
        check.error(&format!("{key}.timeout"), "must be at least 100ms");
    }
    let has_key = !raw.key.expose_secret().trim().is_empty();
    if raw.cert.trim().is_empty() == has_key {
        let missing = if has_key { "cert" } else { "key" };
        check.error(
            &format!("{key}.{missing}"),
            "`cert` and `key` go together: give both for a client certificate, or neither",
        );
    }
    let tls_version = resolve_tls_version(raw.tls_version, check, key);
    let cipher = resolve_names(
        raw.cipher,
        DEFAULT_CIPHERS,
        check,
        &format!("{key}.cipher"),
        cipher_name,
    );
    let curves = resolve_names(
        raw.curves,
        DEFAULT_CURVES,
        check,
        &format!("{key}.curves"),
        curve_name,
    );
    HttpClientConfig {
        url: ServiceUrl::new(url),
        allow_redirects: raw.allow_redirects,
        timeout: raw.timeout,
        cacert: raw.cacert.trim().to_owned(),
        cert: raw.cert.trim().to_owned(),
        key: Secret::new(raw.key.expose_secret().trim().to_owned()),
        tls_version,
        curves,
        cipher,
    }
}

/// `{key}.tlsVersion`: empty is ContainerSSH's default, 1.3.
pub(crate) fn resolve_tls_version(
    given: Option<&str>,
    check: &mut Checker<'_>,
    key: &str,
) -> TlsVersion {
    match given.map(str::trim) {
        None | Some("") | Some("1.3") => TlsVersion::Tls13,
        Some("1.2") => TlsVersion::Tls12,
        Some(other) => {
            check.error(
                &format!("{key}.tlsVersion"),
                format!("unknown TLS version `{other}`; expected `1.2` or `1.3`"),
            );
            TlsVersion::Tls13
        }
    }
}

pub(crate) fn resolve_names(
    given: &NameList,
    default: &[&str],
    check: &mut Checker<'_>,
    key: &str,
    canonical: fn(&str) -> Result<&'static str, String>,
) -> Vec<String> {
    let Some(names) = &given.0 else {
        return default.iter().map(|s| (*s).to_owned()).collect();
    };
    let mut resolved = Vec::new();
    for (index, name) in names.iter().enumerate() {
        match canonical(name.trim()) {
            Ok(name) if !resolved.iter().any(|r| r == name) => resolved.push(name.to_owned()),
            Ok(_) => {}
            Err(message) => check.error(&format!("{key}[{index}]"), message),
        }
    }
    if names.is_empty() {
        check.error(key, "must name at least one entry");
    }
    resolved
}

pub(crate) fn cipher_name(name: &str) -> Result<&'static str, String> {
    if let Some((iana, _)) = CIPHERS.iter().find(|(iana, openssl)| {
        name.eq_ignore_ascii_case(iana) || name.eq_ignore_ascii_case(openssl)
    }) {
        return Ok(iana);
    }
    let upper = name.to_ascii_uppercase();
    if INSECURE_CIPHER_MARKERS.iter().any(|m| upper.contains(m)) {
        return Err(format!(
            "`{name}` is considered insecure and sshpod does not offer it"
        ));
    }
    let known: Vec<&str> = CIPHERS.iter().map(|(iana, _)| *iana).collect();
    Err(unknown_message("cipher suite", name, &known))
}

pub(crate) fn curve_name(name: &str) -> Result<&'static str, String> {
    CURVES
        .iter()
        .find(|(canonical, alias)| {
            name.eq_ignore_ascii_case(canonical) || name.eq_ignore_ascii_case(alias)
        })
        .map(|(canonical, _)| *canonical)
        .ok_or_else(|| {
            let known: Vec<&str> = CURVES.iter().map(|(c, _)| *c).collect();
            unknown_message("curve", name, &known)
        })
}

/// Checks that `url` is an absolute http(s) URL with a host.
pub(crate) fn check_url(url: &str) -> Result<(), String> {
    let shown = redact_url(url);
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))
        .ok_or_else(|| format!("`{shown}` is not an http:// or https:// URL"))?;
    let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if host.is_empty() || host.contains(char::is_whitespace) {
        return Err(format!("`{shown}` has no valid host"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cipher_names_in_every_spelling() {
        assert_eq!(
            cipher_name("ECDHE-RSA-AES128-GCM-SHA256"),
            Ok("TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256")
        );
        assert_eq!(
            cipher_name("tls_aes_256_gcm_sha384"),
            Ok("TLS_AES_256_GCM_SHA384")
        );
        assert!(cipher_name("TLS_RSA_WITH_AES_128_CBC_SHA")
            .unwrap_err()
            .contains("insecure"));
        assert!(cipher_name("TLS_AES_128_GCM_SHA265")
            .unwrap_err()
            .contains("did you mean"));
    }

    #[test]
    fn curve_aliases() {
        assert_eq!(curve_name("prime256v1"), Ok("secp256r1"));
        assert_eq!(curve_name("X25519"), Ok("x25519"));
        assert!(curve_name("curve448").is_err());
    }

    #[test]
    fn urls() {
        assert!(check_url("http://127.0.0.1:8080").is_ok());
        assert!(check_url("https://auth.example/hooks").is_ok());
        assert!(check_url("ftp://x").is_err());
        assert!(check_url("http:///x").is_err());
    }
}
