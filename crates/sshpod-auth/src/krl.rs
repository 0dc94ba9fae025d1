//! OpenSSH key revocation lists (KRL), the binary files `ssh-keygen -k` writes.
//!
//! The format is OpenSSH's `PROTOCOL.krl`: a header, then sections that revoke certificates
//! (per CA, by serial number, serial range, serial bitmap or key id), plain keys (by their
//! blob) and keys by SHA-1 or SHA-256 hash of their blob. Signature sections are skipped (sshd
//! does not check them either when it loads `RevokedKeys`). Anything this parser does not know
//! makes the whole file unusable, and the caller then refuses every key: a revocation list
//! that is only partly understood must not let a revoked key in.

use std::collections::HashSet;
use std::fmt;

use russh::keys::ssh_key::public::KeyData;
use russh::keys::ssh_key::{Certificate, HashAlg, PublicKey};
use sha1::{Digest, Sha1};

/// The first bytes of every KRL: `SSHKRL\n\0`.
pub(crate) const MAGIC: &[u8; 8] = b"SSHKRL\n\0";
const FORMAT_VERSION: u32 = 1;

const SECTION_CERTIFICATES: u8 = 1;
const SECTION_EXPLICIT_KEY: u8 = 2;
const SECTION_FINGERPRINT_SHA1: u8 = 3;
const SECTION_SIGNATURE: u8 = 4;
const SECTION_FINGERPRINT_SHA256: u8 = 5;

const CERT_SERIAL_LIST: u8 = 0x20;
const CERT_SERIAL_RANGE: u8 = 0x21;
const CERT_SERIAL_BITMAP: u8 = 0x22;
const CERT_KEY_ID: u8 = 0x23;

/// A parsed key revocation list.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Krl {
    /// Certificates revoked per CA key blob; `None` is "any CA".
    certificates: Vec<CertificateRevocations>,
    /// Plain key blobs.
    keys: HashSet<Vec<u8>>,
    /// SHA-1 hashes of plain key blobs.
    sha1: HashSet<Vec<u8>>,
    /// SHA-256 hashes of plain key blobs.
    sha256: HashSet<Vec<u8>>,
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct CertificateRevocations {
    ca: Option<Vec<u8>>,
    /// Inclusive serial ranges.
    serials: Vec<(u64, u64)>,
    key_ids: HashSet<String>,
}

/// Why a KRL could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct KrlError(String);

impl fmt::Display for KrlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn err<T>(message: impl Into<String>) -> Result<T, KrlError> {
    Err(KrlError(message.into()))
}

/// A cursor over SSH wire encoding (big-endian integers, length-prefixed strings).
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn bytes(&mut self, n: usize) -> Result<&'a [u8], KrlError> {
        if self.0.len() < n {
            return err("truncated");
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Ok(head)
    }

    fn u8(&mut self) -> Result<u8, KrlError> {
        Ok(self.bytes(1)?[0])
    }

    fn u32(&mut self) -> Result<u32, KrlError> {
        let mut b = [0; 4];
        b.copy_from_slice(self.bytes(4)?);
        Ok(u32::from_be_bytes(b))
    }

    fn u64(&mut self) -> Result<u64, KrlError> {
        let mut b = [0; 8];
        b.copy_from_slice(self.bytes(8)?);
        Ok(u64::from_be_bytes(b))
    }

    fn string(&mut self) -> Result<&'a [u8], KrlError> {
        let len = usize::try_from(self.u32()?).map_err(|_| KrlError("too long".into()))?;
        self.bytes(len)
    }
}

impl Krl {
    /// Parses a KRL file's contents.
    pub(crate) fn parse(data: &[u8]) -> Result<Self, KrlError> {
        let mut r = Reader(data);
        if r.bytes(MAGIC.len())? != MAGIC {
            return err("not a KRL (bad magic)");
        }
        let version = r.u32()?;
        if version != FORMAT_VERSION {
            return err(format!("unsupported KRL format version {version}"));
        }
        let _krl_version = r.u64()?;
        let _generated = r.u64()?;
        let _flags = r.u64()?;
        let _reserved = r.string()?;
        let _comment = r.string()?;
        let mut krl = Self::default();
        while !r.is_empty() {
            let kind = r.u8()?;
            let mut section = Reader(r.string()?);
            match kind {
                SECTION_CERTIFICATES => krl.certificates.push(parse_certificates(&mut section)?),
                SECTION_EXPLICIT_KEY => {
                    while !section.is_empty() {
                        krl.keys.insert(section.string()?.to_vec());
                    }
                }
                SECTION_FINGERPRINT_SHA1 => hashes(&mut section, 20, &mut krl.sha1)?,
                SECTION_FINGERPRINT_SHA256 => hashes(&mut section, 32, &mut krl.sha256)?,
                SECTION_SIGNATURE => {}
                other => return err(format!("unknown KRL section type {other}")),
            }
        }
        Ok(krl)
    }

