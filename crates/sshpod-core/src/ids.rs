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

/// A new sshpod instance id: `SEAT-RANDOM`, or `RANDOM` without a seat (16 hex digits each).
/// The seat names where the process serves from (a hash of its host and listening address),
/// the same across its restarts; two listening processes cannot share it.
pub fn instance_id(seat: Option<&str>) -> String {
    let random = hex::encode(rand::random::<[u8; 8]>());
    match seat {
        Some(seat) => format!("{seat}-{random}"),
        None => random,
    }
}

/// Whether two instance ids carry the same seat: one is an earlier process of the other's
/// place, which no longer listens there.
pub fn same_seat(one: &str, other: &str) -> bool {
    match (one.split_once('-'), other.split_once('-')) {
        (Some((a, _)), Some((b, _))) => a == b,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_instances_of_one_seat_share_it() {
        let earlier = instance_id(Some("0123456789abcdef"));
        let now = instance_id(Some("0123456789abcdef"));
        assert_ne!(earlier, now);
        assert!(same_seat(&earlier, &now));
        assert!(!same_seat(&instance_id(Some("fedcba9876543210")), &now));
        let unseated = instance_id(None);
        assert!(!same_seat(&unseated, &now) && !same_seat(&unseated, &instance_id(None)));
    }

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
