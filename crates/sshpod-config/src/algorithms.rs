//! SSH algorithm names that `ssh.ciphers`, `ssh.kex` and `ssh.macs` may list.
//!
//! Each list is an enum so that the SSH layer can map it exhaustively. Names that ContainerSSH
//! accepts but that are broken (CBC, RC4, SHA-1) get their own error message.

use serde::{Serialize, Serializer};

/// Names ContainerSSH allows that sshpod refuses because they are insecure.
pub(crate) const INSECURE: &[&str] = &[
    "aes128-cbc",
    "arcfour256",
    "arcfour128",
    "arcfour",
    "tripledescbcID",
    "diffie-hellman-group14-sha1",
    "diffie-hellman-group1-sha1",
    "hmac-sha1",
    "hmac-sha1-96",
];

macro_rules! algorithm_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident => $text:literal,)+ }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum $name {
            $($(#[$vmeta])* $variant,)+
        }

        impl $name {
            /// Every algorithm of this kind that sshpod offers.
            pub const ALL: &'static [$name] = &[$($name::$variant,)+];

            /// The name used in SSH negotiation and in the configuration file.
            pub fn name(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)+
                }
            }

            /// Looks up a name as written in the configuration file.
            pub fn from_name(name: &str) -> Option<Self> {
                Self::ALL.iter().copied().find(|algorithm| algorithm.name() == name)
            }

            pub(crate) fn names() -> Vec<&'static str> {
                Self::ALL.iter().map(|algorithm| algorithm.name()).collect()
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.name())
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.name())
            }
        }
    };
}

algorithm_enum! {
    /// A symmetric cipher (`ssh.ciphers`).
    Cipher {
        /// `chacha20-poly1305@openssh.com`
        Chacha20Poly1305 => "chacha20-poly1305@openssh.com",
        /// `aes256-gcm@openssh.com`
        Aes256Gcm => "aes256-gcm@openssh.com",
        /// `aes128-gcm@openssh.com`
        Aes128Gcm => "aes128-gcm@openssh.com",
        /// `aes256-ctr`
        Aes256Ctr => "aes256-ctr",
        /// `aes192-ctr`
        Aes192Ctr => "aes192-ctr",
        /// `aes128-ctr`
        Aes128Ctr => "aes128-ctr",
    }
}

algorithm_enum! {
    /// A key-exchange method (`ssh.kex`).
    Kex {
        /// `curve25519-sha256`
        Curve25519Sha256 => "curve25519-sha256",
        /// `curve25519-sha256@libssh.org`
        Curve25519Sha256Libssh => "curve25519-sha256@libssh.org",
        /// `ecdh-sha2-nistp521`
        EcdhSha2Nistp521 => "ecdh-sha2-nistp521",
        /// `ecdh-sha2-nistp384`
        EcdhSha2Nistp384 => "ecdh-sha2-nistp384",
        /// `ecdh-sha2-nistp256`
        EcdhSha2Nistp256 => "ecdh-sha2-nistp256",
        /// `diffie-hellman-group16-sha512`
        DiffieHellmanGroup16Sha512 => "diffie-hellman-group16-sha512",
        /// `diffie-hellman-group18-sha512`
        DiffieHellmanGroup18Sha512 => "diffie-hellman-group18-sha512",
        /// `mlkem768x25519-sha256` (post-quantum hybrid)
        Mlkem768X25519Sha256 => "mlkem768x25519-sha256",
    }
}

algorithm_enum! {
    /// A message authentication code (`ssh.macs`).
    Mac {
        /// `hmac-sha2-256-etm@openssh.com`
        HmacSha256Etm => "hmac-sha2-256-etm@openssh.com",
        /// `hmac-sha2-512-etm@openssh.com`
        HmacSha512Etm => "hmac-sha2-512-etm@openssh.com",
        /// `hmac-sha2-256`
        HmacSha256 => "hmac-sha2-256",
        /// `hmac-sha2-512`
        HmacSha512 => "hmac-sha2-512",
    }
}

impl Cipher {
    /// The default list, in order of preference.
    pub const DEFAULT: &'static [Cipher] = Cipher::ALL;
}

impl Kex {
    /// The default list, in order of preference: the post-quantum hybrid first (OpenSSH 10's
    /// default), then X25519. The NIST curves stay selectable but are not offered by default.
    pub const DEFAULT: &'static [Kex] = &[
        Kex::Mlkem768X25519Sha256,
        Kex::Curve25519Sha256,
        Kex::Curve25519Sha256Libssh,
    ];
}

impl Mac {
    /// The default list, in order of preference: encrypt-then-MAC only (the others MAC the
    /// plaintext, which ssh-audit rightly flags); they stay selectable.
    pub const DEFAULT: &'static [Mac] = &[Mac::HmacSha256Etm, Mac::HmacSha512Etm];
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for cipher in Cipher::ALL {
            assert_eq!(Cipher::from_name(cipher.name()), Some(*cipher));
        }
        for kex in Kex::ALL {
            assert_eq!(Kex::from_name(kex.name()), Some(*kex));
        }
        for mac in Mac::ALL {
            assert_eq!(Mac::from_name(mac.name()), Some(*mac));
        }
        assert_eq!(Cipher::from_name("aes128-cbc"), None);
    }
}