    /// How many entries the list holds (serial ranges, key ids, keys and hashes), for logs.
    pub(crate) fn len(&self) -> usize {
        self.certificates
            .iter()
            .map(|c| c.serials.len() + c.key_ids.len())
            .sum::<usize>()
            + self.keys.len()
            + self.sha1.len()
            + self.sha256.len()
    }

    /// Whether the plain key `key` is revoked (by blob or hash).
    pub(crate) fn is_key_revoked(&self, key: &KeyData) -> bool {
        let Some(blob) = blob(key) else {
            // A key we cannot encode cannot be compared: treat it as revoked.
            return true;
        };
        self.keys.contains(&blob)
            || self.sha1.contains(Sha1::digest(&blob).as_slice())
            || self
                .sha256
                .contains(key.fingerprint(HashAlg::Sha256).as_bytes())
    }

    /// Whether `certificate` is revoked by serial or key id under its CA or any CA. (Its key
    /// and its CA key are checked separately with [`Krl::is_key_revoked`].)
    pub(crate) fn is_certificate_revoked(&self, certificate: &Certificate) -> bool {
        let ca = blob(certificate.signature_key());
        self.certificates
            .iter()
            .filter(|section| section.ca.is_none() || section.ca == ca)
            .any(|section| {
                section.key_ids.contains(certificate.key_id())
                    // Serial 0 means "no serial" and is never matched by serial.
                    || (certificate.serial() != 0
                        && section
                            .serials
                            .iter()
                            .any(|&(low, high)| (low..=high).contains(&certificate.serial())))
            })
    }
}

/// The SSH wire encoding of a public key.
pub(crate) fn blob(key: &KeyData) -> Option<Vec<u8>> {
    PublicKey::from(key.clone()).to_bytes().ok()
}

fn hashes(
    section: &mut Reader<'_>,
    len: usize,
    into: &mut HashSet<Vec<u8>>,
) -> Result<(), KrlError> {
    while !section.is_empty() {
        let hash = section.string()?;
        if hash.len() != len {
            return err(format!(
                "a key hash of {} bytes where {len} were expected",
                hash.len()
            ));
        }
        into.insert(hash.to_vec());
    }
    Ok(())
}

