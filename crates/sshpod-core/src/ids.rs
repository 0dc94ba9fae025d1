//! Identifiers that cross the server/backend boundary.

use std::fmt;

/// A connection's identity: 16 random bytes, shown as 32 lower-case hex characters, the form
/// ContainerSSH's webhooks use for `connectionId`.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct ConnectionId([u8; 16]);

impl ConnectionId {
    /// A fresh random identifier.
    pub fn random() -> Self {
        Self(rand::random())
    }
}

impl fmt::Display for ConnectionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for ConnectionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ConnectionId({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shows_as_32_hex_characters() {
        let id = ConnectionId::random().to_string();
        assert_eq!(id.len(), 32);
        assert!(id
            .chars()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
        assert_ne!(id, ConnectionId::random().to_string());
    }
}
