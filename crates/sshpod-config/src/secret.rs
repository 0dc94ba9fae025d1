//! A wrapper that keeps credentials out of `Debug` output (and therefore out of logs).

use std::cell::Cell;
use std::fmt;

use serde::{Deserialize, Serialize, Serializer};

/// A secret value. `Debug` prints `<secret>`; read it with [`Secret::expose_secret`].
///
/// It serialises transparently, because [`crate::Config::to_yaml`] must reproduce a configuration
/// that loads again (and config-server answers are merged through it); inside [`redacted`]
/// it serialises as `<secret>`.
#[derive(Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(transparent)]
pub struct Secret<T>(T);

/// What a redacted secret prints as.
pub const REDACTED: &str = "<secret>";

thread_local! {
    static REDACT: Cell<bool> = const { Cell::new(false) };
}

/// Runs `f` with every [`Secret`] serialising as [`REDACTED`].
pub(crate) fn redacted<R>(f: impl FnOnce() -> R) -> R {
    REDACT.with(|r| r.set(true));
    let result = f();
    REDACT.with(|r| r.set(false));
    result
}

impl<T: Serialize> Serialize for Secret<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if REDACT.with(Cell::get) {
            REDACTED.serialize(serializer)
        } else {
            self.0.serialize(serializer)
        }
    }
}

/// Whether a secret string is empty (printed as nothing rather than as `<secret>`, which would
/// suggest one is set).
pub(crate) fn is_empty_secret(secret: &Secret<String>) -> bool {
    secret.expose_secret().is_empty()
}

/// Serialises a key setting that holds a file name or the key itself: inside [`redacted`], the
/// key itself (PEM text) prints as [`REDACTED`]; a file name is not secret and prints as is.
pub(crate) fn serialize_key_text<S: Serializer>(
    value: &str,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    let inline = value.contains("-----BEGIN") || value.contains('\n');
    if inline && REDACT.with(Cell::get) {
        REDACTED.serialize(serializer)
    } else {
        value.serialize(serializer)
    }
}

impl<T> Secret<T> {
    /// Wraps a value.
    pub fn new(value: T) -> Self {
        Self(value)
    }

    /// The wrapped value. Keep its use close to where it is needed.
    pub fn expose_secret(&self) -> &T {
        &self.0
    }
}

impl<T> fmt::Debug for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<secret>")
    }
}

/// An http(s) URL that may carry credentials in its user-info (`https://user:TOKEN@host/`).
/// `Display` and `Debug` print it with the user-info as `<secret>`, so it can go into logs and
/// error messages; requests use [`ServiceUrl::expose_secret`]. Serialises like [`Secret`].
#[derive(Clone, PartialEq, Eq, Default)]
pub struct ServiceUrl(String);

impl ServiceUrl {
    /// Wraps a URL.
    pub fn new(url: impl Into<String>) -> Self {
        Self(url.into())
    }

    /// The URL as written, credentials included.
    pub fn expose_secret(&self) -> &str {
        &self.0
    }

    /// The URL with any user-info replaced by `<secret>`.
    pub fn redacted(&self) -> String {
        redact_url(&self.0)
    }
}

/// `url` with any user-info (`user:password@`) replaced by `<secret>`.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => format!("{scheme}://{REDACTED}{}", &rest[at..]),
        None => url.to_owned(),
    }
}

impl fmt::Display for ServiceUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

impl fmt::Debug for ServiceUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.redacted())
    }
}

impl Serialize for ServiceUrl {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if REDACT.with(Cell::get) {
            self.redacted().serialize(serializer)
        } else {
            self.0.serialize(serializer)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_never_show_their_credentials() {
        let url = ServiceUrl::new("https://hook:s3cr3t@auth.example:8443/path?q=a@b");
        assert_eq!(
            url.to_string(),
            "https://<secret>@auth.example:8443/path?q=a@b"
        );
        assert!(!format!("{url:?}").contains("s3cr3t"));
        assert_eq!(
            url.expose_secret(),
            "https://hook:s3cr3t@auth.example:8443/path?q=a@b"
        );
        let printed = redacted(|| serde_json::to_string(&url).unwrap());
        assert!(!printed.contains("s3cr3t"), "{printed}");
        assert!(serde_json::to_string(&url).unwrap().contains("s3cr3t"));
        assert_eq!(redact_url("http://TOKEN@h/"), "http://<secret>@h/");
        assert_eq!(redact_url("http://h/a@b"), "http://h/a@b");
        assert_eq!(redact_url("not a url"), "not a url");
    }

    #[test]
    fn serialises_transparently_unless_redacted() {
        let secret = Secret::new("hunter2".to_string());
        assert_eq!(serde_json::to_string(&secret).unwrap(), "\"hunter2\"");
        let printed = redacted(|| serde_json::to_string(&secret).unwrap());
        assert_eq!(printed, "\"<secret>\"");
        assert_eq!(serde_json::to_string(&secret).unwrap(), "\"hunter2\"");
    }

    #[test]
    fn debug_hides_the_value() {
        let secret = Secret::new("hunter2".to_string());
        assert_eq!(format!("{secret:?}"), "<secret>");
        assert_eq!(secret.expose_secret(), "hunter2");
    }
}
