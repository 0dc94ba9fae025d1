//! The configurable key exchanges, ciphers and MACs (`ssh.*` and `sshproxy.*`) as russh's
//! names. Every name the configuration accepts has one (a test holds it), so a list an
//! operator wrote is never shortened silently.

use russh::{cipher, kex, mac};
use sshpod_config::{Cipher, Kex, Mac};

/// russh's name of a key exchange.
pub fn kex(kex: Kex) -> Option<kex::Name> {
    [
        kex::CURVE25519,
        kex::CURVE25519_PRE_RFC_8731,
        kex::MLKEM768X25519_SHA256,
        kex::ECDH_SHA2_NISTP256,
        kex::ECDH_SHA2_NISTP384,
        kex::ECDH_SHA2_NISTP521,
        kex::DH_G16_SHA512,
        kex::DH_G18_SHA512,
    ]
    .into_iter()
    .find(|k| k.as_ref() == kex.name())
}

/// russh's name of a cipher.
pub fn cipher(cipher: Cipher) -> Option<cipher::Name> {
    [
        cipher::CHACHA20_POLY1305,
        cipher::AES_256_GCM,
        cipher::AES_128_GCM,
        cipher::AES_256_CTR,
        cipher::AES_192_CTR,
        cipher::AES_128_CTR,
    ]
    .into_iter()
    .find(|c| c.as_ref() == cipher.name())
}

/// russh's name of a MAC.
pub fn mac(mac: Mac) -> Option<mac::Name> {
    [
        mac::HMAC_SHA256_ETM,
        mac::HMAC_SHA512_ETM,
        mac::HMAC_SHA256,
        mac::HMAC_SHA512,
    ]
    .into_iter()
    .find(|m| m.as_ref() == mac.name())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_configurable_algorithm_has_a_russh_name() {
        for k in Kex::ALL {
            assert_eq!(kex(*k).as_ref().map(AsRef::as_ref), Some(k.name()));
        }
        for c in Cipher::ALL {
            assert_eq!(cipher(*c).as_ref().map(AsRef::as_ref), Some(c.name()));
        }
        for m in Mac::ALL {
            assert_eq!(mac(*m).as_ref().map(AsRef::as_ref), Some(m.name()));
        }
    }
}
