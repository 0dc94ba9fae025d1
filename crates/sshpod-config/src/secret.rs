//! A wrapper that keeps credentials out of `Debug` output (and therefore out of logs).

use std::fmt;

use serde::{Deserialize, Serialize};

/// A secret value. `Debug` prints `<secret>`; read it with [`Secret::expose_secret`].
///
/// It serialises transparently, because [`crate::Config::to_yaml`] must reproduce a configuration
/// that loads again; treat that output as sensitive.
#[derive(Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret<T>(T);

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
    fn debug_hides_the_value() {
        let secret = Secret::new("hunter2".to_string());
        assert_eq!(format!("{secret:?}"), "<secret>");
        assert_eq!(secret.expose_secret(), "hunter2");
    }
}
