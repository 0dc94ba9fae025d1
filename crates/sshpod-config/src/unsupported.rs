//! Recognising ContainerSSH keys that sshpod does not implement yet.
//!
//! Such keys must not be silently ignored (the operator would believe they work) and must not be
//! reported as unknown (they are not typos). [`Present`] records that a key was written, whatever
//! its value, so validation can say "not supported yet".

use std::fmt;

use serde::de::{Deserialize, Deserializer, IgnoredAny};

/// True when the key was present in the file (even with a null value).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Present(pub(crate) bool);

impl<'de> Deserialize<'de> for Present {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        IgnoredAny::deserialize(deserializer).map(|_| Present(true))
    }
}

/// ContainerSSH top-level sections that sshpod does not support yet.
pub(crate) const UNSUPPORTED_SECTIONS: &[&str] = &[
    "metrics", "geoip", "audit", "health", "security", "sshproxy",
];

/// The message for an unsupported top-level section.
pub(crate) struct UnsupportedSection<'a>(pub(crate) &'a str);

impl fmt::Display for UnsupportedSection<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "`{}` is a ContainerSSH section that this version of sshpod does not support yet",
            self.0
        )
    }
}
