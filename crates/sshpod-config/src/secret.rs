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

#[cfg(test)]
mod tests {
    use super::*;

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