fn parse_certificates(section: &mut Reader<'_>) -> Result<CertificateRevocations, KrlError> {
    let ca = section.string()?;
    let _reserved = section.string()?;
    let mut out = CertificateRevocations {
        ca: (!ca.is_empty()).then(|| ca.to_vec()),
        ..CertificateRevocations::default()
    };
    while !section.is_empty() {
        let kind = section.u8()?;
        let mut sub = Reader(section.string()?);
        match kind {
            CERT_SERIAL_LIST => {
                while !sub.is_empty() {
                    let serial = sub.u64()?;
                    out.serials.push((serial, serial));
                }
            }
            CERT_SERIAL_RANGE => {
                let (low, high) = (sub.u64()?, sub.u64()?);
                if low > high {
                    return err("a serial range whose start is after its end");
                }
                out.serials.push((low, high));
            }
            CERT_SERIAL_BITMAP => {
                let offset = sub.u64()?;
                // An mpint: big-endian, possibly with a leading zero byte.
                let bitmap = sub.string()?;
                for (index, byte) in bitmap.iter().rev().enumerate() {
                    for bit in 0..8u64 {
                        if byte & (1 << bit) != 0 {
                            let serial = (index as u64)
                                .checked_mul(8)
                                .and_then(|b| b.checked_add(bit))
                                .and_then(|b| b.checked_add(offset))
                                .ok_or_else(|| KrlError("serial bitmap overflows".into()))?;
                            out.serials.push((serial, serial));
                        }
                    }
                }
            }
            CERT_KEY_ID => {
                while !sub.is_empty() {
                    let id = std::str::from_utf8(sub.string()?)
                        .map_err(|_| KrlError("a key id that is not UTF-8".into()))?;
                    out.key_ids.insert(id.to_owned());
                }
            }
            other => return err(format!("unknown KRL certificate section type {other:#x}")),
        }
        if !sub.is_empty() {
            return err("trailing bytes in a certificate section");
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Builds a KRL by hand, so the parser is also tested without ssh-keygen.
    struct Builder(Vec<u8>);

    fn string(out: &mut Vec<u8>, data: &[u8]) {
        out.extend_from_slice(&(data.len() as u32).to_be_bytes());
        out.extend_from_slice(data);
    }

    impl Builder {
        fn new() -> Self {
            let mut out = MAGIC.to_vec();
            out.extend_from_slice(&1u32.to_be_bytes());
            out.extend_from_slice(&[0; 24]);
            string(&mut out, b"");
            string(&mut out, b"test");
            Self(out)
        }

        fn section(mut self, kind: u8, data: &[u8]) -> Self {
            self.0.push(kind);
            string(&mut self.0, data);
            self
        }
    }

    #[test]
    fn empty_krl_revokes_nothing() {
        let krl = Krl::parse(&Builder::new().0).unwrap();
        assert_eq!(krl, Krl::default());
    }

    #[test]
    fn certificate_sections() {
        let mut data = Vec::new();
        string(&mut data, b"CA-BLOB");
        string(&mut data, b"");
        // serials 3 and 7 as a list
        data.push(CERT_SERIAL_LIST);
        string(
            &mut data,
            &[3u64.to_be_bytes(), 7u64.to_be_bytes()].concat(),
        );
        // 100..=200
        data.push(CERT_SERIAL_RANGE);
        string(
            &mut data,
            &[100u64.to_be_bytes(), 200u64.to_be_bytes()].concat(),
        );
        // bitmap at offset 1000: bits 0, 1 and 9 -> 1000, 1001, 1009 (with the mpint's 0 byte)
        data.push(CERT_SERIAL_BITMAP);
        let mut bitmap = 1000u64.to_be_bytes().to_vec();
        string(&mut bitmap, &[0x00, 0x02, 0x03]);
        string(&mut data, &bitmap);
        data.push(CERT_KEY_ID);
        let mut ids = Vec::new();
        string(&mut ids, b"bob@laptop");
        string(&mut data, &ids);
        let krl = Krl::parse(&Builder::new().section(SECTION_CERTIFICATES, &data).0).unwrap();
        let section = &krl.certificates[0];
        assert_eq!(section.ca.as_deref(), Some(&b"CA-BLOB"[..]));
        let mut serials = section.serials.clone();
        serials.sort_unstable();
        assert_eq!(
            serials,
            [
                (3, 3),
                (7, 7),
                (100, 200),
                (1000, 1000),
                (1001, 1001),
                (1009, 1009)
            ]
        );
        assert!(section.key_ids.contains("bob@laptop"));
    }

    #[test]
    fn rejects_what_it_does_not_understand() {
        let mut bad_magic = Builder::new().0;
        bad_magic[0] = b'X';
        assert!(Krl::parse(&bad_magic).is_err());
        let mut bad_version = Builder::new().0;
        bad_version[11] = 2;
        assert!(Krl::parse(&bad_version).is_err());
        assert!(Krl::parse(&Builder::new().section(9, b"").0).is_err());
        let truncated = Builder::new()
            .section(SECTION_EXPLICIT_KEY, b"\0\0\0\x09abc")
            .0;
        assert!(Krl::parse(&truncated).is_err());
        let mut wrong_hash = Vec::new();
        string(&mut wrong_hash, &[0; 19]);
        assert!(Krl::parse(
            &Builder::new()
                .section(SECTION_FINGERPRINT_SHA1, &wrong_hash)
                .0
        )
        .is_err());
        let mut cert = Vec::new();
        string(&mut cert, b"");
        string(&mut cert, b"");
        cert.push(0x7f);
        string(&mut cert, b"");
        assert!(Krl::parse(&Builder::new().section(SECTION_CERTIFICATES, &cert).0).is_err());
        // A signature section is skipped.
        assert!(Krl::parse(&Builder::new().section(SECTION_SIGNATURE, b"whatever").0).is_ok());
    }
}
